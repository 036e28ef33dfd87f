//! Per-route assurance (`routes[].require`): how recently and how strongly the user must
//! have signed in, checked after the route's policy.
//!
//! - `auth_context: c1` (Entra Conditional Access authentication context): the sign-in asks
//!   for `claims={"id_token":{"acrs":{"essential":true,"value":"c1"}}}` and the returned ID
//!   token must list `c1` in `acrs`.
//! - `max_age: 1h`: the IdP's `auth_time` (SAML `AuthnInstant`) must be that recent; the
//!   sign-in sends `max_age` (SAML `ForceAuthn`) and the returned time is verified.
//! - `mfa: true`: OpenID `amr` holding `mfa` or an `acr` of the provider's `mfa_acr_values`
//!   (which the sign-in sends as `acr_values`); SAML `authnmethodsreferences` holding Entra's
//!   `multipleauthn` (the sign-in sends `ForceAuthn`, never `RequestedAuthnContext`).
//!
//! What an IdP proved is kept with the identity (`Identity::assured`, `auth_time`), on
//! every replica that reads the session. A signed-in browser whose session proves too little
//! goes through a step-up sign-in that keeps its session (`endpoints::step_up`); API callers
//! get a 401 naming what to ask for (`challenge`).

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identity::Identity;

/// Entra's `amr`-less way to say MFA in SAML (`…/claims/authnmethodsreferences`).
pub const SAML_METHODS: &str = "http://schemas.microsoft.com/claims/authnmethodsreferences";
pub const SAML_MFA: &str = "http://schemas.microsoft.com/claims/multipleauthn";
/// What `Identity::assured` calls a proven second factor.
pub const MFA: &str = "mfa";

/// A route's `require:`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Require {
    /// An Entra authentication context ID, `c1` … `c99`.
    pub auth_context: Option<String>,
    /// Seconds.
    pub max_age: Option<u64>,
    pub mfa: bool,
}

/// What a session lacks for a route. `label()` is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmet {
    AuthContext,
    Mfa,
    MaxAge,
}

impl Unmet {
    pub fn label(self) -> &'static str {
        match self {
            Unmet::AuthContext => "auth_context_required",
            Unmet::Mfa => "mfa_required",
            Unmet::MaxAge => "max_age_exceeded",
        }
    }
}

impl Require {
    pub fn is_empty(&self) -> bool {
        *self == Require::default()
    }

    /// The first requirement `id` does not meet at `now` (with `skew` of tolerance on times),
    /// in a fixed order.
    pub fn unmet(&self, id: &Identity, now: u64, skew: u64) -> Option<Unmet> {
        if let Some(c) = &self.auth_context {
            if !id.is_assured(c) {
                return Some(Unmet::AuthContext);
            }
        }
        if self.mfa && !id.is_assured(MFA) {
            return Some(Unmet::Mfa);
        }
        if let Some(m) = self.max_age {
            if id.auth_time == 0 || id.auth_time.saturating_add(m + skew) < now {
                return Some(Unmet::MaxAge);
            }
        }
        None
    }

    /// What a sign-in for this route asks for; `session`: the one a step-up upgrades.
    pub fn ask(&self, session: Option<String>) -> Ask {
        Ask {
            auth_context: self.auth_context.clone(),
            max_age: self.max_age,
            mfa: self.mfa,
            session,
        }
    }
}

/// What a sign-in asks the IdP for beyond the provider's own settings, sealed with the
/// pending sign-in (`su`) and verified when the IdP answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ask {
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub auth_context: Option<String>,
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
    #[serde(rename = "f", default, skip_serializing_if = "std::ops::Not::not")]
    pub mfa: bool,
    /// The session a step-up upgrades (its id); `None`: a sign-in without one.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// Why the identity a sign-in returned does not prove what it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotProven {
    /// A bounded metric label.
    pub label: &'static str,
    pub why: String,
}

impl Ask {
    /// Nothing asked beyond a plain sign-in.
    pub fn asks_nothing(&self) -> bool {
        self.auth_context.is_none() && self.max_age.is_none() && !self.mfa
    }

    /// The OpenID `claims` request for an authentication context, for `token`
    /// (`id_token`, or `access_token` in an API caller's challenge).
    pub fn claims_request(&self, token: &str) -> Option<String> {
        let c = self.auth_context.as_ref()?;
        Some(serde_json::json!({ token: {"acrs": {"essential": true, "value": c}} }).to_string())
    }

    /// Whether `id`, fresh from the sign-in this asked for (begun at `started`), proves it.
    /// Only this sign-in counts: an identity from the IdP, never the session's old one.
    pub fn verify(&self, id: &Identity, started: u64, skew: u64) -> Result<(), NotProven> {
        if let Some(c) = &self.auth_context {
            if !id.is_assured(c) {
                return Err(NotProven {
                    label: "auth_context_missing",
                    why: format!("the IdP's answer does not list authentication context {c} in acrs (asked for as essential)"),
                });
            }
        }
        if self.mfa && !id.is_assured(MFA) {
            return Err(NotProven {
                label: "mfa_missing",
                why: "the IdP's answer does not show a second factor (amr/acr, or SAML authnmethodsreferences)".into(),
            });
        }
        if let Some(m) = self.max_age {
            if id.auth_time == 0 {
                return Err(NotProven {
                    label: "stale_auth_time",
                    why: format!("max_age={m} was asked for, but the answer has no auth_time"),
                });
            }
            // The sign-in must be no older than `m` when the browser was sent.
            if id.auth_time.saturating_add(m + skew) < started {
                return Err(NotProven {
                    label: "stale_auth_time",
                    why: format!(
                        "the user last authenticated at {} ({}s before this sign-in began), more than max_age={m}s: the IdP did not sign the user in again",
                        id.auth_time,
                        started.saturating_sub(id.auth_time)
                    ),
                });
            }
        }
        Ok(())
    }

    /// The `WWW-Authenticate` an API caller gets: Entra's `insufficient_claims` with the
    /// base64 claims request for an authentication context (what MSAL acts on), else RFC
    /// 9470's `insufficient_user_authentication` with `max_age` / `acr_values`.
    pub fn challenge(&self, token: &str, acr_values: &[String]) -> String {
        if let Some(claims) = self.claims_request(token) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(claims);
            return format!(
                r#"Bearer error="insufficient_claims", error_description="A stronger or more recent sign-in is required", claims="{b64}""#
            );
        }
        let mut h = String::from(
            r#"Bearer error="insufficient_user_authentication", error_description="A stronger or more recent sign-in is required""#,
        );
        if self.mfa && !acr_values.is_empty() {
            h.push_str(&format!(r#", acr_values="{}""#, acr_values.join(" ")));
        }
        if let Some(m) = self.max_age {
            h.push_str(&format!(", max_age={m}"));
        }
        h
    }
}

/// `now` (the identity a step-up or a re-check returned) keeps what `was` had proven: every
/// context and factor, each with its latest time, and the latest `auth_time`.
pub fn carry(was: &Identity, now: &mut Identity) {
    let proven = now.more.take(|r| &mut r.assured);
    now.more.set(|r| &mut r.assured, was.more.assured.clone());
    now.add_assured(&proven);
    now.auth_time = now.auth_time.max(was.auth_time);
}

/// What an ID or access token proves about the sign-in, verified at `now`: its `auth_time`
/// and the contexts in `acrs`, and `mfa` when `amr` holds `mfa` or `acr` is one of
/// `mfa_acr_values`.
pub fn from_claims(
    claims: &Value,
    mfa_acr_values: &[String],
    now: u64,
) -> (u64, Vec<(String, u64)>) {
    let auth_time = claims
        .get("auth_time")
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        })
        .unwrap_or(0);
    let strings = |name: &str| -> Vec<String> {
        match claims.get(name) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut assured: Vec<(String, u64)> = strings("acrs")
        .into_iter()
        .filter(|c| is_context_id(c))
        .map(|c| (c, now))
        .collect();
    let acr = claims.get("acr").and_then(Value::as_str);
    let mfa = strings("amr").iter().any(|m| m == MFA)
        || acr.is_some_and(|a| mfa_acr_values.iter().any(|v| v == a));
    if mfa {
        assured.push((MFA.to_string(), now));
    }
    assured.dedup();
    (auth_time, assured)
}

/// What a SAML assertion proves: its `AuthnInstant`, and `mfa` when
/// `authnmethodsreferences` holds Entra's `multipleauthn`.
pub fn from_saml(
    authn_instant: Option<u64>,
    methods: Option<&[String]>,
    now: u64,
) -> (u64, Vec<(String, u64)>) {
    let mfa = methods.is_some_and(|m| m.iter().any(|v| v == SAML_MFA));
    (
        authn_instant.unwrap_or(0),
        if mfa {
            vec![(MFA.to_string(), now)]
        } else {
            Vec::new()
        },
    )
}

/// An authentication context ID as Entra writes them: `c` and a number (`c1` … `c99`).
pub fn is_context_id(s: &str) -> bool {
    s.len() >= 2
        && s.len() <= 3
        && s.starts_with('c')
        && s[1..].bytes().all(|b| b.is_ascii_digit())
        && !s[1..].starts_with('0')
}

/// At most this many values of one claim are kept for the rules, each at most this long (a
/// session's memory stays bounded whatever a token carries; a longer value matches nothing).
const MAX_RULE_CLAIM_VALUES: usize = 256;
const MAX_RULE_CLAIM_VALUE: usize = 1024;

/// A claim's values as a session keeps them for the rules: within the bounds above.
pub fn bounded(values: Vec<String>) -> Vec<String> {
    values
        .into_iter()
        .filter(|v| v.len() <= MAX_RULE_CLAIM_VALUE)
        .take(MAX_RULE_CLAIM_VALUES)
        .collect()
}

/// The values of the claims rules name, from verified ID-token or access-token claims:
/// strings as they are, numbers and booleans as their JSON text, an array's scalar elements.
pub fn rule_claims(claims: &Value, names: &[String]) -> Vec<(String, Vec<String>)> {
    names
        .iter()
        .filter_map(|n| {
            let scalar = |v: &Value| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(x) => Some(x.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            let values: Vec<String> = match claims.get(n)? {
                Value::Array(a) => a.iter().filter_map(scalar).collect(),
                one => scalar(one).into_iter().collect(),
            };
            let values = bounded(values);
            (!values.is_empty()).then(|| (n.clone(), values))
        })
        .collect()
}

#[cfg(test)]
mod tests;
