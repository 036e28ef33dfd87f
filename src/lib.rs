//! authgate: a reverse-proxy authentication gateway on pingora.
//!
//! Modules in the order a request flows: `config` (file → validated Config), `route`
//! (host/path → route), `headers` (strip spoofed identity headers, inject verified ones),
//! `session` (sealed cookies, store), `idp` (OpenID Connect sign-in), `return_to` (safe
//! post-sign-in redirects), `gateway` (the pingora `ProxyHttp` tying them together),
//! `pages` (what people see), `admin` and `metrics` (what operators see).

#![forbid(unsafe_code)]

pub mod admin;
pub mod admin_api;
pub mod answer;
pub mod authenticate;
pub mod canonical;
pub mod config;
pub mod cookies;
pub mod endpoints;
pub mod exchange;
pub mod explain;
pub mod fetch;
pub mod forward_auth;
pub mod gateway;
pub mod head_deadline;
pub mod headers;
pub mod https_redirect;
pub mod identity;
pub mod idp;
pub mod logging;
pub mod metrics;
pub mod pages;
pub mod policy;
pub mod read;
pub mod reload;
pub mod return_to;
pub mod route;
pub mod scim;
pub mod seal;
pub mod session;
pub mod state;
pub mod tls;

use std::sync::Arc;

use arc_swap::ArcSwap;

/// Everything `main` needs to start serving, built from a validated config.
pub struct App {
    pub gateway: gateway::Gateway,
    pub metrics: Arc<metrics::Metrics>,
    pub admin: admin::AdminApp,
    pub refresher: admin::MetadataRefresher,
    pub reloader: reload::Reloader,
}

/// `config_path` is where reloads (SIGHUP, file change) read the configuration again.
pub fn build(
    cfg: config::Config,
    config_path: std::path::PathBuf,
) -> Result<App, state::BuildError> {
    let metrics =
        Arc::new(metrics::Metrics::new().map_err(|e| state::BuildError::Metrics(e.to_string()))?);
    let watch = cfg.watch_config;
    let core = Arc::new(ArcSwap::from_pointee(state::Core::build(
        cfg, None, &metrics,
    )?));
    Ok(App {
        gateway: gateway::Gateway::new(core.clone(), metrics.clone()),
        metrics: metrics.clone(),
        admin: admin::AdminApp {
            metrics: metrics.clone(),
            core: core.clone(),
        },
        refresher: admin::MetadataRefresher { core: core.clone() },
        reloader: reload::Reloader {
            core,
            metrics,
            path: config_path,
            watch,
        },
    })
}
