//! Route matching: host and path prefix to a route, compiled once at start.

use std::sync::Arc;

pub mod cors;
pub mod open;
pub mod peer;
mod read;
mod require;
pub(crate) mod upstream_tls;

use crate::canonical::{has_prefix_ci, Canonical, Exceptions, Unreadable};
use crate::policy::Policy;

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    host: Option<String>,
    prefix: String,
    pub upstream: Upstream,
    /// Where its requests connect, prepared once (`peer`).
    pub peer: peer::Peer,
    pub public: bool,
    pub provider: usize,
    /// The providers whose identities this route accepts (see `accepts`).
    accepts: Vec<Arc<str>>,
    pub policy: Policy,
    /// `require:` how recently and strongly the user must have signed in.
    pub require: crate::assurance::Require,
    pub exceptions: Exceptions,
    /// `preserve_post:` a same-origin form POST that finds no session survives the sign-in.
    pub preserve_post: Option<PreservePost>,
    /// `cors.preflight:` what a CORS preflight gets.
    pub cors: cors::Preflight,
    /// `public_methods`, `public_paths`: let through without a session.
    pub open: open::Open,
    /// The signed assertion's audience (`assertion_audience`, else the host; None: the
    /// gateway's own host).
    pub audience: Option<Arc<str>>,
    /// Tokens sent upstream (`pass_id_token`, `pass_access_token`).
    pub tokens: PassTokens,
    /// Its metric series, resolved once.
    pub series: crate::metrics::RouteSeries,
}

#[derive(Debug, Clone)]
pub struct RouteTable {
    /// Most specific first: a host match beats any-host, then the longer prefix wins.
    routes: Vec<Arc<Route>>,
    /// What any route allows: the canonical reading may accept no more than this.
    pub exceptions: Exceptions,
}

/// Why a canonical request has no route to take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// Nothing is configured for this host and path.
    Unknown,
    /// The request needs a path exception its route does not allow, or its readings (with
    /// `%2F` as a separator and as a character) lead to different routes.
    Refused(Unreadable),
}

impl RouteTable {
    pub fn new(cfg: &[RouteConfig]) -> Self {
        let mut routes: Vec<Arc<Route>> = cfg
            .iter()
            .map(|r| {
                Arc::new(Route {
                    name: r.name.clone(),
                    host: r.host.clone(),
                    prefix: r.path_prefix.clone(),
                    upstream: r.upstream.clone(),
                    peer: peer::Peer::new(&r.upstream),
                    public: r.public,
                    provider: r.provider,
                    accepts: r.accepts.iter().map(|n| Arc::from(n.as_str())).collect(),
                    policy: r.policy.clone(),
                    require: r.require.clone(),
                    exceptions: r.exceptions,
                    preserve_post: r.preserve_post,
                    cors: r.cors.clone(),
                    open: r.open.clone(),
                    audience: r
                        .assertion_audience
                        .as_deref()
                        .or(r.host.as_deref())
                        .map(Arc::from),
                    tokens: r.tokens.clone(),
                    series: Default::default(),
                })
            })
            .collect();
        let exceptions = routes
            .iter()
            .fold(Exceptions::default(), |a, r| a.union(r.exceptions));
        routes.sort_by(|a, b| {
            b.host
                .is_some()
                .cmp(&a.host.is_some())
                .then(b.prefix.len().cmp(&a.prefix.len()))
        });
        Self { routes, exceptions }
    }

    /// The route for a canonical request. A request that used a path exception goes only to a
    /// route allowing it, and every reading of an encoded slash must lead to the same route.
    pub fn route(&self, c: &Canonical) -> Result<&Arc<Route>, NoRoute> {
        let route = self
            .find(c.host.as_deref(), c.route_path())
            .ok_or(NoRoute::Unknown)?;
        if !route.exceptions.covers(c.used) {
            return Err(NoRoute::Refused(if c.used.path_parameters {
                Unreadable::PathParameter
            } else {
                Unreadable::EncodedSlash
            }));
        }
        // Every reading must agree: with and without `;params`, `%2F` as a character and as a
        // separator.
        let agrees = |p: &str| {
            self.find(c.host.as_deref(), p)
                .is_some_and(|o| Arc::ptr_eq(o, route))
        };
        if c.used.path_parameters && !(agrees(&c.path) && agrees(&c.path.replace("%2F", "/"))) {
            return Err(NoRoute::Refused(Unreadable::PathParameter));
        }
        if c.used.encoded_slash && !agrees(&c.route_path().replace("%2F", "/")) {
            return Err(NoRoute::Refused(Unreadable::EncodedSlash));
        }
        Ok(route)
    }

    /// `host` may carry a port and any case; `path` is the request path, matched against
    /// prefixes case-insensitively (`/ADMIN` meets `/admin`'s policy: case-insensitive
    /// upstreams serve it as `/admin`).
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        let host = host.map(strip_port);
        self.routes.iter().find(|r| {
            let host_ok = match (&r.host, host) {
                (None, _) => true,
                (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                (Some(_), None) => false,
            };
            host_ok && prefix_matches(&r.prefix, path)
        })
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// `/app` matches `/app`, `/app/` and `/app/x` (in any case), but not `/apple`.
impl Route {
    /// Does this route accept an identity vouched for by `provider`? A session or token of
    /// any other provider is no session here, whatever it claims.
    pub fn accepts(&self, provider: &Arc<str>) -> bool {
        self.accepts
            .iter()
            .any(|a| Arc::ptr_eq(a, provider) || **a == **provider)
    }

    /// The accepted providers' names, the sign-in provider first.
    pub fn accepted(&self) -> &[Arc<str>] {
        &self.accepts
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    has_prefix_ci(path, prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(name: &str, host: Option<&str>, prefix: &str) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            host: host.map(Into::into),
            path_prefix: prefix.into(),
            upstream: Upstream {
                addr: "127.0.0.1:1".into(),
                tls: false,
                sni: String::new(),
                tls_options: None,
                host_header: None,
                read_timeout: None,
            },
            public: false,
            provider: 0,
            accepts: vec!["p".into()],
            policy: Policy::default(),
            require: Default::default(),
            exceptions: Exceptions::default(),
            preserve_post: None,
            cors: Default::default(),
            open: Default::default(),
            assertion_audience: None,
            tokens: Default::default(),
        }
    }

    #[test]
    fn most_specific_wins() {
        let t = RouteTable::new(&[
            rc("root", None, "/"),
            rc("api", None, "/api"),
            rc("host", Some("app.example"), "/"),
        ]);
        assert_eq!(t.find(Some("x"), "/api/v1").unwrap().name, "api");
        assert_eq!(t.find(Some("x"), "/apiary").unwrap().name, "root");
        assert_eq!(
            t.find(Some("APP.example:8443"), "/api").unwrap().name,
            "host"
        );
        assert_eq!(t.find(None, "/").unwrap().name, "root");
        assert_eq!(t.find(None, "/API/v1").unwrap().name, "api");
        assert_eq!(t.find(None, "/Api").unwrap().name, "api");
    }

    #[test]
    fn no_route_without_catch_all() {
        let t = RouteTable::new(&[rc("api", None, "/api/")]);
        assert!(t.find(None, "/other").is_none());
        assert!(t.find(None, "/api").is_some());
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    /// Lower-case host to match, without port; `None` matches any host.
    pub host: Option<String>,
    pub path_prefix: String,
    pub upstream: Upstream,
    pub public: bool,
    /// Index into `Config::providers`: the provider browsers are sent to sign in with.
    pub provider: usize,
    /// Names of the providers whose sessions and tokens this route accepts (`provider` first).
    /// An identity from any other provider is no session here.
    pub accepts: Vec<String>,
    /// Who may pass, beyond being signed in (`allow:`); group names already resolved to IDs.
    pub policy: Policy,
    /// `require:` step-up requirements, checked after the policy.
    pub require: crate::assurance::Require,
    /// Path forms this route accepts although some upstreams read them differently.
    pub exceptions: crate::canonical::Exceptions,
    pub preserve_post: Option<PreservePost>,
    /// `cors:` CORS preflights.
    pub cors: cors::Preflight,
    /// `public_methods`, `public_paths`.
    pub open: open::Open,
    /// `assertion_audience:` the signed assertion's `aud` (default: the route's host).
    pub assertion_audience: Option<String>,
    /// `pass_id_token`, `pass_access_token`.
    pub tokens: PassTokens,
}

/// `routes[].pass_id_token` / `pass_access_token` as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassTokens {
    /// The header for the ID token (`pass_id_token`).
    pub id_token: Option<String>,
    pub access_token: Option<AccessTokenPass>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenPass {
    /// What the access token is for (Entra: `api://<app id>/.default`).
    pub scope: String,
    pub header: String,
}

pub(crate) const ID_TOKEN_HEADER: &str = "X-Auth-Id-Token";
pub(crate) const ACCESS_TOKEN_HEADER: &str = "X-Auth-Access-Token";

impl PassTokens {
    pub fn any(&self) -> bool {
        self.id_token.is_some() || self.access_token.is_some()
    }

    /// The header names this configuration sends (no client may send them).
    pub fn headers(&self) -> impl Iterator<Item = &str> {
        self.id_token
            .iter()
            .map(String::as_str)
            .chain(self.access_token.iter().map(|a| a.header.as_str()))
    }
}

/// `routes[].preserve_post`: how much of a form POST is kept across a sign-in, and how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreservePost {
    pub max_bytes: usize,
    pub ttl: std::time::Duration,
}

impl Default for PreservePost {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            ttl: std::time::Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub addr: String,
    pub tls: bool,
    /// SNI / Host for TLS upstreams.
    pub sni: String,
    /// `upstream_tls:` CA, client certificate, server name, verification.
    pub tls_options: Option<Arc<upstream_tls::UpstreamTls>>,
    /// `upstream_host:` the `Host` sent upstream instead of the request's.
    pub host_header: Option<String>,
    /// `upstream_read_timeout:` longest silence of the upstream (a response head, a body
    /// chunk, a websocket message) before the request fails (504) or the connection closes.
    pub read_timeout: Option<std::time::Duration>,
}
