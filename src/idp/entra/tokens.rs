//! Entra's token rules, one function for every token form the gateway accepts (ID tokens,
//! v2.0 and v1.0 access tokens): the tenant's issuer, the token version, and the signing key's
//! own `issuer`.

use std::collections::HashMap;

use serde_json::Value;

use super::{is_guid, TENANT_PLACEHOLDER};

/// The issuer of Entra's v1.0 tokens (access tokens of APIs left at
/// `accessTokenAcceptedVersion: 1` or `null`) is `https://sts.windows.net/{tid}/`.
pub(crate) const V1_ISSUER_PREFIX: &str = "https://sts.windows.net/";

/// Which token versions an API accepts (`api_token_versions`). ID tokens are always v2.0:
/// the gateway signs in at the v2.0 endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub v1: bool,
    pub v2: bool,
}

impl Versions {
    pub const V2: Versions = Versions {
        v1: false,
        v2: true,
    };

    fn describe(self) -> &'static str {
        match (self.v1, self.v2) {
            (true, true) => "[1, 2]",
            (true, false) => "[1]",
            _ => "[2]",
        }
    }
}

/// Why a token's issuer, tenant or signing key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IssuerError {
    #[error("token has no tid claim")]
    NoTenant,
    #[error("token tid {0:?} is not a GUID")]
    TenantNotGuid(String),
    #[error("token iss {iss:?} is not the issuer of its tenant ({expected:?})")]
    IssuerMismatch { iss: String, expected: String },
    #[error(
        "token header names no kid: Entra tokens always do, and each key signs only for its issuer"
    )]
    NoKeyId,
    #[error(
        "signing key {kid:?} may only sign for {key_issuer:?}, not for tenant {tid} (iss {iss:?})"
    )]
    KeyIssuer {
        kid: String,
        key_issuer: String,
        tid: String,
        iss: String,
    },
    #[error("token claims ver {ver:?} but its issuer {iss:?} is of version {form}")]
    VersionClaim {
        ver: String,
        iss: String,
        form: &'static str,
    },
    #[error("{}", version_refusal(*.v1, .accepted))]
    VersionNotAccepted { v1: bool, accepted: &'static str },
}

fn version_refusal(v1: bool, accepted: &str) -> String {
    if v1 {
        format!(
            "v1.0 access token (issuer https://sts.windows.net/<tid>/) not accepted: api_token_versions is {accepted}; set accessTokenAcceptedVersion: 2 in the API app registration's manifest, or add 1 to api_token_versions"
        )
    } else {
        format!("v2.0 access token not accepted: api_token_versions is {accepted}")
    }
}

/// Entra's rules for every token form the gateway accepts (ID tokens, v2.0 and v1.0 access
/// tokens), on a token whose signature has been verified with key `kid`:
/// - `tid` is a GUID, and `iss` is the issuer of exactly that tenant: the discovery issuer
///   (or `{tenantid}` template) with `tid` substituted (v2.0), or `https://sts.windows.net/
///   {tid}/` (v1.0), each only if `versions` accepts it; `ver`, when present, agrees;
/// - the signing key's own `issuer` member, when it has one, names that same tenant, in
///   either form. Microsoft publishes keys of the consumer (MSA) tenant in the `common` key
///   set: without this rule they could sign for any work tenant (Storm-0558).
///
/// `key` is the verified key's `kid` and its `issuer` member. Returns the tenant ID.
pub(crate) fn check_token(
    issuer: &str,
    claims: &Value,
    key: Option<(&str, Option<&str>)>,
    versions: Versions,
) -> Result<String, IssuerError> {
    let tid = claims
        .get("tid")
        .and_then(Value::as_str)
        .ok_or(IssuerError::NoTenant)?;
    if !is_guid(tid) {
        return Err(IssuerError::TenantNotGuid(tid.to_string()));
    }
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    let v2 = issuer.replace(TENANT_PLACEHOLDER, tid);
    let v1 = format!("{V1_ISSUER_PREFIX}{tid}/");
    let (is_v1, form) = if iss == v2 {
        (false, "2.0")
    } else if iss == v1 {
        (true, "1.0")
    } else {
        return Err(IssuerError::IssuerMismatch {
            iss: iss.to_string(),
            expected: v2,
        });
    };
    if let Some(ver) = claims.get("ver") {
        let ver = ver
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| ver.to_string());
        if ver != form {
            return Err(IssuerError::VersionClaim {
                ver,
                iss: iss.to_string(),
                form,
            });
        }
    }
    if !(if is_v1 { versions.v1 } else { versions.v2 }) {
        return Err(IssuerError::VersionNotAccepted {
            v1: is_v1,
            accepted: versions.describe(),
        });
    }
    let Some((kid, key_issuer)) = key else {
        return Err(IssuerError::NoKeyId);
    };
    if let Some(key_issuer) = key_issuer {
        let bound = key_issuer.replace(TENANT_PLACEHOLDER, tid);
        if bound != v2 && bound != v1 {
            return Err(IssuerError::KeyIssuer {
                kid: kid.to_string(),
                key_issuer: key_issuer.to_string(),
                tid: tid.to_string(),
                iss: iss.to_string(),
            });
        }
    }
    Ok(tid.to_string())
}

/// `kid` → the key's `issuer` member, from a raw JWKS (the typed JWKS drops it), and the kids
/// that more than one key claims: which of those keys signed a token, and so which issuer
/// rule applies, is ambiguous, so tokens under such a kid are refused.
pub(crate) fn key_issuers(jwks: &Value) -> (HashMap<String, String>, Vec<String>) {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for k in keys {
        if let Some(kid) = k.get("kid").and_then(Value::as_str) {
            *seen.entry(kid).or_default() += 1;
        }
    }
    let mut ambiguous: Vec<String> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k.to_string())
        .collect();
    ambiguous.sort();
    let issuers = keys
        .iter()
        .filter_map(|k| {
            let kid = k.get("kid")?.as_str()?;
            (seen.get(kid) == Some(&1))
                .then(|| Some((kid.to_string(), k.get("issuer")?.as_str()?.to_string())))?
        })
        .collect();
    (issuers, ambiguous)
}

#[cfg(test)]
mod tests {
    use super::super::MSA_TENANT;
    use super::*;
    use serde_json::json;

    const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/oidc");

    fn fixture(name: &str) -> Value {
        let text = std::fs::read_to_string(format!("{FIX}/{name}")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    const TPL: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
    const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const ANY: Option<(&str, Option<&str>)> = Some(("k", None));
    const BOTH: Versions = Versions { v1: true, v2: true };

    #[test]
    fn issuer_template_substitution() {
        let good =
            json!({"tid": TID, "iss": format!("https://login.microsoftonline.com/{TID}/v2.0")});
        assert_eq!(check_token(TPL, &good, ANY, Versions::V2).unwrap(), TID);
        // tid must be a GUID: a crafted tid cannot steer the substitution.
        let crafted =
            json!({"tid": "x/../y", "iss": "https://login.microsoftonline.com/x/../y/v2.0"});
        assert!(matches!(
            check_token(TPL, &crafted, ANY, Versions::V2),
            Err(IssuerError::TenantNotGuid(_))
        ));
        // iss of another tenant than tid.
        let other = json!({"tid": TID, "iss": "https://login.microsoftonline.com/f8cdef31-a31e-4b4a-93e4-5f571e91255a/v2.0"});
        assert!(matches!(
            check_token(TPL, &other, ANY, Versions::V2),
            Err(IssuerError::IssuerMismatch { .. })
        ));
        assert!(matches!(
            check_token(TPL, &json!({"iss": "x"}), ANY, Versions::V2),
            Err(IssuerError::NoTenant)
        ));
        // No kid: the key's issuer rule cannot be applied, so no token.
        assert_eq!(
            check_token(TPL, &good, None, Versions::V2),
            Err(IssuerError::NoKeyId)
        );
    }

    /// v1.0 only when configured, and the refusal says how to fix it; `ver` must agree.
    #[test]
    fn token_versions() {
        let v1 =
            json!({"tid": TID, "iss": format!("https://sts.windows.net/{TID}/"), "ver": "1.0"});
        let v2 = json!({"tid": TID, "iss": format!("https://login.microsoftonline.com/{TID}/v2.0"), "ver": "2.0"});
        let e = check_token(TPL, &v1, ANY, Versions::V2).unwrap_err();
        assert!(
            e.to_string().contains("accessTokenAcceptedVersion: 2"),
            "{e}"
        );
        assert!(check_token(TPL, &v1, ANY, BOTH).is_ok());
        let only_v1 = Versions {
            v1: true,
            v2: false,
        };
        assert!(check_token(TPL, &v1, ANY, only_v1).is_ok());
        assert!(matches!(
            check_token(TPL, &v2, ANY, only_v1),
            Err(IssuerError::VersionNotAccepted { v1: false, .. })
        ));
        for (iss, ver) in [
            (format!("https://sts.windows.net/{TID}/"), json!("2.0")),
            (
                format!("https://login.microsoftonline.com/{TID}/v2.0"),
                json!("1.0"),
            ),
            (
                format!("https://login.microsoftonline.com/{TID}/v2.0"),
                json!(2),
            ),
        ] {
            let c = json!({"tid": TID, "iss": iss, "ver": ver});
            assert!(
                matches!(
                    check_token(TPL, &c, ANY, BOTH),
                    Err(IssuerError::VersionClaim { .. })
                ),
                "{c}"
            );
        }
    }

    /// The real `common` JWKS: templated keys sign for any tenant after substitution; the
    /// consumer-tenant keys sign only for the consumer tenant, in the v2.0 and the v1.0 form.
    #[test]
    fn real_jwks_key_issuers_restrict_tenants() {
        let jwks = fixture("panva_wellknown_entra-common.jwks.json");
        let (issuers, ambiguous) = key_issuers(&jwks);
        assert_eq!(issuers.len(), 7);
        assert!(ambiguous.is_empty());
        let templated = "Mc7l3Iz93g7uwgNeEmmw_WYGPko";
        let msa = "8IIDH6M8c3cXoeojKme8Jvqsr2Y";
        let key = |kid: &'static str| Some((kid, issuers.get(kid).map(String::as_str)));
        for iss in [
            format!("https://login.microsoftonline.com/{TID}/v2.0"),
            format!("https://sts.windows.net/{TID}/"),
        ] {
            let claims = json!({"tid": TID, "iss": iss});
            assert!(check_token(TPL, &claims, key(templated), BOTH).is_ok());
            assert!(
                matches!(
                    check_token(TPL, &claims, key(msa), BOTH),
                    Err(IssuerError::KeyIssuer { .. })
                ),
                "{claims}"
            );
        }
        for iss in [
            format!("https://login.microsoftonline.com/{MSA_TENANT}/v2.0"),
            format!("https://sts.windows.net/{MSA_TENANT}/"),
        ] {
            let msa_claims = json!({"tid": MSA_TENANT, "iss": iss});
            assert!(check_token(TPL, &msa_claims, key(msa), BOTH).is_ok());
        }
        // The organizations JWKS has no consumer keys.
        let (org, _) = key_issuers(&fixture("panva_wellknown_entra-organizations.jwks.json"));
        assert!(org.values().all(|i| i == TPL));
    }

    #[test]
    fn duplicate_kids_are_ambiguous() {
        let jwks = json!({"keys": [
            {"kid": "a", "issuer": TPL}, {"kid": "b"},
            {"kid": "a", "issuer": format!("https://login.microsoftonline.com/{MSA_TENANT}/v2.0")},
        ]});
        let (issuers, ambiguous) = key_issuers(&jwks);
        assert_eq!(ambiguous, vec!["a".to_string()]);
        assert!(!issuers.contains_key("a"));
    }
}
