//! Where sessions live: the `SessionStore` trait every store implements, and what it owns.
//!
//! A store keeps the sessions (or, for the cookie store, only what the cookies cannot:
//! revocations) and owns their revocation: one session, every session of a user, and the
//! sessions an IdP ended (SAML logout). `tests/session_store.rs` runs every store through
//! the same conformance suite, with a clock it moves forward.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::identity::Identity;

/// Seconds since the epoch, as the store sees them: the system clock, or a test's.
/// `revocation_generation` of a store that cannot tell: `is_revoked` is asked on every
/// request.
pub const UNKNOWN_GENERATION: u64 = u64::MAX;

/// A count of writes, raised after each write is done: whoever reads the new count finds the
/// write made. It only grows, so what was read while it read `n` stands while it reads `n`.
/// The stores' `load_generation` and the revocation list's generation are made of these.
#[derive(Default)]
pub(crate) struct WriteCount(AtomicU64);

impl WriteCount {
    /// After a write.
    pub(crate) fn wrote(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(super::now_secs)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    #[error("the {0} session store cannot do this: {1}")]
    Unsupported(&'static str, &'static str),
}

/// A stored session, as an admin lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: String,
    /// Absolute expiry, seconds since the epoch.
    pub expires: u64,
}

/// Server-side session storage, revocation and single-use checks: the in-memory and cookie
/// stores (this process only) and Redis (every replica), all through one conformance suite.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// `memory`, `cookie`, ...: for messages.
    fn kind(&self) -> &'static str;
    /// Whether identities live in the store (`true`) or in the cookie's ticket (`false`).
    fn keeps_identities(&self) -> bool {
        true
    }
    async fn load(&self, sid: &str) -> Result<Option<Arc<Identity>>, StoreError>;
    /// What `load` would answer, when it can be answered without waiting (this process's
    /// memory, a fresh cached copy): the hot path, without a boxed future. `None`: ask `load`.
    fn load_now(&self, _sid: &str) -> Option<Option<Arc<Identity>>> {
        None
    }
    /// `load_now`'s answer and until when it stands (seconds) while `load_generation` reads
    /// the same: the session check keeps it beside the opened cookie and asks again only
    /// then. `None`: as `load_now`'s (or a store that cannot say how long).
    fn load_now_until(&self, _sid: &str) -> Option<(Option<Arc<Identity>>, u64)> {
        None
    }
    /// A count that changes whenever an answer of `load_now_until` may stop standing before
    /// its time (any write to the sessions this process holds, a reconnect). Read it before
    /// asking. `UNKNOWN_GENERATION`: answers are not kept.
    fn load_generation(&self) -> u64 {
        UNKNOWN_GENERATION
    }
    /// Stores session `sid`, issued at `issued` (the ticket's issue time: what "sessions
    /// issued until T are void" compares), for `ttl` from then.
    async fn save(
        &self,
        sid: &str,
        identity: Arc<Identity>,
        issued: u64,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    async fn remove(&self, sid: &str) -> Result<(), StoreError>;

    /// Ends one session: its id is void from now on, wherever its cookie is presented.
    /// Returns the identity the store held for it, if it held one.
    async fn revoke(&self, sid: &str) -> Result<Option<Arc<Identity>>, StoreError>;
    /// Ends every session of `user` (with `provider`) issued until `now`; returns how many
    /// stored sessions it removed (the cookie store holds none, and says 0).
    async fn revoke_user(&self, provider: &str, user: &str, now: u64) -> Result<u64, StoreError>;
    /// The IdP ended the sessions of `name_id` (SAML logout): those with one of
    /// `session_indexes`, or all of them when none is given, issued until `now`.
    async fn end_by_idp(
        &self,
        provider: &str,
        name_id: &str,
        session_indexes: &[String],
        now: u64,
    ) -> Result<(), StoreError>;
    /// The stored sessions of `user`.
    async fn sessions_of(&self, provider: &str, user: &str)
        -> Result<Vec<SessionInfo>, StoreError>;

    /// On the hot path, before the identity is known: was this id revoked?
    fn is_revoked(&self, sid: &str) -> bool;
    /// A count that changes whenever `is_revoked` may have turned true for some id (the
    /// revocation list's `generation`): an id found not revoked while this read `n` need not
    /// be asked again while it reads `n`. `UNKNOWN_GENERATION`: ask every time.
    fn revocation_generation(&self) -> u64 {
        UNKNOWN_GENERATION
    }
    /// On the hot path: is this identity's session, issued at `issued`, void (its user
    /// revoked, or ended by its IdP)?
    fn is_ended(&self, identity: &Identity, issued: u64) -> bool;

    /// For stores whose revocation list is shared (Redis) while the identity travels in the
    /// cookie: `confirm_ticket` must be asked on the hot path (it answers from a short cache).
    fn confirms_tickets(&self) -> bool {
        false
    }
    /// Whether the session `sid` of `identity`, issued at `issued`, still stands on the
    /// shared list. Only called when `confirms_tickets()`.
    async fn confirm_ticket(
        &self,
        _sid: &str,
        _identity: &Identity,
        _issued: u64,
    ) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Marks `id` used in `scope` (an OIDC state, a SAML assertion id) for `ttl`; `false`
    /// if it was already used: on this replica, or with a shared store on any replica.
    async fn first_use(&self, scope: &str, id: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Reads session `sid` again from where it is kept, past any cache (a re-check under
    /// its lock must see what another replica wrote).
    async fn reload(&self, sid: &str) -> Result<Option<Arc<Identity>>, StoreError> {
        self.load(sid).await
    }

    /// Keeps `value` under (`kind`, `id`) for `ttl`, replacing what was there in one write:
    /// what a session holds beside its identity (its IdP grant, sealed). Stores that hold no
    /// sessions cannot.
    async fn keep(
        &self,
        _kind: &str,
        _id: &str,
        _value: String,
        _ttl: Duration,
    ) -> Result<(), StoreError> {
        Err(StoreError::Unsupported("cookie", "keep values server-side"))
    }
    /// The value kept under (`kind`, `id`), if any (and not expired).
    async fn kept(&self, _kind: &str, _id: &str) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    async fn forget(&self, _kind: &str, _id: &str) -> Result<(), StoreError> {
        Ok(())
    }
    /// Takes lock `name` for `owner` until `ttl` from now; `false` while another owner holds
    /// it (on this replica, or with a shared store on any replica).
    async fn lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Releases lock `name` if `owner` still holds it.
    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError>;

    /// Shared by every replica (sessions, revocations and single-use checks).
    fn shared(&self) -> bool {
        false
    }
    /// The store answers (`/readyz`; sign-ins are refused with 503 while it does not).
    fn healthy(&self) -> bool {
        true
    }
    /// Commands that failed since start (a counter).
    fn errors(&self) -> u64 {
        0
    }

    /// How many sessions the store holds, where it can tell cheaply (for a gauge).
    fn len_hint(&self) -> Option<u64> {
        None
    }
}
