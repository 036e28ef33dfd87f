//! Reading `scim:`, every error with its path.

use std::time::Duration;

use super::{Attribute, MatchAttribute, OnFailure, ScimConfig, WebhookConfig};
use crate::read::{join, Obj, Reader};

impl Reader<'_> {
    /// `scim:` (absent: provisioning is off). `providers` are the configured provider names.
    pub(crate) fn scim(&mut self, top: &mut Obj<'_>, providers: &[String]) -> Option<ScimConfig> {
        let v = self.get(top, "scim");
        v?;
        let mut o = self.obj("scim", v);
        o.map?;
        let token = self.secret(&mut o, "token");
        if token.as_ref().is_some_and(|t| t.0.len() < 24) {
            self.err(
                "scim.token",
                "must be at least 24 bytes (generate one with: openssl rand -base64 32)",
            );
        }
        let match_attribute = match self.string(&mut o, "match").as_deref() {
            None | Some("externalId") => MatchAttribute::ExternalId,
            Some("userName") => MatchAttribute::UserName,
            Some(other) => {
                self.err(
                    "scim.match",
                    format!("{other:?} is not externalId or userName"),
                );
                MatchAttribute::ExternalId
            }
        };
        let scope = self.string_list(&mut o, "providers").unwrap_or_default();
        for p in &scope {
            if !providers.contains(p) {
                self.err(
                    "scim.providers",
                    format!(
                        "{p:?} is not a configured provider (have: {})",
                        providers.join(", ")
                    ),
                );
            }
        }
        let headers = self.scim_headers(&mut o);
        let webhook = self.webhook(&mut o);
        let max_body = self.uint(&mut o, "max_body_bytes").unwrap_or(512 * 1024);
        if !(1024..=16 << 20).contains(&max_body) {
            self.err("scim.max_body_bytes", "must be between 1024 and 16777216");
        }
        self.finish(o);
        Some(ScimConfig {
            token: token.filter(|t| t.0.len() >= 24)?,
            match_attribute,
            providers: scope,
            headers,
            webhook,
            max_body: max_body as usize,
        })
    }

    fn scim_headers(&mut self, o: &mut Obj<'_>) -> Vec<(Attribute, String)> {
        let v = self.get(o, "headers");
        let mut h = self.obj("scim.headers", v);
        let mut out = Vec::new();
        for a in Attribute::ALL {
            if let Some(name) = self.string(&mut h, a.key()) {
                let valid = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !valid {
                    self.err(
                        join("scim.headers", a.key()),
                        format!("{name:?} is not a header name"),
                    );
                    continue;
                }
                if out
                    .iter()
                    .any(|(_, n): &(Attribute, String)| n.eq_ignore_ascii_case(&name))
                {
                    self.err(
                        join("scim.headers", a.key()),
                        format!("{name} is used twice"),
                    );
                    continue;
                }
                out.push((a, name));
            }
        }
        self.finish(h);
        out
    }

    fn webhook(&mut self, o: &mut Obj<'_>) -> Option<WebhookConfig> {
        let v = self.get(o, "webhook");
        v?;
        let mut w = self.obj("scim.webhook", v);
        w.map?;
        let url = self
            .required_string(&mut w, "url")
            .and_then(|s| match url::Url::parse(&s) {
                Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Some(u),
                _ => {
                    self.err("scim.webhook.url", format!("{s:?} is not an http(s) URL"));
                    None
                }
            });
        let has_token = w
            .map
            .is_some_and(|m| m.contains_key("token") || m.contains_key("token_file"));
        let token = if has_token {
            self.secret(&mut w, "token")
        } else {
            None
        };
        let timeout = self
            .duration(&mut w, "timeout")
            .unwrap_or(Duration::from_secs(2));
        if timeout.is_zero() || timeout > Duration::from_secs(30) {
            self.err(
                "scim.webhook.timeout",
                "must be more than 0s and at most 30s",
            );
        }
        let on_failure = match self.string(&mut w, "on_failure").as_deref() {
            None | Some("deny") => OnFailure::Deny,
            Some("allow") => OnFailure::Allow,
            Some(other) => {
                self.err(
                    "scim.webhook.on_failure",
                    format!("{other:?} is not deny or allow"),
                );
                OnFailure::Deny
            }
        };
        self.finish(w);
        Some(WebhookConfig {
            url: url?,
            token,
            timeout,
            on_failure,
        })
    }
}
