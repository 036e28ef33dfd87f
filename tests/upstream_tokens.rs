//! Tokens on request (`pass_id_token`, `pass_access_token`) through the real binary and the
//! real `oidc-provider`: the upstream receives the session's ID token and an access token whose
//! audience is the configured API, obtained with the session's (rotating) refresh token, kept
//! while fresh and fetched again before it expires. Client copies never pass; nothing is logged.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const API: &str = "api://authgate-reports";

fn op_counts(op: &OpenIdProvider) -> (u64, u64) {
    let c: Value = api()
        .get(format!("http://127.0.0.1:{}/test/counts", op.port))
        .send()
        .and_then(|r| r.json())
        .expect("counts");
    (
        c["refresh"].as_u64().unwrap_or(0),
        c["refresh_errors"].as_u64().unwrap_or(0),
    )
}

fn payload(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .expect("base64url"),
    )
    .expect("claims")
}

fn tokens_seen(url: &str, cookie: &str) -> (String, String) {
    let seen = echo(
        api()
            .get(url)
            .header("cookie", format!("authgate_session={cookie}"))
            .header("X-Auth-Access-Token", "client-made")
            .header("x_auth_id_token", "client-made")
            .send()
            .expect("request"),
    );
    let h = &seen["headers"];
    assert!(h.get("x_auth_id_token").is_none(), "{h}");
    let get = |n: &str| {
        h[n].as_str()
            .unwrap_or_else(|| panic!("no {n}: {h}"))
            .to_string()
    };
    (get("x-auth-id-token"), get("x-auth-access-token"))
}

#[test]
fn the_upstream_gets_the_id_token_and_a_fresh_access_token_for_its_api() {
    let env = start_env_with(|b| {
        b.store("memory")
            .provider_lines(&format!(
                "    scopes: [openid, profile, email, offline_access, \"{API}/.default\"]"
            ))
            .edit_route("app", |r| {
                r.with(&format!(
                    "pass_id_token: true\npass_access_token:\n  scope: \"{API}/.default\""
                ))
            })
    });
    let gw = &env.gw;
    let b = Browser::new();
    assert_eq!(b.sign_in(&format!("{}/x", gw.url), "alice").0.status(), 200);
    let cookie = b
        .cookie(&format!("{}/", gw.url), "authgate_session")
        .expect("session");
    let url = format!("{}/x", gw.url);

    let (id_token, at) = tokens_seen(&url, &cookie);
    let id = payload(&id_token);
    assert_eq!(id["aud"], CLIENT_ID, "the session's own ID token: {id}");
    assert_eq!(id["oid"], ALICE_OID);
    let claims = payload(&at);
    assert_eq!(claims["aud"], API, "an access token for the API: {claims}");
    assert_eq!(claims["oid"], ALICE_OID);
    assert_eq!(
        claims["exp"]
            .as_u64()
            .zip(claims["iat"].as_u64())
            .map(|(e, i)| e - i),
        Some(20)
    );
    assert_eq!(op_counts(&env.op), (1, 0), "one refresh for it");

    // Kept while fresh: the next requests carry the same one, with no new refresh.
    for _ in 0..3 {
        assert_eq!(tokens_seen(&url, &cookie).1, at);
    }
    assert_eq!(op_counts(&env.op).0, 1);

    // In the last quarter of its life a new one is fetched (with the rotated refresh token:
    // the provider revokes the grant if an old one comes back), twice over.
    let mut last = at.clone();
    for round in 2..=3u64 {
        let exp = payload(&last)["exp"].as_u64().expect("exp");
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        while now() < exp - 4 {
            std::thread::sleep(Duration::from_millis(200));
        }
        let fresh = tokens_seen(&url, &cookie).1;
        assert_ne!(fresh, last, "round {round}: renewed before it expired");
        assert!(payload(&fresh)["exp"].as_u64() > Some(exp));
        assert_eq!(op_counts(&env.op), (round, 0), "round {round}");
        last = fresh;
    }

    // A public route carries neither; the log never shows a token.
    let public = echo(get_with_session(&format!("{}/public/x", gw.url), &cookie));
    assert!(public["headers"].get("x-auth-access-token").is_none());
    let log = gw.log_text();
    for t in [&id_token, &at, &last] {
        let sig = t.rsplit('.').next().unwrap_or_default();
        assert!(!log.contains(sig), "a token in the log");
    }
}

#[test]
fn token_routes_are_checked() {
    let yaml = r#"
listen: ["127.0.0.1:8080"]
public_url: "http://gw.example"
providers:
  - name: idp
    type: oidc
    issuer: "https://idp.example"
    client_id: x
    client_secret: "s"
  - name: saml
    type: saml
    entity_id: "https://gw.example/saml"
    idp_metadata_url: "https://idp.example/metadata"
routes:
  - name: open
    path_prefix: /open
    upstream: "127.0.0.1:3000"
    public: true
    provider: idp
    pass_id_token: true
  - name: saml
    path_prefix: /saml-app
    upstream: "127.0.0.1:3000"
    provider: saml
    pass_id_token: {header: X-Token}
  - name: api
    upstream: "127.0.0.1:3000"
    provider: idp
    pass_access_token: {header: "Bad Header"}
  - name: taken
    path_prefix: /taken
    upstream: "127.0.0.1:3000"
    provider: idp
    pass_id_token: {header: X_Auth_User}
    pass_access_token: {scope: "api://x/.default", header: Authorization}
session:
  secret: "0123456789abcdef0123456789abcdef"
"#;
    let (ok, out) = check_config(yaml);
    assert!(!ok, "check must fail:\n{out}");
    assert_config_errors(
        &out,
        &[
            ("routes[0]", "a public route has no session"),
            ("routes[0]", "keep the tokens server-side"),
            ("routes[1]", "speaks SAML"),
            ("routes[2].pass_access_token.scope", "is required"),
            (
                "routes[2].pass_access_token.header",
                "not a valid header name",
            ),
            (
                "routes[3].pass_id_token.header",
                "already an identity, claim or assertion header",
            ),
            (
                "routes[3].pass_access_token.header",
                "the request's own headers",
            ),
        ],
    );
}
