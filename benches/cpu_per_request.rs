//! CPU cost per request, counted in instructions (callgrind), which unlike req/s on a shared
//! machine does not move with whatever else runs: the gateway under `valgrind --tool=callgrind`,
//! a real upstream, N requests on one keep-alive connection to a public route, then N with a
//! valid session (cookie store, identity with 20 groups, route policy that allows), counters
//! zeroed and dumped around each phase; then the same session held in a local redis-server
//! (`session.store: redis`), when Debian's redis-server is installed.
//!
//! Prints instructions per request for both and their ratio (target: the session costs at
//! most 5% more). Run: cargo bench --bench cpu_per_request [-- N]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use authgate::identity::Identity;
use authgate::read::Secret;
use authgate::session::Sessions;
use authgate::session::{SessionConfig, StoreKind};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SECRET: &str = "bench-session-secret-0123456789abcdef0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_port(port: u16, limit: Duration) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < limit, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `n` GETs on one keep-alive connection; every answer must be 200.
fn drive(port: u16, path: &str, cookie: Option<&str>, n: usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let cookie = cookie
        .map(|c| format!("Cookie: authgate_session={c}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bench\r\nAccept: */*\r\n{cookie}\r\n"
    );
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    for i in 0..n {
        s.write_all(req.as_bytes()).expect("write");
        let mut status = String::new();
        r.read_line(&mut status).expect("status line");
        assert!(status.contains(" 200 "), "request {i} to {path}: {status}");
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).expect("body");
    }
}

fn callgrind(pid: u32, arg: &str) {
    let ok = Command::new("callgrind_control")
        .args([arg, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "callgrind_control {arg} failed");
}

/// Total instructions in the newest dump in `dir`.
fn last_dump_ir(dir: &std::path::Path) -> u64 {
    last_dump_ir_named(dir, "cg.out")
}

/// Total instructions in the newest dump in `dir` whose name starts with `prefix`.
fn last_dump_ir_named(dir: &std::path::Path, prefix: &str) -> u64 {
    let mut dumps: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .collect();
    dumps.sort_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    let text = std::fs::read_to_string(dumps.last().expect("a dump").path()).expect("read dump");
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary: ")
                .or_else(|| l.strip_prefix("totals: "))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("summary line")
}

fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: then a short smoke run that
    // still checks every answer, as criterion does.
    let bench = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(if bench { 3000 } else { 20 });
    let dir = tempfile::tempdir().expect("tempdir");
    // Upstream: nginx answering a static 200.
    let up = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, format!(
        "worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/nginx.err;\nevents {{ worker_connections 256; }}\nhttp {{ access_log off; server {{ listen 127.0.0.1:{up}; keepalive_requests 1000000; location / {{ default_type text/plain; return 200 \"hello\\n\"; }} }} }}\n",
        d = dir.path().display()
    )).expect("nginx.conf");
    let nginx = Command::new("nginx")
        .args([
            "-c",
            &conf.display().to_string(),
            "-p",
            &dir.path().display().to_string(),
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx (apt install nginx)");
    // Stopped with SIGTERM (also on a panic): a SIGKILLed master leaves its worker running,
    // holding the test command's output open.
    let _nginx = Nginx(nginx);
    wait_port(up, Duration::from_secs(10));

    // The gateway, under callgrind. Its identity provider is never asked: the session is
    // minted with the gateway's own secret, as a sign-in would make it.
    let (gw, mut gateway) = start_gateway(dir.path(), up, "", "", "cg.out.");

    let sessions = Sessions::new(SessionConfig {
        cookie_name: "authgate_session".into(),
        lifetime: Duration::from_secs(8 * 3600),
        idle_timeout: Duration::from_secs(3600),
        lifecycle: Default::default(),
        secure: false,
        secret: Secret(SECRET.into()),
        store: StoreKind::Cookie,
        max_sessions: 1000,
        cookie_domain: None,
        redis: None,
    })
    .expect("sessions");
    let identity = Identity {
        provider: "entra".into(),
        user: "00000000-0000-0000-66f3-3332eca7ea81".into(),
        email: Some("alice@contoso.example".into()),
        name: Some("Alice Example".into()),
        tenant: Some(TENANT.into()),
        groups: (0..20)
            .map(|i| format!("6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1{i:02}"))
            .collect(),
        roles: ["Reader", "Admin"].into(),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cookie = rt
        .block_on(sessions.create(identity.clone()))
        .expect("session");

    // Warm both paths (connection pool, caches), then count.
    let warm = if bench { 200 } else { 5 };
    drive(gw, "/public/x", None, warm);
    drive(gw, "/x", Some(&cookie), warm);
    let pid = gateway.id();
    let mut per = Vec::new();
    for (name, path, c) in [
        ("public route", "/public/x", None),
        ("with a session", "/x", Some(cookie.as_str())),
    ] {
        callgrind(pid, "-z");
        drive(gw, path, c, n);
        callgrind(pid, "-d");
        let ir = last_dump_ir(dir.path());
        per.push(ir as f64 / n as f64);
        println!(
            "{name:<16} {:>10.0} instructions/request",
            ir as f64 / n as f64
        );
    }
    println!(
        "session ÷ public: {:.3} (target ≤ 1.05), over {n} requests each",
        per[1] / per[0]
    );
    let _ = gateway.kill();
    let _ = gateway.wait();

    // The signed assertion on (cookie store): signed once per session and audience, then
    // reused for half its lifetime, so what is measured is attaching the kept one.
    let key = dir.path().join("assertion.pem");
    let group =
        openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).expect("P-256");
    let pem = openssl::ec::EcKey::generate(&group)
        .and_then(|k| k.private_key_to_pem())
        .expect("key");
    std::fs::write(&key, pem).expect("key file");
    let top = format!("assertion: {{ key_files: [\"{}\"] }}\n", key.display());
    let (gw, mut gateway) = start_gateway(dir.path(), up, "", &top, "assert.out.");
    drive(gw, "/x", Some(&cookie), warm);
    callgrind(gateway.id(), "-z");
    drive(gw, "/x", Some(&cookie), n);
    callgrind(gateway.id(), "-d");
    let asserted = last_dump_ir_named(dir.path(), "assert.out.") as f64 / n as f64;
    println!(
        "{:<16} {asserted:>10.0} instructions/request (assertion on)",
        "with a session"
    );
    println!(
        "assertion on ÷ off, session: {:.3} (target ≤ 1.03)",
        asserted / per[1]
    );
    let _ = gateway.kill();
    let _ = gateway.wait();

    // The Redis store: the same request, the session held in a local redis-server (read
    // from Redis once per cache_ttl, from the replica's cache in between).
    match start_redis(dir.path()) {
        Some(redis) => {
            let url = format!("redis://127.0.0.1:{}/0", redis.port);
            let stored = Sessions::new(SessionConfig {
                cookie_name: "authgate_session".into(),
                lifetime: Duration::from_secs(8 * 3600),
                idle_timeout: Duration::from_secs(3600),
                lifecycle: Default::default(),
                secure: false,
                secret: Secret(SECRET.into()),
                store: StoreKind::Redis,
                max_sessions: 1000,
                cookie_domain: None,
                redis: Some(redis_config(redis.port)),
            })
            .expect("sessions");
            let cookie = (0..50)
                .find_map(|_| {
                    let made = rt.block_on(stored.create(identity.clone())).ok();
                    if made.is_none() {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    made
                })
                .expect("a session stored in Redis");
            // Re-checks off, then on (`recheck_every: 1h`: never due here, so what is measured
            // is what asking costs on every request; the re-check itself runs off the path).
            let mut stored_ir = Vec::new();
            for (label, extra) in [("", ""), (", recheck_every on", ", recheck_every: 1h")] {
                let session = format!(", store: redis, redis: {{ url: \"{url}\" }}{extra}");
                let dumps = format!("redis{}.out.", stored_ir.len());
                let (gw, mut gateway) = start_gateway(dir.path(), up, &session, "", &dumps);
                drive(gw, "/x", Some(&cookie), warm);
                callgrind(gateway.id(), "-z");
                drive(gw, "/x", Some(&cookie), n);
                callgrind(gateway.id(), "-d");
                let ir = last_dump_ir_named(dir.path(), &dumps) as f64 / n as f64;
                println!(
                    "{:<16} {ir:>10.0} instructions/request (redis store{label})",
                    "with a session"
                );
                stored_ir.push(ir);
                let _ = gateway.kill();
                let _ = gateway.wait();
            }
            println!(
                "redis store ÷ cookie store, session: {:.3}",
                stored_ir[0] / per[1]
            );
            println!(
                "recheck_every on ÷ off (redis store): {:.3} (target ≤ 1.02)",
                stored_ir[1] / stored_ir[0]
            );
        }
        None => println!(
            "redis store: redis-server not installed (apt install redis-server); not measured"
        ),
    }

    // The physical limit: bare pingora (examples/bare_pingora.rs, filters doing nothing),
    // same pingora, same server options, under callgrind the same way.
    match bare_pingora_bin() {
        Some(bin) => {
            let bp = free_port();
            let mut bare = Command::new("valgrind")
                .args([
                    "--tool=callgrind",
                    "--collect-atstart=yes",
                    &format!("--callgrind-out-file={}/bare.out.%p", dir.path().display()),
                    &bin.display().to_string(),
                    &format!("127.0.0.1:{bp}"),
                    &format!("127.0.0.1:{up}"),
                    "1",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("valgrind");
            wait_port(bp, Duration::from_secs(120));
            drive(bp, "/x", None, warm);
            callgrind(bare.id(), "-z");
            drive(bp, "/x", None, n);
            callgrind(bare.id(), "-d");
            let ir = last_dump_ir_named(dir.path(), "bare.out.") as f64 / n as f64;
            println!("{:<16} {ir:>10.0} instructions/request", "bare pingora");
            println!(
                "bare pingora ÷ public: {:.3} (target ≥ 0.97); bare pingora ÷ session: {:.3} (target ≥ 0.92)",
                ir / per[0],
                ir / per[1]
            );
            let _ = bare.kill();
            let _ = bare.wait();
        }
        None => println!(
            "bare pingora: not built (cargo build --release --example bare_pingora); no ratio to it"
        ),
    }
    if std::env::var_os("BENCH_KEEP").is_some() {
        // For callgrind_annotate: the two dumps (public, then session) stay.
        println!("dumps kept in {}", dir.keep().display());
    }
}

/// The gateway under callgrind, `session_extra` appended to its `session:` mapping and `top`
/// to the file; its callgrind dumps are named `<dumps>`<pid>.
fn start_gateway(
    dir: &std::path::Path,
    up: u16,
    session_extra: &str,
    top: &str,
    dumps: &str,
) -> (u16, std::process::Child) {
    let (gw, admin, idp) = (free_port(), free_port(), free_port());
    let yaml = format!(
        r#"listen: ["127.0.0.1:{gw}"]
public_url: "http://127.0.0.1:{gw}"
admin: {{ listen: "127.0.0.1:{admin}" }}
server: {{ threads: 1 }}
providers:
  - {{ name: entra, type: entra, instance: "http://127.0.0.1:{idp}", tenant: "{TENANT}", client_id: bench, client_secret: "${{BENCH_SECRET}}" }}
routes:
  - {{ name: app, upstream: "127.0.0.1:{up}", allow: {{ tenants: ["{TENANT}"] }} }}
  - {{ name: public, path_prefix: /public, upstream: "127.0.0.1:{up}", public: true }}
session: {{ secret: "${{BENCH_SESSION_SECRET}}"{session_extra} }}
{top}"#
    );
    let cfg = dir.join(format!("gateway-{gw}.yaml"));
    std::fs::write(&cfg, yaml).expect("gateway.yaml");
    let gateway = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--collect-atstart=yes",
            &format!("--callgrind-out-file={}/{dumps}%p", dir.display()),
            &authgate_bin(),
            "run",
            "-c",
            &cfg.display().to_string(),
        ])
        .env("BENCH_SECRET", "x")
        .env("BENCH_SESSION_SECRET", SECRET)
        .env("AUTHGATE_LOG", "error")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("valgrind (apt install valgrind)");
    wait_port(gw, Duration::from_secs(120));
    (gw, gateway)
}

/// A local redis-server (no persistence), stopped on drop; None if it is not installed.
struct Redis {
    port: u16,
    child: std::process::Child,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis(dir: &std::path::Path) -> Option<Redis> {
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--dir", &dir.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let redis = Redis { port, child };
    wait_port(port, Duration::from_secs(10));
    Some(redis)
}

fn redis_config(port: u16) -> authgate::session::RedisConfig {
    authgate::session::RedisConfig::standalone("127.0.0.1", port)
}

/// The gateway binary: this build's, or `AUTHGATE_BIN` (to compare two builds).
fn authgate_bin() -> String {
    std::env::var("AUTHGATE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_authgate").to_string())
}

/// examples/bare_pingora next to this build's binary: `cargo build [--release] --example
/// bare_pingora` (benches/load.sh does). `cargo test` builds examples only as test harnesses,
/// so the suite's smoke run reports the bare row as not built.
fn bare_pingora_bin() -> Option<std::path::PathBuf> {
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_authgate"));
    let p = exe.parent()?.join("examples").join("bare_pingora");
    p.exists().then_some(p)
}

/// nginx, stopped the way that ends its workers too.
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            if pid > 1 {
                // SAFETY: kill(2) on our own child's pid, never a group or -1.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        let _ = self.0.wait();
    }
}
