//! Test harness: starts the real gateway binary, the real OpenID provider (npm
//! `oidc-provider`, testenv/oidc-provider.mjs) and a real upstream (testenv/upstream.mjs) on
//! ephemeral loopback ports, and stops them when dropped. No fixed ports, no sleeps as
//! synchronization: readiness is a line on stdout or a 200 from /readyz.
#![allow(dead_code)]

pub mod rogue_op;

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

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT_ID: &str = "authgate-test";
pub const CLIENT_SECRET: &str = "test-client-secret-9f8e7d";
pub const SESSION_SECRET: &str = "test-session-secret-0123456789abcdef0123456789";

pub fn testenv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testenv")
}

/// Sends `sig` to one process, by syscall. Refuses ids that would mean "many processes".
pub fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 1 {
            // SAFETY: kill(2) with a positive id signals exactly that process.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }
}

/// Sends `sig` to a whole process group, by syscall; never group 0 or 1.
pub fn signal_group(pgid: u32, sig: i32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        if pgid > 1 {
            // SAFETY: kill(2) with a negative id signals exactly that process group.
            unsafe {
                libc::kill(-pgid, sig);
            }
        }
    }
}

/// A child process stopped (and reaped) on drop.
pub struct Proc {
    child: Child,
    pub name: &'static str,
}

/// What the watchdog needs to know of a running child: its pid, whether it leads a process
/// group of its own (stopped as a group), and a log worth showing.
struct Registered {
    pid: u32,
    name: &'static str,
    group: bool,
    log: Option<PathBuf>,
}

/// Every child the harness has started and not yet stopped.
static CHILDREN: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

fn register(child: &Child, name: &'static str, group: bool, log: Option<PathBuf>) {
    watchdog();
    if let Ok(mut list) = CHILDREN.lock() {
        list.push(Registered {
            pid: child.id(),
            name,
            group,
            log,
        });
    }
}

fn unregister(pid: u32) {
    if let Ok(mut list) = CHILDREN.lock() {
        list.retain(|r| r.pid != pid);
    }
}

/// A limit on the whole test binary (`AUTHGATE_TEST_LIMIT` seconds, default 600). A test
/// that hangs would otherwise hold CI until its own timeout, with nothing said about where.
/// When the limit passes, this prints every thread's stack (gdb attached to this process;
/// libtest names each thread after its test), what each child was and the tail of its log,
/// stops the children, and exits with 124.
pub fn watchdog() {
    static START: Once = Once::new();
    START.call_once(|| {
        let limit = std::env::var("AUTHGATE_TEST_LIMIT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(600u64);
        std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                std::thread::sleep(Duration::from_secs(limit));
                watchdog_fire(limit);
            })
            .expect("start the watchdog thread");
    });
}

fn watchdog_fire(limit: u64) -> ! {
    let me = std::env::args().next().unwrap_or_default();
    eprintln!("\nwatchdog: {me} still running after {limit} s: the stacks of its threads:");
    let gdb = Command::new("gdb")
        .args(["-p", &std::process::id().to_string(), "-batch", "-nx"])
        .args([
            "-ex",
            "set print frame-arguments none",
            "-ex",
            "info threads",
        ])
        .args(["-ex", "thread apply all bt 40"])
        .stdin(Stdio::null())
        .spawn();
    match gdb {
        Ok(mut gdb) => {
            let deadline = Instant::now() + Duration::from_secs(60);
            while matches!(gdb.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = gdb.kill();
            let _ = gdb.wait();
        }
        Err(e) => eprintln!("watchdog: gdb did not start ({e}); no stacks"),
    }
    let children = CHILDREN
        .lock()
        .map(|l| {
            l.iter()
                .map(|r| (r.pid, r.name, r.group, r.log.clone()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for (pid, name, group, log) in children {
        eprintln!("watchdog: child {name} (pid {pid}) was still running");
        if let Some(text) = log.and_then(|l| std::fs::read_to_string(l).ok()) {
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "watchdog: the last lines of {name}'s log:\n{}",
                tail.join("\n")
            );
        }
        if group {
            signal_group(pid, libc::SIGKILL);
        } else {
            signal(pid, libc::SIGKILL);
        }
    }
    std::process::exit(124);
}

impl Proc {
    /// Takes charge of `child`: stopped on drop, and by the watchdog if the binary hangs.
    pub fn new(child: Child, name: &'static str) -> Self {
        register(&child, name, false, None);
        Self { child, name }
    }

    /// As `new`, for a child that leads its own process group (the watchdog stops the group).
    pub fn group_leader(child: Child, name: &'static str) -> Self {
        register(&child, name, true, None);
        Self { child, name }
    }

    /// As `new`, with a log file the watchdog shows if the binary hangs.
    pub fn logging_to(child: Child, name: &'static str, log: PathBuf) -> Self {
        register(&child, name, false, Some(log));
        Self { child, name }
    }

    /// Sends SIGTERM (a graceful stop) and waits up to `limit` for the exit.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // nginx's workers outlive a SIGKILLed master: stop it the way it wants to be stopped.
        if !(self.name == "nginx" && self.terminate(Duration::from_secs(5)).is_some()) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        unregister(self.child.id());
    }
}

/// A free port for a server that cannot report its own (the gateway, nginx, php).
///
/// Taken from *below* the kernel's ephemeral range, so that between this check and the
/// server's own bind nothing else can take it: every server started with port 0 and every
/// outgoing connection's local port comes from the ephemeral range. (A port handed out
/// from that range could be taken by a test running in parallel, or by a connection to
/// the port itself while nothing listens yet: a TCP self-connect that looks like a server.)
/// Each binary starts at its own offset; within a binary no port is handed out twice.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    watchdog();
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (first, span) = (10_000u32, low.saturating_sub(10_000).max(1_000));
    let offset = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = first + (offset + n) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free port below the ephemeral range ({first}..{})",
        first + span
    );
}

/// Spawns a node script and waits for its one JSON line on stdout.
///
/// A peer that prints nothing within 30 s is stopped and started once more, loudly: once
/// in CI an oidc-provider loaded its modules and then never reached its listen callback,
/// and the test waited for it until CI's own limit. What the stuck process was doing
/// (its state and kernel wait channel) is printed, so a repeat can be told apart from a
/// gateway bug. A second failure fails the test.
fn spawn_node(script: &str, envs: &[(&str, String)], name: &'static str) -> (Proc, Value) {
    match try_spawn_node(script, envs, name) {
        Ok(started) => started,
        Err(why) => {
            eprintln!("harness: {why}; starting {script} once more");
            try_spawn_node(script, envs, name).unwrap_or_else(|why| panic!("{why}"))
        }
    }
}

fn try_spawn_node(
    script: &str,
    envs: &[(&str, String)],
    name: &'static str,
) -> Result<(Proc, Value), String> {
    let mut cmd = Command::new("node");
    cmd.arg(testenv().join(script))
        .current_dir(testenv())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn node {script}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc::new(child, name);
    // The first line says it is listening. Read it on a thread, so that a peer that never
    // starts is a failure with a reason, not a hang; then keep draining what it prints
    // later (a closed pipe would kill it on its next write).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let first = reader.read_line(&mut line).map(|_| line);
        if tx.send(first).is_err() {
            return;
        }
        let mut sink = String::new();
        while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            eprint!("[{name}] {sink}");
            sink.clear();
        }
    });
    let line = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => return Err(format!("{script} output: {e}")),
        Err(_) => {
            return Err(format!(
                "{script} (pid {}) printed nothing within 30 s; {}",
                proc.pid(),
                process_state(proc.pid())
            ))
        }
    };
    let info: Value = serde_json::from_str(line.trim())
        .map_err(|e| format!("{script} did not start (printed {line:?}): {e}"))?;
    Ok((proc, info))
}

/// What the kernel says a process is doing: its state, threads and wait channel.
fn process_state(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("?")
            .to_string()
    };
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    format!(
        "state {}, {} threads, waiting in {:?}",
        field("State:"),
        field("Threads:"),
        wchan
    )
}

pub struct Upstream {
    pub proc: Proc,
    pub port: u16,
}

pub fn start_upstream() -> Upstream {
    let (proc, info) = spawn_node("upstream.mjs", &[("PORT", "0".into())], "upstream");
    let port = info["port"].as_u64().expect("port") as u16;
    Upstream { proc, port }
}

pub struct OpenIdProvider {
    pub proc: Proc,
    pub issuer: String,
    pub port: u16,
}

impl OpenIdProvider {
    /// Entra's "instance" for this provider: tenants live under it.
    pub fn instance(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An app-only access token from the client-credentials grant in `tenant`, Entra style
    /// (`scope=<resource>/.default`).
    pub fn app_token(&self, tenant: &str, client: &str, resource: &str) -> String {
        let r = api()
            .post(format!("{}/{tenant}/v2.0/token", self.instance()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client),
                ("client_secret", "daemon-secret"),
                ("scope", &format!("{resource}/.default")),
            ])
            .send()
            .expect("token request");
        access_token(r, "client credentials")
    }
}

impl OpenIdProvider {
    /// A delegated access token for `resource`, as an app gets one for a signed-in user: the
    /// authorization code flow (with PKCE and `resource=`) as `user`, through the provider's
    /// login form, redeemed by the gateway's client at the token endpoint. `redirect_uri` is a
    /// registered one (a gateway callback); the code is taken from it, not followed.
    pub fn user_token(
        &self,
        tenant: &str,
        user: &str,
        redirect_uri: &str,
        resource: &str,
    ) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let verifier = b64.encode(rand_bytes());
        let challenge = b64.encode(openssl::sha::sha256(verifier.as_bytes()));
        let base = format!("{}/{tenant}/v2.0", self.instance());
        let discovery: Value = api()
            .get(format!("{base}/.well-known/openid-configuration"))
            .send()
            .and_then(|r| r.json())
            .expect("discovery");
        let mut auth = reqwest::Url::parse(
            discovery["authorization_endpoint"]
                .as_str()
                .expect("authorization_endpoint"),
        )
        .expect("authorization endpoint");
        auth.query_pairs_mut()
            .append_pair("client_id", CLIENT_ID)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &format!("openid {resource}/access_as_user"))
            .append_pair("resource", resource)
            .append_pair("state", "delegated")
            .append_pair("nonce", "delegated")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let callback = Browser::new().login_until_callback(auth.as_str(), user);
        let callback = reqwest::Url::parse(&callback).expect("callback URL");
        let code = callback
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| panic!("no code in {callback}"));
        let r = api()
            .post(
                discovery["token_endpoint"]
                    .as_str()
                    .expect("token_endpoint"),
            )
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", &verifier),
                ("resource", resource),
            ])
            .send()
            .expect("token request");
        access_token(r, "code redemption")
    }
}

/// The access token of a token endpoint's answer, which must be a 200.
fn access_token(r: Response, grant: &str) -> String {
    let status = r.status();
    let body: Value = r.json().expect("token response");
    assert_eq!(status, 200, "{grant} refused: {body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    openssl::rand::rand_bytes(&mut b).expect("random bytes");
    b
}

/// Starts the OpenID provider; `port` 0 = ephemeral. Each start has a new signing key.
pub fn start_op(gateway_url: &str, port: u16) -> OpenIdProvider {
    start_op_for(&[gateway_url], "test-idp", port, &[])
}

/// As `start_op`, registering the callback of provider `provider` on each gateway, with
/// extra environment (`GRAPH_DOWN`, ...).
pub fn start_op_for(
    gateways: &[&str],
    provider: &str,
    port: u16,
    extra_env: &[(&str, String)],
) -> OpenIdProvider {
    let join = |path: &str| {
        gateways
            .iter()
            .map(|g| format!("{g}{path}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut env = vec![
        ("PORT", port.to_string()),
        ("TENANT_ID", TENANT.into()),
        ("CLIENT_ID", CLIENT_ID.into()),
        ("CLIENT_SECRET", CLIENT_SECRET.into()),
        (
            "REDIRECT_URIS",
            join(&format!("/_authgate/callback/{provider}")),
        ),
        ("POST_LOGOUT_REDIRECT_URIS", join("/_authgate/signed_out")),
    ];
    env.extend(extra_env.iter().cloned());
    let (proc, info) = spawn_node("oidc-provider.mjs", &env, "oidc-provider");
    OpenIdProvider {
        proc,
        issuer: info["issuer"].as_str().expect("issuer").to_string(),
        port: info["port"].as_u64().expect("port") as u16,
    }
}

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
    let log = dir.path().join("gateway.log");
    let logf = std::fs::File::create(&log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["run", "-c"])
        .arg(&cfg)
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

/// A cookie-keeping HTTP client that does not follow redirects by itself.
pub struct Browser {
    pub client: Client,
    pub jar: Arc<Jar>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        let jar = Arc::new(Jar::default());
        let client = Client::builder()
            .redirect(Policy::none())
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Self { client, jar }
    }

    /// A navigation: `Accept: text/html`.
    pub fn get(&self, url: &str) -> Response {
        self.client
            .get(url)
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// Follows redirects (as a browser would) until a non-redirect answer; returns it and
    /// the URL it came from.
    pub fn follow(&self, start: &str) -> (Response, String) {
        let mut url = start.to_string();
        for _ in 0..15 {
            let r = self.get(&url);
            if !r.status().is_redirection() {
                return (r, url);
            }
            let loc = r
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .expect("redirect has a location")
                .to_string();
            url = reqwest::Url::parse(&url)
                .and_then(|base| base.join(&loc))
                .expect("location resolves")
                .to_string();
        }
        panic!("too many redirects from {start}");
    }

    /// Follows the sign-in from `start` through the provider's login form as `user`, up to
    /// the gateway's callback (not followed). Returns the callback URL.
    pub fn login_until_callback(&self, start: &str, user: &str) -> String {
        let mut url = start.to_string();
        for _ in 0..20 {
            let r = self.get(&url);
            let here = url.clone();
            if r.status().is_redirection() {
                let loc = r.headers()["location"]
                    .to_str()
                    .expect("location")
                    .to_string();
                url = reqwest::Url::parse(&here)
                    .unwrap()
                    .join(&loc)
                    .unwrap()
                    .to_string();
                if url.contains("/_authgate/callback/") {
                    return url;
                }
                continue;
            }
            let status = r.status();
            let page = r.text().unwrap_or_default();
            let action = form_action(&page)
                .unwrap_or_else(|| panic!("no form on {here} ({status}):\n{page}"));
            let action = reqwest::Url::parse(&here).unwrap().join(&action).unwrap();
            let form: Vec<(&str, &str)> = if page.contains("name=\"login\"") {
                vec![("prompt", "login"), ("login", user), ("password", "any")]
            } else {
                vec![("prompt", "consent")]
            };
            let r = self
                .client
                .post(action)
                .form(&form)
                .send()
                .expect("post form");
            assert!(
                r.status().is_redirection(),
                "form post answered {}",
                r.status()
            );
            let loc = r.headers()["location"].to_str().unwrap().to_string();
            url = reqwest::Url::parse(&here)
                .unwrap()
                .join(&loc)
                .unwrap()
                .to_string();
            if url.contains("/_authgate/callback/") {
                return url;
            }
        }
        panic!("sign-in did not reach the callback");
    }

    /// Full sign-in: start at `start` (a protected URL), log in as `user`, complete the
    /// callback, and return the final response and URL.
    pub fn sign_in(&self, start: &str, user: &str) -> (Response, String) {
        let callback = self.login_until_callback(start, user);
        self.follow(&callback)
    }

    /// Signs out as a person does: GET the confirmation page, POST its form (with its token).
    /// Returns the POST's answer (a 303 to the provider or the signed-out page).
    pub fn sign_out(&self, gw: &str) -> Response {
        let page = self.get(&format!("{gw}/_authgate/sign_out"));
        assert_eq!(page.status(), 200, "sign-out confirmation page");
        let html = page.text().unwrap_or_default();
        let action = form_action(&html).expect("sign-out form");
        let token = input_value(&html, "token").expect("sign-out token");
        let r = self
            .client
            .post(format!("{gw}{action}"))
            .header("origin", gw)
            .form(&[("token", token)])
            .send()
            .expect("post sign-out");
        assert_eq!(r.status(), 303, "sign-out answer");
        r
    }

    /// An API call with this browser's cookies: `Accept: application/json`, so the upstream
    /// echo answers in JSON.
    pub fn api_get(&self, url: &str) -> Response {
        self.client
            .get(url)
            .header("accept", "application/json")
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// The gateway session cookie's value, if the jar holds one for `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = reqwest::Url::parse(url).ok()?;
        let header = self.jar.cookies(&url)?;
        let header = header.to_str().ok()?.to_string();
        header.split(';').find_map(|p| {
            let (n, v) = p.trim().split_once('=')?;
            (n == name).then(|| v.to_string())
        })
    }
}

/// The action of the first form on a page (the provider renders it; never build it).
pub fn form_action(html: &str) -> Option<String> {
    let i = html.find("<form")?;
    let rest = &html[i..];
    let a = rest.find("action=\"")? + 8;
    let end = rest[a..].find('"')?;
    Some(rest[a..a + end].replace("&amp;", "&"))
}

/// The upstream's echo of a request, as JSON.
pub fn echo(r: Response) -> Value {
    let status = r.status();
    let text = r.text().unwrap_or_default();
    serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("not an upstream echo ({status}): {text}"))
}

/// An API GET presenting `session` as the gateway's session cookie (a copied, minted or
/// tampered value); nothing else is kept between calls.
pub fn get_with_session(url: &str, session: &str) -> Response {
    api()
        .get(url)
        .header("cookie", format!("authgate_session={session}"))
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Parses the Prometheus text exposition format strictly enough to catch malformed output:
/// every line is a comment (`# HELP`/`# TYPE`) or `name{labels} value`.
pub fn scrape(admin: &str) -> HashMap<String, f64> {
    let text = api()
        .get(format!("{admin}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let mut out = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                name.starts_with("authgate_"),
                "metric without the authgate_ prefix: {line}"
            );
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter without _total: {line}");
            }
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        let base = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            typed.contains(name) || typed.contains(base),
            "sample before its TYPE: {line}"
        );
        if let Some(labels) = series.split_once('{').map(|(_, l)| l) {
            assert!(labels.ends_with('}'), "{line}");
        }
        out.insert(series.to_string(), value);
    }
    out
}

/// One series' value in a scrape (0 when absent).
pub fn metric(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

/// A plain API client (no cookies kept, no redirects followed).
pub fn api() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

pub fn write_file(path: &std::path::Path, text: &str) {
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(text.as_bytes()).expect("write");
}

/// Sends a request with an exact, unnormalized request target (HTTP clients resolve `..`
/// themselves) and returns the status code and the whole response.
pub fn raw_get(base: &str, target: &str) -> (u16, String) {
    use std::io::Read;
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

/// Waits until something accepts TCP connections on `port` (a server that cannot report
/// readiness itself, like nginx).
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Starts Debian's nginx with `http_body` inside `http { }`, in its own prefix directory.
pub fn start_nginx(port: u16, http_body: &str) -> (Proc, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().display().to_string();
    let conf = format!(
        "worker_processes 1;\nerror_log {p}/error.log info;\npid {p}/nginx.pid;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log {p}/access.log;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n\
         fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n{http_body}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
    let child = Command::new("nginx")
        .args([
            "-p",
            &p,
            "-c",
            &format!("{p}/nginx.conf"),
            "-g",
            "daemon off;",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nginx (apt install nginx)");
    let proc = Proc::logging_to(child, "nginx", dir.path().join("error.log"));
    wait_for_port(port, "nginx");
    (proc, dir)
}

/// Debian's SimpleSAMLphp as a SAML IdP (testenv/simplesamlphp/make-config.sh), served by
/// `php -S` in its own process group (it forks workers), stopped by group on drop.
pub struct SimpleSaml {
    pub port: u16,
    pub base: String,
    pub dir: tempfile::TempDir,
    pgid: u32,
    _proc: Proc,
}

impl Drop for SimpleSaml {
    fn drop(&mut self) {
        // The php server and its forked workers share a process group of their own.
        // (Shelling out `kill -KILL -<pgid>` was parsed as kill(-1): every process.)
        signal_group(self.pgid, libc::SIGKILL);
    }
}

impl SimpleSaml {
    pub fn metadata_url(&self) -> String {
        format!("{}/saml2/idp/metadata.php", self.base)
    }
    /// SHA-1 thumbprint of the IdP's signing certificate, as Entra shows it.
    pub fn cert_sha1(&self) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
            .arg(self.dir.path().join("cert/idp.crt"))
            .output()
            .expect("openssl");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split('=')
            .nth(1)
            .expect("fingerprint")
            .trim()
            .replace(':', "")
    }
}

/// `sp_base`: SP entity IDs are `<sp_base>-<mode>`; `acs_base`: ACS `<acs_base>-<mode>/acs`.
pub fn start_simplesamlphp(sp_base: &str, acs_base: &str) -> SimpleSaml {
    use std::os::unix::process::CommandExt;
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = Command::new(testenv().join("simplesamlphp/make-config.sh"))
        .arg(dir.path())
        .arg(port.to_string())
        .arg(sp_base)
        .arg(acs_base)
        .env("TENANT_ID", TENANT)
        .status()
        .expect("make-config.sh")
        .success();
    assert!(ok, "SimpleSAMLphp config failed");
    let child = Command::new("php")
        .args([
            "-S",
            &format!("127.0.0.1:{port}"),
            "-t",
            "/usr/share/simplesamlphp/www",
        ])
        .env("SIMPLESAMLPHP_CONFIG_DIR", dir.path())
        .env("PHP_CLI_SERVER_WORKERS", "4")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("php (apt install simplesamlphp php-cli php-xml php-mbstring)");
    let pgid = child.id();
    let _proc = Proc::group_leader(child, "simplesamlphp");
    wait_for_port(port, "SimpleSAMLphp");
    SimpleSaml {
        port,
        base: format!("http://127.0.0.1:{port}"),
        dir,
        pgid,
        _proc,
    }
}

/// The value of a named (hidden) input in an HTML form.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let i = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..i].rfind('<')?;
    let tag_end = i + html[i..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + 7;
    let end = tag[v..].find('"')?;
    Some(html_unescape(&tag[v..v + end]))
}

pub fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#039;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl Browser {
    /// Drives SimpleSAMLphp from `start` (a gateway URL or an IdP-initiated IdP URL) through
    /// its login form as `user`, up to the auto-POST page. Returns (ACS URL, SAMLResponse,
    /// RelayState) without posting them.
    pub fn saml_login_until_post(
        &self,
        start: &str,
        user: &str,
        password: &str,
    ) -> (String, String, String) {
        let (r, url) = self.follow(start);
        let page = r.text().unwrap_or_default();
        let auth_state = input_value(&page, "AuthState")
            .unwrap_or_else(|| panic!("no login form at {url}:\n{page}"));
        let action = form_action(&page)
            .filter(|a| !a.is_empty() && a != "?")
            .unwrap_or_else(|| url.clone());
        let action = reqwest::Url::parse(&url).unwrap().join(&action).unwrap();
        let r = self
            .client
            .post(action.clone())
            .form(&[
                ("username", user),
                ("password", password),
                ("AuthState", auth_state.as_str()),
            ])
            .send()
            .expect("post login");
        let (r, url) = if r.status().is_redirection() {
            let loc = r.headers()["location"].to_str().unwrap().to_string();
            self.follow(action.join(&loc).unwrap().as_ref())
        } else {
            (r, action.to_string())
        };
        let page = r.text().unwrap_or_default();
        let acs =
            form_action(&page).unwrap_or_else(|| panic!("no auto-POST form at {url}:\n{page}"));
        let response = input_value(&page, "SAMLResponse").expect("SAMLResponse");
        let relay = input_value(&page, "RelayState").unwrap_or_default();
        (acs, response, relay)
    }

    /// POSTs a SAMLResponse to the ACS, as the auto-POST page would.
    pub fn post_acs(&self, acs: &str, response: &str, relay: &str) -> Response {
        self.client
            .post(acs)
            .header("accept", "text/html")
            .form(&[("SAMLResponse", response), ("RelayState", relay)])
            .send()
            .expect("post to ACS")
    }
}

/// nginx configured the way ingress-nginx renders the `auth-url`, `auth-signin` and
/// `auth-response-headers` annotations, in front of the app on `app_port`; `{FRONT}` in the
/// result is the port nginx listens on.
pub fn nginx_like_ingress(gw_port: u16, app_port: u16) -> String {
    let headers = [
        "X-Auth-User",
        "X-Auth-Email",
        "X-Auth-Name",
        "X-Auth-Groups",
        "X-Auth-Roles",
        "X-Auth-Tenant",
        "X-Auth-Provider",
    ];
    let copy: String = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let var = h.to_ascii_lowercase().replace('-', "_");
            format!("      auth_request_set $authHeader{i} $upstream_http_{var};\n      proxy_set_header '{h}' $authHeader{i};\n")
        })
        .collect();
    format!(
        r#"
  server {{
    listen 127.0.0.1:{{FRONT}};
    # nginx.ingress.kubernetes.io/auth-url: http://authgate/_authgate/auth
    location = /_external-auth-Lw {{
      internal;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Forwarded-Proto "";
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Sent-From "nginx-ingress-controller";
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Auth-Request-Redirect $request_uri;
      proxy_pass_request_headers on;
      proxy_pass http://127.0.0.1:{gw_port}/_authgate/auth;
    }}
    # nginx.ingress.kubernetes.io/auth-signin: https://$host/_authgate/sign_in?rd=...
    location @authgate-signin {{
      internal;
      add_header Set-Cookie $auth_cookie;
      return 302 $scheme://$http_host/_authgate/sign_in?rd=$scheme://$http_host$request_uri;
    }}
    # The gateway's own endpoints (callback, sign-in, sign-out) on the app's host.
    location /_authgate/ {{
      proxy_set_header Host $http_host;
      proxy_pass http://127.0.0.1:{gw_port};
    }}
    location / {{
      auth_request /_external-auth-Lw;
      auth_request_set $auth_cookie $upstream_http_set_cookie;
      add_header Set-Cookie $auth_cookie;
      # nginx.ingress.kubernetes.io/auth-response-headers: X-Auth-User, ...
{copy}      error_page 401 = @authgate-signin;
      proxy_set_header Host $http_host;
      proxy_pass http://127.0.0.1:{app_port};
    }}
  }}
"#
    )
}
