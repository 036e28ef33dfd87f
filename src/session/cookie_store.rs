//! The cookie store: the identity travels in the sealed ticket, so the store holds no
//! sessions, only what a cookie cannot say about itself: that it was revoked. Revocations
//! are this process's (a shared list is the Redis store's job).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::kept::LocalKept;
use super::once::LocalOnce;
use super::revocations::Revocations;
use super::store::{SessionInfo, SessionStore, StoreError};
use crate::identity::Identity;

pub struct CookieStore {
    revocations: Revocations,
    once: LocalOnce,
    locks: LocalKept,
}

impl CookieStore {
    pub fn new(max_lifetime: Duration) -> Self {
        Self {
            revocations: Revocations::new(max_lifetime),
            once: LocalOnce::default(),
            locks: LocalKept::new(1),
        }
    }
}

#[async_trait]
impl SessionStore for CookieStore {
    fn kind(&self) -> &'static str {
        "cookie"
    }

    fn keeps_identities(&self) -> bool {
        false
    }

    async fn load(&self, _sid: &str) -> Result<Option<Arc<Identity>>, StoreError> {
        Ok(None)
    }

    async fn save(&self, _: &str, _: Arc<Identity>, _: u64, _: Duration) -> Result<(), StoreError> {
        Err(StoreError::Unsupported(
            "cookie",
            "hold identities (they travel in the ticket)",
        ))
    }

    async fn remove(&self, _sid: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn revoke(&self, sid: &str) -> Result<Option<Arc<Identity>>, StoreError> {
        self.revocations.revoke(sid);
        Ok(None)
    }

    async fn revoke_user(&self, provider: &str, user: &str, now: u64) -> Result<u64, StoreError> {
        self.revocations.revoke_user(provider, user, now);
        Ok(0)
    }

    async fn end_by_idp(
        &self,
        provider: &str,
        name_id: &str,
        session_indexes: &[String],
        now: u64,
    ) -> Result<(), StoreError> {
        self.revocations
            .end_by_idp(provider, name_id, session_indexes, now);
        Ok(())
    }

    async fn first_use(&self, scope: &str, id: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.once
            .first_use(scope, id, ttl)
            .map_err(|full| StoreError::Unavailable(full.to_string()))
    }

    async fn lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.locks.lock(name, owner, ttl))
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        self.locks.unlock(name, owner);
        Ok(())
    }

    async fn sessions_of(&self, _: &str, _: &str) -> Result<Vec<SessionInfo>, StoreError> {
        Err(StoreError::Unsupported(
            "cookie",
            "list sessions (it holds none)",
        ))
    }

    fn is_revoked(&self, sid: &str) -> bool {
        self.revocations.is_revoked(sid)
    }

    fn revocation_generation(&self) -> u64 {
        self.revocations.generation()
    }

    fn is_ended(&self, identity: &Identity, issued: u64) -> bool {
        self.revocations.is_ended(identity, issued)
    }
}
