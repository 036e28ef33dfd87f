//! Several replicas of the real gateway binary sharing one real Redis (`session.store:
//! redis`), as behind a Kubernetes Service: a session made on one works on the others, a
//! sign-out or an admin revocation on one is refused by every other within a second, and a
//! replayed OIDC callback or SAML response is refused by whichever replica it reaches.
//! Then the faults: Redis stopped under traffic and restarted, and a Sentinel failover.

mod common;

use std::time::Duration;

use common::redis::{start_sentinel, start_standalone};
use common::replicas::*;
use common::*;

fn admin(method: reqwest::Method, url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut r = api().request(method, url);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    let r = r.send().expect("admin call");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(serde_json::Value::Null))
}

#[test]
fn three_replicas_share_sessions_revocations_and_single_use() {
    let redis = start_standalone();
    let upstream = start_upstream();
    let port_a = free_port();
    let public = format!("http://127.0.0.1:{port_a}");
    let op = start_op(&public, 0);
    let prefix = "replicas:";
    // Replica A listens on the public URL's port itself.
    let session = redis_session(&redis, prefix, "");
    let a = replica(port_a, &public, &op, upstream.port, &session);
    let b = replica(free_port(), &public, &op, upstream.port, &session);
    let c = replica(free_port(), &public, &op, upstream.port, &session);
    let all = [&a, &b, &c];

    // Signed in on A: the same cookie works on B and C (they read it from Redis).
    let (alice, cookie) = signed_in(&a, "alice");
    for gw in all {
        let seen = echo(get_with_session(&format!("{}/secret", gw.url), &cookie));
        assert_eq!(seen["headers"]["x-auth-user"], ALICE_OID, "on {}", gw.url);
    }
    // The cookie carries a sealed id, not the identity.
    assert!(cookie.len() < 200, "cookie of {} bytes", cookie.len());

    // Signed out on C: A and B (which have it cached) refuse the copied cookie within 1 s.
    alice.sign_out(&c.url);
    for gw in [&a, &b] {
        let took = within(Duration::from_secs(1), "signed-out session refused", || {
            status_with(&format!("{}/secret", gw.url), &cookie) == 401
        });
        eprintln!("{} refused the signed-out session after {took:?}", gw.url);
    }

    // The admin API: off without the token, refused with a wrong one.
    let list = |gw: &Gateway| format!("{}/api/v1/sessions?user={ALICE_OID}", gw.admin);
    assert_eq!(admin(reqwest::Method::GET, &list(&a), None).0, 401);
    assert_eq!(
        admin(
            reqwest::Method::GET,
            &list(&a),
            Some("admin-token-for-tests-0123456780")
        )
        .0,
        401
    );
    assert_eq!(admin(reqwest::Method::GET, &list(&a), Some("short")).0, 401);
    // Alice signs in twice (two browsers), Bob once.
    let ((_, c1), (_, c2), (_, cb)) = (
        signed_in(&a, "alice"),
        signed_in(&a, "alice"),
        signed_in(&a, "bob"),
    );
    for gw in all {
        for ck in [&c1, &c2, &cb] {
            assert_eq!(status_with(&format!("{}/secret", gw.url), ck), 200);
        }
    }
    let (status, listed) = admin(reqwest::Method::GET, &list(&c), Some(ADMIN_TOKEN));
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["sessions"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    // One session revoked by id on B: only that browser is out, everywhere.
    let one = listed["sessions"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = admin(
        reqwest::Method::DELETE,
        &format!("{}/api/v1/sessions/{one}", b.admin),
        Some(ADMIN_TOKEN),
    );
    assert_eq!(status, 200);
    let left = admin(reqwest::Method::GET, &list(&a), Some(ADMIN_TOKEN)).1;
    assert_eq!(left["sessions"].as_array().map(Vec::len), Some(1), "{left}");
    // Every session of Alice revoked on B: refused on every replica within 1 s; Bob stays.
    let (status, body) = admin(reqwest::Method::DELETE, &list(&b), Some(ADMIN_TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], 1, "{body}");
    for gw in all {
        within(Duration::from_secs(1), "revoked user refused", || {
            status_with(&format!("{}/secret", gw.url), &c1) == 401
                && status_with(&format!("{}/secret", gw.url), &c2) == 401
        });
        assert_eq!(
            status_with(&format!("{}/secret", gw.url), &cb),
            200,
            "bob unaffected"
        );
    }
    assert!(b.log_text().contains("admin_revoke_user"), "audit line");
    // Alice can sign in again afterwards.
    signed_in(&a, "alice");

    // An OIDC callback completed on A and replayed to B: refused by B as already used,
    // before the code reaches the provider.
    let br = Browser::new();
    let callback = br.login_until_callback(&format!("{}/secret", a.url), "alice");
    let state: String = reqwest::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let login_name = format!("authgate_session_login_{}", &state[..16]);
    let login = br
        .cookie(&format!("{}/_authgate/", a.url), &login_name)
        .unwrap();
    assert_eq!(br.get(&callback).status(), 302);
    let replayed = api()
        .get(callback.replace(&a.url, &b.url))
        .header("accept", "text/html")
        .header("cookie", format!("{login_name}={login}"))
        .send()
        .unwrap();
    assert_eq!(replayed.status(), 400);
    assert!(replayed.text().unwrap().contains("already used"));
    assert!(
        !b.log_text().contains("token_exchange"),
        "the code never reached the IdP from B"
    );

    // Metrics: the store is up on every replica.
    for gw in all {
        assert_eq!(metric(&scrape(&gw.admin), "authgate_session_store_up"), 1.0);
    }
}

#[test]
fn an_idp_initiated_saml_response_replayed_to_another_replica_is_refused() {
    let redis = start_standalone();
    let upstream = start_upstream();
    let (port_a, port_b) = (free_port(), free_port());
    let public = format!("http://127.0.0.1:{port_a}");
    let sp = format!("{public}/sp/ssp");
    let idp = start_simplesamlphp(&sp, &format!("{public}/_authgate/saml/ssp"));
    let start = |port: u16| {
        let cfg = ConfigBuilder::binary(port, &public, free_port())
            .saml("ssp-both", &format!("{sp}-both"))
            .provider_lines(&format!(
                "    idp_metadata_url: \"{}\"\n    allow_idp_initiated: true",
                idp.metadata_url()
            ))
            .route(
                RouteSpec::new("app", &format!("127.0.0.1:{}", upstream.port))
                    .providers(&["ssp-both"]),
            )
            .store("redis")
            .tail(&format!("  redis:\n{}", redis.yaml("saml:")));
        start_built(&cfg)
    };
    let (a, b) = (start(port_a), start(port_b));
    let br = Browser::new();
    let unsolicited = format!(
        "{}/saml2/idp/SSOService.php?spentityid={}",
        idp.base,
        percent_encoding::utf8_percent_encode(
            &format!("{sp}-both"),
            percent_encoding::NON_ALPHANUMERIC
        )
    );
    let (acs, response, relay) = br.saml_login_until_post(&unsolicited, "alice", "alice-pw");
    assert!(acs.starts_with(&a.url), "{acs}");
    assert_eq!(
        br.post_acs(&acs, &response, &relay).status(),
        302,
        "first use on A"
    );
    let on_b = acs.replace(&a.url, &format!("http://127.0.0.1:{port_b}"));
    let r = Browser::new().post_acs(&on_b, &response, &relay);
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("already used (replay)"));
    assert!(b.log_text().contains("replay"));
}

#[test]
fn redis_stopped_under_traffic_then_restarted() {
    // Redis keeps what it is told across the crash below (as a production Redis would).
    let mut redis = common::redis::start_standalone_with("appendonly yes\nappendfsync always");
    let upstream = start_upstream();
    let port_a = free_port();
    let public = format!("http://127.0.0.1:{port_a}");
    let op = start_op(&public, 0);
    let session = |grace: &str| {
        redis_session(
            &redis,
            "faults:",
            &format!("    unavailable_grace: {grace}\n    timeout: 200ms\n"),
        )
    };
    let a = replica(port_a, &public, &op, upstream.port, &session("60s"));
    // B refuses to vouch for any session while Redis is away (grace 0).
    let b = replica(free_port(), &public, &op, upstream.port, &session("0s"));
    let (_alice, cookie) = signed_in(&a, "alice");
    let (_bob, unread) = signed_in(&a, "bob");
    assert_eq!(status_with(&format!("{}/secret", b.url), &cookie), 200);

    let traffic = Traffic::start(format!("{}/secret", a.url), cookie.clone());
    std::thread::sleep(Duration::from_millis(300));
    redis.servers[0].stop();
    within(Duration::from_secs(5), "A unready", || {
        api()
            .get(format!("{}/readyz", a.admin))
            .send()
            .map(|r| r.status().as_u16())
            .ok()
            == Some(503)
    });
    // A: the session it read recently keeps working (grace); one it never read gets 503,
    // never a redirect to sign in; a new sign-in gets 503 at once.
    assert_eq!(
        status_with(&format!("{}/secret", a.url), &cookie),
        200,
        "graced session"
    );
    let r = Browser::new().get(&format!("{}/secret", a.url));
    let r_status = r.status().as_u16();
    assert!(
        r_status == 503 || r_status == 302,
        "new visitor: {r_status}"
    );
    if r_status == 302 {
        // Sent to the sign-in start, which answers 503 without going to the IdP.
        let start = r.headers()["location"].to_str().unwrap().to_string();
        let s = Browser::new().get(&start);
        assert_eq!(s.status(), 503, "sign-in start while Redis is down");
    }
    let on_b = get_with_session(&format!("{}/secret", b.url), &unread);
    assert_eq!(on_b.status(), 503);
    assert_eq!(on_b.headers()["retry-after"], "5");
    // B (grace 0) refuses even what it has cached: it cannot confirm it.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(status_with(&format!("{}/secret", b.url), &cookie), 503);
    let html = api()
        .get(format!("{}/secret", b.url))
        .header("accept", "text/html")
        .header("cookie", format!("authgate_session={unread}"))
        .send()
        .unwrap();
    assert_eq!(html.status(), 503);
    assert!(html.text().unwrap().contains("session store"));
    let m = scrape(&a.admin);
    assert_eq!(metric(&m, "authgate_session_store_up"), 0.0);
    assert!(metric(&m, "authgate_session_store_errors_total") >= 1.0);

    // Back: both recover without a restart, and the sessions Redis kept work again.
    redis.servers[0].restart();
    for gw in [&a, &b] {
        within(Duration::from_secs(10), "ready again", || {
            api()
                .get(format!("{}/readyz", gw.admin))
                .send()
                .map(|r| r.status().as_u16())
                .ok()
                == Some(200)
        });
        within(Duration::from_secs(5), "sessions work again", || {
            status_with(&format!("{}/secret", gw.url), &unread) == 200
        });
    }
    let (ok, unavailable, other) = traffic.finish();
    assert!(
        other.is_empty(),
        "answers other than 200/503 under traffic: {other:?}"
    );
    assert!(
        ok > 10,
        "{ok} successful requests under traffic ({unavailable} x 503)"
    );
    assert_eq!(unavailable, 0, "the graced session never got 503 on A");
    for gw in [&a, &b] {
        let log = gw.log_text();
        assert!(!log.contains("panicked"), "{log}");
        assert!(log.contains("Redis does not answer"));
    }
    signed_in(&a, "alice");
}

#[test]
fn a_sentinel_failover_under_traffic_keeps_sessions() {
    let redis = start_sentinel();
    let upstream = start_upstream();
    let port_a = free_port();
    let public = format!("http://127.0.0.1:{port_a}");
    let op = start_op(&public, 0);
    let session = redis_session(&redis, "failover:", "");
    let a = replica(port_a, &public, &op, upstream.port, &session);
    let (_alice, cookie) = signed_in(&a, "alice");
    let before = redis.primary_port();
    // The replica has the session before the primary goes (WAIT for one replica's ack).
    common::redis::cli(before, &["wait", "1", "2000"]);
    let traffic = Traffic::start(format!("{}/secret", a.url), cookie.clone());
    let out = common::redis::cli(
        redis.sentinels[0].port,
        &["sentinel", "failover", "authgate"],
    );
    assert!(out.contains("OK"), "{out}");
    within(Duration::from_secs(20), "new primary", || {
        let p = redis.primary_port();
        p != 0 && p != before
    });
    std::thread::sleep(Duration::from_secs(3));
    let (ok, unavailable, other) = traffic.finish();
    assert!(other.is_empty(), "answers other than 200/503: {other:?}");
    assert!(ok > 10, "{ok} ok, {unavailable} unavailable");
    // A second replica, which never read the session, finds it on the new primary; a new
    // sign-in writes there.
    let b = replica(free_port(), &public, &op, upstream.port, &session);
    within(
        Duration::from_secs(10),
        "session on the new primary",
        || status_with(&format!("{}/secret", b.url), &cookie) == 200,
    );
    let (_bob, bob_cookie) = signed_in(&a, "bob");
    assert_eq!(status_with(&format!("{}/secret", b.url), &bob_cookie), 200);
    assert!(!a.log_text().contains("panicked"));
}
