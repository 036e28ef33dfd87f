//! A re-check believes the IdP's refresh answer only as it would believe a sign-in, and tells
//! "no" from "not now". A malicious provider (a real HTTP server on loopback) signs the
//! gateway in with a refresh token, then answers its refresh with each row of a table:
//! - refusals and forgeries (`invalid_grant`, no ID token, another user, another key,
//!   `alg: none`, HS256 keyed with the client secret, another audience, another issuer,
//!   expired) end the session: the request is told its sign-in expired, and the session is
//!   refused after;
//! - failures (a 503 page, `temporarily_unavailable`, garbage) keep it within
//!   `recheck_grace`; nothing answers 5xx.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::rogue_op::{self, Answer, Key, RogueOp};
use common::*;
use serde_json::{json, Value};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn claims(base: &str, nonce: Option<&str>) -> Value {
    let t = now();
    let mut c = json!({"iss": format!("{base}/plain"), "aud": CLIENT_ID, "sub": "mallory",
        "oid": "mallory-oid", "iat": t - 5, "exp": t + 600, "sid": "op-session-1"});
    if let Some(n) = nonce {
        c["nonce"] = json!(n);
    }
    c
}

fn tokens(id_token: Option<&str>) -> Answer {
    let mut t = json!({"access_token": "opaque", "token_type": "Bearer", "expires_in": 3600,
        "refresh_token": "rt-next"});
    if let Some(i) = id_token {
        t["id_token"] = json!(i);
    }
    Answer::Json(t)
}

/// Signs in through the provider (which issues a refresh token); returns the session cookie.
fn sign_in(op: &RogueOp, key: &Key, gw: &Gateway) -> String {
    let b = Browser::new();
    let r = b.get(&format!("{}/app", gw.url));
    assert_eq!(r.status(), 302);
    let loc =
        reqwest::Url::parse(r.headers()["location"].to_str().expect("location")).expect("url");
    let q = |k: &str| {
        loc.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| panic!("no {k}"))
    };
    assert!(
        q("scope").split(' ').any(|s| s == "offline_access"),
        "re-checks ask for offline_access"
    );
    let id = key.sign(json!({}), &claims(&op.base, Some(&q("nonce"))));
    op.set("/token", tokens(Some(&id)));
    let r = b.get(&format!(
        "{}/_authgate/callback/plain?code=c0de&state={}",
        gw.url,
        q("state")
    ));
    assert_eq!(r.status(), 302, "{}", r.text().unwrap_or_default());
    b.cookie(&gw.url, "authgate_session").expect("session")
}

fn get(gw: &Gateway, cookie: &str) -> (u16, Value) {
    let r = api()
        .get(format!("{}/app", gw.url))
        .header("cookie", format!("authgate_session={cookie}"))
        .header("accept", "application/json")
        .send()
        .expect("request");
    let s = r.status().as_u16();
    (s, r.json().unwrap_or(Value::Null))
}

#[test]
fn refresh_answers_are_believed_only_as_a_sign_in_would_be() {
    let op = RogueOp::start();
    let (good, other) = (Key::new("good"), Key::new("other"));
    op.discovery("/plain", &format!("{}/plain", op.base), json!({}));
    op.set(
        "/plain/keys",
        Answer::Json(json!({"keys": [good.jwk(None)]})),
    );
    let (port, upstream) = (free_port(), start_upstream());
    let cfg = ConfigBuilder::binary(port, &format!("http://127.0.0.1:{port}"), free_port())
        .oidc("plain", &format!("{}/plain", op.base))
        .route(RouteSpec::new(
            "app",
            &format!("127.0.0.1:{}", upstream.port),
        ))
        .store("memory")
        .tail("  recheck_every: 2s\n  recheck_grace: 30s\n");
    let gw = start_built(&cfg);
    let base = op.base.clone();
    let signed = |c: Value| good.sign(json!({}), &c);
    let fresh = || claims(&base, None);
    let refused: Vec<(&str, Answer)> = vec![
        (
            "invalid_grant",
            Answer::Status(
                400,
                r#"{"error":"invalid_grant","error_description":"user disabled"}"#.into(),
            ),
        ),
        (
            "unauthorized_client",
            Answer::Status(400, r#"{"error":"unauthorized_client"}"#.into()),
        ),
        ("no ID token", tokens(None)),
        (
            "another user",
            tokens(Some(&signed(merged(
                fresh(),
                json!({"sub": "eve", "oid": "eve-oid"}),
            )))),
        ),
        (
            "another key",
            tokens(Some(&other.sign(json!({}), &fresh()))),
        ),
        (
            "alg none",
            tokens(Some(&rogue_op::unsigned("good", &fresh()))),
        ),
        (
            "HS256 keyed with the client secret",
            tokens(Some(&rogue_op::hs256(
                "good",
                CLIENT_SECRET.as_bytes(),
                &fresh(),
            ))),
        ),
        (
            "another audience",
            tokens(Some(&signed(merged(fresh(), json!({"aud": "other-app"}))))),
        ),
        (
            "another issuer",
            tokens(Some(&signed(merged(
                fresh(),
                json!({"iss": format!("{base}/strict")}),
            )))),
        ),
        (
            "expired",
            tokens(Some(&signed(merged(
                fresh(),
                json!({"iat": now() - 7200, "exp": now() - 3600}),
            )))),
        ),
    ];
    for (case, answer) in refused {
        let cookie = sign_in(&op, &good, &gw);
        assert_eq!(get(&gw, &cookie).0, 200, "{case}: signed in");
        op.set("/token", answer);
        std::thread::sleep(Duration::from_millis(2300));
        let (status, body) = get(&gw, &cookie);
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("session_expired")),
            "{case}: {body}"
        );
        assert_eq!(get(&gw, &cookie).0, 401, "{case}: the session stays ended");
    }
    let transient: Vec<(&str, Answer)> = vec![
        (
            "a 503 page",
            Answer::Status(503, "<html>down for maintenance</html>".into()),
        ),
        (
            "temporarily_unavailable",
            Answer::Status(400, r#"{"error":"temporarily_unavailable"}"#.into()),
        ),
        ("garbage", Answer::Chunked(b"{\"access_tok".to_vec())),
    ];
    for (case, answer) in transient {
        let cookie = sign_in(&op, &good, &gw);
        op.set("/token", answer);
        std::thread::sleep(Duration::from_millis(2300));
        for _ in 0..3 {
            assert_eq!(
                get(&gw, &cookie).0,
                200,
                "{case}: kept within recheck_grace"
            );
        }
    }
    // The refresh went out with the token the sign-in kept, never a token from elsewhere.
    let log = op.log.lock().expect("log").join("\n");
    assert!(log.contains("grant_type=refresh_token"), "{log}");
    assert!(log.contains("refresh_token=rt-next"), "{log}");
    let m = scrape(&gw.admin);
    assert_eq!(
        metric(
            &m,
            "authgate_session_rechecks_total{provider=\"plain\",result=\"refused\"}"
        ),
        10.0
    );
    assert!(
        metric(
            &m,
            "authgate_session_rechecks_total{provider=\"plain\",result=\"unreachable\"}"
        ) >= 3.0
    );
    assert!(gw.log_text().contains("ended by its re-check"));
}
