//! How long a session lasts and what keeps it true: the timers (`max_lifetime`,
//! `idle_timeout`, `recheck_every` with its failure rule) and the IdP grant a session keeps
//! server-side for its re-checks and its sign-out (refresh token, ID token, login hint),
//! sealed at rest under a key derived from the session secret and bound to its session id.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Sessions, StoreError};
use crate::identity::Identity;

/// A session's timers, as `session:` sets them and a provider's `session:` overrides them.
#[derive(Debug, Clone, PartialEq)]
pub struct Timers {
    /// Absolute, counted from the sign-in.
    pub max_lifetime: Duration,
    pub idle_timeout: Duration,
    /// Re-check the identity with the IdP this often (OpenID Connect: a refresh); `None`: never.
    pub recheck_every: Option<Duration>,
    pub on_recheck_failure: OnRecheckFailure,
    /// How long past a due re-check an identity is still used while the IdP cannot be
    /// reached (never after the IdP refused).
    pub recheck_grace: Duration,
}

/// What happens to a session whose IdP stays unreachable past `recheck_grace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRecheckFailure {
    /// The session ends (the user signs in again once the IdP is back).
    Deny,
    /// The last identity the IdP vouched for stays in use (re-checks go on).
    Keep,
}

/// A provider's `session:` block: what it sets, the rest from `session:`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimerOverrides {
    pub max_lifetime: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    /// `Some(None)`: `recheck_every: off`.
    pub recheck_every: Option<Option<Duration>>,
    pub on_recheck_failure: Option<OnRecheckFailure>,
    pub recheck_grace: Option<Duration>,
}

/// `session:`'s re-check defaults and each provider's resolved timers.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifecycle {
    pub recheck_every: Option<Duration>,
    pub on_recheck_failure: OnRecheckFailure,
    pub recheck_grace: Duration,
    /// Providers whose timers differ from `session:`'s, resolved.
    pub providers: Vec<(String, Timers)>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            recheck_every: None,
            on_recheck_failure: OnRecheckFailure::Deny,
            recheck_grace: DEFAULT_RECHECK_GRACE,
            providers: Vec::new(),
        }
    }
}

pub const DEFAULT_RECHECK_GRACE: Duration = Duration::from_secs(15 * 60);

impl super::SessionConfig {
    /// `session:`'s own timers.
    pub fn default_timers(&self) -> Timers {
        Timers {
            max_lifetime: self.lifetime,
            idle_timeout: self.idle_timeout,
            recheck_every: self.lifecycle.recheck_every,
            on_recheck_failure: self.lifecycle.on_recheck_failure,
            recheck_grace: self.lifecycle.recheck_grace,
        }
    }

    /// The timers of `provider`'s sessions.
    pub fn timers(&self, provider: &str) -> Timers {
        self.lifecycle
            .providers
            .iter()
            .find(|(p, _)| p == provider)
            .map_or_else(|| self.default_timers(), |(_, t)| t.clone())
    }

    /// The longest any session may last (cookie lifetimes, how long revocations are kept).
    pub fn longest_lifetime(&self) -> Duration {
        self.lifecycle
            .providers
            .iter()
            .map(|(_, t)| t.max_lifetime)
            .fold(self.lifetime, Duration::max)
    }
}

impl Timers {
    pub fn with(&self, o: &TimerOverrides) -> Timers {
        Timers {
            max_lifetime: o.max_lifetime.unwrap_or(self.max_lifetime),
            idle_timeout: o.idle_timeout.unwrap_or(self.idle_timeout),
            recheck_every: o.recheck_every.unwrap_or(self.recheck_every),
            on_recheck_failure: o.on_recheck_failure.unwrap_or(self.on_recheck_failure),
            recheck_grace: o.recheck_grace.unwrap_or(self.recheck_grace),
        }
    }
}

/// What the IdP gave a session beyond the identity. Never in a cookie; upstream only where a
/// route asks for a token (`pass_id_token`, `pass_access_token`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    #[serde(rename = "rt", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The last ID token, for the RP-initiated logout's `id_token_hint`.
    #[serde(rename = "it", default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Entra's `login_hint` claim, for the logout's `logout_hint`: only in grants of sessions
    /// made before it moved to the identity (`Identity::login_hint`), read as a fallback.
    #[serde(rename = "lh", default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
}

impl Grant {
    pub fn is_empty(&self) -> bool {
        self.refresh_token.is_none() && self.id_token.is_none() && self.login_hint.is_none()
    }
}

/// The largest sealed grant opened (Entra's tokens run to a few KB each).
const MAX_SEALED_GRANT: usize = 64 * 1024;
const GRANT: &str = "grant";

/// A valid session as `Sessions::check` found it: what a re-check needs to renew or end it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub sid: Arc<str>,
    pub iat: u64,
    pub exp: u64,
}

impl Sessions {
    /// Keeps `grant` beside session `sid` until `exp`, sealed and bound to that id.
    pub(super) async fn keep_grant(
        &self,
        sid: &str,
        grant: &Grant,
        exp: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        if grant.is_empty() || !self.store.keeps_identities() {
            return Ok(());
        }
        let sealed = self
            .sealer
            .seal(&format!("{GRANT}.{sid}"), grant)
            .ok_or_else(|| StoreError::Unavailable("the grant could not be sealed".into()))?;
        let ttl = Duration::from_secs(exp.saturating_sub(now).max(1));
        self.store.keep(GRANT, sid, sealed, ttl).await
    }

    /// The grant kept beside session `sid` (`None`: none kept, or it does not open).
    pub async fn grant(&self, sid: &str) -> Result<Option<Grant>, StoreError> {
        if !self.store.keeps_identities() {
            return Ok(None);
        }
        let Some(sealed) = self.store.kept(GRANT, sid).await? else {
            return Ok(None);
        };
        if sealed.len() > MAX_SEALED_GRANT {
            return Ok(None);
        }
        Ok(self.sealer.open_any(&format!("{GRANT}.{sid}"), &sealed))
    }

    /// The grant kept beside the session a cookie names (store errors: none).
    pub async fn grant_of(&self, sealed: &str) -> Option<Grant> {
        let ticket = self
            .sealer
            .open::<super::Ticket>(&self.cfg.cookie_name, sealed)?;
        match self.grant(&ticket.sid).await {
            Ok(g) => g,
            Err(e) => {
                log::warn!(
                    "session store: the sign-out goes on without the session's ID token: {e}"
                );
                None
            }
        }
    }

    /// The grant of session `held` is now `grant` (a refresh token rotated outside a
    /// re-check: `pass_access_token`).
    pub async fn replace_grant(
        &self,
        held: &Held,
        grant: &Grant,
        now: u64,
    ) -> Result<(), StoreError> {
        self.keep_grant(&held.sid, grant, held.exp, now).await
    }

    /// A re-check vouched for the session again: its identity (checked at `now`) and its
    /// grant replace the old ones, each in one write; the session keeps its expiry.
    pub async fn renew(
        &self,
        held: &Held,
        mut identity: Identity,
        grant: &Grant,
        now: u64,
    ) -> Result<Arc<Identity>, StoreError> {
        identity.checked_at = now;
        let identity = Arc::new(identity);
        let ttl = Duration::from_secs(held.exp.saturating_sub(held.iat));
        self.store
            .save(&held.sid, identity.clone(), held.iat, ttl)
            .await?;
        self.keep_grant(&held.sid, grant, held.exp, now).await?;
        Ok(identity)
    }

    /// A step-up proved more about the user of session `held`: its identity becomes
    /// `identity` (and its grant `grant`, when the sign-in gave one), keeping its id, issue
    /// time and expiry. With the stores the cookie stays as it is (`None`); with the cookie
    /// store the identity travels in it, so the new ticket is returned to set.
    pub async fn upgrade(
        &self,
        held: &Held,
        mut identity: Identity,
        grant: Option<&Grant>,
        now: u64,
    ) -> Result<Option<String>, StoreError> {
        identity.checked_at = now;
        if !self.store.keeps_identities() {
            let ticket = super::Ticket {
                v: super::TICKET_VERSION,
                sid: held.sid.to_string(),
                iat: held.iat,
                exp: held.exp,
                seen: now,
                idle: self.cfg.timers(&identity.provider).idle_timeout.as_secs(),
                id: Some(identity),
            };
            return match self.sealer.seal(&self.cfg.cookie_name, &ticket) {
                Some(v) if v.len() <= crate::seal::MAX_COOKIE_VALUE => Ok(Some(v)),
                _ => Err(StoreError::Unavailable(
                    "the stepped-up identity does not fit in the session cookie".into(),
                )),
            };
        }
        let ttl = Duration::from_secs(held.exp.saturating_sub(held.iat));
        self.store
            .save(&held.sid, Arc::new(identity), held.iat, ttl)
            .await?;
        if let Some(grant) = grant {
            self.keep_grant(&held.sid, grant, held.exp, now).await?;
        }
        Ok(None)
    }

    /// Ends session `sid` on every replica, and forgets its grant.
    pub async fn end(&self, sid: &str) -> Result<Option<Arc<Identity>>, StoreError> {
        let held = self.store.revoke(sid).await?;
        if let Err(e) = self.store.forget(GRANT, sid).await {
            log::warn!("session store: the grant of an ended session stays until it expires: {e}");
        }
        Ok(held)
    }

    /// A signal that turns `true` once the session `held` of `identity` ends (revoked here or
    /// on another replica, ended by its IdP or its user's revocation, or run out): an upgraded
    /// connection closes on it.
    pub fn watch(
        &self,
        held: &Held,
        identity: &Arc<Identity>,
    ) -> tokio::sync::watch::Receiver<bool> {
        self.watchers
            .watch(&self.store, &self.clock, held, identity)
    }
}
