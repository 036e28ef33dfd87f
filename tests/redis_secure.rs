//! Redis as a security team deploys it, through the real binary and Debian's `redis-server`:
//! TLS only (no plain port), the default user off, and an ACL user allowed nothing but the
//! gateway's key prefix and channel; Sentinels over TLS with a password of their own. Sessions
//! work across two replicas, the keys land under the prefix, and wrong credentials are refused
//! (the gateway reports not ready, never lets a request through).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::*;

const ACL: &str = "user default off\nuser authgate on >gateway-pass ~sec:* &sec:* +@all\n";

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 (`redis.pem`, `redis.key`)
/// issued by it, in `dir`.
fn pki(dir: &Path) {
    common::pki::make_ca(dir, "ca");
    common::pki::make_leaf(
        dir,
        "ca",
        "redis",
        "redis",
        "IP:127.0.0.1,DNS:localhost",
        "serverAuth",
    );
}

/// `redis.conf` lines: TLS only on the port the server is started with.
fn tls_lines(dir: &Path) -> String {
    format!(
        "port 0\ntls-port {{port}}\ntls-cert-file {d}/redis.pem\ntls-key-file {d}/redis.key\ntls-ca-cert-file {d}/ca.pem\ntls-auth-clients no\ntls-replication yes\n",
        d = dir.display()
    )
}

fn tls_server(dir: &Path, extra: &str, sentinel: bool) -> RedisServer {
    let port = free_port();
    let conf = tls_lines(dir).replace("{port}", &port.to_string());
    RedisServer::start_as(dir, port, &format!("{conf}{extra}"), sentinel)
}

/// `redis-cli` over TLS, as `user` (none: no AUTH).
fn cli(dir: &Path, port: u16, user: Option<(&str, &str)>, args: &[&str]) -> String {
    let mut c = Command::new("redis-cli");
    c.args(["--tls", "--cacert"]).arg(dir.join("ca.pem"));
    c.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "--no-auth-warning",
    ]);
    if let Some((u, p)) = user {
        c.args(["--user", u, "--pass", p]);
    }
    let out = c.args(args).output().expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Two replicas (ports on 127.0.0.1, one public_url) on `session` YAML lines.
fn replicas(
    op: &OpenIdProvider,
    upstream: &Upstream,
    port_a: u16,
    session: &str,
) -> (Gateway, Gateway, String) {
    let public = format!("http://127.0.0.1:{port_a}");
    let cfg = |admin: u16| {
        ConfigBuilder::for_binary(port_a, &public, admin, &op.issuer, upstream.port)
            .store("redis")
            .tail(session)
    };
    let a = start_built(&cfg(free_port()));
    let port_b = free_port();
    let mut b_cfg = cfg(free_port());
    b_cfg.listen = format!("127.0.0.1:{port_b}");
    let b = start_built(&b_cfg);
    (a, b, format!("http://127.0.0.1:{port_b}"))
}

fn signed_in_on_both(a: &Gateway, b_url: &str) {
    let browser = Browser::new();
    let (r, _) = browser.sign_in(&format!("{}/", a.url), "alice");
    assert_eq!(r.status(), 200, "{}", a.log_text());
    let seen = echo(browser.api_get(&format!("{b_url}/")));
    assert_eq!(seen["headers"]["x-auth-user"], ALICE_OID);
}

#[test]
fn standalone_over_tls_with_an_acl_user_limited_to_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let redis = tls_server(dir.path(), ACL, false);
    // The ACL holds: the default user is off, the gateway's user cannot leave its prefix.
    assert!(cli(dir.path(), redis.port, None, &["ping"]).contains("NOAUTH"));
    let as_gateway = Some(("authgate", "gateway-pass"));
    assert!(cli(dir.path(), redis.port, as_gateway, &["set", "other:x", "1"]).contains("NOPERM"));
    assert!(cli(dir.path(), redis.port, as_gateway, &["set", "sec:x", "1"]).contains("OK"));

    let port_a = free_port();
    let op = start_op(&format!("http://127.0.0.1:{port_a}"), 0);
    let upstream = start_upstream();
    let session = format!(
        "  redis:\n    url: \"rediss://authgate:gateway-pass@127.0.0.1:{}/0\"\n    tls:\n      ca_file: \"{}\"\n    key_prefix: \"sec:\"\n",
        redis.port,
        dir.path().join("ca.pem").display()
    );
    let (a, _b, b_url) = replicas(&op, &upstream, port_a, &session);
    signed_in_on_both(&a, &b_url);
    let keys = cli(
        dir.path(),
        redis.port,
        as_gateway,
        &["--scan", "--pattern", "*"],
    );
    assert!(
        keys.lines().any(|k| k.starts_with("sec:") && k != "sec:x"),
        "{keys}"
    );
    // Every key is under the prefix (the ACL would have refused any other).
    let ours = cli(
        dir.path(),
        redis.port,
        as_gateway,
        &["--scan", "--pattern", "sec:*"],
    );
    assert_eq!(keys.len(), ours.len(), "{keys}");

    // A wrong password: the gateway starts, says it is not ready, and signs nobody in.
    let wrong = session.replace("gateway-pass", "wrong-pass");
    let port_c = free_port();
    let admin_c = free_port();
    let public_c = format!("http://127.0.0.1:{port_c}");
    let yaml = ConfigBuilder::for_binary(port_c, &public_c, admin_c, &op.issuer, upstream.port)
        .store("redis")
        .tail(&wrong)
        .yaml();
    let c = start_unready(port_c, admin_c, &yaml);
    let r = Browser::new().get(&format!("{public_c}/"));
    assert_eq!(r.status(), 503);
    drop(c);
}

/// The gateway with `yaml`, waited for until it listens (its /readyz may say 503).
fn start_unready(port: u16, admin: u16, yaml: &str) -> common::process::Proc {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gateway.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let log = dir.path().join("gateway.log");
    let child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["run", "-c"])
        .arg(&cfg)
        .env("TEST_CLIENT_SECRET", CLIENT_SECRET)
        .env("TEST_SESSION_SECRET", SESSION_SECRET)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("err.log")).unwrap())
        .spawn()
        .unwrap();
    let p = common::process::Proc::logging_to(child, "authgate", log);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gateway did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ready = api()
        .get(format!("http://127.0.0.1:{admin}/readyz"))
        .send()
        .unwrap();
    assert_eq!(ready.status(), 503);
    std::mem::forget(dir);
    p
}

#[test]
fn sentinel_over_tls_with_its_own_password() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let data_auth = "masterauth gateway-pass\nmasteruser authgate\n";
    let primary = tls_server(dir.path(), &format!("{ACL}{data_auth}"), false);
    let replica = tls_server(
        dir.path(),
        &format!("{ACL}{data_auth}replicaof 127.0.0.1 {}\n", primary.port),
        false,
    );
    let sentinels: Vec<RedisServer> = (0..3)
        .map(|_| {
            tls_server(
                dir.path(),
                &format!(
                    "requirepass sentinel-pass\nsentinel monitor sec 127.0.0.1 {} 2\nsentinel auth-user sec authgate\nsentinel auth-pass sec gateway-pass\nsentinel down-after-milliseconds sec 1000\n",
                    primary.port
                ),
                true,
            )
        })
        .collect();
    let as_gateway = Some(("authgate", "gateway-pass"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cli(
        dir.path(),
        replica.port,
        as_gateway,
        &["info", "replication"],
    )
    .contains("master_link_status:up")
    {
        assert!(Instant::now() < deadline, "replica did not sync over TLS");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A Sentinel refuses a client without its password.
    assert!(cli(
        dir.path(),
        sentinels[0].port,
        None,
        &["sentinel", "masters"]
    )
    .contains("NOAUTH"));
    let nodes: Vec<String> = sentinels
        .iter()
        .map(|s| format!("\"127.0.0.1:{}\"", s.port))
        .collect();
    let session = format!(
        "  redis:\n    sentinel:\n      service_name: sec\n      nodes: [{}]\n      password: \"sentinel-pass\"\n    username: authgate\n    password: \"gateway-pass\"\n    tls:\n      ca_file: \"{}\"\n    key_prefix: \"sec:\"\n",
        nodes.join(", "),
        dir.path().join("ca.pem").display()
    );
    let port_a = free_port();
    let op = start_op(&format!("http://127.0.0.1:{port_a}"), 0);
    let upstream = start_upstream();
    let (a, _b, b_url) = replicas(&op, &upstream, port_a, &session);
    signed_in_on_both(&a, &b_url);
    let keys = cli(
        dir.path(),
        primary.port,
        as_gateway,
        &["--scan", "--pattern", "sec:*"],
    );
    assert!(!keys.trim().is_empty(), "no session keys on the primary");
}
