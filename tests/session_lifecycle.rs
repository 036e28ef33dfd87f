//! A session tells the truth for its whole life, against the real `oidc-provider` (rotating
//! refresh tokens, reuse detection) and real gateway binaries:
//! - three replicas on one real Redis with `recheck_every: 3s`: two replicas finding the same
//!   session due at once make exactly one refresh grant at the IdP, and the rotated token is
//!   not lost; alice losing `Admins` at the IdP loses `/admin` on every replica while `/`
//!   still works; a user disabled at the IdP (the refresh answers `invalid_grant`) is told
//!   her sign-in expired, and her session ends on every replica (her open websocket closes
//!   within 1 s); a front-channel logout with only `sid` and no cookie, and a genuine
//!   back-channel logout token, each end a session on every replica;
//! - the IdP down: the session lives within `recheck_grace`, then `deny` ends it and `keep`
//!   keeps it; nothing answers 5xx;
//! - the RP-initiated logout carries `id_token_hint` (a server-side store) and `logout_hint`
//!   (any store: the hint travels with the identity); a table of bad front-channel calls ends
//!   nothing.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use common::redis::start_standalone;
use common::replicas::*;
use common::*;

/// alice's `sub` (the provider's account key) and `login_hint` at the test provider
/// (testenv/oidc-provider.mjs).
const ALICE_SUB: &str = "alice";
const ALICE_LOGIN_HINT: &str = "O.CiQ2ZTZhM2MwYy0xZDg3LTRkMzktOWI5YS05ZDU0YTBmMGExYjE";
const EVERY: Duration = Duration::from_secs(3);

fn op_get(op: &OpenIdProvider, path: &str) -> Value {
    api()
        .get(format!("http://127.0.0.1:{}{path}", op.port))
        .send()
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("GET {path} at the provider: {e}"))
}

fn change_user(op: &OpenIdProvider, user: &str, patch: Value) {
    let r = api()
        .post(format!("http://127.0.0.1:{}/test/users/{user}", op.port))
        .json(&patch)
        .send()
        .expect("change user");
    assert_eq!(r.status(), 200);
}

fn refreshes(op: &OpenIdProvider) -> (u64, u64) {
    let c = op_get(op, "/test/counts");
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("count {k}: {c}"));
    (n("refresh"), n("refresh_errors"))
}

/// A replica with an `/admin` route for `Admins` before the catch-all `app` route.
fn replica_with_admin(
    port: u16,
    public: &str,
    op: &OpenIdProvider,
    upstream: u16,
    session: &str,
) -> Gateway {
    let up = format!("127.0.0.1:{upstream}");
    replica_with(port, public, op, upstream, session, |b| {
        b.routes_first([RouteSpec::new("admin", &up)
            .prefix("/admin")
            .groups(&[ADMINS])])
    })
}

/// Re-checks of the test provider's sessions `gw` counted with `result`.
fn rechecks(gw: &Gateway, result: &str) -> f64 {
    let series =
        format!("authgate_session_rechecks_total{{provider=\"test-idp\",result=\"{result}\"}}");
    metric(&scrape(&gw.admin), &series)
}

fn port_of(gw: &Gateway) -> u16 {
    gw.url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

fn api_status(url: &str, cookie: &str) -> (u16, Value) {
    let r = api()
        .get(url)
        .header("cookie", format!("authgate_session={cookie}"))
        .header("accept", "application/json")
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn rechecks_follow_the_idp_on_three_replicas() {
    let redis = start_standalone();
    let upstream = start_upstream();
    let port_a = free_port();
    let public = format!("http://127.0.0.1:{port_a}");
    let op = start_op_with_sid(&public);
    let session = redis_session(&redis, "lifecycle:", "  recheck_every: 3s\n");
    let a = replica_with_admin(port_a, &public, &op, upstream.port, &session);
    let b = replica_with_admin(free_port(), &public, &op, upstream.port, &session);
    let c = replica_with_admin(free_port(), &public, &op, upstream.port, &session);
    let all = [&a, &b, &c];

    // --- One refresh per session at a time, across replicas; the rotated token is kept.
    let (_alice, cookie) = signed_in(&a, "alice");
    for round in 1..=2 {
        let (before, errors_before) = refreshes(&op);
        // Nothing asks until the session is due on every replica; then all three at once.
        std::thread::sleep(EVERY + Duration::from_millis(300));
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = all
                .iter()
                .flat_map(|gw| (0..3).map(move |_| gw))
                .map(|gw| {
                    let (url, cookie) = (format!("{}/admin/x", gw.url), cookie.clone());
                    s.spawn(move || status_with(&url, &cookie))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("request"))
                .collect()
        });
        assert!(
            statuses.iter().all(|s| *s == 200),
            "round {round}: {statuses:?}"
        );
        // Each replica picks up the renewed session (from Redis, without asking the IdP).
        for gw in all {
            assert_eq!(status_with(&format!("{}/admin/x", gw.url), &cookie), 200);
        }
        let (after, errors_after) = refreshes(&op);
        assert_eq!(
            after - before,
            1,
            "round {round}: exactly one refresh grant at the IdP"
        );
        assert_eq!(
            errors_after, errors_before,
            "round {round}: no refused refresh (a reused token would be)"
        );
    }
    // Whichever replica took the lock renewed it: two renewals in all.
    let renewed: f64 = all.iter().map(|gw| rechecks(gw, "renewed")).sum();
    assert_eq!(renewed, 2.0);

    // --- alice leaves Admins at the IdP: /admin is refused on every replica within
    // recheck_every (plus the spread), while / still works.
    change_user(&op, "alice", json!({"groups": [STAFF]}));
    let changed = Instant::now();
    for gw in all {
        let took = within(EVERY + Duration::from_secs(3), "admin refused", || {
            status_with(&format!("{}/admin/x", gw.url), &cookie) == 403
        });
        eprintln!("{}: /admin refused {took:?} after the change", gw.url);
        assert_eq!(
            status_with(&format!("{}/", gw.url), &cookie),
            200,
            "/ still works"
        );
    }
    assert!(changed.elapsed() < EVERY + Duration::from_secs(4));
    let seen = echo(get_with_session(&format!("{}/", b.url), &cookie));
    assert_eq!(
        seen["headers"]["x-auth-groups"], STAFF,
        "the upstream sees the new groups"
    );
    change_user(&op, "alice", json!({"groups": [ADMINS, STAFF]}));

    // --- bob is disabled at the IdP: his refresh answers invalid_grant. The request that
    // finds the session due is told it expired (a page with a sign-in link for a browser);
    // every replica then refuses the session.
    let (bob, bob_cookie) = signed_in(&a, "bob");
    let (_, errors_before) = refreshes(&op);
    // His open websocket on C, quiet after the app's greeting.
    let (head, mut ws) = ws_connect(
        port_of(&c),
        "/ws",
        Some(&format!("authgate_session={bob_cookie}")),
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(ws_read(&mut ws, &|| c.log_text()).starts_with("user:"));
    change_user(&op, "bob", json!({"disabled": true}));
    std::thread::sleep(EVERY + Duration::from_millis(300));
    let page = bob.get(&format!("{}/some/page?x=1", b.url));
    assert_eq!(page.status(), 401);
    let html = page.text().unwrap_or_default();
    assert!(html.contains("Your sign-in has expired"), "{html}");
    assert!(
        html.contains("/_authgate/sign_in?rd=%2Fsome%2Fpage%3Fx%3D1"),
        "{html}"
    );
    assert_eq!(
        refreshes(&op).1,
        errors_before + 1,
        "the IdP refused one refresh"
    );
    let closed = ws_closed_within(&mut ws, Duration::from_secs(1));
    assert!(
        closed.is_some(),
        "bob's websocket on another replica is closed within 1 s"
    );
    eprintln!("bob's websocket closed {closed:?} after the refusal");
    assert!(
        c.log_text().contains("closing an upgraded connection of"),
        "C closed it, and says why"
    );
    for gw in all {
        let took = within(Duration::from_secs(1), "ended session refused", || {
            api_status(&format!("{}/x", gw.url), &bob_cookie).0 == 401
        });
        eprintln!(
            "{}: bob's session refused {took:?} after the refusal",
            gw.url
        );
    }
    assert!(
        b.log_text().contains("ended by its re-check"),
        "the log names the reason"
    );
    assert!(rechecks(&b, "refused") >= 1.0);

    // --- A front-channel logout, as the IdP's iframe sends it: only `sid`, no cookie.
    let (_carol, carol_cookie) = signed_in(&a, "carol");
    let sid = op_get(&op, "/test/sid?account=carol")["sid"]
        .as_str()
        .expect("carol's sid")
        .to_string();
    let r = api()
        .get(format!(
            "{}/_authgate/frontchannel_logout/test-idp?sid={sid}",
            c.url
        ))
        .send()
        .expect("front-channel");
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap_or("")
        .to_string();
    assert!(
        csp.contains(&format!("frame-ancestors http://127.0.0.1:{}", op.port)),
        "{csp}"
    );
    for gw in all {
        within(
            Duration::from_secs(1),
            "front-channel logout reaches every replica",
            || api_status(&format!("{}/x", gw.url), &carol_cookie).0 == 401,
        );
    }
    // A genuine back-channel logout: `many` signs out at the provider, which posts its logout
    // token to A; the session ends on every replica.
    let (many, many_cookie) = signed_in(&b, "many");
    op.sign_out(&many);
    for gw in all {
        within(
            Duration::from_secs(5),
            "back-channel logout reaches every replica",
            || api_status(&format!("{}/x", gw.url), &many_cookie).0 == 401,
        );
    }
    // alice (another sid) is untouched.
    assert_eq!(status_with(&format!("{}/", a.url), &cookie), 200);
}

#[test]
fn an_unreachable_idp_gets_the_grace_then_the_rule() {
    let upstream = start_upstream();
    let (port_deny, port_keep) = (free_port(), free_port());
    let deny_url = format!("http://127.0.0.1:{port_deny}");
    let keep_url = format!("http://127.0.0.1:{port_keep}");
    let mut op = start_op_for(&[&deny_url, &keep_url], "test-idp", 0, &[]);
    let start = |port: u16, rule: &str| {
        let public = format!("http://127.0.0.1:{port}");
        let cfg = ConfigBuilder::for_binary(port, &public, free_port(), &op.issuer, upstream.port)
            .store("memory")
            .tail(&format!(
                "  recheck_every: 3s\n  recheck_grace: 3s\n  on_recheck_failure: {rule}\n"
            ));
        start_built(&cfg)
    };
    let (deny, keep) = (start(port_deny, "deny"), start(port_keep, "keep"));
    let (_, deny_cookie) = signed_in(&deny, "alice");
    let (_, keep_cookie) = signed_in(&keep, "alice");
    let signed = Instant::now();
    op.proc.terminate(Duration::from_secs(5));

    let mut first_refusal = None;
    while signed.elapsed() < Duration::from_secs(9) {
        let t = signed.elapsed();
        let (d, body) = api_status(&format!("{deny_url}/x"), &deny_cookie);
        let (k, _) = api_status(&format!("{keep_url}/x"), &keep_cookie);
        assert!(d == 200 || d == 401, "deny: {d} at {t:?}: {body}");
        assert_eq!(k, 200, "keep: at {t:?}: {}", keep.log_text());
        match (d, first_refusal) {
            (401, None) => {
                first_refusal = Some(t);
                assert_eq!(body["error"], "session_expired", "{body}");
            }
            (200, Some(at)) => panic!("deny: 200 at {t:?} after a refusal at {at:?}"),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let at = first_refusal.expect("deny ended the session");
    // Stale after 3 s, graced 3 s more (whole seconds from the sign-in's second).
    assert!(
        at >= Duration::from_millis(4500) && at <= Duration::from_millis(7500),
        "refused at {at:?}"
    );
    assert!(
        deny.log_text().contains("past recheck_grace"),
        "the log names the reason"
    );
    assert!(rechecks(&keep, "unreachable") >= 1.0);
}

/// The query parameters of `url`.
fn params(url: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(url)
        .expect("url")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// A gateway with `store` on the test provider, which puts `sid` in its ID tokens.
fn single(store: &str) -> (Gateway, OpenIdProvider, Upstream) {
    let (port, upstream) = (free_port(), start_upstream());
    let public = format!("http://127.0.0.1:{port}");
    let op = start_op_with_sid(&public);
    let cfg = ConfigBuilder::for_binary(port, &public, free_port(), &op.issuer, upstream.port)
        .store(store);
    (start_built(&cfg), op, upstream)
}

#[test]
fn logout_hints_and_a_table_of_bad_front_channel_calls() {
    let (gw, op, _upstream) = single("memory");
    let gw = &gw;
    let alice = Browser::new();
    assert_eq!(
        alice.sign_in(&format!("{}/x", gw.url), "alice").0.status(),
        200
    );
    let cookie = alice
        .cookie(&format!("{}/", gw.url), "authgate_session")
        .expect("cookie");

    // Front-channel calls that must end nothing.
    let sid = op_get(&op, "/test/sid?account=alice")["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let other = "http://127.0.0.1:1/other/v2.0";
    let long = "s".repeat(300);
    let cases: Vec<(&str, String, &str)> = vec![
        ("no sid", "".into(), "sid"),
        ("empty sid", "sid=".into(), "sid"),
        ("sid too long", format!("sid={long}"), "sid"),
        ("control characters", format!("sid={sid}%0A"), "sid"),
        ("space", format!("sid=a%20{sid}"), "sid"),
        ("sid twice", format!("sid={sid}&sid=x"), "duplicate"),
        ("another issuer", format!("sid={sid}&iss={other}"), "issuer"),
        (
            "iss twice",
            format!("sid={sid}&iss={}&iss={}", op.issuer, op.issuer),
            "duplicate",
        ),
    ];
    for (what, query, reason) in &cases {
        let r = api()
            .get(format!(
                "{}/_authgate/frontchannel_logout/test-idp?{query}",
                gw.url
            ))
            .send()
            .expect("front-channel");
        assert_eq!(r.status(), 400, "{what}");
        let body = r.text().unwrap_or_default();
        assert!(
            body.contains(&format!("Reason: {reason}")),
            "{what}: {body}"
        );
    }
    for (what, url, method) in [
        (
            "unknown provider",
            format!("{}/_authgate/frontchannel_logout/nobody?sid={sid}", gw.url),
            reqwest::Method::GET,
        ),
        (
            "POST",
            format!(
                "{}/_authgate/frontchannel_logout/test-idp?sid={sid}",
                gw.url
            ),
            reqwest::Method::POST,
        ),
    ] {
        let r = api().request(method, &url).send().expect("front-channel");
        assert_eq!(r.status(), 400, "{what}");
    }
    assert_eq!(
        status_with(&format!("{}/x", gw.url), &cookie),
        200,
        "nothing ended"
    );
    assert!(gw
        .log_text()
        .contains("front-channel logout for test-idp refused (issuer)"));

    // The RP-initiated logout names the session's ID token and login hint; it closes the
    // session's open websocket within a second.
    let (head, mut ws) = ws_connect(
        port_of(gw),
        "/ws",
        Some(&format!("authgate_session={cookie}")),
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(ws_read(&mut ws, &|| gw.log_text()).starts_with("user:"));
    let r = alice.sign_out(&gw.url);
    let closed = ws_closed_within(&mut ws, Duration::from_secs(1));
    assert!(
        closed.is_some(),
        "the websocket is closed within 1 s of the sign-out"
    );
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(location.starts_with(&op.issuer), "{location}");
    let p = params(&location);
    assert_eq!(
        param(&p, "logout_hint"),
        Some(ALICE_LOGIN_HINT),
        "{location}"
    );
    let hint = param(&p, "id_token_hint").expect("id_token_hint");
    let payload = hint.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("claims");
    assert_eq!(claims["sub"], ALICE_SUB);
    assert_eq!(claims["aud"], CLIENT_ID);
    // The provider accepts the hint (an unknown or forged one is an error page there).
    let at_op = alice.get(&location);
    assert_eq!(at_op.status(), 200, "{}", at_op.text().unwrap_or_default());

    // With the cookie store nothing is kept server-side: no ID token; the login hint travels
    // with the identity in the cookie.
    let (gw2, _op2, _upstream2) = single("cookie");
    let bob = Browser::new();
    assert_eq!(
        bob.sign_in(&format!("{}/x", gw2.url), "alice").0.status(),
        200
    );
    let r = bob.sign_out(&gw2.url);
    let p = params(r.headers()["location"].to_str().expect("location"));
    assert_eq!(param(&p, "id_token_hint"), None);
    assert_eq!(param(&p, "logout_hint"), Some(ALICE_LOGIN_HINT));
    assert!(param(&p, "client_id").is_some());
}

/// The SAMLRequest of a redirect to the IdP, inflated.
fn authn_request(location: &str) -> String {
    let p = params(location);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(param(&p, "SAMLRequest").expect("SAMLRequest"))
        .expect("base64");
    let mut xml = String::new();
    std::io::Read::read_to_string(&mut flate2::read::DeflateDecoder::new(&raw[..]), &mut xml)
        .expect("deflated");
    xml
}

/// A navigation to `page` on a due SAML session: sent to the IdP (at `idp`) with a passive
/// AuthnRequest, whose answer (an assertion, or a status) is posted back to the gateway as the
/// IdP's page does. Returns the gateway's answer to that POST.
fn passive_round(b: &Browser, page: &str, idp: &str) -> reqwest::blocking::Response {
    let r = b.get(page);
    assert_eq!(r.status(), 302);
    let to_idp = location(&r);
    assert!(to_idp.starts_with(idp), "{to_idp}");
    assert!(authn_request(&to_idp).contains(r#"IsPassive="true""#));
    let (r, at) = b.follow(&to_idp);
    let html = r.text().unwrap_or_default();
    let acs = form_action(&html).unwrap_or_else(|| panic!("auto-POST form at {at}:\n{html}"));
    let response = input_value(&html, "SAMLResponse").expect("SAMLResponse");
    let relay = input_value(&html, "RelayState").unwrap_or_default();
    b.post_acs(&acs, &response, &relay)
}

#[test]
fn saml_sessions_are_confirmed_by_a_passive_re_authentication() {
    let port = free_port();
    let gw_url = format!("http://127.0.0.1:{port}");
    let idp = start_simplesamlphp(
        &format!("{gw_url}/sp/ssp"),
        &format!("{gw_url}/_authgate/saml/ssp"),
    );
    let upstream = start_upstream();
    let up = format!("127.0.0.1:{}", upstream.port);
    let cfg = ConfigBuilder::binary(port, &gw_url, free_port())
        .saml("ssp-assertion", &format!("{gw_url}/sp/ssp-assertion"))
        .provider_lines(&format!(
            "    idp_metadata_url: \"{}\"\n    session:\n      recheck_every: 3s",
            idp.metadata_url()
        ))
        .route(RouteSpec::new("app", &up));
    let gw = start_built(&cfg);
    let page = format!("{gw_url}/page?x=1");

    // Signed in at the IdP and here.
    let b = Browser::new();
    let (acs, response, relay) = b.saml_login_until_post(&page, "alice", "alice-pw");
    assert_eq!(b.post_acs(&acs, &response, &relay).status(), 302);
    let first = b.cookie(&gw_url, "authgate_session").expect("session");
    assert_eq!(b.get(&page).status(), 200);

    // Due: an API call is told to re-authenticate; a navigation goes through a passive
    // AuthnRequest and comes back to the same page, on a new session.
    std::thread::sleep(EVERY + Duration::from_millis(300));
    let (status, body) = api_status(&format!("{gw_url}/data"), &first);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "reauthentication_required");
    assert!(
        body["sign_in"]
            .as_str()
            .unwrap_or("")
            .contains("/_authgate/sign_in?rd="),
        "{body}"
    );
    let r = passive_round(&b, &page, &idp.base);
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        page.as_str(),
        "the page asked for is kept"
    );
    let renewed = b.cookie(&gw_url, "authgate_session").expect("session");
    assert_ne!(renewed, first);
    let seen = echo(b.api_get(&format!("{gw_url}/data")));
    assert_eq!(seen["headers"]["x-auth-user"], ALICE_OID);
    assert_eq!(
        api_status(&format!("{gw_url}/data"), &first).0,
        401,
        "the renewed session is over"
    );

    // No session at the IdP any more (another browser holding only the gateway's cookie): the
    // passive request is declined, and a normal sign-in follows, back to the same page.
    std::thread::sleep(EVERY + Duration::from_millis(300));
    let b2 = Browser::new();
    let url = reqwest::Url::parse(&gw_url).expect("url");
    b2.jar
        .add_cookie_str(&format!("authgate_session={renewed}; Path=/"), &url);
    let r = passive_round(&b2, &page, &idp.base);
    assert_eq!(
        r.status(),
        302,
        "a declined passive request starts a sign-in"
    );
    let again = location(&r);
    assert!(again.starts_with(&idp.base), "{again}");
    assert!(
        !authn_request(&again).contains("IsPassive"),
        "a normal sign-in this time"
    );
    let (acs, response, relay) = b2.saml_login_until_post(&again, "alice", "alice-pw");
    let r = b2.post_acs(&acs, &response, &relay);
    assert_eq!(
        r.headers()["location"],
        page.as_str(),
        "the page asked for is kept"
    );
    assert_eq!(b2.get(&page).status(), 200);
    assert!(gw
        .log_text()
        .contains("passive re-authentication with ssp-assertion declined by the IdP"));
}
