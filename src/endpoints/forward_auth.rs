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
use crate::route::cors::Preflight;
use crate::route::{NoRoute, Route};
use crate::session::Held;
use crate::state::Core;

use super::sign_in;

pub(crate) async fn forward_auth(core: &Core, down: &mut dyn Downstream) -> Answer {
    let fa = &core.cfg.forward_auth;
    if !fa.enabled {
        return Answer::page(
            404,
            "Not found",
            "Forward-auth is not enabled on this gateway.",
            None,
        );
    }
    let peer = down.peer();
    if !peer.is_some_and(|ip| fa.trusted_proxies.iter().any(|c| c.contains(ip))) {
        core.metrics.deny("untrusted_proxy");
        log::warn!("forward-auth refused: {peer:?} is not in forward_auth.trusted_proxies");
        return Answer::json_error(
            403,
            "untrusted_proxy",
            "this address may not use forward-auth",
        );
    }
    // ingress-nginx turns any auth answer but 2xx/401/403 into a 500: refuse with 403.
    let refused = match fa.dialect {
        Dialect::Nginx => 403,
        _ => 400,
    };
    let original = match crate::forward_auth::original(
        down.req(),
        fa.dialect,
        core.routes.exceptions,
        &fa.envoy_prefix,
    ) {
        Ok(o) => o,
        Err(why) => {
            core.metrics.deny(why.label());
            log::warn!("forward-auth refused ({}): {why}", why.label());
            return Answer::json_error(refused, why.label(), &why.to_string());
        }
    };
    let route = match core.routes.route(&original.canonical) {
        Ok(r) => r.clone(),
        Err(NoRoute::Unknown) => {
            core.metrics.deny("no_route");
            return Answer::json_error(403, "no_route", "no route for the original request");
        }
        Err(NoRoute::Refused(r)) => {
            core.metrics.deny(r.label());
            log::warn!(
                "forward-auth refused ({}): {} is not allowed on its route",
                r.label(),
                original.canonical.path
            );
            return Answer::json_error(
                refused,
                r.label(),
                "the original request path is not acceptable",
            );
        }
    };
    // A CORS preflight on a route that passes or answers them: through, with no identity (an
    // ingress cannot relay the gateway's reply; the app, or the ingress's own CORS settings,
    // answer it).
    if route.cors != Preflight::Refuse && preflight(down.req(), fa.dialect) {
        return Answer::empty(200);
    }
    // `public_methods` / `public_paths`: through with no identity.
    if !route.open.is_empty() {
        let method = original_method(down.req(), fa.dialect);
        let path = &original.canonical.route_path;
        if method.is_some_and(|m| route.open.methods.contains(&m))
            || route.open.paths.iter().any(|p| p.matches(path))
        {
            return Answer::empty(200);
        }
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
        Auth::NoSession => {
            // Traefik, Caddy and Envoy pass the answer to the browser as is: send navigations
            // to sign in (from another served host, through a handoff back to it).
            // ingress-nginx accepts only 2xx/401/403 from auth-url and redirects itself.
            if fa.dialect.relays_answers() && wants_html(down.req()) {
                let public = &core.cfg.public_url;
                if let Destination::Served(u) = core.cfg.hosts.destination(&original.url, public) {
                    return super::handoff::begin(core, &u, Vec::new());
                }
                let return_to = return_to::sanitize(&original.url, &core.cfg.public_url);
                if crate::idp::realm::discovers(&core.cfg.providers, route.accepted()) {
                    let back = super::start::Back {
                        to: return_to,
                        binding: None,
                    };
                    return super::discover::begin(core, down, &route, back, Vec::new());
                }
                return super::start::start(core, down, route.provider, return_to, Vec::new());
            }
            core.metrics.deny("unauthenticated");
            return Answer::unauthenticated(None);
        }
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

/// The original request was a CORS preflight: `OPTIONS` (ingress-nginx's `X-Original-Method`,
/// Traefik's `X-Forwarded-Method`) with `Origin` and `Access-Control-Request-Method`, which
/// both controllers pass on from the original request.
fn preflight(req: &pingora::http::RequestHeader, dialect: Dialect) -> bool {
    original_method(req, dialect) == Some(http::Method::OPTIONS)
        && req.headers.contains_key(http::header::ORIGIN)
        && req
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
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
