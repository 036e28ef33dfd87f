//! Several replicas of the real gateway binary on one Redis, as behind a Kubernetes
//! Service: starting them, signing in through one, waiting for a change to reach the
//! others, and steady traffic while something happens.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::redis::Redis;
use super::*;

pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";

/// A replica: the shared config with its own ports, the public URL of the first replica
/// (the address the browser knows, as behind a load balancer).
pub fn replica(
    port: u16,
    public: &str,
    op: &OpenIdProvider,
    upstream: u16,
    session: &str,
) -> Gateway {
    replica_with(port, public, op, upstream, session, |b| b)
}

/// `replica`, with the configuration changed by `edit` first (the same on every replica).
pub fn replica_with(
    port: u16,
    public: &str,
    op: &OpenIdProvider,
    upstream: u16,
    session: &str,
    edit: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> Gateway {
    let admin = free_port();
    let cfg = ConfigBuilder::for_binary(port, public, admin, &op.issuer, upstream)
        .admin_token(ADMIN_TOKEN)
        .tail(session);
    let mut gw = start_built(&edit(cfg));
    // Requests go to this replica's own port; the browser-facing URL is the first one's.
    gw.url = format!("http://127.0.0.1:{port}");
    gw
}

/// The `session:` lines of `store: redis` on `redis` under `prefix`, plus `extra`.
pub fn redis_session(redis: &Redis, prefix: &str, extra: &str) -> String {
    format!("  store: redis\n  redis:\n{}{extra}", redis.yaml(prefix))
}

/// A browser signed in through `gw` as `user`, and its session cookie.
pub fn signed_in(gw: &Gateway, user: &str) -> (Browser, String) {
    let b = Browser::new();
    assert_eq!(
        b.sign_in(&format!("{}/secret", gw.url), user).0.status(),
        200,
        "{user} signs in"
    );
    let cookie = b
        .cookie(&format!("{}/", gw.url), "authgate_session")
        .expect("session cookie");
    (b, cookie)
}

/// Waits up to `limit` for `ok`; returns how long it took.
pub fn within(limit: Duration, what: &str, ok: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

pub fn status_with(url: &str, cookie: &str) -> u16 {
    get_with_session(url, cookie).status().as_u16()
}

/// Requests in a loop on `url` with `cookie` until stopped; counts answers by class, and
/// records any status outside `allowed`.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    unavailable: Arc<AtomicU64>,
    other: Arc<std::sync::Mutex<Vec<u16>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    pub fn start(url: String, cookie: String) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let unavailable = Arc::new(AtomicU64::new(0));
        let other = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, o, u, x) = (stop.clone(), ok.clone(), unavailable.clone(), other.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match get_with_session(&url, &cookie).status().as_u16() {
                    200 => o.fetch_add(1, Ordering::Relaxed),
                    503 => u.fetch_add(1, Ordering::Relaxed),
                    other => {
                        x.lock().unwrap().push(other);
                        0
                    }
                };
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Traffic {
            stop,
            ok,
            unavailable,
            other,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) -> (u64, u64, Vec<u16>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        let other = self.other.lock().unwrap().clone();
        (
            self.ok.load(Ordering::Relaxed),
            self.unavailable.load(Ordering::Relaxed),
            other,
        )
    }
}
