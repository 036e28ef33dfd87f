//! Sessions: sealed cookies and the server-side store.
//!
//! Every cookie the gateway sets is sealed with AES-256-GCM (cookie's `PrivateJar`, key derived
//! by HKDF from `session.secret`; the cookie's *name* is the associated data, so a value sealed
//! for one cookie cannot be replayed as another). The session cookie carries a `Ticket`:
//! session id, issued-at, absolute expiry, last-seen, and — with the `cookie` store — the
//! identity itself. With the `memory` store the identity stays server-side, keyed by the id.
//! A tampered, foreign, expired, idle or revoked cookie is simply "no session".

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use cookie::{Cookie, CookieJar, Key, SameSite};
use moka::sync::Cache;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::{SessionConfig, StoreKind};
use crate::identity::Identity;

/// Browsers drop cookies over ~4 KB; stay clear of that with name and attributes.
pub const MAX_COOKIE_VALUE: usize = 3800;

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

/// Seals and opens cookie values.
#[derive(Clone)]
pub struct Sealer {
    key: Key,
}

impl Sealer {
    /// `secret` must be at least 32 bytes (the config check enforces it).
    pub fn new(secret: &[u8]) -> Option<Self> {
        (secret.len() >= 32).then(|| Self {
            key: Key::derive_from(secret),
        })
    }

    pub fn seal<T: Serialize>(&self, name: &str, value: &T) -> Option<String> {
        let json = serde_json::to_string(value).ok()?;
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key)
            .add(Cookie::new(name.to_string(), json));
        jar.get(name).map(|c| c.value().to_string())
    }

    pub fn open<T: DeserializeOwned>(&self, name: &str, sealed: &str) -> Option<T> {
        if sealed.len() > MAX_COOKIE_VALUE * 2 {
            return None;
        }
        let jar = CookieJar::new();
        let c = jar
            .private(&self.key)
            .decrypt(Cookie::new(name.to_string(), sealed.to_string()))?;
        serde_json::from_str(c.value()).ok()
    }
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Identity>,
}

const TICKET_VERSION: u8 = 1;

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
    },
    Rejected(Rejection),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

/// Server-side session storage. The in-memory store lives here; a shared one (Redis) joins
/// behind the same trait and must pass the same conformance suite (tests/session_store.rs).
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn load(&self, sid: &str) -> Result<Option<Arc<Identity>>, StoreError>;
    async fn save(
        &self,
        sid: &str,
        identity: Arc<Identity>,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    async fn remove(&self, sid: &str) -> Result<(), StoreError>;
    /// How many sessions the store holds, where it can tell cheaply (for a gauge).
    fn len_hint(&self) -> Option<u64> {
        None
    }
}

/// In-process store (moka): bounded, entries expire at the session's absolute expiry.
pub struct MemoryStore {
    cache: Cache<SidKey, (Arc<Identity>, u64)>,
}

/// A session id as a key held inline (ids are 24 characters): no string allocated per
/// session besides the one moka makes for every key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct SidKey {
    len: u8,
    bytes: [u8; 32],
}

impl SidKey {
    /// None for an id longer than any this gateway makes (such an id is never stored).
    fn new(sid: &str) -> Option<Self> {
        let len = u8::try_from(sid.len()).ok().filter(|&n| n <= 32)?;
        let mut bytes = [0u8; 32];
        bytes[..sid.len()].copy_from_slice(sid.as_bytes());
        Some(SidKey { len, bytes })
    }
}

impl MemoryStore {
    pub fn new(max_sessions: u64, max_lifetime: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(max_sessions)
                .time_to_live(max_lifetime)
                .build(),
        }
    }

    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load(&self, sid: &str) -> Result<Option<Arc<Identity>>, StoreError> {
        let Some(key) = SidKey::new(sid) else {
            return Ok(None);
        };
        Ok(self
            .cache
            .get(&key)
            .filter(|(_, exp)| *exp > now_secs())
            .map(|(id, _)| id))
    }

    async fn save(
        &self,
        sid: &str,
        identity: Arc<Identity>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = SidKey::new(sid).ok_or_else(|| {
            StoreError::Unavailable(format!("session id of {} bytes is too long", sid.len()))
        })?;
        self.cache
            .insert(key, (identity, now_secs() + ttl.as_secs()));
        Ok(())
    }

    async fn remove(&self, sid: &str) -> Result<(), StoreError> {
        if let Some(key) = SidKey::new(sid) {
            self.cache.invalidate(&key);
        }
        Ok(())
    }

    fn len_hint(&self) -> Option<u64> {
        // moka counts lazily; settle pending inserts first (called per scrape, not per request).
        self.cache.run_pending_tasks();
        Some(self.cache.entry_count())
    }
}

/// The session manager the proxy uses.
pub struct Sessions {
    pub cfg: SessionConfig,
    sealer: Sealer,
    store: Option<Arc<dyn SessionStore>>,
    /// Session ids signed out in this process, kept until their tickets would expire anyway,
    /// so a copied cookie stops working after sign-out even with the cookie store.
    revoked: Cache<String, ()>,
    /// Sessions ended by their IdP (SAML logout), by (provider, NameID, SessionIndex or "")
    /// → when: a session of that subject issued until then is void, wherever its cookie is.
    ended_by_idp: Cache<(Arc<str>, String, String), u64>,
    /// Set once anything was ended by an IdP: until then the hot path skips the lookup.
    any_ended_by_idp: std::sync::atomic::AtomicBool,
    /// Cookie values already opened, by their exact sealed text: the hot path. Opening is
    /// deterministic (same text, same ticket), so a hit equals decrypting again; expiry, idle
    /// time and revocation are still checked on every request. Only values that opened are
    /// inserted, so garbage cookies cannot fill it.
    opened: Cache<String, Arc<Opened>, ahash::RandomState>,
}

/// A ticket as opened, with its identity ready to share.
struct Opened {
    sid: String,
    iat: u64,
    exp: u64,
    seen: u64,
    /// The identity (cookie store); `None` with a server-side store.
    identity: Option<Arc<Identity>>,
    /// The re-issued value (idle clock reset) and when it was sealed: every request with this
    /// old value in the same refresh window gets the same new one, sealed once.
    renewed: std::sync::Mutex<Option<(u64, String)>>,
}

/// How long an opened cookie is remembered, and how many bytes of them at most (weighed by
/// the cookie text and the identity it carries).
const OPENED_TTL: Duration = Duration::from_secs(300);
const OPENED_MAX_BYTES: u64 = 32 * 1024 * 1024;

impl Sessions {
    pub fn new(cfg: SessionConfig) -> Option<Self> {
        let sealer = Sealer::new(cfg.secret.0.as_bytes())?;
        let store: Option<Arc<dyn SessionStore>> = match cfg.store {
            StoreKind::Cookie => None,
            StoreKind::Memory => Some(Arc::new(MemoryStore::new(cfg.max_sessions, cfg.lifetime))),
        };
        let revoked = Cache::builder()
            .max_capacity(1_000_000)
            .time_to_live(cfg.lifetime)
            .build();
        let ended_by_idp = Cache::builder()
            .max_capacity(1_000_000)
            .time_to_live(cfg.lifetime)
            .build();
        Some(Self {
            cfg,
            sealer,
            store,
            revoked,
            ended_by_idp,
            any_ended_by_idp: Default::default(),
            opened: Cache::builder()
                .max_capacity(OPENED_MAX_BYTES)
                .weigher(|k: &String, v: &Arc<Opened>| {
                    let id = v.identity.as_ref().map_or(0, |i| {
                        // The struct, the lists (kept joined) and the other strings.
                        320 + i.groups.joined().len()
                            + i.roles.joined().len()
                            + i.user.len()
                            + i.email.as_ref().map_or(0, String::len)
                            + i.name.as_ref().map_or(0, String::len)
                    });
                    u32::try_from(k.len() + 160 + id).unwrap_or(u32::MAX)
                })
                .time_to_live(OPENED_TTL)
                .build_with_hasher(ahash::RandomState::new()),
        })
    }

    /// Sessions held server-side (None with the cookie store).
    pub fn stored_sessions(&self) -> Option<u64> {
        self.store.as_ref().and_then(|s| s.len_hint())
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Starts a session; returns the sealed cookie value.
    pub async fn create(&self, identity: Identity) -> Result<String, CreateError> {
        let now = now_secs();
        let sid = random_token(18);
        let mut ticket = Ticket {
            v: TICKET_VERSION,
            sid: sid.clone(),
            iat: now,
            exp: now + self.cfg.lifetime.as_secs(),
            seen: now,
            id: None,
        };
        match &self.store {
            Some(store) => store
                .save(&sid, Arc::new(identity), self.cfg.lifetime)
                .await
                .map_err(CreateError::Store)?,
            None => ticket.id = Some(identity),
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

    /// Checks a presented cookie value at time `now` (seconds).
    pub async fn check(&self, sealed: &str, now: u64) -> Check {
        // With a server-side store the ticket is small and quick to open, and the memory is
        // better spent on the sessions themselves: only the cookie store remembers openings.
        let remember = self.store.is_none();
        let cached = if remember {
            self.opened.get(sealed)
        } else {
            None
        };
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
                let opened = Arc::new(Opened {
                    sid: t.sid,
                    iat: t.iat,
                    exp: t.exp,
                    seen: t.seen,
                    identity: t.id.map(Arc::new),
                    renewed: std::sync::Mutex::new(None),
                });
                if remember {
                    self.opened.insert(sealed.to_string(), opened.clone());
                }
                opened
            }
        };
        if now >= ticket.exp || ticket.iat > now + 300 {
            return Check::Rejected(Rejection::Expired);
        }
        let idle = self.cfg.idle_timeout.as_secs();
        if now.saturating_sub(ticket.seen) >= idle {
            return Check::Rejected(Rejection::Idle);
        }
        if self.revoked.contains_key(&ticket.sid) {
            return Check::Rejected(Rejection::Revoked);
        }
        let identity = match (&self.store, &ticket.identity) {
            (None, Some(id)) => id.clone(),
            (None, None) => return Check::Rejected(Rejection::Invalid),
            (Some(store), _) => match store.load(&ticket.sid).await {
                Ok(Some(id)) => id,
                Ok(None) => return Check::Rejected(Rejection::Unknown),
                Err(e) => {
                    log::warn!("session store: {e}");
                    return Check::Rejected(Rejection::StoreError);
                }
            },
        };
        if self.ended_by_idp(&identity, ticket.iat) {
            return Check::Rejected(Rejection::Revoked);
        }
        // Re-issue the ticket (resetting the idle clock) at most once a minute, or sooner
        // for short idle timeouts.
        let refresh_after = (idle / 4).clamp(1, 60);
        let refreshed = if now.saturating_sub(ticket.seen) >= refresh_after {
            let mut memo = ticket.renewed.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, v)) = memo.as_ref() {
                if now.saturating_sub(*at) < refresh_after && *at <= now {
                    return Check::Valid {
                        identity,
                        refreshed: Some(v.clone()),
                    };
                }
            }
            let t = Ticket {
                v: TICKET_VERSION,
                sid: ticket.sid.clone(),
                iat: ticket.iat,
                exp: ticket.exp,
                seen: now,
                id: match &self.store {
                    None => Some(identity.as_ref().clone()),
                    Some(_) => None,
                },
            };
            let sealed = self.sealer.seal(&self.cfg.cookie_name, &t);
            *memo = sealed.clone().map(|v| (now, v));
            sealed
        } else {
            None
        };
        Check::Valid {
            identity,
            refreshed,
        }
    }

    /// The IdP ended the sessions of `name_id` with `provider` (SAML logout): those with one
    /// of `session_indexes`, or all of them when none is given, issued until `now`.
    pub fn end_by_idp(&self, provider: &str, name_id: &str, session_indexes: &[String], now: u64) {
        let provider: Arc<str> = crate::identity::shared(provider);
        let all = [String::new()];
        let keys = if session_indexes.is_empty() {
            &all[..]
        } else {
            session_indexes
        };
        for index in keys {
            self.ended_by_idp
                .insert((provider.clone(), name_id.to_string(), index.clone()), now);
        }
        self.any_ended_by_idp
            .store(true, std::sync::atomic::Ordering::Release);
    }

    fn ended_by_idp(&self, identity: &Identity, issued: u64) -> bool {
        if !self
            .any_ended_by_idp
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return false;
        }
        let Some(name_id) = &identity.name_id else {
            return false;
        };
        let index = identity.session_index.clone().unwrap_or_default();
        let ended = |index: String| {
            self.ended_by_idp
                .get(&(identity.provider.clone(), name_id.clone(), index))
                .is_some_and(|at| issued <= at)
        };
        ended(String::new()) || (!index.is_empty() && ended(index))
    }

    /// Ends the session a cookie names if it is valid and its identity passes `which`.
    pub async fn revoke_if(
        &self,
        sealed: &str,
        which: impl Fn(&Identity) -> bool,
    ) -> Option<Identity> {
        match self.check(sealed, now_secs()).await {
            Check::Valid { identity, .. } if which(&identity) => self.revoke(sealed).await,
            _ => None,
        }
    }

    /// Ends the session a cookie names, wherever it lives. Unreadable cookies are ignored.
    pub async fn revoke(&self, sealed: &str) -> Option<Identity> {
        let ticket = self.sealer.open::<Ticket>(&self.cfg.cookie_name, sealed)?;
        self.revoked.insert(ticket.sid.clone(), ());
        let mut identity = ticket.id.clone();
        if let Some(store) = &self.store {
            if identity.is_none() {
                identity = store
                    .load(&ticket.sid)
                    .await
                    .ok()
                    .flatten()
                    .map(|a| (*a).clone());
            }
            if let Err(e) = store.remove(&ticket.sid).await {
                log::warn!("session store: could not remove a signed-out session: {e}");
            }
        }
        identity
    }

    /// `Set-Cookie` value for a session cookie.
    pub fn set_cookie(&self, value: &str) -> String {
        self.cookie(&self.cfg.cookie_name, value, "/", Some(self.cfg.lifetime))
    }

    /// `Set-Cookie` value that deletes the session cookie.
    pub fn clear_cookie(&self) -> String {
        self.cookie(&self.cfg.cookie_name, "", "/", Some(Duration::ZERO))
    }

    /// A cookie that must come back on a cross-site POST (SAML's ACS is POSTed from the IdP's
    /// origin, where SameSite=Lax cookies are not sent): SameSite=None, which browsers accept
    /// only with Secure. Over plain http (demo, tests) it stays Lax.
    pub fn cross_site_cookie(
        &self,
        name: &str,
        value: &str,
        path: &str,
        max_age: Option<Duration>,
    ) -> String {
        let mut c = Cookie::parse(self.cookie(name, value, path, max_age)).map(|c| c.into_owned());
        match (&mut c, self.cfg.secure) {
            (Ok(c), true) => {
                c.set_same_site(SameSite::None);
                c.to_string()
            }
            _ => self.cookie(name, value, path, max_age),
        }
    }

    /// Builds a `Set-Cookie` value with the gateway's attributes (HttpOnly, SameSite=Lax,
    /// Secure as configured).
    pub fn cookie(&self, name: &str, value: &str, path: &str, max_age: Option<Duration>) -> String {
        let mut c = Cookie::new(name.to_string(), value.to_string());
        c.set_path(path.to_string());
        c.set_http_only(true);
        c.set_secure(self.cfg.secure);
        c.set_same_site(SameSite::Lax);
        if let Some(age) = max_age {
            c.set_max_age(cookie::time::Duration::seconds(age.as_secs() as i64));
        }
        c.to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("could not seal the session cookie")]
    Seal,
    #[error(
        "the identity is too large for a cookie ({0} bytes sealed); set session.store: memory"
    )]
    TooLarge(usize),
    #[error("{0}")]
    Store(StoreError),
}

/// Finds a cookie's value in a `Cookie` request header without allocating.
/// Every value of cookie `name` in one `Cookie` header, in order (a sibling subdomain may
/// plant a cookie of the same name: each is tried, not just the first).
pub fn all_cookies<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> {
    header.split(';').filter_map(move |pair| {
        let (n, v) = pair.split_once('=')?;
        (n.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

pub fn find_cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (n, v) = pair.split_once('=')?;
        (n.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn cfg(store: StoreKind) -> SessionConfig {
        SessionConfig {
            cookie_name: "sess".into(),
            lifetime: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(600),
            secure: true,
            secret: Secret("k".repeat(32)),
            store,
            max_sessions: 100,
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
                } => {
                    assert_eq!(identity.user, "alice");
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
                Check::Valid { identity, .. } => assert_eq!(identity.user, "alice"),
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

    #[test]
    fn cross_site_cookie_is_samesite_none_only_when_secure() {
        let secure = Sessions::new(cfg(StoreKind::Cookie)).unwrap();
        let c = secure.cross_site_cookie("n", "v", "/p/", Some(Duration::from_secs(60)));
        assert!(
            c.contains("SameSite=None") && c.contains("Secure") && c.contains("HttpOnly"),
            "{c}"
        );
        let mut plain = cfg(StoreKind::Cookie);
        plain.secure = false;
        let c = Sessions::new(plain)
            .unwrap()
            .cross_site_cookie("n", "v", "/p/", None);
        assert!(c.contains("SameSite=Lax") && !c.contains("Secure"), "{c}");
    }

    #[test]
    fn name_is_bound_into_the_seal() {
        let sealer = Sealer::new(&[7u8; 32]).unwrap();
        let v = sealer.seal("a", &"payload").unwrap();
        assert_eq!(sealer.open::<String>("a", &v).as_deref(), Some("payload"));
        assert_eq!(sealer.open::<String>("b", &v), None);
    }

    #[test]
    fn finds_cookies() {
        assert_eq!(find_cookie("a=1; sess=xyz; b=2", "sess"), Some("xyz"));
        assert_eq!(find_cookie("a=1;sess=\"q\"", "sess"), Some("q"));
        assert_eq!(find_cookie("xsess=1", "sess"), None);
        let all: Vec<_> = all_cookies("sess=bad; a=1; sess=good", "sess").collect();
        assert_eq!(all, ["bad", "good"]);
    }
}
