//! Requests a signed-in route lets through without a session: `public_methods` (such as
//! `[HEAD]` for a load balancer's checks) and `public_paths`, patterns anchored at both ends
//! on the canonical path (`/healthz`, `/static/**`, `/assets/*.css`). They reach the upstream
//! with no identity, like a public route's. Matching is case-sensitive: `/Static/x` is not
//! `/static/**`, so a case-insensitive upstream never widens what is public.

use crate::read::{join, Obj, Reader};

/// A `public_paths` pattern: `*` matches within one segment (not `/`), `**` anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern(String);

impl PathPattern {
    pub fn matches(&self, path: &str) -> bool {
        glob(self.0.as_bytes(), path.as_bytes())
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        [b'*', rest @ ..] => {
            let seg = s.iter().position(|&c| c == b'/').unwrap_or(s.len());
            (0..=seg).any(|i| glob(rest, &s[i..]))
        }
        [c, rest @ ..] => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// A route's `public_methods` and `public_paths`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Open {
    pub methods: Vec<http::Method>,
    pub paths: Vec<PathPattern>,
}

impl Open {
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty() && self.paths.is_empty()
    }

    /// Does a request with this method and canonical path need no session?
    pub fn admits(&self, method: &http::Method, path: &str) -> bool {
        self.methods.contains(method) || self.paths.iter().any(|p| p.matches(path))
    }
}

/// Paths of the gateway's own: no pattern may reach them.
const RESERVED_PROBES: [&str; 5] = [
    "/_authgate",
    "/_authgate/",
    "/_authgate/sign_in",
    "/_authgate/scim/v2/Users",
    "/.well-known/authgate/jwks.json",
];

/// At most this many wildcards in one pattern (the matcher backtracks).
const MAX_STARS: usize = 4;

impl Reader<'_> {
    /// `public_methods: [HEAD, OPTIONS]`, `public_paths: ["/healthz", "/static/**"]`.
    pub(crate) fn open(&mut self, o: &mut Obj<'_>, path: &str, public: bool) -> Open {
        let methods = self.string_list(o, "public_methods").unwrap_or_default();
        let paths = self.string_list(o, "public_paths").unwrap_or_default();
        if public && !(methods.is_empty() && paths.is_empty()) {
            self.err(
                path,
                "a public route lets every request through: drop public_methods and public_paths",
            );
        }
        let mut open = Open::default();
        for (i, m) in methods.iter().enumerate() {
            let at = format!("{}[{i}]", join(path, "public_methods"));
            match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m) if m == http::Method::POST || m == http::Method::PUT || m == http::Method::DELETE || m == http::Method::PATCH => {
                    self.err(at, format!("{m} changes things: it cannot be public on a signed-in route (use a public route)"))
                }
                Ok(m) => open.methods.push(m),
                Err(_) => self.err(at, format!("{m:?} is not a method")),
            }
        }
        for (i, p) in paths.iter().enumerate() {
            let at = format!("{}[{i}]", join(path, "public_paths"));
            let stars = p.matches('*').count();
            let bad = !p.starts_with('/')
                || p.contains(['?', '#', '\\', '%', ' '])
                || p.split('/').any(|seg| seg == "." || seg == "..")
                || stars > MAX_STARS * 2
                || p.contains("***");
            if bad {
                self.err(at, format!("{p:?} is not a path pattern (starts with /; * within a segment, ** across; no ?, #, %, \\, . or .. segments; at most {MAX_STARS} wildcards)"));
                continue;
            }
            let pattern = PathPattern(p.clone());
            let reserved = RESERVED_PROBES.iter().any(|probe| {
                pattern.matches(probe) || pattern.matches(&probe.to_ascii_uppercase())
            });
            if reserved {
                self.err(
                    at,
                    format!("{p:?} could match the gateway's own paths (/_authgate): narrow it"),
                );
                continue;
            }
            open.paths.push(pattern);
        }
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_anchored_and_segment_aware() {
        let p = |s: &str| PathPattern(s.into());
        assert!(p("/healthz").matches("/healthz"));
        assert!(!p("/healthz").matches("/healthz/x"));
        assert!(!p("/healthz").matches("/x/healthz"));
        assert!(!p("/healthz").matches("/HEALTHZ"));
        assert!(p("/static/**").matches("/static/a/b.js"));
        assert!(p("/static/**").matches("/static/"));
        assert!(!p("/static/**").matches("/static"));
        assert!(!p("/static/**").matches("/staticx/a"));
        assert!(p("/assets/*.css").matches("/assets/site.css"));
        assert!(!p("/assets/*.css").matches("/assets/a/site.css"));
        assert!(!p("/assets/*.css").matches("/assets/site.css/x"));
        assert!(p("/*/health").matches("/api/health"));
        assert!(!p("/*/health").matches("/a/b/health"));
    }
}
