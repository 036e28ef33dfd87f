//! Reading `headers:`: the identity header names and extra headers to strip.

use super::HeaderNames;
use std::collections::HashSet;

use crate::read::{join, Obj, Reader};

impl Reader<'_> {
    pub(crate) fn headers(&mut self, top: &mut Obj<'_>) -> Option<HeaderNames> {
        let mut o = {
            let v = self.get(top, "headers");
            self.obj("headers", v)
        };
        let mut take = |r: &mut Self, key: &str, default: &str| {
            let v = r.string(&mut o, key).unwrap_or_else(|| default.to_string());
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                r.err(
                    join("headers", key),
                    format!("{v:?} is not a valid header name"),
                );
            }
            v
        };
        let d = HeaderNames::default();
        let h = HeaderNames {
            user: take(self, "user", &d.user),
            email: take(self, "email", &d.email),
            name: take(self, "name", &d.name),
            groups: take(self, "groups", &d.groups),
            roles: take(self, "roles", &d.roles),
            tenant: take(self, "tenant", &d.tenant),
            provider: take(self, "provider", &d.provider),
            strip: self.string_list(&mut o, "strip").unwrap_or_default(),
            claims: self.header_claims(&mut o),
        };
        for n in &h.strip {
            let name = n.strip_suffix('*').unwrap_or(n);
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                self.err(
                    "headers.strip",
                    format!("{n:?} is not a header name (or a prefix ending in *)"),
                );
            }
        }
        self.finish(o);
        let mut seen = HashSet::new();
        for (key, n) in [
            "user", "email", "name", "groups", "roles", "tenant", "provider",
        ]
        .into_iter()
        .zip(h.all())
        {
            if !seen.insert(crate::headers::normalize(n)) {
                self.err("headers", format!("header name {n:?} is used twice"));
            } else if let Some(why) = refused_identity_header(n) {
                self.err(join("headers", key), format!("{n:?} is {why}"));
            }
        }
        for (name, _) in &h.claims {
            if !seen.insert(crate::headers::normalize(name)) {
                self.err(
                    join("headers.claims", name),
                    "is already an identity header (or listed twice)",
                );
            }
        }
        Some(h)
    }

    /// `headers.claims`: header name → claim (or SAML attribute) name.
    fn header_claims(&mut self, o: &mut Obj<'_>) -> Vec<(String, String)> {
        let Some(v) = self.get(o, "claims") else {
            return Vec::new();
        };
        let serde_yaml::Value::Mapping(map) = v else {
            self.err(
                "headers.claims",
                "expected a mapping of header name: claim name",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in map {
            let (Some(name), Some(claim)) = (k.as_str(), v.as_str()) else {
                self.err(
                    "headers.claims",
                    "each entry is a header name and a claim name, both strings",
                );
                continue;
            };
            let path = join("headers.claims", name);
            if let Some(why) = refused_claim_header(name) {
                self.err(&path, why);
            } else if claim.is_empty() || claim.len() > 256 || claim.chars().any(char::is_control) {
                self.err(
                    &path,
                    "the claim name must be 1 to 256 printable characters",
                );
            } else if OBJECT_CLAIMS.contains(&claim) {
                self.err(
                    &path,
                    format!(
                        "{claim:?} is an object: name one of its scalar members' claims instead"
                    ),
                );
            } else {
                out.push((name.to_string(), claim.to_string()));
            }
        }
        out
    }
}

/// Standard claims whose value is an object (OpenID Connect Core 5.1), and Entra's.
const OBJECT_CLAIMS: &[&str] = &["address", "_claim_names", "_claim_sources", "cnf"];

/// Request headers a claim may not be sent as: the request's own framing and credentials.
const STANDARD: &[&str] = &[
    "host",
    "cookie",
    "authorization",
    "proxy-authorization",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "via",
];

/// Why `name` cannot be an identity header: one of the request's own, or a forwarding
/// header the gateway sets. (Other conventions' names, `X-Forwarded-User` say, are fine.)
fn refused_identity_header(name: &str) -> Option<&'static str> {
    let n = crate::headers::normalize(name);
    if crate::headers::forwarding::SET_FORWARDING.contains(&n.as_str()) {
        return Some("a forwarding header the gateway sets from the connection");
    }
    STANDARD
        .contains(&n.as_str())
        .then_some("one of the request's own headers (framing, host or credentials)")
}

/// Why `name` cannot carry a claim (or a token): not a header name, a forwarding header, or
/// one of the request's own.
pub(crate) fn refused_claim_header(name: &str) -> Option<&'static str> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Some("not a valid header name");
    }
    let n = crate::headers::normalize(name);
    if crate::headers::is_forwarding(&n) {
        return Some("a forwarding header: the gateway sets those from the connection");
    }
    if STANDARD.contains(&n.as_str()) || n.starts_with(":") {
        return Some("one of the request's own headers, not a place for a claim");
    }
    None
}
