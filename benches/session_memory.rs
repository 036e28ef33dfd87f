//! Memory held by server-side sessions (`session.store: memory`): resident size before and
//! after creating N sessions (default 100,000) with Entra-sized identities (oid, tid, email,
//! name, G group IDs (default 20, a different set for every user: the worst case), 2
//! roles), then after each has served one request: checked, and its identity headers
//! prepared as the gateway does and keeps them. Target: the gateway with 100,000 live
//! sessions stays within 128 MiB resident. Then the same with `session.store: redis` (a
//! local redis-server, in a process of its own so the first run's memory is not counted):
//! the sessions live in Redis, and the gateway's growth must stay within its bounded caches
//! (sessions read 32 MiB, opened cookies 4 MiB, prepared headers 16 MiB).
//! With `SESSION_MEMORY_GRANT=1`, each session also keeps an IdP grant of Entra's sizes (a
//! 1,400-character refresh token, a 1,600-character ID token, a login hint), as sessions of
//! an OpenID provider do with a server-side store (`recheck_every`, `id_token_hint`).
//! With `SESSION_MEMORY_TEXT_GROUPS=1` the group IDs are upper case, which the identity keeps
//! as text (lower-case GUIDs, as Entra sends them, are packed 16 bytes each).
//! Run: cargo bench --bench session_memory [-- N [G]]

use std::time::{Duration, Instant};

use authgate::headers::HeaderNames;
use authgate::headers::HeaderPlan;
use authgate::identity::{shared, Identity};
use authgate::read::Secret;
use authgate::session::{now_secs, Check, Grant, Sessions};
use authgate::session::{SessionConfig, StoreKind};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let nums: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    // Without `--bench` (cargo test --all-targets): a small smoke run.
    let bench = std::env::args().any(|a| a == "--bench");
    let n = nums
        .first()
        .copied()
        .unwrap_or(if bench { 100_000 } else { 2_000 });
    let group_count = nums.get(1).copied().unwrap_or(20);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // This process measures one store: memory, or (re-run as a child) redis.
    let redis_port: Option<u16> = std::env::var("SESSION_MEMORY_REDIS_PORT")
        .ok()
        .and_then(|p| p.parse().ok());
    let sessions = Sessions::new(SessionConfig {
        cookie_name: "authgate_session".into(),
        lifetime: Duration::from_secs(8 * 3600),
        idle_timeout: Duration::from_secs(3600),
        lifecycle: Default::default(),
        secure: true,
        secret: Secret("m".repeat(48)),
        store: if redis_port.is_some() {
            StoreKind::Redis
        } else {
            StoreKind::Memory
        },
        max_sessions: 1_000_000,
        cookie_domain: None,
        redis: redis_port.map(redis_config),
    })
    .expect("sessions");
    let with_grant = std::env::var_os("SESSION_MEMORY_GRANT").is_some();
    let store = match (redis_port.is_some(), with_grant) {
        (true, false) => "redis",
        (true, true) => "redis, with IdP grants",
        (false, false) => "memory",
        (false, true) => "memory, with IdP grants",
    };
    // Entra-sized: refresh tokens run to about 1,400 characters, ID tokens 1,500-2,000.
    let grant = |i: u64| Grant {
        refresh_token: Some(format!("0.A{i:012}{}", "r".repeat(1_386))),
        id_token: Some(format!("eyJ{i:012}{}", "i".repeat(1_585))),
        login_hint: Some(format!("O.CiQ{i:012}{}", "h".repeat(44))),
    };
    // Upper-case group IDs are kept as text, lower-case ones (Entra's) packed 16 bytes each:
    // SESSION_MEMORY_TEXT_GROUPS=1 measures the text form, same lengths.
    let as_text = std::env::var_os("SESSION_MEMORY_TEXT_GROUPS").is_some();
    let before = rss_kib();
    let started = Instant::now();
    let mut cookies = Vec::with_capacity(n as usize);
    for i in 0..n {
        let identity = Identity {
            // As the sign-in mappers make them: provider name and tenant ID shared.
            provider: shared("entra"),
            user: format!("00000000-0000-0000-0000-{i:012}").into(),
            email: Some(format!("user{i}@contoso.example").into()),
            name: Some(format!("User {i}").into()),
            tenant: Some(shared("72f988bf-86f1-41af-91ab-2d7cd011db47")),
            groups: (0..group_count)
                .map(|g| {
                    let id = format!("6e6a3c0c-1d87-4d39-9b9a-{:06}{g:06}", i % 1_000_000);
                    if as_text {
                        id.to_uppercase()
                    } else {
                        id
                    }
                })
                .collect(),
            roles: ["Reader", "Admin"].into(),
            ..Default::default()
        };
        // A fresh Redis connection may still be being made: the first writes wait for it.
        let make = || {
            let g = with_grant.then(|| grant(i));
            rt.block_on(sessions.create_with(identity.clone(), g))
        };
        let mut made = make();
        for _ in 0..50 {
            if made.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            made = make();
        }
        cookies.push(made.expect("create"));
    }
    let created = started.elapsed();
    // The cookies themselves live in the browsers, not the gateway: measure without them.
    let cookie_bytes: usize = cookies.iter().map(|c| c.len() + 24).sum();
    let after_create = rss_kib();
    let plan = HeaderPlan::new(&HeaderNames::default()).expect("header plan");
    let now = now_secs();
    let mut valid = 0u64;
    for c in &cookies {
        if let Check::Valid { identity, .. } = rt.block_on(sessions.check(c, now)) {
            let mut req =
                pingora::http::RequestHeader::build("GET", b"/", Some(8)).expect("request header");
            plan.inject(&mut req, &identity).expect("identity headers");
            let block = req.encoded().next().expect("identity headers");
            assert!(block.as_bytes().starts_with(b"x-auth-user: "));
            valid += 1;
        }
    }
    assert_eq!(valid, n, "every session checks valid");
    // Evictions from the bounded set of prepared headers, as they would have run by now.
    authgate::identity::Prepared::settle();
    let after_check = rss_kib();
    if redis_port.is_none() {
        assert_eq!(sessions.stored_sessions(), Some(n));
    }
    let mib = |k: u64| k as f64 / 1024.0;
    let cookies_mib = cookie_bytes as f64 / 1048576.0;
    println!("store:                          {store}");
    println!("sessions:                       {n} ({group_count} groups each)");
    println!("resident before:                {:.1} MiB", mib(before));
    println!(
        "after creating them:            {:.1} MiB (+{:.1} MiB, of which {:.1} MiB are this benchmark's copies of the cookies)",
        mib(after_create),
        mib(after_create - before),
        cookies_mib
    );
    println!(
        "after one request each:         {:.1} MiB (+{:.1} MiB: identity headers kept)",
        mib(after_check),
        mib(after_check.saturating_sub(after_create))
    );
    println!(
        "per session, server side:       {:.2} KiB",
        (after_check - before) as f64 / n as f64 - cookie_bytes as f64 / 1024.0 / n as f64
    );
    println!(
        "creation rate:                  {:.0} sessions/s",
        n as f64 / created.as_secs_f64()
    );
    if redis_port.is_some() {
        // The sessions are in Redis: what stays here is bounded by the caches, whatever N
        // (measured: about 108 MiB at 30,000 sessions, 103-116 MiB at 100,000).
        let grown = mib(after_check.saturating_sub(before)) - cookies_mib;
        println!("grown, server side:             {grown:.1} MiB (target: under 128 MiB, any N)");
        assert!(
            grown <= 128.0,
            "the Redis store grew the process by {grown:.1} MiB: more than its caches hold"
        );
        return;
    }
    // The Redis line: this binary again, in a process of its own, on a local redis-server.
    let port = free_port();
    let dir = std::env::temp_dir();
    let Ok(mut redis) = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--dir", &dir.display().to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
    else {
        println!(
            "\nredis store: redis-server not installed (apt install redis-server); not measured"
        );
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!();
    let status = std::env::current_exe().ok().and_then(|exe| {
        std::process::Command::new(exe)
            .args(std::env::args().skip(1))
            .env("SESSION_MEMORY_REDIS_PORT", port.to_string())
            .status()
            .ok()
    });
    let _ = redis.kill();
    let _ = redis.wait();
    assert!(status.is_some_and(|s| s.success()), "the Redis run failed");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn redis_config(port: u16) -> authgate::session::RedisConfig {
    authgate::session::RedisConfig {
        key_prefix: "bench:".into(),
        timeout: Duration::from_secs(2),
        ..authgate::session::RedisConfig::standalone("127.0.0.1", port)
    }
}
