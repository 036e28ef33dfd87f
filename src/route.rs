//! Route matching: host and path prefix to a route, compiled once at start.

use std::sync::Arc;

use crate::canonical::{has_prefix_ci, Canonical, Exceptions, Refusal};
use crate::config::{RouteConfig, Upstream};
use crate::policy::Policy;

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    host: Option<String>,
    prefix: String,
    pub upstream: Upstream,
    pub public: bool,
    pub provider: usize,
    pub policy: Policy,
    pub exceptions: Exceptions,
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
    Refused(Refusal),
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
                    public: r.public,
                    provider: r.provider,
                    policy: r.policy.clone(),
                    exceptions: r.exceptions,
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
            .find(c.host.as_deref(), &c.route_path)
            .ok_or(NoRoute::Unknown)?;
        if !route.exceptions.covers(c.used) {
            return Err(NoRoute::Refused(if c.used.path_parameters {
                Refusal::PathParameter
            } else {
                Refusal::EncodedSlash
            }));
        }
        // Every reading must agree: with and without `;params`, `%2F` as a character and as a
        // separator.
        let agrees = |p: &str| {
            self.find(c.host.as_deref(), p)
                .is_some_and(|o| Arc::ptr_eq(o, route))
        };
        if c.used.path_parameters && !(agrees(&c.path) && agrees(&c.path.replace("%2F", "/"))) {
            return Err(NoRoute::Refused(Refusal::PathParameter));
        }
        if c.used.encoded_slash && !agrees(&c.route_path.replace("%2F", "/")) {
            return Err(NoRoute::Refused(Refusal::EncodedSlash));
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
            },
            public: false,
            provider: 0,
            policy: Policy::default(),
            exceptions: Exceptions::default(),
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


/// Property: for generated hostile paths and hosts, the route chosen for the raw request is
/// the route every upstream reading of the forwarded request would be served under, or the
/// request is refused.
#[cfg(test)]
mod property {
    use super::*;
    use crate::canonical;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn rc(name: &str, host: Option<&str>, prefix: &str, ex: Exceptions) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            host: host.map(Into::into),
            path_prefix: prefix.into(),
            upstream: Upstream {
                addr: "127.0.0.1:1".into(),
                tls: false,
                sni: String::new(),
            },
            public: false,
            provider: 0,
            policy: Policy::default(),
            exceptions: ex,
        }
    }

    fn decode(s: &str) -> String {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    }

    fn dots(p: &str) -> String {
        let mut out: Vec<&str> = Vec::new();
        for seg in p.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    out.pop();
                }
                s => out.push(s),
            }
        }
        format!("/{}", out.join("/"))
    }

    /// How common servers read a forwarded path: RFC 3986, IIS, a servlet container, a
    /// double-decoding app, NFKC.
    fn readings(p: &str) -> [String; 5] {
        let iis: Vec<String> = decode(&p.replace('\\', "/"))
            .split('/')
            .map(|s| s.split("::").next().unwrap_or("").trim_end_matches(['.', ' ']).to_string())
            .collect();
        let servlet: Vec<&str> = p.split('/').map(|s| s.split(';').next().unwrap_or("")).collect();
        let nfkc: String = decode(p)
            .chars()
            .map(|c| match c as u32 {
                0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
                _ => c,
            })
            .collect();
        [
            dots(&decode(p)),
            dots(&iis.join("/")),
            dots(&decode(&servlet.join("/"))),
            dots(&decode(&decode(p))),
            dots(&nfkc),
        ]
    }

    #[test]
    fn raw_route_equals_every_upstream_reading() {
        let params = Exceptions { path_parameters: true, encoded_slash: false };
        let slash = Exceptions { path_parameters: false, encoded_slash: true };
        let table = RouteTable::new(&[
            rc("root", None, "/", Exceptions::default()),
            rc("admin", None, "/admin", Exceptions::default()),
            rc("public", None, "/public", Exceptions::default()),
            rc("legacy", None, "/legacy", params),
            rc("pkg", None, "/pkg", slash),
            rc("secret", Some("secret.test"), "/", Exceptions::default()),
        ]);
        let pieces = [
            "admin", "ADMIN", "Admin", "%41dmin", "public", "legacy", "pkg", "x", "..", ".", "%2e",
            "%2E%2E", "%252e", "%25", "%3b", ";", ";x=1", "", "\\", "%5c", "%2f", "%2F", "~1", "::$DATA",
            "%20", "a.", "%c0%ae", "%ef%bc%8e", "%ef%bc%a1dmin", "%00", "%09", "%u002e", "caf%c3%a9",
            "_authgate", "%5fauthgate",
        ];
        let hosts: [&[u8]; 6] = [b"app.test", b"secret.test", b"SECRET.test.", b"secret.test:80", b"secret.test:8080", b"a..b"];
        let mut rng = StdRng::seed_from_u64(0xA17E);
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..50_000 {
            let n = rng.gen_range(1..6);
            let path: String = (0..n)
                .map(|_| format!("/{}", pieces[rng.gen_range(0..pieces.len())]))
                .collect();
            let host = hosts[rng.gen_range(0..hosts.len())];
            let Ok(c) = canonical::read(path.as_bytes(), &[host], None, true, table.exceptions) else {
                refused += 1;
                continue;
            };
            let Ok(route) = table.route(&c) else {
                refused += 1;
                continue;
            };
            accepted += 1;
            // What the upstream receives: c.target() and Host c.authority; a vhost reads the
            // host without port and trailing dot.
            let vhost = c.authority.as_deref().map(|a| a.split(':').next().unwrap_or(a).trim_end_matches('.').to_ascii_lowercase());
            let forwarded = c.target();
            for reading in readings(&forwarded) {
                let other = table.find(vhost.as_deref(), &reading);
                assert!(
                    other.is_some_and(|o| Arc::ptr_eq(o, route)),
                    "{path} (host {:?}) routed to {}, but forwarded as {forwarded} it reads as {reading} -> {:?}",
                    String::from_utf8_lossy(host),
                    route.name,
                    other.map(|o| &o.name)
                );
            }
        }
        // Both outcomes are exercised, so the property is not vacuous.
        assert!(accepted > 2_000 && refused > 2_000, "{accepted} accepted, {refused} refused");
    }
}
