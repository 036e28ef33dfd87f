//! authgate: a reverse-proxy authentication gateway on pingora.
//!
//! Modules in the order a request flows, each using only those after it:
//! - `gateway`: the pingora `ProxyHttp` phases; `Gateway::admit` decides on each request;
//! - `endpoints`: the gateway's own pages under `/_authgate/` (sign-in, the OpenID Connect
//!   callback, SAML's ACS, metadata and logout, sign-out, forward-auth, SCIM's protocol);
//!   `admin`, `admin_api`, `reload`: the admin listener, its session API, reloads;
//! - `authenticate`: bearer token or session, provider, policy (shared with forward-auth);
//! - `state`: `Core`, everything one configuration builds, with the metrics; `explain`:
//!   `authgate explain`;
//! - `config`: `gateway.yaml` to a validated `Config` (each section's reader lives beside
//!   what it configures, on the walker in `read`);
//! - `scim`: what SCIM provisioning does to sign-ins and sessions;
//! - `route`, `answer`, `cookies`: routing; what the gateway answers itself; its cookies;
//! - `idp` (OpenID Connect, SAML, and Entra's dialect in `idp::entra`), `headers`
//!   (identity headers out and in);
//! - `session`, `policy`, `forward_auth`, `tls`, `head_deadline`: sessions and their
//!   stores, per-route policy, the ingress dialects, the listener's TLS, the head deadline;
//! - leaves: `canonical` (the one reading of a request), `read`, `identity`, `metrics`,
//!   `exchange`, `return_to`, `pages`, `logging`, `fetch`, `seal`, `https_redirect`.
//!
//! docs/architecture.md has the same map with where each kind of change goes.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

// The library's face: the modules the binary, the tests and the benchmarks use. Each name
// has one path (no module re-exports another's names); what only the gateway uses is
// `pub(crate)`.
pub mod answer;
pub mod assertion;
pub mod assurance;
pub mod canonical;
pub mod config;
pub mod exchange;
pub mod explain;
pub mod forward_auth;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod gateway;
pub mod head_deadline;
pub mod headers;
pub mod hosts;
pub mod https_redirect;
pub mod identity;
pub mod idp;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod read;
pub mod route;
pub mod scim;
pub mod seal;
pub mod session;
pub mod state;
pub mod tls;

// The gateway's own.
mod admin;
mod admin_api;
mod authenticate;
mod cookies;
mod endpoints;
mod fetch;
mod pages;
mod recheck;
mod reload;
mod return_to;
mod upstream_tokens;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;

/// A rarely taken await, boxed as a trait object: its future (often kilobytes) is not carried,
/// nor copied, by every request's, and its code is not laid out in the line of the signed-in
/// request's (BENCHMARKS.md, ninth and tenth rounds).
pub(crate) fn aside<'a, T>(
    f: impl Future<Output = T> + Send + 'a,
) -> Pin<Box<dyn Future<Output = T> + Send + 'a>> {
    Box::pin(f)
}

/// Everything `main` needs to start serving, built from a validated config.
pub struct App {
    pub gateway: gateway::Gateway,
    pub metrics: Arc<metrics::Metrics>,
    pub admin: admin::AdminApp,
    pub refresher: admin::MetadataRefresher,
    /// Re-reads the assertion's key files.
    pub key_watcher: admin::KeyWatcher,
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
        key_watcher: admin::KeyWatcher(core.clone()),
        reloader: reload::Reloader {
            core,
            metrics,
            path: config_path,
            watch,
        },
    })
}
