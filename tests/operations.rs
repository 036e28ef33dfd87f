//! Operating the gateway: hot reload under traffic (valid and invalid configs, sessions
//! kept), reload on file change, graceful SIGTERM, JSON logs with audit lines, and the
//! Prometheus exposition parsed as such.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hup(gw: &Gateway) {
    signal(gw.proc.pid(), libc::SIGHUP);
}

#[test]
fn reload_under_traffic_keeps_sessions_and_rejects_a_bad_config() {
    let env = start_env("");
    let b = Browser::new();
    b.sign_in(&format!("{}/", env.gw.url), "alice");
    let cookie = b.cookie(&env.gw.url, "authgate_session").unwrap();
    let before = scrape(&env.gw.admin);

    // Traffic: signed-in API calls in two threads until told to stop (bounded).
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            let url = format!("{}/traffic", env.gw.url);
            let cookie = cookie.clone();
            std::thread::spawn(move || {
                let client = api();
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                    let r = client
                        .get(&url)
                        .header("cookie", format!("authgate_session={cookie}"))
                        .send();
                    match r {
                        Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    wait_until("traffic", || ok.load(Ordering::Relaxed) > 50);

    // A valid new config: adds a public route. It takes effect without a restart.
    let cfg_path = env.gw.dir.path().join("gateway.yaml");
    let added = |prefix: &str| {
        env.cfg
            .clone()
            .routes_first([RouteSpec::new("added", &env.cfg.upstream())
                .prefix(prefix)
                .public()])
            .yaml()
    };
    let with_route = added("/added");
    assert_eq!(
        api()
            .get(format!("{}/added/x", env.gw.url))
            .send()
            .unwrap()
            .status(),
        401
    );
    write_file(&cfg_path, &with_route);
    hup(&env.gw);
    wait_until("the added route", || {
        api()
            .get(format!("{}/added/x", env.gw.url))
            .send()
            .unwrap()
            .status()
            == 200
    });

    // A broken config is rejected; the previous one keeps serving.
    write_file(&cfg_path, &added("added-no-slash"));
    hup(&env.gw);
    wait_until("the rejected reload to be counted", || {
        metric(
            &scrape(&env.gw.admin),
            r#"authgate_config_reloads_total{result="error"}"#,
        ) >= 1.0
    });
    assert_eq!(
        api()
            .get(format!("{}/added/x", env.gw.url))
            .send()
            .unwrap()
            .status(),
        200
    );
    let n = ok.load(Ordering::Relaxed);
    wait_until("more traffic after the reloads", || {
        ok.load(Ordering::Relaxed) > n + 50
    });
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during reloads"
    );
    // The session from before the reloads still works.
    assert_eq!(
        get_with_session(&format!("{}/x", env.gw.url), &cookie).status(),
        200
    );
    let after = scrape(&env.gw.admin);
    assert_eq!(
        metric(&after, r#"authgate_config_reloads_total{result="success"}"#),
        1.0
    );
    assert_eq!(
        metric(&after, r#"authgate_config_reloads_total{result="error"}"#),
        1.0
    );
    assert!(
        metric(
            &after,
            r#"authgate_requests_total{route="app",status="200"}"#
        ) > metric(
            &before,
            r#"authgate_requests_total{route="app",status="200"}"#
        ) + 100.0
    );
    let log = env.gw.log_text();
    assert!(log.contains("configuration reloaded (SIGHUP)"), "{log}");
    assert!(
        log.contains("routes[0].path_prefix: must start with /"),
        "the reason is logged: {log}"
    );
}

#[test]
fn watch_config_reloads_on_file_change() {
    let env = start_env_with(|b| b.server("watch_config", "true"));
    let gw = &env.gw;
    let cfg_path = gw.dir.path().join("gateway.yaml");
    write_file(
        &cfg_path,
        &env.cfg
            .clone()
            .edit_route("public", |r| r.prefix("/open"))
            .yaml(),
    );
    wait_until("the watched change", || {
        api()
            .get(format!("{}/open/x", gw.url))
            .send()
            .unwrap()
            .status()
            == 200
    });
    assert_eq!(
        api()
            .get(format!("{}/public/x", gw.url))
            .send()
            .unwrap()
            .status(),
        401
    );
    assert!(gw
        .log_text()
        .contains("configuration reloaded (file changed)"));
}

#[test]
fn sigterm_drains_and_exits_within_the_grace_period() {
    let mut env = start_env("");
    let started = Instant::now();
    let status = env
        .gw
        .proc
        .terminate(Duration::from_secs(15))
        .expect("exited after SIGTERM");
    let took = started.elapsed();
    assert!(status.success(), "exit status {status:?}");
    // shutdown_grace is 1s in the test config; allow for process teardown.
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert!(
        env.gw.log_text().contains("SIGTERM received"),
        "{}",
        env.gw.log_text()
    );
}

#[test]
fn json_logs_carry_structured_audit_lines_without_secrets() {
    let env = start_env_with(|b| b.server("log_format", "json"));
    let gw = &env.gw;
    let b = Browser::new();
    b.sign_in(&format!("{}/", gw.url), "alice");
    let cookie = b.cookie(&gw.url, "authgate_session").unwrap();
    b.sign_out(&gw.url);

    let log = gw.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    let sign_in = lines
        .iter()
        .find(|l| l["event"] == "sign_in")
        .expect("sign_in audit line");
    assert_eq!(sign_in["user"], "00000000-0000-0000-66f3-3332eca7ea81");
    assert_eq!(sign_in["tenant"], TENANT);
    assert_eq!(sign_in["provider"], "test-idp");
    assert!(lines.iter().any(|l| l["event"] == "sign_out"));
    for secret in [cookie.as_str(), CLIENT_SECRET, SESSION_SECRET] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

#[test]
fn metrics_move_with_sign_ins_denials_and_rejections() {
    let env = start_env("  store: memory");
    let m0 = scrape(&env.gw.admin);
    assert_eq!(
        metric(&m0, r#"authgate_idp_ready{provider="test-idp"}"#),
        1.0
    );
    assert_eq!(metric(&m0, "authgate_up"), 1.0);
    assert!(m0
        .keys()
        .any(|k| k.starts_with("authgate_build_info{version=")));
    assert!(m0
        .keys()
        .any(|k| k.starts_with("authgate_idp_fetch_duration_seconds_count{")));

    api().get(format!("{}/x", env.gw.url)).send().unwrap();
    let b = Browser::new();
    b.sign_in(&format!("{}/", env.gw.url), "bob");
    api()
        .get(format!("{}/x", env.gw.url))
        .header("cookie", "authgate_session=forged")
        .send()
        .unwrap();

    let m1 = scrape(&env.gw.admin);
    let delta = |s: &str| metric(&m1, s) - metric(&m0, s);
    assert_eq!(
        delta(r#"authgate_sign_ins_total{provider="test-idp",result="success"}"#),
        1.0
    );
    // The first API call, the browser's first navigation, and the forged cookie.
    assert_eq!(
        delta(r#"authgate_denials_total{reason="unauthenticated"}"#),
        3.0
    );
    assert_eq!(
        delta(r#"authgate_session_rejections_total{reason="invalid"}"#),
        1.0
    );
    assert_eq!(metric(&m1, "authgate_sessions_stored"), 1.0);
    assert!(delta(r#"authgate_request_duration_seconds_count{route="app"}"#) >= 3.0);
}

#[test]
fn alert_rules_reference_only_exported_metrics() {
    let env = start_env("");
    // Move a few series so every labelled family has at least one sample.
    api().get(format!("{}/x", env.gw.url)).send().unwrap();
    let b = Browser::new();
    b.sign_in(&format!("{}/", env.gw.url), "alice");
    let exported: std::collections::HashSet<String> = scrape(&env.gw.admin)
        .keys()
        .map(|k| k.split('{').next().unwrap().to_string())
        .collect();
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/alerts.yaml"
    ))
    .unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&rules).expect("alerts.yaml parses");
    let mut checked = 0;
    for rule in doc["groups"][0]["rules"].as_sequence().unwrap() {
        let expr = rule["expr"].as_str().unwrap();
        for (i, _) in expr.match_indices("authgate_") {
            let name: String = expr[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // Series with samples only in other setups, checked where they exist: SAML's in
            // tests/saml_flow.rs, the listener certificate's in tests/listener_tls.rs, upstream
            // failures (none here) in tests/upstream_tls.rs.
            if name.starts_with("authgate_saml_")
                || name == "authgate_tls_certificate_expiry_timestamp_seconds"
                || name == "authgate_upstream_errors_total"
            {
                continue;
            }
            assert!(
                exported.contains(&name),
                "alert {} uses {name}, which /metrics does not export",
                rule["alert"].as_str().unwrap()
            );
            checked += 1;
        }
    }
    assert!(checked >= 6);
}
