//! Per-route assurance (`routes[].require`) through the real binary and the real
//! `oidc-provider`, shaped like Entra: Conditional Access authentication contexts (`acrs`),
//! a second factor asked for by the login form, `max_age` and `auth_time`; API callers'
//! `insufficient_claims` challenge; the requirements on two replicas sharing Redis.
//! SAML (`ForceAuthn`, `authnmethodsreferences`) is in `step_up_saml.rs`.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use serde_json::{json, Value};

/// Alice's second factor in the test provider.
const CODE: &str = "246810";

/// An Entra-preset gateway: `/` needs a session, `/payroll` authentication context c1,
/// `/ctx2` context c2 (no Conditional Access policy targets it), `/fresh` a sign-in at most
/// 3 s old.
fn entra_gateway(
    op: &OpenIdProvider,
    upstream: &Upstream,
    (port, admin): (u16, u16),
    store: &str,
    tail: &str,
) -> ConfigBuilder {
    let public = format!("http://127.0.0.1:{port}");
    let up = format!("127.0.0.1:{}", upstream.port);
    ConfigBuilder::binary(port, &public, admin)
        .entra("entra", &op.instance(), Some("api://authgate-reports"))
        .provider_lines("    clock_skew: 1s")
        .route(
            RouteSpec::new("payroll", &up)
                .prefix("/payroll")
                .with("require:\n  auth_context: c1"),
        )
        .route(
            RouteSpec::new("ctx2", &up)
                .prefix("/ctx2")
                .with("require:\n  auth_context: c2"),
        )
        .route(
            RouteSpec::new("fresh", &up)
                .prefix("/fresh")
                .with("require:\n  max_age: 3s"),
        )
        .route(RouteSpec::new("app", &up))
        .store(store)
        .tail(tail)
}

struct Env {
    gw: Gateway,
    op: OpenIdProvider,
    _upstream: Upstream,
}

fn start(store: &str) -> Env {
    let port = free_port();
    let op = start_op_for(&[&format!("http://127.0.0.1:{port}")], "entra", 0, &[]);
    let upstream = start_upstream();
    let gw = start_built(&entra_gateway(
        &op,
        &upstream,
        (port, free_port()),
        store,
        "",
    ));
    Env {
        gw,
        op,
        _upstream: upstream,
    }
}

fn param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Follows redirects from `start` up to the first answer that is not one, collecting every
/// URL passed on the way (the IdP's pages included).
fn trail(b: &Browser, start: &str) -> (reqwest::blocking::Response, Vec<String>) {
    let mut urls = vec![start.to_string()];
    let mut url = start.to_string();
    for _ in 0..15 {
        let r = b.get(&url);
        if !r.status().is_redirection() {
            return (r, urls);
        }
        url = reqwest::Url::parse(&url)
            .unwrap()
            .join(&location(&r))
            .unwrap()
            .to_string();
        urls.push(url.clone());
    }
    panic!("too many redirects from {start}");
}

fn signed_in(gw: &Gateway) -> Browser {
    let b = Browser::new();
    let (r, _) = b.sign_in(&format!("{}/", gw.url), "alice");
    assert_eq!(r.status(), 200, "{}", gw.log_text());
    b
}

fn session_cookie(b: &Browser, gw: &Gateway) -> String {
    b.cookie(&format!("{}/", gw.url), "authgate_session")
        .expect("session cookie")
}

#[test]
fn a_step_up_keeps_the_session_and_the_page_asked_for() {
    let env = start("memory");
    let gw = &env.gw;
    let b = signed_in(gw);
    let before = session_cookie(&b, gw);

    // /payroll needs c1: off to the IdP, asking for it as an essential claim.
    let r = b.get(&format!("{}/payroll/slips?month=11", gw.url));
    assert_eq!(r.status(), 302);
    let to_idp = location(&r);
    let claims: Value =
        serde_json::from_str(&param(&to_idp, "claims").expect("claims parameter")).unwrap();
    assert_eq!(
        claims,
        json!({"id_token": {"acrs": {"essential": true, "value": "c1"}}})
    );

    // The IdP asks for the password again, then the second factor.
    let callback = b.login_with_code(&to_idp, "alice", Some(CODE));
    let (r, landed) = b.follow(&callback);
    assert_eq!(r.status(), 200, "{}", gw.log_text());
    assert_eq!(landed, format!("{}/payroll/slips?month=11", gw.url));
    let seen = echo(b.api_get(&landed));
    assert_eq!(seen["headers"]["x-auth-user"], ALICE_OID);
    // The same session: the cookie did not change.
    assert_eq!(session_cookie(&b, gw), before);

    // Satisfied once, remembered: no second trip, and / still works.
    let r = b.get(&format!("{}/payroll/", gw.url));
    assert_eq!(r.status(), 200);
    assert_eq!(b.get(&format!("{}/", gw.url)).status(), 200);
    let m = scrape(&gw.admin);
    assert_eq!(
        metric(
            &m,
            "authgate_step_ups_total{provider=\"entra\",result=\"success\"}"
        ),
        1.0
    );
    assert!(
        metric(
            &m,
            "authgate_denials_total{reason=\"auth_context_required\"}"
        ) >= 1.0
    );
    assert!(gw.log_text().contains("step-up sign-in"));
}

#[test]
fn a_step_up_answered_without_the_context_or_by_someone_else_is_refused() {
    let env = start("memory");
    let gw = &env.gw;
    let b = signed_in(gw);

    // The second factor left out: the ID token does not list c1.
    let r = b.get(&format!("{}/payroll/", gw.url));
    let callback = b.login_with_code(&location(&r), "alice", None);
    let r = b.get(&callback);
    assert_eq!(r.status(), 403);
    let page = r.text().unwrap();
    assert!(page.contains("auth_context_missing"), "{page}");
    assert!(gw.log_text().contains("refused (auth_context_missing)"));
    // The session is as it was: / works, /payroll still asks.
    assert_eq!(
        echo(b.api_get(&format!("{}/", gw.url)))["headers"]["x-auth-user"],
        ALICE_OID
    );
    assert_eq!(b.get(&format!("{}/payroll/", gw.url)).status(), 302);

    // Carol, with a second factor of her own, answers Alice's step-up.
    env.op.hook("/test/users/carol", json!({"otp": "135790"}));
    let r = b.get(&format!("{}/payroll/", gw.url));
    let callback = b.login_with_code(&location(&r), "carol", Some("135790"));
    let r = b.get(&callback);
    assert_eq!(r.status(), 403);
    let page = r.text().unwrap();
    assert!(page.contains("step_up_other_user"), "{page}");
    // Alice's session still works, as Alice, and still lacks c1.
    assert_eq!(
        echo(b.api_get(&format!("{}/", gw.url)))["headers"]["x-auth-user"],
        ALICE_OID
    );
    assert_eq!(b.get(&format!("{}/payroll/", gw.url)).status(), 302);
    let m = scrape(&gw.admin);
    assert_eq!(
        metric(
            &m,
            "authgate_step_ups_total{provider=\"entra\",result=\"step_up_other_user\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "authgate_step_ups_total{provider=\"entra\",result=\"auth_context_missing\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "authgate_step_ups_total{provider=\"entra\",result=\"success\"}"
        ),
        0.0
    );
}

#[test]
fn a_context_no_policy_targets_is_satisfied_silently_as_entra_does() {
    let env = start("cookie");
    let gw = &env.gw;
    let b = signed_in(gw);
    // c2 has no Conditional Access policy: Entra lists it in acrs without any prompt. The
    // gateway cannot tell (the README says to bind a policy to every context a route names).
    let (r, urls) = trail(&b, &format!("{}/ctx2/", gw.url));
    assert_eq!(r.status(), 200, "{urls:?}\n{}", gw.log_text());
    assert!(
        urls.iter().any(|u| u.contains("/_authgate/callback/")),
        "{urls:?}"
    );
    // With the cookie store the identity travels in the cookie: the step-up re-issued it,
    // for the same session.
    assert_eq!(b.get(&format!("{}/ctx2/", gw.url)).status(), 200);
    // Remove c1's policy too: the same silent satisfaction.
    env.op.hook("/test/policies", json!({"c1": null}));
    let (r, urls) = trail(&b, &format!("{}/payroll/", gw.url));
    assert_eq!(r.status(), 200, "{urls:?}");
}

#[test]
fn max_age_forces_a_fresh_sign_in_and_an_old_auth_time_is_refused() {
    let env = start("memory");
    let gw = &env.gw;
    let b = signed_in(gw);
    std::thread::sleep(Duration::from_secs(5));
    // Older than 3 s: a sign-in with max_age=3, and the IdP prompts again.
    let r = b.get(&format!("{}/fresh/a", gw.url));
    assert_eq!(r.status(), 302);
    let to_idp = location(&r);
    assert_eq!(param(&to_idp, "max_age").as_deref(), Some("3"));
    let callback = b.login_until_callback(&to_idp, "alice");
    let (r, landed) = b.follow(&callback);
    assert_eq!(r.status(), 200, "{}", gw.log_text());
    assert_eq!(landed, format!("{}/fresh/a", gw.url));

    // An IdP that ignores max_age answers from its old session: its auth_time is verified,
    // not trusted, and refused.
    env.op.hook("/test/ignore_max_age", json!({"on": true}));
    std::thread::sleep(Duration::from_secs(5));
    let (r, urls) = trail(&b, &format!("{}/fresh/b", gw.url));
    assert_eq!(r.status(), 403, "{urls:?}");
    let page = r.text().unwrap();
    assert!(page.contains("stale_auth_time"), "{page}");
    assert!(gw.log_text().contains("did not sign the user in again"));
    // Nothing changed: / works.
    assert_eq!(b.get(&format!("{}/", gw.url)).status(), 200);
}

#[test]
fn api_callers_get_the_insufficient_claims_challenge() {
    let env = start("memory");
    let gw = &env.gw;
    let b = signed_in(gw);
    let r = b.api_get(&format!("{}/payroll/", gw.url));
    assert_eq!(r.status(), 401);
    let www = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        www.starts_with("Bearer ") && www.contains(r#"error="insufficient_claims""#),
        "{www}"
    );
    let claims = |h: &str| -> Value {
        let b64 = h
            .split("claims=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    // What the browser's sign-in asks for, exactly.
    let asked: Value = serde_json::from_str(
        &param(&location(&b.get(&format!("{}/payroll/", gw.url))), "claims").unwrap(),
    )
    .unwrap();
    assert_eq!(claims(&www), asked);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"], "auth_context_required");
    assert!(body["sign_in"]
        .as_str()
        .unwrap()
        .contains("/_authgate/sign_in"));

    // A bearer caller (an Entra delegated token for the API) without c1: the access-token form.
    let token = env.op.user_token(
        TENANT,
        "alice",
        &format!("{}/_authgate/callback/entra", gw.url),
        "api://authgate-reports",
    );
    let r = api()
        .get(format!("{}/payroll/", gw.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let www = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        claims(&www),
        json!({"access_token": {"acrs": {"essential": true, "value": "c1"}}})
    );
    // The same token passes a route without require.
    let r = api()
        .get(format!("{}/", gw.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn a_first_sign_in_for_a_requiring_page_asks_at_once() {
    let env = start("memory");
    let gw = &env.gw;
    let b = Browser::new();
    let r = b.get(&format!("{}/payroll/x", gw.url));
    let to_idp = location(&r);
    assert!(
        param(&to_idp, "claims").is_some_and(|c| c.contains("c1")),
        "{to_idp}"
    );
    let callback = b.login_with_code(&to_idp, "alice", Some(CODE));
    let (r, landed) = b.follow(&callback);
    assert_eq!(r.status(), 200, "{}", gw.log_text());
    assert_eq!(landed, format!("{}/payroll/x", gw.url));
    // Asked and not proven: no session at all.
    let bob = Browser::new();
    let r = bob.get(&format!("{}/payroll/x", gw.url));
    let callback = bob.login_with_code(&location(&r), "bob", None);
    let r = bob.get(&callback);
    assert_eq!(r.status(), 403);
    assert!(bob
        .cookie(&format!("{}/", gw.url), "authgate_session")
        .is_none());
}

#[test]
fn requirements_hold_across_replicas_on_redis() {
    let redis = common::redis::start_standalone();
    let port_a = free_port();
    let port_b = free_port();
    let op = start_op_for(&[&format!("http://127.0.0.1:{port_a}")], "entra", 0, &[]);
    let upstream = start_upstream();
    let tail = format!("  redis:\n{}", redis.yaml("stepup:"));
    let a = start_built(&entra_gateway(
        &op,
        &upstream,
        (port_a, free_port()),
        "redis",
        &tail,
    ));
    // B: another replica, same public_url (A's), same Redis.
    let mut cfg_b = entra_gateway(&op, &upstream, (port_a, free_port()), "redis", &tail);
    cfg_b.listen = format!("127.0.0.1:{port_b}");
    let b_gw = start_built(&cfg_b);
    let b_url = format!("http://127.0.0.1:{port_b}");

    let b = signed_in(&a);
    // Cookies are per host, not per port: the browser presents its session to B too.
    assert_eq!(b.get(&format!("{b_url}/payroll/")).status(), 302);
    let r = b.get(&format!("{}/payroll/", a.url));
    let callback = b.login_with_code(&location(&r), "alice", Some(CODE));
    assert_eq!(b.follow(&callback).0.status(), 200, "{}", a.log_text());
    // B reads the upgraded session from Redis (its cache of the old one lives 5 s at most).
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    loop {
        let r = b.api_get(&format!("{b_url}/payroll/"));
        if r.status() == 200 {
            assert_eq!(echo(r)["headers"]["x-auth-user"], ALICE_OID);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B never saw the step-up: {}",
            r.status()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let m = scrape(&b_gw.admin);
    assert!(
        metric(
            &m,
            "authgate_denials_total{reason=\"auth_context_required\"}"
        ) >= 1.0
    );
}

/// A standard OpenID provider: `mfa: true` sends `mfa_acr_values` as `acr_values`, and the
/// returned `acr` (or `amr`) must show the second factor.
#[test]
fn mfa_with_a_standard_provider_asks_with_acr_values() {
    const MFA_ACR: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
    let env = start_env_with(|b| {
        let up = b.upstream();
        b.provider_lines(&format!("    mfa_acr_values: [\"{MFA_ACR}\"]"))
            .routes_first([RouteSpec::new("mfa", &up)
                .prefix("/mfa")
                .with("require:\n  mfa: true")])
            .store("memory")
    });
    let gw = &env.gw;
    let b = Browser::new();
    assert_eq!(b.sign_in(&format!("{}/", gw.url), "alice").0.status(), 200);
    let r = b.get(&format!("{}/mfa/", gw.url));
    let to_idp = location(&r);
    assert_eq!(param(&to_idp, "acr_values").as_deref(), Some(MFA_ACR));
    // Without the code: refused.
    let callback = b.login_with_code(&to_idp, "alice", None);
    let r = b.get(&callback);
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().contains("mfa_missing"));
    // With it: in, and the upstream sees Alice.
    let r = b.get(&format!("{}/mfa/", gw.url));
    let callback = b.login_with_code(&location(&r), "alice", Some(CODE));
    let (r, landed) = b.follow(&callback);
    assert_eq!(r.status(), 200, "{}", gw.log_text());
    assert_eq!(
        echo(b.api_get(&landed))["headers"]["x-auth-user"],
        ALICE_OID
    );
}
