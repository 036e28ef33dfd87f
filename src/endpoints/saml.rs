//! `/_authgate/saml/<provider>/acs` and `/metadata`: the assertion consumer service (the
//! IdP's HTTP-POST of `SAMLResponse`, SP- or IdP-initiated) and the SP metadata an admin
//! gives the IdP. Verification is the provider's (`idp::saml`, `idp::saml_verify`).

use crate::answer::Answer;
use crate::canonical::RESERVED_PREFIX;
use crate::exchange::{first, is_token, read_form, Downstream};
use crate::identity::Identity;
use crate::idp::saml::{PendingSaml, SamlProvider};
use crate::idp::saml_verify;
use crate::return_to;
use crate::state::Core;

use super::sign_in;

pub(crate) fn metadata(saml: &SamlProvider) -> Answer {
    Answer::new(
        200,
        "application/samlmetadata+xml",
        saml.sp_metadata().into_bytes(),
    )
}

pub(crate) async fn acs(
    core: &Core,
    down: &mut dyn Downstream,
    saml: &SamlProvider,
) -> pingora::Result<Answer> {
    let name = saml.name.clone();
    let fail = |reason: &str| core.metrics.count_sign_in(&name, reason);
    let restart = core.public(&format!("{RESERVED_PREFIX}/sign_in?rd=%2F&provider={name}"));
    if down.req().method != http::Method::POST {
        fail("bad_callback");
        return Ok(Answer::page(
            405,
            "Sign-in failed",
            "The SAML response must be POSTed here by the identity provider.",
            None,
        ));
    }
    // The form, bounded: a hostile client does not get to stream megabytes into memory.
    let limit = saml_verify::MAX_RESPONSE_BYTES * 2;
    let Some(form) = read_form(down, limit).await? else {
        fail("too_large");
        log::warn!("SAML sign-in with {name} refused: POST body over {limit} bytes");
        return Ok(Answer::page(
            413,
            "Sign-in failed",
            "The sign-in response is too large.",
            None,
        ));
    };
    let Some(response) = first(&form, "SAMLResponse") else {
        fail("bad_callback");
        return Ok(Answer::sign_in_failed(
            400,
            "The POST carried no SAMLResponse.",
            None,
            &restart,
        ));
    };
    let relay = first(&form, "RelayState").unwrap_or("");
    // SP-initiated: RelayState is the key of the sign-in this browser started.
    let mut clear = Vec::new();
    let pending: Option<PendingSaml> = if is_token(relay) {
        clear.push(core.cookies.clear_login(relay));
        core.cookies.pending_login(down.req(), relay, &name)
    } else {
        None
    };
    let finished = match saml.finish(response, pending.as_ref()).await {
        Ok((identity, verified)) => match once(core, saml, &verified).await {
            Ok(true) => Ok((identity, verified)),
            Ok(false) => Err(saml_verify::AssertionRejection::Replay(
                verified.assertion_id,
            )),
            Err(()) => {
                fail("store_unavailable");
                return Ok(Answer::store_unavailable(true).cookies(clear));
            }
        },
        Err(rejection) => Err(rejection),
    };
    match finished {
        Ok((identity, verified)) => Ok(signed_in(
            core,
            down,
            saml,
            identity,
            &verified,
            pending.as_ref(),
            relay,
            clear,
        )
        .await),
        // A passive re-authentication the IdP could not do without the user (no session
        // there): a normal sign-in follows, back to the same page.
        Err(saml_verify::AssertionRejection::IdpStatus { code, message })
            if pending.as_ref().is_some_and(|p| p.pv) =>
        {
            fail("passive_declined");
            log::info!("passive re-authentication with {name} declined by the IdP ({code}: {message}): signing in again");
            match (
                pending,
                core.providers.iter().position(|p| p.name() == name),
            ) {
                (Some(p), Some(i)) => {
                    end_replaced(core, &p, "a declined re-authentication belonged to").await;
                    Ok(super::start::start(core, down, i, p.r, clear))
                }
                _ => Ok(Answer::not_found()),
            }
        }
        Err(rejection) => {
            fail(rejection.reason());
            log::warn!(
                "SAML sign-in with {name} refused ({}): {rejection}",
                rejection.reason()
            );
            Ok(Answer::saml_rejected(&rejection, &restart).cookies(clear))
        }
    }
}

/// One use per assertion, on every replica: `Ok(false)` for a replay, `Err` when the store
/// cannot tell (logged).
async fn once(
    core: &Core,
    saml: &SamlProvider,
    verified: &saml_verify::Verified,
) -> Result<bool, ()> {
    let ttl = saml.replay_ttl(verified);
    core.sessions
        .first_use("assertion", &verified.assertion_id, ttl)
        .await
        .map_err(|e| {
            log::warn!(
                "SAML sign-in with {} refused: single-use check failed: {e}",
                saml.name
            )
        })
}

/// A verified, single-use assertion: groups overage resolved, then the session (replacing the
/// one a re-authentication renews), and back to where the sign-in started.
#[allow(clippy::too_many_arguments)]
async fn signed_in(
    core: &Core,
    down: &mut dyn Downstream,
    saml: &SamlProvider,
    mut identity: Identity,
    verified: &saml_verify::Verified,
    pending: Option<&PendingSaml>,
    relay: &str,
    clear: Vec<String>,
) -> Answer {
    let name = &saml.name;
    if let Err((deny, why)) = saml.resolve_overage(&mut identity, verified).await {
        return sign_in::denied(core, name, deny, &why, clear);
    }
    // IdP-initiated: the RelayState may name a return URL, honoured only if same-origin.
    let return_to = match pending {
        Some(p) => p.r.clone(),
        None if !relay.is_empty() => return_to::sanitize(relay, &core.cfg.public_url),
        None => "/".to_string(),
    };
    let realm = pending.and_then(|p| p.hr.as_ref());
    if let Some(refused) = sign_in::realm_refused(core, name, &identity, realm, &return_to, &clear)
    {
        return refused;
    }
    let audit = serde_json::json!({"protocol": "saml", "idp_initiated": pending.is_none(),
        "realm": realm.map(|h| &h.d),
        "assertion": verified.assertion_id, "passive": pending.is_some_and(|p| p.pv)});
    let back = super::start::Back {
        to: return_to,
        binding: pending.and_then(|p| p.hb.clone()),
    };
    let answer = match pending.and_then(|p| p.su.as_ref().map(|ask| (ask, p.t))) {
        Some(asked) => {
            super::step_up::finish(core, down, name, identity, None, asked, &back, clear, audit)
                .await
        }
        None => sign_in::complete(core, name, identity, None, &back, clear, audit).await,
    };
    // A re-authentication: the session it renews is over (the browser holds the new one).
    if let (Some(p), 302) = (pending, answer.status) {
        end_replaced(core, p, "a re-authentication replaced").await;
    }
    answer
}

/// Ends the session a re-authentication was for, if it named one.
async fn end_replaced(core: &Core, pending: &PendingSaml, what: &str) {
    if let Some(old) = pending.rs.as_deref() {
        if let Err(e) = core.sessions.end(old).await {
            log::warn!("the session {what} was not ended (it expires by itself): {e}");
        }
    }
}
