//! Hostile requests, sent as raw bytes to the real gateway (proxy mode), to a real nginx set up
//! as ingress-nginx renders forward-auth, and to the gateway in Traefik's forward-auth dialect.
//! The upstream is a raw logging server that records every request it receives.
//!
//! The oracle, for every case: either the request is refused, or every way a common upstream
//! server reads what it received (as RFC 3986 says, case-insensitively as IIS does, as a
//! servlet container drops `;params`, as a double-decoding app does, NFKC as ASP.NET does,
//! by `Host` as a virtual host does) lands on a route whose policy admits the caller.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Records every request head it receives, raw, and answers 200.
struct LoggingUpstream {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

fn logging_upstream() -> LoggingUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || serve(conn, log));
        }
    });
    LoggingUpstream { port, seen }
}

fn serve(conn: TcpStream, log: Arc<Mutex<Vec<String>>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut w = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::new(conn);
    loop {
        let mut head = String::new();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            let end = line == "\r\n" || line == "\n";
            head.push_str(&line);
            if end {
                break;
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        log.lock().unwrap().push(head);
        if w.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nContent-Type: text/plain\r\n\r\nupstream",
        )
        .is_err()
        {
            return;
        }
    }
}

impl LoggingUpstream {
    /// The head the upstream received for the case with this marker, if any.
    fn received(&self, marker: &str) -> Option<String> {
        let needle = format!("x-case: {marker}\r\n");
        self.seen
            .lock()
            .unwrap()
            .iter()
            .find(|h| h.to_ascii_lowercase().contains(&needle))
            .cloned()
    }
}

/// Sends `raw` (a whole request head without the final blank line) and returns the status.
fn send_raw(addr: &str, raw: &str) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    s.write_all(b"Connection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rule {
    Public,
    SignedIn,
    Admins,
}

/// The test topology's routes, as upstream readings are judged against them.
const ROUTES: &[(Option<&str>, &str, Rule)] = &[
    (Some("secret.test"), "/", Rule::Admins),
    (None, "/admin", Rule::Admins),
    (None, "/public", Rule::Public),
    (None, "/legacy", Rule::SignedIn),
    (None, "/", Rule::SignedIn),
];

fn rule_for(host: Option<&str>, path: &str) -> Rule {
    let path = path.to_ascii_lowercase();
    let under = |prefix: &str| {
        let p = prefix.trim_end_matches('/');
        p.is_empty() || path == p || path.starts_with(&format!("{p}/"))
    };
    let mut best: Option<(bool, usize, Rule)> = None;
    for (h, prefix, rule) in ROUTES {
        let host_ok = match h {
            Some(h) => host == Some(*h),
            None => true,
        };
        if host_ok && under(prefix) {
            let key = (h.is_some(), prefix.len(), *rule);
            if best.is_none_or(|b| (key.0, key.1) > (b.0, b.1)) {
                best = Some(key);
            }
        }
    }
    best.map_or(Rule::SignedIn, |b| b.2)
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn resolve_dots(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// Every way a common server reads a received path.
fn readings(path: &str) -> Vec<(&'static str, String)> {
    let path = path.split('?').next().unwrap_or("/");
    let nfkc: String = decode(path)
        .chars()
        .map(|c| match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect();
    let windows: String = decode(&path.replace('\\', "/"))
        .replace('\\', "/")
        .split('/')
        .map(|seg| {
            let seg = seg.split("::").next().unwrap_or("");
            let seg = seg.split(":$").next().unwrap_or("");
            seg.trim_end_matches(['.', ' ']).to_string()
        })
        .collect::<Vec<_>>()
        .join("/");
    let servlet: String = path
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("/");
    vec![
        ("rfc3986", resolve_dots(&decode(path))),
        ("iis", resolve_dots(&windows)),
        ("servlet", resolve_dots(&decode(&servlet))),
        ("double-decoding", resolve_dots(&decode(&decode(path)))),
        ("nfkc", resolve_dots(&nfkc)),
    ]
}

/// The host a virtual-host server reads from a received head.
fn vhost(head: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case("host").then(|| {
            let v = v.trim().to_ascii_lowercase();
            let v = v
                .rsplit_once(':')
                .map_or(v.as_str(), |(h, p)| {
                    if p.bytes().all(|b| b.is_ascii_digit()) {
                        h
                    } else {
                        v.as_str()
                    }
                })
                .to_string();
            v.trim_end_matches('.').to_string()
        })
    })
}

fn admits(rule: Rule, caller: Caller) -> bool {
    match (rule, caller) {
        (Rule::Public, _) => true,
        (Rule::SignedIn, Caller::Bob) => true,
        (Rule::SignedIn, Caller::Anonymous) => false,
        (Rule::Admins, _) => false,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Bob,
}

/// Path tricks: each is tried under several hosts and by both callers.
const PATHS: &[&str] = &[
    "/admin/",
    "/ADMIN/",
    "/Admin",
    "/%41dmin/",
    "/%61dmin",
    "/adm%69n/x",
    "/admin;x",
    "/admin;jsessionid=1/",
    "/public/..;/admin/",
    "/public/;/../admin",
    "/public/%3b/../admin",
    "/public/../admin",
    "/public/%2e%2e/admin",
    "/public/%2E%2E/admin",
    "/public/.%2e/admin",
    "/public/%252e%252e/admin",
    "/public/%25252e%25252e/admin",
    "/%2561dmin",
    "/public/..%2fadmin",
    "/public%2f..%2fadmin",
    "/public/..%5cadmin",
    "/public\\..\\admin",
    "/public/%c0%ae%c0%ae/admin",
    "/public/%e0%80%ae%e0%80%ae/admin",
    "/public/%u002e%u002e/admin",
    "/public/%ef%bc%8e%ef%bc%8e/admin",
    "/%ef%bc%a1dmin",
    "/public/%ef%bc%8fadmin",
    "/admin.",
    "/admin..",
    "/admin%2e",
    "/admin%20",
    "/admin%20/",
    "/admin::$DATA",
    "/admin:$DATA",
    "/admin%09",
    "/admin%00",
    "/admin%0d%0a",
    "/ADMINI~1/",
    "//admin",
    "///admin/x",
    "/./admin",
    "/public/./../admin",
    "/public/.",
    "/public",
    "/public/x",
    "/publicity",
    "/legacy/x",
    "/legacy/x;jsessionid=ABC",
    "/legacy/..;/admin",
    "/x?a=/../admin",
    "/public?x=%2e%2e",
];

const HOSTS: &[&str] = &[
    "app",
    "secret.test",
    "SECRET.TEST",
    "secret.test.",
    "secret.test:80",
];

struct Case {
    label: String,
    /// The request head without the marker and the final blank line.
    raw: String,
    caller: Caller,
    /// Status the gateway must answer, when the case demands one.
    expect: Option<u16>,
}

fn request(target: &str, host: Option<&str>, extra: &str) -> String {
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    format!("GET {target} HTTP/1.1\r\n{host}Accept: application/json\r\n{extra}")
}

fn cases(app_host: &str) -> Vec<Case> {
    let mut out = Vec::new();
    for caller in [Caller::Anonymous, Caller::Bob] {
        for (i, host) in HOSTS.iter().enumerate() {
            let host = if *host == "app" { app_host } else { host };
            // Every path under the gateway's own host; a sample under the others.
            for path in PATHS
                .iter()
                .filter(|_| i == 0)
                .chain(PATHS.iter().take(12).filter(|_| i > 0))
            {
                out.push(Case {
                    label: format!("{path} host {host}"),
                    raw: request(path, Some(host), ""),
                    caller,
                    expect: None,
                });
            }
        }
        // Absolute-form targets: the authority is the host, whatever Host says.
        for (target, host, expect) in [
            ("http://secret.test/public/x", None, None),
            ("http://secret.test/public/x", Some(app_host), Some(400)),
            ("HTTP://secret.test/public/x", Some("secret.test"), None),
            ("https://secret.test:443/public/", None, None),
            ("http://secret.test./public/", None, None),
            ("ftp://secret.test/public/", None, Some(400)),
            ("http://user@secret.test/public/", None, Some(400)),
            ("http:///public/", None, Some(400)),
        ] {
            out.push(Case {
                label: format!("absolute {target} host {host:?}"),
                raw: request(target, host, ""),
                caller,
                expect,
            });
        }
        out.push(Case {
            label: "HTTP/1.0 absolute-form without Host".into(),
            raw: "GET http://secret.test/public/x HTTP/1.0\r\nAccept: application/json\r\n".into(),
            caller,
            expect: None,
        });
        out.push(Case {
            label: "two Host headers".into(),
            raw: request("/public/", Some(app_host), "Host: secret.test\r\n"),
            caller,
            expect: Some(400),
        });
        out.push(Case {
            label: "HTTP/1.1 without Host".into(),
            raw: "GET /public/ HTTP/1.1\r\nAccept: application/json\r\n".into(),
            caller,
            expect: Some(400),
        });
        for bad in [
            "secret test",
            "secret.test:x",
            "secret.test:0",
            "a..b",
            "%73ecret.test",
        ] {
            out.push(Case {
                label: format!("bad host {bad}"),
                raw: request("/public/", Some(bad), ""),
                caller,
                expect: Some(400),
            });
        }
        // The reserved prefix in other spellings is handled, never proxied.
        for p in [
            "/_authgate/nope",
            "//_authgate/nope",
            "/%5fauthgate/nope",
            "/_AUTHGATE/nope",
            "/_Authgate/signed_out",
        ] {
            out.push(Case {
                label: format!("reserved {p}"),
                raw: request(p, Some(app_host), ""),
                caller,
                expect: None,
            });
        }
    }
    out
}

struct Topology {
    gw: Gateway,
    _op: OpenIdProvider,
    upstream: LoggingUpstream,
    bob: String,
    cfg: ConfigBuilder,
}

fn topology() -> Topology {
    let upstream = logging_upstream();
    let port = free_port();
    let admin = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let op = start_op(&base, 0);
    let u = upstream.port;
    let up = format!("127.0.0.1:{u}");
    let cfg = ConfigBuilder::for_binary(port, &base, admin, &op.issuer, u)
        .routes_first([
            RouteSpec::new("secret", &up)
                .host("secret.test")
                .groups(&[ADMINS]),
            RouteSpec::new("admin", &up)
                .prefix("/admin")
                .groups(&[ADMINS]),
            RouteSpec::new("legacy", &up)
                .prefix("/legacy")
                .with("path_exceptions: [path_parameters]"),
        ])
        .forward_auth_default(&["127.0.0.1/32"]);
    let gw = start_built(&cfg);
    let b = Browser::new();
    b.sign_in(&format!("{base}/"), "bob");
    let bob = b.cookie(&base, "authgate_session").expect("bob's session");
    Topology {
        gw,
        _op: op,
        upstream,
        bob,
        cfg,
    }
}

impl Topology {
    /// Another gateway with this one's configuration changed by `edit`, on new ports;
    /// returns it and its `host:port`.
    fn another(&self, edit: impl Fn(ConfigBuilder) -> ConfigBuilder) -> (Gateway, String) {
        let (port, admin) = (free_port(), free_port());
        let gw = start_built(&edit(self.cfg.clone().listen(port, admin)));
        let addr = gw.url.trim_start_matches("http://").to_string();
        (gw, addr)
    }
}

/// Runs `cases` against `addr`; returns how many were refused or answered by the gateway.
fn run(t: &Topology, addr: &str, mode: &str, cases: &[Case]) -> usize {
    let mut failures = Vec::new();
    let mut stopped = 0;
    for (i, c) in cases.iter().enumerate() {
        let marker = format!("{mode}-{i}");
        let cookie = match c.caller {
            Caller::Bob => format!("Cookie: authgate_session={}\r\n", t.bob),
            Caller::Anonymous => String::new(),
        };
        let raw = format!("{}{cookie}X-Case: {marker}\r\n", c.raw);
        let status = send_raw(addr, &raw);
        let what = format!("[{mode} {:?}] {}: {status}", c.caller, c.label);
        if status == 0 || status >= 500 {
            failures.push(format!("{what}: no answer or a 5xx"));
            continue;
        }
        if let Some(want) = c.expect {
            if status != want {
                failures.push(format!("{what}: expected {want}"));
            }
        }
        let Some(head) = t.upstream.received(&marker) else {
            stopped += 1;
            continue;
        };
        let target = head.split(' ').nth(1).unwrap_or("").to_string();
        let host = vhost(&head);
        for (reading, path) in readings(&target) {
            let rule = rule_for(host.as_deref(), &path);
            if !admits(rule, c.caller) {
                failures.push(format!(
                    "{what}: reached the upstream as {target:?} (host {host:?}), which a {reading} server serves as {path} under a {rule:?} route"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    stopped
}

#[test]
fn hostile_requests_never_reach_a_route_weaker_than_the_upstreams() {
    let t = topology();
    let addr = t.gw.url.trim_start_matches("http://").to_string();
    let all = cases(&addr);
    assert!(all.len() >= 200, "{} cases", all.len());
    let stopped = run(&t, &addr, "proxy", &all);
    // Controls: the suite is not passing because nothing gets through.
    assert!(
        all.len() - stopped >= 5,
        "only {} of {} passed",
        all.len() - stopped,
        all.len()
    );
    let ok = |target: &str, caller: Caller| {
        let c = [Case {
            label: target.into(),
            raw: request(target, Some(&addr), ""),
            caller,
            expect: Some(200),
        }];
        run(&t, &addr, &format!("control{target}{caller:?}"), &c);
    };
    ok("/public/x", Caller::Anonymous);
    ok("/app/page", Caller::Bob);
    ok("/legacy/page;jsessionid=ABC", Caller::Bob);
    // The refusals are logged with their reason and counted.
    let log = t.gw.log_text();
    for reason in [
        "path_parameter",
        "encoded_percent",
        "trailing_dot_or_space",
        "dot_segment",
        "bad_host",
    ] {
        assert!(
            log.contains(&format!("request refused ({reason})")),
            "{reason} not logged"
        );
    }
    let m = scrape(&t.gw.admin);
    assert!(metric(&m, r#"authgate_denials_total{reason="encoded_percent"}"#) >= 2.0);
}

#[test]
fn the_upstream_receives_the_gateways_forwarding_headers_only() {
    let t = topology();
    let addr = t.gw.url.trim_start_matches("http://").to_string();
    let spoofed = "X-Forwarded-Host: evil.example\r\nForwarded: for=1.2.3.4;host=evil.example\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 8443\r\nX-Forwarded-Prefix: /admin\r\nX-Real-IP: 1.2.3.4\r\nX-Original-URL: /admin/\r\nX-Rewrite-URL: /admin/\r\nTrue-Client-IP: 1.2.3.4\r\nRemote-User: admin\r\nX-Remote-User: admin\r\nX-Forwarded-User: admin\r\nX-Forwarded-Email: admin@evil.example\r\nX-Forwarded-Groups: Admins\r\nX-Auth-Request-User: admin\r\nX-MS-CLIENT-PRINCIPAL-NAME: admin\r\nX_Auth_User: admin\r\n";
    let raw = format!(
        "{}X-Case: fwd\r\n",
        request("/public/x", Some(&addr), spoofed)
    );
    assert_eq!(send_raw(&addr, &raw), 200);
    let head = t.upstream.received("fwd").expect("reached the upstream");
    let names: Vec<String> = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, _)| n.trim().to_ascii_lowercase())
        })
        .collect();
    for gone in [
        "forwarded",
        "x-forwarded-prefix",
        "x-forwarded-port",
        "x-real-ip",
        "x-original-url",
        "x-rewrite-url",
        "true-client-ip",
        "remote-user",
        "x-remote-user",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-auth-request-user",
        "x-ms-client-principal-name",
        "x_auth_user",
        "x-auth-user",
    ] {
        if gone == "x-forwarded-port" {
            continue; // set by the gateway itself (checked below)
        }
        assert!(
            !names.iter().any(|n| n == gone),
            "{gone} reached the upstream:\n{head}"
        );
    }
    assert!(
        !head.contains("evil.example") && !head.contains("1.2.3.4"),
        "{head}"
    );
    let header = |n: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(n).then(|| v.trim().to_string())
        })
    };
    assert_eq!(header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(header("x-forwarded-host").as_deref(), Some(addr.as_str()));
    assert_eq!(header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(header("host").as_deref(), Some(addr.as_str()));
    assert_eq!(
        header("x-forwarded-port").as_deref(),
        addr.rsplit(':').next()
    );

    // A gateway that trusts the peer keeps its forwarding headers and appends to them.
    let (_trusting, taddr) = t.another(|b| b.trust_proxies(&["127.0.0.1/32"]));
    let raw = format!(
        "{}X-Case: trusted\r\n",
        request(
            "/public/x",
            Some(&taddr),
            "X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: https\r\nX-Remote-User: admin\r\n"
        )
    );
    assert_eq!(send_raw(&taddr, &raw), 200);
    let head = t
        .upstream
        .received("trusted")
        .expect("reached the upstream");
    assert!(head.contains("10.1.2.3, 127.0.0.1"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-forwarded-proto: https"),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("x-remote-user"),
        "identity headers never pass: {head}"
    );
}

#[test]
fn forward_auth_reads_the_original_request_the_same_way() {
    let t = topology();
    let gw_addr = t.gw.url.trim_start_matches("http://").to_string();
    let gw_port: u16 = gw_addr.rsplit(':').next().unwrap().parse().unwrap();
    // ingress-nginx in front: nginx asks the gateway about X-Original-URL, then proxies the
    // request as received to the (logging) app.
    let front_port = free_port();
    let conf = nginx_like_ingress(front_port, gw_port, t.upstream.port);
    let _nginx = start_nginx(front_port, &conf);
    let front = format!("127.0.0.1:{front_port}");
    let all: Vec<Case> = cases(&front)
        .into_iter()
        .filter(|c| {
            !c.label.starts_with("reserved")
                && !c.label.contains("absolute")
                && !c.label.contains("HTTP/1.0")
        })
        .map(|c| Case { expect: None, ..c })
        .collect();
    run(&t, &front, "nginx", &all);

    // Traefik: the gateway is asked directly; Traefik sets X-Forwarded-* itself and passes
    // the client's other headers (here a lying X-Original-URL) along.
    let (_traefik, taddr) = t.another(|b| b.forward_auth("traefik", &["127.0.0.1/32"]));
    let mut failures = Vec::new();
    let mut checked = 0;
    for caller in [Caller::Anonymous, Caller::Bob] {
        for host in ["app.test", "secret.test", "Secret.Test."] {
            for path in PATHS {
                let cookie = match caller {
                    Caller::Bob => format!("Cookie: authgate_session={}\r\n", t.bob),
                    Caller::Anonymous => String::new(),
                };
                let raw = format!(
                    "GET /_authgate/auth HTTP/1.1\r\nHost: {taddr}\r\nAccept: application/json\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: {host}\r\nX-Forwarded-Uri: {path}\r\nX-Original-URL: https://{host}/public/\r\n{cookie}"
                );
                let status = send_raw(&taddr, &raw);
                checked += 1;
                if status == 0 || status >= 500 {
                    failures.push(format!("{caller:?} {host}{path}: {status}"));
                }
                if (200..300).contains(&status) {
                    let h = host.to_ascii_lowercase();
                    let h = h.trim_end_matches('.');
                    for (reading, p) in readings(path) {
                        if !admits(rule_for(Some(h), &p), caller) {
                            failures.push(format!("{caller:?} {host}{path}: allowed, but a {reading} server serves {p}"));
                        }
                    }
                }
            }
        }
    }
    assert!(checked >= 200);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn cookies_sign_out_and_slow_clients() {
    let t = topology();
    let addr = t.gw.url.trim_start_matches("http://").to_string();
    // A planted cookie of the same name does not hide the real one.
    let raw = request(
        "/app/x",
        Some(&addr),
        &format!(
            "Cookie: authgate_session=planted-by-a-sibling; authgate_session={}\r\n",
            t.bob
        ),
    );
    assert_eq!(send_raw(&addr, &raw), 200);
    let raw = request(
        "/app/x",
        Some(&addr),
        &format!(
            "Cookie: authgate_session=planted\r\nCookie: authgate_session={}\r\n",
            t.bob
        ),
    );
    assert_eq!(send_raw(&addr, &raw), 200);

    // Sign-out cannot be triggered cross-site: GET shows a confirmation; a POST without the
    // page's token, or from another site, changes nothing.
    let cookie = format!("Cookie: authgate_session={}\r\n", t.bob);
    let raw = request("/_authgate/sign_out", Some(&addr), &cookie);
    assert_eq!(send_raw(&addr, &raw), 200);
    let post = |extra: &str, body: &str| {
        format!(
            "POST /_authgate/sign_out HTTP/1.1\r\nHost: {addr}\r\n{cookie}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    for (extra, body) in [
        ("", ""),
        ("", "token=forged"),
        ("Sec-Fetch-Site: cross-site\r\n", "token=x"),
    ] {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(post(extra, body).as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    }
    assert_eq!(
        send_raw(&addr, &request("/app/x", Some(&addr), &cookie)),
        200,
        "still signed in"
    );

    // A head trickled in one line at a time is cut off at the deadline (set to 2 s here).
    let (strict, saddr) = t.another(|b| b.server("request_header_timeout", "2s"));
    let mut s = TcpStream::connect(&saddr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let started = Instant::now();
    s.write_all(b"GET /public/ HTTP/1.1\r\n").unwrap();
    let mut closed = false;
    for i in 0..12 {
        std::thread::sleep(Duration::from_millis(500));
        if s.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
            .is_err()
        {
            closed = true;
            break;
        }
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let elapsed = started.elapsed();
    assert!(
        closed || elapsed < Duration::from_secs(10),
        "connection held for {elapsed:?}"
    );
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"));
    assert!(
        strict
            .log_text()
            .contains("request head did not arrive within"),
        "{}",
        strict.log_text()
    );
    // A normal request on the strict gateway still works; a body may take longer than the
    // head deadline, and so may the pause before a kept-alive connection's next request.
    assert_eq!(
        send_raw(&saddr, &request("/public/", Some(&saddr), "")),
        200
    );
    let mut s = TcpStream::connect(&saddr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "POST /public/upload HTTP/1.1\r\nHost: {saddr}\r\nContent-Length: 6\r\n\r\nabc"
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    s.write_all(b"def").unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "slow body"
    );
    std::thread::sleep(Duration::from_secs(3));
    write!(
        s,
        "GET /public/again HTTP/1.1\r\nHost: {saddr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "idle keep-alive then a request: {out}"
    );
}

/// Property: for generated hostile paths and hosts, the route chosen for the raw request is
/// the route every upstream reading of the forwarded request is served under, or the request
/// is refused (the library's reading and route table, no server needed).
#[test]
fn raw_route_equals_every_upstream_reading() {
    use authgate::canonical::{self, Exceptions};
    use authgate::route::RouteTable;
    use authgate::route::{RouteConfig, Upstream as UpstreamAddr};
    use rand::{rngs::StdRng, Rng, SeedableRng};

    let rc = |name: &str, host: Option<&str>, prefix: &str, exceptions: Exceptions| RouteConfig {
        name: name.into(),
        host: host.map(Into::into),
        path_prefix: prefix.into(),
        upstream: UpstreamAddr {
            addr: "127.0.0.1:1".into(),
            tls: false,
            sni: String::new(),
            tls_options: None,
            host_header: None,
            read_timeout: None,
        },
        public: false,
        provider: 0,
        accepts: vec!["demo".into()],
        policy: Default::default(),
        require: Default::default(),
        exceptions,
        preserve_post: None,
        cors: Default::default(),
        open: Default::default(),
        assertion_audience: None,
        tokens: Default::default(),
    };
    let params = Exceptions {
        path_parameters: true,
        encoded_slash: false,
    };
    let slash = Exceptions {
        path_parameters: false,
        encoded_slash: true,
    };
    let table = RouteTable::new(&[
        rc("root", None, "/", Exceptions::default()),
        rc("admin", None, "/admin", Exceptions::default()),
        rc("public", None, "/public", Exceptions::default()),
        rc("legacy", None, "/legacy", params),
        rc("pkg", None, "/pkg", slash),
        rc("secret", Some("secret.test"), "/", Exceptions::default()),
    ]);
    let pieces = [
        "admin",
        "ADMIN",
        "Admin",
        "%41dmin",
        "public",
        "legacy",
        "pkg",
        "x",
        "..",
        ".",
        "%2e",
        "%2E%2E",
        "%252e",
        "%25",
        "%3b",
        ";",
        ";x=1",
        "",
        "\\",
        "%5c",
        "%2f",
        "%2F",
        "~1",
        "::$DATA",
        "%20",
        "a.",
        "%c0%ae",
        "%ef%bc%8e",
        "%ef%bc%a1dmin",
        "%00",
        "%09",
        "%u002e",
        "caf%c3%a9",
        "_authgate",
        "%5fauthgate",
    ];
    let hosts: [&[u8]; 6] = [
        b"app.test",
        b"secret.test",
        b"SECRET.test.",
        b"secret.test:80",
        b"secret.test:8080",
        b"a..b",
    ];
    let mut rng = StdRng::seed_from_u64(0xA17E);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..50_000 {
        let n = rng.gen_range(1..6);
        let path: String = (0..n)
            .map(|_| format!("/{}", pieces[rng.gen_range(0..pieces.len())]))
            .collect();
        let host = hosts[rng.gen_range(0..hosts.len())];
        let Ok(c) = canonical::read(path.as_bytes(), &[host], None, true, table.exceptions) else {
            refused += 1;
            continue;
        };
        let Ok(route) = table.route(&c) else {
            refused += 1;
            continue;
        };
        accepted += 1;
        // The upstream receives c.target() with Host c.authority.
        let head = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\n",
            c.target(),
            c.authority.as_deref().unwrap_or("")
        );
        let vhost = vhost(&head);
        for (reading, p) in readings(&c.target()) {
            let other = table.find(vhost.as_deref(), &p);
            assert!(
                other.is_some_and(|o| std::sync::Arc::ptr_eq(o, route)),
                "{path} (host {:?}) routed to {}, but a {reading} server reads {} as {p} -> {:?}",
                String::from_utf8_lossy(host),
                route.name,
                c.target(),
                other.map(|o| &o.name)
            );
        }
    }
    // Both outcomes are exercised, so the property is not vacuous.
    assert!(
        accepted > 2_000 && refused > 2_000,
        "{accepted} accepted, {refused} refused"
    );
}
