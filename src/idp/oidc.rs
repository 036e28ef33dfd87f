//! OpenID Connect relying party: discovery, authorization code + PKCE (S256), state and nonce,
//! code exchange, ID token validation (signature, iss, aud, exp, nonce), and a JWKS cache
//! refreshed on an unknown `kid`.
//!
//! Discovery is done by hand (fetch JSON, parse `CoreProviderMetadata`, fetch the JWKS) rather
//! than with `discover_async`, so the gateway controls key refresh and can later accept
//! Entra's templated multi-tenant issuer (see docs/entra.md §3) in the Entra module.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    SignatureVerificationError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use super::claims::{audiences, id_token_claims, identity_from_claims, token_times};
use super::claims::{issuer_matches, jwt_kid, jwt_part, jwt_payload, list_claim, string_claim};
use super::dialect::{Dialect, IssuerFacts};
use super::entra;
use super::settings::OidcConfig;
use super::{Begun, IdentityProvider, IdpError};
use crate::assurance::Ask;
use crate::identity::{shared, Identity};
use crate::policy::Deny;
use crate::session::{now_secs, Grant};

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

mod load;

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
    /// The domain typed on the address page, and its tenant (home-realm discovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hr: Option<super::realm::Realm>,
    /// The return address is on another served host: its handoff's browser binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hb: Option<String>,
    /// What the sign-in asked for (a route's `require:`), and the session a step-up upgrades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub su: Option<Ask>,
}

/// A fetched key set and what the typed one drops.
struct Keys {
    set: CoreJsonWebKeySet,
    issuers: HashMap<String, String>,
    ambiguous: Vec<String>,
}

pub(super) struct Loaded {
    metadata: CoreProviderMetadata,
    pub(super) client: Client,
    jwks_uri: Url,
    end_session: Option<Url>,
    /// The discovery document's issuer (Entra multi-tenant: the `{tenantid}` template).
    issuer: String,
    /// `kid` → the key's own `issuer` member (Entra), which limits what it may sign for.
    key_issuers: HashMap<String, String>,
    /// Kids that several keys of the set claim: their keys are dropped from the set.
    ambiguous: Vec<String>,
    /// The provider advertises RFC 9207 (`authorization_response_iss_parameter_supported`):
    /// every callback must then carry `iss`.
    iss_parameter: bool,
    fetched_at: Instant,
}

pub struct OidcProvider {
    pub name: String,
    pub cfg: OidcConfig,
    pub(super) http: reqwest::Client,
    redirect_uri: RedirectUrl,
    loaded: RwLock<Option<Arc<Loaded>>>,
    jwks_refresh: Mutex<Instant>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Standard or Entra: asked once at each step where they differ.
    pub(super) dialect: Dialect,
    /// The signing algorithms accepted (`signing_algs`), whatever the provider advertises.
    algs: Vec<CoreJwsSigningAlgorithm>,
    /// How the gateway proves itself at the token endpoint.
    pub(super) credential: Arc<super::credential::Credential>,
    /// A route of the current configuration passes ID tokens upstream (`pass_id_token`):
    /// sessions keep theirs whatever the logout needs. Set on every (re)load.
    id_tokens_passed: AtomicBool,
}

impl OidcProvider {
    pub fn new(
        name: String,
        cfg: OidcConfig,
        redirect_uri: Url,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Self, IdpError> {
        let http = crate::fetch::client(Duration::from_secs(10)).map_err(IdpError::Setup)?;
        let algs = cfg
            .signing_algs
            .iter()
            .map(|a| {
                serde_json::from_value::<CoreJwsSigningAlgorithm>(Value::String(a.clone()))
                    .map_err(|_| IdpError::Setup(format!("unknown signing algorithm {a:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            algs,
            credential: Arc::new(super::credential::Credential::new(
                cfg.credential.clone(),
                &cfg.client_id,
            )),
            name,
            http,
            redirect_uri: RedirectUrl::from_url(redirect_uri),
            loaded: RwLock::new(None),
            jwks_refresh: Mutex::new(Instant::now() - MIN_JWKS_REFRESH),
            metrics,
            dialect: Dialect::of(&cfg),
            cfg,
            id_tokens_passed: AtomicBool::new(false),
        })
    }

    /// Whether a route of the configuration now serving passes ID tokens upstream.
    pub fn set_id_tokens_passed(&self, passed: bool) {
        self.id_tokens_passed.store(passed, Ordering::Relaxed);
    }

    /// The ID token a session keeps in its grant: only where the logout or a route reads it.
    pub(super) fn kept_id_token(&self, raw: String) -> Option<String> {
        (self.dialect.logout_needs_id_token() || self.id_tokens_passed.load(Ordering::Relaxed))
            .then_some(raw)
    }

    /// Entra's settings, when this provider speaks Entra's dialect.
    pub(crate) fn entra(&self) -> Option<&entra::EntraSettings> {
        self.dialect.entra()
    }

    pub fn is_ready(&self) -> bool {
        self.loaded.read().map(|l| l.is_some()).unwrap_or(false)
    }

    pub(super) fn current(&self) -> Result<Arc<Loaded>, IdpError> {
        self.loaded
            .read()
            .ok()
            .and_then(|l| l.clone())
            .ok_or(IdpError::NotReady)
    }

    /// With `max_age`, the IdP's `auth_time` must show a sign-in that recent: it is verified,
    /// not taken on trust from the request.
    fn check_auth_time(&self, claims: &Value) -> Result<(), IdpError> {
        let Some(max_age) = self.cfg.hints.max_age else {
            return Ok(());
        };
        let auth_time = claims
            .get("auth_time")
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                IdpError::IdToken("max_age was asked for, but the ID token has no auth_time".into())
            })?;
        let age = crate::session::now_secs().saturating_sub(auth_time);
        if age > max_age + self.cfg.clock_skew.as_secs() {
            return Err(IdpError::IdToken(format!(
                "the user last authenticated {age}s ago, more than max_age ({max_age}s)"
            )));
        }
        Ok(())
    }

    /// What verified token claims prove about the sign-in (`auth_time`, `acrs`, a second
    /// factor), and the claims the routes' rules name.
    fn assurance(&self, claims: &Value, identity: &mut Identity) {
        let (auth_time, assured) =
            crate::assurance::from_claims(claims, &self.cfg.mfa_acr_values, now_secs());
        identity.auth_time = auth_time;
        identity.more.set(|r| &mut r.assured, assured);
        let rules = crate::assurance::rule_claims(claims, &self.cfg.rule_claims);
        identity.more.set(|r| &mut r.rule_claims, rules);
    }

    /// What a token request adds to prove who the gateway is (none for a secret), for the
    /// token endpoint of `loaded`.
    pub(super) fn token_fields(
        &self,
        loaded: &Loaded,
    ) -> Result<super::credential::Fields, IdpError> {
        let endpoint = loaded
            .metadata
            .token_endpoint()
            .map(|t| t.url().to_string())
            .unwrap_or_default();
        self.credential
            .fields(&endpoint)
            .map_err(|e| IdpError::Credential(e.to_string()))
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
        let keys = self.fetch_jwks(&current.jwks_uri).await?;
        log::info!(
            "provider {}: signing keys refreshed after an unknown key id",
            self.name
        );
        let metadata = current.metadata.clone().set_jwks(keys.set);
        let refreshed = Arc::new(Loaded {
            client: self.client_for(&metadata),
            metadata,
            jwks_uri: current.jwks_uri.clone(),
            end_session: current.end_session.clone(),
            issuer: current.issuer.clone(),
            key_issuers: keys.issuers,
            ambiguous: keys.ambiguous,
            iss_parameter: current.iss_parameter,
            fetched_at: current.fetched_at,
        });
        if let Ok(mut slot) = self.loaded.write() {
            *slot = Some(refreshed.clone());
        }
        Ok(refreshed)
    }

    fn jwks_refresh_due(&self) -> bool {
        self.jwks_refresh
            .try_lock()
            .map(|last| last.elapsed() >= MIN_JWKS_REFRESH)
            .unwrap_or(false)
    }

    /// Builds the authorization redirect and the state to keep until the callback.
    pub fn begin(&self, return_to: String, ask: &Ask) -> Result<(Url, PendingLogin), IdpError> {
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
        let h = &self.cfg.hints;
        if let Some(d) = &h.domain_hint {
            req = req.add_extra_param("domain_hint", d.clone());
        }
        if let Some(p) = &h.prompt {
            req = req.add_extra_param("prompt", p.clone());
        }
        // A route's max_age is the stricter of the two.
        let max_age = match (h.max_age, ask.max_age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(m) = max_age {
            req = req.add_extra_param("max_age", m.to_string());
        }
        if let Some(claims) = ask.claims_request("id_token") {
            req = req.add_extra_param("claims", claims);
        }
        if ask.mfa && !self.cfg.mfa_acr_values.is_empty() {
            req = req.add_extra_param("acr_values", self.cfg.mfa_acr_values.join(" "));
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
                hr: None,
                hb: None,
                su: (!ask.asks_nothing() || ask.session.is_some()).then(|| ask.clone()),
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
    ) -> Result<(Identity, Grant), IdpError> {
        let mut loaded = self.current()?;
        if iss.is_none() && loaded.iss_parameter {
            return Err(IdpError::Callback(
                "callback has no iss parameter although the provider advertises RFC 9207 (authorization_response_iss_parameter_supported): mix-up?".into(),
            ));
        }
        if let Some(iss) = iss {
            if !issuer_matches(&loaded.issuer, iss) {
                return Err(IdpError::Callback(format!(
                    "callback iss {iss:?} is not this provider's issuer (mix-up?)"
                )));
            }
        }
        let mut request = loaded
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| IdpError::Discovery(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.v.clone()));
        for (k, v) in self.token_fields(&loaded)? {
            request = request.add_extra_param(k, v);
        }
        let token = request
            .request_async(&crate::fetch::oauth_client(&self.http))
            .await
            .map_err(|e| IdpError::TokenExchange(token_error(e)))?;
        use openidconnect::{OAuth2TokenResponse, TokenResponse};
        let id_token = token
            .id_token()
            .ok_or_else(|| IdpError::IdToken("token response has no id_token".into()))?;
        let nonce = Nonce::new(pending.n.clone());
        let (identity, claims, raw) = self
            .verify_id_token(&mut loaded, id_token, Some(&nonce))
            .await?;
        self.check_auth_time(&claims)?;
        if let Some(iss) = iss {
            if claims.get("iss").and_then(Value::as_str) != Some(iss) {
                return Err(IdpError::Callback(format!(
                    "callback iss {iss:?} differs from the ID token's issuer (mix-up?)"
                )));
            }
        }
        let grant = Grant {
            refresh_token: token.refresh_token().map(|t| t.secret().clone()),
            id_token: self.kept_id_token(raw),
            login_hint: None,
        };
        Ok((identity, grant))
    }

    /// Verifies an ID token as a sign-in does (signature, refreshing the key set once on an
    /// unknown key, then `nonce` by `nonce`, audience, times, the dialect's issuer rules) and
    /// reads its identity. Returns the identity, the claims and the token's text. `nonce`:
    /// the sign-in's; `None` for a refreshed token (which need not carry one).
    pub(super) async fn verify_id_token(
        &self,
        loaded: &mut Arc<Loaded>,
        id_token: &openidconnect::core::CoreIdToken,
        nonce: Option<&Nonce>,
    ) -> Result<(Identity, Value, String), IdpError> {
        let mut refreshed = false;
        loop {
            let verified = {
                let verifier = self.verifier(loaded, loaded.client.id_token_verifier());
                match nonce {
                    Some(n) => id_token.claims(&verifier, n).map(|_| ()),
                    None => id_token
                        .claims(&verifier, |_: Option<&Nonce>| Ok(()))
                        .map(|_| ()),
                }
            };
            match verified {
                Ok(()) => break,
                Err(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                )) if !refreshed => {
                    *loaded = self.refresh_jwks(loaded).await?;
                    refreshed = true;
                }
                Err(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                )) => {
                    let kid = jwt_kid(&id_token.to_string());
                    return Err(IdpError::IdToken(no_key(loaded, kid.as_deref())));
                }
                Err(e) => return Err(IdpError::IdToken(e.to_string())),
            }
        }
        // The signature covers exactly these bytes; read the claims the core type drops.
        let raw = id_token.to_string();
        let claims = jwt_payload(&raw)
            .ok_or_else(|| IdpError::IdToken("ID token payload is not JSON".into()))?;
        id_token_claims(
            &claims,
            &self.cfg.client_id,
            now_secs(),
            self.cfg.clock_skew,
        )
        .map_err(IdpError::IdToken)?;
        self.dialect
            .id_token_issuer(&loaded.facts(), &raw, &claims)
            .map_err(IdpError::IdToken)?;
        let mut identity = identity_from_claims(&self.name, &self.cfg.user_claim, &claims)?;
        let headers = super::claims::header_claims(&self.name, &claims, &self.cfg.header_claims);
        identity.more.set(|r| &mut r.claims, headers);
        self.assurance(&claims, &mut identity);
        self.dialect
            .identity(&self.name, &claims, &mut identity)
            .await?;
        Ok((identity, claims, raw))
    }

    /// The verifier with this provider's clock skew, and (Entra) the issuer left to the
    /// dialect, which knows the `{tenantid}` template.
    fn verifier<'a>(
        &self,
        loaded: &Loaded,
        v: openidconnect::core::CoreIdTokenVerifier<'a>,
    ) -> openidconnect::core::CoreIdTokenVerifier<'a> {
        // openidconnect checks `exp` against this clock and nothing against a future one:
        // running it `clock_skew` behind tolerates that much drift on expiry.
        let skew = chrono::Duration::from_std(self.cfg.clock_skew).unwrap_or_default();
        let v = v
            .set_time_fn(move || chrono::Utc::now() - skew)
            // Only the configured algorithms, never what the provider's metadata offers: a
            // provider advertising HS256 must not turn the client secret into a signing key.
            .set_allowed_algs(self.algs.iter().cloned())
            .set_issue_time_verifier_fn(move |iat| {
                if iat > chrono::Utc::now() + skew {
                    Err(format!("iat {iat} is in the future"))
                } else {
                    Ok(())
                }
            });
        if self.dialect.library_checks_issuer(&loaded.issuer) {
            v
        } else {
            v.require_issuer_match(false)
        }
    }

    /// Validates an `Authorization: Bearer` access token for this provider's `api_audience`:
    /// signature against the provider's JWKS (RS256/PS256/ES256 only, refreshed once on an
    /// unknown key), `aud`, `exp`/`nbf` with the clock skew, the issuer (Entra: per-tenant
    /// template, v1 or v2), then the Entra identity rules of a sign-in (tenant allow-list,
    /// trusted email, groups overage through Graph). An app-only token (`idtyp: app`, or no
    /// `scp`) must carry `roles`: Entra hands app tokens to any app that asks, assigned or not.
    pub fn accepts_bearer(&self) -> bool {
        self.cfg.api_audience.is_some()
    }

    pub async fn verify_bearer(&self, token: &str) -> Result<Identity, IdpError> {
        let bad = IdpError::AccessToken;
        let Some(audience) = &self.cfg.api_audience else {
            return Err(bad(
                "this provider accepts no bearer tokens (no api_audience)".into(),
            ));
        };
        if token.len() > 16 * 1024 {
            return Err(bad("token is larger than 16 KiB".into()));
        }
        let loaded = self.check_signature(token).await?;
        let claims = jwt_payload(token).ok_or_else(|| bad("JWT payload is not JSON".into()))?;
        let audiences = audiences(&claims);
        if !audiences.contains(&audience.as_str()) {
            return Err(bad(format!(
                "token audience {audiences:?} is not this API ({audience:?})"
            )));
        }
        token_times(&claims, now_secs(), self.cfg.clock_skew).map_err(bad)?;
        if claims.get("nonce").is_some() {
            return Err(bad("an ID token is not an access token".into()));
        }
        self.dialect
            .token_issuer(&loaded.facts(), token, &claims, self.cfg.api_versions)
            .map_err(bad)?;
        let app_only = claims.get("idtyp").and_then(Value::as_str) == Some("app")
            || claims.get("scp").is_none();
        let roles = list_claim(&claims, "roles");
        if app_only && roles.is_empty() {
            return Err(IdpError::Denied(
                Deny::NotAssigned,
                "app-only token carries no roles (the calling app is not assigned an app role)"
                    .into(),
            ));
        }
        let user = string_claim(&claims, &self.cfg.user_claim)
            .or_else(|| string_claim(&claims, "oid"))
            .or_else(|| string_claim(&claims, "sub"))
            .ok_or_else(|| bad("token names no subject".into()))?;
        let mut identity = Identity {
            provider: shared(&self.name),
            user: user.into(),
            email: string_claim(&claims, "email").map(Into::into),
            name: if app_only {
                string_claim(&claims, "azp").or_else(|| string_claim(&claims, "appid"))
            } else {
                string_claim(&claims, "name")
            }
            .map(Into::into),
            tenant: string_claim(&claims, "tid").map(|t| shared(&t)),
            groups: list_claim(&claims, "groups").into(),
            roles: roles.into(),
            more: crate::identity::Rare {
                claims: super::claims::header_claims(&self.name, &claims, &self.cfg.header_claims),
                ..Default::default()
            }
            .into(),
            ..Default::default()
        };
        self.assurance(&claims, &mut identity);
        // The same rules as at sign-in (Entra: allowed tenants, the nOAuth-safe email (an
        // app has none), and a groups overage looked up in Graph, cached per user).
        self.dialect
            .identity(&self.name, &claims, &mut identity)
            .await?;
        Ok(identity)
    }

    /// A JWT's signature against this provider's keys: RS256/PS256/ES256 only (never a
    /// shared-secret algorithm), the key named by `kid` (refreshed once on an unknown key).
    /// Returns the key set it was checked with.
    pub(super) async fn check_signature(&self, token: &str) -> Result<Arc<Loaded>, IdpError> {
        use openidconnect::JsonWebKey;
        let bad = IdpError::AccessToken;
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not a signed JWT (three dot-separated parts)".into()));
        };
        let header = jwt_part(token, 0).ok_or_else(|| bad("JWT header is not JSON".into()))?;
        let alg: openidconnect::core::CoreJwsSigningAlgorithm = header
            .get("alg")
            .cloned()
            .and_then(|a| serde_json::from_value(a).ok())
            .ok_or_else(|| bad("JWT header has no known alg".into()))?;
        // Symmetric algorithms never: an API token keyed with a secret the gateway shares
        // (or with a public key read as one) proves nothing about who issued it.
        use openidconnect::JwsSigningAlgorithm;
        if alg.uses_shared_secret() || !self.algs.contains(&alg) {
            return Err(bad(format!(
                "signing algorithm {} is not accepted",
                header.get("alg").map(|a| a.to_string()).unwrap_or_default()
            )));
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string);
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| bad("JWT signature is not base64url".into()))?;
        let message = format!("{h}.{p}");
        let mut loaded = self.current()?;
        let mut refreshed = false;
        loop {
            let keys = loaded.metadata.jwks().keys();
            let key = match kid.as_deref() {
                // Ambiguous kids were dropped from the set: at most one key per kid is left.
                Some(kid) => keys
                    .iter()
                    .find(|k| k.key_id().map(|i| i.as_str()) == Some(kid)),
                // No kid: only a set of exactly one key says which key it is.
                None if keys.len() == 1 && self.dialect.kid_optional() => keys.first(),
                None => {
                    return Err(bad(
                        "token header names no kid and the provider has several keys".into(),
                    ))
                }
            };
            match key {
                Some(key) => {
                    key.verify_signature(&alg, message.as_bytes(), &signature)
                        .map_err(|e| bad(format!("bad signature: {e}")))?;
                    break;
                }
                // Anyone can send a token with a made-up kid: refresh only when no refresh
                // happened lately, and never make the caller wait for one.
                None if !refreshed && self.jwks_refresh_due() => {
                    loaded = self.refresh_jwks(&loaded).await?;
                    refreshed = true;
                }
                None => return Err(bad(no_key(&loaded, kid.as_deref()))),
            }
        }
        Ok(loaded)
    }

    /// For `authgate explain`: the signature check, then Entra's issuer, version and key
    /// rules (`id_token`: the v2.0 rules of a sign-in; else the API's `api_token_versions`),
    /// exactly as the gateway makes them.
    pub async fn explain_signature(
        &self,
        token: &str,
        claims: &Value,
        id_token: bool,
    ) -> (Result<(), String>, Result<(), String>) {
        let loaded = match self.check_signature(token).await {
            Ok(l) => l,
            Err(e) => {
                return (
                    Err(e.to_string()),
                    Err("not checked: the signature failed".into()),
                )
            }
        };
        let versions = if id_token {
            entra::Versions::V2
        } else {
            self.cfg.api_versions
        };
        let issuer = self
            .dialect
            .token_issuer(&loaded.facts(), token, claims, versions);
        (Ok(()), issuer)
    }

    /// Where to send the browser to end the IdP session, if the IdP advertises it: with the
    /// session's last ID token as `id_token_hint` where the session kept one, and the
    /// identity's `login_hint` claim as `logout_hint` (Entra then skips its account picker).
    pub fn end_session_url(
        &self,
        identity: &Identity,
        grant: Option<&Grant>,
        post_logout_redirect: &str,
    ) -> Option<Url> {
        let loaded = self.current().ok()?;
        let mut url = loaded.end_session.clone()?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.cfg.client_id)
                .append_pair("post_logout_redirect_uri", post_logout_redirect);
            if let Some(t) = grant.and_then(|g| g.id_token.as_deref()) {
                q.append_pair("id_token_hint", t);
            }
            let hint = identity.login_hint.as_deref();
            if let Some(h) = hint.or_else(|| grant.and_then(|g| g.login_hint.as_deref())) {
                q.append_pair("logout_hint", h);
            }
        }
        Some(url)
    }
}

/// Of several providers taking API tokens on one route, the one whose issuer the (not yet
/// verified) token names, or the first. Only whose keys and rules judge the token depends on
/// this: a token naming one issuer and signed by another's keys fails that provider's checks.
pub(crate) fn pick_by_issuer<'a>(providers: &[&'a OidcProvider], token: &str) -> &'a OidcProvider {
    let iss = jwt_payload(token).and_then(|c| c.get("iss")?.as_str().map(str::to_string));
    let named = iss.as_deref().and_then(|iss| {
        providers
            .iter()
            .copied()
            .find(|p| p.current().is_ok_and(|l| p.dialect.names(&l.issuer, iss)))
    });
    named.unwrap_or(providers[0])
}

/// What a token endpoint's refusal or failure says, in one line.
pub(super) fn token_error<RE: std::error::Error + 'static, T: openidconnect::ErrorResponse>(
    e: openidconnect::RequestTokenError<RE, T>,
) -> String {
    use openidconnect::RequestTokenError as E;
    match e {
        E::ServerResponse(r) => r.to_string(),
        E::Request(e) => format!("token endpoint unreachable: {e}"),
        E::Parse(e, _) => format!("token response does not parse: {e}"),
        E::Other(e) => e,
    }
}

impl Loaded {
    pub(super) fn facts(&self) -> IssuerFacts<'_> {
        IssuerFacts {
            issuer: &self.issuer,
            key_issuers: &self.key_issuers,
        }
    }
}

/// Why no key verifies a token under `kid`.
fn no_key(loaded: &Loaded, kid: Option<&str>) -> String {
    match kid {
        Some(kid) if loaded.ambiguous.iter().any(|a| a == kid) => format!(
            "the provider's key set lists kid {kid:?} more than once, so tokens under it are refused"
        ),
        Some(kid) => format!("no signing key of the provider has kid {kid:?}"),
        None => "no signing key matches the token (it names no kid)".into(),
    }
}

#[async_trait::async_trait]
impl IdentityProvider for OidcProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn protocol(&self) -> &'static str {
        "oidc"
    }
    async fn load(&self) -> Result<(), IdpError> {
        OidcProvider::load(self).await
    }
    fn age(&self) -> Option<Duration> {
        OidcProvider::age(self)
    }
    fn is_ready(&self) -> bool {
        OidcProvider::is_ready(self)
    }
    fn begin(&self, return_to: String, ask: &Ask) -> Result<Begun, IdpError> {
        let (url, pending) = OidcProvider::begin(self, return_to, ask)?;
        Ok(Begun {
            url,
            key: pending.s.clone(),
            pending: serde_json::to_value(&pending).map_err(|e| IdpError::Setup(e.to_string()))?,
            cross_site: false,
        })
    }
    fn sign_out_url(
        &self,
        identity: &Identity,
        grant: Option<&Grant>,
        signed_out: &str,
    ) -> Option<Url> {
        self.end_session_url(identity, grant, signed_out)
    }
}
