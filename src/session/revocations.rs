//! The revocation lists a store keeps in this process: revoked session ids, users whose
//! sessions issued until a time are void, and sessions ended by their IdP. Entries live as
//! long as a session can (`session.lifetime`), then could not matter any more.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use super::store::WriteCount;
use crate::identity::Identity;

type Hasher = ahash::RandomState;

pub(crate) struct Revocations {
    sids: Cache<String, (), Hasher>,
    /// Counts the ids revoked here, raised after each is on `sids`: a session found not
    /// revoked while it read `n` is still not revoked while it reads `n` (see `generation`).
    revoked: WriteCount,
    /// (provider, user) → sessions issued until then are void.
    users: Cache<(Arc<str>, String), u64, Hasher>,
    /// (provider, NameID, SessionIndex or "") → sessions of that subject issued until then.
    by_idp: Cache<(Arc<str>, String, String), u64, Hasher>,
    /// Set once a user's sessions were ended: until then the hot path skips that lookup.
    any_user: AtomicBool,
    /// Set once an IdP ended a session; `any_by_index` once it named only the index (an
    /// OpenID logout token with `sid` alone). Until then the hot path skips those lookups.
    any_by_idp: AtomicBool,
    any_by_index: AtomicBool,
}

impl Revocations {
    pub(crate) fn new(lifetime: Duration) -> Self {
        Self {
            sids: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(lifetime)
                .build_with_hasher(Hasher::new()),
            revoked: WriteCount::default(),
            users: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(lifetime)
                .build_with_hasher(Hasher::new()),
            by_idp: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(lifetime)
                .build_with_hasher(Hasher::new()),
            any_user: AtomicBool::new(false),
            any_by_idp: AtomicBool::new(false),
            any_by_index: AtomicBool::new(false),
        }
    }

    pub(crate) fn revoke(&self, sid: &str) {
        self.sids.insert(sid.to_string(), ());
        // After the insert: whoever reads the new count finds the id on the list.
        self.revoked.wrote();
    }

    /// Changes with every id revoked here (and only an id revoked here turns `is_revoked`
    /// true: entries leave the list only by expiring). Read it before `is_revoked`: an id not
    /// revoked then stays not revoked for as long as this reads the same.
    pub(crate) fn generation(&self) -> u64 {
        self.revoked.get()
    }

    pub(crate) fn is_revoked(&self, sid: &str) -> bool {
        self.sids.contains_key(sid)
    }

    pub(crate) fn revoke_user(&self, provider: &str, user: &str, now: u64) {
        self.users
            .insert((crate::identity::shared(provider), user.to_string()), now);
        self.any_user.store(true, Ordering::Release);
    }

    pub(crate) fn end_by_idp(
        &self,
        provider: &str,
        name_id: &str,
        session_indexes: &[String],
        now: u64,
    ) {
        let provider: Arc<str> = crate::identity::shared(provider);
        let all = [String::new()];
        let keys = if session_indexes.is_empty() {
            &all[..]
        } else {
            session_indexes
        };
        for index in keys {
            self.by_idp
                .insert((provider.clone(), name_id.to_string(), index.clone()), now);
        }
        if name_id.is_empty() {
            self.any_by_index.store(true, Ordering::Release);
        }
        self.any_by_idp.store(true, Ordering::Release);
    }

    pub(crate) fn is_ended(&self, identity: &Identity, issued: u64) -> bool {
        let user_ended = self.any_user.load(Ordering::Acquire)
            && self
                .users
                .get(&(identity.provider.clone(), identity.user.to_string()))
                .is_some_and(|at| issued <= at);
        user_ended || (self.any_by_idp.load(Ordering::Acquire) && self.idp_ended(identity, issued))
    }

    /// The session's IdP session was ended (by its name, its index, or both) after `issued`.
    fn idp_ended(&self, identity: &Identity, issued: u64) -> bool {
        let index = identity.session_index.as_deref().unwrap_or("");
        let ended = |name_id: &str, index: &str| {
            self.by_idp
                .get(&(
                    identity.provider.clone(),
                    name_id.to_string(),
                    index.to_string(),
                ))
                .is_some_and(|at| issued <= at)
        };
        if !index.is_empty() && self.any_by_index.load(Ordering::Acquire) && ended("", index) {
            return true;
        }
        let Some(name_id) = &identity.name_id else {
            return false;
        };
        ended(name_id, "") || (!index.is_empty() && ended(name_id, index))
    }
}
