//! What a request is served with: `Core`, everything built from one configuration (swapped
//! whole on reload), with the metrics that outlive configurations.

use std::sync::Arc;

use crate::config::Config;
use crate::cookies::Cookies;
use crate::headers::HeaderPlan;
use crate::idp::{self, IdpError, Provider};
use crate::metrics::Metrics;
use crate::route::RouteTable;
use crate::scim::{ProviderNames, Scim, ScimContext};
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
    #[error("assertion: {0}")]
    Assertion(String),
}

/// Everything built from one configuration. A reload builds a new one and swaps it in whole;
/// in-flight requests finish with the one they started with.
pub struct Core {
    pub cfg: Config,
    /// The same series for every configuration (built once by `crate::build`).
    pub metrics: Arc<Metrics>,
    pub routes: RouteTable,
    pub headers: HeaderPlan,
    pub sessions: Arc<Sessions>,
    pub cookies: Cookies,
    pub providers: Vec<Arc<Provider>>,
    /// SCIM provisioning (`scim:`), if configured.
    pub scim: Option<Arc<Scim>>,
    /// Tokens passed upstream on request (`pass_id_token`, `pass_access_token`).
    pub(crate) upstream_tokens: crate::upstream_tokens::UpstreamTokens,
    /// The signed identity assertion (`assertion:`), if on.
    pub assertion: Option<Arc<crate::assertion::Signer>>,
    /// Session re-checks, when a provider has `recheck_every`.
    pub(crate) recheck: Option<Arc<crate::recheck::Rechecker>>,
    /// `X-Forwarded-Proto` and the default `X-Forwarded-Port`, from `public_url`, built once.
    pub forwarded_proto: http::HeaderValue,
    pub forwarded_port: http::HeaderValue,
}

impl Core {
    /// The route a return address leads to (a path on `public_url`'s host, or a URL on a
    /// served host).
    pub(crate) fn route_for(&self, return_to: &str) -> Option<Arc<crate::route::Route>> {
        if !return_to.starts_with('/') {
            let u = url::Url::parse(return_to).ok()?;
            return self.routes.find(u.host_str(), u.path()).cloned();
        }
        let path = return_to.split(['?', '#']).next().unwrap_or("/");
        self.routes
            .find(self.cfg.public_url.host_str(), path)
            .cloned()
    }

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
        let providers = build_providers(&cfg, previous, metrics)?;
        let scim = match &cfg.scim {
            None => None,
            Some(sc) => Some(Arc::new(Scim::build(
                sc,
                ScimContext {
                    session: &cfg.session,
                    sessions: sessions.clone(),
                    providers: cfg
                        .providers
                        .iter()
                        .map(|p| ProviderNames {
                            name: p.name.clone(),
                            group_names: p.group_names.clone(),
                        })
                        .collect(),
                    metrics: metrics.clone(),
                },
                previous.and_then(|p| p.scim.as_deref()),
            )?)),
        };
        let recheck = crate::recheck::Rechecker::new(&sessions, &providers, scim.clone(), metrics);
        let assertion = match &cfg.assertion {
            None => None,
            Some(a) => Some(Arc::new(
                crate::assertion::Signer::new(
                    a,
                    &cfg.public_url,
                    previous.and_then(|p| p.assertion.as_deref()),
                    metrics,
                )
                .map_err(BuildError::Assertion)?,
            )),
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
                .with_attributes(
                    cfg.scim
                        .iter()
                        .flat_map(|s| &s.headers)
                        .map(|(a, name)| (a.key(), name)),
                )
                .with_owned(cfg.assertion.iter().map(|a| a.header.as_str()))
                .with_owned(cfg.routes.iter().flat_map(|r| r.tokens.headers())),
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
            recheck,
            assertion,
            upstream_tokens: crate::upstream_tokens::UpstreamTokens::new(),
            metrics: metrics.clone(),
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
    /// The sign-in link for a caller of `req` (its path and query to come back to) with
    /// `provider`: what 401 answers and the "sign-in expired" page point to.
    pub fn sign_in_link(&self, req: &pingora::http::RequestHeader, provider: &str) -> String {
        let path_and_query = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let return_to = crate::return_to::sanitize(path_and_query, &self.cfg.public_url);
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        format!(
            "{}?rd={}&provider={}",
            self.public(&format!("{}/sign_in", crate::canonical::RESERVED_PREFIX)),
            enc(&return_to),
            enc(provider)
        )
    }

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

/// The providers of `cfg`: those of `previous` whose configuration is unchanged (loaded
/// metadata and key caches kept), new ones built. Each learns whether a route now passes ID
/// tokens upstream (what its sessions keep depends on it).
fn build_providers(
    cfg: &Config,
    previous: Option<&Core>,
    metrics: &Arc<Metrics>,
) -> Result<Vec<Arc<Provider>>, BuildError> {
    let id_tokens_passed = cfg.routes.iter().any(|r| r.tokens.id_token.is_some());
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
        let provider = match reused {
            Some(p) => p,
            None => idp::build(pc, &cfg.public_url, metrics.clone())
                .map_err(|e| BuildError::Provider(pc.name.clone(), e))?,
        };
        if let Provider::Oidc(o) = &*provider {
            o.set_id_tokens_passed(id_tokens_passed);
        }
        providers.push(provider);
    }
    Ok(providers)
}
