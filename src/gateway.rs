//! The proxy: `impl ProxyHttp`, reading in the order a request flows.
//!
//! request_filter: the canonical request (or a 400) → gateway endpoints → route match →
//! upstream target and Host set to what was read → strip spoofable identity and forwarding
//! headers → authenticate (bearer or session, then policy; shared with forward-auth) → (no
//! session: sign-in redirect for browsers, 401 for API callers). upstream_request_filter: inject identity headers, drop the gateway's
//! cookies. response_filter: refreshed session cookie. logging: metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use moka::sync::Cache;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};

use crate::canonical::{self, Canonical, Refusal};
use crate::config::{Config, Dialect, RESERVED_PREFIX};
use crate::headers::{without_cookies, HeaderPlan};
use crate::identity::Identity;
use crate::idp::entra::AadError;
use crate::idp::oidc::PendingLogin;
use crate::idp::saml::{PendingSaml, SamlProvider};
use crate::idp::saml_verify::{self, Rejection};
use crate::idp::{IdpError, PendingSignIn, Provider};
use crate::metrics::Metrics;
use crate::pages;
use crate::policy::{self, Deny};
use crate::return_to;
use crate::route::{NoRoute, Route, RouteTable};
use crate::session::{all_cookies, now_secs, Check, Sessions};

mod forward;
mod saml_logout;
mod sign_out;

/// More trips to the IdP than this within `LOOP_WINDOW` is a sign-in loop.
const LOOP_MAX: u32 = 5;
const LOOP_WINDOW: Duration = Duration::from_secs(60);

/// The sealed sign-in loop counter: trips to the IdP that followed a completed sign-in.
#[derive(serde::Serialize, serde::Deserialize)]
struct Trips {
    n: u32,
    t: u64,
}

/// What the shared authentication step (route → bearer or session → policy) came to.
enum Auth {
    /// A public route: nobody needs to be signed in.
    Public,
    Allowed {
        identity: Arc<Identity>,
        /// A re-issued session cookie value (idle timeout), to set on the answer.
        refreshed: Option<String>,
    },
    /// No bearer token and no session: the caller must sign in.
    NoSession,
    /// Refused (bad token, policy denial); the answer is written.
    Answered,
}

/// What an `Authorization: Bearer` header came to.
enum Bearer {
    /// None, or the route's provider takes no bearer tokens.
    Absent,
    Verified(Arc<Identity>),
    /// Refused; the answer is written.
    Answered,
}

/// How long a started sign-in may take before its state cookie is void.
const LOGIN_TTL: Duration = Duration::from_secs(600);
/// More pending sign-ins than this in one browser: clear them instead of adding another.
const MAX_PENDING_LOGINS: usize = 5;

/// Everything built from one configuration. A reload builds a new one and swaps it in whole;
/// in-flight requests finish with the one they started with.
pub struct Core {
    pub cfg: Config,
    routes: RouteTable,
    headers: HeaderPlan,
    pub sessions: Arc<Sessions>,
    pub providers: Vec<Arc<Provider>>,
    login_prefix: String,
    /// Counts this browser's trips to the IdP after completed sign-ins, to break loops.
    loop_cookie: String,
    /// Set when a sign-in completes: the next trip to the IdP counts as a loop round.
    done_cookie: String,
}

impl Core {
    /// Builds from a validated config, reusing the providers (loaded metadata, key caches)
    /// and the session manager (keys, store, revocations) of `previous` where their
    /// configuration is unchanged, so a reload keeps everyone signed in.
    pub fn build(
        cfg: Config,
        previous: Option<&Core>,
        metrics: &Arc<Metrics>,
    ) -> Result<Core, String> {
        let sessions = match previous {
            Some(p) if p.cfg.session == cfg.session => p.sessions.clone(),
            _ => Arc::new(
                Sessions::new(cfg.session.clone())
                    .ok_or("session.secret must be at least 32 bytes")?,
            ),
        };
        let mut providers = Vec::with_capacity(cfg.providers.len());
        for pc in &cfg.providers {
            let reused = previous.and_then(|p| {
                p.cfg
                    .providers
                    .iter()
                    .position(|old| old == pc)
                    .filter(|_| p.cfg.public_url == cfg.public_url)
                    .and_then(|i| p.providers.get(i).cloned())
            });
            providers.push(match reused {
                Some(p) => p,
                None => Arc::new(
                    Provider::build(pc, &cfg.public_url, metrics.clone())
                        .map_err(|e| e.to_string())?,
                ),
            });
        }
        Ok(Core {
            routes: RouteTable::new(&cfg.routes),
            headers: HeaderPlan::new(&cfg.headers)
                .map_err(|e| e.to_string())?
                .with_group_names(
                    cfg.providers
                        .iter()
                        .map(|p| (p.name.clone(), p.group_names.clone()))
                        .collect(),
                ),
            login_prefix: format!("{}_login_", cfg.session.base_name()),
            loop_cookie: format!("{}_loop", cfg.session.cookie_name),
            done_cookie: format!("{}_done", cfg.session.cookie_name),
            sessions,
            providers,
            cfg,
        })
    }

    fn is_own_cookie(&self, name: &str) -> bool {
        name == self.sessions.cfg.cookie_name
            || name.starts_with(&self.login_prefix)
            || name == self.loop_cookie
            || name == self.done_cookie
    }

    /// The peer is a trusted proxy (`trusted_proxies`): its forwarding headers stand.
    fn trusts(&self, session: &Session) -> bool {
        session
            .client_addr()
            .and_then(|a| a.as_inet())
            .is_some_and(|a| self.cfg.trusted_proxies.iter().any(|c| c.contains(a.ip())))
    }

    /// A sealed value of cookie `name` that opens, if the request carries one.
    fn sealed<T: serde::de::DeserializeOwned>(&self, req: &RequestHeader, name: &str) -> Option<T> {
        cookie_values(req, name).find_map(|v| self.sessions.sealer().open::<T>(name, v))
    }

    fn login_cookie_name(&self, state: &str) -> String {
        format!("{}{}", self.login_prefix, &state[..16])
    }

    /// An absolute URL on the gateway's public origin.
    fn public(&self, path: &str) -> String {
        let mut s = self
            .cfg
            .public_url
            .as_str()
            .trim_end_matches('/')
            .to_string();
        s.push_str(path);
        s
    }

    /// The sign-in this browser started with `key` (OIDC state, SAML RelayState), if its
    /// sealed cookie is present, names this provider, matches the key and is not too old.
    fn pending_sign_in<T: PendingSignIn>(
        &self,
        req: &RequestHeader,
        key: &str,
        provider: &str,
    ) -> Option<T> {
        let name = self.login_cookie_name(key);
        let pending = cookie_values(req, &name)
            .find_map(|v| self.sessions.sealer().open::<T>(&name, v))
            .filter(|p| {
                constant_time_eq(p.key().as_bytes(), key.as_bytes())
                    && p.provider() == provider
                    && now_secs().saturating_sub(p.created()) < LOGIN_TTL.as_secs()
            });
        pending
    }

    fn count_login_cookies(&self, req: &RequestHeader) -> Vec<String> {
        req.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .flat_map(|h| h.split(';'))
            .filter_map(|c| c.split_once('=').map(|(n, _)| n.trim().to_string()))
            .filter(|n| n.starts_with(&self.login_prefix))
            .collect()
    }
}

pub struct Gateway {
    core: Arc<ArcSwap<Core>>,
    metrics: Arc<Metrics>,
    /// States of finished callbacks: a replayed callback is refused before reaching the IdP.
    used_states: Cache<String, ()>,
}

#[derive(Default)]
pub struct Ctx {
    core: Option<Arc<Core>>,
    route: Option<Arc<Route>>,
    identity: Option<Arc<Identity>>,
    set_cookie: Option<String>,
    started: Option<Instant>,
    upstream_sent: Option<Instant>,
    /// The canonical `Host` and port (for `X-Forwarded-Host`/`-Port`).
    authority: Option<String>,
    port: Option<u16>,
    /// The peer is a trusted proxy: its forwarding headers are kept and appended to.
    trusted_peer: bool,
}

impl Gateway {
    pub fn new(core: Arc<ArcSwap<Core>>, metrics: Arc<Metrics>) -> Self {
        Self {
            core,
            metrics,
            used_states: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(LOGIN_TTL)
                .build(),
        }
    }

    /// The session, if the request carries a valid one.
    async fn session_of(
        &self,
        core: &Core,
        req: &RequestHeader,
    ) -> Option<(Arc<Identity>, Option<String>)> {
        let name = &core.sessions.cfg.cookie_name;
        let now = now_secs();
        for value in cookie_values(req, name) {
            match core.sessions.check(value, now).await {
                Check::Valid {
                    identity,
                    refreshed,
                } => return Some((identity, refreshed)),
                Check::Rejected(r) => {
                    log::debug!("session cookie rejected: {}", r.label());
                    self.metrics
                        .session_rejections
                        .with_label_values(&[r.label()])
                        .inc();
                }
            }
        }
        None
    }

    /// No session: browsers are sent to sign in, API callers get a 401.
    async fn challenge(&self, core: &Core, session: &mut Session, route: &Route) -> Result<()> {
        let req = session.req_header();
        let path_and_query = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let return_to = return_to::sanitize(path_and_query, &core.cfg.public_url);
        self.deny("unauthenticated");
        if wants_html(req) {
            // A browser that completed a sign-in and yet comes back without a session, again
            // and again within a minute, is in a loop (its session cookie never sticks): say
            // so instead of redirecting once more. Tabs that merely start sign-ins do not
            // count; the counter is sealed, so a client cannot set it.
            let now = now_secs();
            let window = LOOP_WINDOW.as_secs();
            let mut trips = core
                .sealed::<Trips>(req, &core.loop_cookie)
                .filter(|t| now.saturating_sub(t.t) < window)
                .unwrap_or(Trips { n: 0, t: now });
            let completed = core
                .sealed::<u64>(req, &core.done_cookie)
                .is_some_and(|t| now.saturating_sub(t) < window);
            if completed {
                trips.n += 1;
            }
            if trips.n >= LOOP_MAX {
                self.deny("sign_in_loop");
                log::warn!(
                    "sign-in loop: this browser signed in {} times within {window}s without keeping a session (route {}); check that cookies reach {} (public_url scheme and host, third-party cookie blocking, clock)",
                    trips.n,
                    route.name,
                    core.cfg.public_url
                );
                return page(
                    session,
                    429,
                    "Sign-in is going around in circles",
                    "You signed in, but your browser keeps coming back without a session, so the gateway stopped sending you to sign in again. Check that cookies are allowed for this site, wait a minute, and reload. If it persists, tell your administrator: the gateway log names the cause.",
                    None,
                )
                .await;
            }
            let sealed = core
                .sessions
                .sealer()
                .seal(&core.loop_cookie, &trips)
                .unwrap_or_default();
            let counter = core
                .sessions
                .cookie(&core.loop_cookie, &sealed, "/", Some(LOOP_WINDOW));
            let mut extra = vec![counter];
            if completed {
                extra.push(
                    core.sessions
                        .cookie(&core.done_cookie, "", "/", Some(Duration::ZERO)),
                );
            }
            let pending_logins = core.count_login_cookies(req);
            return self
                .start_sign_in(
                    core,
                    session,
                    route.provider,
                    return_to,
                    pending_logins,
                    extra,
                )
                .await;
        }
        // With the route's own provider: a session of any other would not be accepted here.
        let provider = core.providers.get(route.provider).map_or("", |p| p.name());
        let sign_in = format!(
            "{}?rd={}&provider={}",
            core.public(&format!("{RESERVED_PREFIX}/sign_in")),
            percent_encoding::utf8_percent_encode(&return_to, percent_encoding::NON_ALPHANUMERIC),
            percent_encoding::utf8_percent_encode(provider, percent_encoding::NON_ALPHANUMERIC)
        );
        let body = serde_json::json!({
            "error": "unauthenticated",
            "message": "no valid session; sign in first",
            "sign_in": sign_in,
        })
        .to_string();
        respond(
            session,
            401,
            "application/json",
            body.into_bytes(),
            &[("www-authenticate", "Session realm=\"authgate\"".to_string())],
        )
        .await
    }

    async fn start_sign_in(
        &self,
        core: &Core,
        session: &mut Session,
        provider: usize,
        return_to: String,
        pending_logins: Vec<String>,
        extra_cookies: Vec<String>,
    ) -> Result<()> {
        let Some(p) = core.providers.get(provider) else {
            return page(
                session,
                500,
                "Gateway misconfigured",
                "This route names no identity provider.",
                None,
            )
            .await;
        };
        // Each protocol's pending sign-in, sealed under a cookie named after its random key.
        let begun = match p.as_ref() {
            Provider::Oidc(oidc) => oidc.begin(return_to).map(|(url, pending)| {
                let name = core.login_cookie_name(&pending.s);
                let sealed = core.sessions.sealer().seal(&name, &pending);
                (url, name, sealed)
            }),
            Provider::Saml(saml) => saml.begin(return_to).map(|(url, pending)| {
                let name = core.login_cookie_name(&pending.k);
                let sealed = core.sessions.sealer().seal(&name, &pending);
                (url, name, sealed)
            }),
        };
        // The SAML response is a cross-site POST: its pending-sign-in cookie must be sent on it.
        let cross_site = matches!(p.as_ref(), Provider::Saml(_));
        match begun {
            Ok((url, name, sealed)) => {
                let Some(sealed) = sealed else {
                    return page(
                        session,
                        500,
                        "Sign-in failed",
                        "Could not protect the sign-in state.",
                        None,
                    )
                    .await;
                };
                let login_path = format!("{RESERVED_PREFIX}/");
                let pending_cookie = if cross_site {
                    core.sessions
                        .cross_site_cookie(&name, &sealed, &login_path, Some(LOGIN_TTL))
                } else {
                    core.sessions
                        .cookie(&name, &sealed, &login_path, Some(LOGIN_TTL))
                };
                let mut cookies = vec![pending_cookie];
                cookies.extend(extra_cookies);
                // Many abandoned sign-ins: clear them so the Cookie header cannot grow forever.
                if pending_logins.len() >= MAX_PENDING_LOGINS {
                    for old in pending_logins {
                        cookies.push(core.sessions.cookie(
                            &old,
                            "",
                            &login_path,
                            Some(Duration::ZERO),
                        ));
                    }
                }
                redirect(session, url.to_string(), &cookies).await
            }
            Err(e) => {
                log::warn!("sign-in could not start with provider {}: {e}", p.name());
                page(
                    session,
                    503,
                    "Sign-in temporarily unavailable",
                    "The identity provider cannot be reached right now. Try again in a minute; if it persists, tell your administrator.",
                    Some(&e.to_string()),
                )
                .await
            }
        }
    }

    /// Requests under `/_authgate/`: the gateway's own endpoints.
    /// `path` is the canonical path, under the reserved prefix in some spelling of its case.
    async fn own_endpoint(&self, core: &Core, session: &mut Session, path: &str) -> Result<()> {
        let rest = path.get(RESERVED_PREFIX.len()..).unwrap_or("").to_string();
        let rest = rest.as_str();
        match rest {
            "/sign_out" => self.sign_out(core, session).await,
            "/auth" => self.forward_auth(core, session).await,
            "/signed_out" => {
                page(
                    session,
                    200,
                    "You have signed out",
                    "Your session with this gateway has ended. Close the browser to end other sessions too.",
                    None,
                    )
                .await
            }
            "/sign_in" => {
                let q = query_pairs(session.req_header());
                let rd = q.iter().find(|(k, _)| k == "rd").map(|(_, v)| v.as_str()).unwrap_or("/");
                let return_to = return_to::sanitize(rd, &core.cfg.public_url);
                let provider = match q.iter().find(|(k, _)| k == "provider") {
                    Some((_, name)) => core.providers.iter().position(|p| p.name() == name),
                    None => Some(0),
                };
                let Some(provider) = provider else {
                    return page(session, 404, "Unknown identity provider", "No provider by that name is configured.", None).await;
                };
                let pending = core.count_login_cookies(session.req_header());
                self.start_sign_in(core, session, provider, return_to, pending, Vec::new())
                    .await
            }
            _ if rest.starts_with("/saml/") => {
                let mut parts = rest["/saml/".len()..].splitn(2, '/');
                let (name, action) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let Some(p) = core.providers.iter().find(|p| p.name() == name).cloned() else {
                    return page(session, 404, "Unknown identity provider", "No provider by that name is configured.", None).await;
                };
                let Provider::Saml(saml) = p.as_ref() else {
                    return page(session, 404, "Not found", "This provider does not speak SAML.", None).await;
                };
                match action {
                    "acs" => self.saml_acs(core, session, saml).await,
                    "metadata" => {
                        let xml = saml.sp_metadata().into_bytes();
                        respond(session, 200, "application/samlmetadata+xml", xml, &[]).await
                    }
                    "slo" => self.saml_slo(core, session, saml).await,
                    _ => page(session, 404, "Not found", "There is no such gateway page.", None).await,
                }
            }
            _ => match rest.strip_prefix("/callback/") {
                Some(name) => self.callback(core, session, name.to_string()).await,
                None => page(session, 404, "Not found", "There is no such gateway page.", None).await,
            },
        }
    }

    async fn callback(
        &self,
        core: &Core,
        session: &mut Session,
        provider_name: String,
    ) -> Result<()> {
        let Some(provider) = core
            .providers
            .iter()
            .find(|p| p.name() == provider_name)
            .cloned()
        else {
            return page(
                session,
                404,
                "Unknown identity provider",
                "No provider by that name is configured.",
                None,
            )
            .await;
        };
        let q = query_pairs(session.req_header());
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let fail = |reason: &str| self.count_sign_in(provider.name(), reason);
        let restart = core.public(&format!("{RESERVED_PREFIX}/sign_in?rd=%2F"));

        let Some(state) = get("state").filter(|s| is_token(s)) else {
            fail("bad_state");
            log::warn!("sign-in callback for {provider_name} refused: missing or malformed state");
            return page(
                session,
                400,
                "Sign-in failed",
                "The sign-in response had no valid state. Start again.",
                None,
            )
            .await;
        };
        let cookie_name = core.login_cookie_name(state);
        let clear = core.sessions.cookie(
            &cookie_name,
            "",
            &format!("{RESERVED_PREFIX}/"),
            Some(Duration::ZERO),
        );
        let pending: Option<PendingLogin> =
            core.pending_sign_in(session.req_header(), state, &provider_name);
        let Some(pending) = pending else {
            fail("state_mismatch");
            log::warn!("sign-in callback for {provider_name} refused: state does not match a sign-in started in this browser (expired, replayed across browsers, or cookies blocked)");
            // The login cookie (if any) is left alone: it may belong to a genuine sign-in
            // still in flight, and a forged callback must not be able to cancel it.
            return sign_in_failed(
                session,
                400,
                "This sign-in was not started in this browser, or it took too long. Start again.",
                None,
                &restart,
                &[],
            )
            .await;
        };
        if self.used_states.contains_key(state) {
            fail("replay");
            log::warn!("sign-in callback for {provider_name} refused: this callback was already used (replay)");
            return sign_in_failed(
                session,
                400,
                "This sign-in response was already used.",
                None,
                &restart,
                &[("set-cookie", clear)],
            )
            .await;
        }
        self.used_states.insert(state.to_string(), ());

        if let Some(err) = get("error") {
            // Entra's errors carry an AADSTS code and the IDs its support asks for; other IdPs'
            // parse the same way, without them. Never a redirect back to the IdP from here.
            let e = AadError::parse(
                err,
                get("error_description").unwrap_or(""),
                get("error_uri"),
            );
            fail(e.reason());
            let detail = e.detail();
            log::warn!(
                "provider {provider_name} returned an error ({}): {}",
                e.reason(),
                detail.trim_end().replace('\n', "; ")
            );
            let (status, title, message) = e.explain();
            return page_with(
                session,
                status,
                title,
                message,
                Some(&detail),
                None,
                &[("set-cookie", clear)],
            )
            .await;
        }
        let Some(code) = get("code").filter(|c| !c.is_empty() && c.len() <= 4096) else {
            fail("bad_callback");
            return sign_in_failed(
                session,
                400,
                "The sign-in response had no code.",
                None,
                &restart,
                &[("set-cookie", clear)],
            )
            .await;
        };
        let Provider::Oidc(oidc) = provider.as_ref() else {
            return page(
                session,
                404,
                "Not found",
                "This provider does not use this callback.",
                None,
            )
            .await;
        };
        let identity = match oidc.finish(&pending, code, get("iss")).await {
            Ok(id) => id,
            Err(IdpError::Denied(deny, why)) => {
                return self
                    .sign_in_denied(session, &provider_name, deny, &why, vec![clear])
                    .await;
            }
            Err(e) => {
                fail(e.reason());
                log::warn!("sign-in with {provider_name} failed ({}): {e}", e.reason());
                let status = match e {
                    IdpError::NotReady | IdpError::Discovery(_) => 502,
                    _ => 400,
                };
                let message = "The sign-in could not be verified. Start again; if it keeps failing, send the details below to your administrator.";
                let detail = e.to_string();
                let clear = [("set-cookie", clear)];
                return sign_in_failed(session, status, message, Some(&detail), &restart, &clear)
                    .await;
            }
        };
        let audit = serde_json::json!({"protocol": "oidc"});
        let return_to = pending.r.clone();
        self.complete_sign_in(
            core,
            session,
            provider.name(),
            identity,
            &return_to,
            vec![clear],
            audit,
        )
        .await
    }

    /// The IdP vouched for the user, but the gateway will not let them in (tenant, groups that
    /// could not be resolved): a page with the reason, no session, no redirect to the IdP.
    async fn sign_in_denied(
        &self,
        session: &mut Session,
        provider: &str,
        deny: Deny,
        why: &str,
        clear: Vec<String>,
    ) -> Result<()> {
        self.count_sign_in(provider, deny.label());
        self.deny(deny.label());
        log::warn!("sign-in with {provider} denied ({}): {why}", deny.label());
        let (title, message) = deny.explain();
        let status = deny.status();
        let detail = format!("Reason: {}\n{why}", deny.label());
        let clear: Vec<(&str, String)> = clear.into_iter().map(|c| ("set-cookie", c)).collect();
        page_with(session, status, title, message, Some(&detail), None, &clear).await
    }

    /// The protocol-independent end of every sign-in: the session, the audit line, the
    /// success count, and the redirect back (or the page saying the session failed).
    #[allow(clippy::too_many_arguments)]
    async fn complete_sign_in(
        &self,
        core: &Core,
        session: &mut Session,
        provider: &str,
        identity: Identity,
        return_to: &str,
        clear: Vec<String>,
        mut audit: serde_json::Value,
    ) -> Result<()> {
        let (user, tenant) = (identity.user.clone(), identity.tenant.clone());
        match core.sessions.create(identity).await {
            Ok(sealed) => {
                self.count_sign_in(provider, "success");
                audit["provider"] = provider.into();
                audit["user"] = user.into();
                audit["tenant"] = tenant.as_deref().into();
                crate::logging::audit("sign_in", audit);
                let mut cookies = vec![core.sessions.set_cookie(&sealed)];
                cookies.extend(clear);
                // If this browser comes back without the session, it is a loop round.
                if let Some(done) = core.sessions.sealer().seal(&core.done_cookie, &now_secs()) {
                    cookies.push(core.sessions.cookie(
                        &core.done_cookie,
                        &done,
                        "/",
                        Some(LOOP_WINDOW),
                    ));
                }
                redirect(session, core.public(return_to), &cookies).await
            }
            Err(e) => {
                self.count_sign_in(provider, "session");
                log::error!("sign-in with {provider} for {user}: session not created: {e}");
                let clear: Vec<(&str, String)> =
                    clear.into_iter().map(|c| ("set-cookie", c)).collect();
                let detail = e.to_string();
                page_with(
                    session,
                    500,
                    "Sign-in failed",
                    "The session could not be created.",
                    Some(&detail),
                    None,
                    &clear,
                )
                .await
            }
        }
    }

    /// The assertion consumer service: an HTTP-POST of `SAMLResponse` (and `RelayState`).
    async fn saml_acs(
        &self,
        core: &Core,
        session: &mut Session,
        saml: &SamlProvider,
    ) -> Result<()> {
        let name = saml.name.clone();
        let fail = |reason: &str| self.count_sign_in(&name, reason);
        let restart = core.public(&format!("{RESERVED_PREFIX}/sign_in?rd=%2F&provider={name}"));
        if session.req_header().method != http::Method::POST {
            fail("bad_callback");
            return page(
                session,
                405,
                "Sign-in failed",
                "The SAML response must be POSTed here by the identity provider.",
                None,
            )
            .await;
        }
        // The form, bounded: a hostile client does not get to stream megabytes into memory.
        let limit = saml_verify::MAX_RESPONSE_BYTES * 2;
        let Some(form) = saml_logout::read_form(session, limit).await? else {
            fail("too_large");
            log::warn!("SAML sign-in with {name} refused: POST body over {limit} bytes");
            return page(
                session,
                413,
                "Sign-in failed",
                "The sign-in response is too large.",
                None,
            )
            .await;
        };
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Some(response) = get("SAMLResponse") else {
            fail("bad_callback");
            return sign_in_failed(
                session,
                400,
                "The POST carried no SAMLResponse.",
                None,
                &restart,
                &[],
            )
            .await;
        };
        let relay = get("RelayState").unwrap_or("");
        // SP-initiated: RelayState is the key of the sign-in this browser started.
        let mut clear = Vec::new();
        let pending: Option<PendingSaml> = if is_token(relay) {
            let cookie_name = core.login_cookie_name(relay);
            clear.push((
                "set-cookie",
                core.sessions.cookie(
                    &cookie_name,
                    "",
                    &format!("{RESERVED_PREFIX}/"),
                    Some(Duration::ZERO),
                ),
            ));
            core.pending_sign_in::<PendingSaml>(session.req_header(), relay, &name)
        } else {
            None
        };
        match saml.finish(response, pending.as_ref()).await {
            Ok((mut identity, verified)) => {
                let clear: Vec<String> = clear.into_iter().map(|(_, v)| v).collect();
                if let Err((deny, why)) = saml.resolve_overage(&mut identity, &verified).await {
                    return self.sign_in_denied(session, &name, deny, &why, clear).await;
                }
                // IdP-initiated: the RelayState may name a return URL, honoured only if same-origin.
                let return_to = match &pending {
                    Some(p) => p.r.clone(),
                    None if !relay.is_empty() => return_to::sanitize(relay, &core.cfg.public_url),
                    None => "/".to_string(),
                };
                let audit = serde_json::json!({"protocol": "saml", "idp_initiated": pending.is_none(),
                    "assertion": verified.assertion_id});
                self.complete_sign_in(core, session, &name, identity, &return_to, clear, audit)
                    .await
            }
            Err(rejection) => {
                fail(rejection.reason());
                log::warn!(
                    "SAML sign-in with {name} refused ({}): {rejection}",
                    rejection.reason()
                );
                let status = if matches!(rejection, Rejection::IdpStatus { .. }) {
                    403
                } else {
                    400
                };
                let message = "The identity provider's answer could not be accepted. Start again; if it keeps failing, send the details below to your administrator.";
                let detail = rejection.to_string();
                sign_in_failed(session, status, message, Some(&detail), &restart, &clear).await
            }
        }
    }

    /// Revokes every session cookie the request presents; returns the identity it belonged to.
    async fn revoke_presented(&self, core: &Core, session: &mut Session) -> Option<Identity> {
        let name = core.sessions.cfg.cookie_name.clone();
        let values: Vec<String> = cookie_values(session.req_header(), &name)
            .map(str::to_string)
            .collect();
        let mut who = None;
        for v in values {
            if let Some(id) = core.sessions.revoke(&v).await {
                self.metrics
                    .sign_outs
                    .with_label_values(&[&id.provider])
                    .inc();
                who = Some(id);
            }
        }
        who
    }

    fn count_sign_in(&self, provider: &str, result: &str) {
        self.metrics
            .sign_ins
            .with_label_values(&[provider, result])
            .inc();
    }

    fn deny(&self, reason: &'static str) {
        self.metrics.denials.with_label_values(&[reason]).inc();
    }

    /// The one authentication step the proxy and forward-auth share: the route's bearer
    /// token or session, then its policy.
    async fn authenticate(
        &self,
        core: &Core,
        session: &mut Session,
        route: &Route,
    ) -> Result<Auth> {
        if route.public {
            return Ok(Auth::Public);
        }
        let (identity, refreshed) = match self.bearer(core, session, route).await? {
            Bearer::Answered => return Ok(Auth::Answered),
            Bearer::Verified(identity) => (identity, None),
            Bearer::Absent => match self.session_of(core, session.req_header()).await {
                Some((identity, _)) if !route.accepts(&identity.provider) => {
                    // Signed in, but with a provider this route does not take: no session
                    // here, so the browser signs in with the route's own provider.
                    self.metrics
                        .session_rejections
                        .with_label_values(&["wrong_provider"])
                        .inc();
                    log::info!(
                        "session of provider {} is not accepted on route {} (accepts {}): treated as no session",
                        identity.provider,
                        route.name,
                        route.accepted().join(", ")
                    );
                    return Ok(Auth::NoSession);
                }
                Some(found) => found,
                None => return Ok(Auth::NoSession),
            },
        };
        if let Err(deny) = policy::decide(&route.policy, &identity) {
            self.forbid(session, route, &identity, deny).await?;
            return Ok(Auth::Answered);
        }
        Ok(Auth::Allowed {
            identity,
            refreshed,
        })
    }

    /// A request the gateway cannot read unambiguously: 400, with the reason logged and counted.
    async fn refuse(&self, session: &mut Session, why: Refusal) -> Result<()> {
        self.deny(why.label());
        let req = session.req_header();
        let target = String::from_utf8_lossy(req.raw_path());
        let host = req
            .headers
            .get(http::header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
        log::warn!(
            "request refused ({}): target {:?}, host {:?}",
            why.label(),
            target.chars().take(256).collect::<String>(),
            host.map(|h| h.chars().take(256).collect::<String>())
        );
        let message = if why.is_host() {
            "The request's host is missing, repeated, malformed or contradicts its target."
        } else {
            "The request path contains a form that web servers read in different ways, so the gateway does not pass it on."
        };
        let detail = format!("Reason: {}", why.label());
        page(session, 400, "Bad request", message, Some(&detail)).await
    }

    /// `Authorization: Bearer` on a route whose provider accepts API tokens.
    async fn bearer(&self, core: &Core, session: &mut Session, route: &Route) -> Result<Bearer> {
        let Some(token) = bearer_token(session.req_header()) else {
            return Ok(Bearer::Absent);
        };
        // The route's providers that take API tokens; with several, the one whose issuer the
        // token names (unverified: it only picks whose keys judge it).
        let apis: Vec<&crate::idp::oidc::OidcProvider> = route
            .accepted()
            .iter()
            .filter_map(|name| core.providers.iter().find(|p| p.name() == &**name))
            .filter_map(|p| match p.as_ref() {
                Provider::Oidc(o) if o.accepts_bearer() => Some(o),
                _ => None,
            })
            .collect();
        let oidc = match apis.as_slice() {
            // Not ours to judge: the header is for the upstream, and a session is still needed.
            [] => return Ok(Bearer::Absent),
            [one] => *one,
            several => crate::idp::oidc::pick_by_issuer(several, token),
        };
        match oidc.verify_bearer(token).await {
            Ok(identity) => Ok(Bearer::Verified(Arc::new(identity))),
            Err(IdpError::Denied(deny, why)) => {
                self.deny(deny.label());
                log::warn!(
                    "bearer token on route {} denied ({}): {why}",
                    route.name,
                    deny.label()
                );
                json_error(session, deny.status(), deny.label(), deny.explain().1).await?;
                Ok(Bearer::Answered)
            }
            Err(e) => {
                self.deny("invalid_token");
                log::warn!("bearer token on route {} refused: {e}", route.name);
                let message = e.to_string();
                let challenge = format!(
                    "Bearer realm=\"authgate\", error=\"invalid_token\", error_description=\"{}\"",
                    message.replace(['"', '\\'], "'")
                );
                let body =
                    serde_json::json!({"error": "invalid_token", "message": message}).to_string();
                respond(
                    session,
                    401,
                    "application/json",
                    body.into_bytes(),
                    &[("www-authenticate", challenge)],
                )
                .await?;
                Ok(Bearer::Answered)
            }
        }
    }

    /// The route's policy said no: a page for people, JSON for programs.
    async fn forbid(
        &self,
        session: &mut Session,
        route: &Route,
        identity: &Identity,
        deny: Deny,
    ) -> Result<()> {
        self.deny(deny.label());
        log::warn!(
            "access to route {} denied for user {} (tenant {}): {}",
            route.name,
            identity.user,
            identity.tenant.as_deref().unwrap_or("-"),
            deny.label()
        );
        let (title, message) = deny.explain();
        if !wants_html(session.req_header()) {
            return json_error(session, 403, deny.label(), message).await;
        }
        let who = identity
            .email
            .as_deref()
            .or(identity.name.as_deref())
            .unwrap_or(&identity.user);
        let detail = format!(
            "Reason: {}\nSigned in as: {who}\nUser ID: {}\nApplication: {}",
            deny.label(),
            identity.user,
            route.name
        );
        let sign_out = format!("{RESERVED_PREFIX}/sign_out");
        page_with(
            session,
            403,
            title,
            message,
            Some(&detail),
            Some((&sign_out, "Sign in as someone else")),
            &[],
        )
        .await
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // The configuration this request is served with, even if a reload lands meanwhile.
        let core = self.core.load_full();
        ctx.core = Some(core.clone());
        ctx.started = Some(Instant::now());
        // 1. One reading of the request, or a refusal: what routing, policy and the upstream
        //    all see.
        let canonical: Canonical = match canonical::of(session.req_header(), core.routes.exceptions)
        {
            Ok(c) => c,
            Err(why) => {
                self.refuse(session, why).await?;
                return Ok(true);
            }
        };
        // 2. The gateway's own endpoints, on every host and in every spelling.
        if canonical.is_reserved(RESERVED_PREFIX) {
            self.own_endpoint(&core, session, &canonical.route_path)
                .await?;
            return Ok(true);
        }
        // 3. The route, on the canonical host and path.
        let route = match core.routes.route(&canonical) {
            Ok(r) => r.clone(),
            Err(NoRoute::Refused(why)) => {
                self.refuse(session, why).await?;
                return Ok(true);
            }
            Err(NoRoute::Unknown) => {
                page(
                    session,
                    404,
                    "Not found",
                    "No application is configured at this address.",
                    None,
                )
                .await?;
                return Ok(true);
            }
        };
        ctx.route = Some(route.clone());
        // 4. The upstream receives exactly what was read.
        canonical::apply(session.req_header_mut(), &canonical)?;
        ctx.trusted_peer = core.trusts(session);
        ctx.authority = canonical.authority;
        ctx.port = canonical.port;
        // 5. Nobody but the gateway sets identity headers, nor (unless it is a trusted proxy)
        //    forwarding headers.
        let stripped = core
            .headers
            .strip(session.req_header_mut(), ctx.trusted_peer);
        if stripped > 0 {
            log::info!(
                "stripped {stripped} client-sent identity header(s) on route {}",
                route.name
            );
        }
        // 6. A bearer token (API clients), or the session cookie, then the route's policy.
        match self.authenticate(&core, session, &route).await? {
            Auth::Public => Ok(false),
            Auth::Allowed {
                identity,
                refreshed,
            } => {
                ctx.set_cookie = refreshed.map(|v| core.sessions.set_cookie(&v));
                ctx.identity = Some(identity);
                Ok(false)
            }
            Auth::NoSession => {
                self.challenge(&core, session, &route).await?;
                Ok(true)
            }
            Auth::Answered => Ok(true),
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let Some(route) = &ctx.route else {
            return Error::e_explain(ErrorType::InternalError, "no route chosen");
        };
        let u = &route.upstream;
        Ok(Box::new(HttpPeer::new(
            u.addr.as_str(),
            u.tls,
            u.sni.clone(),
        )))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(core) = ctx.core.clone() else {
            return Error::e_explain(
                ErrorType::InternalError,
                "no configuration bound to request",
            );
        };
        if let Some(id) = &ctx.identity {
            core.headers.inject(upstream, id);
        }
        // The gateway's cookies are its own business.
        let name = core.sessions.cfg.cookie_name.as_str();
        let has_ours = upstream
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .any(|h| h.to_str().is_ok_and(|c| c.contains(name)));
        if has_ours {
            let kept: Vec<String> = upstream
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|h| h.to_str().ok())
                .filter_map(|c| without_cookies(c, |n| core.is_own_cookie(n)))
                .collect();
            upstream.remove_header(&http::header::COOKIE);
            if !kept.is_empty() {
                upstream.insert_header(http::header::COOKIE, kept.join("; "))?;
            }
        }
        // Forwarding headers: the gateway's own, appended to a trusted proxy's.
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if let Some(ip) = peer {
            let xff = match upstream
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .filter(|_| ctx.trusted_peer)
            {
                Some(prev) => format!("{prev}, {ip}"),
                None => ip.to_string(),
            };
            upstream.insert_header("x-forwarded-for", xff)?;
        }
        let proto = core.cfg.public_url.scheme();
        let keep = |h: &RequestHeader, n: &str| ctx.trusted_peer && h.headers.contains_key(n);
        if !keep(upstream, "x-forwarded-proto") {
            upstream.insert_header("x-forwarded-proto", proto)?;
        }
        if !keep(upstream, "x-forwarded-host") {
            if let Some(a) = &ctx.authority {
                upstream.insert_header("x-forwarded-host", a.as_str())?;
            }
        }
        if !keep(upstream, "x-forwarded-port") {
            let port = ctx
                .port
                .or(core.cfg.public_url.port_or_known_default())
                .unwrap_or(80);
            upstream.insert_header("x-forwarded-port", port.to_string())?;
        }
        ctx.upstream_sent = Some(Instant::now());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let (Some(sent), Some(route)) = (ctx.upstream_sent.take(), &ctx.route) {
            self.metrics
                .upstream_duration
                .with_label_values(&[&route.name])
                .observe(sent.elapsed().as_secs_f64());
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(c) = ctx.set_cookie.take() {
            response.append_header("set-cookie", c)?;
        }
        Ok(())
    }

    async fn logging(&self, session: &mut Session, e: Option<&pingora::Error>, ctx: &mut Ctx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let route = ctx.route.as_ref().map_or("_gateway", |r| r.name.as_str());
        self.metrics
            .requests
            .with_label_values(&[route, status_label(status)])
            .inc();
        if let Some(started) = ctx.started {
            self.metrics
                .request_duration
                .with_label_values(&[route])
                .observe(started.elapsed().as_secs_f64());
        }
        if let Some(e) = e {
            // A client hanging up is routine (load generators, closed tabs); the rest is not.
            if *e.esource() == pingora::ErrorSource::Downstream {
                log::debug!("route {route}: client went away: {e}");
            } else {
                log::warn!("route {route}: request failed with {status}: {e}");
            }
        }
    }
}

/// Common codes by value, the rest by class: bounded label values.
fn status_label(status: u16) -> &'static str {
    const KNOWN: [(u16, &str); 13] = [
        (200, "200"),
        (204, "204"),
        (301, "301"),
        (302, "302"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
    ];
    if let Some((_, label)) = KNOWN.iter().find(|(code, _)| *code == status) {
        return label;
    }
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "none",
    }
}

/// Every value of cookie `name` across every `Cookie` header of the request (at most 8: each
/// is tried in turn, so a planted cookie cannot hide the real one).
fn cookie_values<'a>(req: &'a RequestHeader, name: &'a str) -> impl Iterator<Item = &'a str> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(move |h| all_cookies(h, name))
        .take(8)
}

/// A browser navigation (as opposed to an API/XHR call).
/// The token of an `Authorization: Bearer` header (scheme case-insensitive, RFC 6750).
fn bearer_token(req: &RequestHeader) -> Option<&str> {
    let v = req
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn wants_html(req: &RequestHeader) -> bool {
    if req.method != http::Method::GET && req.method != http::Method::HEAD {
        return false;
    }
    let h = &req.headers;
    if h.contains_key("x-requested-with") {
        return false;
    }
    if let Some(mode) = h.get("sec-fetch-mode").and_then(|v| v.to_str().ok()) {
        if mode != "navigate" {
            return false;
        }
    }
    h.get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

fn query_pairs(req: &RequestHeader) -> Vec<(String, String)> {
    req.uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .take(32)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn json_error(session: &mut Session, status: u16, error: &str, message: &str) -> Result<()> {
    let body = serde_json::json!({ "error": error, "message": message }).to_string();
    respond(session, status, "application/json", body.into_bytes(), &[]).await
}

/// State values the gateway issues: 43 base64url characters.
fn is_token(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes a complete response from a filter: always with `Content-Length` (pingora #498).
/// A 302 to `location`, setting `cookies`.
async fn redirect(session: &mut Session, location: String, cookies: &[String]) -> Result<()> {
    let mut headers = vec![("location", location)];
    headers.extend(cookies.iter().map(|c| ("set-cookie", c.clone())));
    respond(session, 302, "text/plain", Vec::new(), &headers).await
}

async fn respond(
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    extra: &[(&str, String)],
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(6 + extra.len()))?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    resp.insert_header("content-type", content_type)?;
    if content_type.starts_with("text/html") {
        resp.insert_header(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        )?;
        resp.insert_header("referrer-policy", "no-referrer")?;
    }
    for (k, v) in extra {
        resp.append_header(k.to_string(), v.as_str())?;
    }
    let head_only = session.req_header().method == http::Method::HEAD || body.is_empty();
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::from(body)), true)
            .await?;
    }
    Ok(())
}

/// A failed sign-in: what happened, and a way to start again.
async fn sign_in_failed(
    session: &mut Session,
    status: u16,
    message: &str,
    detail: Option<&str>,
    restart: &str,
    extra: &[(&str, String)],
) -> Result<()> {
    let action = Some((restart, "Sign in again"));
    page_with(
        session,
        status,
        "Sign-in failed",
        message,
        detail,
        action,
        extra,
    )
    .await
}

async fn page(
    session: &mut Session,
    status: u16,
    title: &str,
    message: &str,
    detail: Option<&str>,
) -> Result<()> {
    page_with(session, status, title, message, detail, None, &[]).await
}

async fn page_with(
    session: &mut Session,
    status: u16,
    title: &str,
    message: &str,
    detail: Option<&str>,
    action: Option<(&str, &str)>,
    extra: &[(&str, String)],
) -> Result<()> {
    let html = pages::page(title, message, detail, action);
    respond(
        session,
        status,
        "text/html; charset=utf-8",
        html.into_bytes(),
        extra,
    )
    .await
}
