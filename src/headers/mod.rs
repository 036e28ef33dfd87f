//! Identity headers: strip every client-sent spelling of them, then inject the verified ones.
//!
//! A header counts as "ours" if it equals one of the configured names after lower-casing and
//! mapping `_` to `-`: some upstream servers (CGI, PHP, Django behind WSGI) fold `X_Auth_User`
//! and `X-Auth-User` into the same variable, so both spellings must go.

use http::header::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

mod read;
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

/// Headers that describe the client or the original request: the gateway's to set. Removed
/// from any peer that is not a trusted proxy. Normalized; `*` = prefix.
const FORWARDING: &[&str] = &[
    "forwarded",
    "x-forwarded-*",
    "x-real-ip",
    "x-original-*",
    "x-rewrite-url",
    "x-host",
    "x-http-host",
    "x-proxyuser-ip",
    "client-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-envoy-*",
    "x-scheme",
    "x-url-scheme",
    "front-end-https",
];

/// Whether a normalized name is a forwarding header (`Forwarded`, `X-Forwarded-*`, ...).
pub(crate) fn is_forwarding(normalized: &str) -> bool {
    FORWARDING.iter().any(|f| match f.strip_suffix('*') {
        Some(prefix) => normalized.starts_with(prefix),
        None => normalized == *f,
    })
}

/// What a name in a `NameSet` is (bits): a header only the gateway sets, removed from every
/// request; a forwarding header, removed unless a trusted proxy sent it.
const OWNED: u8 = 1;
const FORWARDS: u8 = 2;

/// Normalized header names and name prefixes, each with its kinds, matched without
/// allocating: one hash lookup and one pass over the prefixes per request header.
#[derive(Debug, Clone, Default)]
struct NameSet {
    exact: HashMap<String, u8, ahash::RandomState>,
    /// (first byte, prefix, kinds): the first byte is compared before the prefix.
    prefixes: Vec<(u8, String, u8)>,
    /// The kinds of an empty prefix (`*`: every name).
    every: u8,
    /// The first two bytes of every name and prefix, hashed into 1,024 bits (every pair for
    /// an empty or one-byte prefix): most of a browser's headers (`host`, `cookie`, `accept`,
    /// `user-agent`, `sec-…`) are told apart by them, without hashing the name or comparing
    /// prefixes.
    heads: [u64; 16],
}

/// The bit of `heads` for a name's first two bytes, folded (`0` for a missing second byte).
fn head_bit(first: u8, second: u8) -> (usize, u64) {
    let h = (usize::from(first) * 31 + usize::from(second)) % 1024;
    (h / 64, 1 << (h % 64))
}

/// `b` as `normalize` reads it.
fn fold(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        b => b.to_ascii_lowercase(),
    }
}

impl NameSet {
    fn add(&mut self, name: &str, kinds: u8) {
        let n = normalize(name);
        match n.as_bytes() {
            [] | [b'*', ..] => self.heads = [u64::MAX; 16],
            [first, b'*', ..] => {
                for second in 0..=u8::MAX {
                    self.set_head(*first, second);
                }
            }
            [first] => self.set_head(*first, 0),
            [first, second, ..] => self.set_head(*first, *second),
        }
        match n.strip_suffix('*') {
            Some("") => self.every |= kinds,
            Some(p) => {
                let first = p.as_bytes()[0];
                match self.prefixes.iter_mut().find(|(_, q, _)| q == p) {
                    Some((_, _, k)) => *k |= kinds,
                    None => self.prefixes.push((first, p.to_string(), kinds)),
                }
            }
            None => *self.exact.entry(n).or_default() |= kinds,
        }
    }

    fn set_head(&mut self, first: u8, second: u8) {
        let (word, bit) = head_bit(first, second);
        self.heads[word] |= bit;
    }

    /// The kinds `name` has (0: none). `name` comes from the wire (pingora lower-cases it);
    /// `_` is read as `-`.
    fn kinds(&self, name: &str) -> u8 {
        let Some(&b) = name.as_bytes().first() else {
            return self.every | self.exact.get("").copied().unwrap_or(0);
        };
        let b = fold(b);
        let (word, bit) = head_bit(b, name.as_bytes().get(1).map_or(0, |&c| fold(c)));
        if self.heads[word] & bit == 0 {
            return 0;
        }
        let folded;
        let name = if name.bytes().any(|b| b == b'_' || b.is_ascii_uppercase()) {
            folded = normalize(name);
            folded.as_str()
        } else {
            name
        };
        let mut k = self.every | self.exact.get(name).copied().unwrap_or(0);
        for (first, p, kinds) in &self.prefixes {
            if *first == b && name.starts_with(p.as_str()) {
                k |= kinds;
            }
        }
        k
    }
}

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

/// What the forwarding headers say about the request.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// The TCP peer.
    pub peer: Option<std::net::IpAddr>,
    /// The peer is a trusted proxy: its forwarding headers are kept and appended to.
    pub trusted: bool,
    /// The public URL's scheme.
    pub proto: &'a HeaderValue,
    /// The canonical `Host`.
    pub authority: Option<&'a str>,
    /// The port the client named; `None`: `default_port` (the public URL's).
    pub port: Option<u16>,
    pub default_port: &'a HeaderValue,
}

impl Forwarding<'_> {
    fn port(&self) -> HeaderValue {
        match self.port {
            Some(p) => port_value(p),
            None => self.default_port.clone(),
        }
    }
}

/// `ip` as a header value. The last one made on this thread is kept: a connection's requests
/// come from one peer, and a clone shares the bytes (no formatting, no allocation).
fn peer_value(ip: std::net::IpAddr) -> Option<HeaderValue> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(std::net::IpAddr, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((seen, v)) if *seen == ip => Some(v.clone()),
            _ => {
                let v = HeaderValue::from_str(&ip.to_string()).ok()?;
                *last = Some((ip, v.clone()));
                Some(v)
            }
        }
    })
}

/// `port` as a header value, the last one made on this thread kept (as `peer_value`).
pub fn port_value(port: u16) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u16, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((seen, v)) if *seen == port => v.clone(),
            _ => {
                let v = HeaderValue::from(port);
                *last = Some((port, v.clone()));
                v
            }
        }
    })
}

/// A header value that takes the string's buffer instead of copying it.
fn owned_value(s: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(Bytes::from(s)).ok()
}

/// The forwarding headers the gateway sets (normalized).
pub(crate) const SET_FORWARDING: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
];

const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
const PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// Sets the forwarding headers the upstream receives: the gateway's own, appended to (or,
/// for `-Proto`/`-Host`/`-Port`, replaced by) a trusted proxy's.
pub fn set_forwarding(upstream: &mut RequestHeader, f: Forwarding) -> pingora::Result<()> {
    if !f.trusted {
        // `strip` removed every forwarding header an untrusted peer sent: the gateway's own
        // go out as one block of wire lines, made once for a connection's requests.
        return upstream.append_encoded(forwarding_block(f));
    }
    // A trusted proxy: its own are kept, `-For` appended to, the others set when absent.
    if let Some(ip) = f.peer {
        let xff = match upstream.headers.get(&XFF).and_then(|v| v.to_str().ok()) {
            Some(prev) => owned_value(format!("{prev}, {ip}")),
            None => peer_value(ip),
        };
        if let Some(v) = xff {
            upstream.insert_parsed_header(XFF, v)?;
        }
    }
    if !upstream.headers.contains_key(&PROTO) {
        upstream.insert_parsed_header(PROTO, f.proto.clone())?;
    }
    if !upstream.headers.contains_key(&HOST) {
        if let Some(a) = f.authority.map(str::to_string).and_then(owned_value) {
            upstream.insert_parsed_header(HOST, a)?;
        }
    }
    if !upstream.headers.contains_key(&PORT) {
        upstream.insert_parsed_header(PORT, f.port())?;
    }
    Ok(())
}

/// The forwarding headers for a peer that is not a trusted proxy, as wire lines. The last
/// block made on this thread is kept: a connection's requests share peer, scheme, host and
/// port, and a clone shares the bytes.
fn forwarding_block(f: Forwarding) -> pingora::http::EncodedHeaders {
    /// Peer, scheme, host, the port named, the default port.
    type Key = (
        Option<std::net::IpAddr>,
        HeaderValue,
        Option<String>,
        Option<u16>,
        HeaderValue,
    );
    thread_local! {
        static LAST: std::cell::RefCell<Option<(Key, pingora::http::EncodedHeaders)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some(((peer, proto, authority, port, default_port), block)) = &*last {
            if *peer == f.peer
                && proto == f.proto
                && authority.as_deref() == f.authority
                && *port == f.port
                && default_port == f.default_port
            {
                return block.clone();
            }
        }
        let xff = f.peer.and_then(peer_value);
        let host = f.authority.and_then(|a| HeaderValue::from_str(a).ok());
        let port = f.port();
        let lines = [
            (&XFF, xff.as_ref()),
            (&PROTO, Some(f.proto)),
            (&HOST, host.as_ref()),
            (&PORT, Some(&port)),
        ];
        let block = pingora::http::EncodedHeaders::encode(
            lines.iter().filter_map(|(n, v)| Some((*n, (*v)?))),
        );
        let key = (
            f.peer,
            f.proto.clone(),
            f.authority.map(str::to_string),
            f.port,
            f.default_port.clone(),
        );
        *last = Some((key, block.clone()));
        block
    })
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

    #[test]
    fn a_name_has_every_kind_it_was_given() {
        let mut set = NameSet::default();
        set.add("X-Forwarded-User", OWNED);
        set.add("x-forwarded-*", FORWARDS);
        set.add("X_Corp_*", OWNED);
        set.add("x-corp-*", FORWARDS);
        assert_eq!(set.kinds("x-forwarded-user"), OWNED | FORWARDS);
        assert_eq!(set.kinds("x_forwarded_user"), OWNED | FORWARDS);
        assert_eq!(set.kinds("x-forwarded-for"), FORWARDS);
        assert_eq!(set.kinds("X_CORP_ROLE"), OWNED | FORWARDS);
        assert_eq!(set.kinds("x-corp"), 0, "a prefix is not its own name");
        assert_eq!(set.kinds("accept"), 0);
        assert_eq!(set.kinds("y-forwarded-user"), 0);
        // One-byte names and prefixes: every second byte (or none) may follow.
        set.add("Q*", OWNED);
        set.add("z", FORWARDS);
        for (name, kinds) in [("q", OWNED), ("q_x", OWNED), ("qz", OWNED), ("z", FORWARDS)] {
            assert_eq!(set.kinds(name), kinds, "{name}");
        }
        assert_eq!(set.kinds("za"), 0);
        // `*` alone: every name, whatever its first byte.
        set.add("*", OWNED);
        assert_eq!(set.kinds("accept"), OWNED);
        assert_eq!(set.kinds("x-forwarded-for"), OWNED | FORWARDS);
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
    /// The forwarding block kept per thread is made again whenever anything in it differs:
    /// one connection's requests after another's never carry the other's peer, host or port.
    #[test]
    fn the_kept_forwarding_block_follows_every_ingredient() {
        use pingora::protocols::http::v1::client::http_req_header_to_wire;
        let https = HeaderValue::from_static("https");
        let http = HeaderValue::from_static("http");
        let (p443, p8443) = (port_value(443), port_value(8443));
        let a = Forwarding {
            peer: Some("192.0.2.7".parse().unwrap()),
            trusted: false,
            proto: &https,
            authority: Some("a.example"),
            port: None,
            default_port: &p443,
        };
        let cases = [
            (a, "192.0.2.7", "https", "a.example", "443"),
            (
                Forwarding {
                    peer: Some("192.0.2.8".parse().unwrap()),
                    ..a
                },
                "192.0.2.8",
                "https",
                "a.example",
                "443",
            ),
            (
                Forwarding { proto: &http, ..a },
                "192.0.2.7",
                "http",
                "a.example",
                "443",
            ),
            (
                Forwarding {
                    authority: Some("b.example:8080"),
                    port: Some(8080),
                    ..a
                },
                "192.0.2.7",
                "https",
                "b.example:8080",
                "8080",
            ),
            (
                Forwarding {
                    default_port: &p8443,
                    ..a
                },
                "192.0.2.7",
                "https",
                "a.example",
                "8443",
            ),
            (a, "192.0.2.7", "https", "a.example", "443"),
        ];
        for (f, peer, proto, host, port) in cases {
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            set_forwarding(&mut req, f).unwrap();
            let wire = String::from_utf8(http_req_header_to_wire(&req).unwrap().to_vec()).unwrap();
            for line in [
                format!("x-forwarded-for: {peer}\r\n"),
                format!("x-forwarded-proto: {proto}\r\n"),
                format!("x-forwarded-host: {host}\r\n"),
                format!("x-forwarded-port: {port}\r\n"),
            ] {
                assert_eq!(wire.matches(&line).count(), 1, "{line:?} in {wire:?}");
            }
        }
    }

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
