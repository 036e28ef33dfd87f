//! OpenID Connect back-channel logout against the real `oidc-provider`: a user signing out at
//! the provider ends her gateway session through the provider's own logout token; forged,
//! altered, replayed and misdirected logout tokens are refused with 400 and end nothing.
//!
//! Tokens of the table are signed with the provider's own key (its test-only `/test/sign`),
//! so each case differs from a genuine token in exactly one claim; the key, `alg: none` and
//! HS256 cases are made here.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use common::*;

/// The test provider's second tenant: another issuer, signed with the same key.
const OTHER_TENANT: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";
/// alice's `sub` at the test provider (testenv/oidc-provider.mjs).
const ALICE_SUB: &str = "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

struct World {
    gw: Gateway,
    op: OpenIdProvider,
    _upstream: Upstream,
}

fn start() -> World {
    let (port, admin) = (free_port(), free_port());
    let public = format!("http://127.0.0.1:{port}");
    let upstream = start_upstream();
    let op = start_op_with_sid(&public);
    let other = format!("http://127.0.0.1:{}/{OTHER_TENANT}/v2.0", op.port);
    let cfg = ConfigBuilder::for_binary(port, &public, admin, &op.issuer, upstream.port)
        .oidc("other", &other)
        .user_claim("oid")
        .edit_route("app", |r| r.providers(&["test-idp"]))
        .edit_route("public", |r| r.providers(&["test-idp"]))
        .store("memory");
    let gw = start_built(&cfg);
    World {
        gw,
        op,
        _upstream: upstream,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A logout token as the provider would send it for `sub`, with a fresh `jti`.
fn genuine(w: &World, sub: &str) -> Value {
    json!({
        "iss": w.op.issuer, "aud": CLIENT_ID, "iat": now(), "jti": random_jti(),
        "sub": sub, "events": {EVENT: {}},
    })
}

fn random_jti() -> String {
    format!("{:032x}", rand_u128())
}

fn rand_u128() -> u128 {
    let mut b = [0u8; 16];
    openssl::rand::rand_bytes(&mut b).expect("random");
    u128::from_le_bytes(b)
}

/// Signed by the provider's own key, with `header` members over `alg: RS256` and its kid.
fn signed(w: &World, header: Value, claims: &Value) -> String {
    api()
        .post(format!("http://127.0.0.1:{}/test/sign", w.op.port))
        .json(&json!({"header": header, "claims": claims}))
        .send()
        .expect("sign")
        .text()
        .expect("token")
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// A JWT with `header` and `claims` and a signature made with `sign` over its input.
fn made(header: Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// Signed with a key the provider never had, under the provider's own kid.
fn other_key(w: &World, claims: &Value) -> String {
    let kid = signed(w, json!({}), claims);
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(kid.split('.').next().unwrap_or(""))
            .unwrap_or_default(),
    )
    .unwrap_or(Value::Null);
    let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
    let key = openssl::pkey::PKey::from_rsa(rsa).expect("key");
    made(header, claims, |input| {
        let mut s = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)
            .expect("signer");
        s.update(input).expect("sign");
        s.sign_to_vec().expect("sign")
    })
}

/// POSTs `token` as the provider would; (status, body).
fn post(w: &World, provider: &str, token: &str) -> (u16, String) {
    let r = api()
        .post(format!(
            "{}/_authgate/backchannel_logout/{provider}",
            w.gw.url
        ))
        .form(&[("logout_token", token)])
        .send()
        .expect("post logout token");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn signed_in(b: &Browser, w: &World) -> bool {
    b.api_get(&format!("{}/", w.gw.url)).status() == 200
}

#[test]
fn forged_altered_replayed_and_misdirected_logout_tokens_end_nothing() {
    let w = start();
    let alice = Browser::new();
    alice.sign_in(&format!("{}/", w.gw.url), "alice");
    assert!(signed_in(&alice, &w));
    let base = genuine(&w, ALICE_SUB);
    let secret = CLIENT_SECRET.as_bytes().to_vec();
    let hs256 = made(json!({"alg": "HS256"}), &base, |input| {
        let key = openssl::pkey::PKey::hmac(&secret).expect("hmac key");
        let mut s = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)
            .expect("signer");
        s.update(input).expect("mac");
        s.sign_to_vec().expect("mac")
    });
    let unsigned = made(json!({"alg": "none"}), &base, |_| Vec::new());
    let t = now();
    // (what differs from a genuine token, the token, the reason the answer names)
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong iss",
            signed(
                &w,
                json!({}),
                &merged(base.clone(), json!({"iss": "https://evil.example/v2.0"})),
            ),
            "issuer",
        ),
        (
            "wrong aud",
            signed(
                &w,
                json!({}),
                &merged(base.clone(), json!({"aud": "another-app"})),
            ),
            "audience",
        ),
        ("alg none", unsigned, "signature"),
        ("HS256 with the client secret", hs256, "signature"),
        ("another key", other_key(&w, &base), "signature"),
        (
            "nonce present",
            signed(
                &w,
                json!({}),
                &merged(base.clone(), json!({"nonce": "n-0S6_WzA2Mj"})),
            ),
            "nonce",
        ),
        (
            "events missing",
            signed(
                &w,
                json!({}),
                &merged(base.clone(), json!({"events": null})),
            ),
            "events",
        ),
        (
            "events of another kind",
            signed(
                &w,
                json!({}),
                &merged(
                    base.clone(),
                    json!({"events": {"http://schemas.openid.net/event/other": {}}}),
                ),
            ),
            "events",
        ),
        (
            "neither sub nor sid",
            signed(&w, json!({}), &merged(base.clone(), json!({"sub": null}))),
            "subject",
        ),
        (
            "no iat",
            signed(&w, json!({}), &merged(base.clone(), json!({"iat": null}))),
            "time",
        ),
        (
            "iat in the future",
            signed(
                &w,
                json!({}),
                &merged(base.clone(), json!({"iat": t + 3600})),
            ),
            "time",
        ),
        (
            "iat an hour ago",
            signed(
                &w,
                json!({}),
                &merged(base.clone(), json!({"iat": t - 3600})),
            ),
            "time",
        ),
        (
            "expired",
            signed(
                &w,
                json!({}),
                &merged(base.clone(), json!({"exp": t - 600})),
            ),
            "time",
        ),
        (
            "no jti",
            signed(&w, json!({}), &merged(base.clone(), json!({"jti": null}))),
            "jti",
        ),
        (
            "typ of an access token",
            signed(&w, json!({"typ": "at+jwt"}), &base),
            "typ",
        ),
        ("not a JWT", "not.a.jwt".to_string(), "signature"),
        ("empty", String::new(), "signature"),
        ("larger than 16 KiB", "a".repeat(17 * 1024), "too_large"),
        (
            "a form larger than any token",
            "a".repeat(64 * 1024),
            "too_large",
        ),
    ];
    for (what, token, reason) in &cases {
        let (status, body) = post(&w, "test-idp", token);
        assert_eq!(status, 400, "{what}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(body["error"], "invalid_request", "{what}: {body}");
        let described = body["error_description"].as_str().unwrap_or("");
        assert!(
            described.starts_with(&format!("{reason}:")),
            "{what}: want {reason}, got {described}"
        );
    }
    // Sent to another provider's URL (the other tenant: its own issuer, the same key).
    let (status, body) = post(&w, "other", &signed(&w, json!({}), &base));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("issuer"), "{body}");
    // No such provider; not a POST; no token.
    assert_eq!(post(&w, "nope", &signed(&w, json!({}), &base)).0, 400);
    let get = api()
        .get(format!(
            "{}/_authgate/backchannel_logout/test-idp",
            w.gw.url
        ))
        .send()
        .expect("get");
    assert_eq!(get.status(), 400);
    // Nothing of the above ended alice's session.
    assert!(signed_in(&alice, &w), "alice is still signed in");
    let log = w.gw.log_text();
    assert!(
        log.contains("back-channel logout for test-idp refused (nonce)"),
        "{log}"
    );

    // A genuine token (for someone without a session) is taken once; its replay is refused.
    let nobody = signed(&w, json!({"typ": "logout+jwt"}), &genuine(&w, "nobody-sub"));
    assert_eq!(post(&w, "test-idp", &nobody).0, 200);
    let (status, body) = post(&w, "test-idp", &nobody);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("replay"), "{body}");
    assert!(
        signed_in(&alice, &w),
        "a logout of someone else ends nothing of alice's"
    );
}

#[test]
fn signing_out_at_the_provider_ends_the_gateway_session_through_the_back_channel() {
    let w = start();
    let alice = Browser::new();
    alice.sign_in(&format!("{}/", w.gw.url), "alice");
    let bob = Browser::new();
    bob.sign_in(&format!("{}/", w.gw.url), "bob");
    assert!(signed_in(&alice, &w) && signed_in(&bob, &w));

    // alice signs out at the provider itself (not through the gateway).
    w.op.sign_out(&alice);

    // The provider's logout token reached the gateway: alice's session is over.
    let deadline = Instant::now() + Duration::from_secs(10);
    while signed_in(&alice, &w) {
        assert!(
            Instant::now() < deadline,
            "alice's session outlived her logout at the provider; gateway log:\n{}",
            w.gw.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = alice.get(&format!("{}/", w.gw.url));
    assert_eq!(r.status(), 302, "sent to sign in again");
    assert!(signed_in(&bob, &w), "bob's session stands");
    let log = w.gw.log_text();
    assert!(
        log.contains("\"initiator\":\"idp_backchannel\"") || log.contains("idp_backchannel"),
        "{log}"
    );
    let metrics = scrape(&w.gw.admin);
    assert!(
        metric(&metrics, r#"authgate_sign_outs_total{provider="test-idp"}"#) >= 1.0,
        "{metrics:?}"
    );
}
