//! The admin listener (its own port): `/healthz`, `/readyz`, `/metrics`; and the background
//! service that loads and refreshes identity provider metadata.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use arc_swap::ArcSwap;

use crate::metrics::Metrics;
use crate::state::Core;

pub struct AdminApp {
    pub metrics: Arc<Metrics>,
    pub core: Arc<ArcSwap<Core>>,
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/healthz" => reply(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                let core = self.core.load();
                let waiting: Vec<&str> = core
                    .providers
                    .iter()
                    .filter(|p| !p.is_ready())
                    .map(|p| p.name())
                    .collect();
                let store = core.sessions.store();
                if !store.healthy() {
                    let body = format!(
                        "not ready: the {} session store does not answer\n",
                        store.kind()
                    );
                    reply(503, "text/plain", body.into_bytes())
                } else if waiting.is_empty() {
                    reply(200, "text/plain", b"ready\n".to_vec())
                } else {
                    let body = format!(
                        "not ready: metadata not loaded for {}\n",
                        waiting.join(", ")
                    );
                    reply(503, "text/plain", body.into_bytes())
                }
            }
            "/metrics" => {
                let core = self.core.load();
                if let Some(n) = core.sessions.stored_sessions() {
                    self.metrics.sessions_stored.set(n as i64);
                }
                let store = core.sessions.store();
                self.metrics
                    .session_store_up
                    .set(i64::from(store.healthy()));
                // The store counts; the counter catches up at each scrape.
                let seen = self.metrics.session_store_errors.get();
                self.metrics
                    .session_store_errors
                    .inc_by(store.errors().saturating_sub(seen));
                reply(200, "text/plain; version=0.0.4", self.metrics.render())
            }
            path if path.starts_with("/api/") => {
                crate::admin_api::serve(&self.core.load(), session).await
            }
            _ => reply(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}

/// Loads every provider's metadata at start (retrying with back-off while it fails) and
/// refreshes it every `metadata_refresh` (hourly); a failed refresh keeps the last good copy.
pub struct MetadataRefresher {
    pub core: Arc<ArcSwap<Core>>,
}

/// When a provider's `metadata_refresh` cannot be found (a provider of an older
/// configuration): hourly.
const REFRESH_EVERY: Duration = Duration::from_secs(3600);

#[async_trait]
impl BackgroundService for MetadataRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let mut all_ready = true;
            // The current configuration's providers: after a reload, new ones load here.
            let core = self.core.load_full();
            for o in &core.providers {
                let every = core
                    .cfg
                    .providers
                    .iter()
                    .find(|p| p.name == o.name())
                    .map_or(REFRESH_EVERY, |p| p.metadata_refresh);
                let due = match o.age() {
                    None => true,
                    Some(age) => age >= every,
                };
                if !due {
                    continue;
                }
                match o.load().await {
                    Ok(()) => log::info!("provider {}: metadata and signing keys loaded", o.name()),
                    Err(e) => {
                        all_ready &= o.is_ready();
                        log::warn!("provider {}: {e}", o.name());
                    }
                }
            }
            let wait = if all_ready {
                backoff = Duration::from_millis(500);
                // Short enough that a provider added by a reload is ready within seconds.
                Duration::from_secs(2)
            } else {
                backoff = (backoff * 2).min(Duration::from_secs(30));
                backoff
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Re-reads the assertion's key files every 2 s (a broken change keeps the keys in service).
pub struct KeyWatcher(pub Arc<ArcSwap<Core>>);

#[async_trait]
impl BackgroundService for KeyWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {
                    if let Some(s) = &self.0.load().assertion {
                        s.ring.refresh();
                    }
                }
            }
        }
    }
}
