//! Sign-in without secrets, against the real `oidc-provider` verifying client assertions for
//! real (`private_key_jwt`): a certificate credential signs in, refreshes and asks the Graph
//! stand-in with no secret configured anywhere; a client-assertion file (workload identity) is
//! read at every token request; what the IdP refuses (another key, a wrong audience, an
//! expired assertion) and an unusable file end in a clear page.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine;
use common::*;
use serde_json::{json, Value};

const CERT_CLIENT: &str = "authgate-cert";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// An RSA key and a self-signed certificate for it, written to `dir` as `<name>.crt/.key`.
struct ClientCert {
    cert: PathBuf,
    key: PathBuf,
    pkey: openssl::pkey::PKey<openssl::pkey::Private>,
}

fn client_cert(dir: &Path, name: &str) -> ClientCert {
    let (cert, key, pkey) = common::pki::self_signed_rsa(dir, name);
    ClientCert { cert, key, pkey }
}

/// The public key as the IdP registers it (the app's uploaded certificate).
fn jwks(c: &ClientCert) -> String {
    let rsa = c.pkey.rsa().expect("rsa");
    json!({"keys": [{
        "kty": "RSA", "use": "sig",
        "n": B64.encode(rsa.n().to_vec()), "e": B64.encode(rsa.e().to_vec()),
    }]})
    .to_string()
}

/// A client assertion signed with `c`'s key, as a federated token file would hold one.
fn assertion(c: &ClientCert, aud: &str, jti: &str, exp_in: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let header = B64.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string());
    let claims = B64.encode(
        json!({"iss": CERT_CLIENT, "sub": CERT_CLIENT, "aud": aud, "jti": jti,
               "iat": now, "exp": now + exp_in})
        .to_string(),
    );
    let input = format!("{header}.{claims}");
    let mut s = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &c.pkey)
        .expect("signer");
    s.update(input.as_bytes()).expect("update");
    format!("{input}.{}", B64.encode(s.sign_to_vec().expect("sign")))
}

fn op_counts(op: &OpenIdProvider) -> Value {
    api()
        .get(format!("http://127.0.0.1:{}/test/counts", op.port))
        .send()
        .and_then(|r| r.json())
        .expect("counts")
}

fn token_endpoint(op: &OpenIdProvider) -> String {
    let d: Value = api()
        .get(format!("{}/.well-known/openid-configuration", op.issuer))
        .send()
        .and_then(|r| r.json())
        .expect("discovery");
    d["token_endpoint"]
        .as_str()
        .expect("token_endpoint")
        .to_string()
}

/// A fresh browser signs in at `gw` as `user`: the final status and page.
fn try_sign_in(gw: &str, user: &str) -> (u16, String) {
    let (r, _) = Browser::new().sign_in(&format!("{gw}/x"), user);
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// A gateway whose one OpenID provider is the test provider's certificate client, with
/// `credential` (YAML lines) as its client credential.
fn cert_client_gateway(port: u16, op: &OpenIdProvider, upstream: u16, credential: &str) -> Gateway {
    let provider = format!(
        "  - name: test-idp\n    type: oidc\n    issuer: \"{}\"\n    client_id: {CERT_CLIENT}\n{credential}",
        op.issuer
    );
    let cfg = ConfigBuilder::binary(port, &format!("http://127.0.0.1:{port}"), free_port())
        .provider_written(&provider)
        .route(RouteSpec::new("app", &format!("127.0.0.1:{upstream}")));
    start_built(&cfg)
}

fn start_op_with_cert_client(public: &str, provider: &str, c: &ClientCert) -> OpenIdProvider {
    start_op_for(&[public], provider, 0, &[("CERT_CLIENT_JWKS", jwks(c))])
}

#[test]
fn a_certificate_signs_in_refreshes_and_asks_graph_with_no_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = client_cert(dir.path(), "gateway");
    let (port, admin) = (free_port(), free_port());
    let public = format!("http://127.0.0.1:{port}");
    let upstream = start_upstream();
    let op = start_op_with_cert_client(&public, "entra", &cert);
    let up = format!("127.0.0.1:{}", upstream.port);
    let provider = format!(
        "  - name: entra\n    type: entra\n    instance: \"{inst}\"\n    tenant: \"{TENANT}\"\n    client_id: {CERT_CLIENT}\n    client_certificate_file: \"{c}\"\n    client_key_file: \"{k}\"\n    graph_url: \"{inst}/graph\"\n    scopes: [openid, profile, email, offline_access, \"api://authgate-reports/.default\"]\n    group_names:\n      \"{ADMINS}\": Admins",
        inst = op.instance(),
        c = cert.cert.display(),
        k = cert.key.display(),
    );
    let cfg = ConfigBuilder::binary(port, &public, admin)
        .provider_written(&provider)
        .route(
            RouteSpec::new("reports", &up)
                .prefix("/reports")
                .with("pass_access_token:\n  scope: \"api://authgate-reports/.default\""),
        )
        .route(
            RouteSpec::new("admin", &up)
                .prefix("/admin")
                .groups(&["Admins"]),
        )
        .tail("  store: memory");
    let yaml = cfg.yaml();
    assert!(
        !yaml.contains("client_secret"),
        "no secret anywhere:\n{yaml}"
    );
    let gw = start_built(&cfg);

    // Olivia has too many groups for her token: the gateway's Graph token comes from the
    // client-credentials grant, authenticated by the certificate too.
    let olivia = Browser::new();
    let (r, _) = olivia.sign_in(&format!("{}/admin/", gw.url), "olivia");
    assert_eq!(r.status(), 200, "{}", gw.log_text());
    assert!(gw.log_text().contains("230 groups from Graph"));
    // A refresh (for an access token) with the certificate as well.
    let seen = echo(olivia.api_get(&format!("{}/reports/x", gw.url)));
    let at = seen["headers"]["x-auth-access-token"]
        .as_str()
        .expect("access token");
    let claims: Value =
        serde_json::from_slice(&B64.decode(at.split('.').nth(1).expect("jwt")).expect("b64"))
            .expect("claims");
    assert_eq!(claims["aud"], "api://authgate-reports");
    let counts = op_counts(&op);
    assert_eq!(counts["refresh"], 1, "{counts}");
    // Code redemption, Graph's token, the refresh: each with its own signed assertion.
    assert!(counts["client_assertions"].as_u64() >= Some(3), "{counts}");
    assert_eq!(counts["client_errors"], json!([]), "{counts}");
}

#[test]
fn a_key_the_idp_does_not_know_ends_in_a_clear_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registered = client_cert(dir.path(), "registered");
    let other = client_cert(dir.path(), "other");
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let upstream = start_upstream();
    let op = start_op_with_cert_client(&public, "test-idp", &registered);
    let credential = format!(
        "    client_certificate_file: \"{}\"
    client_key_file: \"{}\"",
        other.cert.display(),
        other.key.display()
    );
    let gw = cert_client_gateway(port, &op, upstream.port, &credential);
    let (status, body) = try_sign_in(&gw.url, "alice");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("Sign-in failed") && body.contains("invalid_client"),
        "{body}"
    );
    let counts = op_counts(&op);
    assert!(
        counts["client_errors"][0]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid_client")),
        "{counts}"
    );
}

#[test]
fn an_assertion_file_is_read_at_every_token_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = client_cert(dir.path(), "federated");
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let upstream = start_upstream();
    let op = start_op_with_cert_client(&public, "test-idp", &cert);
    let file = dir.path().join("azure-identity-token");
    let credential = format!("    client_assertion_file: \"{}\"", file.display());
    let gw = cert_client_gateway(port, &op, upstream.port, &credential);
    let aud = token_endpoint(&op);
    let sign_in = || try_sign_in(&gw.url, "alice");

    // Missing, then empty: a clear 503 page, the gateway still serving.
    let (status, body) = sign_in();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("azure-identity-token"), "{body}");
    std::fs::write(&file, "").expect("empty");
    let (status, body) = sign_in();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("is empty"), "{body}");

    // A token: signed in, and the IdP saw that token.
    std::fs::write(&file, assertion(&cert, &aud, "first", 600)).expect("token");
    assert_eq!(sign_in().0, 200);
    assert_eq!(op_counts(&op)["last_assertion_jti"], "first");
    // The kubelet replaced it: the next token request sends the new one (the old one again
    // would be a replay the IdP refuses).
    std::fs::write(&file, assertion(&cert, &aud, "second", 600)).expect("token");
    assert_eq!(sign_in().0, 200);
    assert_eq!(op_counts(&op)["last_assertion_jti"], "second");

    // What the IdP refuses ends in a clear page naming its error.
    for (token, what) in [
        (
            assertion(&cert, "https://elsewhere.example/token", "wrong-aud", 600),
            "another audience",
        ),
        (assertion(&cert, &aud, "expired", -120), "expired"),
        (
            assertion(&client_cert(dir.path(), "stranger"), &aud, "stranger", 600),
            "another key",
        ),
    ] {
        std::fs::write(&file, token).expect("token");
        let (status, body) = sign_in();
        assert_eq!(status, 400, "{what}: {body}");
        assert!(body.contains("invalid_client"), "{what}: {body}");
    }
    assert!(gw.log_text().contains("client credential"), "logged");
}
