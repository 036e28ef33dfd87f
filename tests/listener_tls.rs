//! TLS on the gateway's listener, through the real binary: certificates from a test PKI made
//! with openssl (a chain through an intermediate, a second certificate chosen by SNI), HTTP/2
//! by ALPN (checked with curl), TLS 1.2 minimum, a sign-in over TLS, certificate rotation on
//! disk without a restart (and a broken rotation that keeps the old certificate), the
//! plain-HTTP redirect listener, and bad `tls:` settings reported with their path.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::pki::{make_ca, make_intermediate, make_leaf, Pki};
use common::*;

/// A root, an issuing intermediate, the gateway's chain (`gw.pem`) and a second certificate
/// for SNI (`other.test`, `*.apps.test`).
fn new_pki() -> Pki {
    let pki = Pki::empty();
    let d = pki.dir.path();
    make_ca(d, "root");
    make_intermediate(d, "root", "issuing");
    make_leaf(
        d,
        "issuing",
        "gw-leaf",
        "gw.test",
        "DNS:gw.test",
        "serverAuth",
    );
    make_leaf(
        d,
        "root",
        "other",
        "other.test",
        "DNS:other.test,DNS:*.apps.test",
        "serverAuth",
    );
    // The served chain: leaf then intermediate (clients trust only the root).
    let chain = [read(d, "gw-leaf.pem"), read(d, "issuing.pem")].concat();
    std::fs::write(d.join("gw.pem"), chain).expect("chain");
    std::fs::copy(d.join("gw-leaf.key"), d.join("gw.key")).expect("key");
    pki
}

fn read(d: &Path, f: &str) -> Vec<u8> {
    std::fs::read(d.join(f)).expect("read pki file")
}

/// curl over TLS to `host` (resolved to loopback) trusting only the test root; returns
/// (exit code, body, HTTP version).
fn curl(pki: &Pki, host: &str, port: u16, path: &str, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", &pki.path("root.pem")])
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .args(["-w", "\n%{http_version} %{http_code}"])
        .args(extra)
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .expect("curl (apt install curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        out.status.code().unwrap_or(-1),
        body.to_string(),
        tail.to_string(),
    )
}

/// The subject of the certificate the gateway serves for `sni` (None: no SNI sent).
fn served_subject(port: u16, sni: Option<&str>, extra: &[&str]) -> Option<String> {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")]);
    match sni {
        Some(n) => cmd.args(["-servername", n]),
        None => cmd.arg("-noservername"),
    };
    let out = cmd
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return None;
    }
    text.lines()
        .find(|l| l.starts_with("subject="))
        .map(|l| l.trim_start_matches("subject=").replace(' ', ""))
}

fn tls_yaml(pki: &Pki, redirect: u16) -> String {
    format!(
        "tls:\n  cert_file: {}\n  key_file: {}\n  certificates:\n    - cert_file: {}\n      key_file: {}\n  redirect_listen: [\"127.0.0.1:{redirect}\"]\n",
        pki.path("gw.pem"),
        pki.path("gw.key"),
        pki.path("other.pem"),
        pki.path("other.key"),
    )
}

#[test]
fn the_listener_serves_tls_with_http2_sni_and_a_sign_in() {
    let pki = new_pki();
    let port = free_port();
    let admin = free_port();
    let redirect = free_port();
    let public = format!("https://gw.test:{port}");
    let upstream = start_upstream();
    let op = start_op(&public, 0);
    let yaml = config_with(
        port,
        &public,
        admin,
        &op.issuer,
        upstream.port,
        &tls_yaml(&pki, redirect),
    );
    let gw = start_gateway(port, admin, &yaml);

    // HTTP/2 by ALPN, the chain through the intermediate accepted by a client that trusts
    // only the root, and identity headers a client sends stripped on HTTP/2 as on HTTP/1.1.
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let (code, body, tail) = curl(
            &pki,
            "gw.test",
            port,
            "/public/x",
            &[
                flag,
                "-H",
                "x-auth-user: mallory",
                "-H",
                "accept: application/json",
            ],
        );
        assert_eq!(
            code,
            0,
            "{flag}: curl failed: {body}\nlog:\n{}",
            gw.log_text()
        );
        assert_eq!(tail, format!("{version} 200"), "{flag}: {body}");
        let seen: serde_json::Value = serde_json::from_str(&body).expect("echo");
        assert!(
            seen["headers"]["x-auth-user"].is_null(),
            "{flag}: spoofed header kept: {body}"
        );
        assert_eq!(seen["headers"]["x-forwarded-proto"], "https", "{flag}");
        assert_eq!(seen["headers"]["host"], format!("gw.test:{port}"), "{flag}");
    }
    // A protected route over HTTP/2 without a session: sent to sign in, not proxied.
    let (_, body, tail) = curl(
        &pki,
        "gw.test",
        port,
        "/app",
        &["--http2", "-H", "accept: text/html"],
    );
    assert_eq!(tail, "2 302", "{body}");

    // SNI picks the certificate; a wildcard covers one label; no or unknown SNI gets the first.
    let cases: [(Option<&str>, &str); 5] = [
        (Some("gw.test"), "CN=gw.test"),
        (Some("other.test"), "CN=other.test"),
        (Some("x.apps.test"), "CN=other.test"),
        (Some("a.b.apps.test"), "CN=gw.test"),
        (None, "CN=gw.test"),
    ];
    for (sni, subject) in cases {
        assert_eq!(
            served_subject(port, sni, &[]).as_deref(),
            Some(subject),
            "SNI {sni:?}"
        );
    }
    let (code, _, tail) = curl(&pki, "other.test", port, "/public/", &[]);
    assert_eq!(
        (code, tail.as_str()),
        (0, "2 200"),
        "the second certificate verifies"
    );

    // TLS 1.2 minimum: 1.2 and 1.3 handshake, 1.1 and 1.0 do not (the client is allowed to
    // offer them: only the gateway refuses).
    let weak = ["-cipher", "DEFAULT:@SECLEVEL=0"];
    assert!(served_subject(port, Some("gw.test"), &["-tls1_2"]).is_some());
    assert!(served_subject(port, Some("gw.test"), &["-tls1_3"]).is_some());
    for old in ["-tls1_1", "-tls1"] {
        let args = [old, weak[0], weak[1]];
        assert_eq!(
            served_subject(port, Some("gw.test"), &args),
            None,
            "{old} refused"
        );
    }

    // What is not TLS on the TLS port gets no answer and harms nothing: plain HTTP, junk, a
    // ClientHello cut short, an SNI that is not a name.
    let junk: [&[u8]; 4] = [
        b"GET /public/x HTTP/1.1\r\nHost: gw.test\r\nX-Auth-User: admin\r\n\r\n",
        b"\x00\xff\x13\x37 not tls at all",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"",
    ];
    for bytes in junk {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(bytes).expect("write");
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        assert!(
            !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
            "{answer:?}"
        );
    }
    for sni in ["bad_name..", "a\u{1}b"] {
        let _ = served_subject(port, Some(sni), &[]);
    }
    let (code, _, tail) = curl(&pki, "gw.test", port, "/public/after-junk", &[]);
    assert_eq!(
        (code, tail.as_str()),
        (0, "2 200"),
        "still serving:\n{}",
        gw.log_text()
    );

    // A whole sign-in over TLS: Secure cookies, the callback on the https public URL.
    let root = reqwest::Certificate::from_pem(&read(pki.dir.path(), "root.pem")).expect("root");
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar.clone())
        .add_root_certificate(root)
        .tls_built_in_root_certs(false)
        .resolve("gw.test", ([127, 0, 0, 1], port).into())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let browser = Browser { client, jar };
    let (r, _) = browser.sign_in(&format!("{public}/"), "alice");
    assert_eq!(r.status(), 200, "signed in over TLS");
    let session = browser
        .cookie(&public, "__Host-authgate_session")
        .expect("session cookie");
    // The session works over HTTP/2 too, with the verified identity injected.
    let (_, body, tail) = curl(
        &pki,
        "gw.test",
        port,
        "/whoami",
        &[
            "--http2",
            "-H",
            &format!("cookie: __Host-authgate_session={session}"),
            "-H",
            "accept: application/json",
        ],
    );
    assert_eq!(tail, "2 200", "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).expect("echo");
    assert!(
        seen["headers"]["x-auth-user"]
            .as_str()
            .is_some_and(|u| !u.is_empty()),
        "{body}"
    );

    // The redirect listener: the same path under the public URL, whatever Host says.
    let client = api();
    for (target, host) in [("/app/x?y=1", "evil.example"), ("/", "gw.test")] {
        let r = client
            .get(format!("http://127.0.0.1:{redirect}{target}"))
            .header("host", host)
            .send()
            .expect("redirect listener");
        assert_eq!(r.status(), 308);
        assert_eq!(
            r.headers()["location"],
            format!("{public}{target}").as_str()
        );
    }
    let m = scrape(&gw.admin);
    let expiry = m
        .iter()
        .find(|(k, _)| {
            k.starts_with("authgate_tls_certificate_expiry_timestamp_seconds{name=\"gw.test\"}")
        })
        .map(|(_, v)| *v)
        .expect("expiry gauge");
    let now = chrono_now();
    assert!(
        expiry > now && expiry < now + 3.0 * 86_400.0,
        "expiry {expiry}"
    );
}

fn chrono_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A gateway serving `gw.pem` (plus `extra` lines under `tls:`), its provider and upstream.
struct TlsEnv {
    gw: Gateway,
    port: u16,
    _op: OpenIdProvider,
    _upstream: Upstream,
}

fn start_tls(pki: &Pki, extra: &str) -> TlsEnv {
    let port = free_port();
    let admin = free_port();
    let public = format!("https://gw.test:{port}");
    let upstream = start_upstream();
    let op = start_op(&public, 0);
    let tls = format!(
        "tls:\n  cert_file: {}\n  key_file: {}\n{extra}",
        pki.path("gw.pem"),
        pki.path("gw.key")
    );
    let yaml = config_with(port, &public, admin, &op.issuer, upstream.port, &tls);
    TlsEnv {
        gw: start_gateway(port, admin, &yaml),
        port,
        _op: op,
        _upstream: upstream,
    }
}

#[test]
fn rotated_certificate_files_are_served_without_a_restart() {
    let pki = new_pki();
    let env = start_tls(&pki, "");
    let (gw, port) = (&env.gw, env.port);
    assert_eq!(
        served_subject(port, Some("gw.test"), &[]).as_deref(),
        Some("CN=gw.test")
    );

    // cert-manager renews: a new key and certificate replace the files in place.
    let d = pki.dir.path();
    make_leaf(
        d,
        "root",
        "renewed",
        "gw.test renewed",
        "DNS:gw.test",
        "serverAuth",
    );
    std::fs::write(d.join("gw.key"), read(d, "renewed.key")).expect("key");
    std::fs::write(d.join("gw.pem"), read(d, "renewed.pem")).expect("cert");
    wait_for(
        "the renewed certificate served",
        Duration::from_secs(8),
        || served_subject(port, Some("gw.test"), &[]).as_deref() == Some("CN=gw.testrenewed"),
    );
    let (code, _, tail) = curl(&pki, "gw.test", port, "/public/", &[]);
    assert_eq!((code, tail.as_str()), (0, "2 200"));
    assert_eq!(
        metric(
            &scrape(&gw.admin),
            "authgate_tls_reloads_total{result=\"success\"}"
        ),
        1.0
    );

    // A rotation caught half way (the key of another certificate): refused, logged,
    // counted, and the renewed certificate stays in service.
    std::fs::write(d.join("gw.key"), read(d, "other.key")).expect("key");
    wait_for(
        "the broken rotation counted",
        Duration::from_secs(8),
        || {
            metric(
                &scrape(&gw.admin),
                "authgate_tls_reloads_total{result=\"error\"}",
            ) == 1.0
        },
    );
    assert_eq!(
        served_subject(port, Some("gw.test"), &[]).as_deref(),
        Some("CN=gw.testrenewed")
    );
    let log = gw.log_text();
    assert!(
        log.contains("TLS certificate files changed but cannot be used (key_file: is not the key"),
        "{log}"
    );
    // Not reported again on every poll.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        metric(
            &scrape(&gw.admin),
            "authgate_tls_reloads_total{result=\"error\"}"
        ),
        1.0
    );
}

#[test]
fn bad_tls_settings_are_reported_with_their_path() {
    let pki = new_pki();
    let base = |public: &str, tls: &str| {
        ConfigBuilder::new(public)
            .listen(8443, 9090)
            .oidc("demo", "http://127.0.0.1:4000/t/v2.0")
            .route(RouteSpec::new("app", "http://a:80"))
            .tail(tls)
            .yaml()
    };
    let (cert, key, other_key) = (
        pki.path("gw.pem"),
        pki.path("gw.key"),
        pki.path("other.key"),
    );
    let https = "https://gw.test:8443";
    let cases: Vec<(&str, &str, String, &str)> = vec![
        ("no files", https, "tls:\n  http2: true\n".into(), "tls: needs cert_file and key_file"),
        ("cert without key", https, format!("tls:\n  cert_file: {cert}\n"), "tls: cert_file and key_file go together"),
        ("missing cert", https, format!("tls:\n  cert_file: /nonexistent.pem\n  key_file: {key}\n"), "tls.cert_file: cannot read /nonexistent.pem"),
        ("key of another cert", https, format!("tls:\n  cert_file: {cert}\n  key_file: {other_key}\n"), "tls.key_file: is not the key of the first certificate"),
        ("key file is a cert", https, format!("tls:\n  cert_file: {cert}\n  key_file: {cert}\n"), "tls.key_file:"),
        ("cert file is a key", https, format!("tls:\n  cert_file: {key}\n  key_file: {key}\n"), "tls.cert_file:"),
        ("SNI entry without key", https, format!("tls:\n  cert_file: {cert}\n  key_file: {key}\n  certificates:\n    - cert_file: {cert}\n"), "tls.certificates[0].key_file"),
        ("no idle time", https, format!("tls:\n  cert_file: {cert}\n  key_file: {key}\n  http2_idle_timeout: 0s\n"), "tls.http2_idle_timeout: must be more than 0s"),
        ("bad min_version", https, format!("tls:\n  cert_file: {cert}\n  key_file: {key}\n  min_version: \"1.1\"\n"), "tls.min_version: \"1.1\" is not"),
        ("redirect on the listener", https, format!("tls:\n  cert_file: {cert}\n  key_file: {key}\n  redirect_listen: [\"127.0.0.1:8443\"]\n"), "tls.redirect_listen[0]: is already used"),
        ("redirect on admin", https, format!("tls:\n  cert_file: {cert}\n  key_file: {key}\n  redirect_listen: [\"127.0.0.1:9090\"]\n"), "tls.redirect_listen[0]: is already used"),
        ("http public URL", "http://gw.test:8443", format!("tls:\n  cert_file: {cert}\n  key_file: {key}\n"), "public_url: must be https://"),
        ("unknown key", https, format!("tls:\n  cert_file: {cert}\n  key_file: {key}\n  ciphers: all\n"), "tls.ciphers"),
        ("not a mapping", https, "tls: yes\n".into(), "tls: expected a mapping"),
    ];
    for (what, public, tls, expect) in cases {
        let (ok, text) = check_config(&base(public, &tls));
        assert!(!ok, "{what}: accepted:\n{text}");
        assert!(
            text.contains(expect),
            "{what}: expected {expect:?} in:\n{text}"
        );
    }
    let (ok, text) = check_config(&base(https, &format!("tls:\n  cert_file: {cert}\n  key_file: {key}\n  min_version: \"1.3\"\n  http2: false\n")));
    assert!(ok, "{text}");
}

/// One HTTP/2 request with nghttp (which sends pseudo-headers and headers as told, unlike
/// curl): (status, nghttp's whole output: the frames sent and received, and the body).
fn nghttp(
    port: u16,
    path: &str,
    headers: &[&str],
    data: Option<&str>,
    trailers: &[&str],
) -> (u16, String) {
    let mut cmd = Command::new("nghttp");
    cmd.args(["-v", "--no-push"]);
    for h in headers {
        cmd.arg(format!("--header={h}"));
    }
    for t in trailers {
        cmd.arg(format!("--trailer={t}"));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    if let Some(d) = data {
        let f = dir.path().join("body");
        std::fs::write(&f, d).expect("body");
        cmd.arg(format!("--data={}", f.display()));
    }
    let out = cmd
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .expect("nghttp (apt install nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .find_map(|l| {
            l.split_once(":status: ")
                .map(|(_, s)| s.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    // The body follows the last frame dump line.
    (status, text)
}

/// The upstream's JSON echo inside nghttp's output (frame dumps around it).
fn echo_in(out: &str) -> serde_json::Value {
    let start = out
        .find("{\"method\"")
        .unwrap_or_else(|| panic!("no echo in: {out}"));
    serde_json::Deserializer::from_str(&out[start..])
        .into_iter::<serde_json::Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("echo is not JSON: {out}"))
}

#[test]
fn http2_request_forms_are_read_as_the_upstream_reads_them() {
    let pki = new_pki();
    let env = start_tls(&pki, "");
    let (gw, port) = (&env.gw, env.port);
    let authority = format!(":authority: gw.test:{port}");
    let json = "accept: application/json";

    // A plain one passes (the harness itself works).
    let (status, body) = nghttp(port, "/public/x", &[&authority, json], None, &[]);
    assert_eq!(status, 200, "{body}\nlog:\n{}", gw.log_text());
    assert!(body.contains("\"url\":\"/public/x\""), "{body}");

    // (what, path, headers, expected status; 0 = any refusal (4xx) without reaching the upstream)
    let cases: Vec<(&str, &str, Vec<String>, u16)> = vec![
        (
            "Host disagreeing with :authority",
            "/public/x",
            vec![authority.clone(), "host: admin.internal".into()],
            400,
        ),
        (
            "dot segments in :path",
            "/public/../app/x",
            vec![authority.clone()],
            400,
        ),
        (
            "encoded dot segments",
            "/public/%2e%2e/app/x",
            vec![authority.clone()],
            400,
        ),
        ("encoded slash", "/public%2fx", vec![authority.clone()], 400),
        (
            "backslash",
            "/public\\..\\app",
            vec![authority.clone()],
            400,
        ),
        (
            "bad :authority",
            "/public/x",
            vec![":authority: gw.test@evil.example".into()],
            400,
        ),
    ];
    for (what, path, headers, want) in &cases {
        let hs: Vec<&str> = headers.iter().map(String::as_str).chain([json]).collect();
        let (status, body) = nghttp(port, path, &hs, None, &[]);
        assert_eq!(status, *want, "{what}: {body}");
        assert!(
            !body.contains("\"url\""),
            "{what}: reached the upstream: {body}"
        );
    }

    // Identity headers in every spelling HTTP/2 allows, and in trailers, never reach the
    // upstream; a body with a trailer still arrives whole.
    let spoofs = [
        "x-auth-user: admin",
        "x-auth-groups: Admins",
        "x-forwarded-for: 10.0.0.1",
    ];
    let hs: Vec<&str> = [authority.as_str(), json]
        .into_iter()
        .chain(spoofs)
        .collect();
    let (status, body) = nghttp(
        port,
        "/public/t",
        &hs,
        Some("payload"),
        &["x-auth-user: admin", "x-auth-roles: Admin"],
    );
    assert_eq!(status, 200, "{body}");
    let seen = echo_in(&body);
    assert!(
        body.contains("x-auth-roles: Admin"),
        "nghttp sent the trailer: {body}"
    );
    assert!(seen["headers"]["x-auth-user"].is_null(), "{seen}");
    assert!(seen["headers"]["x-auth-groups"].is_null(), "{seen}");
    assert_ne!(seen["headers"]["x-forwarded-for"], "10.0.0.1", "{seen}");
    let trailers = seen["trailers"]
        .as_object()
        .map(|t| t.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(
        !trailers.iter().any(|k| k.starts_with("x-auth-")),
        "trailers reached the upstream: {seen}"
    );
    assert_eq!(seen["body"], "payload", "{seen}");

    // A body of unknown length (no content-length: the last DATA frame is empty and ends the
    // stream) goes upstream chunked and ends once: the pooled upstream connection stays in
    // step, and the requests after it on that connection get their own answers.
    for round in 0..5 {
        let up = Command::new("curl")
            .args([
                "-sS",
                "--http2",
                "--max-time",
                "10",
                "--cacert",
                &pki.path("root.pem"),
            ])
            .arg("--resolve")
            .arg(format!("gw.test:{port}:127.0.0.1"))
            .args([
                "-H",
                "accept: application/json",
                "-H",
                "content-length:",
                "-T",
                "-",
                "-w",
                "\n%{http_code} %{http_version}",
            ])
            .arg(format!("https://gw.test:{port}/public/upload"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("curl");
        let out = {
            use std::io::Write;
            let mut up = up;
            up.stdin
                .take()
                .expect("stdin")
                .write_all(b"streamed body")
                .expect("write");
            up.wait_with_output().expect("curl")
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "round {round}: {text}\nlog:\n{}",
            gw.log_text()
        );
        assert!(
            text.contains("{\"method\""),
            "round {round}: {text}\nlog:\n{}",
            gw.log_text()
        );
        let seen = echo_in(&text);
        assert_eq!(seen["body"], "streamed body", "round {round}: {seen}");
        for n in 0..4 {
            let (code, body, tail) = curl(
                &pki,
                "gw.test",
                port,
                &format!("/public/after{n}"),
                &["--http1.1", "-H", "accept: application/json"],
            );
            assert_eq!(
                (code, tail.as_str()),
                (0, "1.1 200"),
                "round {round}, request {n}: {body}"
            );
            assert!(
                body.contains(&format!("/public/after{n}")),
                "round {round}: another request's answer: {body}"
            );
        }
    }

    // HTTP/1-only framing headers are refused or dropped, never passed on to an HTTP/1
    // upstream where they would frame the body differently.
    for framing in [
        "transfer-encoding: chunked",
        "connection: keep-alive, x-auth-user",
        "upgrade: websocket",
    ] {
        let hs = [authority.as_str(), json, framing];
        let (status, body) = nghttp(
            port,
            "/public/f",
            &hs,
            Some("0\r\n\r\nGET /app HTTP/1.1\r\n\r\n"),
            &[],
        );
        if status == 200 {
            let seen = echo_in(&body);
            let name = framing.split(':').next().unwrap_or("");
            assert!(
                seen["headers"][name].is_null() || name == "connection",
                "{framing} passed on: {seen}"
            );
            assert_eq!(seen["url"], "/public/f", "{framing}: {seen}");
        } else if status == 0 {
            // Refused by the HTTP/2 layer (RFC 9113 §8.2.2: connection-specific fields).
            assert!(
                body.contains("recv RST_STREAM") && body.contains("PROTOCOL_ERROR"),
                "{framing}: {body}"
            );
        } else {
            assert!((400..500).contains(&status), "{framing}: {status} {body}");
        }
    }
}

/// An HTTP/2 connection (ALPN h2) that sends its preface and settings, then nothing: how long
/// until the gateway closes it (None: still open after `wait`).
fn idle_h2_closed_after(pki: &Pki, port: u16, wait: Duration) -> Option<Duration> {
    use std::io::Write;
    let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).expect("ssl");
    b.set_ca_file(pki.path("root.pem")).expect("root");
    b.set_alpn_protos(b"\x02h2").expect("alpn");
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_millis(250)))
        .expect("timeout");
    let mut s = b.build().connect("gw.test", tcp).expect("tls");
    assert_eq!(s.ssl().selected_alpn_protocol(), Some(&b"h2"[..]));
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .expect("preface");
    // The server's SETTINGS, its ACK and a GOAWAY are read and ignored.
    closed_within(&mut s, wait)
}

#[test]
fn idle_http2_connections_are_closed() {
    let pki = new_pki();
    let env = start_tls(&pki, "  http2_idle_timeout: 1s\n");
    let closed = idle_h2_closed_after(&pki, env.port, Duration::from_secs(6)).expect("closed");
    assert!(
        closed >= Duration::from_millis(800),
        "closed after {closed:?}"
    );
    // The default (60 s) keeps it open well beyond that.
    let env = start_tls(&pki, "");
    assert_eq!(
        idle_h2_closed_after(&pki, env.port, Duration::from_secs(3)),
        None
    );
}
