//! TLS to upstreams and websockets, through the real binary: `https://` upstreams served by
//! the real Node.js upstream with certificates from a test CA made here with openssl (an
//! internal CA, a second CA nobody trusts, a client CA for mTLS); a refused certificate is a
//! 502 page with the reason logged and counted. Websocket upgrades pass with a session (the
//! upstream sees the identity) and are refused without one.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::pki::{make_ca, make_leaf, Pki};
use common::*;

/// The internal CA and its server certificate, a CA nobody trusts, a client CA for mTLS.
fn new_pki() -> Pki {
    let pki = Pki::empty();
    let d = pki.dir.path();
    make_ca(d, "internal-ca");
    make_ca(d, "other-ca");
    make_ca(d, "client-ca");
    make_leaf(
        d,
        "internal-ca",
        "app",
        "app.internal",
        "DNS:app.internal",
        "serverAuth",
    );
    make_leaf(
        d,
        "client-ca",
        "gateway-client",
        "authgate-gateway",
        "DNS:authgate",
        "clientAuth",
    );
    make_leaf(
        d,
        "other-ca",
        "stranger-client",
        "stranger",
        "DNS:stranger",
        "clientAuth",
    );
    pki
}

/// The real upstream over HTTPS (optionally requiring a client certificate from `client_ca`).
fn https_upstream(pki: &Pki, client_ca: Option<&str>) -> Upstream {
    let mut env = vec![
        ("PORT", "0".to_string()),
        ("TLS_CERT", pki.path("app.pem")),
        ("TLS_KEY", pki.path("app.key")),
    ];
    if let Some(ca) = client_ca {
        env.push(("TLS_CLIENT_CA", pki.path(ca)));
    }
    let (proc, info) = spawn_node("upstream.mjs", &env, "upstream");
    let port = info["port"].as_u64().expect("port") as u16;
    Upstream { proc, port }
}

fn route(name: &str, upstream: &str, tls: &str) -> RouteSpec {
    let r = RouteSpec::new(name, upstream)
        .prefix(&format!("/{name}"))
        .public();
    if tls.is_empty() {
        return r;
    }
    let indented: String = tls.lines().map(|l| format!("\n  {l}")).collect();
    r.with(&format!("upstream_tls:{indented}"))
}

#[test]
fn https_upstreams_are_verified_against_the_configured_ca_and_refusals_are_502_pages() {
    let pki = new_pki();
    let plain = https_upstream(&pki, None);
    let mtls = https_upstream(&pki, Some("client-ca.pem"));
    let app = format!("https://127.0.0.1:{}", plain.port);
    let mapp = format!("https://127.0.0.1:{}", mtls.port);
    let ca = format!("ca_file: {}", pki.path("internal-ca.pem"));
    let client = format!(
        "client_cert_file: {}\nclient_key_file: {}",
        pki.path("gateway-client.pem"),
        pki.path("gateway-client.key")
    );
    let stranger = format!(
        "client_cert_file: {}\nclient_key_file: {}",
        pki.path("stranger-client.pem"),
        pki.path("stranger-client.key")
    );
    // (route, upstream, upstream_tls, expected status, expected reason counted on failure)
    // The order matters: "good" leaves a verified connection to the same address and name in
    // the pool before "wrong-ca" and the others ask; each must still be refused (pingora's
    // pool key does not cover the CA, so the gateway keys each setting's pool itself).
    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        (
            "good",
            app.clone(),
            format!("{ca}\nserver_name: app.internal"),
            200,
            "",
        ),
        (
            "wrong-ca",
            app.clone(),
            format!(
                "ca_file: {}\nserver_name: app.internal",
                pki.path("other-ca.pem")
            ),
            502,
            "tls_certificate",
        ),
        (
            "system-store",
            app.clone(),
            "server_name: app.internal".into(),
            502,
            "tls_certificate",
        ),
        (
            "wrong-name",
            app.clone(),
            format!("{ca}\nserver_name: other.internal"),
            502,
            "tls_certificate",
        ),
        // The IP literal is not a name in the certificate: a name must be given.
        (
            "ip-as-name",
            app.clone(),
            ca.clone(),
            502,
            "tls_certificate",
        ),
        (
            "client-ca-as-trust",
            app.clone(),
            format!(
                "ca_file: {}\nserver_name: app.internal",
                pki.path("client-ca.pem")
            ),
            502,
            "tls_certificate",
        ),
        (
            "insecure",
            app.clone(),
            "insecure_skip_verify: true".into(),
            200,
            "",
        ),
        (
            "mtls",
            mapp.clone(),
            format!("{ca}\nserver_name: app.internal\n{client}"),
            200,
            "",
        ),
        (
            "mtls-no-cert",
            mapp.clone(),
            format!("{ca}\nserver_name: app.internal"),
            502,
            "",
        ),
        (
            "mtls-wrong-cert",
            mapp.clone(),
            format!("{ca}\nserver_name: app.internal\n{stranger}"),
            502,
            "",
        ),
        (
            "plain-to-https",
            format!("http://127.0.0.1:{}", plain.port),
            String::new(),
            502,
            "",
        ),
        (
            "refused",
            format!("https://127.0.0.1:{}", free_port()),
            format!("{ca}\nserver_name: app.internal"),
            502,
            "connect_refused",
        ),
    ];
    let port = free_port();
    let admin = free_port();
    let op = start_op(&format!("http://127.0.0.1:{port}"), 0);
    let mut routes: Vec<RouteSpec> = cases
        .iter()
        .map(|(name, up, tls, _, _)| route(name, up, tls))
        .collect();
    routes.push(
        route(
            "host-override",
            &app,
            &format!("{ca}\nserver_name: app.internal"),
        )
        .with("upstream_host: app.internal:8443"),
    );
    let public = format!("http://127.0.0.1:{port}");
    let gw = start_built(
        &ConfigBuilder::for_binary(port, &public, admin, &op.issuer, 1).routes_first(routes),
    );
    let client = api();
    for (name, _, _, status, _) in &cases {
        let r = client
            .get(format!("{}/{name}/x", gw.url))
            .header("accept", "text/html")
            .send()
            .unwrap_or_else(|e| panic!("route {name}: {e}\nlog:\n{}", gw.log_text()));
        let got = r.status().as_u16();
        let body = r.text().unwrap_or_default();
        assert_eq!(
            got,
            *status,
            "route {name}: {body}\nlog:\n{}",
            gw.log_text()
        );
        if *status == 502 {
            assert!(
                body.contains("not reachable"),
                "route {name}: the 502 is a page: {body}"
            );
        } else {
            let seen: serde_json::Value = client
                .get(format!("{}/{name}/x", gw.url))
                .send()
                .and_then(|r| r.json())
                .expect("echo");
            assert_eq!(seen["url"], format!("/{name}/x"), "route {name}");
            if *name == "mtls" {
                assert_eq!(
                    seen["client_cert"], "authgate-gateway",
                    "mTLS client identity"
                );
            }
        }
    }
    let m = scrape(&gw.admin);
    for (name, _, _, status, reason) in &cases {
        if *status == 502 {
            let counted: f64 = m
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("authgate_upstream_errors_total{")
                        && k.contains(&format!("route=\"{name}\""))
                        && (reason.is_empty() || k.contains(&format!("reason=\"{reason}\"")))
                })
                .map(|(_, v)| v)
                .sum();
            assert!(
                counted >= 1.0,
                "route {name}: a failure counted with reason {reason:?}: {m:?}"
            );
        }
    }
    let log = gw.log_text();
    assert!(
        log.contains("route wrong-ca: upstream failed (tls_certificate)"),
        "the refusal is logged with its reason:\n{log}"
    );
    assert!(
        log.contains("insecure_skip_verify") && log.contains("NOT verified"),
        "insecure_skip_verify is loudly logged:\n{log}"
    );
    // upstream_host: the upstream receives the configured Host; the request's stays in
    // X-Forwarded-Host.
    let seen: serde_json::Value = client
        .get(format!("{}/host-override/y", gw.url))
        .send()
        .and_then(|r| r.json())
        .expect("echo");
    assert_eq!(seen["headers"]["host"], "app.internal:8443");
    assert_eq!(
        seen["headers"]["x-forwarded-host"],
        format!("127.0.0.1:{port}")
    );
}

#[test]
fn bad_upstream_tls_settings_are_reported_with_their_path() {
    let pki = new_pki();
    let base = |route: &str| {
        format!(
            "listen: [\"127.0.0.1:8080\"]\npublic_url: \"http://127.0.0.1:8080\"\nproviders:\n  - name: demo\n    type: oidc\n    issuer: \"http://127.0.0.1:4000/t/v2.0\"\n    client_id: app\n    client_secret: x\nroutes:\n{route}session:\n  secret: \"0123456789abcdef0123456789abcdef-long\"\n"
        )
    };
    let ca = pki.path("internal-ca.pem");
    let cert = pki.path("gateway-client.pem");
    let key = pki.path("gateway-client.key");
    let other_key = pki.path("stranger-client.key");
    let not_pem = pki.path("app.ext");
    let cases: Vec<(&str, String, &str)> = vec![
        ("plain upstream", format!("upstream: http://a:80\n    upstream_tls:\n      ca_file: {ca}"), "routes[0].upstream_tls: applies to https:// upstreams only"),
        ("missing CA file", "upstream: https://a\n    upstream_tls:\n      ca_file: /nonexistent/ca.pem".into(), "routes[0].upstream_tls.ca_file: cannot read /nonexistent/ca.pem"),
        ("CA not PEM", format!("upstream: https://a\n    upstream_tls:\n      ca_file: {not_pem}"), "routes[0].upstream_tls.ca_file:"),
        ("cert without key", format!("upstream: https://a\n    upstream_tls:\n      client_cert_file: {cert}"), "client_cert_file and client_key_file go together"),
        ("key without cert", format!("upstream: https://a\n    upstream_tls:\n      client_key_file: {key}"), "client_cert_file and client_key_file go together"),
        ("key of another cert", format!("upstream: https://a\n    upstream_tls:\n      client_cert_file: {cert}\n      client_key_file: {other_key}"), "routes[0].upstream_tls.client_key_file: is not the key of the certificate"),
        ("cert file is a key", format!("upstream: https://a\n    upstream_tls:\n      client_cert_file: {key}\n      client_key_file: {key}"), "routes[0].upstream_tls.client_cert_file:"),
        ("insecure with a CA", format!("upstream: https://a\n    upstream_tls:\n      ca_file: {ca}\n      insecure_skip_verify: true"), "insecure_skip_verify: contradicts ca_file"),
        ("bad server name", "upstream: https://a\n    upstream_tls:\n      server_name: \"a b\"".into(), "routes[0].upstream_tls.server_name: \"a b\" is not a DNS name"),
        ("empty server name", "upstream: https://a\n    upstream_tls:\n      server_name: \"\"".into(), "routes[0].upstream_tls.server_name:"),
        ("unknown key", "upstream: https://a\n    upstream_tls:\n      verify: false".into(), "routes[0].upstream_tls.verify"),
        ("not a mapping", "upstream: https://a\n    upstream_tls: yes".into(), "routes[0].upstream_tls: expected a mapping"),
        ("bad upstream_host", "upstream: https://a\n    upstream_host: \"evil.example/x\"".into(), "routes[0].upstream_host:"),
        ("upstream_host with bad port", "upstream: https://a\n    upstream_host: \"a:99999\"".into(), "routes[0].upstream_host:"),
    ];
    for (what, route, expect) in cases {
        let yaml = base(&format!("  - name: app\n    {route}\n"));
        let (ok, text) = check_config(&yaml);
        assert!(!ok, "{what}: accepted:\n{yaml}\n{text}");
        assert!(
            text.contains(expect),
            "{what}: expected {expect:?} in:\n{text}"
        );
    }
    // A good one passes, insecure_skip_verify with a warning.
    let yaml = base("  - name: app\n    upstream: https://a\n    upstream_tls:\n      insecure_skip_verify: true\n");
    let (ok, text) = check_config(&yaml);
    assert!(ok, "{text}");
    assert!(
        text.contains("routes[0].upstream_tls.insecure_skip_verify: the upstream's certificate is NOT verified"),
        "{text}"
    );
}

#[test]
fn websockets_pass_with_a_session_and_are_refused_without_one() {
    // A short head deadline: a quiet websocket must outlive it (the deadline covers request
    // heads only, not an upgraded connection).
    let env = start_env_with(|b| b.server("request_header_timeout", "1s"));
    let b = Browser::new();
    b.sign_in(&format!("{}/", env.gw.url), "alice");
    let session = b
        .cookie(&env.gw.url, "authgate_session")
        .expect("session cookie");
    let port: u16 = env
        .gw
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");

    // Without a session: a 401 or a redirect to sign in, never an upgrade.
    let (head, _) = ws_connect(port, "/ws", None);
    assert!(
        head.starts_with("HTTP/1.1 401") || head.starts_with("HTTP/1.1 302"),
        "no upgrade without a session: {head}"
    );
    // A forged cookie: the same.
    let (head, _) = ws_connect(port, "/ws", Some("authgate_session=forged"));
    assert!(
        !head.contains(" 101 "),
        "no upgrade with a forged cookie: {head}"
    );

    // With one: upgraded, the upstream sees the verified user (not the spoofed header), and
    // messages flow both ways over the long-lived connection.
    let log = || env.gw.log_text();
    // The app speaks first, right after its 101: the greeting must arrive every time (pingora
    // tore such tunnels down now and then before vendor/pingora-proxy's patch).
    // Each upgrade follows a plain request, so it goes out on a pooled upstream connection
    // and the 101 comes back at once (the ordering that tore tunnels down).
    for i in 0..50 {
        let plain = get_with_session(&format!("{}/ws-warm", env.gw.url), &session);
        assert_eq!(plain.status(), 200);
        let (head, mut s) = ws_connect(port, "/ws", Some(&format!("authgate_session={session}")));
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade {i}: {head}");
        assert!(ws_read(&mut s, &log).starts_with("user:"), "greeting {i}");
    }
    let (head, mut s) = ws_connect(port, "/ws", Some(&format!("authgate_session={session}")));
    assert!(head.starts_with("HTTP/1.1 101"), "upgraded: {head}");
    let hello = ws_read(&mut s, &log);
    assert!(
        hello.starts_with("user:") && hello != "user:" && !hello.contains("mallory"),
        "{hello}"
    );
    for i in 0..3 {
        // A masked client frame with 5 payload bytes.
        let mask = [1u8, 2, 3, 4];
        let payload: Vec<u8> = b"hello"
            .iter()
            .enumerate()
            .map(|(j, c)| c ^ mask[j % 4])
            .collect();
        let mut frame = vec![0x81, 0x80 | 5];
        frame.extend_from_slice(&mask);
        frame.extend_from_slice(&payload);
        s.write_all(&frame).expect("send");
        assert_eq!(ws_read(&mut s, &log), "echo:11", "message {i} echoed");
        // Idle for longer than server.request_header_timeout between messages.
        std::thread::sleep(Duration::from_millis(1500));
    }
}

#[test]
fn an_upstream_read_timeout_ends_slow_answers_and_idle_websockets() {
    let env = start_env_with(|b| {
        let slow = RouteSpec::new("slow", &b.upstream())
            .prefix("/slow")
            .with("upstream_read_timeout: 1s");
        b.routes_first([slow])
    });
    let b = Browser::new();
    b.sign_in(&format!("{}/", env.gw.url), "alice");
    // Within the limit: answered; beyond it: a 504 page, counted with its reason.
    let r = b.api_get(&format!("{}/slow/a?delay=200", env.gw.url));
    assert_eq!(r.status(), 200);
    let r = b.get(&format!("{}/slow/b?delay=2500", env.gw.url));
    assert_eq!(r.status(), 504);
    assert!(r.text().unwrap_or_default().contains("not reachable"));
    // Other routes have no limit.
    let r = b.api_get(&format!("{}/other?delay=1500", env.gw.url));
    assert_eq!(r.status(), 200);
    let m = scrape(&env.gw.admin);
    assert_eq!(
        metric(
            &m,
            "authgate_upstream_errors_total{reason=\"timeout\",route=\"slow\"}"
        ),
        1.0,
        "{m:?}"
    );
    // A websocket on the limited route is closed after 1 s of silence from the app.
    let session = b
        .cookie(&env.gw.url, "authgate_session")
        .expect("session cookie");
    let port: u16 = env
        .gw
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let (head, mut s) = ws_connect(
        port,
        "/slow/ws",
        Some(&format!("authgate_session={session}")),
    );
    assert!(head.starts_with("HTTP/1.1 101"), "upgraded: {head}");
    let log = || env.gw.log_text();
    assert!(ws_read(&mut s, &log).starts_with("user:"));
    std::thread::sleep(Duration::from_millis(2500));
    let mut buf = [0u8; 16];
    let closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
    assert!(closed, "the idle websocket is closed by the gateway");
}

#[test]
fn upstream_host_names_are_looked_up_and_one_that_does_not_resolve_is_a_502_page() {
    let env = start_env_with(|b| {
        let by_name = b.upstream().replace("127.0.0.1", "localhost");
        assert!(by_name.contains("localhost"), "{by_name}");
        let named = RouteSpec::new("named", &by_name).prefix("/named");
        let nowhere =
            RouteSpec::new("nowhere", "http://no-such-host.invalid:8080").prefix("/nowhere");
        b.routes_first([named, nowhere])
    });
    let b = Browser::new();
    b.sign_in(&format!("{}/", env.gw.url), "alice");
    // A host name reaches its upstream (looked up off the event loop, then reused).
    for i in 0..3 {
        let r = b.api_get(&format!("{}/named/{i}", env.gw.url));
        assert_eq!(r.status(), 200, "request {i} by name");
    }
    // One that does not resolve: the gateway's 502 page, every time, counted with its reason
    // (pingora's own HttpPeer::new would panic and reset the connection).
    for _ in 0..2 {
        let r = b.get(&format!("{}/nowhere/x", env.gw.url));
        assert_eq!(r.status(), 502);
        assert!(r.text().unwrap_or_default().contains("not reachable"));
    }
    let r = b.api_get(&format!("{}/other", env.gw.url));
    assert_eq!(r.status(), 200, "the gateway goes on serving");
    let m = scrape(&env.gw.admin);
    assert_eq!(
        metric(
            &m,
            "authgate_upstream_errors_total{reason=\"dns\",route=\"nowhere\"}"
        ),
        2.0,
        "{m:?}"
    );
    assert!(env.gw.log_text().contains("no-such-host.invalid"));
}
