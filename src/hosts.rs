//! The hosts one gateway serves and the places a sign-in may send a browser back to: `hosts`
//! (served besides `public_url`'s and the routes' own), `allowed_redirect_hosts` (exact hosts
//! or one-label wildcards, each with an optional port). A return address is an absolute URL
//! only when it names one of them, with `public_url`'s scheme (or https), no userinfo, and the
//! same port unless the entry lists one; anything else is a same-origin path or `/`.

use url::Url;

use crate::read::{Obj, Reader};

/// A host pattern: `app.example.com`, `*.example.com` (one label), either with `:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower case; for a wildcard, the part after `*.`.
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl HostPattern {
    fn parse(s: &str) -> Option<HostPattern> {
        let s = s.trim().to_ascii_lowercase();
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                Some(p.parse::<u16>().ok().filter(|p| *p > 0)?),
            ),
            None => (s.clone(), None),
        };
        let (host, wildcard) = match host.strip_prefix("*.") {
            Some(rest) => (rest.to_string(), true),
            None => (host, false),
        };
        let labels_ok = crate::identity::is_domain(&host) || (!wildcard && is_name(&host));
        labels_ok.then_some(HostPattern {
            host,
            wildcard,
            port,
        })
    }

    /// Does `host` (lower case, no trailing dot) on `port` match? Without a listed port, the
    /// port must be `default_port` (`public_url`'s).
    fn matches(&self, host: &str, port: u16, default_port: u16) -> bool {
        let host_ok = match self.wildcard {
            false => host == self.host,
            true => host
                .strip_suffix(self.host.as_str())
                .and_then(|l| l.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        };
        host_ok && port == self.port.unwrap_or(default_port)
    }
}

/// A single-label name (`localhost`, a test host).
fn is_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 63
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !h.starts_with('-')
}

/// The served hosts and the redirect allow-list, with `public_url`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hosts {
    /// `hosts:` and the routes' `host:` (lower case), besides `public_url`'s host.
    pub served: Vec<String>,
    /// Whether `hosts:` was given: then a request for any other host is refused.
    pub listed: bool,
    pub allowed_redirects: Vec<HostPattern>,
}

/// Where a sign-in sends the browser back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A path on `public_url`'s origin.
    Here(String),
    /// An absolute URL on another served host: reached through a handoff.
    Served(Url),
    /// An absolute URL on an allow-listed host the gateway does not serve: a plain redirect.
    Allowed(Url),
}

impl Destination {
    /// The address as carried in a pending sign-in.
    pub fn as_str(&self) -> &str {
        match self {
            Destination::Here(p) => p,
            Destination::Served(u) | Destination::Allowed(u) => u.as_str(),
        }
    }
}

impl Hosts {
    /// Is `host` (lower case, no port) one this gateway serves by name?
    pub fn serves(&self, host: &str, public: &Url) -> bool {
        public.host_str() == Some(host) || self.served.iter().any(|h| h == host)
    }

    /// Where `candidate` (a path or an absolute URL) may send the browser; `/` when nowhere.
    pub fn destination(&self, candidate: &str, public: &Url) -> Destination {
        if candidate.starts_with('/')
            || Url::parse(candidate).is_ok_and(|u| u.origin() == public.origin())
        {
            return Destination::Here(crate::return_to::sanitize(candidate, public));
        }
        match self.absolute(candidate, public) {
            Some((u, true)) => Destination::Served(u),
            Some((u, false)) => Destination::Allowed(u),
            None => Destination::Here("/".into()),
        }
    }

    /// An absolute URL on another host, if allowed: (URL, served by this gateway).
    fn absolute(&self, candidate: &str, public: &Url) -> Option<(Url, bool)> {
        if candidate.len() > 4096 || candidate.contains(['\\', '\r', '\n', '\t']) {
            return None;
        }
        let u = Url::parse(candidate).ok()?;
        let scheme_ok = u.scheme() == public.scheme() || u.scheme() == "https";
        if !scheme_ok
            || !u.username().is_empty()
            || u.password().is_some()
            || u.fragment().is_some()
        {
            return None;
        }
        let host = match u.host()? {
            url::Host::Domain(d) => d.to_string(),
            _ => return None,
        };
        if host.ends_with('.') || host != host.to_ascii_lowercase() {
            return None;
        }
        let port = u.port_or_known_default()?;
        let default_port = public.port_or_known_default()?;
        let served = port == default_port && self.serves(&host, public);
        let allowed = served
            || self
                .allowed_redirects
                .iter()
                .any(|p| p.matches(&host, port, default_port));
        if !allowed {
            return None;
        }
        // The path and query must be one `return_to` keeps on that origin.
        let origin = Url::parse(&u.origin().ascii_serialization()).ok()?;
        let mut path = u.path().to_string();
        if let Some(q) = u.query() {
            path.push('?');
            path.push_str(q);
        }
        let kept = crate::return_to::sanitize(&path, &origin);
        (kept == path).then_some((u, served))
    }
}

impl Reader<'_> {
    /// `hosts: [..]` (and the routes' hosts) and `allowed_redirect_hosts: [..]`.
    pub(crate) fn hosts(
        &mut self,
        top: &mut Obj<'_>,
        routes: &[crate::route::RouteConfig],
    ) -> Hosts {
        let listed = top.map.is_some_and(|m| m.contains_key("hosts"));
        let mut served = Vec::new();
        for (i, h) in self
            .string_list(top, "hosts")
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            match HostPattern::parse(&h) {
                Some(p) if !p.wildcard && p.port.is_none() => served.push(p.host),
                _ => self.err(
                    format!("hosts[{i}]"),
                    format!("{h:?} is not a host name (no port, no wildcard)"),
                ),
            }
        }
        let mut allowed_redirects = Vec::new();
        for (i, h) in self
            .string_list(top, "allowed_redirect_hosts")
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            match HostPattern::parse(&h) {
                Some(p) => allowed_redirects.push(p),
                None => self.err(
                    format!("allowed_redirect_hosts[{i}]"),
                    format!("{h:?} is not a host (app.example.com), a one-label wildcard (*.example.com), or either with :port"),
                ),
            }
        }
        for h in routes.iter().filter_map(|r| r.host.as_ref()) {
            if !served.contains(h) {
                served.push(h.clone());
            }
        }
        Hosts {
            served,
            listed,
            allowed_redirects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Hosts {
        Hosts {
            served: vec!["a.example.com".into(), "b.example.com".into()],
            listed: true,
            allowed_redirects: ["*.apps.example.com", "docs.example.com:8443"]
                .iter()
                .filter_map(|p| HostPattern::parse(p))
                .collect(),
        }
    }

    #[test]
    fn only_listed_hosts_are_destinations() {
        let public = Url::parse("https://login.example.com").unwrap();
        let h = hosts();
        let d = |c: &str| h.destination(c, &public);
        assert_eq!(d("/x?y=1"), Destination::Here("/x?y=1".into()));
        assert_eq!(
            d("https://login.example.com/x"),
            Destination::Here("/x".into())
        );
        for served in [
            "https://a.example.com/x?q=1",
            "https://b.example.com/",
            "https://a.example.com:443/x",
        ] {
            assert!(matches!(d(served), Destination::Served(_)), "{served}");
        }
        for allowed in [
            "https://one.apps.example.com/x",
            "https://docs.example.com:8443/p",
        ] {
            assert!(matches!(d(allowed), Destination::Allowed(_)), "{allowed}");
        }
        for bad in [
            "https://evil.example/",
            "http://a.example.com/",
            "https://user@a.example.com/",
            "https://a.example.com:8443/",
            "https://docs.example.com/",
            "https://two.levels.apps.example.com/",
            "https://apps.example.com/",
            "https://a.example.com./x",
            "//a.example.com/x",
            "/\\evil.example",
            "https:evil.example",
            "https://a.example.com//evil.example",
            "https://a.example.com/%2F%2Fevil.example",
            "https://a.example.com/x#frag",
            "https://a.example.com\\@evil.example/",
            "https://1.2.3.4/",
            "javascript:alert(1)",
        ] {
            assert_eq!(d(bad), Destination::Here("/".into()), "{bad}");
        }
    }

    #[test]
    fn patterns() {
        for bad in [
            "*",
            "*.com",
            "a.*.example",
            "x.example:0",
            "x.example:http",
            "",
            "a b.example",
        ] {
            assert!(HostPattern::parse(bad).is_none(), "{bad}");
        }
        let p = HostPattern::parse("*.Example.com:8443").unwrap();
        assert!(p.matches("a.example.com", 8443, 443));
        assert!(!p.matches("a.example.com", 443, 443));
        assert!(!p.matches("example.com", 8443, 443));
    }
}
