//! The forward-auth endpoint (`/_authgate/auth`): the ingress controller's question (ingress-
//! nginx `auth-url`, Traefik ForwardAuth), read in the configured dialect and canonically
//! (`crate::forward_auth`), answered by the same authentication step as a proxied request:
//! 2xx with the identity headers when allowed; 401 otherwise (or, for Traefik browsers, a
//! redirect to sign in); the policy's 403.

use crate::answer::Answer;
use crate::authenticate::{authenticate, Auth};
use crate::exchange::{wants_html, Downstream};
use crate::forward_auth::Dialect;
use crate::hosts::Destination;
use crate::identity::Identity;
use crate::return_to;
use std::sync::Arc;

use crate::forward_auth::Original;
use crate::route::cors::{self, Preflight};
use crate::route::{NoRoute, Route};
use crate::session::Held;
use crate::state::Core;

use super::sign_in;

pub(crate) async fn forward_auth(core: &Core, down: &mut dyn Downstream) -> Answer {
    let fa = &core.cfg.forward_auth;
    let (original, route) = match described(core, down.req(), down.peer()) {
        Ok(d) => d,
        Err(refused) => return refused,
    };
    // Through with no identity: a CORS preflight on a route that passes or answers them (an
    // ingress cannot relay the gateway's reply; the app, or the ingress's own CORS settings,
    // answer it), and the route's `public_methods` / `public_paths`.
    let method = original_method(down.req(), fa.dialect);
    let preflight = route.cors != Preflight::Refuse
        && method
            .as_ref()
            .is_some_and(|m| cors::is_preflight_as(m, down.req()));
    let path = original.canonical.route_path();
    let open = !route.open.is_empty()
        && (method.is_some_and(|m| route.open.methods.contains(&m))
            || route.open.paths.iter().any(|p| p.matches(path)));
    if preflight || open {
        return Answer::empty(200);
    }
    let (identity, refreshed, held) = match authenticate(core, down, &route).await {
        Auth::Refused(answer) => return answer,
        Auth::Public => return Answer::empty(200),
        Auth::Allowed {
            identity,
            refreshed,
            held,
        } => (identity, refreshed, held),
        // Traefik passes the answer on: a navigating browser is re-authenticated passively.
        // ingress-nginx takes only 2xx/401/403 and sends 401s to its own sign-in URL.
        Auth::Reauthenticate { identity, held } if fa.dialect.relays_answers() => {
            return sign_in::reauthenticate(core, down, &identity, &held);
        }
        Auth::Reauthenticate { .. } => {
            core.metrics.deny("reauthentication_required");
            return Answer::unauthenticated(None);
        }
        // Traefik, Caddy and Envoy pass the answer to the browser as is: send navigations to
        // sign in. ingress-nginx accepts only 2xx/401/403 from auth-url and redirects itself.
        Auth::NoSession if fa.dialect.relays_answers() && wants_html(down.req()) => {
            return relayed_sign_in(core, down, &route, &original.url);
        }
        Auth::NoSession => {
            core.metrics.deny("unauthenticated");
            return Answer::unauthenticated(None);
        }
        // A route's require: a navigating browser signs in again (asking for what the route
        // requires, which the sign-in page adds); anything else is told what to ask for.
        Auth::StepUp(s) if fa.dialect.relays_answers() && wants_html(down.req()) => {
            core.metrics.deny(s.unmet.label());
            return relayed_sign_in(core, down, &route, &original.url);
        }
        Auth::StepUp(s) => return super::step_up::challenge(core, down.req(), &route, &s),
    };
    let mut answer = match allowed(core, &route, &identity, held.as_ref()).await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    if let Some(v) = refreshed {
        answer = answer.cookie(core.cookies.set_session(&v, down.req()));
    }
    answer
}

/// The request the controller describes, and its route; or the refusal (forward-auth off,
/// a caller not in `trusted_proxies`, an unusable description, no route).
fn described(
    core: &Core,
    req: &pingora::http::RequestHeader,
    peer: Option<std::net::IpAddr>,
) -> Result<(Original, Arc<Route>), Answer> {
    let fa = &core.cfg.forward_auth;
    if !fa.enabled {
        return Err(Answer::page(
            404,
            "Not found",
            "Forward-auth is not enabled on this gateway.",
            None,
        ));
    }
    if !peer.is_some_and(|ip| fa.trusted_proxies.iter().any(|c| c.contains(ip))) {
        core.metrics.deny("untrusted_proxy");
        log::warn!("forward-auth refused: {peer:?} is not in forward_auth.trusted_proxies");
        return Err(Answer::json_error(
            403,
            "untrusted_proxy",
            "this address may not use forward-auth",
        ));
    }
    // ingress-nginx turns any auth answer but 2xx/401/403 into a 500: refuse with 403.
    let refused = match fa.dialect {
        Dialect::Nginx => 403,
        _ => 400,
    };
    let exceptions = core.routes.exceptions;
    let original = crate::forward_auth::original(req, fa.dialect, exceptions, &fa.envoy_prefix)
        .map_err(|why| {
            core.metrics.deny(why.label());
            log::warn!("forward-auth refused ({}): {why}", why.label());
            Answer::json_error(refused, why.label(), &why.to_string())
        })?;
    match core.routes.route(&original.canonical) {
        Ok(r) => {
            let r = r.clone();
            Ok((original, r))
        }
        Err(NoRoute::Unknown) => {
            core.metrics.deny("no_route");
            Err(Answer::json_error(
                403,
                "no_route",
                "no route for the original request",
            ))
        }
        Err(NoRoute::Refused(r)) => {
            core.metrics.deny(r.label());
            log::warn!(
                "forward-auth refused ({}): {} is not allowed on its route",
                r.label(),
                original.canonical.path
            );
            Err(Answer::json_error(
                refused,
                r.label(),
                "the original request path is not acceptable",
            ))
        }
    }
}

/// A browser without a session, behind a controller that relays the answer: to sign in, and
/// from another served host through a handoff back to it.
fn relayed_sign_in(core: &Core, down: &mut dyn Downstream, route: &Route, url: &str) -> Answer {
    let public = &core.cfg.public_url;
    if let Destination::Served(u) = core.cfg.hosts.destination(url, public) {
        return super::handoff::begin(core, &u, Vec::new());
    }
    let return_to = return_to::sanitize(url, public);
    sign_in::to_sign_in(core, down, route, return_to, Vec::new())
}

/// The 200 for an allowed request: the identity headers, the signed assertion for the
/// original URL's route, the route's tokens (or the answer refusing them).
async fn allowed(
    core: &Core,
    route: &Route,
    identity: &Identity,
    held: Option<&Held>,
) -> Result<Answer, Answer> {
    let tokens = if route.tokens.any() {
        let tokens =
            core.upstream_tokens
                .for_route(&core.sessions, &core.providers, route, identity, held);
        match Box::pin(tokens).await {
            Ok(t) => t,
            Err(refused) => return Err(refused),
        }
    } else {
        Vec::new()
    };
    let mut answer = Answer::empty(200);
    for (name, value) in tokens {
        if let (Ok(n), Ok(v)) = (std::str::from_utf8(&name), value.to_str()) {
            answer.headers.push((n.to_string().into(), v.to_string()));
        }
    }
    core.headers.each(identity, |name, value| {
        if let Ok(v) = value.to_str() {
            answer
                .headers
                .push((name.as_str().to_string().into(), v.to_string()));
        }
    });
    if let Some(signer) = &core.assertion {
        let about = crate::assertion::About {
            identity,
            prepared: &core.headers.prepared(identity),
            plan: &core.headers,
            aud: signer.audience(route.audience.as_ref()),
            sid: held.map(|h| &*h.sid),
            now: crate::session::now_secs(),
        };
        if let Some(v) = signer
            .assertion(about)
            .and_then(|v| v.to_str().ok().map(String::from))
        {
            answer
                .headers
                .push((signer.header().as_str().to_string().into(), v));
        }
    }
    Ok(answer)
}

/// The original request's method, as the dialect sends it (exactly one value), if any.
fn original_method(req: &pingora::http::RequestHeader, dialect: Dialect) -> Option<http::Method> {
    let Some(name) = dialect.method_header() else {
        return Some(req.method.clone());
    };
    let mut values = req.headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    http::Method::from_bytes(first.as_bytes().to_ascii_uppercase().as_slice()).ok()
}
