//! Loading a provider: its discovery document and key set, fetched (or, for the fuzz targets,
//! handed over), checked, and put in service together.

use std::sync::Arc;
use std::time::Instant;

use openidconnect::core::{CoreClient, CoreProviderMetadata};
use openidconnect::{ClientId, ClientSecret};
use serde_json::Value;
use url::Url;

use super::{entra, Client, Keys, Loaded, OidcProvider, MAX_DOC_BYTES};
use crate::idp::IdpError;

/// A discovery document that passed its checks.
struct Discovered {
    raw: Value,
    metadata: CoreProviderMetadata,
    issuer: String,
}

impl OidcProvider {
    async fn fetch_json(&self, url: &Url, kind: &'static str) -> Result<Vec<u8>, IdpError> {
        let started = Instant::now();
        let result = async {
            let resp = self
                .http
                .get(url.clone())
                .header("accept", "application/json")
                .send()
                .await
                .map_err(|e| format!("{kind} fetch from {url} failed: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("{kind} fetch from {url}: HTTP {}", resp.status()));
            }
            crate::fetch::body(resp, MAX_DOC_BYTES)
                .await
                .map_err(|e| format!("{kind} from {url} refused: {e}"))
        }
        .await;
        self.metrics
            .idp_fetch_duration
            .with_label_values(&[self.name.as_str(), kind])
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .idp_fetches
            .with_label_values(&[
                self.name.as_str(),
                kind,
                if result.is_ok() { "ok" } else { "error" },
            ])
            .inc();
        result.map_err(IdpError::Discovery)
    }

    /// The provider's key set, without the keys of a kid that several keys claim (logged):
    /// which of them signed a token, and so which issuer rule applies, cannot be told.
    /// The key set at `uri`, fetched.
    pub(super) async fn fetch_jwks(&self, uri: &Url) -> Result<Keys, IdpError> {
        let body = self.fetch_json(uri, "jwks").await?;
        self.read_jwks(uri, &body)
    }

    fn read_jwks(&self, uri: &Url, body: &[u8]) -> Result<Keys, IdpError> {
        let bad = |e: serde_json::Error| {
            IdpError::Discovery(format!("JWKS from {uri} does not parse: {e}"))
        };
        let mut raw: Value = serde_json::from_slice(body).map_err(bad)?;
        let (issuers, ambiguous) = entra::key_issuers(&raw);
        if !ambiguous.is_empty() {
            log::warn!(
                "provider {}: the key set at {uri} lists more than one key under kid {}: tokens signed under {} are refused until it is fixed",
                self.name,
                ambiguous.join(", "),
                if ambiguous.len() > 1 { "these kids" } else { "that kid" }
            );
            if let Some(keys) = raw.get_mut("keys").and_then(Value::as_array_mut) {
                keys.retain(|k| {
                    k.get("kid")
                        .and_then(Value::as_str)
                        .is_none_or(|kid| !ambiguous.iter().any(|a| a == kid))
                });
            }
        }
        Ok(Keys {
            set: serde_json::from_value(raw).map_err(bad)?,
            issuers,
            ambiguous,
        })
    }

    /// Fetches discovery and keys. On failure the last good copy stays in use.
    pub async fn load(&self) -> Result<(), IdpError> {
        let body = self
            .fetch_json(&self.cfg.discovery_url, "discovery")
            .await?;
        let discovered = self.read_discovery(&body)?;
        let jwks_uri = discovered.metadata.jwks_uri().url().clone();
        let keys = self.fetch_jwks(&jwks_uri).await?;
        self.install(discovered, keys)
    }

    /// `load` from documents in hand (the fuzz targets: no network), the same checks.
    pub fn load_documents(&self, discovery: &[u8], jwks: &[u8]) -> Result<(), IdpError> {
        let discovered = self.read_discovery(discovery)?;
        let jwks_uri = discovered.metadata.jwks_uri().url().clone();
        let keys = self.read_jwks(&jwks_uri, jwks)?;
        self.install(discovered, keys)
    }

    fn read_discovery(&self, body: &[u8]) -> Result<Discovered, IdpError> {
        let raw: Value = serde_json::from_slice(body)
            .map_err(|e| IdpError::Discovery(format!("discovery document is not JSON: {e}")))?;
        let metadata: CoreProviderMetadata = serde_json::from_value(raw.clone()).map_err(|e| {
            IdpError::Discovery(format!(
                "discovery document is not valid OpenID metadata: {e}"
            ))
        })?;
        let issuer = metadata.issuer().as_str().to_string();
        if !self.dialect.discovery_issuer_ok(&self.cfg.issuer, &issuer) {
            return Err(IdpError::Discovery(format!(
                "discovery issuer {issuer:?} differs from the configured issuer {:?}",
                self.cfg.issuer.as_str()
            )));
        }
        if metadata.token_endpoint().is_none() {
            return Err(IdpError::Discovery(
                "discovery document has no token_endpoint".into(),
            ));
        }
        Ok(Discovered {
            raw,
            metadata,
            issuer,
        })
    }

    /// Puts a discovered provider and its keys in service.
    fn install(&self, d: Discovered, keys: Keys) -> Result<(), IdpError> {
        let jwks_uri = d.metadata.jwks_uri().url().clone();
        let iss_parameter = d
            .raw
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let end_session = d
            .raw
            .get("end_session_endpoint")
            .and_then(Value::as_str)
            .and_then(|s| Url::parse(s).ok());
        let metadata = d.metadata.set_jwks(keys.set);
        let loaded = Loaded {
            client: self.client_for(&metadata),
            metadata,
            jwks_uri,
            end_session,
            issuer: d.issuer,
            key_issuers: keys.issuers,
            ambiguous: keys.ambiguous,
            iss_parameter,
            fetched_at: Instant::now(),
        };
        if let Some(token) = loaded.metadata.token_endpoint() {
            self.dialect
                .discovered(&self.cfg, token.url(), &self.credential)?;
        }
        if let Ok(mut slot) = self.loaded.write() {
            *slot = Some(Arc::new(loaded));
        }
        self.metrics
            .idp_ready
            .with_label_values(&[&self.name])
            .set(1);
        Ok(())
    }

    /// The client: with the secret in HTTP Basic, or (any other credential) no secret, so
    /// `client_id` goes in the body beside the assertion `token_fields` adds.
    pub(super) fn client_for(&self, metadata: &CoreProviderMetadata) -> Client {
        let secret = self
            .credential
            .secret()
            .map(|s| ClientSecret::new(s.to_string()));
        let client = CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.cfg.client_id.clone()),
            secret.clone(),
        )
        .set_redirect_uri(self.redirect_uri.clone());
        match secret {
            Some(_) => client,
            None => client.set_auth_type(openidconnect::AuthType::RequestBody),
        }
    }
}
