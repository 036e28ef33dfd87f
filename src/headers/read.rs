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
        for n in h.all() {
            if !seen.insert(crate::headers::normalize(n)) {
                self.err("headers", format!("header name {n:?} is used twice"));
            }
        }
        Some(h)
    }
}
