//! Configuration hot reload: on SIGHUP (and, with `server.watch_config`, when the file
//! changes) the file is read and validated again; only a valid configuration replaces the
//! running one, otherwise the error is logged and counted and the old one keeps serving.
//! Sessions survive: the session manager is reused while `session:` is unchanged.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::state::Core;

pub struct Reloader {
    pub core: Arc<ArcSwap<Core>>,
    pub metrics: Arc<Metrics>,
    pub path: PathBuf,
    pub watch: bool,
}

/// Why a reload left the running configuration in place.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] crate::read::ConfigErrors),
    #[error("{0}")]
    Build(#[from] crate::state::BuildError),
}

const WATCH_EVERY: Duration = Duration::from_secs(2);

impl Reloader {
    /// Reads, validates and swaps in the configuration at `path`.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let cfg = Config::load(&self.path)?;
        let current = self.core.load_full();
        let old = &current.cfg;
        if cfg.listen != old.listen
            || cfg.admin_listen != old.admin_listen
            || cfg.threads != old.threads
            || cfg.tls != old.tls
        {
            log::warn!(
                "configuration reload: listen, admin.listen, server.threads and tls only change on restart (certificate files are re-read by themselves); the running listeners stay"
            );
        }
        for w in &cfg.warnings {
            log::warn!("{}: warning: {w}", self.path.display());
        }
        let next = Core::build(cfg, Some(&current), &self.metrics)?;
        self.core.store(Arc::new(next));
        Ok(())
    }

    /// A reload also fetches every provider's metadata again (new signing keys take effect
    /// without waiting for the hourly refresh); a failed fetch keeps the last good copy.
    async fn refresh_metadata(&self) {
        let providers = self.core.load().providers.clone();
        for p in providers {
            if let Err(e) = p.load().await {
                log::warn!("provider {}: metadata refresh on reload failed, keeping the last good copy: {e}", p.name());
            }
        }
    }

    async fn apply(&self, why: &str) {
        match self.reload() {
            Ok(()) => {
                self.refresh_metadata().await;
                log::info!(
                    "configuration reloaded ({why}) from {}",
                    self.path.display()
                );
                self.metrics
                    .config_reloads
                    .with_label_values(&["success"])
                    .inc();
            }
            Err(e) => {
                log::error!(
                    "configuration reload ({why}) rejected; the previous configuration stays in service: {e}"
                );
                self.metrics
                    .config_reloads
                    .with_label_values(&["error"])
                    .inc();
            }
        }
    }
}

fn fingerprint(path: &PathBuf) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("cannot listen for SIGHUP, hot reload disabled: {e}");
                return;
            }
        };
        let mut seen = fingerprint(&self.path);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = hup.recv() => {
                    self.apply("SIGHUP").await;
                    seen = fingerprint(&self.path);
                }
                _ = tokio::time::sleep(WATCH_EVERY), if self.watch => {
                    let now = fingerprint(&self.path);
                    if now.is_some() && now != seen {
                        seen = now;
                        self.apply("file changed").await;
                    }
                }
            }
        }
    }
}
