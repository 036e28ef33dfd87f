//! Sign-out: a confirmation page (GET) and a POST bound to the session by a sealed token, so
//! a cross-site link or image cannot sign anyone out; then, where the provider supports it,
//! on to the IdP to end its session too. `/signed_out` is where that ends.

use crate::answer::Answer;
use crate::canonical::RESERVED_PREFIX;
use crate::cookies::LOGIN_TTL;
use crate::exchange::Downstream;
use crate::identity::Identity;
use crate::pages;
use crate::session::{now_secs, Grant};
use crate::state::Core;

/// The most a sign-out form may weigh.
const MAX_FORM: usize = 4096;

pub(crate) fn signed_out() -> Answer {
    Answer::page(
        200,
        "You have signed out",
        "Your session with this gateway has ended. Close the browser to end other sessions too.",
        None,
    )
}

pub(crate) async fn sign_out(core: &Core, down: &mut dyn Downstream) -> pingora::Result<Answer> {
    let signed_out = core.public(&format!("{RESERVED_PREFIX}/signed_out"));
    let presented: Vec<String> = core
        .cookies
        .sessions(down.req())
        .map(session_digest)
        .collect();
    if down.req().method != http::Method::POST {
        if !matches!(
            crate::authenticate::session_of(core, down).await,
            Ok(Some(_))
        ) {
            return Ok(Answer::redirect(signed_out).cookie(core.cookies.clear_session(down.req())));
        }
        let token = presented
            .first()
            .and_then(|d| core.cookies.seal_sign_out(&(d, now_secs())))
            .unwrap_or_default();
        let html = pages::confirm(
            "Sign out?",
            "This ends your session with this gateway and, where the identity provider supports it, with the provider too.",
            &format!("{RESERVED_PREFIX}/sign_out"),
            &[("token", &token)],
            "Sign out",
        );
        return Ok(Answer::html(200, html));
    }
    let cross_site = down
        .req()
        .headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site" || v.as_bytes() == b"same-site");
    let body = down.body(MAX_FORM).await?;
    let token = body
        .as_deref()
        .and_then(|b| {
            url::form_urlencoded::parse(b)
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    let now = now_secs();
    let valid = !cross_site
        && body.is_some()
        && core
            .cookies
            .open_sign_out::<(String, u64)>(&token)
            .is_some_and(|(d, t)| {
                now.saturating_sub(t) < LOGIN_TTL.as_secs() && presented.contains(&d)
            });
    if !valid {
        core.metrics.deny("sign_out_unconfirmed");
        log::warn!("sign-out refused: no valid confirmation token (cross-site request, expired page, or another session's token)");
        return Ok(Answer::page_with(
            403,
            "Sign-out not confirmed",
            "This sign-out did not come from the gateway's confirmation page, or the page is too old. Your session is unchanged.",
            None,
            Some((&format!("{RESERVED_PREFIX}/sign_out"), "Sign out")),
        ));
    }
    let grant = grant_presented(core, down).await;
    let who = revoke_presented(core, down).await;
    let location = match &who {
        Some(id) => {
            crate::logging::audit(
                "sign_out",
                serde_json::json!({"provider": id.provider, "user": id.user, "tenant": id.tenant}),
            );
            core.provider(&id.provider)
                .and_then(|p| p.sign_out_url(id, grant.as_ref(), &signed_out))
                .map(|u| u.to_string())
                .unwrap_or(signed_out)
        }
        None => signed_out,
    };
    Ok(Answer::see_other(location)
        .cookie(core.cookies.clear_session(down.req()))
        .cookie(core.cookies.clear_loop_trips()))
}

/// What the first session cookie presented kept from its sign-in (for the IdP's logout).
async fn grant_presented(core: &Core, down: &mut dyn Downstream) -> Option<Grant> {
    let value = core.cookies.sessions(down.req()).next()?.to_string();
    core.sessions.grant_of(&value).await
}

/// Revokes every session cookie the request presents; returns the identity it belonged to.
async fn revoke_presented(core: &Core, down: &mut dyn Downstream) -> Option<Identity> {
    let values: Vec<String> = core
        .cookies
        .sessions(down.req())
        .map(str::to_string)
        .collect();
    let mut who = None;
    for v in values {
        if let Some(id) = core.sessions.revoke(&v).await {
            core.metrics.signed_out(&id.provider);
            who = Some(id);
        }
    }
    who
}

/// What a sign-out token is bound to: a digest of the session cookie it was issued for.
fn session_digest(cookie_value: &str) -> String {
    let d = openssl::sha::sha256(cookie_value.as_bytes());
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}
