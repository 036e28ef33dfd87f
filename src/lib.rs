//! authgate: a reverse-proxy authentication gateway on pingora.
//!
//! Modules in the order a request flows: `config` (file → validated Config), `route`
//! (host/path → route), `headers` (strip spoofed identity headers, inject verified ones),
//! `session` (sealed cookies, store), `idp` (OpenID Connect sign-in), `return_to` (safe
//! post-sign-in redirects), `gateway` (the pingora `ProxyHttp` tying them together),
//! `pages` (what people see), `admin` and `metrics` (what operators see).

pub mod admin;
pub mod config;
pub mod gateway;
pub mod headers;
pub mod identity;
pub mod idp;
pub mod metrics;
pub mod pages;
pub mod return_to;
pub mod route;
pub mod session;

use std::sync::Arc;

/// Everything `main` needs to start serving, built from a validated config.
pub struct App {
    pub gateway: gateway::Gateway,
    pub admin: admin::AdminApp,
    pub refresher: admin::MetadataRefresher,
}

pub fn build(cfg: &config::Config) -> Result<App, String> {
    let metrics = Arc::new(metrics::Metrics::new().map_err(|e| e.to_string())?);
    let providers = cfg
        .providers
        .iter()
        .map(|p| idp::Provider::build(p, &cfg.public_url, metrics.clone()).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok(App {
        gateway: gateway::Gateway::new(cfg, providers.clone(), metrics.clone())?,
        admin: admin::AdminApp {
            metrics,
            providers: providers.clone(),
        },
        refresher: admin::MetadataRefresher { providers },
    })
}
