//! A re-check of an OpenID Connect session: a sign-in without the browser. The refresh token
//! the session keeps is redeemed, and the new ID token is verified with the sign-in's rules
//! (signature, issuer, audience, times, the dialect's tenant and overage rules). It must name
//! the same user: the same `sub`, user key and tenant.

use openidconnect::{OAuth2TokenResponse, RefreshToken, RequestTokenError, Scope, TokenResponse};

use openidconnect::core::CoreTokenResponse;

use super::oidc::{token_error, Loaded, OidcProvider};
use super::IdpError;
use crate::identity::Identity;
use crate::policy::Deny;
use crate::session::Grant;

/// Why a re-check did not vouch for the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecheckFailure {
    /// The IdP answered and refused (`invalid_grant`: the token was revoked, the user disabled,
    /// consent withdrawn), or its answer names someone else: the session ends.
    Refused(String),
    /// The IdP (or Graph) could not be reached or failed: `recheck_grace` applies.
    Unreachable(String),
}

impl RecheckFailure {
    pub fn why(&self) -> &str {
        match self {
            RecheckFailure::Refused(w) | RecheckFailure::Unreachable(w) => w,
        }
    }
}

/// Token endpoint errors that say "not now" rather than "no".
const TRANSIENT: [&str; 2] = ["temporarily_unavailable", "server_error"];

impl OidcProvider {
    /// Redeems `grant`'s refresh token and verifies the new ID token for the session of
    /// `was`. Returns the identity as the IdP now sees it and the grant to keep (a rotated
    /// refresh token replaces the old one; an IdP that does not rotate keeps the old).
    pub async fn refresh(
        &self,
        grant: &Grant,
        was: &Identity,
    ) -> Result<(Identity, Grant), RecheckFailure> {
        use RecheckFailure::{Refused, Unreachable};
        let Some(rt) = grant.refresh_token.as_deref() else {
            return Err(Refused(
                "the session keeps no refresh token (the provider issued none at sign-in)".into(),
            ));
        };
        let mut loaded = self.current().map_err(|e| Unreachable(e.to_string()))?;
        let token = self.redeem(&loaded, rt, None).await?;
        let Some(id_token) = token.id_token() else {
            return Err(Refused(
                "the refresh answer has no ID token, so who the user is cannot be checked again"
                    .into(),
            ));
        };
        let (mut identity, claims, raw) = self
            .verify_id_token(&mut loaded, id_token, None)
            .await
            .map_err(|e| match e {
            IdpError::Denied(Deny::GroupsUnresolved, why) => Unreachable(why),
            IdpError::NotReady | IdpError::Discovery(_) => Unreachable(e.to_string()),
            other => Refused(other.to_string()),
        })?;
        let sub = claims.get("sub").and_then(serde_json::Value::as_str);
        if sub != was.name_id.as_deref()
            || identity.user != was.user
            || identity.tenant != was.tenant
        {
            return Err(Refused(format!(
                "the refreshed ID token names another user (sub {:?}, user {:?}, tenant {:?})",
                sub.unwrap_or("-"),
                identity.user,
                identity.tenant.as_deref().unwrap_or("-")
            )));
        }
        if identity.session_index.is_none() {
            identity.session_index.clone_from(&was.session_index);
        }
        // Sessions made before the hint moved to the identity kept it in their grant.
        if identity.login_hint.is_none() {
            identity.login_hint = was
                .login_hint
                .clone()
                .or_else(|| grant.login_hint.as_deref().map(Into::into));
        }
        let kept = Grant {
            refresh_token: token
                .refresh_token()
                .map(|t| t.secret().clone())
                .or_else(|| grant.refresh_token.clone()),
            id_token: self.kept_id_token(raw),
            login_hint: None,
        };
        Ok((identity, kept))
    }

    /// An access token for another API (`pass_access_token`): the refresh token redeemed for
    /// `scope` (Entra: `api://…/.default`). Returns the token, when it expires (seconds since
    /// the epoch; an answer without `expires_in` is taken to last 5 minutes), and the grant to
    /// keep (a rotated refresh token replaces the old one; the ID token stays).
    pub async fn access_token_for(
        &self,
        grant: &Grant,
        scope: &str,
        now: u64,
    ) -> Result<(String, u64, Grant), RecheckFailure> {
        use RecheckFailure::{Refused, Unreachable};
        let Some(rt) = grant.refresh_token.as_deref() else {
            return Err(Refused(
                "the session keeps no refresh token (the provider issued none at sign-in)".into(),
            ));
        };
        let loaded = self.current().map_err(|e| Unreachable(e.to_string()))?;
        let token = self.redeem(&loaded, rt, Some(scope)).await?;
        let lifetime = token.expires_in().map_or(300, |d| d.as_secs()).max(1);
        let kept = Grant {
            refresh_token: token
                .refresh_token()
                .map(|t| t.secret().clone())
                .or_else(|| grant.refresh_token.clone()),
            ..grant.clone()
        };
        Ok((token.access_token().secret().clone(), now + lifetime, kept))
    }

    /// Redeems refresh token `rt` at the token endpoint (for `scope`, if given). A refusal
    /// other than "not now" is `Refused`.
    async fn redeem(
        &self,
        loaded: &Loaded,
        rt: &str,
        scope: Option<&str>,
    ) -> Result<CoreTokenResponse, RecheckFailure> {
        let rt = RefreshToken::new(rt.to_string());
        let mut request = loaded
            .client
            .exchange_refresh_token(&rt)
            .map_err(|e| RecheckFailure::Unreachable(format!("no token endpoint: {e}")))?;
        if let Some(scope) = scope {
            request = request.add_scope(Scope::new(scope.to_string()));
        }
        let fields = self
            .token_fields(loaded)
            .map_err(|e| RecheckFailure::Unreachable(e.to_string()))?;
        for (k, v) in fields {
            request = request.add_extra_param(k, v);
        }
        match request
            .request_async(&crate::fetch::oauth_client(&self.http))
            .await
        {
            Ok(t) => Ok(t),
            Err(RequestTokenError::ServerResponse(r))
                if !TRANSIENT.contains(&r.error().as_ref()) =>
            {
                Err(RecheckFailure::Refused(match scope {
                    Some(scope) => {
                        format!("the token endpoint refused an access token for {scope:?}: {r}")
                    }
                    None => format!("the token endpoint refused the refresh: {r}"),
                }))
            }
            Err(e) => Err(RecheckFailure::Unreachable(token_error(e))),
        }
    }
}
