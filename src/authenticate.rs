//! The one authentication step the proxy and forward-auth share: the route's bearer token or
//! session, checked against the providers the route accepts, then the route's policy.

use std::sync::Arc;

use crate::answer::Answer;
use crate::exchange::{bearer_token, wants_html, Downstream};
use crate::identity::Identity;
use crate::idp::oidc::{pick_by_issuer, OidcProvider};
use crate::idp::IdpError;
use crate::policy;
use crate::recheck::Settled;
use crate::route::Route;
use crate::scim::effects::Refusal;
use crate::session::{now_secs, Check, Held, Rejection};
use crate::state::Core;

/// What the authentication step came to.
#[derive(Debug)]
pub(crate) enum Auth {
    /// A public route: nobody needs to be signed in.
    Public,
    Allowed {
        identity: Arc<Identity>,
        /// A re-issued session cookie value (idle timeout), to set on the answer.
        refreshed: Option<String>,
        /// The session it came from (none for a bearer token).
        held: Option<Held>,
    },
    /// No bearer token and no session the route accepts: the caller must sign in.
    NoSession,
    /// A SAML session due for its re-check: confirmed with its IdP before it is used again.
    Reauthenticate { identity: Arc<Identity>, held: Held },
    /// Allowed by the policy, but the route's `require:` asks for more than the session (or
    /// bearer token) proves: a step-up.
    StepUp(StepUp),
    /// Refused (bad token, policy denial), with the answer to give.
    Refused(Answer),
}

pub(crate) async fn authenticate(core: &Core, down: &mut dyn Downstream, route: &Route) -> Auth {
    if route.public {
        return Auth::Public;
    }
    let from_bearer = match bearer_token(down.req()) {
        None => None,
        // Boxed as a trait object: only API clients send a token, and neither the future
        // (~2.6 KB with its verification) nor its code is then part of every request's
        // (BENCHMARKS.md, ninth and tenth rounds).
        Some(_) => match crate::aside(bearer(core, down, route)).await {
            Bearer::Refused(answer) => return Auth::Refused(answer),
            Bearer::Verified(identity) => Some(identity),
            Bearer::Absent => None,
        },
    };
    let (identity, refreshed, held) = match from_bearer {
        Some(identity) => (identity, None, None),
        None => match session_of(core, down).await {
            Ok(Some(found)) if route.accepts(&found.identity.provider) => {
                (found.identity, found.refreshed, Some(found.held))
            }
            Ok(Some(found)) => return wrong_provider(core, route, &found.identity),
            Ok(None) => return Auth::NoSession,
            Err(unusable) => return session_unusable(core, down, route, unusable),
        },
    };
    if let Err(deny) = policy::decide(&route.policy, &identity) {
        return denied(core, down, route, &identity, deny);
    }
    if !route.require.is_empty() {
        let skew = core
            .provider(&identity.provider)
            .map_or(0, |p| p.clock_skew());
        if let Some(unmet) = route.require.unmet(&identity, now_secs(), skew) {
            return Auth::StepUp(StepUp {
                identity,
                held,
                unmet,
            });
        }
    }
    Auth::Allowed {
        identity,
        refreshed,
        held,
    }
}

// The branches below end a request without passing it on. `#[cold]` keeps their code out of
// the line of the signed-in request's (fewer instruction-cache lines per request: BENCHMARKS.md,
// tenth round).

/// A session cookie that could not be used: the refusal or re-authentication it comes to.
#[cold]
#[inline(never)]
fn session_unusable(core: &Core, down: &dyn Downstream, route: &Route, why: Unusable) -> Auth {
    match why {
        Unusable::StoreDown => Auth::Refused(Answer::store_unavailable(wants_html(down.req()))),
        Unusable::Reauthenticate(found) => Auth::Reauthenticate {
            identity: found.identity,
            held: found.held,
        },
        Unusable::Expired => {
            let provider = core.providers.get(route.provider).map_or("", |p| p.name());
            let again = core.sign_in_link(down.req(), provider);
            Auth::Refused(Answer::session_expired(wants_html(down.req()), &again))
        }
    }
}

/// Signed in, but with a provider this route does not take: no session here, so the
/// browser signs in with the route's own provider.
#[cold]
#[inline(never)]
fn wrong_provider(core: &Core, route: &Route, identity: &Identity) -> Auth {
    core.metrics.session_rejected("wrong_provider");
    log::info!(
        "session of provider {} is not accepted on route {} (accepts {}): treated as no session",
        identity.provider,
        route.name,
        route.accepted().join(", ")
    );
    Auth::NoSession
}

/// The route's policy refuses this identity: counted, logged, and a 403 page or JSON error.
#[cold]
#[inline(never)]
fn denied(
    core: &Core,
    down: &dyn Downstream,
    route: &Route,
    identity: &Identity,
    deny: policy::Deny,
) -> Auth {
    core.metrics.deny(deny.label());
    log::warn!(
        "access to route {} denied for user {} (tenant {}): {}",
        route.name,
        identity.user,
        identity.tenant.as_deref().unwrap_or("-"),
        deny.label()
    );
    let html = wants_html(down.req());
    Auth::Refused(Answer::forbidden(deny, identity, &route.name, html))
}

/// An identity the route's `require:` asks more of.
#[derive(Debug)]
pub(crate) struct StepUp {
    pub(crate) identity: Arc<Identity>,
    /// Its session; `None` for a bearer token.
    pub(crate) held: Option<Held>,
    pub(crate) unmet: crate::assurance::Unmet,
}

/// A session cookie could not be used.
pub(crate) enum Unusable {
    /// The session store does not answer (and this replica has not read that session
    /// recently enough to vouch for it).
    StoreDown,
    /// Its re-check ended it just now: the caller must sign in again, and is told so.
    Expired,
    /// Due for its re-check with a SAML provider (which needs the browser).
    Reauthenticate(Found),
}

/// A valid session a request carries.
pub(crate) struct Found {
    pub(crate) identity: Arc<Identity>,
    /// The re-issued cookie value (idle timeout), if due.
    pub(crate) refreshed: Option<String>,
    pub(crate) held: Held,
}

/// The session, if the request carries a valid one.
pub(crate) async fn session_of(
    core: &Core,
    down: &mut dyn Downstream,
) -> Result<Option<Found>, Unusable> {
    let now = now_secs();
    let mut unchecked = false;
    for value in core.cookies.sessions(down.req()) {
        match core.sessions.check(value, now).await {
            Check::Valid {
                identity,
                refreshed,
                held,
            } => {
                let identity = match &core.recheck {
                    None => identity,
                    Some(recheck) => match recheck.settle(identity, &held, now).await {
                        Settled::Current(identity) => identity,
                        Settled::Ended => return Err(Unusable::Expired),
                        Settled::Reauthenticate(identity) => {
                            return Err(Unusable::Reauthenticate(Found {
                                identity,
                                refreshed,
                                held,
                            }))
                        }
                    },
                };
                return Ok(Some(Found {
                    identity,
                    refreshed,
                    held,
                }));
            }
            Check::Rejected(r) => unchecked |= rejected(core, r),
        }
    }
    if unchecked {
        Err(Unusable::StoreDown)
    } else {
        Ok(None)
    }
}

/// A session cookie the store rejected: counted and logged; `true` when the store could not
/// be asked.
#[cold]
#[inline(never)]
fn rejected(core: &Core, r: Rejection) -> bool {
    log::debug!("session cookie rejected: {}", r.label());
    core.metrics.session_rejected(r.label());
    r == Rejection::StoreError
}

/// What an `Authorization: Bearer` header came to.
enum Bearer {
    /// None, or no provider of the route takes bearer tokens.
    Absent,
    Verified(Arc<Identity>),
    Refused(Answer),
}

/// `Authorization: Bearer` on a route whose providers accept API tokens.
async fn bearer(core: &Core, down: &mut dyn Downstream, route: &Route) -> Bearer {
    let Some(token) = bearer_token(down.req()) else {
        return Bearer::Absent;
    };
    // The route's providers that take API tokens; with several, the one whose issuer the
    // token names (unverified: it only picks whose keys judge it).
    let apis: Vec<&OidcProvider> = route
        .accepted()
        .iter()
        .filter_map(|name| core.provider(name))
        .filter_map(|p| p.api())
        .collect();
    let oidc = match apis.as_slice() {
        // Not ours to judge: the header is for the upstream, and a session is still needed.
        [] => return Bearer::Absent,
        [one] => *one,
        several => pick_by_issuer(several, token),
    };
    // Inline: this whole future is boxed where `authenticate` awaits it.
    let verified = oidc.verify_bearer(token).await.map(Arc::new);
    let verified = match (verified, &core.scim) {
        (Ok(identity), Some(scim)) => match scim.check_bearer(identity).await {
            Ok(identity) => Ok(identity),
            Err(Refusal::Deprovisioned) => Err(IdpError::Denied(
                policy::Deny::Deprovisioned,
                "the SCIM directory lists this user as inactive or deleted".into(),
            )),
            Err(e) => {
                // The directory cannot be read: fail closed.
                log::warn!(
                    "bearer token on route {}: provisioning not checked: {e:?}",
                    route.name
                );
                return Bearer::Refused(Answer::store_unavailable(false));
            }
        },
        (other, _) => other,
    };
    match verified {
        Ok(identity) => Bearer::Verified(identity),
        Err(IdpError::Denied(deny, why)) => {
            core.metrics.deny(deny.label());
            log::warn!(
                "bearer token on route {} denied ({}): {why}",
                route.name,
                deny.label()
            );
            Bearer::Refused(Answer::json_error(
                deny.status(),
                deny.label(),
                deny.explain().1,
            ))
        }
        Err(e) => {
            core.metrics.deny("invalid_token");
            log::warn!("bearer token on route {} refused: {e}", route.name);
            Bearer::Refused(Answer::invalid_token(&e))
        }
    }
}
