//! SAML single logout at `/_authgate/saml/<name>/slo`: the IdP's LogoutRequest, in the
//! HTTP-Redirect or HTTP-POST binding, believed only when the IdP signed it (see
//! `idp::saml_logout`); it ends the sessions it names, this browser's and, through the
//! session layer, any copy of their cookies. The answer is a LogoutResponse back to the IdP,
//! signed when the SP has a key. The IdP's LogoutResponse to our own logout shows the
//! signed-out page.

use crate::answer::Answer;
use crate::canonical::RESERVED_PREFIX;
use crate::exchange::{first, query_pairs, read_form, Downstream};
use crate::identity::Identity;
use crate::idp::saml::{LogoutInput, SamlProvider};
use crate::idp::saml_logout::{LogoutRejection, LogoutRequest};
use crate::idp::saml_verify;
use crate::return_to;
use crate::session::now_secs;
use crate::state::Core;

pub(crate) async fn slo(
    core: &Core,
    down: &mut dyn Downstream,
    saml: &SamlProvider,
) -> pingora::Result<Answer> {
    let signed_out = core.public(&format!("{RESERVED_PREFIX}/signed_out"));
    let (input, relay) = match read_request(core, down).await? {
        Ok(read) => read,
        Err(too_large) => return Ok(too_large),
    };
    let Some(input) = input else {
        // The IdP's LogoutResponse to the logout this gateway started at sign-out, when the
        // session was already revoked: nothing to believe, only a page to show.
        return Ok(Answer::redirect(signed_out).cookie(core.cookies.clear_session(down.req())));
    };
    let verified = match saml.logout_request(input).await {
        // One use per LogoutRequest, on every replica.
        Ok(r) => match core
            .sessions
            .first_use("logout", &r.id, saml.logout_replay_ttl())
            .await
        {
            Ok(true) => Ok(r),
            Ok(false) => Err(LogoutRejection::Replay(r.id)),
            Err(e) => {
                log::warn!(
                    "SAML logout request for {}: single-use check failed: {e}",
                    saml.name
                );
                return Ok(Answer::store_unavailable(true));
            }
        },
        Err(why) => Err(why),
    };
    let request = match verified {
        Ok(r) => r,
        Err(why) => {
            core.metrics.deny(why.reason());
            log::warn!(
                "SAML logout request for {} refused ({}): {why}",
                saml.name,
                why.reason()
            );
            let detail = format!("Reason: {}", why.reason());
            return Ok(Answer::page(
                400,
                "Sign-out request refused",
                "The identity provider's sign-out request could not be verified, so no session was ended.",
                Some(&detail),
            ));
        }
    };
    let presented: Vec<String> = core
        .cookies
        .sessions(down.req())
        .map(str::to_string)
        .collect();
    let ended_here = match end_sessions(core, presented, saml, &request).await {
        Ok(here) => here,
        Err(unavailable) => return Ok(unavailable),
    };
    crate::logging::audit(
        "sign_out",
        serde_json::json!({"provider": saml.name, "name_id": request.name_id,
            "session_indexes": request.session_indexes, "initiator": "idp",
            "request": request.id, "this_browser": ended_here}),
    );
    let relay = relay.filter(|r| relay_ok(core, saml, r));
    let location = saml
        .logout_response_url(&request.id, relay.as_deref())
        .map(|u| u.to_string())
        .unwrap_or(signed_out);
    let answer = Answer::redirect(location);
    Ok(if ended_here {
        answer.cookie(core.cookies.clear_session(down.req()))
    } else {
        answer
    })
}

/// The LogoutRequest (either binding) and its RelayState; no request: a LogoutResponse.
/// `Err`: the answer to a form too large to read.
async fn read_request(
    core: &Core,
    down: &mut dyn Downstream,
) -> pingora::Result<Result<(Option<LogoutInput>, Option<String>), Answer>> {
    if down.req().method != http::Method::POST {
        let q = query_pairs(down.req());
        let has_request = q.iter().any(|(n, _)| n == "SAMLRequest");
        let relay = first(&q, "RelayState").map(str::to_string);
        let raw = down.req().uri.query().unwrap_or("").to_string();
        return Ok(Ok((
            has_request.then_some(LogoutInput::Redirect(raw)),
            relay,
        )));
    }
    let Some(form) = read_form(down, saml_verify::MAX_RESPONSE_BYTES * 2).await? else {
        core.metrics.deny("logout_too_large");
        return Ok(Err(Answer::page(
            413,
            "Sign-out failed",
            "The sign-out request is too large.",
            None,
        )));
    };
    Ok(Ok(match first(&form, "SAMLRequest") {
        Some(r) => (
            Some(LogoutInput::Post(r.to_string())),
            first(&form, "RelayState").map(str::to_string),
        ),
        None => (None, None),
    }))
}

/// A RelayState is sent back only if opaque or on the gateway's or the IdP's origin.
fn relay_ok(core: &Core, saml: &SamlProvider, relay: &str) -> bool {
    let idp = saml.idp_slo_url();
    let mut origins = vec![&core.cfg.public_url];
    origins.extend(idp.as_ref());
    let ok = return_to::relay_state_ok(relay, &origins);
    if !ok {
        log::warn!(
            "SAML logout request for {}: RelayState {:?} is neither opaque nor on the gateway's or the IdP's origin; not sent back",
            saml.name,
            relay.chars().take(128).collect::<String>()
        );
    }
    ok
}

/// Ends the sessions the IdP's request names: this browser's own, if it is one of them, here
/// and now, and every copy of them everywhere (through the store). Returns whether this
/// browser's ended (`presented`: its session cookies); `Err`: the store could not take it.
async fn end_sessions(
    core: &Core,
    presented: Vec<String>,
    saml: &SamlProvider,
    request: &LogoutRequest,
) -> Result<bool, Answer> {
    let now = now_secs();
    // This browser's own session, if it is one of them, ends here and now...
    let names = |id: &Identity| {
        *id.provider == *saml.name
            && id.name_id.as_deref() == Some(request.name_id.as_str())
            && (request.session_indexes.is_empty()
                || id
                    .session_index
                    .as_deref()
                    .is_some_and(|s| request.session_indexes.iter().any(|r| r == s)))
    };
    let mut ended_here = false;
    for v in presented {
        if let Some(id) = core.sessions.revoke_if(&v, names).await {
            ended_here = true;
            core.metrics.signed_out(&id.provider);
        }
    }
    // ...and every copy of the named sessions' cookies stops working too.
    if let Err(e) = core
        .sessions
        .end_by_idp(&saml.name, &request.name_id, &request.session_indexes, now)
        .await
    {
        // This replica's copy has it (and refuses those sessions); the others would not.
        log::error!(
            "SAML logout request for {}: the sessions of {} could not be ended in the shared store: {e}",
            saml.name, request.name_id
        );
        return Err(Answer::store_unavailable(true));
    }
    Ok(ended_here)
}
