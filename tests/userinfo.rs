//! `/_authgate/userinfo` through the real binary and the real `oidc-provider`: the session's
//! identity as the upstream sees it, for the browser that holds it only; 401 without a
//! session, 403 cross-site, 405 for anything but GET, never cacheable.

mod common;

use common::*;
use serde_json::Value;

fn ask(b: &Browser, url: &str, headers: &[(&str, &str)]) -> (u16, Option<String>, Value) {
    let mut r = b.client.get(url).header("accept", "application/json");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.send().expect("userinfo");
    let cache = r
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (r.status().as_u16(), cache, r.json().unwrap_or(Value::Null))
}

#[test]
fn userinfo_answers_the_session_s_own_browser_only() {
    let env = start_env_with(|b| {
        b.provider_lines(&format!("    group_names:\n      \"{ADMINS}\": Admins"))
    });
    let url = format!("{}/_authgate/userinfo", env.gw.url);
    let b = Browser::new();
    // No session yet.
    let (status, _, body) = ask(&b, &url, &[]);
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthenticated"))
    );

    assert_eq!(
        b.sign_in(&format!("{}/x", env.gw.url), "alice").0.status(),
        200
    );
    let same = [
        ("sec-fetch-site", "same-origin"),
        ("sec-fetch-mode", "cors"),
    ];
    let (status, cache, me) = ask(&b, &url, &same);
    assert_eq!(status, 200, "{me}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert_eq!(me["user"], ALICE_OID);
    assert_eq!(me["email"], "alice@contoso.example");
    assert_eq!(me["name"], "Alice Example");
    assert_eq!(me["tenant"], TENANT);
    assert_eq!(me["provider"], "test-idp");
    assert_eq!(
        me["groups"],
        serde_json::json!(["Admins", STAFF]),
        "names where known"
    );
    assert_eq!(me["roles"], serde_json::json!(["Reader", "Admin"]));
    assert!(me["expires_at"].as_u64().is_some_and(|t| t > 1_700_000_000));
    let text = me.to_string();
    assert!(!text.contains("eyJ"), "no token in it: {text}");

    // Other sites may not ask, whichever way they say where they are.
    for cross in [
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "https://evil.example")],
    ] {
        let (status, _, body) = ask(&b, &url, &cross);
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("cross_site")),
            "{cross:?}"
        );
    }
    let r = b.client.post(&url).send().expect("post");
    assert_eq!(r.status(), 405);
}
