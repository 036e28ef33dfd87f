//! The gateway's own endpoints, under `/_authgate/` on every host: each a small handler that
//! reads the request and returns the `Answer` to write. Adding one: a file here and a line in
//! `serve`.
//!
//! - `sign_in`: `/sign_in`, and the sign-in a request without a session starts (`challenge`);
//! - `oidc`: `/callback/<provider>`, the OpenID Connect redirect back;
//! - `saml`: `/saml/<provider>/{acs,metadata}`; `saml_logout`: `/saml/<provider>/slo`;
//! - `sign_out`: `/sign_out` (confirmation page, then POST) and `/signed_out`;
//! - `backchannel_logout`: `/backchannel_logout/<provider>`, an OpenID provider's logout token;
//! - `frontchannel_logout`: `/frontchannel_logout/<provider>?sid=`, its logout iframe;
//! - `forward_auth`: `/auth`, an ingress controller's question;
//! - `scim`: `/scim/v2/...`, SCIM provisioning's HTTP side (what it does: `crate::scim`).

pub(crate) mod backchannel_logout;
pub(crate) mod discover;
pub(crate) mod forward_auth;
pub(crate) mod frontchannel_logout;
pub(crate) mod handoff;
pub(crate) mod oidc;
pub(crate) mod preserve_post;
pub(crate) mod saml;
pub(crate) mod saml_logout;
pub(crate) mod scim;
pub(crate) mod sign_in;
pub(crate) mod sign_out;
pub(crate) mod start;
pub(crate) mod step_up;
pub(crate) mod userinfo;

use crate::answer::Answer;
use crate::canonical::{has_prefix_ci, RESERVED_PREFIX};
use crate::exchange::Downstream;
use crate::state::Core;

/// The keys that verify the signed assertion (`assertion:`), for verifiers to fetch and cache
/// (five minutes: a rotation waits longer than that between its steps).
pub(crate) fn jwks(core: &Core, down: &dyn Downstream) -> Answer {
    let method = &down.req().method;
    if method != http::Method::GET && method != http::Method::HEAD {
        return Answer::json_error(405, "method_not_allowed", "GET only")
            .header("allow", "GET, HEAD".into());
    }
    match &core.assertion {
        Some(s) => Answer::new(200, "application/json", s.jwks().to_vec())
            .header("cache-control", "public, max-age=300".into())
            .header("access-control-allow-origin", "*".into()),
        None => Answer::json_error(404, "not_found", "this gateway signs no assertions"),
    }
}

/// Forward-auth's address.
pub(crate) const FORWARD_AUTH_PATH: &str = "/_authgate/auth";

/// The JWKS's well-known address, besides `/_authgate/jwks.json`.
pub(crate) const WELL_KNOWN_JWKS: &str = "/.well-known/authgate/jwks.json";

/// Serves a request under the reserved prefix. `path` is the canonical path, under the
/// prefix in some spelling of its case.
pub(crate) async fn serve(
    core: &Core,
    down: &mut dyn Downstream,
    path: &str,
    host: Option<&str>,
) -> pingora::Result<Answer> {
    let rest = path.get(RESERVED_PREFIX.len()..).unwrap_or("");
    Ok(match rest {
        "/sign_out" => sign_out::sign_out(core, down).await?,
        "/signed_out" => sign_out::signed_out(),
        "/auth" => forward_auth::forward_auth(core, down).await,
        "/sign_in" if down.req().method == http::Method::POST => {
            discover::submit(core, down).await?
        }
        "/sign_in" => sign_in::sign_in(core, down).await,
        "/handoff" => handoff::handoff(core, down, host).await,
        "/post_replay" => preserve_post::offer(core, down).await,
        "/userinfo" => userinfo::userinfo(core, down).await,
        "/jwks.json" => jwks(core, down),
        _ if has_prefix_ci(rest, crate::scim::PATH) => {
            scim::serve(core, down, &rest[crate::scim::PATH.len()..]).await
        }
        _ if rest.starts_with("/saml/") => {
            let mut parts = rest["/saml/".len()..].splitn(2, '/');
            let (name, action) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let Some(p) = core.provider(name).cloned() else {
                return Ok(Answer::unknown_provider());
            };
            let crate::idp::Provider::Saml(saml) = &*p else {
                return Ok(Answer::page(
                    404,
                    "Not found",
                    "This provider does not speak SAML.",
                    None,
                ));
            };
            match action {
                "acs" => saml::acs(core, down, saml).await?,
                "metadata" => saml::metadata(saml),
                "slo" => saml_logout::slo(core, down, saml).await?,
                _ => Answer::not_found(),
            }
        }
        _ if rest.starts_with("/frontchannel_logout/") => {
            let name = &rest["/frontchannel_logout/".len()..];
            frontchannel_logout::frontchannel_logout(core, down, name).await
        }
        _ if rest.starts_with("/backchannel_logout/") => {
            let name = &rest["/backchannel_logout/".len()..];
            backchannel_logout::backchannel_logout(core, down, name).await?
        }
        _ => match rest.strip_prefix("/callback/") {
            Some(name) => oidc::callback(core, down, name).await,
            None => Answer::not_found(),
        },
    })
}
