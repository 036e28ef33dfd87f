//! Identity headers: strip every client-sent spelling of them, then inject the verified ones.
//!
//! A header counts as "ours" if it equals one of the configured names after lower-casing and
//! mapping `_` to `-`: some upstream servers (CGI, PHP, Django behind WSGI) fold `X_Auth_User`
//! and `X-Auth-User` into the same variable, so both spellings must go.

use http::header::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

use std::collections::HashMap;
use std::sync::Arc;

mod forwarding;
mod names;
mod read;
pub(crate) use forwarding::is_forwarding;
use forwarding::FORWARDING;
pub use forwarding::{port_value, set_forwarding, Forwarding};
use names::{NameSet, FORWARDS, OWNED};
pub(crate) use read::refused_claim_header;

use crate::identity::{Identity, List, PreparedSet};
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

/// Identity headers of other conventions (auth proxies, app platforms, Apache modules): an
/// app also wired for one of them must not believe a client. Normalized; `*` = prefix.
const FOREIGN_IDENTITY: &[&str] = &[
    "remote-user",
    "x-remote-*",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-auth-request-*",
    "x-ms-client-principal*",
    "x-ms-token-*",
    "x-user",
    "x-email",
    "x-user-id",
    "x-username",
    "x-webauth-*",
    "x-authenticated-*",
    "x-pomerium-*",
    "x-goog-authenticated-*",
    "x-amzn-oidc-*",
    "cf-access-*",
    "oidc-claim-*",
    "oidc-access-token*",
    "oidc-id-token*",
    "mellon-*",
    "x-id-token",
    "x-access-token",
    "x-userinfo",
    "x-ssl-client-*",
    "ssl-client-*",
    "x-client-cert*",
    "x-client-verify",
];

/// The compiled header plan: normalized names to strip and exact names to inject.
#[derive(Debug, Clone)]
pub struct HeaderPlan {
    /// Tells identities' prepared headers of this plan from another's (after a reload).
    id: u64,
    /// The injected names, other conventions' identity headers and `headers.strip`
    /// (`OWNED`); forwarding headers, removed unless the peer is a trusted proxy (`FORWARDS`).
    stripped: NameSet,
    /// Parsed once: an insert then neither parses nor allocates a name.
    names: [HeaderName; 7],
    /// Provider name → group ID → readable name (the providers' `group_names`).
    group_names: HashMap<String, GroupNames>,
    /// Provisioned attributes sent as headers (`scim.headers`): (attribute, name).
    attributes: Vec<(&'static str, HeaderName)>,
    /// Claims sent as headers (`headers.claims`): (claim, name).
    claims: Vec<(String, HeaderName)>,
}

impl HeaderPlan {
    pub fn new(h: &HeaderNames) -> Result<Self, http::header::InvalidHeaderName> {
        let mk = |s: &str| HeaderName::from_bytes(s.as_bytes());
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(Self {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            stripped: {
                let mut set = NameSet::default();
                let owned = h.all().into_iter().chain(FOREIGN_IDENTITY.iter().copied());
                let owned = owned
                    .chain(h.strip.iter().map(String::as_str))
                    .chain(h.claims.iter().map(|(name, _)| name.as_str()));
                for n in owned {
                    set.add(n, OWNED);
                }
                for n in FORWARDING {
                    set.add(n, FORWARDS);
                }
                set
            },
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
            attributes: Vec::new(),
            claims: h
                .claims
                .iter()
                .filter_map(|(name, claim)| {
                    let h = HeaderName::from_bytes(name.as_bytes()).ok()?;
                    Some((claim.clone(), h))
                })
                .collect(),
        })
    }

    /// Provisioned attributes go upstream under these names (and no client may send them).
    /// Each pair is the attribute's key (as `Identity::attributes` names it) and the header.
    pub fn with_attributes<'a>(
        mut self,
        attrs: impl IntoIterator<Item = (&'static str, &'a String)>,
    ) -> Self {
        for (key, name) in attrs {
            if let Ok(h) = HeaderName::from_bytes(name.as_bytes()) {
                self.stripped.add(name, OWNED);
                self.attributes.push((key, h));
            }
        }
        self
    }

    /// More names only the gateway sets (the signed assertion's header, ...).
    pub fn with_owned<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        for n in names {
            self.stripped.add(n, OWNED);
        }
        self
    }

    /// Upstreams receive these names instead of the group IDs they map.
    pub fn with_group_names(mut self, names: HashMap<String, GroupNames>) -> Self {
        self.group_names = names.into_iter().filter(|(_, m)| !m.is_empty()).collect();
        self
    }

    /// Removes every inbound header the gateway owns, in any spelling, and (when the peer is
    /// not a trusted proxy) every forwarding header. Returns how many identity header names
    /// were removed (for the log).
    pub fn strip(&self, req: &mut RequestHeader, trusted_peer: bool) -> usize {
        let mut identity = 0;
        let doomed: Vec<HeaderName> = req
            .headers
            .keys()
            .filter(|k| {
                let kinds = self.stripped.kinds(k.as_str());
                if kinds & OWNED != 0 {
                    identity += 1;
                    true
                } else {
                    !trusted_peer && kinds & FORWARDS != 0
                }
            })
            .cloned()
            .collect();
        for name in &doomed {
            req.remove_header(name);
        }
        identity
    }

    /// Sets the identity headers on a request to the upstream. They are built once per
    /// identity (a session's identity is shared by all its requests) as HTTP/1 wire lines and
    /// appended to the head as one block (`strip` removed every name they use from the
    /// request, and the configuration refuses names anything else sets). An identity only
    /// this request holds (a bearer token's, verified for it) gets them built and not kept:
    /// kept, they would fill the prepared sets' cache with headers nobody asks again.
    pub fn inject(
        &self,
        req: &mut RequestHeader,
        id: &Arc<Identity>,
    ) -> pingora::Result<Arc<PreparedSet>> {
        let prepared = if Arc::strong_count(id) > 1 {
            self.prepared(id)
        } else {
            Arc::new(PreparedSet {
                plan: self.id,
                headers: self.headers_for(id),
                signed: arc_swap::ArcSwapOption::const_empty(),
            })
        };
        if !prepared.headers.is_empty() {
            req.append_encoded(prepared.headers.clone())?;
        }
        Ok(prepared)
    }

    /// The identity's headers under this plan, built on first use (see `Prepared`).
    pub fn prepared(&self, id: &Identity) -> Arc<PreparedSet> {
        id.prepared.get_or_build(self.id, || self.headers_for(id))
    }

    /// The identity's headers under this plan, as wire lines.
    fn headers_for(&self, id: &Identity) -> crate::identity::PreparedHeaders {
        let mut out: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(8);
        self.each(id, |name, value| out.push((name.clone(), value)));
        crate::identity::PreparedHeaders::encode(out.iter().map(|(n, v)| (n, v)))
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
        for (attr, name) in &self.attributes {
            if let Some((_, v)) = id.more.attributes.iter().find(|(a, _)| a == attr) {
                put(name, Some(v));
            }
        }
        for (claim, name) in &self.claims {
            if let Some((_, v)) = id.more.claims.iter().find(|(c, _)| c == claim) {
                put(name, Some(v));
            }
        }
        // Lists are kept joined: the header is one copy of them, unless group IDs are
        // mapped to names.
        let mut list = |name: &HeaderName, l: &List| match l.header_value() {
            Some(v) => f(name, v),
            None if !l.is_empty() => log::warn!(
                "identity header {name} dropped: value has characters a header cannot carry"
            ),
            None => {}
        };
        list(groups, &self.groups_seen(id));
        list(roles, &id.roles);
    }

    /// The groups as upstreams see them: named at sign-in from the SCIM directory (the static
    /// names included), else mapped through the provider's `group_names`, else the IDs.
    pub fn groups_seen<'a>(&self, id: &'a Identity) -> std::borrow::Cow<'a, List> {
        if let Some(named) = &id.more.group_names {
            return std::borrow::Cow::Borrowed(named);
        }
        match self.group_names.get(&*id.provider) {
            Some(names) if !id.groups.is_empty() => std::borrow::Cow::Owned(
                id.groups
                    .iter()
                    .map(|g| match names.get(&*g) {
                        Some(name) => std::borrow::Cow::Borrowed(name.as_str()),
                        None => g,
                    })
                    .collect(),
            ),
            _ => std::borrow::Cow::Borrowed(&id.groups),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderNames {
    pub user: String,
    pub email: String,
    pub name: String,
    pub groups: String,
    pub roles: String,
    pub tenant: String,
    pub provider: String,
    /// More client headers to remove (`headers.strip`): exact names, or prefixes ending `*`.
    pub strip: Vec<String>,
    /// Claims (ID token) or attributes (SAML) sent as headers (`headers.claims`):
    /// (header name, claim name).
    pub claims: Vec<(String, String)>,
}

/// The documented defaults: `X-Auth-User`, `X-Auth-Email`, ...
impl Default for HeaderNames {
    fn default() -> Self {
        HeaderNames {
            user: "X-Auth-User".into(),
            email: "X-Auth-Email".into(),
            name: "X-Auth-Name".into(),
            groups: "X-Auth-Groups".into(),
            roles: "X-Auth-Roles".into(),
            tenant: "X-Auth-Tenant".into(),
            provider: "X-Auth-Provider".into(),
            strip: Vec::new(),
            claims: Vec::new(),
        }
    }
}

impl HeaderNames {
    pub fn all(&self) -> [&str; 7] {
        [
            &self.user,
            &self.email,
            &self.name,
            &self.groups,
            &self.roles,
            &self.tenant,
            &self.provider,
        ]
    }
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
        assert_eq!(plan().strip(&mut req, false), 4);
        let left: Vec<_> = req.headers.keys().map(|k| k.as_str().to_string()).collect();
        assert_eq!(left, vec!["x-other"]);
    }

    #[test]
    fn strips_other_conventions_and_forwarding_headers() {
        let names = HeaderNames {
            strip: vec!["X-App-Role".into(), "X-Corp-*".into()],
            ..HeaderNames::default()
        };
        let plan = HeaderPlan::new(&names).unwrap();
        let identity = [
            "remote-user",
            "x-remote-user",
            "X_Forwarded_User",
            "x-forwarded-email",
            "x-forwarded-groups",
            "x-forwarded-preferred-username",
            "x-auth-request-user",
            "x-auth-request-email",
            "x-ms-client-principal",
            "x-ms-client-principal-name",
            "x-ms-client-principal-id",
            "oidc_claim_email",
            "x-app-role",
            "x-corp-user",
        ];
        let forwarding = [
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-real-ip",
            "x-original-url",
            "x-original-host",
            "x-rewrite-url",
            "true-client-ip",
        ];
        let build = || {
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            for n in identity
                .iter()
                .chain(forwarding.iter())
                .chain(["accept", "x-forwarded"].iter())
            {
                req.append_header(n.to_string(), "spoof").unwrap();
            }
            req
        };
        let mut req = build();
        assert_eq!(plan.strip(&mut req, false), identity.len());
        let mut left: Vec<_> = req.headers.keys().map(|k| k.as_str().to_string()).collect();
        left.sort();
        assert_eq!(left, vec!["accept", "x-forwarded"]);
        // From a trusted proxy the forwarding headers stay; identity headers never do.
        let mut req = build();
        assert_eq!(plan.strip(&mut req, true), identity.len());
        for n in forwarding {
            assert!(req.headers.contains_key(n), "{n}");
        }
    }

    /// The vendored pingora-core (vendor/pingora-core/PATCHES.md): the upstream request head
    /// is written into a buffer of its own size, with a case map or without.
    #[test]
    fn the_upstream_head_buffer_is_sized_to_the_head() {
        use pingora::protocols::http::v1::client::http_req_header_to_wire;
        for keep_case in [true, false] {
            let mut req = RequestHeader::build("GET", b"/a/b?c=d", None).unwrap();
            if !keep_case {
                req.remove_case();
            }
            req.insert_header("Host", "example.com").unwrap();
            let groups = HeaderName::from_static("x-auth-groups");
            req.insert_parsed_header(groups, HeaderValue::from_str(&"g".repeat(2000)).unwrap())
                .unwrap();
            req.append_header("X-Many", "1").unwrap();
            req.append_header("X-Many", "2").unwrap();
            let wire = http_req_header_to_wire(&req).unwrap();
            assert!(wire.ends_with(b"\r\n\r\n") && wire.len() > 2000);
            assert_eq!(wire.capacity(), wire.len(), "no growth, no slack");
        }
    }

    /// The vendored pingora-http's parsed-name inserts (vendor/PATCHES.md): with the case
    /// map they keep both maps in step (the wire form zips them), without it names go out in
    /// lower case; an insert replaces every earlier value in any spelling.
    #[test]
    fn parsed_inserts_with_and_without_the_case_map() {
        let wire = |req: &RequestHeader| {
            let mut buf = Vec::new();
            req.header_to_h1_wire(&mut buf);
            String::from_utf8(buf).unwrap()
        };
        let name = HeaderName::from_static("x-auth-user");
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("Accept", "*/*").unwrap();
        req.append_header("X-AUTH-USER", "spoof").unwrap();
        req.insert_parsed_header(name.clone(), HeaderValue::from_static("u1"))
            .unwrap();
        req.append_parsed_header(http::header::VIA, HeaderValue::from_static("1.1 gw"))
            .unwrap();
        assert_eq!(
            wire(&req),
            "Accept: */*\r\nx-auth-user: u1\r\nvia: 1.1 gw\r\n"
        );
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-Custom-Thing", "a").unwrap();
        req.remove_case();
        req.insert_parsed_header(name, HeaderValue::from_static("u2"))
            .unwrap();
        assert_eq!(wire(&req), "x-custom-thing: a\r\nx-auth-user: u2\r\n");
    }

    /// What an upstream reads: the head as written. A client's spoofed identity and
    /// forwarding headers are gone, and the gateway's are there exactly once each, as lines
    /// appended to the head (HTTP/1) or as map entries (HTTP/2, after materializing).
    #[test]
    fn the_upstream_head_carries_each_gateway_header_once() {
        use pingora::protocols::http::v1::client::http_req_header_to_wire;
        let id = Arc::new(Identity {
            provider: "demo".into(),
            user: "u1".into(),
            name: Some("evil\r\nX-Injected: 1".into()),
            groups: List::from(["g1", "g2"]),
            ..Default::default()
        });
        let held = id.clone();
        let (proto, default_port) = (HeaderValue::from_static("https"), port_value(443));
        let forwarding = |trusted| Forwarding {
            peer: Some("192.0.2.7".parse().unwrap()),
            trusted,
            proto: &proto,
            authority: Some("app.example"),
            port: None,
            default_port: &default_port,
        };
        for trusted in [false, true] {
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            req.remove_case();
            for (n, v) in [
                ("Host", "app.example"),
                ("X-Auth-User", "admin"),
                ("x_auth_groups", "Admins"),
                ("X-Forwarded-For", "10.9.9.9"),
                ("X-Forwarded-Host", "evil.example"),
            ] {
                req.append_header(n.to_string(), v).unwrap();
            }
            plan().strip(&mut req, trusted);
            plan().inject(&mut req, &id).unwrap();
            set_forwarding(&mut req, forwarding(trusted)).unwrap();
            let wire = http_req_header_to_wire(&req).unwrap();
            let wire = String::from_utf8(wire.to_vec()).unwrap();
            let lines: Vec<&str> = wire.split("\r\n").collect();
            let count = |p: &str| {
                lines
                    .iter()
                    .filter(|l| l.to_ascii_lowercase().starts_with(p))
                    .count()
            };
            for (prefix, n) in [
                ("x-auth-user: u1", 1),
                ("x-auth-user", 1),
                ("x-auth-groups: g1,g2", 1),
                ("x-auth-groups", 1),
                ("x-auth-provider: demo", 1),
                ("x-auth-name", 0),
                ("x-injected", 0),
                ("x-forwarded-for", 1),
                ("x-forwarded-host", 1),
                ("x-forwarded-proto: https", 1),
                ("x-forwarded-port: 443", 1),
                ("host: app.example", 1),
            ] {
                assert_eq!(count(prefix), n, "{prefix} (trusted {trusted}):\n{wire}");
            }
            let xff = if trusted {
                "10.9.9.9, 192.0.2.7"
            } else {
                "192.0.2.7"
            };
            assert_eq!(count(&format!("x-forwarded-for: {xff}")), 1, "{wire}");
            let host = if trusted {
                "evil.example"
            } else {
                "app.example"
            };
            assert_eq!(count(&format!("x-forwarded-host: {host}")), 1, "{wire}");
            assert!(wire.ends_with("\r\n\r\n") && !wire[..wire.len() - 4].contains("\r\n\r\n"));
            // HTTP/2 has no head to append to: the same headers, once each, in the map.
            req.materialize_encoded().unwrap();
            assert_eq!(req.encoded().count(), 0);
            assert_eq!(req.headers.get_all("x-auth-user").iter().count(), 1);
            assert_eq!(req.headers["x-auth-groups"], "g1,g2");
            assert_eq!(req.headers.get_all("x-forwarded-for").iter().count(), 1);
            assert_eq!(req.headers["x-forwarded-for"], xff);
            assert_eq!(req.headers["x-forwarded-port"], "443");
        }
        drop(held);
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
        let id = Arc::new(id);
        plan().inject(&mut req, &id).unwrap();
        req.materialize_encoded().unwrap();
        assert_eq!(req.headers["x-auth-user"], "u1");
        assert_eq!(req.headers["x-auth-groups"], "g1,g2");
        assert!(req.headers.get("x-auth-name").is_none());
        assert!(req.headers.get("x-auth-roles").is_none());
        // Mapped group IDs go upstream by name; unmapped ones as they are.
        let names: GroupNames = [("g1".to_string(), "Admins".to_string())].into();
        let mapped = plan().with_group_names([("demo".to_string(), names)].into());
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        mapped.inject(&mut req, &id).unwrap();
        req.materialize_encoded().unwrap();
        assert_eq!(req.headers["x-auth-groups"], "Admins,g2");
    }

    #[test]
    fn prepared_headers_follow_the_plan() {
        let id = Arc::new(Identity {
            provider: "demo".into(),
            user: "u1".into(),
            ..Default::default()
        });
        // Held elsewhere too (a session store's cache): its headers are kept.
        let _cached = id.clone();
        let a = plan();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        a.inject(&mut req, &id).unwrap();
        req.materialize_encoded().unwrap();
        assert_eq!(req.headers["x-auth-user"], "u1");
        // A reloaded configuration that renames the header: the cached set is not reused.
        let names = HeaderNames {
            user: "X-Remote-User".into(),
            ..HeaderNames::default()
        };
        let b = HeaderPlan::new(&names).unwrap();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        b.inject(&mut req, &id).unwrap();
        req.materialize_encoded().unwrap();
        assert_eq!(req.headers["x-remote-user"], "u1");
        assert!(req.headers.get("x-auth-user").is_none());
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        a.inject(&mut req, &id).unwrap();
        req.materialize_encoded().unwrap();
        assert!(req.headers.get("x-remote-user").is_none());
        assert!(id.prepared.is_kept());
        // An identity only this request holds (a bearer token's) is served, not kept.
        let once = Arc::new(Identity {
            provider: "demo".into(),
            user: "u2".into(),
            ..Default::default()
        });
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        a.inject(&mut req, &once).unwrap();
        req.materialize_encoded().unwrap();
        assert_eq!(req.headers["x-auth-user"], "u2");
        assert!(!once.prepared.is_kept());
    }

    #[test]
    fn prepared_headers_are_kept_for_a_bounded_number_of_identities() {
        let a = plan();
        let ids: Vec<Arc<Identity>> = (0..40_000)
            .map(|i| {
                Arc::new(Identity {
                    provider: "demo".into(),
                    user: format!("user-{i:06}").into(),
                    ..Default::default()
                })
            })
            .collect();
        // Each held by a session store's cache as well.
        let _cached = ids.clone();
        for id in &ids {
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            a.inject(&mut req, id).unwrap();
            req.materialize_encoded().unwrap();
            assert_eq!(req.headers["x-auth-user"], &*id.user);
        }
        crate::identity::Prepared::settle();
        let kept = ids.iter().filter(|i| i.prepared.is_kept()).count();
        // 16 MiB at ~800 bytes each: about 20,000 kept, the rest dropped.
        assert!((1_000..30_000).contains(&kept), "{kept} kept");
        // A dropped set is prepared again on the identity's next request.
        let dropped = ids.iter().find(|i| !i.prepared.is_kept()).unwrap();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        a.inject(&mut req, dropped).unwrap();
        req.materialize_encoded().unwrap();
        assert_eq!(req.headers["x-auth-user"], &*dropped.user);
        assert!(dropped.prepared.is_kept());
    }
}
