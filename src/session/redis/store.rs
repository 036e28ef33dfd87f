//! `session.store: redis`: sessions live in Redis (the cookie carries only a sealed id), with
//! a small cache of recently read ones in this process so the hot path does not wait for
//! Redis on every request. Also the cookie store's shared revocation list
//! (`session.revocation: redis`): there the identity stays in the cookie and Redis holds
//! only what ended.
//!
//! A cached session is used for `cache_ttl`, then read again; a revocation anywhere reaches
//! this process's copy by push (within moments) and is checked on every request. If the
//! subscription drops, everything cached is read again. While Redis is unavailable, cached
//! sessions keep working for `unavailable_grace`; others are an error (503).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use moka::sync::Cache;
use serde::{Deserialize, Serialize};

use super::shared::SharedRevocations;
use super::RedisConfig;
use crate::identity::Identity;
use crate::session::store::{
    system_clock, Clock, SessionInfo, SessionStore, StoreError, WriteCount,
};

pub struct RedisStore {
    shared: SharedRevocations,
    /// `store: redis` (true) or the cookie store's shared revocations (false).
    keeps: bool,
    cache: Cache<String, Arc<Cached>, ahash::RandomState>,
    /// Raised after every write to `cache` but a routine read again (`load_generation`).
    writes: WriteCount,
    clock: Clock,
    lifetime: Duration,
    cache_ttl: u64,
    grace: u64,
}

/// A session (or, for cookie tickets, a confirmation) as last read from Redis.
struct Cached {
    identity: Option<Arc<Identity>>,
    exp: u64,
    fetched: u64,
    epoch: u64,
}

/// A session as Redis holds it.
#[derive(Serialize, Deserialize)]
struct Record {
    id: Identity,
    iat: u64,
    exp: u64,
}

impl RedisStore {
    /// `keeps`: the identities live in Redis (`store: redis`); otherwise only revocations.
    pub fn connect(cfg: &RedisConfig, lifetime: Duration, keeps: bool) -> Result<Self, String> {
        Self::with_clock(cfg, lifetime, keeps, system_clock())
    }

    pub fn with_clock(
        cfg: &RedisConfig,
        lifetime: Duration,
        keeps: bool,
        clock: Clock,
    ) -> Result<Self, String> {
        let shared = SharedRevocations::connect(cfg, lifetime)?;
        let keep_for = cfg.cache_ttl.max(cfg.unavailable_grace) + Duration::from_secs(1);
        Ok(Self {
            shared,
            keeps,
            // Weighed in units of WEIGHT_UNIT bytes, not bytes: moka sizes its bookkeeping
            // by the capacity's count, and a capacity of 32 million "entries" costs far more
            // memory than the sessions it bounds (measured: benches/session_memory.rs).
            cache: Cache::builder()
                .max_capacity(cfg.cache_bytes / WEIGHT_UNIT)
                .weigher(|k: &String, v: &Arc<Cached>| {
                    let id = v.identity.as_deref().map_or(0, crate::session::weight);
                    // ×3: what an entry really holds (the identity as parsed, its strings'
                    // headers, moka's bookkeeping) against the estimate, as measured.
                    let bytes = 3 * (k.len() + 96 + id) as u64;
                    u32::try_from(bytes.div_ceil(WEIGHT_UNIT)).unwrap_or(u32::MAX)
                })
                .time_to_live(keep_for)
                .build_with_hasher(ahash::RandomState::new()),
            writes: WriteCount::default(),
            clock,
            lifetime,
            cache_ttl: cfg.cache_ttl.as_secs(),
            grace: cfg.unavailable_grace.as_secs(),
        })
    }

    /// Pushes from other replicas arrive.
    pub fn subscribed(&self) -> bool {
        self.link().subscribed()
    }

    fn link(&self) -> &super::Link {
        &self.shared.link
    }

    fn cache_put(&self, sid: String, cached: Arc<Cached>) {
        self.cache.insert(sid, cached);
        self.writes.wrote();
    }

    fn cache_drop(&self, sid: &str) {
        self.cache.invalidate(sid);
        self.writes.wrote();
    }

    /// The cached entry, if it may be used without asking Redis.
    fn fresh(&self, sid: &str, now: u64) -> Option<Arc<Cached>> {
        self.cache
            .get(sid)
            .filter(|c| now < c.fetched + self.cache_ttl && c.epoch == self.link().epoch())
    }

    /// What to do when Redis failed: the cached entry if it was read within the grace period.
    fn graced(&self, sid: &str, now: u64, e: StoreError) -> Result<Arc<Cached>, StoreError> {
        match self.cache.get(sid) {
            Some(c) if now < c.fetched + self.grace => {
                log::debug!(
                    "session store: Redis unavailable, using a session read {}s ago",
                    now - c.fetched
                );
                Ok(c)
            }
            _ => Err(e),
        }
    }

    /// Reads session `sid` from Redis and confirms it was not revoked.
    async fn fetch(&self, sid: &str, now: u64) -> Result<Option<Arc<Cached>>, StoreError> {
        let key = self.shared.keys().session(sid);
        let raw = self
            .link()
            .run("session read", move |r| async move {
                r.get::<Option<String>, _>(key).await
            })
            .await?;
        let Some(record) = raw.and_then(|s| serde_json::from_str::<Record>(&s).ok()) else {
            self.cache_drop(sid);
            return Ok(None);
        };
        if record.exp <= now || !self.shared.confirm(sid, &record.id, record.iat).await? {
            self.cache_drop(sid);
            return Ok(None);
        }
        let cached = Arc::new(Cached {
            identity: Some(Arc::new(record.id)),
            exp: record.exp,
            fetched: now,
            epoch: self.link().epoch(),
        });
        // A routine read again (the copy was due): answers kept from the older copy stand no
        // longer than it would have (`load_now_until`), so this write does not end them.
        self.cache.insert(sid.to_string(), cached.clone());
        Ok(Some(cached))
    }

    /// The ids Redis lists for `user`, as (id, record) of those still stored.
    async fn records_of(
        &self,
        provider: &str,
        user: &str,
    ) -> Result<Vec<(String, Record)>, StoreError> {
        let set = self.shared.keys().user_sessions(provider, user);
        let keys = self.shared.keys().clone();
        let found = self
            .link()
            .run("session listing", move |r| async move {
                let ids: Vec<String> = r.smembers(&set).await?;
                let mut out = Vec::new();
                for sid in ids {
                    match r.get::<Option<String>, _>(keys.session(&sid)).await? {
                        Some(raw) => out.push((sid, raw)),
                        None => r.srem::<(), _, _>(&set, sid).await?,
                    }
                }
                Ok(out)
            })
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|(sid, raw)| serde_json::from_str::<Record>(&raw).ok().map(|r| (sid, r)))
            .collect())
    }
}

/// The cache's weight unit, in bytes.
const WEIGHT_UNIT: u64 = 256;

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[async_trait]
impl SessionStore for RedisStore {
    fn kind(&self) -> &'static str {
        if self.keeps {
            "redis"
        } else {
            "cookie (revocations in Redis)"
        }
    }

    fn keeps_identities(&self) -> bool {
        self.keeps
    }

    fn shared(&self) -> bool {
        true
    }

    fn load_now(&self, sid: &str) -> Option<Option<Arc<Identity>>> {
        self.load_now_until(sid).map(|(identity, _)| identity)
    }

    /// A fresh cached read stands until it is due to be read again (or the session ends).
    fn load_now_until(&self, sid: &str) -> Option<(Option<Arc<Identity>>, u64)> {
        if !self.keeps || sid.len() > 64 {
            return Some((None, 0));
        }
        let now = (self.clock)();
        let c = self.fresh(sid, now)?;
        let until = (c.fetched + self.cache_ttl).min(c.exp);
        Some((c.identity.clone().filter(|_| c.exp > now), until))
    }

    /// Cache writes and reconnects (a new epoch makes every cached read stale): both only
    /// grow, so their sum changes whenever either does.
    fn load_generation(&self) -> u64 {
        let writes = self.writes.get();
        writes.wrapping_add(self.link().epoch())
    }

    async fn load(&self, sid: &str) -> Result<Option<Arc<Identity>>, StoreError> {
        if let Some(answer) = self.load_now(sid) {
            return Ok(answer);
        }
        let now = (self.clock)();
        let cached = match self.fetch(sid, now).await {
            Ok(c) => c,
            Err(e) => Some(self.graced(sid, now, e)?),
        };
        Ok(cached
            .filter(|c| c.exp > now)
            .and_then(|c| c.identity.clone()))
    }

    async fn save(
        &self,
        sid: &str,
        identity: Arc<Identity>,
        issued: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        if !self.keeps {
            return Err(StoreError::Unsupported(
                "cookie",
                "hold identities (they travel in the ticket)",
            ));
        }
        let keys = self.shared.keys();
        let (key, set) = (
            keys.session(sid),
            keys.user_sessions(&identity.provider, &identity.user),
        );
        if ttl.as_secs() == 0 {
            self.cache_drop(sid);
            return self
                .link()
                .run("session write", move |r| async move {
                    r.del::<(), _>(key).await
                })
                .await;
        }
        let record = Record {
            id: (*identity).clone(),
            iat: issued,
            exp: issued + ttl.as_secs(),
        };
        let raw = serde_json::to_string(&record)
            .map_err(|e| StoreError::Unavailable(format!("session not serializable: {e}")))?;
        let (ttl_s, life) = (secs(ttl), secs(self.lifetime.max(ttl)));
        let id = sid.to_string();
        self.link()
            .run("session write", move |r| async move {
                r.set::<(), _, _>(key, raw, Some(Expiration::EX(ttl_s)), None, false)
                    .await?;
                r.sadd::<(), _, _>(&set, id).await?;
                r.expire::<(), _>(&set, life, None).await
            })
            .await?;
        self.cache_put(
            sid.to_string(),
            Arc::new(Cached {
                identity: Some(identity),
                exp: record.exp,
                fetched: (self.clock)(),
                epoch: self.link().epoch(),
            }),
        );
        Ok(())
    }

    async fn remove(&self, sid: &str) -> Result<(), StoreError> {
        self.cache_drop(sid);
        if !self.keeps {
            return Ok(());
        }
        let key = self.shared.keys().session(sid);
        self.link()
            .run("session delete", move |r| async move {
                r.del::<(), _>(key).await
            })
            .await
    }

    async fn revoke(&self, sid: &str) -> Result<Option<Arc<Identity>>, StoreError> {
        self.shared.revoke(sid).await?;
        let held = if self.keeps {
            let key = self.shared.keys().session(sid);
            let raw = self
                .link()
                .run("session delete", move |r| async move {
                    let raw: Option<String> = r.get(&key).await?;
                    r.del::<(), _>(&key).await?;
                    Ok(raw)
                })
                .await?;
            raw.and_then(|s| serde_json::from_str::<Record>(&s).ok())
                .map(|r| Arc::new(r.id))
        } else {
            None
        };
        self.cache_drop(sid);
        Ok(held)
    }

    async fn revoke_user(&self, provider: &str, user: &str, now: u64) -> Result<u64, StoreError> {
        self.shared.revoke_user(provider, user, now).await?;
        if !self.keeps {
            return Ok(0);
        }
        let mut ended = 0;
        for (sid, _) in self.records_of(provider, user).await? {
            self.shared.revoke(&sid).await?;
            let key = self.shared.keys().session(&sid);
            let gone: u64 = self
                .link()
                .run("session delete", move |r| async move { r.del(key).await })
                .await?;
            self.cache_drop(&sid);
            ended += gone;
        }
        Ok(ended)
    }

    async fn end_by_idp(
        &self,
        provider: &str,
        name_id: &str,
        session_indexes: &[String],
        now: u64,
    ) -> Result<(), StoreError> {
        self.shared
            .end_by_idp(provider, name_id, session_indexes, now)
            .await
    }

    async fn sessions_of(
        &self,
        provider: &str,
        user: &str,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        if !self.keeps {
            return Err(StoreError::Unsupported(
                "cookie",
                "list sessions (it holds none)",
            ));
        }
        let now = (self.clock)();
        let mut all: Vec<SessionInfo> = self
            .records_of(provider, user)
            .await?
            .into_iter()
            .filter(|(sid, r)| r.exp > now && !self.shared.local.is_revoked(sid))
            .map(|(id, r)| SessionInfo { id, expires: r.exp })
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    fn is_revoked(&self, sid: &str) -> bool {
        self.shared.local.is_revoked(sid)
    }

    fn revocation_generation(&self) -> u64 {
        self.shared.local.generation()
    }

    fn is_ended(&self, identity: &Identity, issued: u64) -> bool {
        self.shared.local.is_ended(identity, issued)
    }

    fn confirms_tickets(&self) -> bool {
        !self.keeps
    }

    async fn confirm_ticket(
        &self,
        sid: &str,
        identity: &Identity,
        issued: u64,
    ) -> Result<bool, StoreError> {
        let now = (self.clock)();
        if self.fresh(sid, now).is_some() {
            return Ok(true);
        }
        match self.shared.confirm(sid, identity, issued).await {
            Ok(true) => {
                let c = Cached {
                    identity: None,
                    exp: u64::MAX,
                    fetched: now,
                    epoch: self.link().epoch(),
                };
                self.cache_put(sid.to_string(), Arc::new(c));
                Ok(true)
            }
            Ok(false) => {
                self.cache_drop(sid);
                Ok(false)
            }
            Err(e) => self.graced(sid, now, e).map(|_| true),
        }
    }

    async fn first_use(&self, scope: &str, id: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.shared.first_use(scope, id, ttl).await
    }

    async fn reload(&self, sid: &str) -> Result<Option<Arc<Identity>>, StoreError> {
        self.cache_drop(sid);
        self.load(sid).await
    }

    async fn keep(
        &self,
        kind: &str,
        id: &str,
        value: String,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        super::kept::keep(self.link(), self.shared.keys(), kind, id, value, ttl).await
    }

    async fn kept(&self, kind: &str, id: &str) -> Result<Option<String>, StoreError> {
        super::kept::kept(self.link(), self.shared.keys(), kind, id).await
    }

    async fn forget(&self, kind: &str, id: &str) -> Result<(), StoreError> {
        super::kept::forget(self.link(), self.shared.keys(), kind, id).await
    }

    async fn lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        super::kept::lock(self.link(), self.shared.keys(), name, owner, ttl).await
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        super::kept::unlock(self.link(), self.shared.keys(), name, owner).await
    }

    fn healthy(&self) -> bool {
        self.link().healthy()
    }

    fn errors(&self) -> u64 {
        self.link().errors()
    }

    fn len_hint(&self) -> Option<u64> {
        None
    }
}
