//! Sessions: sealed cookies and the server-side store.
//!
//! Every cookie the gateway sets is sealed with AES-256-GCM (cookie's `PrivateJar`, key derived
//! by HKDF from `session.secret`; the cookie's *name* is the associated data, so a value sealed
//! for one cookie cannot be replayed as another). The session cookie carries a `Ticket`:
//! session id, issued-at, absolute expiry, last-seen, and — with the `cookie` store — the
//! identity itself. With the `memory` store the identity stays server-side, keyed by the id.
//! A tampered, foreign, expired, idle or revoked cookie is simply "no session".

mod cookie_store;
mod kept;
mod lifecycle;
mod memory;
mod once;
mod read;
mod recent;
pub(crate) mod redis;
mod revocations;
mod store;
mod watch;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use moka::sync::Cache;
use serde::{Deserialize, Serialize};

use crate::seal::{Sealer, MAX_COOKIE_VALUE};
pub use cookie_store::CookieStore;
pub use lifecycle::{
    Grant, Held, Lifecycle, OnRecheckFailure, TimerOverrides, Timers, DEFAULT_RECHECK_GRACE,
};
pub use memory::MemoryStore;
pub use redis::{RedisConfig, RedisStore, RedisTls, Topology};
pub use store::{system_clock, Clock, SessionInfo, SessionStore, StoreError, UNKNOWN_GENERATION};

use crate::identity::{Identity, List};
use crate::read::Secret;

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::Rng::fill(&mut rand::thread_rng(), buf.as_mut_slice());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// What the session cookie holds, sealed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ticket {
    /// Format version: a future change of shape invalidates old cookies instead of misreading.
    pub v: u8,
    pub sid: String,
    pub iat: u64,
    pub exp: u64,
    /// Last time the ticket was re-issued on activity (for the idle timeout).
    pub seen: u64,
    /// The idle timeout of this session's provider, in seconds (0: `session.idle_timeout`).
    #[serde(rename = "it", default, skip_serializing_if = "is_zero")]
    pub idle: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Identity>,
}

const TICKET_VERSION: u8 = 1;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why a presented session cookie was not accepted (a metric label; bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Could not be opened: tampered, sealed with another key, or for another cookie name.
    Invalid,
    Expired,
    Idle,
    Revoked,
    /// Server-side store has no such session (restart, eviction, other replica).
    Unknown,
    StoreError,
}

impl Rejection {
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Invalid => "invalid",
            Rejection::Expired => "expired",
            Rejection::Idle => "idle",
            Rejection::Revoked => "revoked",
            Rejection::Unknown => "unknown",
            Rejection::StoreError => "store_error",
        }
    }
}

#[derive(Debug)]
pub enum Check {
    Valid {
        identity: Arc<Identity>,
        /// A re-issued cookie value when the idle clock should be reset.
        refreshed: Option<String>,
        /// The session the cookie names (what a re-check renews or ends).
        held: Held,
    },
    Rejected(Rejection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The whole identity lives in the sealed cookie: no shared state between replicas.
    Cookie,
    /// The cookie holds a sealed session id; the identity lives in this process (moka).
    Memory,
    /// The cookie holds a sealed session id; the identity lives in Redis, shared by every
    /// replica (with a short cache in each).
    Redis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    pub cookie_name: String,
    /// `session.max_lifetime`: the default absolute lifetime (a provider may set its own).
    pub lifetime: Duration,
    /// The default idle timeout (a provider may set its own).
    pub idle_timeout: Duration,
    /// Re-checks, and each provider's own timers.
    pub lifecycle: Lifecycle,
    pub secure: bool,
    pub secret: Secret,
    pub store: StoreKind,
    /// Upper bound for the in-memory store.
    pub max_sessions: u64,
    /// `session.cookie_domain` (lower case, no leading dot): the session cookie is sent to
    /// every host under it.
    pub cookie_domain: Option<String>,
    /// `session.redis`: with `store: redis`, or the cookie store's `revocation: redis`.
    pub redis: Option<RedisConfig>,
}

impl SessionConfig {
    /// The cookie store with `revocation: redis`: its revocation list (and single-use
    /// checks) live in Redis.
    pub fn shared_revocation(&self) -> bool {
        self.store == StoreKind::Cookie && self.redis.is_some()
    }

    /// The name pending sign-ins and other path-scoped cookies derive theirs from: the
    /// session cookie's without the `__Host-` or `__Secure-` prefix.
    pub fn base_name(&self) -> &str {
        self.cookie_name
            .strip_prefix("__Host-")
            .or_else(|| self.cookie_name.strip_prefix("__Secure-"))
            .unwrap_or(&self.cookie_name)
    }

    /// Does the session cookie reach `host` by itself (`cookie_domain` covers it)?
    pub fn cookie_reaches(&self, host: &str) -> bool {
        self.cookie_domain.as_deref().is_some_and(|d| {
            host == d || host.strip_suffix(d).is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

/// The session manager the proxy uses.
pub struct Sessions {
    pub cfg: SessionConfig,
    sealer: Sealer,
    /// Where sessions live and who owns their revocation (the cookie store keeps only
    /// revocations: a copied cookie stops working after sign-out there too).
    store: Arc<dyn SessionStore>,
    clock: Clock,
    /// Cookie values already opened, by their exact sealed text: the hot path. Opening is
    /// deterministic (same text, same ticket), so a hit equals decrypting again; expiry, idle
    /// time and revocation are still checked on every request. Only values that opened are
    /// inserted, so garbage cookies cannot fill it.
    opened: Cache<String, Arc<Opened>, TailHash>,
    /// This manager's id in each worker thread's last openings (`recent`).
    owner: u64,
    /// Upgraded connections waiting to be told their session ended.
    watchers: Arc<watch::Watchers>,
}

/// A ticket as opened, with its identity ready to share.
struct Opened {
    held: Held,
    seen: u64,
    /// The idle timeout, in seconds.
    idle: u64,
    /// The identity (cookie store); `None` with a server-side store.
    identity: Option<Arc<Identity>>,
    /// The re-issued value (idle clock reset) and when it was sealed: every request with this
    /// old value in the same refresh window gets the same new one, sealed once.
    renewed: std::sync::Mutex<Option<(u64, String)>>,
    /// The store's `revocation_generation` when this session was last found not revoked
    /// (`UNKNOWN_GENERATION`: not yet).
    unrevoked_at: std::sync::atomic::AtomicU64,
    /// The store's last answer for the session (`Loaded`), if it said how long it stands.
    loaded: arc_swap::ArcSwapOption<Loaded>,
}

/// A server-side store's answer for an opened cookie's session, kept while it stands
/// (`SessionStore::load_now_until`).
struct Loaded {
    /// Weak: an identity the store let go of is not held here (only its ~200-byte shell,
    /// until the opened cookie leaves the cache), and then the store is asked again.
    identity: std::sync::Weak<Identity>,
    until: u64,
    generation: u64,
}

/// Hashes a sealed cookie value by its last 32 characters and its length: they hold the
/// authentication tag, different in every value sealed (random nonce), so they tell values
/// apart as well as the whole text would, without reading ~1.4 KB per request. Equality still
/// compares the whole text, and only values that opened are ever inserted, so values made to
/// share a tail can cost a comparison, never a wrong answer.
#[derive(Clone, Default)]
struct TailHash(ahash::RandomState);

struct TailHasher(ahash::AHasher);

impl std::hash::BuildHasher for TailHash {
    type Hasher = TailHasher;
    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

impl std::hash::Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(&bytes[bytes.len().saturating_sub(32)..]);
        self.0.write_usize(bytes.len());
    }
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// How long an opened cookie is remembered, and how many bytes of them at most (weighed by
/// the cookie text and the identity it carries).
const OPENED_TTL: Duration = Duration::from_secs(300);
const OPENED_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// With a server-side store the openings carry no identity and only the recently active
/// need to stay: a smaller bound keeps the memory for the sessions themselves.
const OPENED_MAX_BYTES_STORED: u64 = 8 * 1024 * 1024;
/// What a kept store answer adds to an opening: `Loaded` in its `Arc` with the allocator's
/// rounding (~64), and an `Identity`'s shell (`Arc` counts and the struct, ~216) that a weak
/// reference keeps allocated after the store let the identity go.
const LOADED_WEIGHT: usize = 64 + 16 + std::mem::size_of::<Identity>();

impl Sessions {
    /// The manager for `cfg`, with the store it names (connecting to Redis in the
    /// background where it names Redis).
    pub fn new(cfg: SessionConfig) -> Result<Self, SessionsError> {
        let redis = |keeps: bool| match &cfg.redis {
            Some(r) => RedisStore::connect(r, cfg.longest_lifetime(), keeps)
                .map(|s| Arc::new(s) as Arc<dyn SessionStore>)
                .map_err(SessionsError::Redis),
            None => Err(SessionsError::Redis(
                "session.redis is not configured".into(),
            )),
        };
        let store: Arc<dyn SessionStore> = match cfg.store {
            StoreKind::Cookie if cfg.shared_revocation() => redis(false)?,
            StoreKind::Cookie => Arc::new(CookieStore::new(cfg.longest_lifetime())),
            StoreKind::Memory => {
                Arc::new(MemoryStore::new(cfg.max_sessions, cfg.longest_lifetime()))
            }
            StoreKind::Redis => redis(true)?,
        };
        Self::with_store(cfg, store, system_clock()).ok_or(SessionsError::Secret)
    }

    /// The manager for `cfg` over a given store and clock (sessions are issued at `clock()`;
    /// the conformance suite moves its clock forward).
    pub fn with_store(
        cfg: SessionConfig,
        store: Arc<dyn SessionStore>,
        clock: Clock,
    ) -> Option<Self> {
        let sealer = Sealer::new(cfg.secret.0.as_bytes())?;
        let opened_max = if store.keeps_identities() {
            OPENED_MAX_BYTES_STORED
        } else {
            OPENED_MAX_BYTES
        };
        Some(Self {
            cfg,
            sealer,
            store,
            clock,
            opened: Cache::builder()
                .max_capacity(opened_max)
                .weigher(|k: &String, v: &Arc<Opened>| {
                    let id = v.identity.as_deref().map_or(0, weight);
                    // With a server-side store: the kept answer (`Loaded`) and the shell of
                    // an identity it may outlive.
                    let kept = if v.identity.is_none() {
                        LOADED_WEIGHT
                    } else {
                        0
                    };
                    u32::try_from(k.len() + 160 + id + kept).unwrap_or(u32::MAX)
                })
                .time_to_live(OPENED_TTL)
                .build_with_hasher(TailHash::default()),
            owner: recent::new_owner(),
            watchers: Arc::default(),
        })
    }

    /// Sessions held server-side (None with the cookie store).
    pub fn stored_sessions(&self) -> Option<u64> {
        self.store.len_hint()
    }

    /// The store sessions live in (and are revoked through).
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Starts a session; returns the sealed cookie value.
    pub async fn create(&self, identity: Identity) -> Result<String, CreateError> {
        self.create_with(identity, None).await
    }

    /// Starts a session and keeps the IdP's `grant` beside it (where the store holds
    /// sessions); returns the sealed cookie value.
    pub async fn create_with(
        &self,
        mut identity: Identity,
        grant: Option<Grant>,
    ) -> Result<String, CreateError> {
        let mut now = (self.clock)();
        // Revocations void sessions "issued until T", in whole seconds: a session made after
        // a revocation in that same second counts as issued in the next, or it would be born
        // void (and its user sent round a sign-in loop). The store records the same time.
        if self.store.is_ended(&identity, now) {
            now += 1;
        }
        identity.checked_at = now;
        let timers = self.cfg.timers(&identity.provider);
        let sid = random_token(18);
        // The IdP's own session (SAML SessionNotOnOrAfter) bounds this one.
        let exp = match identity.more.session_not_after {
            0 => now + timers.max_lifetime.as_secs(),
            until => (now + timers.max_lifetime.as_secs()).min(until.max(now + 1)),
        };
        let mut ticket = Ticket {
            v: TICKET_VERSION,
            sid: sid.clone(),
            iat: now,
            exp,
            seen: now,
            idle: timers.idle_timeout.as_secs(),
            id: None,
        };
        if self.store.keeps_identities() {
            self.store
                .save(
                    &sid,
                    Arc::new(identity),
                    now,
                    Duration::from_secs(exp - now),
                )
                .await
                .map_err(CreateError::Store)?;
            if let Some(grant) = grant {
                self.keep_grant(&sid, &grant, ticket.exp, now)
                    .await
                    .map_err(CreateError::Store)?;
            }
        } else {
            ticket.id = Some(identity);
        }
        let sealed = self
            .sealer
            .seal(&self.cfg.cookie_name, &ticket)
            .ok_or(CreateError::Seal)?;
        if sealed.len() > MAX_COOKIE_VALUE {
            return Err(CreateError::TooLarge(sealed.len()));
        }
        Ok(sealed)
    }

    /// The store's answer for the session without waiting: the one kept beside the opened
    /// cookie while it stands (same `load_generation`, before its time), else the store's now
    /// (kept when it says how long it stands). `None`: the store must be asked (`load`).
    fn load_kept(&self, ticket: &Opened, now: u64) -> Option<Option<Arc<Identity>>> {
        // Read before asking: a write after this read changes it.
        let generation = self.store.load_generation();
        if generation == store::UNKNOWN_GENERATION {
            return self.store.load_now(&ticket.held.sid);
        }
        if let Some(kept) = &*ticket.loaded.load() {
            if kept.generation == generation && now < kept.until {
                if let Some(identity) = kept.identity.upgrade() {
                    return Some(Some(identity));
                }
            }
        }
        let (identity, until) = self.store.load_now_until(&ticket.held.sid)?;
        if let Some(identity) = &identity {
            ticket.loaded.store(Some(Arc::new(Loaded {
                identity: Arc::downgrade(identity),
                until,
                generation,
            })));
        }
        Some(identity)
    }

    /// Whether the session was revoked: asked of the store once per revocation it learns of,
    /// not on every request (`revocation_generation`).
    fn revoked(&self, ticket: &Opened) -> bool {
        use std::sync::atomic::Ordering;
        // Read before asking: a revocation after this read changes it.
        let generation = self.store.revocation_generation();
        let known = generation != store::UNKNOWN_GENERATION;
        if known && ticket.unrevoked_at.load(Ordering::Acquire) == generation {
            return false;
        }
        if self.store.is_revoked(&ticket.held.sid) {
            return true;
        }
        if known {
            ticket.unrevoked_at.store(generation, Ordering::Release);
        }
        false
    }

    /// Checks a presented cookie value at time `now` (seconds).
    pub async fn check(&self, sealed: &str, now: u64) -> Check {
        // Opening is an AES-GCM decryption with a fresh key schedule: every store remembers
        // the openings of recently presented cookies (bounded, see OPENED_MAX_BYTES*).
        let in_ticket = !self.store.keeps_identities();
        let recent = recent::Lookup::new(self.owner, sealed, now);
        let cached = recent.find().or_else(|| {
            let hit = self.opened.get(sealed)?;
            recent.keep(&hit);
            Some(hit)
        });
        let ticket = match cached {
            Some(hit) => hit,
            None => {
                let Some(t) = self
                    .sealer
                    .open::<Ticket>(&self.cfg.cookie_name, sealed)
                    .filter(|t| t.v == TICKET_VERSION)
                else {
                    return Check::Rejected(Rejection::Invalid);
                };
                let idle = match t.idle {
                    0 => self.cfg.idle_timeout.as_secs(),
                    own => own,
                };
                let opened = Arc::new(Opened {
                    held: Held {
                        sid: t.sid.into(),
                        iat: t.iat,
                        exp: t.exp,
                    },
                    seen: t.seen,
                    idle,
                    identity: t.id.map(Arc::new),
                    renewed: std::sync::Mutex::new(None),
                    unrevoked_at: std::sync::atomic::AtomicU64::new(store::UNKNOWN_GENERATION),
                    loaded: arc_swap::ArcSwapOption::const_empty(),
                });
                self.opened.insert(sealed.to_string(), opened.clone());
                recent.keep(&opened);
                opened
            }
        };
        let held = &ticket.held;
        if now >= held.exp || held.iat > now + 300 {
            return Check::Rejected(Rejection::Expired);
        }
        let idle = ticket.idle;
        if now.saturating_sub(ticket.seen) >= idle {
            return Check::Rejected(Rejection::Idle);
        }
        if self.revoked(&ticket) {
            return Check::Rejected(Rejection::Revoked);
        }
        let identity = match (in_ticket, &ticket.identity) {
            (true, Some(id)) if self.store.confirms_tickets() => {
                match self.store.confirm_ticket(&held.sid, id, held.iat).await {
                    Ok(true) => id.clone(),
                    Ok(false) => return Check::Rejected(Rejection::Revoked),
                    Err(e) => {
                        log::warn!("session store: {e}");
                        return Check::Rejected(Rejection::StoreError);
                    }
                }
            }
            (true, Some(id)) => id.clone(),
            (true, None) => return Check::Rejected(Rejection::Invalid),
            (false, _) => {
                // A copy at hand (kept from the last request, memory, a fresh cached read)
                // without a boxed future.
                let loaded = match self.load_kept(&ticket, now) {
                    Some(answer) => Ok(answer),
                    None => self.store.load(&held.sid).await,
                };
                match loaded {
                    Ok(Some(id)) => id,
                    Ok(None) => return Check::Rejected(Rejection::Unknown),
                    Err(e) => {
                        log::warn!("session store: {e}");
                        return Check::Rejected(Rejection::StoreError);
                    }
                }
            }
        };
        if self.store.is_ended(&identity, held.iat) {
            return Check::Rejected(Rejection::Revoked);
        }
        let refreshed = self.renewed(&ticket, &identity, in_ticket, now);
        Check::Valid {
            identity,
            refreshed,
            held: held.clone(),
        }
    }

    /// The ticket re-issued with its idle clock reset, when due: at most once a minute, or
    /// sooner for short idle timeouts. Every request with the same old value in one window
    /// gets the same new value, sealed once.
    fn renewed(
        &self,
        ticket: &Opened,
        identity: &Arc<Identity>,
        in_ticket: bool,
        now: u64,
    ) -> Option<String> {
        let refresh_after = (ticket.idle / 4).clamp(1, 60);
        if now.saturating_sub(ticket.seen) < refresh_after {
            return None;
        }
        let mut memo = ticket.renewed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, v)) = memo.as_ref() {
            if now.saturating_sub(*at) < refresh_after && *at <= now {
                return Some(v.clone());
            }
        }
        let held = &ticket.held;
        let t = Ticket {
            v: TICKET_VERSION,
            sid: held.sid.to_string(),
            iat: held.iat,
            exp: held.exp,
            seen: now,
            idle: ticket.idle,
            id: in_ticket.then(|| identity.as_ref().clone()),
        };
        let sealed = self.sealer.seal(&self.cfg.cookie_name, &t);
        *memo = sealed.clone().map(|v| (now, v));
        sealed
    }

    /// The IdP ended the sessions of `name_id` with `provider` (SAML logout, OpenID
    /// back-channel logout): those with one of `session_indexes`, or all of them when none is
    /// given, issued until `now`. An empty `name_id` ends the sessions of those indexes
    /// whoever they belong to (a logout token with `sid` only).
    pub async fn end_by_idp(
        &self,
        provider: &str,
        name_id: &str,
        session_indexes: &[String],
        now: u64,
    ) -> Result<(), StoreError> {
        self.store
            .end_by_idp(provider, name_id, session_indexes, now)
            .await
    }

    /// Marks `id` used in `scope` for `ttl` (see `SessionStore::first_use`).
    pub async fn first_use(
        &self,
        scope: &str,
        id: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.store.first_use(scope, id, ttl).await
    }

    /// Ends every session of `user` with `provider` issued until `now`, wherever their
    /// cookies are; returns how many stored sessions it removed.
    pub async fn revoke_user(
        &self,
        provider: &str,
        user: &str,
        now: u64,
    ) -> Result<u64, StoreError> {
        self.store.revoke_user(provider, user, now).await
    }

    /// Ends the session a cookie names if it is valid and its identity passes `which`.
    pub async fn revoke_if(
        &self,
        sealed: &str,
        which: impl Fn(&Identity) -> bool,
    ) -> Option<Identity> {
        match self.check(sealed, (self.clock)()).await {
            Check::Valid { identity, .. } if which(&identity) => self.revoke(sealed).await,
            _ => None,
        }
    }

    /// Ends the session a cookie names, wherever it lives. Unreadable cookies are ignored.
    pub async fn revoke(&self, sealed: &str) -> Option<Identity> {
        let ticket = self.sealer.open::<Ticket>(&self.cfg.cookie_name, sealed)?;
        let held = match self.end(&ticket.sid).await {
            Ok(held) => held,
            Err(e) => {
                log::warn!("session store: could not revoke a signed-out session: {e}");
                None
            }
        };
        ticket.id.or_else(|| held.map(|a| (*a).clone()))
    }
}

/// Roughly what an identity costs in memory: the struct in its `Arc`, its rare fields' box,
/// the lists and the strings (cache weighers).
pub(crate) fn weight(i: &Identity) -> usize {
    let text = |s: &Option<Box<str>>| s.as_ref().map_or(0, |s| s.len());
    std::mem::size_of::<Identity>()
        + 16
        + i.more.boxed_len()
        + i.groups.heap_len()
        + i.roles.heap_len()
        + i.user.len()
        + text(&i.email)
        + text(&i.name)
        + text(&i.name_id)
        + text(&i.session_index)
        + text(&i.login_hint)
        + i.more.group_names.as_ref().map_or(0, List::heap_len)
        + i.more
            .claims
            .iter()
            .map(|(c, v)| 48 + c.len() + v.len())
            .sum::<usize>()
        + i.more
            .attributes
            .iter()
            .map(|(a, v)| 48 + a.len() + v.len())
            .sum::<usize>()
        + i.more
            .assured
            .iter()
            .map(|(w, _)| 40 + w.len())
            .sum::<usize>()
        + i.more
            .rule_claims
            .iter()
            .map(|(n, v)| 48 + n.len() + v.iter().map(|x| 24 + x.len()).sum::<usize>())
            .sum::<usize>()
}

/// Why the session manager could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    #[error("session.secret must be at least 32 bytes")]
    Secret,
    #[error("{0}")]
    Redis(String),
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("could not seal the session cookie")]
    Seal,
    #[error(
        "the identity is too large for a cookie ({0} bytes sealed); set session.store: memory or redis"
    )]
    TooLarge(usize),
    #[error("{0}")]
    Store(StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::Secret;

    fn cfg(store: StoreKind) -> SessionConfig {
        SessionConfig {
            cookie_name: "sess".into(),
            lifetime: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(600),
            lifecycle: Lifecycle::default(),
            secure: true,
            secret: Secret("k".repeat(32)),
            store,
            max_sessions: 100,
            cookie_domain: None,
            redis: None,
        }
    }

    fn alice() -> Identity {
        Identity {
            provider: "p".into(),
            user: "alice".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn round_trip_expiry_idle_and_tamper() {
        for kind in [StoreKind::Cookie, StoreKind::Memory] {
            let s = Sessions::new(cfg(kind)).unwrap();
            let v = s.create(alice()).await.unwrap();
            let now = now_secs();
            match s.check(&v, now).await {
                Check::Valid {
                    identity,
                    refreshed,
                    ..
                } => {
                    assert_eq!(&*identity.user, "alice");
                    assert!(refreshed.is_none());
                }
                other => panic!("{other:?}"),
            }
            assert!(matches!(
                s.check(&v, now + 3600).await,
                Check::Rejected(Rejection::Expired)
            ));
            assert!(matches!(
                s.check(&v, now + 600).await,
                Check::Rejected(Rejection::Idle)
            ));
            // Checked again (from the opened-cookie cache): the re-issued ticket carries the
            // same identity and opens on its own.
            let Check::Valid {
                refreshed: Some(renewed),
                ..
            } = s.check(&v, now + 200).await
            else {
                panic!("idle refresh expected");
            };
            match s.check(&renewed, now + 200).await {
                Check::Valid { identity, .. } => assert_eq!(&*identity.user, "alice"),
                other => panic!("{other:?}"),
            }
            let mut bytes = v.clone().into_bytes();
            bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            assert!(matches!(
                s.check(&tampered, now).await,
                Check::Rejected(Rejection::Invalid)
            ));
            // Another key: foreign.
            let mut other = cfg(kind);
            other.secret = Secret("z".repeat(32));
            let s2 = Sessions::new(other).unwrap();
            assert!(matches!(s2.check(&v, now).await, Check::Rejected(_)));
            // Revocation.
            assert_eq!(s.revoke(&v).await.map(|i| i.user), Some("alice".into()));
            assert!(matches!(
                s.check(&v, now).await,
                Check::Rejected(Rejection::Revoked)
            ));
        }
    }

    /// The store's answer kept beside the opened cookie ends with any write to the store's
    /// sessions and with its time: a changed identity is seen on the next request, a removed
    /// session is gone.
    #[tokio::test]
    async fn a_kept_answer_ends_with_any_write_and_with_its_time() {
        let s = Sessions::new(cfg(StoreKind::Memory)).unwrap();
        let v = s.create(alice()).await.unwrap();
        let ticket = s.sealer.open::<Ticket>(&s.cfg.cookie_name, &v).unwrap();
        let now = now_secs();
        let name = |c: &Check| match c {
            Check::Valid { identity, .. } => identity.name.as_deref().map(str::to_string),
            other => panic!("{other:?}"),
        };
        assert_eq!(name(&s.check(&v, now).await), None);
        let kept = s.opened.get(&v).unwrap();
        assert!(kept.loaded.load().is_some(), "the answer is kept");
        let changed = Identity {
            name: Some("Alice Changed".into()),
            ..alice()
        };
        s.store
            .save(
                &ticket.sid,
                Arc::new(changed),
                ticket.iat,
                Duration::from_secs(3600),
            )
            .await
            .unwrap();
        assert_eq!(
            name(&s.check(&v, now).await).as_deref(),
            Some("Alice Changed")
        );
        // A memory store's answer stands a second at most; a removal ends it at once.
        let kept_until = kept.loaded.load().as_ref().map(|l| l.until).unwrap();
        assert!(
            kept_until <= now + 1,
            "a memory answer stands a second at most"
        );
        s.store.remove(&ticket.sid).await.unwrap();
        assert!(matches!(
            s.check(&v, now).await,
            Check::Rejected(Rejection::Unknown)
        ));
        assert!(matches!(
            s.check(&v, kept_until).await,
            Check::Rejected(Rejection::Unknown)
        ));
    }

    #[tokio::test]
    async fn a_provider_s_own_timers_bound_its_sessions() {
        let mut c = cfg(StoreKind::Memory);
        let own = Timers {
            max_lifetime: Duration::from_secs(7200),
            idle_timeout: Duration::from_secs(120),
            ..c.default_timers()
        };
        c.lifecycle.providers = vec![("p".into(), own)];
        assert_eq!(c.longest_lifetime(), Duration::from_secs(7200));
        let s = Sessions::new(c).unwrap();
        let v = s.create(alice()).await.unwrap();
        let other = s
            .create(Identity {
                provider: "q".into(),
                ..alice()
            })
            .await
            .unwrap();
        let now = now_secs();
        // Past the default lifetime (3600 s), within its own (7200 s); idle past its own 120 s.
        let Check::Valid {
            refreshed: Some(renewed),
            ..
        } = s.check(&v, now + 100).await
        else {
            panic!("valid within its own idle timeout");
        };
        assert!(matches!(
            s.check(&v, now + 130).await,
            Check::Rejected(Rejection::Idle)
        ));
        assert!(matches!(
            s.check(&renewed, now + 200).await,
            Check::Valid { .. }
        ));
        // The other provider's session keeps session's defaults (idle 600 s).
        assert!(matches!(
            s.check(&other, now + 300).await,
            Check::Valid { .. }
        ));
        // The identity records when the IdP vouched for it.
        let Check::Valid { identity, held, .. } = s.check(&other, now).await else {
            panic!("valid");
        };
        assert!(identity.checked_at >= now.saturating_sub(1) && identity.checked_at <= now + 1);
        assert_eq!(held.exp - held.iat, 3600);
        // The IdP's own session (SAML SessionNotOnOrAfter) ends this one sooner.
        let bounded = s
            .create(Identity {
                provider: "q".into(),
                more: crate::identity::Rare {
                    session_not_after: now + 90,
                    ..Default::default()
                }
                .into(),
                ..alice()
            })
            .await
            .unwrap();
        assert!(matches!(
            s.check(&bounded, now + 80).await,
            Check::Valid { .. }
        ));
        assert!(matches!(
            s.check(&bounded, now + 91).await,
            Check::Rejected(Rejection::Expired)
        ));
    }
}
