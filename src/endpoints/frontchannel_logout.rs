//! OpenID Connect front-channel logout at `/_authgate/frontchannel_logout/<provider>`: when a
//! user signs out at the provider, it loads this URL in an iframe, with `?sid=` (and `iss=`
//! where the provider sends it; Entra sends only `sid`). The iframe is third-party and usually
//! carries no cookie, so the sessions are found by the provider's session id, which every
//! session of an OpenID provider keeps from its ID token (`sid`), on every replica.
//!
//! The answer is a small no-store page the provider's origin may frame; a call that names no
//! valid `sid`, or an `iss` that is not this provider's, is refused with 400 and ends nothing.

use crate::answer::Answer;
use crate::exchange::{first, query_pairs, Downstream};
use crate::idp::Provider;
use crate::session::now_secs;
use crate::state::Core;

/// The longest `sid` accepted (Entra's are GUIDs; other providers' short random strings).
const MAX_SID: usize = 256;

pub(crate) async fn frontchannel_logout(
    core: &Core,
    down: &mut dyn Downstream,
    name: &str,
) -> Answer {
    let refuse = |reason: &str, why: &str| {
        core.metrics.deny("frontchannel_logout_refused");
        core.metrics.idp_logout(name, "frontchannel", "refused");
        log::warn!("front-channel logout for {name} refused ({reason}): {why}");
        Answer::page(
            400,
            "Logout not accepted",
            why,
            Some(&format!("Reason: {reason}")),
        )
    };
    let oidc = match core.provider(name).map(|p| &**p) {
        Some(Provider::Oidc(o)) => o,
        Some(_) => return refuse("provider", "This provider does not speak OpenID Connect."),
        None => return refuse("provider", "No such provider."),
    };
    if !matches!(down.req().method, http::Method::GET | http::Method::HEAD) {
        return refuse("method", "A front-channel logout is a GET.");
    }
    let q = query_pairs(down.req());
    let Some(sid) = first(&q, "sid").filter(|s| valid_sid(s)) else {
        return refuse("sid", "The logout names no valid session (sid).");
    };
    let times = |name: &str| q.iter().filter(|(k, _)| k == name).count();
    if times("sid") > 1 || times("iss") > 1 {
        return refuse("duplicate", "sid or iss is given more than once.");
    }
    if let Some(iss) = first(&q, "iss") {
        if !oidc.names_issuer(iss) {
            return refuse("issuer", "The logout names another issuer.");
        }
    }
    let now = now_secs();
    if let Err(e) = core
        .sessions
        .end_by_idp(name, "", &[sid.to_string()], now)
        .await
    {
        log::error!("front-channel logout for {name}: the sessions could not be ended in the shared store: {e}");
        return Answer::store_unavailable(true);
    }
    core.metrics.signed_out(name);
    core.metrics.idp_logout(name, "frontchannel", "ended");
    crate::logging::audit(
        "sign_out",
        serde_json::json!({"provider": name, "sid": sid, "initiator": "idp_frontchannel"}),
    );
    let frame = oidc
        .issuer_origin()
        .map(|o| format!("frame-ancestors {o}"))
        .unwrap_or_else(|| "frame-ancestors 'none'".into());
    Answer::html(
        200,
        "<!doctype html><title>Signed out</title><p>Signed out.</p>".into(),
    )
    .header(
        "content-security-policy",
        format!("default-src 'none'; {frame}"),
    )
    .header("pragma", "no-cache".to_string())
}

fn valid_sid(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SID && s.bytes().all(|b| b.is_ascii_graphic())
}
