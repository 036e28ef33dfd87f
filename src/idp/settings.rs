//! The validated settings of identity providers (read by `idp/read.rs` and, for the Entra
//! preset, `idp/entra/preset.rs`).

use std::time::Duration;

use url::Url;

use crate::idp::entra::EntraSettings;
use crate::policy::GroupNames;
use crate::read::Secret;

#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    /// Group ID → readable name: policies may name groups, upstreams receive the names.
    pub group_names: GroupNames,
    /// Its `session:` block: timers of its own (resolved into `session.lifecycle`).
    pub session: crate::session::TimerOverrides,
    /// `domains:` home-realm discovery sends addresses of these domains here.
    pub domains: Vec<DomainRule>,
    /// `metadata_refresh:` how often its metadata and signing keys are fetched again (a
    /// failed fetch keeps the last good copy).
    pub metadata_refresh: std::time::Duration,
}

// Built once per (re)load, never on the request path: boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderKind {
    Oidc(OidcConfig),
    Saml(SamlConfig),
}

/// A SAML 2.0 identity provider, as this gateway (the service provider) sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SamlConfig {
    /// The SP entity ID (Entra: "Identifier (Entity ID)"); the audience assertions must carry.
    pub entity_id: String,
    pub idp: SamlIdp,
    /// Full NameID format URN requested in the AuthnRequest.
    pub name_id_format: String,
    pub clock_skew: Duration,
    pub allow_idp_initiated: bool,
    /// Attribute (claim URI) whose value is the user key; `None` = the NameID.
    pub user_attribute: Option<String>,
    pub attributes: SamlAttributes,
    /// PEM key and certificate to sign AuthnRequests (RSA-SHA256), if the IdP requires it.
    pub sp_signing: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Entra groups overage (`groups.link`): Graph credentials of the app behind the
    /// enterprise app; `None` = such users are refused.
    pub graph: Option<SamlGraph>,
    /// Attributes sent upstream as headers (`headers.claims`), kept at sign-in.
    pub header_claims: Vec<String>,
    /// Attributes the routes' claim rules name (`allow.claims`, `deny.claims`), kept at
    /// sign-in (by URI, or a short name's alias).
    pub rule_claims: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SamlGraph {
    pub client_id: String,
    pub client_secret: Secret,
    pub url: Url,
    /// `None`: `<IdP sign-on URL origin>/organizations/oauth2/v2.0/token`, in the user's tenant.
    pub token_url: Option<Url>,
    pub cache_ttl: Duration,
}

/// How the IdP is known: the three options Entra admins are given.
#[derive(Debug, Clone, PartialEq)]
pub enum SamlIdp {
    MetadataUrl(Url),
    MetadataFile(std::path::PathBuf),
    /// Entity ID, sign-on URL and the signing certificate's thumbprint(s) (SHA-1 as Entra shows
    /// it, or SHA-256), hex.
    Fingerprint {
        entity_id: String,
        sso_url: Url,
        slo_url: Option<Url>,
        fingerprints: Vec<Vec<u8>>,
    },
}

/// Claim URIs mapped to identity fields; Entra's by default.
#[derive(Debug, Clone, PartialEq)]
pub struct SamlAttributes {
    pub email: String,
    pub name: String,
    pub groups: String,
    pub roles: String,
    pub tenant: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    pub issuer: Url,
    pub discovery_url: Url,
    pub client_id: String,
    /// Exactly one: a secret, a certificate, an assertion file, or none (public client).
    pub credential: crate::idp::credential::ClientCredential,
    pub scopes: Vec<String>,
    /// The claim whose value goes into the user header (the stable user key).
    pub user_claim: String,
    /// Tolerance for `exp`/`iat`/`nbf` against this machine's clock.
    pub clock_skew: Duration,
    /// `Authorization: Bearer` access tokens for this audience are accepted on its routes.
    pub api_audience: Option<String>,
    /// Which Entra access token versions `api_audience` accepts (`api_token_versions`).
    pub api_versions: crate::idp::entra::Versions,
    /// JWS algorithms accepted for ID and access tokens (`signing_algs`); symmetric ones only
    /// when listed, and never for access tokens.
    pub signing_algs: Vec<String>,
    /// Set by `type: entra`: Entra's issuer template, tenant rules, nOAuth and overage.
    pub entra: Option<EntraSettings>,
    /// Claims sent upstream as headers (`headers.claims`), kept from the ID token at sign-in.
    pub header_claims: Vec<String>,
    /// Claims the routes' rules name (`allow.claims`, `deny.claims`), kept at sign-in.
    pub rule_claims: Vec<String>,
    /// `acr` values that mean a second factor (`mfa_acr_values`): sent as `acr_values` when a
    /// route requires `mfa`, and accepted in the returned `acr`.
    pub mfa_acr_values: Vec<String>,
    /// Sent with every sign-in (`domain_hint`, `prompt`, `max_age`).
    pub hints: StaticHints,
}

/// A provider's fixed authorization parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticHints {
    /// Entra: skip home-realm discovery for this domain (`domain_hint`).
    pub domain_hint: Option<String>,
    /// `select_account` or `login`.
    pub prompt: Option<String>,
    /// `max_age` (seconds): the returned `auth_time` is checked against it.
    pub max_age: Option<u64>,
}

/// One `providers[].domains` entry: `contoso.com` (that domain only) or `*.contoso.com` (its
/// subdomains only), and, for a multi-tenant Entra provider, the tenant it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRule {
    /// Lower case, without the `*.`.
    pub domain: String,
    /// `*.domain`: subdomains at any depth, not the domain itself.
    pub subdomains: bool,
    /// The Entra tenant ID (lower case) this domain's users belong to.
    pub tenant: Option<String>,
}

impl DomainRule {
    pub(crate) fn matches(&self, domain: &str) -> bool {
        if !self.subdomains {
            return domain == self.domain;
        }
        domain.len() > self.domain.len() + 1
            && domain.ends_with(self.domain.as_str())
            && domain.as_bytes()[domain.len() - self.domain.len() - 1] == b'.'
    }

    /// As written in the configuration.
    pub fn pattern(&self) -> String {
        match self.subdomains {
            true => format!("*.{}", self.domain),
            false => self.domain.clone(),
        }
    }
}

/// `home_realm:` (every key optional).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HomeRealmConfig {
    /// Where an address no provider lists goes (else the route's sign-in provider).
    pub default_provider: Option<String>,
    /// Opt-in: how long a browser remembers the last domain typed, to skip the page.
    pub remember: Option<Duration>,
}
