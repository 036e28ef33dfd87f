//! Identity providers: the interface the proxy uses to start and finish a sign-in, whatever
//! the protocol. Each protocol lives in its own file.

pub mod entra;
pub mod oidc;
pub mod saml;
pub mod saml_logout;
pub mod saml_verify;

use std::sync::Arc;

use url::Url;

use crate::config::{ProviderConfig, ProviderKind, RESERVED_PREFIX};
use crate::metrics::Metrics;

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
            IdpError::IdToken(_) => "id_token_invalid",
            IdpError::AccessToken(_) => "invalid_token",
            IdpError::Denied(d, _) => d.label(),
        }
    }
}

pub enum Provider {
    Oidc(oidc::OidcProvider),
    Saml(saml::SamlProvider),
}

impl Provider {
    pub fn build(
        cfg: &ProviderConfig,
        public_url: &Url,
        metrics: Arc<Metrics>,
    ) -> Result<Self, IdpError> {
        match &cfg.kind {
            ProviderKind::Oidc(o) => {
                let redirect = public_url
                    .join(&callback_path(&cfg.name))
                    .map_err(|e| IdpError::Setup(e.to_string()))?;
                Ok(Provider::Oidc(oidc::OidcProvider::new(
                    cfg.name.clone(),
                    o.clone(),
                    redirect,
                    metrics,
                )?))
            }
            ProviderKind::Saml(s) => Ok(Provider::Saml(saml::SamlProvider::new(
                cfg.name.clone(),
                s.clone(),
                public_url,
                metrics,
            )?)),
        }
    }

    /// Loads or refreshes the provider's metadata (discovery + keys, or SAML metadata).
    pub async fn load(&self) -> Result<(), IdpError> {
        match self {
            Provider::Oidc(p) => p.load().await,
            Provider::Saml(p) => p.load().await,
        }
    }

    /// How old the loaded metadata is (None: not loaded).
    pub fn age(&self) -> Option<std::time::Duration> {
        match self {
            Provider::Oidc(p) => p.age(),
            Provider::Saml(p) => p.age(),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Provider::Oidc(p) => &p.name,
            Provider::Saml(p) => &p.name,
        }
    }

    pub fn is_ready(&self) -> bool {
        match self {
            Provider::Oidc(p) => p.is_ready(),
            Provider::Saml(p) => p.is_ready(),
        }
    }
}

/// A sign-in in flight, sealed in a cookie named after its random key (OIDC `state`, SAML
/// `RelayState`) until the IdP sends the browser back.
pub trait PendingSignIn: serde::de::DeserializeOwned {
    fn key(&self) -> &str;
    fn provider(&self) -> &str;
    /// Seconds since the epoch.
    fn created(&self) -> u64;
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
}

/// The callback path of a provider: `/_authgate/callback/<name>`.
pub fn callback_path(provider: &str) -> String {
    format!("{RESERVED_PREFIX}/callback/{provider}")
}
