//! `authgate explain`: an admin pastes what the IdP sent — a base64 SAMLResponse, an ID or
//! access token, or the URL Entra redirected to with `error=…AADSTS…` — and gets, for a
//! configured provider, each check the gateway makes, passed or failed, and for each failure
//! the Entra setting to change.
//!
//! The checks are the gateway's own (`saml_verify::verify`, the provider's identity mapping,
//! `token_times`, Entra's token rules, the bearer verifier, `AadError`): nothing here decides
//! differently from the ACS or the callback. Where the gateway stops at the first failure,
//! explain sets the failed expectation to what the response says and runs the same check again,
//! so one paste shows every setting that is off, not only the first.

mod aad;
mod routes;
mod saml;
mod token;

use std::fmt;

use chrono::{DateTime, Utc};

use crate::config::Config;

/// What was pasted.
#[derive(Debug)]
pub enum Input {
    /// A decoded SAML response (XML).
    Saml(String),
    /// A JWT (header.payload.signature).
    Token(String),
    /// The URL the IdP sent the browser back to, with `error=`.
    ErrorRedirect(url::Url),
}

/// Tells the pasted text's kind. Whitespace around it (a copied line) does not matter.
pub fn classify(raw: &str) -> Result<Input, String> {
    // A file saved by some editors starts with a byte-order mark.
    let text = raw.trim().trim_start_matches('\u{feff}');
    if text.is_empty() {
        return Err("nothing to explain: paste a SAMLResponse, a token or a redirect URL".into());
    }
    if text.starts_with("http://") || text.starts_with("https://") {
        let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
        if !url.query_pairs().any(|(k, _)| k == "error") {
            return Err("the URL carries no error= parameter (nothing went wrong in it)".into());
        }
        return Ok(Input::ErrorRedirect(url));
    }
    let parts: Vec<&str> = text.split('.').collect();
    let b64url = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if parts.len() == 3 && parts[..2].iter().all(|p| b64url(p)) {
        return Ok(Input::Token(text.to_string()));
    }
    if text.starts_with('<') {
        return Ok(Input::Saml(text.to_string()));
    }
    // The form value as posted may still be URL-encoded (copied from a HAR or a log).
    let decoded = if text.contains('%') {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .map(|s| s.into_owned())
            .unwrap_or_else(|_| text.to_string())
    } else {
        text.to_string()
    };
    crate::idp::saml_verify::decode_post(&decoded)
        .map(Input::Saml)
        .map_err(|e| format!("not a SAMLResponse, a token or a redirect URL ({e})"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    /// A fact worth knowing, not a verdict.
    Info,
    /// Could not be checked here (said why in the detail).
    Skipped,
}

/// One check and how it went.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
    pub detail: String,
    /// The setting to change, for a failure.
    pub fix: Option<String>,
}

impl Check {
    fn new(name: &str, outcome: Outcome, detail: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            outcome,
            detail: detail.into(),
            fix: None,
        }
    }
    fn fix(mut self, fix: Option<String>) -> Self {
        self.fix = fix;
        self
    }
}

/// Everything explain found for one paste.
#[derive(Debug)]
pub struct Report {
    pub title: String,
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether the gateway would let this through (no check failed).
    pub fn accepted(&self) -> bool {
        !self.checks.iter().any(|c| c.outcome == Outcome::Fail)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title)?;
        for c in &self.checks {
            let mark = match c.outcome {
                Outcome::Pass => "PASS",
                Outcome::Fail => "FAIL",
                Outcome::Info => "INFO",
                Outcome::Skipped => "SKIP",
            };
            writeln!(f, "  [{mark}] {}: {}", c.name, c.detail)?;
            if let Some(fix) = &c.fix {
                writeln!(f, "         fix: {fix}")?;
            }
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .count();
        if failed == 0 {
            writeln!(f, "verdict: the gateway would accept this")
        } else {
            writeln!(
                f,
                "verdict: the gateway would refuse this ({failed} check(s) failed)"
            )
        }
    }
}

/// Explains `raw` against provider `provider` of `cfg` (the only one, or the first of the
/// input's protocol, when None), as of `at` (default: now).
pub async fn explain(
    cfg: &Config,
    provider: Option<&str>,
    raw: &str,
    at: Option<DateTime<Utc>>,
) -> Result<Report, String> {
    let input = classify(raw)?;
    let now = at.unwrap_or_else(Utc::now);
    let want_saml = matches!(input, Input::Saml(_));
    let chosen = match provider {
        Some(name) => cfg
            .providers
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("no provider named {name:?} in the configuration"))?,
        None => cfg
            .providers
            .iter()
            .find(|p| {
                matches!(p.kind, crate::idp::settings::ProviderKind::Saml(_)) == want_saml
                    || matches!(input, Input::ErrorRedirect(_))
            })
            .ok_or_else(|| {
                format!(
                    "no {} provider in the configuration (name one with --provider)",
                    if want_saml { "SAML" } else { "OpenID Connect" }
                )
            })?,
    };
    let metrics =
        std::sync::Arc::new(crate::metrics::Metrics::new().map_err(|e| format!("metrics: {e}"))?);
    let built = crate::idp::build(chosen, &cfg.public_url, metrics).map_err(|e| e.to_string())?;
    match input {
        Input::ErrorRedirect(url) => Ok(aad::explain(&chosen.name, &url)),
        Input::Saml(xml) => {
            let crate::idp::Provider::Saml(p) = &*built else {
                return Err(format!(
                    "provider {:?} is not a SAML provider: this is a SAML response",
                    chosen.name
                ));
            };
            Ok(saml::explain(p, &xml, now).await)
        }
        Input::Token(jwt) => {
            let crate::idp::Provider::Oidc(p) = &*built else {
                return Err(format!(
                    "provider {:?} is not an OpenID Connect provider: this is a token",
                    chosen.name
                ));
            };
            let mut report = token::explain(p, &jwt, now).await;
            if let crate::idp::settings::ProviderKind::Oidc(o) = &chosen.kind {
                report
                    .checks
                    .extend(routes::checks(cfg, chosen, o, &jwt, now));
            }
            Ok(report)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{classify, Input};

    #[test]
    fn pasted_text_is_told_apart() {
        assert!(matches!(
            classify("  https://app/?error=access_denied&state=x \n"),
            Ok(Input::ErrorRedirect(_))
        ));
        assert!(classify("https://app/?code=abc").is_err());
        assert!(matches!(
            classify("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"),
            Ok(Input::Token(_))
        ));
        assert!(matches!(classify("<samlp:Response/>"), Ok(Input::Saml(_))));
        // base64 of "<a/>", plain and URL-encoded.
        assert!(matches!(classify("PGEvPg=="), Ok(Input::Saml(x)) if x == "<a/>"));
        assert!(matches!(classify("PGEvPg%3D%3D"), Ok(Input::Saml(x)) if x == "<a/>"));
        for junk in ["", "   ", "not base64 !!", "a.b", "%ff%fe"] {
            assert!(classify(junk).is_err(), "{junk:?}");
        }
    }
}
