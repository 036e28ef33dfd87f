//! Reading JWT claims: the time checks every token shares, the ID token's own claim rules,
//! and the mapping of claims to an `Identity`. No signature work happens here: callers
//! verify first (`oidc.rs`) and read after.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use super::{entra, IdpError};
use crate::identity::{shared, Identity};

/// `exp` (required), `nbf` and `iat` against `now`, each with `skew` of tolerance.
pub fn token_times(claims: &Value, now: u64, skew: Duration) -> Result<(), String> {
    let skew = skew.as_secs();
    let time = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or_else(|| format!("{name} is not a time in seconds")),
    };
    match time("exp")? {
        None => return Err("token has no exp".into()),
        Some(exp) if exp.saturating_add(skew) <= now => {
            return Err(format!("token expired {}s ago", now - exp))
        }
        Some(_) => {}
    }
    if let Some(nbf) = time("nbf")? {
        if nbf > now.saturating_add(skew) {
            return Err(format!("token not valid before {nbf} (now {now})"));
        }
    }
    if let Some(iat) = time("iat")? {
        if iat > now.saturating_add(skew) {
            return Err(format!("token issued in the future (iat {iat}, now {now})"));
        }
    }
    Ok(())
}

/// The ID token checks beyond the library's: `nbf`/`iat` (`token_times`), and `azp`, which
/// must be this client when present, and present when the token has several audiences.
pub fn id_token_claims(
    claims: &Value,
    client_id: &str,
    now: u64,
    skew: Duration,
) -> Result<(), String> {
    token_times(claims, now, skew)?;
    let several = matches!(claims.get("aud"), Some(Value::Array(a)) if a.len() > 1);
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == client_id => Ok(()),
        Some(azp) => Err(format!(
            "azp {azp} is not this client ({client_id:?}): the token was issued to another app"
        )),
        None if several => Err("token has several audiences but no azp".into()),
        None => Ok(()),
    }
}

pub(crate) fn jwt_part(jwt: &str, n: usize) -> Option<Value> {
    let part = jwt.split('.').nth(n)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub(crate) fn jwt_payload(jwt: &str) -> Option<Value> {
    jwt_part(jwt, 1)
}

pub(crate) fn jwt_kid(jwt: &str) -> Option<String> {
    jwt_part(jwt, 0)?.get("kid")?.as_str().map(str::to_string)
}

/// The callback's `iss` against the discovery issuer (or `{tenantid}` template: any GUID).
pub(crate) fn issuer_matches(issuer: &str, iss: &str) -> bool {
    match issuer.split_once(entra::TENANT_PLACEHOLDER) {
        None => iss == issuer,
        Some((pre, post)) => iss
            .strip_prefix(pre)
            .and_then(|r| r.strip_suffix(post))
            .is_some_and(crate::identity::is_guid),
    }
}

/// The most groups/roles an identity may carry, and the longest value kept.
const MAX_LIST: usize = 1000;
const MAX_VALUE: usize = 512;

pub(crate) fn string_claim(claims: &Value, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) if !s.is_empty() && s.len() <= MAX_VALUE => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A token's `aud`: one string or a list of them.
pub(crate) fn audiences(claims: &Value) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn list_claim(claims: &Value, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= MAX_VALUE && !s.contains(','))
            .take(MAX_LIST)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_VALUE => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The longest claim header value, encoded: a longer value sends no header (never a cut one).
pub const MAX_CLAIM_HEADER: usize = 4096;

/// Percent-encodes what a header value must not carry as is, the same way for every claim:
/// `%`, `,` (the list separator), control bytes, non-ASCII (as its UTF-8 bytes), and a space at
/// either end. Any URL decoder (UTF-8) reads the original back.
pub fn encode_claim_value(v: &str, out: &mut String) {
    let last = v.len().saturating_sub(1);
    for (i, b) in v.bytes().enumerate() {
        let edge_space = b == b' ' && (i == 0 || i == last);
        if !(0x20..0x7f).contains(&b) || b == b'%' || b == b',' || edge_space {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
}

/// Why a configured claim sends no header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsendable {
    /// An object, or a list holding one: not flattened (which member would the app mean?).
    Object,
    /// Longer than `MAX_CLAIM_HEADER` once encoded.
    TooLong,
}

/// One claim as a header value: a string as it is, a number or boolean as JSON writes it, a
/// list comma-joined (each element encoded, so a comma inside one stays `%2C`). `None` for
/// null, an empty string or an empty list: an absent claim is no header.
pub fn claim_header_value(v: &Value) -> Result<Option<String>, Unsendable> {
    fn scalar(v: &Value, out: &mut String) -> Result<bool, Unsendable> {
        match v {
            Value::Null => Ok(false),
            Value::String(s) if s.is_empty() => Ok(false),
            Value::String(s) => {
                encode_claim_value(s, out);
                Ok(true)
            }
            Value::Number(n) => {
                out.push_str(&n.to_string());
                Ok(true)
            }
            Value::Bool(b) => {
                out.push_str(if *b { "true" } else { "false" });
                Ok(true)
            }
            Value::Array(_) | Value::Object(_) => Err(Unsendable::Object),
        }
    }
    let mut out = String::new();
    match v {
        Value::Array(items) => {
            for item in items {
                let mark = out.len();
                if !out.is_empty() {
                    out.push(',');
                }
                if !scalar(item, &mut out)? {
                    out.truncate(mark);
                }
                if out.len() > MAX_CLAIM_HEADER {
                    return Err(Unsendable::TooLong);
                }
            }
        }
        other => {
            scalar(other, &mut out)?;
        }
    }
    if out.len() > MAX_CLAIM_HEADER {
        return Err(Unsendable::TooLong);
    }
    Ok((!out.is_empty()).then_some(out))
}

/// The configured claims (`headers.claims`) a token carries, flattened for their headers;
/// what cannot be sent is left out and logged.
pub fn header_claims(provider: &str, claims: &Value, wanted: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in wanted {
        let Some(v) = claims.get(name) else { continue };
        match claim_header_value(v) {
            Ok(Some(text)) => out.push((name.clone(), text)),
            Ok(None) => {}
            Err(why) => log::warn!(
                "provider {provider}: claim {name:?} sends no header ({})",
                match why {
                    Unsendable::Object =>
                        "an object: name one of its scalar members' claims instead",
                    Unsendable::TooLong => "longer than 4096 bytes once encoded",
                }
            ),
        }
    }
    out
}

/// Maps verified ID token claims to the gateway's identity.
pub fn identity_from_claims(
    provider: &str,
    user_claim: &str,
    claims: &Value,
) -> Result<Identity, IdpError> {
    let user = string_claim(claims, user_claim).ok_or_else(|| {
        IdpError::IdToken(format!(
            "ID token has no usable {user_claim:?} claim (the provider's user_claim)"
        ))
    })?;
    Ok(Identity {
        provider: shared(provider),
        user: user.into(),
        email: string_claim(claims, "email").map(Into::into),
        name: string_claim(claims, "name")
            .or_else(|| string_claim(claims, "preferred_username"))
            .map(Into::into),
        tenant: string_claim(claims, "tid").map(|t| shared(&t)),
        groups: list_claim(claims, "groups").into(),
        roles: list_claim(claims, "roles").into(),
        // The provider's own names for the user and the session there: what a back-channel
        // logout token names.
        name_id: string_claim(claims, "sub").map(Into::into),
        session_index: string_claim(claims, "sid").map(Into::into),
        login_hint: string_claim(claims, "login_hint").map(Into::into),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_values_flatten_predictably() {
        let long = "x".repeat(MAX_CLAIM_HEADER + 1);
        for (v, want) in [
            (json!("Finance"), Ok(Some("Finance"))),
            (json!("Sales, EMEA"), Ok(Some("Sales%2C EMEA"))),
            (json!(42), Ok(Some("42"))),
            (json!(1.5), Ok(Some("1.5"))),
            (json!(true), Ok(Some("true"))),
            (json!(["a", "b,c", 3, null, ""]), Ok(Some("a,b%2Cc,3"))),
            (json!([]), Ok(None)),
            (json!(null), Ok(None)),
            (json!(""), Ok(None)),
            (
                json!("evil\r\nX-Injected: 1"),
                Ok(Some("evil%0D%0AX-Injected: 1")),
            ),
            (json!("Zoë 100%"), Ok(Some("Zo%C3%AB 100%25"))),
            (json!(" padded "), Ok(Some("%20padded%20"))),
            (json!({"street": "x"}), Err(Unsendable::Object)),
            (json!(["a", {"b": 1}]), Err(Unsendable::Object)),
            (json!([["nested"]]), Err(Unsendable::Object)),
            (json!(long), Err(Unsendable::TooLong)),
        ] {
            let got = claim_header_value(&v);
            assert_eq!(
                got.as_ref().map(|o| o.as_deref()),
                want.as_ref().map(|o| *o),
                "{v}"
            );
            if let Ok(Some(text)) = &got {
                assert!(http::HeaderValue::from_str(text).is_ok(), "{text}");
            }
        }
    }
    use crate::identity::List;
    use serde_json::json;

    #[test]
    fn claims_map_to_identity() {
        let c = json!({"sub":"s","oid":"o","tid":"t","email":"a@b","name":"A",
            "groups":["g1","g,2",""],"roles":"R"});
        let id = identity_from_claims("p", "oid", &c).unwrap();
        assert_eq!(&*id.user, "o");
        assert_eq!(id.tenant.as_deref(), Some("t"));
        assert_eq!(id.groups, List::from(["g1"]));
        assert_eq!(id.roles, List::from(["R"]));
        assert!(identity_from_claims("p", "upn", &c).is_err());
    }
}
