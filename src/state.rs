//! What a request is served with: `Core`, everything built from one configuration (swapped
//! whole on reload), and `Shared`, what outlives configurations (metrics, used states).

use std::sync::Arc;

use crate::config::Config;
use crate::cookies::Cookies;
use crate::headers::HeaderPlan;
use crate::idp::{self, IdpError, Provider};
use crate::metrics::Metrics;
use crate::route::RouteTable;
use crate::session::Sessions;

/// Why a configuration could not be put to work (after it validated).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Sessions(#[from] crate::session::SessionsError),
    #[error("provider {0}: {1}")]
    Provider(String, IdpError),
    #[error("headers: {0}")]
    Headers(String),
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("{0}")]
    Scim(#[from] crate::scim::ScimBuildError),
}

/// Everything built from one configuration. A reload builds a new one and swaps it in whole;
/// in-flight requests finish with the one they started with.
pub struct Core {
    pub cfg: Config,
    pub routes: RouteTable,
    pub headers: HeaderPlan,
    pub sessions: Arc<Sessions>,
    pub cookies: Cookies,
    pub providers: Vec<Arc<Provider>>,
    /// SCIM provisioning (`scim:`), if configured.
    pub scim: Option<Arc<crate::scim::Scim>>,
    /// `X-Forwarded-Proto` and the default `X-Forwarded-Port`, from `public_url`, built once.
    pub forwarded_proto: http::HeaderValue,
    pub forwarded_port: http::HeaderValue,
}

impl Core {
    /// Builds from a validated config, reusing the providers (loaded metadata, key caches)
    /// and the session manager (keys, store, revocations) of `previous` where their
    /// configuration is unchanged, so a reload keeps everyone signed in.
    pub fn build(
        cfg: Config,
        previous: Option<&Core>,
        metrics: &Arc<Metrics>,
    ) -> Result<Core, BuildError> {
        let sessions = match previous {
            Some(p) if p.cfg.session == cfg.session => p.sessions.clone(),
            _ => Arc::new(Sessions::new(cfg.session.clone())?),
        };
        let cookies = Cookies::new(&cfg.session)
            .ok_or(BuildError::Sessions(crate::session::SessionsError::Secret))?;
        let mut providers = Vec::with_capacity(cfg.providers.len());
        for pc in &cfg.providers {
            let reused = previous.and_then(|p| {
                p.cfg
                    .providers
                    .iter()
                    .position(|old| old == pc)
                    .filter(|_| p.cfg.public_url == cfg.public_url)
                    .and_then(|i| p.providers.get(i).cloned())
            });
            providers.push(match reused {
                Some(p) => p,
                None => idp::build(pc, &cfg.public_url, metrics.clone())
                    .map_err(|e| BuildError::Provider(pc.name.clone(), e))?,
            });
        }
        let scim = match &cfg.scim {
            None => None,
            Some(sc) => Some(Arc::new(crate::scim::Scim::build(
                sc,
                &cfg.session,
                previous.and_then(|p| p.scim.as_deref()),
                metrics.clone(),
            )?)),
        };
        Ok(Core {
            routes: RouteTable::new(&cfg.routes),
            headers: HeaderPlan::new(&cfg.headers)
                .map_err(|e| BuildError::Headers(e.to_string()))?
                .with_group_names(
                    cfg.providers
                        .iter()
                        .map(|p| (p.name.clone(), p.group_names.clone()))
                        .collect(),
                )
                .with_attributes(cfg.scim.as_ref().map_or(&[][..], |s| &s.headers)),
            forwarded_proto: match cfg.public_url.scheme() {
                "https" => http::HeaderValue::from_static("https"),
                _ => http::HeaderValue::from_static("http"),
            },
            forwarded_port: http::HeaderValue::from(
                cfg.public_url.port_or_known_default().unwrap_or(80),
            ),
            sessions,
            cookies,
            providers,
            scim,
            cfg,
        })
    }

    /// The provider configured as `name`.
    pub fn provider(&self, name: &str) -> Option<&Arc<Provider>> {
        self.providers.iter().find(|p| p.name() == name)
    }

    /// The peer is a trusted proxy (`trusted_proxies`): its forwarding headers stand.
    pub fn trusts(&self, peer: Option<std::net::IpAddr>) -> bool {
        peer.is_some_and(|ip| self.cfg.trusted_proxies.iter().any(|c| c.contains(ip)))
    }

    /// An absolute URL on the gateway's public origin.
    pub fn public(&self, path: &str) -> String {
        let mut s = self
            .cfg
            .public_url
            .as_str()
            .trim_end_matches('/')
            .to_string();
        s.push_str(path);
        s
    }
}

/// What outlives a configuration: the metrics. (Single-use checks, such as the states of
/// finished callbacks, belong to the session store: shared by every replica with Redis.)
pub struct Shared {
    pub metrics: Arc<Metrics>,
}

impl Shared {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }

    pub fn count_sign_in(&self, provider: &str, result: &str) {
        self.metrics
            .sign_ins
            .with_label_values(&[provider, result])
            .inc();
    }

    pub fn deny(&self, reason: &str) {
        self.metrics.denials.with_label_values(&[reason]).inc();
    }

    pub fn session_rejected(&self, reason: &str) {
        self.metrics
            .session_rejections
            .with_label_values(&[reason])
            .inc();
    }

    pub fn signed_out(&self, provider: &str) {
        self.metrics.sign_outs.with_label_values(&[provider]).inc();
    }
}
