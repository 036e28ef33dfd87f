//! OpenID Connect back-channel logout at `/_authgate/backchannel_logout/<provider>`: the
//! provider POSTs a `logout_token` (form-encoded) when a user's session there ends. A token
//! that passes every check (`idp::logout_token`) and was not used before (on any replica)
//! ends the sessions it names, `sub`, `sid` or both, on every replica. The answer is 200, or
//! 400 with `{"error": "invalid_request", ...}` naming the reason; never a redirect.

use std::time::Duration;

use crate::answer::Answer;
use crate::exchange::{first, read_form, Downstream};
use crate::idp::logout_token::{LogoutToken, MAX_AGE_SECS, MAX_LOGOUT_TOKEN};
use crate::idp::Provider;
use crate::session::now_secs;
use crate::state::Core;

/// The largest form read: the token, form-encoded (at most three bytes per byte), and room.
const MAX_FORM: usize = MAX_LOGOUT_TOKEN * 3 + 1024;

pub(crate) async fn backchannel_logout(
    core: &Core,
    down: &mut dyn Downstream,
    name: &str,
) -> pingora::Result<Answer> {
    let refuse = |reason: &str, why: &str| {
        core.metrics.deny("backchannel_logout_refused");
        core.metrics.idp_logout(name, "backchannel", "refused");
        log::warn!("back-channel logout for {name} refused ({reason}): {why}");
        Answer::json(
            400,
            serde_json::json!({"error": "invalid_request", "error_description": format!("{reason}: {why}")}),
        )
    };
    let oidc = match core.provider(name).map(|p| &**p) {
        Some(Provider::Oidc(o)) => o,
        Some(_) => {
            return Ok(refuse(
                "provider",
                "this provider does not speak OpenID Connect",
            ))
        }
        None => return Ok(refuse("provider", "no such provider")),
    };
    if down.req().method != http::Method::POST {
        return Ok(refuse("method", "a logout token is POSTed"));
    }
    let Some(form) = read_form(down, MAX_FORM).await? else {
        return Ok(refuse("too_large", "the request body is too large"));
    };
    let Some(token) = first(&form, "logout_token") else {
        return Ok(refuse("logout_token", "no logout_token in the form"));
    };
    let now = now_secs();
    let verified = match oidc.verify_logout_token(token, now).await {
        Ok(t) => t,
        Err(e) => return Ok(refuse(e.reason(), &e.to_string())),
    };
    // One use per token, on every replica: for as long as its iat is accepted, and a while.
    let ttl = Duration::from_secs(MAX_AGE_SECS) + oidc.cfg.clock_skew * 2;
    let once = format!("{name}:{}", verified.jti);
    match core.sessions.first_use("logout_jti", &once, ttl).await {
        Ok(true) => {}
        Ok(false) => return Ok(refuse("replay", "this logout token was already used")),
        Err(e) => {
            log::error!("back-channel logout for {name}: single-use check failed: {e}");
            return Ok(Answer::store_unavailable(false));
        }
    }
    end(core, name, &verified, now).await
}

/// Ends the sessions the token names, everywhere.
async fn end(core: &Core, name: &str, token: &LogoutToken, now: u64) -> pingora::Result<Answer> {
    let sids: Vec<String> = token.sid.iter().cloned().collect();
    let sub = token.sub.as_deref().unwrap_or("");
    if let Err(e) = core.sessions.end_by_idp(name, sub, &sids, now).await {
        log::error!("back-channel logout for {name}: the sessions could not be ended in the shared store: {e}");
        return Ok(Answer::store_unavailable(false));
    }
    core.metrics.signed_out(name);
    core.metrics.idp_logout(name, "backchannel", "ended");
    crate::logging::audit(
        "sign_out",
        serde_json::json!({"provider": name, "sub": token.sub, "sid": token.sid,
            "initiator": "idp_backchannel", "jti": token.jti}),
    );
    Ok(Answer::new(200, "text/plain; charset=utf-8", Vec::new()))
}
