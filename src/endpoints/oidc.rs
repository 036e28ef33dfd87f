//! `/_authgate/callback/<provider>`: the OpenID Connect authorization response. The state
//! must name a sign-in this browser started (its sealed cookie) and not have been used; an
//! IdP error is explained (Entra's AADSTS codes with the IDs its support asks for), never
//! answered with another redirect to the IdP; a code is exchanged and its ID token verified
//! by the provider (`idp::oidc`).

use crate::answer::Answer;
use crate::canonical::RESERVED_PREFIX;
use crate::cookies::LOGIN_TTL;
use crate::exchange::{first, is_token, query_pairs, Downstream};
use crate::idp::entra::AadError;
use crate::idp::oidc::PendingLogin;
use crate::idp::IdpError;
use crate::state::Core;

use super::sign_in;

pub(crate) async fn callback(
    core: &Core,
    down: &mut dyn Downstream,
    provider_name: &str,
) -> Answer {
    let Some(provider) = core.provider(provider_name).cloned() else {
        return Answer::unknown_provider();
    };
    let q = query_pairs(down.req());
    let get = |k: &str| first(&q, k);
    let fail = |reason: &str| core.metrics.count_sign_in(provider.name(), reason);
    let restart = core.public(&format!("{RESERVED_PREFIX}/sign_in?rd=%2F"));

    let Some(state) = get("state").filter(|s| is_token(s)) else {
        fail("bad_state");
        log::warn!("sign-in callback for {provider_name} refused: missing or malformed state");
        return Answer::page(
            400,
            "Sign-in failed",
            "The sign-in response had no valid state. Start again.",
            None,
        );
    };
    let clear = core.cookies.clear_login(state);
    let pending: Option<PendingLogin> =
        core.cookies.pending_login(down.req(), state, provider_name);
    let Some(pending) = pending else {
        fail("state_mismatch");
        log::warn!("sign-in callback for {provider_name} refused: state does not match a sign-in started in this browser (expired, replayed across browsers, or cookies blocked)");
        // The login cookie (if any) is left alone: it may belong to a genuine sign-in still
        // in flight, and a forged callback must not be able to cancel it.
        return Answer::sign_in_failed(
            400,
            "This sign-in was not started in this browser, or it took too long. Start again.",
            None,
            &restart,
        );
    };
    if let Err(refused) = first_use(core, provider_name, state, &restart, &clear).await {
        return refused;
    }
    if let Some(err) = get("error") {
        return idp_error(core, provider_name, err, &q).cookie(clear);
    }
    let Some(code) = get("code").filter(|c| !c.is_empty() && c.len() <= 4096) else {
        fail("bad_callback");
        return Answer::sign_in_failed(400, "The sign-in response had no code.", None, &restart)
            .cookie(clear);
    };
    let crate::idp::Provider::Oidc(oidc) = &*provider else {
        return Answer::page(
            404,
            "Not found",
            "This provider does not use this callback.",
            None,
        );
    };
    let (identity, grant) = match oidc.finish(&pending, code, get("iss")).await {
        Ok(done) => done,
        Err(IdpError::Denied(deny, why)) => {
            return sign_in::denied(core, provider_name, deny, &why, vec![clear]);
        }
        Err(e) => {
            fail(e.reason());
            log::warn!("sign-in with {provider_name} failed ({}): {e}", e.reason());
            return Answer::sign_in_error(&e, &restart).cookie(clear);
        }
    };
    let clear = vec![clear];
    if let Some(refused) = sign_in::realm_refused(
        core,
        provider_name,
        &identity,
        pending.hr.as_ref(),
        &pending.r,
        &clear,
    ) {
        return refused;
    }
    let audit = serde_json::json!({"protocol": "oidc", "realm": pending.hr.as_ref().map(|h| &h.d)});
    let back = super::start::Back {
        to: pending.r.clone(),
        binding: pending.hb.clone(),
    };
    let name = provider.name();
    match &pending.su {
        Some(ask) => {
            let asked = (ask, pending.t);
            let grant = Some(grant);
            super::step_up::finish(
                core, down, name, identity, grant, asked, &back, clear, audit,
            )
            .await
        }
        None => sign_in::complete(core, name, identity, Some(grant), &back, clear, audit).await,
    }
}

/// One use per state, on every replica (the store's single-use check): the answer to a
/// replayed callback is refused before the code reaches the IdP (and its pending sign-in
/// cleared; when the store cannot tell, it is kept for a retry).
async fn first_use(
    core: &Core,
    provider: &str,
    state: &str,
    restart: &str,
    clear: &str,
) -> Result<(), Answer> {
    let fail = |reason: &str| core.metrics.count_sign_in(provider, reason);
    match core.sessions.first_use("state", state, LOGIN_TTL).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            fail("replay");
            log::warn!(
                "sign-in callback for {provider} refused: this callback was already used (replay)"
            );
            Err(Answer::sign_in_failed(
                400,
                "This sign-in response was already used.",
                None,
                restart,
            )
            .cookie(clear.to_string()))
        }
        Err(e) => {
            fail("store_unavailable");
            log::warn!("sign-in callback for {provider} refused: single-use check failed: {e}");
            Err(Answer::store_unavailable(true))
        }
    }
}

/// The IdP answered with `error=...`: Entra's errors carry an AADSTS code and the IDs its
/// support asks for; other IdPs' parse the same way, without them. Never a redirect back to
/// the IdP from here.
fn idp_error(core: &Core, provider: &str, err: &str, q: &[(String, String)]) -> Answer {
    let e = AadError::parse(
        err,
        first(q, "error_description").unwrap_or(""),
        first(q, "error_uri"),
    );
    core.metrics.count_sign_in(provider, e.reason());
    let detail = e.detail();
    log::warn!(
        "provider {provider} returned an error ({}): {}",
        e.reason(),
        detail.trim_end().replace('\n', "; ")
    );
    let (status, title, message) = e.explain();
    Answer::page(status, title, message, Some(&detail))
}
