//! Reading `scim:`, every error with its path.

use std::time::Duration;

use super::settings::{Attribute, MatchAttribute, OnFailure, ScimConfig, WebhookConfig};
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

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::scim::{Attribute, MatchAttribute, OnFailure};

    use crate::read::testing::BASE;

    fn env(name: &str) -> Option<String> {
        (name == "SCIM_TOKEN").then(|| "scim-token-from-the-environment-0123".into())
    }

    fn parse(extra: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}{extra}"), &env).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_scim_section_reads() {
        let c = parse(
            "scim:\n  token: \"${SCIM_TOKEN}\"\n  match: userName\n  providers: [demo]\n  headers:\n    department: X-Auth-Department\n    manager: X-Auth-Manager\n  webhook:\n    url: https://app.internal/hooks/authgate\n    timeout: 3s\n    on_failure: allow\n  max_body_bytes: 65536\n",
        )
        .unwrap();
        let s = c.scim.expect("scim");
        assert_eq!(s.token.0, "scim-token-from-the-environment-0123");
        assert_eq!(s.match_attribute, MatchAttribute::UserName);
        assert_eq!(s.providers, ["demo"]);
        assert_eq!(
            s.headers,
            [
                (Attribute::Department, "X-Auth-Department".to_string()),
                (Attribute::Manager, "X-Auth-Manager".to_string())
            ]
        );
        let w = s.webhook.expect("webhook");
        assert_eq!((w.timeout.as_secs(), w.on_failure), (3, OnFailure::Allow));
        assert_eq!(s.max_body, 65536);
        // Off without the section.
        assert!(parse("").unwrap().scim.is_none());
    }

    #[test]
    fn every_bad_scim_setting_is_reported_with_its_path() {
        let cases: &[(&str, &str)] = &[
            ("scim:\n  match: externalId\n", "scim.token"),
            ("scim:\n  token: short\n", "scim.token"),
            ("scim:\n  token: \"${SCIM_TOKEN}\"\n  token_file: /etc/x\n", "scim.token"),
            ("scim:\n  token_file: /nonexistent/scim-token\n", "scim.token_file"),
            ("scim:\n  token: \"${SCIM_TOKEN}\"\n  match: email\n", "scim.match"),
            ("scim:\n  token: \"${SCIM_TOKEN}\"\n  providers: [nope]\n", "scim.providers"),
            ("scim:\n  token: \"${SCIM_TOKEN}\"\n  headers:\n    salary: X-Salary\n", "scim.headers.salary"),
            ("scim:\n  token: \"${SCIM_TOKEN}\"\n  headers:\n    department: \"X Dept\"\n", "scim.headers.department"),
            ("scim:\n  token: \"${SCIM_TOKEN}\"\n  headers:\n    department: X-A\n    title: x-a\n", "scim.headers.title"),
            ("scim:\n  token: \"${SCIM_TOKEN}\"\n  webhook:\n    timeout: 1s\n", "scim.webhook.url"),
            ("scim:\n  token: \"${SCIM_TOKEN}\"\n  webhook:\n    url: ftp://x\n", "scim.webhook.url"),
            ("scim:\n  token: \"${SCIM_TOKEN}\"\n  webhook:\n    url: http://x\n    timeout: 0s\n", "scim.webhook.timeout"),
            ("scim:\n  token: \"${SCIM_TOKEN}\"\n  webhook:\n    url: http://x\n    timeout: 2m\n", "scim.webhook.timeout"),
            ("scim:\n  token: \"${SCIM_TOKEN}\"\n  webhook:\n    url: http://x\n    on_failure: maybe\n", "scim.webhook.on_failure"),
            ("scim:\n  token: \"${SCIM_TOKEN}\"\n  webhook:\n    url: http://x\n    retries: 3\n", "scim.webhook.retries"),
            ("scim:\n  token: \"${SCIM_TOKEN}\"\n  max_body_bytes: 10\n", "scim.max_body_bytes"),
            ("scim:\n  token: \"${SCIM_TOKEN}\"\n  enabled: true\n", "scim.enabled"),
            ("scim: [1]\n", "scim"),
        ];
        for (yaml, path) in cases {
            let e = parse(yaml).expect_err(yaml);
            assert!(
                e.contains(&format!("{path}:")),
                "{yaml}: want an error at {path}, got {e}"
            );
        }
        // A provisioned-only route needs SCIM.
        let e = Config::parse(
            &BASE.replace(
                "upstream: \"127.0.0.1:3000\"\n",
                "upstream: \"127.0.0.1:3000\"\n    allow:\n      provisioned: true\n",
            ),
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("routes[0].allow.provisioned: needs SCIM"), "{e}");
    }
}
