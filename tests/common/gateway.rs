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

/// The usual test gateway's config (`ConfigBuilder::for_binary`), with `extra` after the
/// `session:` block (indented lines add session keys, unindented ones top-level sections).
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
    ConfigBuilder::for_binary(port, public_url, admin, issuer, upstream)
        .tail(extra)
        .yaml()
}

/// Starts the gateway binary with the builder's configuration, on the builder's ports.
pub fn start_built(b: &ConfigBuilder) -> Gateway {
    let port = port_of(&b.listen);
    let admin = port_of(&b.admin);
    start_gateway(port, admin, &b.yaml())
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr:?}"))
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
    /// The configuration it runs with (for a second gateway, or a reload).
    pub cfg: ConfigBuilder,
    pub gw: Gateway,
    pub op: OpenIdProvider,
    pub upstream: Upstream,
}

pub fn start_env(extra_session: &str) -> Env {
    start_env_with(|b| b.tail(extra_session))
}

/// As `start_env`, with the usual configuration changed by `edit` first.
pub fn start_env_with(edit: impl Fn(ConfigBuilder) -> ConfigBuilder) -> Env {
    let port = free_port();
    let admin = free_port();
    let upstream = start_upstream();
    let public = format!("http://127.0.0.1:{port}");
    let op = start_op(&public, 0);
    let b = edit(ConfigBuilder::for_binary(
        port,
        &public,
        admin,
        &op.issuer,
        upstream.port,
    ));
    let gw = start_built(&b);
    Env {
        cfg: b,
        gw,
        op,
        upstream,
    }
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

/// `out` (of `authgate check`) reports each `(path, words)`: a line naming the path, saying
/// those words.
pub fn assert_config_errors(out: &str, want: &[(&str, &str)]) {
    for (path, says) in want {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("{path}: ")) && l.contains(says)),
            "{path} ({says}) missing:\n{out}"
        );
    }
}
