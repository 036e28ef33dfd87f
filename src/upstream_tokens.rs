//! Tokens on request, per route (`pass_id_token`, `pass_access_token`), for upstreams that
//! call an API as the user. Off by default, refused on public routes, server-side stores only.
//!
//! - The ID token is the session's latest (from its sign-in or its last re-check), read from
//!   the grant kept beside the session.
//! - An access token is obtained with the session's refresh token for the route's `scope`
//!   (Entra: `api://<app>/.default`) and kept in this process until near its expiry (the last
//!   quarter of its life, at most 5 minutes before). The refresh runs under the session's
//!   lock in the store, the one re-checks take, since an IdP that rotates refresh tokens
//!   revokes the whole grant when a used one comes back; concurrent requests share one flight.
//!
//! Neither is logged, and both are marked sensitive (HTTP/2 never indexes them).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;

use crate::answer::Answer;
use crate::identity::Identity;
use crate::idp::refresh::RecheckFailure;
use crate::idp::Provider;
use crate::route::{AccessTokenPass, Route};
use crate::session::{now_secs, Held, Sessions};

/// How long a request waits for another replica's refresh of the same session.
const LOCK_WAIT: Duration = Duration::from_secs(5);
const LOCK_TTL: Duration = Duration::from_secs(30);

/// Tokens kept in this process: (header value, renew at).
pub(crate) struct UpstreamTokens {
    kept: moka::future::Cache<String, Result<(HeaderValue, u64), Refusal>>,
    /// This process, as a lock owner.
    owner: String,
}

/// Why a token could not be had, as the request is answered.
#[derive(Debug, Clone)]
pub(crate) enum Refusal {
    /// The IdP said no (consent missing, grant revoked): 403.
    Refused(String),
    /// The IdP or the store could not be reached: 502.
    Unreachable(String),
}

/// Headers to set upstream: (name as configured, value).
pub(crate) type TokenHeaders = Vec<(Bytes, HeaderValue)>;

impl UpstreamTokens {
    pub(crate) fn new() -> Self {
        Self {
            kept: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            owner: crate::session::random_token(12),
        }
    }

    /// The route's tokens for this session (none for a bearer-token caller: it holds its own).
    pub(crate) async fn for_route(
        &self,
        sessions: &Sessions,
        providers: &[Arc<Provider>],
        route: &Route,
        identity: &Identity,
        held: Option<&Held>,
    ) -> Result<TokenHeaders, Answer> {
        let mut out = Vec::new();
        let Some(held) = held else { return Ok(out) };
        if let Some(header) = &route.tokens.id_token {
            let key = format!("id {} {}", held.sid, identity.checked_at);
            let got = self
                .kept
                .get_with(key, async {
                    match sessions.grant(&held.sid).await {
                        Ok(g) => Ok((
                            g.and_then(|g| g.id_token)
                                .and_then(|t| sensitive(&t))
                                .unwrap_or_else(|| HeaderValue::from_static("")),
                            u64::MAX,
                        )),
                        Err(e) => Err(Refusal::Unreachable(format!("session store: {e}"))),
                    }
                })
                .await;
            match got {
                Ok((v, _)) if !v.is_empty() => out.push((Bytes::from(header.clone()), v)),
                Ok(_) => {}
                Err(r) => return Err(self.answer(route, identity, r)),
            }
        }
        if let Some(pass) = &route.tokens.access_token {
            match self
                .access_token(sessions, providers, pass, identity, held)
                .await
            {
                Ok(v) => out.push((Bytes::from(pass.header.clone()), v)),
                Err(r) => return Err(self.answer(route, identity, r)),
            }
        }
        Ok(out)
    }

    async fn access_token(
        &self,
        sessions: &Sessions,
        providers: &[Arc<Provider>],
        pass: &AccessTokenPass,
        identity: &Identity,
        held: &Held,
    ) -> Result<HeaderValue, Refusal> {
        let key = format!("at {} {}", held.sid, pass.scope);
        let now = now_secs();
        if let Some(Ok((v, renew_at))) = self.kept.get(&key).await {
            if now < renew_at {
                return Ok(v);
            }
        }
        // Stale, refused a moment ago, or never fetched: one new flight.
        self.kept.invalidate(&key).await;
        let fetched = self
            .kept
            .get_with(
                key.clone(),
                self.fetch(sessions, providers, pass, identity, held),
            )
            .await;
        if fetched.is_err() {
            // A refusal answers this request and the ones already waiting; the next tries anew.
            self.kept.invalidate(&key).await;
        }
        fetched.map(|(v, _)| v)
    }

    /// Redeems the refresh token for `pass.scope` under the session's lock, and keeps the
    /// rotated refresh token.
    async fn fetch(
        &self,
        sessions: &Sessions,
        providers: &[Arc<Provider>],
        pass: &AccessTokenPass,
        identity: &Identity,
        held: &Held,
    ) -> Result<(HeaderValue, u64), Refusal> {
        let provider = providers.iter().find(|p| p.name() == &*identity.provider);
        let Some(Provider::Oidc(oidc)) = provider.map(|p| &**p) else {
            return Err(Refusal::Refused(
                "the session's provider does not issue access tokens".into(),
            ));
        };
        let store = sessions.store();
        let lock = format!("recheck:{}", held.sid);
        let unreachable =
            |e: crate::session::StoreError| Refusal::Unreachable(format!("session store: {e}"));
        let started = std::time::Instant::now();
        while !store
            .lock(&lock, &self.owner, LOCK_TTL)
            .await
            .map_err(unreachable)?
        {
            if started.elapsed() > LOCK_WAIT {
                return Err(Refusal::Unreachable(
                    "another replica holds the session's refresh token for too long".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let result = async {
            let grant = sessions
                .grant(&held.sid)
                .await
                .map_err(unreachable)?
                .unwrap_or_default();
            let now = now_secs();
            let (token, exp, kept) = oidc
                .access_token_for(&grant, &pass.scope, now)
                .await
                .map_err(|e| match e {
                    RecheckFailure::Refused(w) => Refusal::Refused(w),
                    RecheckFailure::Unreachable(w) => Refusal::Unreachable(w),
                })?;
            sessions
                .replace_grant(held, &kept, now)
                .await
                .map_err(unreachable)?;
            let value = sensitive(&token).ok_or_else(|| {
                Refusal::Refused("the access token is not a valid header value".into())
            })?;
            // Renewed in the last quarter of its life, at most 5 minutes before it expires.
            let life = exp.saturating_sub(now);
            Ok((value, exp - (life / 4).min(300)))
        }
        .await;
        if let Err(e) = store.unlock(&lock, &self.owner).await {
            log::warn!("the session's refresh lock was not released (it expires by itself): {e}");
        }
        result
    }

    fn answer(&self, route: &Route, identity: &Identity, r: Refusal) -> Answer {
        let (status, why) = match &r {
            Refusal::Refused(w) => (403, w),
            Refusal::Unreachable(w) => (502, w),
        };
        log::warn!(
            "route {}: no token for {} with {} to pass upstream: {why}",
            route.name,
            identity.user,
            identity.provider
        );
        Answer::page(
            status,
            "The application's access could not be prepared",
            "The gateway could not obtain the token this application needs on your behalf. Try again in a moment; if it persists, tell the application's operators.",
            Some(if status == 403 { "token_refused" } else { "token_unavailable" }),
        )
    }
}

/// A token as a header value that HTTP/2 never indexes.
fn sensitive(token: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(token).ok()?;
    v.set_sensitive(true);
    Some(v)
}
