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

use crate::idp::Provider;
use crate::metrics::Metrics;

pub struct AdminApp {
    pub metrics: Arc<Metrics>,
    pub providers: Vec<Arc<Provider>>,
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
                let waiting: Vec<&str> = self
                    .providers
                    .iter()
                    .filter(|p| !p.is_ready())
                    .map(|p| p.name())
                    .collect();
                if waiting.is_empty() {
                    reply(200, "text/plain", b"ready\n".to_vec())
                } else {
                    let body = format!(
                        "not ready: metadata not loaded for {}\n",
                        waiting.join(", ")
                    );
                    reply(503, "text/plain", body.into_bytes())
                }
            }
            "/metrics" => reply(200, "text/plain; version=0.0.4", self.metrics.render()),
            _ => reply(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}

/// Loads every provider's metadata at start (retrying with back-off while it fails) and
/// refreshes it hourly; a failed refresh keeps the last good copy.
pub struct MetadataRefresher {
    pub providers: Vec<Arc<Provider>>,
}

const REFRESH_EVERY: Duration = Duration::from_secs(3600);

#[async_trait]
impl BackgroundService for MetadataRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let mut all_ready = true;
            for p in &self.providers {
                let Provider::Oidc(o) = p.as_ref();
                let due = match o.age() {
                    None => true,
                    Some(age) => age >= REFRESH_EVERY,
                };
                if !due {
                    continue;
                }
                match o.load().await {
                    Ok(()) => log::info!("provider {}: metadata and signing keys loaded", o.name),
                    Err(e) => {
                        all_ready &= o.is_ready();
                        log::warn!("provider {}: {e}", o.name);
                    }
                }
            }
            let wait = if all_ready {
                backoff = Duration::from_millis(500);
                Duration::from_secs(60)
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
