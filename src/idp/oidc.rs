//! OpenID Connect relying party: discovery, authorization code + PKCE (S256), state and nonce,
//! code exchange, ID token validation (signature, iss, aud, exp, nonce), and a JWKS cache
//! refreshed on an unknown `kid`.
//!
//! Discovery is done by hand (fetch JSON, parse `CoreProviderMetadata`, fetch the JWKS) rather
//! than with `discover_async`, so the gateway controls key refresh and can later accept
//! Entra's templated multi-tenant issuer (see ENTRA.md §3) in the Entra module.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJsonWebKeySet, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, SignatureVerificationError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use super::IdpError;
use crate::config::OidcConfig;
use crate::identity::Identity;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The most a discovery document or JWKS may weigh: the network is hostile.
const MAX_DOC_BYTES: usize = 512 * 1024;
/// Unknown-kid refreshes are single-flight and at most this often.
const MIN_JWKS_REFRESH: Duration = Duration::from_secs(5);

/// What the browser carries (sealed) between the redirect to the IdP and the callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    /// CSRF state (also names the cookie).
    pub s: String,
    /// Nonce bound into the ID token.
    pub n: String,
    /// PKCE verifier.
    pub v: String,
    /// Same-origin path to return to.
    pub r: String,
    /// Provider name.
    pub p: String,
    /// Created at (seconds).
    pub t: u64,
}

struct Loaded {
    metadata: CoreProviderMetadata,
    client: Client,
    jwks_uri: Url,
    end_session: Option<Url>,
    issuer: String,
    fetched_at: Instant,
}

pub struct OidcProvider {
    pub name: String,
    cfg: OidcConfig,
    http: reqwest::Client,
    redirect_uri: RedirectUrl,
    loaded: RwLock<Option<Arc<Loaded>>>,
    jwks_refresh: Mutex<Instant>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl OidcProvider {
    pub fn new(
        name: String,
        cfg: OidcConfig,
        redirect_uri: Url,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Self, IdpError> {
        let http = reqwest::Client::builder()
            // Never follow redirects from the IdP's back channel (SSRF, token leaks).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| IdpError::Setup(e.to_string()))?;
        Ok(Self {
            name,
            cfg,
            http,
            redirect_uri: RedirectUrl::from_url(redirect_uri),
            loaded: RwLock::new(None),
            jwks_refresh: Mutex::new(Instant::now() - MIN_JWKS_REFRESH),
            metrics,
        })
    }

    pub fn is_ready(&self) -> bool {
        self.loaded.read().map(|l| l.is_some()).unwrap_or(false)
    }

    fn current(&self) -> Result<Arc<Loaded>, IdpError> {
        self.loaded
            .read()
            .ok()
            .and_then(|l| l.clone())
            .ok_or(IdpError::NotReady)
    }

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
            if resp.content_length().unwrap_or(0) as usize > MAX_DOC_BYTES {
                return Err(format!(
                    "{kind} from {url} is larger than {MAX_DOC_BYTES} bytes"
                ));
            }
            let body = resp
                .bytes()
                .await
                .map_err(|e| format!("{kind} fetch from {url} failed: {e}"))?;
            if body.len() > MAX_DOC_BYTES {
                return Err(format!(
                    "{kind} from {url} is larger than {MAX_DOC_BYTES} bytes"
                ));
            }
            Ok(body.to_vec())
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

    async fn fetch_jwks(&self, uri: &Url) -> Result<CoreJsonWebKeySet, IdpError> {
        let body = self.fetch_json(uri, "jwks").await?;
        serde_json::from_slice(&body)
            .map_err(|e| IdpError::Discovery(format!("JWKS from {uri} does not parse: {e}")))
    }

    /// Fetches discovery and keys. On failure the last good copy stays in use.
    pub async fn load(&self) -> Result<(), IdpError> {
        let body = self
            .fetch_json(&self.cfg.discovery_url, "discovery")
            .await?;
        let raw: Value = serde_json::from_slice(&body)
            .map_err(|e| IdpError::Discovery(format!("discovery document is not JSON: {e}")))?;
        let metadata: CoreProviderMetadata = serde_json::from_value(raw.clone()).map_err(|e| {
            IdpError::Discovery(format!(
                "discovery document is not valid OpenID metadata: {e}"
            ))
        })?;
        let issuer = metadata.issuer().as_str().to_string();
        if issuer.trim_end_matches('/') != self.cfg.issuer.as_str().trim_end_matches('/') {
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
        let jwks_uri = metadata.jwks_uri().url().clone();
        let jwks = self.fetch_jwks(&jwks_uri).await?;
        let end_session = raw
            .get("end_session_endpoint")
            .and_then(Value::as_str)
            .and_then(|s| Url::parse(s).ok());
        let metadata = metadata.set_jwks(jwks);
        let loaded = Loaded {
            client: self.client_for(&metadata),
            metadata,
            jwks_uri,
            end_session,
            issuer,
            fetched_at: Instant::now(),
        };
        if let Ok(mut slot) = self.loaded.write() {
            *slot = Some(Arc::new(loaded));
        }
        self.metrics
            .idp_ready
            .with_label_values(&[&self.name])
            .set(1);
        Ok(())
    }

    fn client_for(&self, metadata: &CoreProviderMetadata) -> Client {
        CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.cfg.client_id.clone()),
            Some(ClientSecret::new(self.cfg.client_secret.0.clone())),
        )
        .set_redirect_uri(self.redirect_uri.clone())
    }

    /// How old the loaded metadata is (for the periodic refresh).
    pub fn age(&self) -> Option<Duration> {
        self.current().ok().map(|l| l.fetched_at.elapsed())
    }

    /// Single-flight JWKS refresh after an unknown `kid`, at most every `MIN_JWKS_REFRESH`.
    async fn refresh_jwks(&self, seen: &Arc<Loaded>) -> Result<Arc<Loaded>, IdpError> {
        let mut last = self.jwks_refresh.lock().await;
        // Someone else refreshed while we waited for the lock.
        let current = self.current()?;
        if !Arc::ptr_eq(&current, seen) {
            return Ok(current);
        }
        let wait = MIN_JWKS_REFRESH.saturating_sub(last.elapsed());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        *last = Instant::now();
        let jwks = self.fetch_jwks(&current.jwks_uri).await?;
        log::info!(
            "provider {}: signing keys refreshed after an unknown key id",
            self.name
        );
        let metadata = current.metadata.clone().set_jwks(jwks);
        let refreshed = Arc::new(Loaded {
            client: self.client_for(&metadata),
            metadata,
            jwks_uri: current.jwks_uri.clone(),
            end_session: current.end_session.clone(),
            issuer: current.issuer.clone(),
            fetched_at: current.fetched_at,
        });
        if let Ok(mut slot) = self.loaded.write() {
            *slot = Some(refreshed.clone());
        }
        Ok(refreshed)
    }

    /// Builds the authorization redirect and the state to keep until the callback.
    pub fn begin(&self, return_to: String) -> Result<(Url, PendingLogin), IdpError> {
        let loaded = self.current()?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = loaded.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            || CsrfToken::new(crate::session::random_token(32)),
            || Nonce::new(crate::session::random_token(32)),
        );
        for s in self.cfg.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
        Ok((
            url,
            PendingLogin {
                s: state.secret().clone(),
                n: nonce.secret().clone(),
                v: verifier.secret().clone(),
                r: return_to,
                p: self.name.clone(),
                t: crate::session::now_secs(),
            },
        ))
    }

    /// Completes a sign-in: exchanges the code (with the PKCE verifier) and validates the
    /// ID token. `iss` is the RFC 9207 issuer parameter of the callback, if the IdP sent one.
    pub async fn finish(
        &self,
        pending: &PendingLogin,
        code: &str,
        iss: Option<&str>,
    ) -> Result<Identity, IdpError> {
        let mut loaded = self.current()?;
        if let Some(iss) = iss {
            if iss != loaded.issuer {
                return Err(IdpError::Callback(format!(
                    "callback iss {iss:?} is not this provider's issuer (mix-up?)"
                )));
            }
        }
        let request = loaded
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| IdpError::Discovery(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.v.clone()));
        let token = request.request_async(&self.http).await.map_err(|e| {
            use openidconnect::RequestTokenError as E;
            IdpError::TokenExchange(match e {
                E::ServerResponse(r) => format!(
                    "{}{}",
                    r.error().as_ref(),
                    r.error_description()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ),
                E::Request(e) => format!("token endpoint unreachable: {e}"),
                E::Parse(e, _) => format!("token response does not parse: {e}"),
                E::Other(e) => e,
            })
        })?;
        use openidconnect::TokenResponse;
        let id_token = token
            .id_token()
            .ok_or_else(|| IdpError::IdToken("token response has no id_token".into()))?;
        let nonce = Nonce::new(pending.n.clone());
        // Verify; on an unknown key id refresh the JWKS once and try again.
        let mut refreshed = false;
        loop {
            let verified = {
                let verifier = loaded.client.id_token_verifier();
                id_token.claims(&verifier, &nonce).map(|_| ())
            };
            match verified {
                Ok(()) => break,
                Err(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                )) if !refreshed => {
                    loaded = self.refresh_jwks(&loaded).await?;
                    refreshed = true;
                }
                Err(e) => return Err(IdpError::IdToken(e.to_string())),
            }
        }
        // The signature covers exactly these bytes; read the claims the core type drops.
        let claims = jwt_payload(&id_token.to_string())
            .ok_or_else(|| IdpError::IdToken("ID token payload is not JSON".into()))?;
        identity_from_claims(&self.name, &self.cfg.user_claim, &claims)
    }

    /// Where to send the browser to end the IdP session, if the IdP advertises it.
    pub fn end_session_url(&self, post_logout_redirect: &str) -> Option<Url> {
        let loaded = self.current().ok()?;
        let mut url = loaded.end_session.clone()?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("post_logout_redirect_uri", post_logout_redirect);
        Some(url)
    }
}

fn jwt_payload(jwt: &str) -> Option<Value> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The most groups/roles an identity may carry, and the longest value kept.
const MAX_LIST: usize = 1000;
const MAX_VALUE: usize = 512;

fn string_claim(claims: &Value, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) if !s.is_empty() && s.len() <= MAX_VALUE => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn list_claim(claims: &Value, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= MAX_VALUE && !s.contains(','))
            .take(MAX_LIST)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_VALUE => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Maps verified ID token claims to the gateway's identity.
pub fn identity_from_claims(
    provider: &str,
    user_claim: &str,
    claims: &Value,
) -> Result<Identity, IdpError> {
    let user = string_claim(claims, user_claim).ok_or_else(|| {
        IdpError::IdToken(format!(
            "ID token has no usable {user_claim:?} claim (the provider's user_claim)"
        ))
    })?;
    Ok(Identity {
        provider: provider.to_string(),
        user,
        email: string_claim(claims, "email"),
        name: string_claim(claims, "name").or_else(|| string_claim(claims, "preferred_username")),
        tenant: string_claim(claims, "tid"),
        groups: list_claim(claims, "groups"),
        roles: list_claim(claims, "roles"),
        name_id: None,
        session_index: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_map_to_identity() {
        let c = json!({"sub":"s","oid":"o","tid":"t","email":"a@b","name":"A",
            "groups":["g1","g,2",""],"roles":"R"});
        let id = identity_from_claims("p", "oid", &c).unwrap();
        assert_eq!(id.user, "o");
        assert_eq!(id.tenant.as_deref(), Some("t"));
        assert_eq!(id.groups, vec!["g1"]);
        assert_eq!(id.roles, vec!["R"]);
        assert!(identity_from_claims("p", "upn", &c).is_err());
    }
}
