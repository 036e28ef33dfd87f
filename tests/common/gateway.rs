//! The real gateway binary: its configuration template, start-up, and a whole environment
//! (provider, upstream, gateway) in one call.
#![allow(unused_imports)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::redirect::Policy;
use serde_json::Value;

use super::*;

pub struct Gateway {
    pub proc: Proc,
    pub url: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Gateway {
    /// The gateway's log so far (for assertions on the reasons it gives).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A config for the test topology; `extra` is appended after the `session:` block (indented
/// lines add session keys, unindented ones add top-level sections).
pub fn config(port: u16, admin: u16, issuer: &str, upstream: u16, extra: &str) -> String {
    config_with(
        port,
        &format!("http://127.0.0.1:{port}"),
        admin,
        issuer,
        upstream,
        extra,
    )
}

/// As `config`, with a public URL other than the listen address (behind a proxy).
pub fn config_with(
    port: u16,
    public_url: &str,
    admin: u16,
    issuer: &str,
    upstream: u16,
    extra: &str,
) -> String {
    format!(
        r#"listen: ["127.0.0.1:{port}"]
public_url: "{public_url}"
admin:
  listen: "127.0.0.1:{admin}"
server:
  threads: 2
  shutdown_grace: 1s
providers:
  - name: test-idp
    type: oidc
    issuer: "{issuer}"
    client_id: {CLIENT_ID}
    client_secret: "${{TEST_CLIENT_SECRET}}"
    user_claim: oid
routes:
  - name: app
    upstream: "127.0.0.1:{upstream}"
  - name: public
    path_prefix: /public
    upstream: "127.0.0.1:{upstream}"
    public: true
session:
  secret: "${{TEST_SESSION_SECRET}}"
{extra}
"#
    )
}

/// Starts the gateway binary with `yaml` and waits until /readyz answers 200.
pub fn start_gateway(port: u16, admin: u16, yaml: &str) -> Gateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("gateway.yaml");
    std::fs::write(&cfg, yaml).expect("write config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authgate"));
    cmd.args(["run", "-c"]).arg(&cfg);
    start_gateway_with(cmd, port, admin, dir)
}

/// Runs `cmd` (the gateway, however started: in a chroot, ...) with the test secrets in its
/// environment and its log in `dir`, and waits until /readyz answers 200.
pub fn start_gateway_with(
    mut cmd: Command,
    port: u16,
    admin: u16,
    dir: tempfile::TempDir,
) -> Gateway {
    let log = dir.path().join("gateway.log");
    let logf = std::fs::File::create(&log).expect("log file");
    let child = cmd
        .env("TEST_CLIENT_SECRET", CLIENT_SECRET)
        .env("TEST_SESSION_SECRET", SESSION_SECRET)
        .env("AUTHGATE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().expect("log"))
        .stderr(logf)
        .spawn()
        .expect("spawn authgate");
    let gw = Gateway {
        proc: Proc::logging_to(child, "authgate", log.clone()),
        url: format!("http://127.0.0.1:{port}"),
        admin: format!("http://127.0.0.1:{admin}"),
        dir,
        log,
    };
    let client = Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{}/readyz", gw.admin)).send() {
            if r.status() == 200 {
                return gw;
            }
        }
        assert!(
            Instant::now() < deadline,
            "gateway not ready within 30 s; log:\n{}",
            gw.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The whole topology for one test.
pub struct Env {
    pub gw: Gateway,
    pub op: OpenIdProvider,
    pub upstream: Upstream,
}

pub fn start_env(extra_session: &str) -> Env {
    start_env_edit(|yaml| format!("{yaml}{extra_session}\n"))
}

/// As `start_env`, with the generated config passed through `edit` first.
pub fn start_env_edit(edit: impl Fn(String) -> String) -> Env {
    let port = free_port();
    let admin = free_port();
    let upstream = start_upstream();
    let op = start_op(&format!("http://127.0.0.1:{port}"), 0);
    let yaml = edit(config(port, admin, &op.issuer, upstream.port, ""));
    let gw = start_gateway(port, admin, &yaml);
    Env { gw, op, upstream }
}

/// `authgate check` on `yaml`: (accepted, stdout and stderr).
pub fn check_config(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .expect("authgate check");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}
