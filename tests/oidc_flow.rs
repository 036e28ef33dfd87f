//! End to end: the real gateway binary in front of a real upstream, signing in through a real
//! OpenID provider (npm `oidc-provider`) with Entra-shaped claims.

mod common;

use authgate::identity::Identity;
use authgate::seal::Sealer;
use authgate::session::{now_secs, Ticket};
use common::*;

/// An API request carrying the browser's cookies (JSON back from the upstream).
#[test]
fn sign_in_reaches_upstream_with_identity_headers_and_without_gateway_cookies() {
    let env = start_env("");
    let b = Browser::new();
    let (resp, final_url) = b.sign_in(&format!("{}/reports/q3?x=1&y=2", env.gw.url), "alice");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        final_url,
        format!("{}/reports/q3?x=1&y=2", env.gw.url),
        "returns to the first URL"
    );

    let seen = echo(b.api_get(&format!("{}/reports/q3", env.gw.url)));
    let h = &seen["headers"];
    assert_identity(h, &ALICE, "test-idp");
    let cookie = h["cookie"].as_str().unwrap_or("");
    assert!(
        !cookie.contains("authgate_session"),
        "session cookie leaked upstream: {cookie}"
    );
    // The provider's own cookies share the host (cookies are per host, not port) and pass.
    assert!(
        cookie.contains("op_session"),
        "other cookies must pass untouched: {cookie}"
    );

    // Bob has no roles: the roles header is absent rather than empty.
    let b2 = Browser::new();
    b2.sign_in(&format!("{}/", env.gw.url), "bob");
    let seen = echo(b2.api_get(&format!("{}/", env.gw.url)));
    assert_identity(&seen["headers"], &BOB, "test-idp");

    let metrics = api()
        .get(format!("{}/metrics", env.gw.admin))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(r#"authgate_sign_ins_total{provider="test-idp",result="success"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"authgate_requests_total{route="app",status="200"}"#));
    assert!(metrics.contains("authgate_upstream_duration_seconds_bucket{route=\"app\""));
    let audit = env
        .gw
        .log_text()
        .lines()
        .find(|l| l.contains(r#""event":"sign_in""#) && l.contains(ALICE_OID))
        .map(str::to_string);
    let audit = audit.expect("an audit line for alice's sign-in");
    assert!(
        audit.contains(r#""provider":"test-idp""#) && audit.contains(TENANT),
        "{audit}"
    );
}

#[test]
fn client_sent_identity_headers_never_reach_the_upstream() {
    let env = start_env("");
    let spoofs = [
        ("X-Auth-User", "admin"),
        ("x_auth_user", "admin2"),
        ("X_AUTH_EMAIL", "ceo@contoso.example"),
        ("x-Auth_Groups", "domain-admins"),
        ("X-AUTH-ROLES", "Admin"),
        ("x-auth-tenant", "other-tenant"),
        ("X_Auth-Provider", "forged"),
        ("x-auth-name", "Root"),
    ];
    let with_spoofs = |rb: reqwest::blocking::RequestBuilder| {
        spoofs.iter().fold(rb, |rb, (k, v)| rb.header(*k, *v))
    };
    // Public route: no identity at all may arrive.
    let r = with_spoofs(api().get(format!("{}/public/info", env.gw.url)))
        .send()
        .unwrap();
    let seen = echo(r);
    for (k, _) in seen["headers"].as_object().unwrap() {
        let norm = k.replace('_', "-").to_ascii_lowercase();
        assert!(
            !norm.starts_with("x-auth-"),
            "spoofed {k} reached the upstream: {seen}"
        );
    }
    // Signed in: only the gateway's values arrive.
    let b = Browser::new();
    b.sign_in(&format!("{}/", env.gw.url), "bob");
    let r = with_spoofs(
        b.client
            .get(format!("{}/x", env.gw.url))
            .header("accept", "application/json"),
    )
    .send()
    .unwrap();
    let seen = echo(r);
    let h = seen["headers"].as_object().unwrap();
    assert_eq!(h["x-auth-user"], "00000000-0000-0000-a1c4-7f3e2b1d9c55");
    assert_eq!(h["x-auth-email"], "bob@contoso.example");
    assert!(
        h.get("x-auth-roles").is_none(),
        "spoofed roles survived: {seen}"
    );
    assert!(
        h.keys().all(|k| !k.contains('_')),
        "underscore spelling survived: {seen}"
    );
    assert!(env.gw.log_text().contains("client-sent identity header(s)"));
}

#[test]
fn api_callers_get_401_and_browsers_get_a_pkce_redirect() {
    let env = start_env("");
    let r = api()
        .get(format!("{}/api/items", env.gw.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["content-length"],
        r.content_length().unwrap().to_string().as_str()
    );
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error"], "unauthenticated");
    assert!(body["sign_in"]
        .as_str()
        .unwrap()
        .contains("/_authgate/sign_in?rd=%2Fapi%2Fitems"));

    // XHR and fetch() calls are API calls even when they accept HTML.
    for (k, v) in [
        ("x-requested-with", "XMLHttpRequest"),
        ("sec-fetch-mode", "cors"),
    ] {
        let r = api()
            .get(format!("{}/page", env.gw.url))
            .header("accept", "text/html")
            .header(k, v)
            .send()
            .unwrap();
        assert_eq!(r.status(), 401, "{k}: {v}");
    }
    let r = Browser::new().get(&format!("{}/page", env.gw.url));
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["content-length"], "0");
    let loc = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(
        loc.as_str()
            .starts_with(&format!("{}/auth?", env.op.issuer)),
        "{loc}"
    );
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(
        q["redirect_uri"],
        format!("{}/_authgate/callback/test-idp", env.gw.url)
    );
    assert_eq!(q["state"].len(), 43);
    assert_eq!(q["nonce"].len(), 43);
    assert!(q["scope"].split(' ').any(|s| s == "openid"));
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
}

#[test]
fn tampered_expired_idle_foreign_and_absent_cookies_are_no_session() {
    let env = start_env("");
    let url = format!("{}/data", env.gw.url);
    let b = Browser::new();
    b.sign_in(&url, "alice");
    let good = b
        .cookie(&env.gw.url, "authgate_session")
        .expect("session cookie");
    let with = |v: &str| get_with_session(&url, v).status();
    assert_eq!(with(&good), 200);

    let mut bytes = good.clone().into_bytes();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    assert_eq!(with(&String::from_utf8(bytes).unwrap()), 401, "tampered");
    assert_eq!(with(&good[..good.len() - 4]), 401, "truncated");
    assert_eq!(with("not-a-cookie"), 401, "garbage");
    assert_eq!(with(&"A".repeat(20_000)), 401, "oversized");
    assert_eq!(api().get(&url).send().unwrap().status(), 401, "absent");

    // Tickets minted with the gateway's own secret: valid, expired, idle.
    let sealer = Sealer::new(SESSION_SECRET.as_bytes()).unwrap();
    let now = now_secs();
    let ticket = |iat: u64, exp: u64, seen: u64| Ticket {
        v: 1,
        sid: "test-sid".into(),
        iat,
        exp,
        seen,
        idle: 0,
        id: Some(Identity {
            provider: "test-idp".into(),
            user: "minted".into(),
            ..Default::default()
        }),
    };
    let mint = |t: &Ticket| sealer.seal("authgate_session", t).unwrap();
    assert_eq!(
        with(&mint(&ticket(now - 10, now + 3600, now - 10))),
        200,
        "control: a fresh minted ticket works"
    );
    assert_eq!(
        with(&mint(&ticket(now - 9000, now - 1, now - 100))),
        401,
        "expired"
    );
    assert_eq!(
        with(&mint(&ticket(now - 7200, now + 3600, now - 3700))),
        401,
        "idle past 1h"
    );
    // Sealed for another cookie name (the login cookie's) or with another key: foreign.
    assert_eq!(
        with(
            &sealer
                .seal("authgate_session_login_x", &ticket(now, now + 60, now))
                .unwrap()
        ),
        401
    );
    let other = Sealer::new(&[42u8; 48]).unwrap();
    assert_eq!(
        with(
            &other
                .seal("authgate_session", &ticket(now, now + 60, now))
                .unwrap()
        ),
        401
    );

    let metrics = api()
        .get(format!("{}/metrics", env.gw.admin))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for reason in ["invalid", "expired", "idle"] {
        assert!(
            metrics.contains(&format!(
                "authgate_session_rejections_total{{reason=\"{reason}\"}}"
            )),
            "no {reason} count in\n{metrics}"
        );
    }
}

#[test]
fn state_mismatch_cross_browser_and_replayed_code_are_refused() {
    let env = start_env("");
    let b = Browser::new();
    let callback = b.login_until_callback(&format!("{}/secret", env.gw.url), "alice");
    let cb = reqwest::Url::parse(&callback).unwrap();
    let state: String = cb
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();

    // Another state value than the one this browser started with.
    // (The last character is changed to one it is not: a fixed "A" matched 1 state in 64.)
    let last = if state.ends_with('A') { 'B' } else { 'A' };
    let forged = callback.replace(&state, &format!("{}{last}", &state[..42]));
    assert_eq!(b.get(&forged).status(), 400);
    // The right callback in another browser (no login cookie): refused.
    assert_eq!(Browser::new().get(&callback).status(), 400);

    // Keep the login cookie to replay the callback later.
    let login_cookie_name = format!("authgate_session_login_{}", &state[..16]);
    let login_cookie = b
        .cookie(&format!("{}/_authgate/", env.gw.url), &login_cookie_name)
        .expect("login cookie");
    let r = b.get(&callback);
    assert_eq!(r.status(), 302, "the genuine callback completes");
    assert_eq!(
        r.headers()["location"],
        format!("{}/secret", env.gw.url).as_str()
    );

    let replay = |base: &str| {
        api()
            .get(callback.replace(&env.gw.url, base))
            .header("accept", "text/html")
            .header("cookie", format!("{login_cookie_name}={login_cookie}"))
            .send()
            .unwrap()
    };
    let r = replay(&env.gw.url);
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("already used"));

    // A second replica (same config and public URL, no shared memory) does not know the state
    // was used; the provider refuses the spent code and the gateway fails closed.
    let port2 = free_port();
    let admin2 = free_port();
    let yaml = config_with(
        port2,
        &env.gw.url,
        admin2,
        &env.op.issuer,
        env.upstream.port,
        "",
    );
    let replica = start_gateway(port2, admin2, &yaml);
    let r = replay(&format!("http://127.0.0.1:{port2}"));
    assert_eq!(r.status(), 400);
    let page = r.text().unwrap();
    assert!(page.contains("code exchange failed"), "{page}");
    assert!(page.contains("invalid_grant"), "{page}");
    assert!(replica.log_text().contains("token_exchange"));
    assert!(env.gw.log_text().contains("replay"));
}

#[test]
fn return_urls_never_leave_the_gateway_origin() {
    let env = start_env("");
    let evil = [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "%2F%2Fevil.example",
        "/%2F/evil.example",
        "/%5Cevil.example",
        "https:%2F%2Fevil.example",
        "http://127.0.0.1:1/",
        "javascript:alert(1)",
    ];
    for rd in evil {
        let b = Browser::new();
        let start = format!(
            "{}/_authgate/sign_in?rd={}",
            env.gw.url,
            percent_encoding::utf8_percent_encode(rd, percent_encoding::NON_ALPHANUMERIC)
        );
        let callback = b.login_until_callback(&start, "alice");
        let r = b.get(&callback);
        assert_eq!(r.status(), 302);
        assert_eq!(
            r.headers()["location"],
            format!("{}/", env.gw.url).as_str(),
            "rd={rd:?}"
        );
    }
    // A same-origin target is kept.
    let b = Browser::new();
    let start = format!("{}/_authgate/sign_in?rd=%2Fdocs%3Fpage%3D2", env.gw.url);
    let r = b.get(&b.login_until_callback(&start, "alice"));
    assert_eq!(
        r.headers()["location"],
        format!("{}/docs?page=2", env.gw.url).as_str()
    );
}

#[test]
fn sign_out_ends_the_session_and_goes_to_the_provider() {
    for store in ["", "  store: memory"] {
        let env = start_env(store);
        let b = Browser::new();
        b.sign_in(&format!("{}/", env.gw.url), "alice");
        let cookie = b.cookie(&env.gw.url, "authgate_session").unwrap();
        assert_eq!(b.api_get(&format!("{}/x", env.gw.url)).status(), 200);

        let r = b.sign_out(&env.gw.url);
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        assert!(
            loc.starts_with(&format!("{}/session/end?", env.op.issuer)),
            "{loc}"
        );
        assert!(loc.contains(&format!("client_id={CLIENT_ID}")));
        assert!(loc.contains("post_logout_redirect_uri="));
        let cleared = r.headers()["set-cookie"].to_str().unwrap();
        assert!(
            cleared.starts_with("authgate_session=;") && cleared.contains("Max-Age=0"),
            "{cleared}"
        );

        // A copy of the old cookie no longer works.
        let r = get_with_session(&format!("{}/x", env.gw.url), &cookie);
        assert_eq!(r.status(), 401, "store {store:?}");
        let page = b.get(&format!("{}/_authgate/signed_out", env.gw.url));
        assert_eq!(page.status(), 200);
        assert!(page.text().unwrap().contains("You have signed out"));
    }
}

#[test]
fn unknown_signing_key_triggers_a_jwks_refresh() {
    // Fixed provider port so a restarted provider (new key, new kid) keeps the same issuer.
    let port = free_port();
    let admin = free_port();
    let op_port = free_port();
    let upstream = start_upstream();
    let op = start_op(&format!("http://127.0.0.1:{port}"), op_port);
    let gw = start_gateway(
        port,
        admin,
        &config(port, admin, &op.issuer, upstream.port, ""),
    );
    let (r, _) = Browser::new().sign_in(&format!("{}/", gw.url), "alice");
    assert_eq!(r.status(), 200);
    drop(op);
    let _op2 = start_op(&format!("http://127.0.0.1:{port}"), op_port);
    let (r, _) = Browser::new().sign_in(&format!("{}/", gw.url), "alice");
    assert_eq!(
        r.status(),
        200,
        "sign-in with the rotated key; log:\n{}",
        gw.log_text()
    );
    assert!(gw
        .log_text()
        .contains("signing keys refreshed after an unknown key id"));
}

#[test]
fn path_tricks_are_refused_before_routing() {
    let env = start_env("");
    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public%2f..%2fadmin",
        "/public/.%2e/admin",
    ] {
        let (status, resp) = raw_get(&env.gw.url, path);
        assert_eq!(status, 400, "{path}: {resp}");
    }
    // Encoded unreserved characters are decoded before routing: this is the protected route.
    let r = api()
        .get(format!("{}/%70ublic-not/x", env.gw.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    // And `//public` is the public route, as the upstream will see it.
    let seen = echo(
        api()
            .get(format!("{}//public//a", env.gw.url))
            .send()
            .unwrap(),
    );
    assert_eq!(seen["url"], "/public/a");
}

#[test]
fn provider_errors_show_a_page_not_a_redirect() {
    let env = start_env("");
    let b = Browser::new();
    let r = b.get(&format!("{}/x", env.gw.url));
    let loc = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let state = loc
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let r = b.get(&format!(
        "{}/_authgate/callback/test-idp?error=access_denied&error_description=AADSTS50105%3A+not+assigned&state={state}",
        env.gw.url
    ));
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("location").is_none());
    let page = r.text().unwrap();
    assert!(page.contains("AADSTS50105"), "{page}");
    assert!(page.contains("<!doctype html>"));
}

/// A user in 250 groups on the cookie store: the sealed identity does not fit a cookie. The
/// sign-in stops on a page that says so (and what to change), sets no session, and is logged
/// and counted.
#[test]
fn an_identity_too_large_for_a_cookie_gets_a_clear_page() {
    let env = start_env_with(|b| b.store("cookie"));
    let groups: Vec<String> = (0..250)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    env.op
        .hook("/test/users/bob", serde_json::json!({ "groups": groups }));
    let b = Browser::new();
    let callback = b.login_until_callback(&format!("{}/", env.gw.url), "bob");
    let r = b.get(&callback);
    assert_eq!(r.status(), 413);
    let page = r.text().unwrap();
    assert!(page.contains("too large for this gateway"), "{page}");
    assert!(
        page.contains("cookie_too_large") && page.contains("session.store: memory or redis"),
        "{page}"
    );
    assert!(b
        .cookie(&format!("{}/", env.gw.url), "authgate_session")
        .is_none());
    assert!(env.gw.log_text().contains("too large for a session cookie"));
    let m = scrape(&env.gw.admin);
    assert_eq!(
        metric(
            &m,
            "authgate_sign_ins_total{provider=\"test-idp\",result=\"cookie_too_large\"}"
        ),
        1.0
    );
    // Alice, in two groups, still signs in on the same gateway.
    let (r, _) = Browser::new().sign_in(&format!("{}/", env.gw.url), "alice");
    assert_eq!(r.status(), 200);
}
