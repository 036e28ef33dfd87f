//! The soak: two replicas of the real binary on one real Redis (append-only, as a deployment
//! that keeps its sessions), under a mixed load for `AUTHGATE_SOAK_MINUTES` (2 in the suite;
//! `benches/soak.sh 30` for the report in BENCHMARKS.md): sign-ins through the real OpenID
//! provider, session requests, bearer calls, forward-auth checks, sign-outs, admin
//! revocations, SCIM pushes, websockets held open, a configuration reload on both replicas
//! every interval, and Redis killed and restarted halfway.
//!
//! Once per interval (a minute, or a twelfth of a short run) it records each replica's
//! resident memory, file descriptors and threads, and the answers by kind and status with the
//! session requests' p99. It passes when memory is flat (the last third's mean within ±5% of
//! the middle third's), descriptors and threads are flat, every websocket is still open, and
//! no answer is a 5xx except 503 while Redis is down (and the seconds after, while the
//! replicas reconnect).

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis::start_standalone_with;
use common::replicas::*;
use common::*;
use serde_json::json;

const SCIM_TOKEN: &str = "scim-secret-token-for-the-soak-0123456789";
/// After Redis is back, the replicas may still answer 503 this long (reconnecting).
const RECOVERY: Duration = Duration::from_secs(10);

/// One answer (or failure) seen by a load worker.
struct Event {
    kind: &'static str,
    /// The status, or 0 when the request failed (connection, timeout, panicked step).
    status: u16,
    at: Instant,
    micros: u64,
    detail: Option<String>,
}

#[derive(Default)]
struct Recorder {
    window: Mutex<Vec<Event>>,
}

impl Recorder {
    fn record(&self, kind: &'static str, status: u16, started: Instant, detail: Option<String>) {
        let e = Event {
            kind,
            status,
            at: Instant::now(),
            micros: started.elapsed().as_micros() as u64,
            detail,
        };
        self.window.lock().unwrap().push(e);
    }

    /// A step of several requests (a sign-in, a sign-out) that must not panic.
    fn step(&self, kind: &'static str, f: impl FnOnce() -> u16) {
        let started = Instant::now();
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(status) => self.record(kind, status, started, None),
            Err(p) => {
                let why = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.record(kind, 0, started, Some(why));
            }
        }
    }

    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.window.lock().unwrap())
    }
}

/// What a replica's process holds, from /proc.
#[derive(Clone, Copy, Default)]
struct Usage {
    rss_kib: u64,
    /// Of it, pages of files (the binary's code, mostly): it grows as rarer paths run, and
    /// tells such growth from the heap's (`RssAnon`).
    file_kib: u64,
    fds: u64,
    threads: u64,
}

fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Usage {
        rss_kib: field("VmRSS:"),
        file_kib: field("RssFile:"),
        fds,
        threads: field("Threads:"),
    }
}

struct Row {
    minute: f64,
    usage: [Usage; 2],
    p99_ms: f64,
    counts: BTreeMap<(&'static str, u16), u64>,
}

/// A client that keeps its connections (as a browser or an app does).
fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

fn status_of(r: reqwest::Result<reqwest::blocking::Response>) -> u16 {
    r.map(|r| r.status().as_u16()).unwrap_or(0)
}

struct Load {
    urls: [String; 2],
    admins: [String; 2],
    stop: Arc<AtomicBool>,
    rec: Arc<Recorder>,
}

impl Load {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }
}

/// Bob's session through `gw`, once the replica can sign in (a replica answers 503 until its
/// store and provider are reachable, which on a busy machine can take a few seconds).
fn first_session(gw: &Gateway) -> String {
    let started = Instant::now();
    loop {
        match catch_unwind(AssertUnwindSafe(|| signed_in(gw, "bob").1)) {
            Ok(cookie) => return cookie,
            Err(_) if started.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_secs(1))
            }
            Err(_) => panic!("no sign-in through {} within a minute", gw.url),
        }
    }
}

/// Session requests with Bob's session on both replicas, signing in again if it ends.
fn sessions(load: &Load, gw: &Gateway, n: usize) {
    let c = client();
    let mut cookie = first_session(gw);
    let mut i = n;
    while load.running() {
        i += 1;
        let url = format!("{}/secret?i={i}", load.urls[i % 2]);
        let started = Instant::now();
        let r = c
            .get(&url)
            .header("cookie", format!("authgate_session={cookie}"))
            .send();
        let status = status_of(r);
        load.rec.record("session", status, started, None);
        if status == 401 {
            load.rec.step("sign_in", || {
                cookie = signed_in(gw, "bob").1;
                200
            });
        }
        std::thread::sleep(Duration::from_millis(4));
    }
}

/// Alice signs in through either replica, browses, and leaves: signing out, revoked by the
/// admin API, or walking away.
fn sign_ins(load: &Load, gws: [&Gateway; 2]) {
    let mut i = 0usize;
    while load.running() {
        i += 1;
        let gw = gws[i % 2];
        let b = Browser::new();
        load.rec.step("sign_in", || {
            b.sign_in(&format!("{}/secret", gw.url), "alice")
                .0
                .status()
                .as_u16()
        });
        for _ in 0..5 {
            let started = Instant::now();
            let status = status_of(b.client.get(format!("{}/secret", load.urls[i % 2])).send());
            load.rec.record("browse", status, started, None);
        }
        match i % 3 {
            0 => load.rec.step("sign_out", || {
                b.sign_out(&load.urls[(i + 1) % 2]).status().as_u16()
            }),
            1 => {
                let started = Instant::now();
                let r = client()
                    .delete(format!(
                        "{}/api/v1/sessions?user={ALICE_OID}",
                        load.admins[i % 2]
                    ))
                    .bearer_auth(ADMIN_TOKEN)
                    .send();
                load.rec.record("revoke", status_of(r), started, None);
            }
            _ => {}
        }
    }
}

/// App-only bearer calls (a new token every five minutes).
fn bearer(load: &Load, op: &OpenIdProvider) {
    let c = client();
    let mut token = (
        Instant::now(),
        op.app_token(TENANT, "daemon", "api://authgate"),
    );
    let mut i = 0usize;
    while load.running() {
        i += 1;
        if token.0.elapsed() > Duration::from_secs(300) {
            load.rec.step("token", || {
                token = (
                    Instant::now(),
                    op.app_token(TENANT, "daemon", "api://authgate"),
                );
                200
            });
        }
        let started = Instant::now();
        let r = c
            .get(format!("{}/api/report?i={i}", load.urls[i % 2]))
            .header("accept", "application/json")
            .bearer_auth(&token.1)
            .send();
        load.rec.record("bearer", status_of(r), started, None);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Traefik's forward-auth checks with Bob's session.
fn forward_auth(load: &Load, gw: &Gateway) {
    let c = client();
    let cookie = first_session(gw);
    let mut i = 0usize;
    while load.running() {
        i += 1;
        let started = Instant::now();
        let r = c
            .get(format!("{}/_authgate/auth", load.urls[i % 2]))
            .header("x-forwarded-proto", "http")
            .header("x-forwarded-host", "app.example")
            .header("x-forwarded-uri", format!("/report?i={i}"))
            .header("x-forwarded-method", "GET")
            .header("cookie", format!("authgate_session={cookie}"))
            .send();
        load.rec.record("forward_auth", status_of(r), started, None);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SCIM pushes as Entra's provisioning cycle sends them: create, deactivate, delete.
fn scim(load: &Load) {
    let c = client();
    let mut i = 0usize;
    while load.running() {
        i += 1;
        let base = format!("{}/_authgate/scim/v2/Users", load.urls[i % 2]);
        let send = |m: reqwest::Method, url: &str, body: Option<serde_json::Value>| {
            let mut r = c.request(m, url).bearer_auth(SCIM_TOKEN);
            if let Some(b) = body {
                r = r
                    .header("content-type", "application/scim+json")
                    .body(b.to_string());
            }
            r.send()
        };
        let started = Instant::now();
        let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": format!("soak{i}@contoso.example"),
            "externalId": format!("soak-{i}"), "active": true});
        let created = send(reqwest::Method::POST, &base, Some(user));
        let (status, id) = match created {
            Ok(r) => {
                let s = r.status().as_u16();
                let v: serde_json::Value = r.json().unwrap_or_default();
                (s, v["id"].as_str().map(str::to_string))
            }
            Err(_) => (0, None),
        };
        load.rec.record("scim", status, started, None);
        if let Some(id) = id {
            let url = format!("{base}/{id}");
            let started = Instant::now();
            let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": false}]});
            let s = status_of(send(reqwest::Method::PATCH, &url, Some(patch)));
            load.rec.record("scim", s, started, None);
            let started = Instant::now();
            let s = status_of(send(reqwest::Method::DELETE, &url, None));
            load.rec.record("scim", s, started, None);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Websockets held open on both replicas: each must still echo at every sample.
struct Sockets {
    open: Vec<(usize, std::net::TcpStream)>,
}

impl Sockets {
    fn open(ports: [u16; 2], cookie: &str) -> Sockets {
        let mut open = Vec::new();
        // Four pinged at every sample, and a fifth left quiet until the end (longer than
        // pingora's 60 s downstream read timeout, which once cut quiet websockets).
        for i in 0..5 {
            let (head, mut s) = ws_connect(
                ports[i % 2],
                "/ws",
                Some(&format!("authgate_session={cookie}")),
            );
            assert!(head.starts_with("HTTP/1.1 101"), "websocket {i}: {head}");
            assert!(ws_read(&mut s, &String::new).starts_with("user:"));
            open.push((i, s));
        }
        Sockets { open }
    }

    /// Sends a masked client frame on each (the quiet one too when `all`) and reads the
    /// upstream's echo.
    fn ping(&mut self, rec: &Recorder, all: bool) {
        use std::io::Write;
        for (i, s) in self.open.iter_mut().filter(|(i, _)| all || *i < 4) {
            let i = *i;
            rec.step("websocket", || {
                s.write_all(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2])
                    .unwrap_or_else(|e| panic!("websocket {i}: {e}"));
                let echoed = ws_read(s, &String::new);
                assert!(echoed.starts_with("echo:"), "websocket {i}: {echoed}");
                101
            });
        }
    }
}

fn p99(mut micros: Vec<u64>) -> f64 {
    if micros.is_empty() {
        return 0.0;
    }
    micros.sort_unstable();
    micros[(micros.len() * 99 / 100).min(micros.len() - 1)] as f64 / 1000.0
}

fn row(minute: f64, pids: [u32; 2], events: &[Event]) -> Row {
    let mut counts = BTreeMap::new();
    for e in events {
        *counts.entry((e.kind, e.status)).or_insert(0) += 1;
    }
    let session = events
        .iter()
        .filter(|e| e.kind == "session")
        .map(|e| e.micros);
    Row {
        minute,
        usage: [usage(pids[0]), usage(pids[1])],
        p99_ms: p99(session.collect()),
        counts,
    }
}

fn report(rows: &[Row]) -> String {
    let mut t = String::from(
        "| min | A RSS MiB (of it files) | A fds | A thr | B RSS MiB (of it files) | B fds | B thr | session p99 ms | answers (kind status: n) |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let answers: Vec<String> = r
            .counts
            .iter()
            .map(|((k, s), n)| format!("{k} {s}: {n}"))
            .collect();
        let u = |i: usize| {
            let u = r.usage[i];
            format!(
                "{:.1} ({:.1}) | {} | {}",
                u.rss_kib as f64 / 1024.0,
                u.file_kib as f64 / 1024.0,
                u.fds,
                u.threads
            )
        };
        t += &format!(
            "| {:.1} | {} | {} | {:.1} | {} |\n",
            r.minute,
            u(0),
            u(1),
            r.p99_ms,
            answers.join(", ")
        );
    }
    t
}

/// Answers that break the promise: a failure or 5xx outside the Redis outage (503 and failed
/// steps are allowed from the kill until `RECOVERY` after the restart).
fn broken(events: &[Event], outage: Option<(Instant, Instant)>) -> Vec<String> {
    let in_outage =
        |at: Instant| outage.is_some_and(|(from, to)| at >= from && at <= to + RECOVERY);
    events
        .iter()
        .filter(|e| e.status == 0 || e.status >= 500)
        .filter(|e| !((e.status == 503 || e.status == 0) && in_outage(e.at)))
        .map(|e| format!("{} {} {:?}", e.kind, e.status, e.detail))
        .collect()
}

/// The last third's rows against the middle third's: the mean resident memory within ±5%,
/// the most descriptors and threads no higher (with the slack of a few connections).
fn flat(rows: &[Row], replica: usize) -> Result<(), String> {
    let third = rows.len() / 3;
    let (middle, last) = (&rows[third..2 * third], &rows[2 * third..]);
    let mean = |rs: &[Row]| {
        rs.iter()
            .map(|r| r.usage[replica].rss_kib as f64)
            .sum::<f64>()
            / rs.len() as f64
    };
    let max = |rs: &[Row], f: fn(&Usage) -> u64| {
        rs.iter().map(|r| f(&r.usage[replica])).max().unwrap_or(0)
    };
    let (m, l) = (mean(middle), mean(last));
    if (l - m).abs() > 0.05 * m {
        return Err(format!(
            "memory: last third {l:.0} KiB, middle third {m:.0} KiB"
        ));
    }
    let (fm, fl) = (max(middle, |u| u.fds), max(last, |u| u.fds));
    if fl > fm + 16 {
        return Err(format!(
            "file descriptors: last third {fl}, middle third {fm}"
        ));
    }
    let (tm, tl) = (max(middle, |u| u.threads), max(last, |u| u.threads));
    if tl > tm + 4 {
        return Err(format!("threads: last third {tl}, middle third {tm}"));
    }
    Ok(())
}

/// Each kind of load did its work: most of its answers are its success.
fn worked(events: &[Event]) -> Vec<String> {
    // (answer kind, its load, its successes)
    let ok: &[(&str, &str, &[u16])] = &[
        ("session", "sessions", &[200]),
        ("browse", "sign_ins", &[200]),
        ("sign_in", "sign_ins", &[200]),
        ("sign_out", "sign_ins", &[303]),
        ("revoke", "sign_ins", &[200]),
        ("bearer", "bearer", &[200]),
        ("forward_auth", "forward_auth", &[200]),
        ("scim", "scim", &[200, 201, 204]),
        ("websocket", "websocket", &[101]),
    ];
    let mut wrong = Vec::new();
    for (kind, _, good) in ok
        .iter()
        .filter(|(_, load, _)| *load == "websocket" || wanted(load))
    {
        let all: Vec<&Event> = events.iter().filter(|e| e.kind == *kind).collect();
        let fine = all.iter().filter(|e| good.contains(&e.status)).count();
        if all.is_empty() || fine * 100 < all.len() * 95 {
            wrong.push(format!(
                "{kind}: {fine} of {} answers were {good:?}",
                all.len()
            ));
        }
    }
    wrong
}

/// The load kinds to run: all, or those `AUTHGATE_SOAK_LOAD` lists (`sessions,sign_ins,bearer,
/// forward_auth,scim`: to find which one a growth comes with).
fn wanted(kind: &str) -> bool {
    std::env::var("AUTHGATE_SOAK_LOAD").map_or(true, |l| l.split(',').any(|k| k.trim() == kind))
}

fn start_load(
    load: &Arc<Load>,
    a: &Arc<Gateway>,
    b: &Arc<Gateway>,
    op: &Arc<OpenIdProvider>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut workers = Vec::new();
    for n in 0..3 {
        let (l, gw) = (load.clone(), a.clone());
        if wanted("sessions") {
            workers.push(std::thread::spawn(move || sessions(&l, &gw, n)));
        }
    }
    let (l, ga, gb) = (load.clone(), a.clone(), b.clone());
    if wanted("sign_ins") {
        workers.push(std::thread::spawn(move || sign_ins(&l, [&ga, &gb])));
    }
    let (l, o) = (load.clone(), op.clone());
    if wanted("bearer") {
        workers.push(std::thread::spawn(move || bearer(&l, &o)));
    }
    let (l, gw) = (load.clone(), b.clone());
    if wanted("forward_auth") {
        workers.push(std::thread::spawn(move || forward_auth(&l, &gw)));
    }
    let l = load.clone();
    if wanted("scim") {
        workers.push(std::thread::spawn(move || scim(&l)));
    }
    workers
}

#[test]
fn two_replicas_stay_flat_under_a_mixed_load() {
    let minutes: f64 = std::env::var("AUTHGATE_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(2.0);
    let total = Duration::from_secs_f64(minutes * 60.0);
    let interval = (total / 12).min(Duration::from_secs(60));
    // Every minute; in a short run every two samples, so that the first two reloads (which
    // raise the allocator's high-water mark once, as two configurations overlap) fall in the
    // first third, which the verdict leaves out as warm-up.
    let reload_every = (interval * 2).min(Duration::from_secs(60));

    // Append-only with Redis's default fsync policy (once a second): `always` makes every write
    // wait for the disk, and on a busy disk that exceeded the store's 500 ms timeout (the
    // gateway then answers 503, as it should for a store that does not answer in time).
    let mut redis = start_standalone_with("appendonly yes\nappendfsync everysec");
    let upstream = start_upstream();
    let port_a = free_port();
    let public = format!("http://127.0.0.1:{port_a}");
    let op = start_op(&public, 0);
    let session = format!(
        "{}\nscim:\n  token: \"{SCIM_TOKEN}\"\n",
        redis_session(&redis, "soak:", "")
    );
    let edit = |b: ConfigBuilder| {
        b.api_audience("api://authgate")
            .forward_auth("traefik", &["127.0.0.1/32"])
    };
    let a = replica_with(port_a, &public, &op, upstream.port, &session, edit);
    let port_b = free_port();
    let b = replica_with(port_b, &public, &op, upstream.port, &session, edit);
    let pids = [a.proc.pid(), b.proc.pid()];
    let load = Arc::new(Load {
        urls: [a.url.clone(), b.url.clone()],
        admins: [a.admin.clone(), b.admin.clone()],
        stop: Arc::new(AtomicBool::new(false)),
        rec: Arc::new(Recorder::default()),
    });
    let mut sockets = Sockets::open([port_a, port_b], &first_session(&a));

    let (a, b, op) = (Arc::new(a), Arc::new(b), Arc::new(op));
    let workers = start_load(&load, &a, &b, &op);

    let start = Instant::now();
    let (mut rows, mut events) = (Vec::new(), Vec::new());
    let (mut outage, mut reloads, mut last_reload) = (None, 0u64, start);
    while rows.len() < 12.max((total.as_secs_f64() / interval.as_secs_f64()).round() as usize) {
        std::thread::sleep(Duration::from_millis(200));
        let now = Instant::now();
        if outage.is_none() && now >= start + total / 2 {
            let from = Instant::now();
            redis.servers[0].stop();
            std::thread::sleep(Duration::from_secs(3));
            redis.servers[0].restart();
            outage = Some((from, Instant::now()));
            eprintln!(
                "soak: Redis killed and restarted at {:.1} min",
                from.duration_since(start).as_secs_f64() / 60.0
            );
        }
        if now >= last_reload + reload_every {
            signal(pids[0], libc::SIGHUP);
            signal(pids[1], libc::SIGHUP);
            reloads += 1;
            last_reload = now;
        }
        if now >= start + interval * (rows.len() as u32 + 1) {
            sockets.ping(&load.rec, false);
            let window = load.rec.take();
            let r = row(
                now.duration_since(start).as_secs_f64() / 60.0,
                pids,
                &window,
            );
            eprint!("{}", report(std::slice::from_ref(&r)));
            rows.push(r);
            events.extend(window);
        }
    }
    sockets.ping(&load.rec, true);
    load.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("a load worker panicked outside a step");
    }
    events.extend(load.rec.take());

    let run = Run {
        minutes,
        rows,
        events,
        outage,
        reloads,
    };
    judge(&run, [&a, &b]);
}

/// What a soak run saw.
struct Run {
    minutes: f64,
    rows: Vec<Row>,
    events: Vec<Event>,
    outage: Option<(Instant, Instant)>,
    reloads: u64,
}

/// The table (test-artifacts/soak.md), then the verdicts: every reload taken, no broken
/// answer, each load doing its work, both replicas flat.
fn judge(run: &Run, gws: [&Gateway; 2]) {
    let table = report(&run.rows);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("soak.md"), &table);
    eprintln!(
        "soak: {} min, {} answers, {} reloads\n{table}",
        run.minutes,
        run.events.len(),
        run.reloads
    );
    for gw in gws {
        let m = scrape(&gw.admin);
        let done = metric(&m, r#"authgate_config_reloads_total{result="success"}"#);
        assert_eq!(done as u64, run.reloads, "reloads on {}", gw.url);
    }
    let broken = broken(&run.events, run.outage);
    assert!(
        broken.is_empty(),
        "{} broken answers: {:?}",
        broken.len(),
        &broken[..broken.len().min(10)]
    );
    let wrong = worked(&run.events);
    assert!(wrong.is_empty(), "{wrong:?}\n{table}");
    for (i, name) in ["A", "B"].iter().enumerate() {
        if let Err(why) = flat(&run.rows, i) {
            panic!("replica {name} is not flat: {why}\n{table}");
        }
    }
}
