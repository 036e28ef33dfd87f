//! The revocation lists a store keeps in this process: revoked session ids, users whose
//! sessions issued until a time are void, and sessions ended by their IdP. Entries live as
//! long as a session can (`session.lifetime`), then could not matter any more.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::identity::Identity;

pub(crate) struct Revocations {
    sids: Cache<String, ()>,
    /// (provider, user) → sessions issued until then are void.
    users: Cache<(Arc<str>, String), u64>,
    /// (provider, NameID, SessionIndex or "") → sessions of that subject issued until then.
    by_idp: Cache<(Arc<str>, String, String), u64>,
    /// Set once a user or an IdP ended anything: until then the hot path skips the lookups.
    any_ended: AtomicBool,
}

impl Revocations {
    pub(crate) fn new(lifetime: Duration) -> Self {
        Self {
            sids: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(lifetime)
                .build(),
            users: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(lifetime)
                .build(),
            by_idp: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(lifetime)
                .build(),
            any_ended: AtomicBool::new(false),
        }
    }

    pub(crate) fn revoke(&self, sid: &str) {
        self.sids.insert(sid.to_string(), ());
    }

    pub(crate) fn is_revoked(&self, sid: &str) -> bool {
        self.sids.contains_key(sid)
    }

    pub(crate) fn revoke_user(&self, provider: &str, user: &str, now: u64) {
        self.users
            .insert((crate::identity::shared(provider), user.to_string()), now);
        self.any_ended.store(true, Ordering::Release);
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
        self.any_ended.store(true, Ordering::Release);
    }

    pub(crate) fn is_ended(&self, identity: &Identity, issued: u64) -> bool {
        if !self.any_ended.load(Ordering::Acquire) {
            return false;
        }
        let user_ended = self
            .users
            .get(&(identity.provider.clone(), identity.user.clone()))
            .is_some_and(|at| issued <= at);
        if user_ended {
            return true;
        }
        let index = identity.session_index.clone().unwrap_or_default();
        let ended = |name_id: &str, index: &str| {
            self.by_idp
                .get(&(
                    identity.provider.clone(),
                    name_id.to_string(),
                    index.to_string(),
                ))
                .is_some_and(|at| issued <= at)
        };
        // An IdP session ended by index alone (an OpenID logout token with only `sid`).
        if !index.is_empty() && ended("", &index) {
            return true;
        }
        let Some(name_id) = &identity.name_id else {
            return false;
        };
        ended(name_id, "") || (!index.is_empty() && ended(name_id, &index))
    }
}
