//! Which OpenID Connect dialect a provider speaks, chosen once at `OidcProvider::new`: the
//! standard one, or Entra ID's (`type: entra`). `OidcProvider` asks it once at each step
//! where the two differ, and nowhere else:
//!
//! | step | standard | Entra (`entra::rules`) |
//! |---|---|---|
//! | discovery | the issuer is the configured one | the tenant's issuer, or the `{tenantid}` template |
//! | after discovery | – | the Graph client for groups overage |
//! | ID token issuer | exact (by the library) | per-tenant template, the signing key's own issuer |
//! | access token issuer | exact | the same, v1 or v2 per `api_token_versions` |
//! | identity | as the claims say | tenant allow-list, nOAuth-safe email, groups lower-cased, overage through Graph |
//! | a token without `kid` | the only key of a one-key set | refused |
//! | which provider a token names | its issuer | also a v1 (`sts.windows.net`) issuer |
//!
//! A standard provider whose issuer is Entra's `{tenantid}` template (its multi-tenant
//! endpoint configured without the preset) still gets Entra's issuer rules on ID tokens: the
//! library cannot compare a template.

use std::collections::HashMap;

use serde_json::Value;
use url::Url;

use super::claims::jwt_kid;
use super::entra::{self, rules::EntraRules};
use super::settings::OidcConfig;
use super::IdpError;
use crate::identity::Identity;

pub(crate) enum Dialect {
    Standard,
    Entra(EntraRules),
}

/// The issuer facts of a provider's loaded discovery document and keys.
pub(crate) struct IssuerFacts<'a> {
    /// The discovery document's issuer (Entra multi-tenant: the `{tenantid}` template).
    pub issuer: &'a str,
    /// `kid` → the key's own `issuer` member.
    pub key_issuers: &'a HashMap<String, String>,
}

impl Dialect {
    pub(crate) fn of(cfg: &OidcConfig) -> Dialect {
        match &cfg.entra {
            Some(e) => Dialect::Entra(EntraRules::new(e.clone())),
            None => Dialect::Standard,
        }
    }

    /// Entra's settings, for the Entra dialect (`authgate explain` reports against them).
    pub(crate) fn entra(&self) -> Option<&crate::idp::entra::EntraSettings> {
        match self {
            Dialect::Standard => None,
            Dialect::Entra(e) => Some(e.settings()),
        }
    }

    /// Whether the RP-initiated logout wants the session's ID token (`id_token_hint`): a
    /// standard provider asks the user to confirm a sign-out without it. Entra ID's
    /// `end_session_endpoint` takes `logout_hint` (the `login_hint` claim) to skip its account
    /// picker and needs no ID token (only Azure AD B2C policies read one), so an Entra
    /// session keeps none unless a route passes it upstream: ~1.6 KB less per session in a
    /// server-side store.
    pub(crate) fn logout_needs_id_token(&self) -> bool {
        matches!(self, Dialect::Standard)
    }

    /// The discovery document's issuer may serve this configuration.
    pub(crate) fn discovery_issuer_ok(&self, configured: &Url, issuer: &str) -> bool {
        match self {
            Dialect::Standard => {
                issuer.trim_end_matches('/') == configured.as_str().trim_end_matches('/')
            }
            Dialect::Entra(e) => e.discovery_issuer_ok(issuer),
        }
    }

    /// Discovery named the token endpoint: what the dialect builds with it.
    pub(crate) fn discovered(
        &self,
        cfg: &OidcConfig,
        token_endpoint: &Url,
        credential: &std::sync::Arc<crate::idp::credential::Credential>,
    ) -> Result<(), IdpError> {
        match self {
            Dialect::Standard => Ok(()),
            Dialect::Entra(e) => e.discovered(cfg, token_endpoint, credential),
        }
    }

    /// The ID token verifier compares `iss` itself (false: `id_token_issuer` does).
    pub(crate) fn library_checks_issuer(&self, issuer: &str) -> bool {
        matches!(self, Dialect::Standard) && !issuer.contains(entra::TENANT_PLACEHOLDER)
    }

    /// The issuer rules of a verified ID token, beyond what the library checked.
    pub(crate) fn id_token_issuer(
        &self,
        facts: &IssuerFacts,
        raw: &str,
        claims: &Value,
    ) -> Result<(), String> {
        if self.library_checks_issuer(facts.issuer) {
            return Ok(());
        }
        tenant_issuer(facts, raw, claims, entra::Versions::V2)
    }

    /// Who may have issued a verified access token (or, for `explain`, any token): Entra's
    /// rules for the Entra dialect, otherwise exactly the provider's issuer.
    pub(crate) fn token_issuer(
        &self,
        facts: &IssuerFacts,
        raw: &str,
        claims: &Value,
        versions: entra::Versions,
    ) -> Result<(), String> {
        match self {
            Dialect::Entra(_) => tenant_issuer(facts, raw, claims, versions),
            Dialect::Standard => match claims.get("iss").and_then(Value::as_str) {
                Some(iss) if iss == facts.issuer => Ok(()),
                _ => Err("token issuer is not this provider".into()),
            },
        }
    }

    /// The identity rules after the claims were read (sign-in and bearer tokens alike).
    pub(crate) async fn identity(
        &self,
        provider: &str,
        claims: &Value,
        identity: &mut Identity,
    ) -> Result<(), IdpError> {
        match self {
            Dialect::Standard => Ok(()),
            Dialect::Entra(e) => e.identity(provider, claims, identity).await,
        }
    }

    /// A token without `kid` may be checked against the only key of a one-key set.
    pub(crate) fn kid_optional(&self) -> bool {
        matches!(self, Dialect::Standard)
    }

    /// A token's (unverified) `iss` names this provider, whose discovery issuer is `issuer`.
    pub(crate) fn names(&self, issuer: &str, iss: &str) -> bool {
        super::claims::issuer_matches(issuer, iss)
            || (matches!(self, Dialect::Entra(_)) && iss.starts_with(entra::V1_ISSUER_PREFIX))
    }
}

/// Entra's issuer rules (template substitution, token version, the signing key's own
/// issuer) on a verified token of any form: `entra::check_token`.
fn tenant_issuer(
    facts: &IssuerFacts,
    raw: &str,
    claims: &Value,
    versions: entra::Versions,
) -> Result<(), String> {
    let kid = jwt_kid(raw);
    let key = kid
        .as_deref()
        .map(|k| (k, facts.key_issuers.get(k).map(String::as_str)));
    entra::check_token(facts.issuer, claims, key, versions)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
