//! Entry points for the coverage-guided fuzzers (`fuzz/`, run with `scripts/fuzz.sh`) and for
//! the corpus replay every test run makes (`tests/fuzz_corpus.rs`). Each takes arbitrary
//! bytes, feeds one parser that faces the network or the operator, and asserts what must hold
//! of its answer: a panic is a finding, whether the parser's or an invariant's.

use std::sync::OnceLock;

use crate::canonical::{self, Exceptions};
use crate::idp::saml_verify::{self, Expect, Trust};

/// One target: arbitrary bytes in, a panic for a finding.
pub type Target = fn(&[u8]);

/// The targets, by name (the fuzzers' and the corpus directories' names).
pub const TARGETS: &[(&str, Target)] = &[
    ("request_head", request_head),
    ("forward_auth", forward_auth),
    ("sealed_cookie", sealed_cookie),
    ("saml_response", saml_response),
    ("saml_logout", saml_logout),
    ("scim", scim),
    ("jwt", jwt),
    ("jwt_signature", jwt_signature),
    ("config", config),
    ("explain_input", explain_input),
];

/// A request head from bytes: `METHOD TARGET` on the first line, then `name: value` lines.
/// `None` when pingora itself would not have built it.
fn head(data: &[u8]) -> Option<pingora::http::RequestHeader> {
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let (method, target) = lines.next()?.split_once(' ')?;
    let mut req = pingora::http::RequestHeader::build(method, target.as_bytes(), None).ok()?;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim_start().to_string();
            let _ = req.append_header(name.to_string(), value);
        }
    }
    Some(req)
}

/// The canonical reading: what it accepts is normalized (absolute, no dot segments, no
/// empty segment, no raw control or space characters) and reads the same again.
pub fn request_head(data: &[u8]) {
    let Some(req) = head(data) else { return };
    for allowed in [
        Exceptions::default(),
        Exceptions {
            path_parameters: true,
            encoded_slash: true,
        },
    ] {
        let Ok(c) = canonical::of(&req, allowed) else {
            continue;
        };
        assert!(c.path.starts_with('/'), "not absolute: {:?}", c.path);
        for bad in ["/./", "/../", "//"] {
            assert!(!c.path.contains(bad), "{bad} in {:?}", c.path);
        }
        assert!(
            !c.path.ends_with("/.") && !c.path.ends_with("/.."),
            "{:?}",
            c.path
        );
        assert!(
            !c.path.bytes().any(|b| b <= b' ' || b == 0x7f),
            "raw control or space in {:?}",
            c.path
        );
        // Read again, the normalized target is itself.
        let mut again = match pingora::http::RequestHeader::build(
            req.method.as_str(),
            c.target().as_bytes(),
            None,
        ) {
            Ok(r) => r,
            Err(e) => panic!("the normalized target {:?} is unreadable: {e}", c.target()),
        };
        if let Some(a) = &c.authority {
            let _ = again.insert_header("host", a.as_str());
        }
        let twice = canonical::of(&again, allowed)
            .unwrap_or_else(|e| panic!("{:?} refused on a second reading: {e:?}", c.target()));
        assert_eq!(twice.path, c.path, "not stable");
        assert_eq!(twice.host, c.host, "host not stable");
    }
}

/// The forward-auth description of the original request, in each dialect: what is read is
/// canonical, as the proxy's own reading is.
pub fn forward_auth(data: &[u8]) {
    use crate::forward_auth::{original, Dialect};
    let Some(req) = head(data) else { return };
    for d in [
        Dialect::Nginx,
        Dialect::Traefik,
        Dialect::Caddy,
        Dialect::Envoy,
    ] {
        if let Ok(o) = original(&req, d, Exceptions::default(), "/_authgate/ext_authz") {
            let p = &o.canonical.path;
            assert!(
                p.starts_with('/') && !p.contains("/../") && !p.contains("//"),
                "{p:?}"
            );
        }
    }
}

/// Sealed cookies: nothing but what the gateway sealed opens (a fixed key here: a forgery
/// that opens is a finding), and what it seals opens to the same value.
pub fn sealed_cookie(data: &[u8]) {
    static SEALER: OnceLock<Option<crate::seal::Sealer>> = OnceLock::new();
    let Some(sealer) = SEALER
        .get_or_init(|| crate::seal::Sealer::new(b"fuzzing-secret-0123456789abcdef-0123"))
        .as_ref()
    else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    let opened: Option<serde_json::Value> = sealer.open_any("authgate_session", &text);
    assert!(
        opened.is_none(),
        "a value the gateway never sealed opened: {text:?}"
    );
    let sealed = sealer.seal("authgate_session", &text.to_string());
    // The opener refuses oversized input before decrypting (no cookie the gateway sets is
    // that large: sessions over `MAX_COOKIE_VALUE` are refused when made).
    if let Some(s) = sealed.filter(|s| s.len() <= crate::seal::MAX_COOKIE_VALUE * 2) {
        assert_eq!(
            sealer.open::<String>("authgate_session", &s).as_deref(),
            Some(&*text)
        );
        assert!(
            sealer.open::<String>("another_cookie", &s).is_none(),
            "opened under another name"
        );
    }
}

/// A real Entra response (2024, assertion signed) and its certificate.
fn entra() -> &'static (Trust, String) {
    static ENTRA: OnceLock<(Trust, String)> = OnceLock::new();
    ENTRA.get_or_init(|| {
        let xml = include_str!("../tests/fixtures/saml/entra/entra2024_spring_demo_response.xml");
        let pem = include_str!("../tests/fixtures/saml/entra/entra2024_accesscontrol_cert.pem");
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body)
            .unwrap_or_default();
        let trust = Trust {
            idp_entity_id: "https://sts.windows.net/603e9946-79fd-42bc-bae2-2abda19cb695/".into(),
            certs: vec![samael::crypto::CertificateDer::from(der)],
        };
        (trust, xml.to_string())
    })
}

/// SAML responses: whatever verifies names the subject the IdP signed (signature wrapping
/// must never move the verified statements onto another assertion).
pub fn saml_response(data: &[u8]) {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let (trust, signed) = entra();
    let expect = Expect {
        sp_entity_id: "spn:95210223-1471-47de-8f76-c0f420c1738f",
        acs_url: "http://localhost:8080/saml/SSO",
        request_id: Some("ARQe02d7b7-ac3d-4b0d-bb17-6c54ef3b08f1"),
        allow_idp_initiated: false,
        clock_skew: std::time::Duration::from_secs(300),
    };
    let at = chrono::DateTime::parse_from_rfc3339("2024-03-21T13:55:00Z")
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default();
    let _ = saml_verify::decode_post(xml);
    if let Ok(v) = saml_verify::verify(xml, trust, &expect, at) {
        let original = saml_verify::verify(signed, trust, &expect, at)
            .map(|o| o.name_id)
            .unwrap_or_default();
        assert_eq!(
            v.name_id, original,
            "a verified response names another subject"
        );
    }
}

/// SAML logout requests and responses, in both bindings: read or refused, never a panic.
pub fn saml_logout(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    crate::idp::saml_logout::fuzz(&text);
}

/// SCIM filters, attribute paths and PATCH bodies; a PATCH that applies leaves a resource
/// that passes the same checks a create does.
pub fn scim(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    crate::scim::fuzz(which, &text);
}

/// JWTs and key sets: the claim readers every token goes through, on any payload.
pub fn jwt(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::idp::claims::jwt_payload(&text);
    let _ = crate::idp::claims::jwt_kid(&text);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ =
            crate::idp::claims::token_times(&v, 1_700_000_000, std::time::Duration::from_secs(60));
        let _ = crate::idp::claims::id_token_claims(
            &v,
            "client",
            1_700_000_000,
            std::time::Duration::from_secs(60),
        );
        let _ = crate::idp::claims::identity_from_claims("p", "sub", &v);
        let _ = crate::idp::claims::header_claims("p", &v, &["department".into(), "groups".into()]);
        let _ = crate::assurance::from_claims(&v, &["urn:mfa".into()], 1);
        let _ = crate::assurance::rule_claims(&v, &["department".into(), "tags".into()]);
        let _ = serde_json::from_value::<openidconnect::core::CoreJsonWebKeySet>(v);
    }
}

/// The configuration reader: any text is a configuration or a list of errors, each with
/// its path.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = crate::config::Config::parse(text, &|_| None) {
        for e in &errors.0 {
            assert!(
                !e.message.is_empty(),
                "an error without a message at {:?}",
                e.path
            );
        }
    }
}

/// `authgate explain`'s input detection.
pub fn explain_input(data: &[u8]) {
    let _ = crate::explain::classify(&String::from_utf8_lossy(data));
}

/// The test provider of `jwt_signature`: its issuer, audience and client.
const FUZZ_ISSUER: &str = "http://127.0.0.1:9/fuzz";
const FUZZ_AUDIENCE: &str = "api://fuzz";
/// A logout token's clock (its seed's `iat` + 10 s).
pub const FUZZ_LOGOUT_NOW: u64 = 1_700_000_010;

/// A provider loaded offline with one RSA key (tests/fixtures/fuzz/jwt-test-rsa.pem, a
/// test-only key), and a runtime to run its checks on.
struct JwtRig {
    rt: tokio::runtime::Runtime,
    provider: crate::idp::oidc::OidcProvider,
}

fn jwt_rig() -> Result<&'static JwtRig, &'static str> {
    static RIG: OnceLock<Result<JwtRig, String>> = OnceLock::new();
    RIG.get_or_init(|| {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let pem = include_bytes!("../tests/fixtures/fuzz/jwt-test-rsa.pem");
        let key = openssl::rsa::Rsa::private_key_from_pem(pem).map_err(|e| e.to_string())?;
        let jwks = serde_json::json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256",
            "kid": "fuzz-1", "n": b64.encode(key.n().to_vec()), "e": b64.encode(key.e().to_vec())}]});
        let discovery = serde_json::json!({"issuer": FUZZ_ISSUER,
            "authorization_endpoint": format!("{FUZZ_ISSUER}/authorize"),
            "token_endpoint": format!("{FUZZ_ISSUER}/token"),
            "jwks_uri": format!("{FUZZ_ISSUER}/jwks"),
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"]});
        let yaml = format!(
            "listen: [\"127.0.0.1:1\"]\npublic_url: http://gw.test\nproviders:\n  - {{name: fuzz, type: oidc, issuer: \"{FUZZ_ISSUER}\", client_id: fuzz-client, client_secret: s, api_audience: \"{FUZZ_AUDIENCE}\"}}\nroutes:\n  - {{name: app, upstream: \"127.0.0.1:1\"}}\nsession: {{secret: \"fuzz-session-secret-0123456789abcdef0123\"}}\n"
        );
        let cfg = crate::config::Config::parse(&yaml, &|_| None).map_err(|e| e.to_string())?;
        let Some(crate::idp::settings::ProviderKind::Oidc(o)) = cfg.providers.first().map(|p| &p.kind) else {
            return Err("no OpenID provider".into());
        };
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new().map_err(|e| e.to_string())?);
        let redirect = url::Url::parse("http://gw.test/_authgate/callback/fuzz").map_err(|e| e.to_string())?;
        let provider =
            crate::idp::oidc::OidcProvider::new("fuzz".into(), o.clone(), redirect, metrics)
                .map_err(|e| e.to_string())?;
        provider
            .load_documents(discovery.to_string().as_bytes(), jwks.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(JwtRig { rt, provider })
    })
    .as_ref()
    .map_err(String::as_str)
}

/// The signing inputs (`header.payload`) the seed corpus's tokens were signed over with the
/// test key (fuzz/corpus/jwt_signature/): nothing else was ever signed with it.
const SIGNED_BY_THE_TEST_KEY: &[&str] = &[
    include_str!("../tests/fixtures/fuzz/bearer.signing-input"),
    include_str!("../tests/fixtures/fuzz/logout.signing-input"),
];

/// JWT signatures, bearer access tokens and back-channel logout tokens against a provider
/// whose key set holds one test key. The first byte picks the check (`b` bearer, `l` logout,
/// else both). Invariant: a token that verifies is one the key's holder signed (its signing
/// input is a seed's), so no mutation of header, payload, algorithm or `kid` gets through.
pub fn jwt_signature(data: &[u8]) {
    let rig = match jwt_rig() {
        Ok(rig) => rig,
        Err(why) => panic!("the jwt_signature rig does not load: {why}"),
    };
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (which, token) = match text.as_bytes().first() {
        Some(b'b') => (1, &text[1..]),
        Some(b'l') => (2, &text[1..]),
        _ => (3, text),
    };
    let signed = |token: &str| {
        let input = token.rsplit_once('.').map_or("", |(i, _)| i);
        assert!(
            SIGNED_BY_THE_TEST_KEY.iter().any(|s| s.trim() == input),
            "a token nobody signed verified: {token}"
        );
    };
    if which & 1 != 0 && rig.rt.block_on(rig.provider.verify_bearer(token)).is_ok() {
        signed(token);
    }
    if which & 2 != 0 {
        let verified = rig
            .rt
            .block_on(rig.provider.verify_logout_token(token, FUZZ_LOGOUT_NOW));
        if verified.is_ok() {
            signed(token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rig is real: its seeds verify (so the invariant is reached), and the same tokens
    /// changed by one character, or under another algorithm, do not.
    #[test]
    fn jwt_signature_seeds_verify_and_their_mutants_do_not() {
        let rig = jwt_rig().unwrap_or_else(|e| panic!("the rig: {e}"));
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/jwt_signature");
        let read = |f: &str| std::fs::read_to_string(root.join(f)).expect("seed");
        let bearer = read("seed-bearer");
        let logout = read("seed-logout");
        let verify_bearer = |t: &str| rig.rt.block_on(rig.provider.verify_bearer(t));
        let verify_logout = |t: &str| {
            rig.rt
                .block_on(rig.provider.verify_logout_token(t, FUZZ_LOGOUT_NOW))
        };
        let id = verify_bearer(&bearer[1..]).expect("the bearer seed verifies");
        assert_eq!(&*id.user, "fuzz-user");
        let out = verify_logout(&logout[1..]).expect("the logout seed verifies");
        assert_eq!(out.sub.as_deref(), Some("fuzz-user"));
        // A bearer token is no logout token, and the other way round.
        assert!(verify_logout(&bearer[1..]).is_err());
        assert!(verify_bearer(&logout[1..]).is_err());
        for seed in ["seed-alg-none", "seed-hs256", "seed-other-kid"] {
            assert!(verify_bearer(&read(seed)[1..]).is_err(), "{seed}");
        }
        let token = &bearer[1..];
        let dot = token.find('.').expect("a JWT") + 5;
        let mut flipped = token.as_bytes().to_vec();
        flipped[dot] = if flipped[dot] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).expect("ASCII");
        assert!(
            verify_bearer(&flipped).is_err(),
            "a changed payload verified"
        );
        jwt_signature(bearer.as_bytes());
        jwt_signature(logout.as_bytes());
    }
}
