//! Reading `session:`, every error with its path.

use std::time::Duration;

use url::Url;

use super::{SessionConfig, StoreKind};
use crate::read::{Obj, Reader};

impl Reader<'_> {
    pub(crate) fn session(
        &mut self,
        top: &mut Obj<'_>,
        public_url: Option<&Url>,
    ) -> Option<SessionConfig> {
        let mut o = {
            let v = self.get(top, "session");
            self.obj("session", v)
        };
        if o.map.is_none() {
            self.err("session", "is required (at least session.secret)");
        }
        let cookie_name = self
            .string(&mut o, "cookie_name")
            .unwrap_or_else(|| "authgate_session".into());
        if !cookie_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            || cookie_name.is_empty()
        {
            self.err(
                "session.cookie_name",
                "use letters, digits, '-' and '_' only",
            );
        }
        let lifetime = self
            .duration(&mut o, "lifetime")
            .unwrap_or(Duration::from_secs(8 * 3600));
        let idle_timeout = self
            .duration(&mut o, "idle_timeout")
            .unwrap_or(Duration::from_secs(3600));
        if lifetime.as_secs() < 60 {
            self.err("session.lifetime", "must be at least 60s");
        }
        if idle_timeout.as_secs() < 60 {
            self.err("session.idle_timeout", "must be at least 60s");
        }
        let https = public_url.is_some_and(|u| u.scheme() == "https");
        let secure = self.bool(&mut o, "secure").unwrap_or(https);
        if secure && public_url.is_some() && !https {
            self.err(
                "session.secure",
                "is true but public_url is http: browsers would drop the cookie",
            );
        }
        let secret = o
            .map
            .is_some()
            .then(|| self.secret(&mut o, "secret"))
            .flatten();
        if let Some(s) = &secret {
            if s.0.len() < 32 {
                self.err(
                    "session.secret",
                    format!(
                        "must be at least 32 bytes (got {}); generate one with: openssl rand -base64 48",
                        s.0.len()
                    ),
                );
            }
        }
        let store = match self.string(&mut o, "store").as_deref() {
            None | Some("cookie") => Some(StoreKind::Cookie),
            Some("memory") => Some(StoreKind::Memory),
            Some(other) => {
                self.err(
                    "session.store",
                    format!("unknown store {other:?} (supported: cookie, memory)"),
                );
                None
            }
        };
        let max_sessions = self.uint(&mut o, "max_sessions").unwrap_or(1_000_000);
        // Over https the session cookie is `__Host-` prefixed: a sibling subdomain cannot
        // plant or overwrite it (no Domain, Path=/, Secure are then enforced by browsers).
        let host_prefix = self.bool(&mut o, "host_prefix").unwrap_or(true);
        let cookie_name = if secure && host_prefix && !cookie_name.starts_with("__") {
            format!("__Host-{cookie_name}")
        } else {
            cookie_name
        };
        self.finish(o);
        Some(SessionConfig {
            cookie_name,
            lifetime,
            idle_timeout,
            secure,
            secret: secret.filter(|s| s.0.len() >= 32)?,
            store: store?,
            max_sessions,
        })
    }
}
