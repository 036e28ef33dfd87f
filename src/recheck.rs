//! Re-checking sessions with their IdP (`recheck_every`): a sign-in without the browser.
//!
//! A request finds its session's identity and asks `settle` what to do with it:
//! - before about 80% of `recheck_every` (75–90%, spread by session id), nothing;
//! - after that, a re-check starts in the background and the request goes on with the
//!   identity it has (the request never waits for the IdP here);
//! - once `recheck_every` has passed, the identity is stale: the request waits for the
//!   re-check. Should the IdP be unreachable, the stale identity is used for `recheck_grace`
//!   more, and then `on_recheck_failure` decides (`deny` ends the session).
//!
//! A SAML session cannot be renewed without the browser: once due, `settle` says so, and a
//! navigating browser is sent through a passive re-authentication (`endpoints::sign_in`).
//!
//! One re-check per session at a time: concurrent requests in this process share one flight,
//! and replicas take a lock in the store (its owner is this process; it expires on its own
//! should a replica die mid-way). Under the lock the session is read again past every cache:
//! a replica that just renewed it leaves nothing to do. A refusal by the IdP (`invalid_grant`,
//! another user, a denied tenant) ends the session on every replica at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::identity::Identity;
use crate::idp::refresh::RecheckFailure;
use crate::idp::Provider;
use crate::metrics::Metrics;
use crate::scim::effects::Refusal;
use crate::scim::Scim;
use crate::session::{now_secs, Held, OnRecheckFailure, Sessions, Timers};

/// Longer than any IdP round trip (the outbound fetch timeout), so a lock outlives the
/// re-check it guards; it expires on its own if its replica dies.
const LOCK_TTL: Duration = Duration::from_secs(30);
/// How long one flight's outcome answers the requests that follow it in this process (an
/// unreachable IdP is tried at most this often per session).
const FLIGHT_MEMORY: Duration = Duration::from_secs(2);

/// The re-checks of one configuration: its providers that re-check, their timers.
pub(crate) struct Rechecker {
    sessions: Arc<Sessions>,
    providers: HashMap<Arc<str>, (Arc<Provider>, Timers)>,
    scim: Option<Arc<Scim>>,
    metrics: Arc<Metrics>,
    flights: moka::future::Cache<Arc<str>, Outcome>,
    /// This process, as a lock owner.
    owner: String,
}

/// What one re-check came to.
#[derive(Debug, Clone)]
enum Outcome {
    /// The IdP vouched again: the identity as it now is.
    Renewed(Arc<Identity>),
    /// Another replica holds the lock: it is re-checking this session now.
    Busy,
    /// The session ended (the IdP refused, or it was gone already).
    Ended,
    Unreachable(String),
}

/// What a request goes on with.
#[derive(Debug)]
pub(crate) enum Settled {
    Current(Arc<Identity>),
    /// The session ended: the caller must sign in again.
    Ended,
    /// A SAML session is due: only its IdP, through the browser, can vouch for it again.
    Reauthenticate(Arc<Identity>),
}

impl Rechecker {
    /// `None` when no provider re-checks: the hot path then asks nothing.
    pub(crate) fn new(
        sessions: &Arc<Sessions>,
        providers: &[Arc<Provider>],
        scim: Option<Arc<Scim>>,
        metrics: &Arc<Metrics>,
    ) -> Option<Arc<Self>> {
        let providers: HashMap<Arc<str>, (Arc<Provider>, Timers)> = providers
            .iter()
            .map(|p| (p.clone(), sessions.cfg.timers(p.name())))
            .filter(|(_, t)| t.recheck_every.is_some())
            .map(|(p, t)| (Arc::from(p.name()), (p, t)))
            .collect();
        if providers.is_empty() {
            return None;
        }
        Some(Arc::new(Self {
            sessions: sessions.clone(),
            providers,
            scim,
            metrics: metrics.clone(),
            flights: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(FLIGHT_MEMORY)
                .build(),
            owner: crate::session::random_token(12),
        }))
    }

    /// What the request holding `identity` (of session `held`) goes on with, at `now`.
    pub(crate) async fn settle(
        self: &Arc<Self>,
        identity: Arc<Identity>,
        held: &Held,
        now: u64,
    ) -> Settled {
        let Some((provider, timers)) = self.providers.get(&identity.provider) else {
            return Settled::Current(identity);
        };
        let Some(every) = timers.recheck_every.map(|d| d.as_secs().max(1)) else {
            return Settled::Current(identity);
        };
        let age = now.saturating_sub(identity.checked_at);
        if let Provider::Saml(_) = &**provider {
            return if age < every {
                Settled::Current(identity)
            } else {
                Settled::Reauthenticate(identity)
            };
        }
        if age < early(every, &held.sid) {
            return Settled::Current(identity);
        }
        if age < every {
            let (this, held, was) = (self.clone(), held.clone(), identity.clone());
            tokio::spawn(async move { this.flight(&held, &was).await });
            return Settled::Current(identity);
        }
        // Boxed: a re-check's future (the IdP round trip, Graph, the store) is large, and
        // every request's authentication future would otherwise carry its size (and copy it).
        match Box::pin(self.flight(held, &identity)).await {
            Outcome::Renewed(fresh) => Settled::Current(fresh),
            Outcome::Busy => Settled::Current(identity),
            Outcome::Ended => Settled::Ended,
            Outcome::Unreachable(_) if age < every + timers.recheck_grace.as_secs() => {
                Settled::Current(identity)
            }
            Outcome::Unreachable(why) => match timers.on_recheck_failure {
                OnRecheckFailure::Keep => Settled::Current(identity),
                OnRecheckFailure::Deny => {
                    let why = format!("the IdP could not be reached past recheck_grace ({why})");
                    Box::pin(self.end(held, &identity, "expired", &why)).await;
                    Settled::Ended
                }
            },
        }
    }

    /// One re-check of `held`, shared by every request of this process that asks meanwhile.
    async fn flight(&self, held: &Held, was: &Arc<Identity>) -> Outcome {
        self.flights
            .get_with(held.sid.clone(), self.locked(held, was))
            .await
    }

    /// Under the session's lock in the store (or `Busy`).
    async fn locked(&self, held: &Held, was: &Arc<Identity>) -> Outcome {
        let lock = format!("recheck:{}", held.sid);
        match self
            .sessions
            .store()
            .lock(&lock, &self.owner, LOCK_TTL)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                self.metrics.recheck(&was.provider, "busy");
                return Outcome::Busy;
            }
            Err(e) => return self.unreachable(was, &format!("session store: {e}")),
        }
        let out = self.run(held, was).await;
        if let Err(e) = self.sessions.store().unlock(&lock, &self.owner).await {
            log::warn!(
                "re-check lock of a session not released (it expires in {}s): {e}",
                LOCK_TTL.as_secs()
            );
        }
        out
    }

    async fn run(&self, held: &Held, was: &Arc<Identity>) -> Outcome {
        // Another replica may have renewed (or ended) it while this one waited.
        match self.sessions.store().reload(&held.sid).await {
            Ok(Some(current)) if current.checked_at > was.checked_at => {
                return Outcome::Renewed(current)
            }
            Ok(Some(_)) => {}
            Ok(None) => return Outcome::Ended,
            Err(e) => return self.unreachable(was, &format!("session store: {e}")),
        }
        let Some(Provider::Oidc(oidc)) = self.providers.get(&was.provider).map(|(p, _)| &**p)
        else {
            return Outcome::Busy;
        };
        let grant = match self.sessions.grant(&held.sid).await {
            Ok(g) => g.unwrap_or_default(),
            Err(e) => return self.unreachable(was, &format!("session store: {e}")),
        };
        let fresh = match oidc.refresh(&grant, was).await {
            Ok((identity, grant)) => self.admit(identity).await.map(|i| (i, grant)),
            Err(e) => Err(e),
        };
        match fresh {
            Ok((mut identity, grant)) => {
                // A refresh is no new sign-in: what the session proved (step-ups) stays.
                crate::assurance::carry(was, &mut identity);
                match self
                    .sessions
                    .renew(held, identity, &grant, now_secs())
                    .await
                {
                    Ok(identity) => {
                        self.metrics.recheck(&was.provider, "renewed");
                        log::info!(
                            "session of {} with {} re-checked: renewed",
                            was.user,
                            was.provider
                        );
                        Outcome::Renewed(identity)
                    }
                    Err(e) => self.unreachable(was, &format!("session store: {e}")),
                }
            }
            Err(RecheckFailure::Refused(why)) => {
                self.end(held, was, "refused", &why).await;
                Outcome::Ended
            }
            Err(RecheckFailure::Unreachable(why)) => self.unreachable(was, &why),
        }
    }

    /// Provisioning has its say again, as at sign-in.
    async fn admit(&self, identity: Identity) -> Result<Identity, RecheckFailure> {
        let Some(scim) = &self.scim else {
            return Ok(identity);
        };
        match scim.admit(identity).await {
            Ok(identity) => Ok(identity),
            Err(Refusal::Deprovisioned) => Err(RecheckFailure::Refused(
                "the SCIM directory lists this user as inactive or deleted".into(),
            )),
            Err(e) => Err(RecheckFailure::Unreachable(format!("provisioning: {e:?}"))),
        }
    }

    fn unreachable(&self, was: &Identity, why: &str) -> Outcome {
        self.metrics.recheck(&was.provider, "unreachable");
        log::warn!(
            "session of {} with {}: re-check failed, the identity stays for now: {why}",
            was.user,
            was.provider
        );
        Outcome::Unreachable(why.to_string())
    }

    /// Ends the session everywhere, counted (`result`) and audited.
    async fn end(&self, held: &Held, was: &Identity, result: &str, why: &str) {
        self.metrics.recheck(&was.provider, result);
        self.metrics.session_rejected("recheck_failed");
        log::warn!(
            "session of {} with {} ended by its re-check: {why}",
            was.user,
            was.provider
        );
        crate::logging::audit(
            "sign_out",
            serde_json::json!({
                "provider": was.provider, "user": was.user, "tenant": was.tenant,
                "initiator": "recheck", "reason": why,
            }),
        );
        if let Err(e) = self.sessions.end(&held.sid).await {
            log::error!("session store: a session its IdP refused could not be ended: {e}");
        }
    }
}

/// When a re-check starts ahead of time: between 75% and 90% of the interval, spread by the
/// session id so sessions signed in together do not all ask the IdP in the same second.
fn early(every: u64, sid: &str) -> u64 {
    let spread = sid
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 16;
    every * (75 + spread) / 100
}
