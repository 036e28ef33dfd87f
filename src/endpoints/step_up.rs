//! Step-up: a session that proves too little for a route's `require:` (an authentication
//! context, a second factor, a recent sign-in). A navigating browser goes through a sign-in
//! with its session's provider that asks for what the route needs, keeps its session (the
//! same id, so the same cookie with a server-side store) and comes back to the page it
//! asked for. Anything else gets a 401 saying what to ask for.
//!
//! On return (`finish`), the IdP's answer must prove what was asked, for the same user
//! (provider, user key, tenant, and OpenID `sub`); otherwise it is refused and the session
//! stays as it was.

use crate::answer::Answer;
use crate::assurance::Ask;
use crate::authenticate::StepUp;
use crate::exchange::{wants_html, Downstream};
use crate::identity::Identity;
use crate::return_to;
use crate::route::Route;
use crate::session::{now_secs, Check, Grant, Held};
use crate::state::Core;

use super::handoff;
use super::sign_in;
use super::start::{start_more, Back, More};

/// The session of `identity` (`held`; none for a bearer token) lacks `unmet` for `route`.
#[cold]
#[inline(never)]
pub(crate) fn required(
    core: &Core,
    down: &mut dyn Downstream,
    route: &Route,
    need: &StepUp,
) -> Answer {
    let (identity, held, unmet) = (&*need.identity, need.held.as_ref(), need.unmet);
    let provider = core
        .providers
        .iter()
        .position(|p| p.name() == &*identity.provider);
    core.metrics.deny(unmet.label());
    let req = down.req();
    let provider = provider.filter(|_| held.is_some());
    let path_and_query = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let return_to = return_to::sanitize(path_and_query, &core.cfg.public_url);
    let navigating = wants_html(req) && req.method == http::Method::GET;
    match (held, provider) {
        (Some(held), Some(i)) if navigating => {
            log::info!(
                "route {} requires more than the session of {} with {} proves ({}): step-up sign-in",
                route.name,
                identity.user,
                identity.provider,
                unmet.label()
            );
            core.metrics.step_up(&identity.provider, "started");
            // Another served host than public_url's: signed in afresh there (with what the
            // route requires), and back through a handoff.
            if let Some(here) = handoff::elsewhere(core, req, &return_to) {
                return handoff::begin(core, &here, Vec::new());
            }
            let more = More {
                ask: Some(route.require.ask(Some(held.sid.to_string()))),
                ..Default::default()
            };
            start_more(core, down, i, return_to, Vec::new(), more)
        }
        _ => challenge(core, req, route, need),
    }
}

/// The 401 for a caller that cannot be sent through a sign-in (an API call, XHR, a form
/// POST, a bearer token): `WWW-Authenticate` names what to ask for (Entra's
/// `insufficient_claims` with the claims request, else RFC 9470's
/// `insufficient_user_authentication`), and the JSON body where a browser would sign in.
pub(crate) fn challenge(
    core: &Core,
    req: &pingora::http::RequestHeader,
    route: &Route,
    need: &StepUp,
) -> Answer {
    let (identity, held, unmet) = (&*need.identity, need.held.as_ref(), need.unmet);
    let acr = core
        .provider(&identity.provider)
        .map_or(&[][..], |p| p.mfa_acr_values());
    let token = if held.is_some() {
        "id_token"
    } else {
        "access_token"
    };
    let header = route.require.ask(None).challenge(token, acr);
    let link = core.sign_in_link(req, &identity.provider);
    Answer::json(
        401,
        serde_json::json!({"error": unmet.label(),
            "message": "this route needs a stronger or more recent sign-in; navigate to sign_in",
            "sign_in": link}),
    )
    .header("www-authenticate", header)
}

/// The end of a sign-in that asked for something (`ask`, begun at `started`): what the IdP
/// answered must prove it; then a step-up upgrades its session in place, any other sign-in
/// completes as usual.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn finish(
    core: &Core,
    down: &mut dyn Downstream,
    provider: &str,
    identity: Identity,
    grant: Option<Grant>,
    (ask, started): (&Ask, u64),
    back: &Back,
    clear: Vec<String>,
    audit: serde_json::Value,
) -> Answer {
    let skew = core.provider(provider).map_or(60, |p| p.clock_skew());
    if let Err(e) = ask.verify(&identity, started, skew) {
        return refused(core, provider, e.label, &e.why, &back.to, clear);
    }
    let Some(sid) = ask.session.as_deref() else {
        return sign_in::complete(core, provider, identity, grant, back, clear, audit).await;
    };
    let Some((held, was)) = held_session(core, down, sid).await else {
        // That session ended meanwhile (signed out, revoked, expired): an ordinary sign-in.
        log::info!("step-up with {provider}: the session it was for has ended; signing in afresh");
        return sign_in::complete(core, provider, identity, grant, back, clear, audit).await;
    };
    let oidc = matches!(
        core.provider(provider).map(|p| &**p),
        Some(crate::idp::Provider::Oidc(_))
    );
    if let Err(why) = same_user(&was, &identity, oidc) {
        return refused(core, provider, "step_up_other_user", &why, &back.to, clear);
    }
    let identity = match sign_in::admitted(core, provider, identity, &clear).await {
        Ok(i) => i,
        Err(answer) => return answer,
    };
    upgrade(
        core,
        down,
        provider,
        (held, &was),
        identity,
        grant.as_ref(),
        back,
        clear,
    )
    .await
}

/// The session upgraded in place: what it proved before and what this sign-in proved.
#[allow(clippy::too_many_arguments)]
async fn upgrade(
    core: &Core,
    down: &mut dyn Downstream,
    provider: &str,
    (held, was): (Held, &Identity),
    mut identity: Identity,
    grant: Option<&Grant>,
    back: &Back,
    clear: Vec<String>,
) -> Answer {
    let now = now_secs();
    let fresh: Vec<String> = identity
        .more
        .assured
        .iter()
        .map(|(w, _)| w.clone())
        .collect();
    crate::assurance::carry(was, &mut identity);
    let user = identity.user.clone();
    match core.sessions.upgrade(&held, identity, grant, now).await {
        Ok(cookie) => {
            core.metrics.step_up(provider, "success");
            core.metrics.count_sign_in(provider, "success");
            crate::logging::audit(
                "step_up",
                serde_json::json!({"provider": provider, "user": user, "proven": fresh}),
            );
            let mut answer = Answer::redirect(handoff::location(core, back, ""));
            if let Some(v) = cookie {
                answer = answer.cookie(core.cookies.set_session(&v, down.req()));
            }
            answer.cookies(clear)
        }
        Err(e) => {
            core.metrics.step_up(provider, "store_unavailable");
            log::error!("step-up with {provider} for {user}: session not updated: {e}");
            Answer::store_unavailable(true).cookies(clear)
        }
    }
}

/// The session `sid`, if this browser still holds it (and it is valid).
async fn held_session(
    core: &Core,
    down: &mut dyn Downstream,
    sid: &str,
) -> Option<(Held, Identity)> {
    let now = now_secs();
    for value in core.cookies.sessions(down.req()) {
        if let Check::Valid { identity, held, .. } = core.sessions.check(value, now).await {
            if &*held.sid == sid {
                return Some((held, identity.as_ref().clone()));
            }
        }
    }
    None
}

/// A step-up must sign the same person in again: provider, user key, tenant, and (OpenID
/// Connect) `sub`.
fn same_user(was: &Identity, now: &Identity, oidc: bool) -> Result<(), String> {
    let differs = |what: &str, a: &str, b: &str| {
        Err(format!(
            "the session is {what} {a:?}, the step-up signed in {b:?}"
        ))
    };
    if was.provider != now.provider {
        return differs("of provider", &was.provider, &now.provider);
    }
    if was.user != now.user {
        return differs("of user", &was.user, &now.user);
    }
    if was.tenant != now.tenant {
        return differs(
            "of tenant",
            was.tenant.as_deref().unwrap_or("-"),
            now.tenant.as_deref().unwrap_or("-"),
        );
    }
    if oidc && was.name_id != now.name_id {
        return differs(
            "of sub",
            was.name_id.as_deref().unwrap_or("-"),
            now.name_id.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}

/// The IdP's answer did not prove what was asked, or named another user: refused, counted,
/// logged; a session the sign-in was for stays as it was.
fn refused(
    core: &Core,
    provider: &str,
    label: &str,
    why: &str,
    back: &str,
    clear: Vec<String>,
) -> Answer {
    core.metrics.step_up(provider, label);
    core.metrics.count_sign_in(provider, label);
    core.metrics.deny(label);
    log::warn!("sign-in with {provider} refused ({label}): {why}");
    let (title, message) = match label {
        "step_up_other_user" => (
            "You signed in as someone else",
            "This page needed you to confirm your sign-in, but the account that signed in is not the one already signed in here. Nothing changed: you are still signed in as before. Try again with your own account.",
        ),
        _ => (
            "A stronger sign-in is required",
            "This page needs a stronger or more recent sign-in than your identity provider confirmed (for example a second factor). Nothing changed: you are still signed in as before. Try again, and complete every step your organization asks for; if it keeps failing, tell your administrator.",
        ),
    };
    let again = if back.starts_with('/') { back } else { "/" };
    Answer::page_with(
        403,
        title,
        message,
        Some(&format!("Reason: {label}\n{why}")),
        Some((again, "Try again")),
    )
    .cookies(clear)
}
