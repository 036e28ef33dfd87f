//! Route matching: host and path prefix to a route, compiled once at start.

use std::sync::Arc;

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
}

#[derive(Debug, Clone)]
pub struct RouteTable {
    /// Most specific first: a host match beats any-host, then the longer prefix wins.
    routes: Vec<Arc<Route>>,
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
                })
            })
            .collect();
        routes.sort_by(|a, b| {
            b.host
                .is_some()
                .cmp(&a.host.is_some())
                .then(b.prefix.len().cmp(&a.prefix.len()))
        });
        Self { routes }
    }

    /// `host` may carry a port and any case; `path` is the request path.
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

/// `/app` matches `/app`, `/app/` and `/app/x`, but not `/apple`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let p = prefix.trim_end_matches('/');
    path.strip_prefix(p)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
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
    }

    #[test]
    fn no_route_without_catch_all() {
        let t = RouteTable::new(&[rc("api", None, "/api/")]);
        assert!(t.find(None, "/other").is_none());
        assert!(t.find(None, "/api").is_some());
    }
}

/// Why a request path was refused before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    /// `.` or `..` segments (also percent-encoded): the upstream could resolve them to a
    /// path other than the one routed (`/public/../admin`).
    DotSegment,
    /// `%2F`, `%5C`, `\` or NUL: upstreams disagree on what they mean.
    AmbiguousSeparator,
    NotAbsolute,
}

/// Normalizes a request path so that what is routed is what the upstream sees: decodes
/// percent-encoded unreserved characters (RFC 3986 §6.2.2.2), folds repeated slashes, and
/// refuses dot segments and encoded separators. Returns `Ok(None)` when already normal.
pub fn normalize_path(path: &str) -> Result<Option<String>, BadPath> {
    if !path.starts_with('/') {
        return if path == "*" {
            Ok(None)
        } else {
            Err(BadPath::NotAbsolute)
        };
    }
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let hex = |x: u8| (x as char).to_digit(16);
            let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|x| hex(*x)),
                b.get(i + 2).and_then(|x| hex(*x)),
            ) else {
                out.push(c);
                i += 1;
                continue;
            };
            let v = (h * 16 + l) as u8;
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                out.push(v);
            } else if matches!(v, b'/' | b'\\' | 0) {
                return Err(BadPath::AmbiguousSeparator);
            } else {
                out.extend_from_slice(&b[i..i + 3]);
            }
            i += 3;
            continue;
        }
        if c == b'\\' || c == 0 {
            return Err(BadPath::AmbiguousSeparator);
        }
        if c == b'/' && out.last() == Some(&b'/') {
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    if out
        .split(|c| *c == b'/')
        .any(|seg| seg == b"." || seg == b"..")
    {
        return Err(BadPath::DotSegment);
    }
    if out == b {
        return Ok(None);
    }
    // Only ASCII was decoded, so this cannot fail; refuse rather than unwrap anyway.
    String::from_utf8(out)
        .map(Some)
        .map_err(|_| BadPath::AmbiguousSeparator)
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn path_tricks() {
        assert_eq!(normalize_path("/a/b?x"), Ok(None));
        assert_eq!(
            normalize_path("//admin//x").unwrap().as_deref(),
            Some("/admin/x")
        );
        assert_eq!(
            normalize_path("/%61dmin").unwrap().as_deref(),
            Some("/admin")
        );
        assert_eq!(normalize_path("/a%20b"), Ok(None));
        for bad in [
            "/public/../admin",
            "/public/%2e%2e/admin",
            "/./admin",
            "/public/%2E%2E",
            "/..",
            "/a%2Fb",
            "/a\\b",
            "/a%5cb",
            "/a%00",
        ] {
            assert!(normalize_path(bad).is_err(), "{bad}");
        }
    }
}
