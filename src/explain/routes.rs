//! What a pasted ID or access token would meet on each route that accepts its provider:
//! the route's `require:` (an authentication context, a second factor, a recent sign-in) and
//! its claim rules (`allow.claims`, `deny:`). Facts for the admin, not the token's verdict:
//! a token good for one route may be refused on another.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Check, Outcome};
use crate::config::Config;
use crate::idp::claims::{identity_from_claims, jwt_part};
use crate::idp::settings::{OidcConfig, ProviderConfig};

/// One line per route of `cfg` accepting `provider` whose `require:` or claim rules could
/// refuse the token `jwt`, as of `at`.
pub(super) fn checks(
    cfg: &Config,
    provider: &ProviderConfig,
    oidc: &OidcConfig,
    jwt: &str,
    at: DateTime<Utc>,
) -> Vec<Check> {
    let Some(claims) = jwt_part(jwt, 1) else {
        return Vec::new();
    };
    let now = u64::try_from(at.timestamp()).unwrap_or(0);
    let mut id = match identity_from_claims(&provider.name, &oidc.user_claim, &claims) {
        Ok(id) => id,
        Err(_) => return Vec::new(),
    };
    let (auth_time, assured) = crate::assurance::from_claims(&claims, &oidc.mfa_acr_values, now);
    id.auth_time = auth_time;
    id.more.set(|r| &mut r.assured, assured);
    let rules = crate::assurance::rule_claims(&claims, &oidc.rule_claims);
    id.more.set(|r| &mut r.rule_claims, rules);
    let mut out = Vec::new();
    for route in cfg
        .routes
        .iter()
        .filter(|r| r.accepts.contains(&provider.name))
    {
        if !route.require.is_empty() {
            out.push(require_check(
                &route.name,
                &route.require,
                &id,
                &claims,
                now,
                oidc,
            ));
        }
        let rules = route.policy.claim_names().next().is_some();
        if rules {
            out.push(match crate::policy::decide(&route.policy, &id) {
                Ok(()) => Check::new(
                    &format!("route {} policy", route.name),
                    Outcome::Info,
                    "allows this user (claims as in the token; groups beyond an overage and SCIM provisioning are not looked up here)",
                ),
                Err(deny) => Check::new(
                    &format!("route {} policy", route.name),
                    Outcome::Info,
                    format!("refuses this user: {}", deny.label()),
                ),
            });
        }
    }
    out
}

fn require_check(
    route: &str,
    require: &crate::assurance::Require,
    id: &crate::identity::Identity,
    claims: &Value,
    now: u64,
    oidc: &OidcConfig,
) -> Check {
    let name = format!("route {route} require");
    let skew = oidc.clock_skew.as_secs();
    let Some(unmet) = require.unmet(id, now, skew) else {
        return Check::new(&name, Outcome::Info, "met: no step-up needed");
    };
    let why = match unmet {
        crate::assurance::Unmet::AuthContext => format!(
            "acrs is {}, without {}: the gateway asks for it with claims={}",
            claims.get("acrs").map_or("absent".into(), Value::to_string),
            require.auth_context.as_deref().unwrap_or(""),
            require
                .ask(None)
                .claims_request("id_token")
                .unwrap_or_default()
        ),
        crate::assurance::Unmet::Mfa => format!(
            "no second factor shown (amr {}, acr {})",
            claims.get("amr").map_or("absent".into(), Value::to_string),
            claims.get("acr").map_or("absent".into(), Value::to_string)
        ),
        crate::assurance::Unmet::MaxAge => match claims.get("auth_time").and_then(Value::as_u64) {
            Some(t) => format!(
                "auth_time {t} is {}s old, more than max_age {}s",
                now.saturating_sub(t),
                require.max_age.unwrap_or(0)
            ),
            None => "no auth_time".into(),
        },
    };
    Check::new(&name, Outcome::Info, format!("fails ({}): {why}; a browser would be sent through a step-up sign-in", unmet.label()))
        .fix(match unmet {
            crate::assurance::Unmet::AuthContext => Some("Entra: create the authentication context (Conditional Access → Authentication contexts) and a Conditional Access policy that targets it; the app must request it (the gateway does)".into()),
            _ => None,
        })
}
