//! Identity headers: strip every client-sent spelling of them, then inject the verified ones.
//!
//! A header counts as "ours" if it equals one of the configured names after lower-casing and
//! mapping `_` to `-`: some upstream servers (CGI, PHP, Django behind WSGI) fold `X_Auth_User`
//! and `X-Auth-User` into the same variable, so both spellings must go.

use http::header::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

use std::collections::HashMap;

use bytes::Bytes;

use crate::config::HeaderNames;
use crate::identity::{Identity, List};
use crate::policy::GroupNames;

/// Lower-case with `_` mapped to `-`: the form two spellings of one header share.
pub fn normalize(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'_' => '-',
            b => b.to_ascii_lowercase() as char,
        })
        .collect()
}

/// The compiled header plan: normalized names to strip and exact names to inject.
#[derive(Debug, Clone)]
pub struct HeaderPlan {
    /// Tells identities' prepared headers of this plan from another's (after a reload).
    id: u64,
    owned: Vec<String>,
    names: [HeaderName; 7],
    /// The same names as configured (their case goes on the wire), built once: pingora would
    /// otherwise title-case and allocate a name on every insert.
    case_names: [Bytes; 7],
    /// Provider name → group ID → readable name (the providers' `group_names`).
    group_names: HashMap<String, GroupNames>,
}

impl HeaderPlan {
    pub fn new(h: &HeaderNames) -> Result<Self, http::header::InvalidHeaderName> {
        let mk = |s: &str| HeaderName::from_bytes(s.as_bytes());
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(Self {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            owned: h.all().iter().map(|n| normalize(n)).collect(),
            names: [
                mk(&h.user)?,
                mk(&h.email)?,
                mk(&h.name)?,
                mk(&h.groups)?,
                mk(&h.roles)?,
                mk(&h.tenant)?,
                mk(&h.provider)?,
            ],
            group_names: HashMap::new(),
            case_names: [
                &h.user,
                &h.email,
                &h.name,
                &h.groups,
                &h.roles,
                &h.tenant,
                &h.provider,
            ]
            .map(|n| Bytes::from(n.to_string())),
        })
    }

    /// Upstreams receive these names instead of the group IDs they map.
    pub fn with_group_names(mut self, names: HashMap<String, GroupNames>) -> Self {
        self.group_names = names.into_iter().filter(|(_, m)| !m.is_empty()).collect();
        self
    }

    fn is_owned(&self, name: &str) -> bool {
        // Header names from the wire are already lower-case; compare without allocating.
        self.owned.iter().any(|o| {
            o.len() == name.len()
                && o.bytes().zip(name.bytes()).all(|(a, b)| {
                    let b = match b {
                        b'_' => b'-',
                        b => b.to_ascii_lowercase(),
                    };
                    a == b
                })
        })
    }

    /// Removes every inbound header the gateway owns, in any spelling. Returns how many names
    /// were removed (for the log).
    pub fn strip(&self, req: &mut RequestHeader) -> usize {
        let doomed: Vec<HeaderName> = req
            .headers
            .keys()
            .filter(|k| self.is_owned(k.as_str()))
            .cloned()
            .collect();
        for name in &doomed {
            req.remove_header(name);
        }
        doomed.len()
    }

    /// Sets the identity headers on a request to the upstream. They are built once per
    /// identity (a session's identity is shared by all its requests) and reused.
    pub fn inject(&self, req: &mut RequestHeader, id: &Identity) {
        let prepared = id.prepared.get_or_build(self.id, || {
            let mut out = Vec::with_capacity(7);
            self.each(id, |name, value| {
                if let Some(i) = self.names.iter().position(|n| n == name) {
                    out.push((i, value));
                }
            });
            out
        });
        for (i, value) in prepared.1.iter() {
            let _ = req.insert_header(self.case_names[*i].clone(), value.clone());
        }
    }

    /// Calls `f` with every identity header for `id`. Values that are not valid header values
    /// (control characters) are dropped rather than passed on; empty lists are absent.
    pub fn each(&self, id: &Identity, mut f: impl FnMut(&HeaderName, HeaderValue)) {
        let [user, email, name, groups, roles, tenant, provider] = &self.names;
        let mut put = |name: &HeaderName, value: Option<&str>| {
            let Some(v) = value else { return };
            match HeaderValue::from_str(v) {
                Ok(v) => f(name, v),
                Err(_) => log::warn!(
                    "identity header {name} dropped: value has characters a header cannot carry"
                ),
            }
        };
        put(user, Some(&id.user));
        put(email, id.email.as_deref());
        put(name, id.name.as_deref());
        put(tenant, id.tenant.as_deref());
        put(provider, Some(&id.provider));
        // Lists are kept joined: the header is one copy of them, unless group IDs are
        // mapped to names.
        let mut list = |name: &HeaderName, l: &List| match l.header_value() {
            Some(v) => f(name, v),
            None if !l.is_empty() => log::warn!(
                "identity header {name} dropped: value has characters a header cannot carry"
            ),
            None => {}
        };
        match self.group_names.get(&*id.provider) {
            Some(names) if !id.groups.is_empty() => {
                let mapped: List = id
                    .groups
                    .iter()
                    .map(|g| names.get(g).map_or(g, String::as_str))
                    .collect();
                list(groups, &mapped);
            }
            _ => list(groups, &id.groups),
        }
        list(roles, &id.roles);
    }
}

/// Rewrites the `Cookie` header without the gateway's own cookies, so the session never
/// reaches the upstream. Returns the new header value (None = remove the header).
pub fn without_cookies(cookie_header: &str, is_ours: impl Fn(&str) -> bool) -> Option<String> {
    let kept: Vec<&str> = cookie_header
        .split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .filter(|c| {
            let name = c.split_once('=').map_or(*c, |(n, _)| n).trim();
            !is_ours(name)
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> HeaderPlan {
        HeaderPlan::new(&HeaderNames::default()).unwrap()
    }

    #[test]
    fn strips_every_spelling() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for n in [
            "x-auth-user",
            "X_AUTH_USER",
            "x_Auth-Email",
            "X-AUTH-ROLES",
            "x-other",
        ] {
            req.append_header(n.to_string(), "spoof").unwrap();
        }
        assert_eq!(plan().strip(&mut req), 4);
        let left: Vec<_> = req.headers.keys().map(|k| k.as_str().to_string()).collect();
        assert_eq!(left, vec!["x-other"]);
    }

    #[test]
    fn injects_and_skips_bad_values() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        let id = Identity {
            provider: "demo".into(),
            user: "u1".into(),
            email: Some("a@b".into()),
            name: Some("evil\r\nX-Injected: 1".into()),
            groups: List::from(["g1", "g2"]),
            ..Default::default()
        };
        plan().inject(&mut req, &id);
        assert_eq!(req.headers["x-auth-user"], "u1");
        assert_eq!(req.headers["x-auth-groups"], "g1,g2");
        assert!(req.headers.get("x-auth-name").is_none());
        assert!(req.headers.get("x-auth-roles").is_none());
        // Mapped group IDs go upstream by name; unmapped ones as they are.
        let names: GroupNames = [("g1".to_string(), "Admins".to_string())].into();
        let mapped = plan().with_group_names([("demo".to_string(), names)].into());
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        mapped.inject(&mut req, &id);
        assert_eq!(req.headers["x-auth-groups"], "Admins,g2");
    }

    #[test]
    fn prepared_headers_follow_the_plan() {
        let id = Identity {
            provider: "demo".into(),
            user: "u1".into(),
            ..Default::default()
        };
        let a = plan();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        a.inject(&mut req, &id);
        a.inject(&mut req, &id);
        assert_eq!(req.headers["x-auth-user"], "u1");
        // A reloaded configuration that renames the header: the cached set is not reused.
        let names = HeaderNames {
            user: "X-Remote-User".into(),
            ..HeaderNames::default()
        };
        let b = HeaderPlan::new(&names).unwrap();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        b.inject(&mut req, &id);
        assert_eq!(req.headers["x-remote-user"], "u1");
        assert!(req.headers.get("x-auth-user").is_none());
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        a.inject(&mut req, &id);
        assert!(req.headers.get("x-remote-user").is_none());
    }

    #[test]
    fn prepared_headers_are_kept_for_a_bounded_number_of_identities() {
        let a = plan();
        let ids: Vec<Identity> = (0..40_000)
            .map(|i| Identity {
                provider: "demo".into(),
                user: format!("user-{i:06}"),
                ..Default::default()
            })
            .collect();
        for id in &ids {
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            a.inject(&mut req, id);
            assert_eq!(req.headers["x-auth-user"], id.user.as_str());
        }
        crate::identity::Prepared::settle();
        let kept = ids.iter().filter(|i| i.prepared.is_kept()).count();
        // 16 MiB at ~800 bytes each: about 20,000 kept, the rest dropped.
        assert!((1_000..30_000).contains(&kept), "{kept} kept");
        // A dropped set is prepared again on the identity's next request.
        let dropped = ids.iter().find(|i| !i.prepared.is_kept()).unwrap();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        a.inject(&mut req, dropped);
        assert_eq!(req.headers["x-auth-user"], dropped.user.as_str());
        assert!(dropped.prepared.is_kept());
    }

    #[test]
    fn removes_own_cookies() {
        let ours = |n: &str| n == "authgate_session" || n.starts_with("authgate_login_");
        assert_eq!(
            without_cookies("a=1; authgate_session=xyz; b=2", ours).as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(
            without_cookies("authgate_session=x;authgate_login_ab=y", ours),
            None
        );
    }
}
