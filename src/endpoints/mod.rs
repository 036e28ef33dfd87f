//! The gateway's own endpoints, under `/_authgate/` on every host: each a small handler that
//! reads the request and returns the `Answer` to write. Adding one: a file here and a line in
//! `serve`.
//!
//! - `sign_in`: `/sign_in`, and the sign-in a request without a session starts (`challenge`);
//! - `oidc`: `/callback/<provider>`, the OpenID Connect redirect back;
//! - `saml`: `/saml/<provider>/{acs,metadata}`; `saml_logout`: `/saml/<provider>/slo`;
//! - `sign_out`: `/sign_out` (confirmation page, then POST) and `/signed_out`;
//! - `forward_auth`: `/auth`, an ingress controller's question;
//! - `crate::scim::api`: `/scim/v2/...`, SCIM provisioning (its own module: a protocol).

pub mod forward_auth;
pub mod oidc;
pub mod saml;
pub mod saml_logout;
pub mod sign_in;
pub mod sign_out;

use crate::answer::Answer;
use crate::config::RESERVED_PREFIX;
use crate::exchange::Downstream;
use crate::state::{Core, Shared};

/// Serves a request under the reserved prefix. `path` is the canonical path, under the
/// prefix in some spelling of its case.
pub async fn serve(
    shared: &Shared,
    core: &Core,
    down: &mut dyn Downstream,
    path: &str,
) -> pingora::Result<Answer> {
    let rest = path.get(RESERVED_PREFIX.len()..).unwrap_or("");
    Ok(match rest {
        "/sign_out" => sign_out::sign_out(shared, core, down).await?,
        "/signed_out" => sign_out::signed_out(),
        "/auth" => forward_auth::forward_auth(shared, core, down).await,
        "/sign_in" => sign_in::sign_in(core, down),
        _ if starts_with_ignore_case(rest, crate::scim::PATH) => {
            crate::scim::api::serve(core, down, &rest[crate::scim::PATH.len()..]).await
        }
        _ if rest.starts_with("/saml/") => {
            let mut parts = rest["/saml/".len()..].splitn(2, '/');
            let (name, action) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let Some(p) = core.provider(name).cloned() else {
                return Ok(Answer::unknown_provider());
            };
            let Some(saml) = p.as_saml() else {
                return Ok(Answer::page(
                    404,
                    "Not found",
                    "This provider does not speak SAML.",
                    None,
                ));
            };
            match action {
                "acs" => saml::acs(shared, core, down, saml).await?,
                "metadata" => saml::metadata(saml),
                "slo" => saml_logout::slo(shared, core, down, saml).await?,
                _ => Answer::not_found(),
            }
        }
        _ => match rest.strip_prefix("/callback/") {
            Some(name) => oidc::callback(shared, core, down, name).await,
            None => Answer::not_found(),
        },
    })
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
        && (s.len() == prefix.len() || s[prefix.len()..].starts_with('/'))
}
