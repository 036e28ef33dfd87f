//! The revocation list every replica shares: written to Redis, pushed on its channel so every
//! replica's copy (`Revocations`, what the hot path reads) learns it at once, and read back
//! from Redis when a session is first seen or its confirmation is due, so a replica that
//! missed a push (started later, or its subscription dropped) still refuses it.

use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use serde::{Deserialize, Serialize};

use super::link::Link;
use super::{Keys, RedisConfig};
use crate::identity::Identity;
use crate::session::revocations::Revocations;
use crate::session::StoreError;

pub(crate) struct SharedRevocations {
    pub(crate) link: Arc<Link>,
    /// This process's copy, fed by its own writes and by the pushes of every replica.
    pub(crate) local: Arc<Revocations>,
    lifetime: Duration,
}

/// One push on the channel.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
enum Push {
    Sid {
        sid: String,
    },
    User {
        p: String,
        u: String,
        at: u64,
    },
    Idp {
        p: String,
        n: String,
        i: Vec<String>,
        at: u64,
    },
}

fn apply(local: &Revocations, text: &str) {
    match serde_json::from_str::<Push>(text) {
        Ok(Push::Sid { sid }) => local.revoke(&sid),
        Ok(Push::User { p, u, at }) => local.revoke_user(&p, &u, at),
        Ok(Push::Idp { p, n, i, at }) => local.end_by_idp(&p, &n, &i, at),
        Err(e) => {
            log::warn!("session store: ignored a malformed push on the revocation channel: {e}")
        }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs().max(1)).unwrap_or(i64::MAX)
}

impl SharedRevocations {
    pub(crate) fn connect(cfg: &RedisConfig, lifetime: Duration) -> Result<Self, String> {
        let local = Arc::new(Revocations::new(lifetime));
        let feed = local.clone();
        let link = Link::connect(cfg, Arc::new(move |text: &str| apply(&feed, text)))?;
        Ok(Self {
            link,
            local,
            lifetime,
        })
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.link.keys
    }

    /// Writes each of `keys` `= value` (for a session's lifetime), then pushes `push`, once,
    /// to every replica.
    async fn record(
        &self,
        keys: Vec<String>,
        value: String,
        push: &Push,
    ) -> Result<(), StoreError> {
        let channel = self.keys().channel();
        let message = serde_json::to_string(push).unwrap_or_default();
        let ttl = secs(self.lifetime);
        self.link
            .run("revocation write", move |r| async move {
                for key in keys {
                    r.set::<(), _, _>(key, value.as_str(), Some(Expiration::EX(ttl)), None, false)
                        .await?;
                }
                r.next().publish::<(), _, _>(channel, message).await
            })
            .await
    }

    pub(crate) async fn revoke(&self, sid: &str) -> Result<(), StoreError> {
        self.local.revoke(sid);
        let push = Push::Sid { sid: sid.into() };
        self.record(vec![self.keys().revoked(sid)], "1".into(), &push)
            .await
    }

    pub(crate) async fn revoke_user(
        &self,
        provider: &str,
        user: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        self.local.revoke_user(provider, user, now);
        let push = Push::User {
            p: provider.into(),
            u: user.into(),
            at: now,
        };
        self.record(
            vec![self.keys().user_revoked(provider, user)],
            now.to_string(),
            &push,
        )
        .await
    }

    pub(crate) async fn end_by_idp(
        &self,
        provider: &str,
        name_id: &str,
        session_indexes: &[String],
        now: u64,
    ) -> Result<(), StoreError> {
        self.local
            .end_by_idp(provider, name_id, session_indexes, now);
        let push = Push::Idp {
            p: provider.into(),
            n: name_id.into(),
            i: session_indexes.to_vec(),
            at: now,
        };
        let all = [String::new()];
        let indexes = if session_indexes.is_empty() {
            &all[..]
        } else {
            session_indexes
        };
        let keys = indexes
            .iter()
            .map(|index| self.keys().idp_ended(provider, name_id, index))
            .collect();
        self.record(keys, now.to_string(), &push).await
    }

    /// Asks Redis whether session `sid` of `identity`, issued at `issued`, still stands (its id
    /// not revoked, its user not revoked since, its IdP session not ended); what it learns
    /// goes into this process's copy.
    pub(crate) async fn confirm(
        &self,
        sid: &str,
        identity: &Identity,
        issued: u64,
    ) -> Result<bool, StoreError> {
        let keys = self.keys();
        let sid_key = keys.revoked(sid);
        let user_key = keys.user_revoked(&identity.provider, &identity.user);
        let index = identity.session_index.as_deref().filter(|i| !i.is_empty());
        let mut idp_keys: Vec<String> = Vec::new();
        if let Some(n) = &identity.name_id {
            idp_keys.push(keys.idp_ended(&identity.provider, n, ""));
            if let Some(i) = index {
                idp_keys.push(keys.idp_ended(&identity.provider, n, i));
            }
        }
        // Ended by index alone (an OpenID logout token with only `sid`).
        if let Some(i) = index {
            idp_keys.push(keys.idp_ended(&identity.provider, "", i));
        }
        let (revoked, user_at, idp_at) = self
            .link
            .run("revocation read", move |r| async move {
                let c = r.next();
                let (revoked, user_at) = tokio::join!(
                    c.exists::<u64, _>(sid_key),
                    c.get::<Option<u64>, _>(user_key),
                );
                let mut idp_at = Vec::new();
                for k in idp_keys {
                    idp_at.push(c.get::<Option<u64>, _>(k).await?);
                }
                Ok((revoked? > 0, user_at?, idp_at))
            })
            .await?;
        if revoked {
            self.local.revoke(sid);
            return Ok(false);
        }
        if let Some(at) = user_at.filter(|at| issued <= *at) {
            self.local
                .revoke_user(&identity.provider, &identity.user, at);
            return Ok(false);
        }
        if let Some(at) = idp_at.iter().flatten().max().filter(|at| issued <= **at) {
            // This replica's copy learns it under the session's own index (or name).
            let idx: Vec<String> = index.iter().map(|i| i.to_string()).collect();
            let n = identity.name_id.as_deref().unwrap_or("");
            self.local.end_by_idp(&identity.provider, n, &idx, *at);
            return Ok(false);
        }
        Ok(true)
    }

    /// Marks `id` used in `scope`; `false` if it already was, on any replica. Atomic in Redis
    /// (`SET NX` with an expiry), so two replicas cannot both take it.
    pub(crate) async fn first_use(
        &self,
        scope: &str,
        id: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = self.keys().once(scope, id);
        let ttl = secs(ttl);
        self.link
            .run("single-use check", move |r| async move {
                r.set::<Option<String>, _, _>(
                    key,
                    "1",
                    Some(Expiration::EX(ttl)),
                    Some(SetOptions::NX),
                    false,
                )
                .await
                .map(|set| set.is_some())
            })
            .await
    }
}
