//! Identity providers: the interface the proxy uses to start and finish a sign-in, whatever
//! the protocol. Each protocol lives in its own file.

pub mod claims;
pub mod credential;
mod credential_read;
pub(crate) mod dialect;
pub(crate) mod entra;
pub mod hints;
pub(crate) mod logout_token;
pub(crate) mod oidc;
pub(crate) mod read;
pub mod realm;
mod realm_read;
pub(crate) mod refresh;
pub(crate) mod saml;
pub(crate) mod saml_logout;
pub mod saml_verify;
pub mod settings;

use std::sync::Arc;

use url::Url;

use crate::canonical::RESERVED_PREFIX;
use crate::identity::Identity;
use crate::metrics::Metrics;
use settings::{ProviderConfig, ProviderKind};

/// Why a sign-in could not start or finish. `reason()` is a bounded metric label.
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    #[error("identity provider not ready (its metadata has not loaded yet)")]
    NotReady,
    #[error("provider setup failed: {0}")]
    Setup(String),
    #[error("identity provider metadata: {0}")]
    Discovery(String),
    #[error("invalid callback: {0}")]
    Callback(String),
    #[error("code exchange failed: {0}")]
    TokenExchange(String),
    /// The gateway's own credential could not be used (an assertion file missing or empty).
    #[error("{0}")]
    Credential(String),
    #[error("ID token rejected: {0}")]
    IdToken(String),
    /// An `Authorization: Bearer` access token that failed a check (named in the text).
    #[error("access token rejected: {0}")]
    AccessToken(String),
    /// Signed in fine, but not let in (tenant, groups that could not be resolved, ...).
    #[error("access denied ({label}): {1}", label = .0.label())]
    Denied(crate::policy::Deny, String),
}

impl IdpError {
    pub fn reason(&self) -> &'static str {
        match self {
            IdpError::NotReady => "idp_not_ready",
            IdpError::Setup(_) => "setup",
            IdpError::Discovery(_) => "idp_metadata",
            IdpError::Callback(_) => "bad_callback",
            IdpError::TokenExchange(_) => "token_exchange",
            IdpError::Credential(_) => "client_credential",
            IdpError::IdToken(_) => "id_token_invalid",
            IdpError::AccessToken(_) => "invalid_token",
            IdpError::Denied(d, _) => d.label(),
        }
    }
}

/// What starting a sign-in gives the gateway: where to send the browser, and what to keep
/// (sealed, in a cookie named after `key`) until the IdP sends it back.
pub struct Begun {
    pub url: Url,
    /// The random key the IdP echoes back (OIDC `state`, SAML `RelayState`).
    pub key: String,
    /// The protocol's pending sign-in (`PendingLogin`, `PendingSaml`), serialized.
    pub pending: serde_json::Value,
    /// The IdP answers with a cross-site POST (SAML's ACS): the cookie must be sent on it.
    pub cross_site: bool,
}

/// One identity provider, whatever its protocol: the steps every protocol shares. Each
/// protocol implements it in its own file (`oidc.rs`, `saml.rs`); `build` is the one
/// registration. What only one protocol has (the OIDC callback and bearer tokens, SAML's
/// ACS, metadata and SLO) is reached by matching on `Provider`.
#[async_trait::async_trait]
pub trait IdentityProvider: Send + Sync {
    fn name(&self) -> &str;
    /// `oidc` or `saml`: for audit lines.
    fn protocol(&self) -> &'static str;
    /// Loads or refreshes the provider's metadata (discovery + keys, or SAML metadata).
    async fn load(&self) -> Result<(), IdpError>;
    /// How old the loaded metadata is (None: not loaded).
    fn age(&self) -> Option<std::time::Duration>;
    fn is_ready(&self) -> bool;
    /// Starts a sign-in that returns to `return_to` (a same-origin path), asking the IdP for
    /// what `ask` names (a route's `require:`), which the pending sign-in keeps.
    fn begin(&self, return_to: String, ask: &crate::assurance::Ask) -> Result<Begun, IdpError>;
    /// Where the browser goes at sign-out to end the IdP's session too, if anywhere;
    /// `signed_out` is the gateway's signed-out page.
    /// `grant`: what the session kept from its sign-in (OpenID: the ID token and login hint
    /// for `id_token_hint` and `logout_hint`).
    fn sign_out_url(
        &self,
        identity: &Identity,
        grant: Option<&crate::session::Grant>,
        signed_out: &str,
    ) -> Option<Url>;
}

/// A configured provider, shared by every request of one configuration: one of the
/// protocols. The steps they share are `IdentityProvider`'s, reached through `Deref`.
pub enum Provider {
    Oidc(oidc::OidcProvider),
    Saml(saml::SamlProvider),
}

impl std::ops::Deref for Provider {
    type Target = dyn IdentityProvider;
    fn deref(&self) -> &Self::Target {
        match self {
            Provider::Oidc(p) => p,
            Provider::Saml(p) => p,
        }
    }
}

impl Provider {
    /// The tolerance for the IdP's clock, in seconds.
    pub fn clock_skew(&self) -> u64 {
        match self {
            Provider::Oidc(p) => p.cfg.clock_skew.as_secs(),
            Provider::Saml(p) => p.cfg.clock_skew.as_secs(),
        }
    }

    /// The `acr` values that mean a second factor (OpenID Connect `mfa_acr_values`).
    pub fn mfa_acr_values(&self) -> &[String] {
        match self {
            Provider::Oidc(p) => &p.cfg.mfa_acr_values,
            Provider::Saml(_) => &[],
        }
    }

    /// The verifier of `Authorization: Bearer` tokens, when this provider takes them.
    pub fn api(&self) -> Option<&oidc::OidcProvider> {
        match self {
            Provider::Oidc(p) if p.accepts_bearer() => Some(p),
            _ => None,
        }
    }
}

/// The one registration of provider types: a config section to a provider.
pub fn build(
    cfg: &ProviderConfig,
    public_url: &Url,
    metrics: Arc<Metrics>,
) -> Result<Arc<Provider>, IdpError> {
    match &cfg.kind {
        ProviderKind::Oidc(o) => {
            let redirect = public_url
                .join(&callback_path(&cfg.name))
                .map_err(|e| IdpError::Setup(e.to_string()))?;
            Ok(Arc::new(Provider::Oidc(oidc::OidcProvider::new(
                cfg.name.clone(),
                o.clone(),
                redirect,
                metrics,
            )?)))
        }
        ProviderKind::Saml(s) => Ok(Arc::new(Provider::Saml(saml::SamlProvider::new(
            cfg.name.clone(),
            s.clone(),
            public_url,
            metrics,
        )?))),
    }
}

/// A sign-in in flight, sealed in a cookie named after its random key (OIDC `state`, SAML
/// `RelayState`) until the IdP sends the browser back.
pub trait PendingSignIn: serde::de::DeserializeOwned {
    fn key(&self) -> &str;
    fn provider(&self) -> &str;
    /// Seconds since the epoch.
    fn created(&self) -> u64;
    /// The home realm the sign-in was started for, if an address chose it.
    fn realm(&self) -> Option<&realm::Realm>;
}

impl PendingSignIn for oidc::PendingLogin {
    fn key(&self) -> &str {
        &self.s
    }
    fn provider(&self) -> &str {
        &self.p
    }
    fn created(&self) -> u64 {
        self.t
    }
    fn realm(&self) -> Option<&realm::Realm> {
        self.hr.as_ref()
    }
}

impl PendingSignIn for saml::PendingSaml {
    fn key(&self) -> &str {
        &self.k
    }
    fn provider(&self) -> &str {
        &self.p
    }
    fn created(&self) -> u64 {
        self.t
    }
    fn realm(&self) -> Option<&realm::Realm> {
        self.hr.as_ref()
    }
}

/// The callback path of a provider: `/_authgate/callback/<name>`.
pub fn callback_path(provider: &str) -> String {
    format!("{RESERVED_PREFIX}/callback/{provider}")
}
