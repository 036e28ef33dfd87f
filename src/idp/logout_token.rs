//! OpenID Connect Back-Channel Logout 1.0: the `logout_token` an OpenID provider POSTs when
//! a user's session at the provider ends. Believed only when the provider signed it and it
//! says exactly that: every claim of §2.4 is checked here, the token's single use by the
//! caller (through the session store, so on every replica).

use serde_json::Value;

use super::claims::{audiences, jwt_part, string_claim};
use super::entra::Versions;
use super::oidc::OidcProvider;

/// The member of `events` that makes a JWT a logout token (§2.4).
pub(crate) const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// The largest logout token read.
pub(crate) const MAX_LOGOUT_TOKEN: usize = 16 * 1024;
/// A logout token older than this (by `iat`) is refused, and its `jti` is remembered this
/// long (plus the clock skew): a replay inside the window is caught by the store, one after it
/// by its age.
pub(crate) const MAX_AGE_SECS: u64 = 300;

/// Whose sessions a logout token ends: the provider's `sub`, its session `sid`, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogoutToken {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
}

/// Why a logout token was refused. `reason()` is a bounded label for logs and the answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogoutTokenError {
    #[error("the logout token is larger than {MAX_LOGOUT_TOKEN} bytes")]
    TooLarge,
    #[error("{0}")]
    Signature(String),
    #[error("typ {0:?} is not a logout token's (logout+jwt)")]
    Type(String),
    #[error("issuer: {0}")]
    Issuer(String),
    #[error("audience {0:?} does not name this client")]
    Audience(Vec<String>),
    #[error("{0}")]
    Time(String),
    #[error("no jti (a logout token must be single-use)")]
    NoJti,
    #[error("events has no {BACKCHANNEL_EVENT} member")]
    NotALogoutEvent,
    #[error("neither sub nor sid names whose session ended")]
    NoSubject,
    #[error("a logout token carries no nonce (this is an ID token)")]
    Nonce,
}

impl LogoutTokenError {
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            LogoutTokenError::TooLarge => "too_large",
            LogoutTokenError::Signature(_) => "signature",
            LogoutTokenError::Type(_) => "typ",
            LogoutTokenError::Issuer(_) => "issuer",
            LogoutTokenError::Audience(_) => "audience",
            LogoutTokenError::Time(_) => "time",
            LogoutTokenError::NoJti => "jti",
            LogoutTokenError::NotALogoutEvent => "events",
            LogoutTokenError::NoSubject => "subject",
            LogoutTokenError::Nonce => "nonce",
        }
    }
}

impl OidcProvider {
    /// Checks a logout token as §2.6 asks: the provider's signature (asymmetric algorithms
    /// only, the key named by `kid`), `typ` if present, `iss` (the provider's issuer rule),
    /// `aud` (this client), `iat` within the clock skew and not older than `MAX_AGE_SECS`,
    /// `exp` if present, a `jti`, the back-channel `events` member, `sub` or `sid`, and no
    /// `nonce`. `now` is seconds since the epoch. Single use is the caller's (the store).
    pub(crate) async fn verify_logout_token(
        &self,
        token: &str,
        now: u64,
    ) -> Result<LogoutToken, LogoutTokenError> {
        if token.len() > MAX_LOGOUT_TOKEN {
            return Err(LogoutTokenError::TooLarge);
        }
        let loaded = self.check_signature(token).await.map_err(|e| {
            LogoutTokenError::Signature(match e {
                super::IdpError::AccessToken(why) => why,
                other => other.to_string(),
            })
        })?;
        let header = jwt_part(token, 0).unwrap_or(Value::Null);
        if let Some(typ) = header.get("typ") {
            let t = typ.as_str().unwrap_or("").to_ascii_lowercase();
            let t = t.strip_prefix("application/").unwrap_or(&t);
            if t != "logout+jwt" && t != "jwt" {
                return Err(LogoutTokenError::Type(typ.to_string()));
            }
        }
        let claims = jwt_part(token, 1).filter(Value::is_object).ok_or_else(|| {
            LogoutTokenError::Signature("the payload is not a JSON object".into())
        })?;
        self.dialect
            .token_issuer(&loaded.facts(), token, &claims, Versions::V2)
            .map_err(LogoutTokenError::Issuer)?;
        let audiences = audiences(&claims);
        if !audiences.contains(&self.cfg.client_id.as_str()) {
            let named = audiences.iter().map(|a| a.to_string()).collect();
            return Err(LogoutTokenError::Audience(named));
        }
        self.logout_token_times(&claims, now)?;
        let jti = string_claim(&claims, "jti")
            .filter(|j| j.len() <= 256)
            .ok_or(LogoutTokenError::NoJti)?;
        let is_logout = claims
            .get("events")
            .and_then(|e| e.get(BACKCHANNEL_EVENT))
            .is_some_and(Value::is_object);
        if !is_logout {
            return Err(LogoutTokenError::NotALogoutEvent);
        }
        if claims.get("nonce").is_some() {
            return Err(LogoutTokenError::Nonce);
        }
        let (sub, sid) = (string_claim(&claims, "sub"), string_claim(&claims, "sid"));
        if sub.is_none() && sid.is_none() {
            return Err(LogoutTokenError::NoSubject);
        }
        Ok(LogoutToken { sub, sid, jti })
    }

    /// `iat` required: not ahead of `now` beyond the skew, nor older than `MAX_AGE_SECS`;
    /// `exp`, when present, not passed.
    fn logout_token_times(&self, claims: &Value, now: u64) -> Result<(), LogoutTokenError> {
        let skew = self.cfg.clock_skew.as_secs();
        let time = |name: &str| claims.get(name).map(|v| v.as_u64());
        let bad = |s: String| Err(LogoutTokenError::Time(s));
        match time("iat") {
            None | Some(None) => return bad("no iat".into()),
            Some(Some(iat)) if iat > now + skew => {
                return bad(format!("iat {iat} is in the future"))
            }
            Some(Some(iat)) if iat + MAX_AGE_SECS + skew < now => {
                return bad(format!("iat {iat} is more than {MAX_AGE_SECS} s ago"))
            }
            Some(Some(_)) => {}
        }
        match time("exp") {
            Some(None) => bad("exp is not a number".into()),
            Some(Some(exp)) if exp + skew <= now => bad(format!("expired at {exp}")),
            _ => Ok(()),
        }
    }
}

impl OidcProvider {
    /// Whether `iss` (a front-channel logout's) is this provider's issuer, exactly (with
    /// Entra's multi-tenant template, any tenant's).
    pub fn names_issuer(&self, iss: &str) -> bool {
        self.current()
            .is_ok_and(|l| super::claims::issuer_matches(l.facts().issuer, iss))
    }

    /// The origin of the provider's issuer: where its front-channel logout iframes are hosted.
    pub fn issuer_origin(&self) -> Option<String> {
        let origin = self.cfg.issuer.origin();
        origin.is_tuple().then(|| origin.ascii_serialization())
    }
}
