//! The proxy: `impl ProxyHttp`, each phase a few lines, in the order a request flows.
//!
//! request_filter → `admit`: the canonical request (or a 400) → the gateway's own endpoints
//! (`crate::endpoints`) → the route → the upstream target and Host set to what was read →
//! spoofable identity and forwarding headers stripped → `authenticate` (bearer or session,
//! provider, policy; shared with forward-auth) → no session: `endpoints::sign_in::challenge`.
//! upstream_request_filter: identity headers in, the gateway's cookies out, forwarding
//! headers set. response_filter: the refreshed session cookie. logging: metrics.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};

use crate::answer::Answer;
use crate::aside;
use crate::authenticate::{authenticate, Auth};
use crate::canonical::RESERVED_PREFIX;
use crate::canonical::{self, Unreadable};
use crate::endpoints;
use crate::exchange::Downstream;
use crate::forward_auth::Dialect;
use crate::headers::{set_forwarding, Forwarding};
use crate::identity::Identity;
use crate::metrics::{status_label, Metrics};
use crate::route::cors::{CorsAnswer, Decision, Preflight, Reply};
use crate::route::{NoRoute, Route};
use crate::state::Core;

pub struct Gateway {
    core: Arc<ArcSwap<Core>>,
    /// Outlives configurations: the same series before and after a reload.
    metrics: Arc<Metrics>,
}

/// What one request carries from phase to phase.
#[derive(Default)]
pub struct Ctx {
    core: Option<Arc<Core>>,
    pub route: Option<Arc<Route>>,
    pub identity: Option<Arc<Identity>>,
    /// The session's id (for the assertion's `sid` digest); none for bearer tokens.
    sid: Option<Arc<str>>,
    pub set_cookie: Option<String>,
    started: Option<Instant>,
    upstream_sent: Option<Instant>,
    /// The canonical `Host` and port (for `X-Forwarded-Host`/`-Port`).
    authority: Option<String>,
    port: Option<u16>,
    /// The TCP peer, read once.
    peer: Option<std::net::IpAddr>,
    /// The peer is a trusted proxy: its forwarding headers are kept and appended to.
    trusted_peer: bool,
    /// Says `true` when the session of an upgraded connection ends (the proxying stops).
    cancel: Option<tokio::sync::watch::Receiver<bool>>,
    /// Tokens for the upstream (`pass_id_token`, `pass_access_token`).
    tokens: crate::upstream_tokens::TokenHeaders,
    /// A form kept across a sign-in (`preserve_post`), sent upstream instead of this body.
    replay: Option<endpoints::preserve_post::Replay>,
    /// The upstream's status and time to its response head, once it answered.
    upstream: Option<(u16, f64)>,
    /// The reason the gateway's own answer names, and whom it refused (for the access log,
    /// when it is on).
    reason: Option<String>,
    who: Option<(String, Arc<str>)>,
}

impl Gateway {
    pub fn new(core: Arc<ArcSwap<Core>>, metrics: Arc<Metrics>) -> Self {
        Self { core, metrics }
    }

    /// The configuration requests are served with now.
    pub fn core(&self) -> Arc<Core> {
        self.core.load_full()
    }

    /// Decides on a request: `Some(answer)` to write instead of proxying, or `None` to pass
    /// it upstream with what `ctx` now holds (route, identity, refreshed cookie). `down` is
    /// rewritten to exactly what the upstream will receive.
    pub async fn admit(
        &self,
        core: &Core,
        down: &mut dyn Downstream,
        ctx: &mut Ctx,
    ) -> pingora::Result<Option<Answer>> {
        // 0. Envoy's ext_authz check requests carry the original path under a prefix: cut
        //    from the raw target, before any reading could normalize across it.
        if envoy_check(core, down.req()) {
            std::hint::cold_path();
            let check = endpoints::forward_auth::forward_auth(core, down);
            return Ok(Some(aside(check).await));
        }
        // 1. One reading of the request, or a refusal: what routing, policy and the upstream
        //    all see.
        let mut canonical = match canonical::of(down.req(), core.routes.exceptions) {
            Ok(c) => c,
            Err(why) => {
                std::hint::cold_path();
                return Ok(Some(refuse(core, down, why)));
            }
        };
        // With `hosts:` listed, only the hosts it names (and the routes' and public_url's).
        if core.cfg.hosts.listed {
            if let Some(refused) = unserved(core, &canonical) {
                return Ok(Some(refused));
            }
        }
        // 2. The gateway's own endpoints, on every host and in every spelling.
        if canonical.is_reserved(RESERVED_PREFIX) {
            std::hint::cold_path();
            let host = canonical.host.as_deref();
            // Boxed: the endpoints' future (sign-in, callbacks, SCIM) is ~5 KB, and every
            // request's future would carry (and copy) it inline (BENCHMARKS.md, ninth round).
            let serve = endpoints::serve(core, down, canonical.route_path(), host);
            return Ok(Some(aside(serve).await?));
        }
        if canonical.route_path() == endpoints::WELL_KNOWN_JWKS && core.assertion.is_some() {
            std::hint::cold_path();
            return Ok(Some(endpoints::jwks(core, down)));
        }
        // 3. The route, on the canonical host and path.
        let route = match core.routes.route(&canonical) {
            Ok(r) => r.clone(),
            Err(no) => {
                std::hint::cold_path();
                return Ok(Some(no_route(core, down, no)));
            }
        };
        ctx.route = Some(route.clone());
        // 4. The upstream receives exactly what was read. Header names go upstream in lower
        //    case (standard ones titled): no case map to copy and keep in step on every insert.
        down.req_mut().remove_case();
        canonical::apply(down.req_mut(), &canonical)?;
        ctx.peer = down.peer();
        ctx.trusted_peer = core.trusts(ctx.peer);
        ctx.authority = canonical.authority.take();
        ctx.port = canonical.port;
        // 5. Nobody but the gateway sets identity headers, nor (unless it is a trusted proxy)
        //    forwarding headers.
        let stripped = core.headers.strip(down.req_mut(), ctx.trusted_peer);
        if stripped > 0 {
            log_stripped(stripped, &route.name);
        }
        // 6. Through with no identity, or answered, without a session: a CORS preflight as
        //    the route says, the route's `public_methods` / `public_paths`.
        if let Some(open) = without_session(core, &route, down.req(), canonical.route_path()) {
            return Ok(open);
        }
        // 7. A bearer token (API clients), or the session cookie, then the route's policy.
        let auth = authenticate(core, down, &route).await;
        Self::authenticated(core, down, ctx, &route, auth).await
    }
}

impl Gateway {
    /// What the authentication came to: `None` to pass the request upstream (identity and
    /// refreshed cookie kept in `ctx`), or the answer instead (sign-in, step-up, refusal).
    async fn authenticated(
        core: &Core,
        down: &mut dyn Downstream,
        ctx: &mut Ctx,
        route: &Route,
        auth: Auth,
    ) -> pingora::Result<Option<Answer>> {
        Ok(match auth {
            Auth::Public => None,
            Auth::Allowed {
                identity,
                refreshed,
                held,
            } => {
                let replays =
                    route.preserve_post.is_some() && down.req().method == http::Method::POST;
                if replays || route.tokens.any() {
                    // Boxed, as every rarely taken branch here: see BENCHMARKS.md (future sizes).
                    let more = Self::route_extras(core, down, ctx, route, &identity, held.as_ref());
                    if let Some(answer) = aside(more).await {
                        return Ok(Some(answer));
                    }
                }
                ctx.set_cookie = refreshed.map(|v| core.cookies.set_session(&v, down.req()));
                keep_identity(core, down.req(), ctx, identity, held);
                None
            }
            // Answered instead of passed on: out of the signed-in request's line.
            other => {
                std::hint::cold_path();
                Some(aside(Self::answer(core, down, route, other)).await?)
            }
        })
    }

    /// The answer for a request that is not passed on: sign-in (after keeping a form), the
    /// SAML re-authentication, a step-up, or the refusal decided earlier.
    async fn answer(
        core: &Core,
        down: &mut dyn Downstream,
        route: &Route,
        auth: Auth,
    ) -> pingora::Result<Answer> {
        Ok(match auth {
            Auth::NoSession => match &route.preserve_post {
                Some(pp) if down.req().method == http::Method::POST => {
                    match endpoints::preserve_post::keep(core, down, route, pp).await? {
                        Some(answer) => answer,
                        None => endpoints::sign_in::challenge(core, down, route),
                    }
                }
                _ => endpoints::sign_in::challenge(core, down, route),
            },
            Auth::Reauthenticate { identity, held } => {
                endpoints::sign_in::reauthenticate(core, down, &identity, &held)
            }
            Auth::StepUp(s) => endpoints::step_up::required(core, down, route, &s),
            Auth::Refused(answer) => answer,
            // Decided by `authenticated`.
            Auth::Public | Auth::Allowed { .. } => {
                return Error::e_explain(ErrorType::InternalError, "no answer to give")
            }
        })
    }

    /// What a route adds to an allowed request: a form kept across the sign-in (its body
    /// replaces this one), the tokens it passes upstream. `Some`: the answer instead.
    async fn route_extras(
        core: &Core,
        down: &mut dyn Downstream,
        ctx: &mut Ctx,
        route: &Route,
        identity: &Identity,
        held: Option<&crate::session::Held>,
    ) -> Option<Answer> {
        if route.preserve_post.is_some() && down.req().method == http::Method::POST {
            match endpoints::preserve_post::take(core, down).await {
                Some(Ok(replay)) => ctx.replay = Some(replay),
                Some(Err(refused)) => return Some(refused.cookie(core.cookies.clear_replay())),
                None => {}
            }
        }
        if route.tokens.any() {
            match core
                .upstream_tokens
                .for_route(&core.sessions, &core.providers, route, identity, held)
                .await
            {
                Ok(t) => ctx.tokens = t,
                Err(answer) => return Some(answer),
            }
        }
        None
    }
}

/// Client-sent identity headers were dropped: worth a line (a client probing, or an app in
/// front that should not set them). Cold: the line is not the signed-in request's.
#[cold]
#[inline(never)]
fn log_stripped(stripped: usize, route: &str) {
    log::info!("stripped {stripped} client-sent identity header(s) on route {route}");
}

/// The answer when no route takes the request.
#[cold]
#[inline(never)]
fn no_route(core: &Core, down: &dyn Downstream, no: NoRoute) -> Answer {
    match no {
        NoRoute::Refused(why) => refuse(core, down, why),
        NoRoute::Unknown => Answer::page(
            404,
            "Not found",
            "No application is configured at this address.",
            None,
        ),
    }
}

/// An Envoy check request (forward-auth in Envoy's dialect): its raw path is
/// `envoy_path_prefix` or under it.
fn envoy_check(core: &Core, req: &RequestHeader) -> bool {
    let fa = &core.cfg.forward_auth;
    fa.enabled
        && fa.dialect == Dialect::Envoy
        && req
            .uri
            .path()
            .strip_prefix(fa.envoy_prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What an allowed request carries on: the identity, the session id for the assertion, and
/// for a connection that may be upgraded (websockets) a watch that closes it when its
/// session ends, even while idle.
fn keep_identity(
    core: &Core,
    req: &RequestHeader,
    ctx: &mut Ctx,
    identity: Arc<Identity>,
    held: Option<crate::session::Held>,
) {
    if core.assertion.is_some() {
        ctx.sid = held.as_ref().map(|h| h.sid.clone());
    }
    if let Some(held) = held.filter(|_| req.headers.contains_key(http::header::UPGRADE)) {
        ctx.cancel = Some(core.sessions.watch(&held, &identity));
    }
    ctx.identity = Some(identity);
}

/// A request the route lets through with no session: `Some(None)` on to the upstream with
/// no identity (a preflight with `pass`, `public_methods`, `public_paths`), `Some(answer)`
/// a preflight the gateway answers; `None`: it needs a session.
fn without_session(
    core: &Core,
    route: &Route,
    req: &RequestHeader,
    path: &str,
) -> Option<Option<Answer>> {
    if req.method == http::Method::OPTIONS {
        match route.cors.decide(req) {
            Decision::Continue => {}
            Decision::Pass => return Some(None),
            Decision::Reply(reply) => return Some(Some(preflight_answer(core, reply))),
        }
    }
    (!route.open.is_empty() && route.open.admits(&req.method, path)).then_some(None)
}

/// The gateway's answer to a preflight.
#[cold]
#[inline(never)]
fn preflight_answer(core: &Core, reply: Reply) -> Answer {
    match reply {
        Reply::Allowed(headers) => headers
            .into_iter()
            .fold(Answer::empty(204), |a, (k, v)| a.header(k, v)),
        Reply::Refused(why) => {
            core.metrics.deny("cors_preflight_refused");
            Answer::json_error(403, "cors_preflight_refused", &why)
        }
    }
}

/// A request for a host `hosts:` does not list: refused (logged, counted). Forward-auth is
/// asked on the gateway's own service name: its callers are checked by address, and the
/// host it judges is the one the controller describes.
fn unserved(core: &Core, canonical: &canonical::Canonical) -> Option<Answer> {
    let host = canonical.host.as_deref();
    let forward_auth = canonical
        .route_path()
        .eq_ignore_ascii_case(endpoints::FORWARD_AUTH_PATH);
    if forward_auth || host.is_some_and(|h| core.cfg.hosts.serves(h, &core.cfg.public_url)) {
        return None;
    }
    Some(unserved_refusal(core, host))
}

/// The refusal of a host `hosts:` does not list.
#[cold]
#[inline(never)]
fn unserved_refusal(core: &Core, host: Option<&str>) -> Answer {
    core.metrics.deny("unserved_host");
    log::info!("request for host {host:?} refused: not in hosts");
    Answer::page(
        421,
        "Not served here",
        "This gateway does not serve this host name.",
        Some("Reason: unserved_host"),
    )
}

/// `Access-Control-Allow-Origin` (and `-Credentials`, `Vary: Origin`) on an actual response to
/// an allowed origin, when the upstream set none.
fn cors_response(
    cors: &CorsAnswer,
    req: &RequestHeader,
    response: &mut ResponseHeader,
) -> Result<()> {
    let origin = req
        .headers
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let Some(allow) = origin.and_then(|o| cors.allow_origin(o)) else {
        return Ok(());
    };
    if response
        .headers
        .contains_key(http::header::ACCESS_CONTROL_ALLOW_ORIGIN)
    {
        return Ok(());
    }
    response.insert_header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, allow)?;
    if cors.credentials {
        response.insert_header(http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true")?;
    }
    response.append_header(http::header::VARY, "Origin")?;
    Ok(())
}

fn upstream_failure(e: &pingora::Error) -> (u16, &'static str) {
    use pingora::ErrorType as T;
    if let T::HTTPStatus(code) = e.etype() {
        return (*code, "status");
    }
    match e.esource() {
        pingora::ErrorSource::Upstream => {
            let reason = match e.etype() {
                T::InvalidCert => "tls_certificate",
                T::TLSHandshakeFailure | T::TLSWantX509Lookup => "tls_handshake",
                T::TLSHandshakeTimedout => "tls_timeout",
                T::ConnectRefused => "connect_refused",
                T::ConnectTimedout => "connect_timeout",
                T::ConnectNoRoute | T::ConnectError | T::BindError | T::SocketError => "connect",
                T::ReadTimedout | T::WriteTimedout => "timeout",
                T::ConnectionClosed => "closed",
                T::Custom(crate::route::peer::DNS_ERROR) => "dns",
                T::InvalidHTTPHeader | T::H1Error | T::H2Error | T::InvalidH2 => "bad_response",
                _ => "other",
            };
            let code = if reason == "timeout" { 504 } else { 502 };
            (code, reason)
        }
        pingora::ErrorSource::Downstream => match e.etype() {
            T::WriteError | T::ReadError | T::ConnectionClosed => (0, "client_gone"),
            _ => (400, "bad_request"),
        },
        _ => (500, "internal"),
    }
}

/// A request the gateway cannot read unambiguously: 400, with the reason logged and counted.
#[cold]
#[inline(never)]
fn refuse(core: &Core, down: &dyn Downstream, why: Unreadable) -> Answer {
    core.metrics.deny(why.label());
    let req = down.req();
    // The path only: a query may carry codes, tokens or assertions.
    let raw = req.raw_path();
    let path = raw.split(|b| *b == b'?').next().unwrap_or(raw);
    let target = String::from_utf8_lossy(path);
    // HTTP/2 names the host in `:authority` (the URI), HTTP/1 in `Host`.
    let host = req
        .headers
        .get(http::header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .or_else(|| req.uri.authority().map(|a| a.to_string()));
    log::warn!(
        "request refused ({}): target {:?}, host {:?}",
        why.label(),
        target.chars().take(256).collect::<String>(),
        host.map(|h| h.chars().take(256).collect::<String>())
    );
    Answer::refused(why)
}

#[async_trait]
impl ProxyHttp for Gateway {
    /// Boxed: pingora keeps the context in every request's future, which is copied when it is
    /// boxed (see BENCHMARKS.md, "The context behind a pointer").
    type CTX = Box<Ctx>;

    fn new_ctx(&self) -> Box<Ctx> {
        Box::default()
    }

    /// What pingora's error lines say about a request: method, path and host, never the
    /// query (it may carry codes, tokens or assertions).
    fn request_summary(&self, session: &Session, _ctx: &Box<Ctx>) -> String {
        let req = session.req_header();
        let host = req
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        format!("{} {}, Host: {host}", req.method, req.uri.path())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Box<Ctx>) -> Result<bool> {
        // The configuration this request is served with, even if a reload lands meanwhile.
        let core = self.core.load_full();
        ctx.core = Some(core.clone());
        ctx.started = Some(Instant::now());
        match self.admit(&core, session, ctx).await? {
            Some(answer) => {
                if core.cfg.access_log.enabled {
                    ctx.reason = answer.reason();
                    ctx.who = answer.who.clone();
                }
                // Boxed: only answered requests write here (~1.2 KB of future otherwise
                // carried, and copied, by every request's).
                aside(answer.write(session)).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn proxy_cancel(&self, ctx: &mut Box<Ctx>) -> Option<tokio::sync::watch::Receiver<bool>> {
        ctx.cancel.take()
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Box<Ctx>,
    ) -> Result<Box<HttpPeer>> {
        match &ctx.route {
            Some(route) => route.peer.get().await,
            None => Error::e_explain(ErrorType::InternalError, "no route chosen"),
        }
    }

    /// The upstream could not be reached or spoke badly: a page instead of pingora's bare
    /// status, and the reason logged and counted (`authgate_upstream_errors_total`).
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        ctx: &mut Box<Ctx>,
    ) -> pingora::proxy::FailToProxy {
        let route = ctx.route.as_ref().map_or("_gateway", |r| r.name.as_str());
        let (code, reason) = upstream_failure(e);
        if code == 0 {
            // The client went away: nothing to answer.
            return pingora::proxy::FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        if code == 502 || code == 504 {
            self.metrics
                .upstream_errors
                .with_label_values(&[route, reason])
                .inc();
            log::warn!("route {route}: upstream failed ({reason}): {e}");
        }
        let answer = match code {
            502 | 504 => Answer::page(
                code,
                "The application is not reachable",
                "The gateway could not get an answer from the application behind it. Try again in a moment; if it persists, tell the application's operators.",
                Some(reason),
            ),
            400 => Answer::page(400, "Bad request", "The request could not be read.", None),
            _ => Answer::page(code, "Something went wrong", "The gateway could not complete this request.", None),
        };
        // This connection is closed after the answer: say so, or a keep-alive client sends
        // its next request into a closing socket.
        session.set_keepalive(None);
        if session.response_written().is_some() {
            // The answer had begun: all that is left is to close the connection.
        } else if let Err(w) = answer.write(session).await {
            log::debug!("route {route}: the error page could not be sent: {w}");
        }
        pingora::proxy::FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        let Some(core) = ctx.core.clone() else {
            return Error::e_explain(
                ErrorType::InternalError,
                "no configuration bound to request",
            );
        };
        if let Some(id) = &ctx.identity {
            let prepared = core.headers.inject(upstream, id)?;
            if let (Some(signer), Some(route)) = (&core.assertion, &ctx.route) {
                signer.attach(
                    upstream,
                    crate::assertion::About {
                        identity: id,
                        prepared: &prepared,
                        plan: &core.headers,
                        aud: signer.audience(route.audience.as_ref()),
                        sid: ctx.sid.as_deref(),
                        now: crate::session::now_secs(),
                    },
                );
            }
        }
        for (name, value) in ctx.tokens.drain(..) {
            upstream.insert_header(name, value)?;
        }
        if let Some(h) = ctx
            .route
            .as_ref()
            .and_then(|r| r.upstream.host_header.as_ref())
        {
            upstream.insert_header(http::header::HOST, h.as_str())?;
        }
        // The gateway's cookies are its own business.
        core.cookies.keep_from_upstream(upstream)?;
        if let Some(r) = &ctx.replay {
            replay_head(upstream, r)?;
        }
        let forwarding = Forwarding {
            peer: ctx.peer,
            trusted: ctx.trusted_peer,
            proto: &core.forwarded_proto,
            authority: ctx.authority.as_deref(),
            port: ctx.port,
            default_port: &core.forwarded_port,
        };
        set_forwarding(upstream, forwarding)?;
        ctx.upstream_sent = Some(Instant::now());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        if let (Some(sent), Some(route)) = (ctx.upstream_sent.take(), &ctx.route) {
            let secs = sent.elapsed().as_secs_f64();
            route.series.upstream(&self.metrics, &route.name, secs);
            ctx.upstream = Some((upstream_response.status.as_u16(), secs));
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        // A route whose preflights the gateway answers: the actual responses to an allowed
        // origin say so too, unless the upstream already did.
        if let Some(Preflight::Answer(cors)) = ctx.route.as_ref().map(|r| &r.cors) {
            cors_response(cors, session.req_header(), response)?;
        }
        if let Some(c) = ctx.set_cookie.take() {
            response.append_header("set-cookie", c)?;
        }
        if response.status == http::StatusCode::SWITCHING_PROTOCOLS {
            // An upgraded connection (a websocket) lives as long as both ends keep it, quiet or
            // not: pingora's downstream read timeout (60 s) would cut a quiet one. Its session's
            // end closes it (the watch), and `upstream_read_timeout` bounds the app's silence.
            session.set_read_timeout(None);
        }
        if ctx.replay.is_some() {
            if let Some(core) = &ctx.core {
                response.append_header("set-cookie", core.cookies.clear_replay())?;
            }
        }
        Ok(())
    }

    /// A replayed form: the browser's one-field body is dropped, the kept one goes upstream in
    /// its place (whole, with the last chunk).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        if let Some(r) = &mut ctx.replay {
            *body = if end_of_stream {
                r.body.take()
            } else {
                Some(Bytes::new())
            };
        }
        Ok(())
    }

    async fn logging(&self, session: &mut Session, e: Option<&pingora::Error>, ctx: &mut Box<Ctx>) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let metrics = &self.metrics;
        let secs = ctx.started.map(|t| t.elapsed().as_secs_f64());
        let route = match &ctx.route {
            Some(r) => {
                r.series.finished(metrics, &r.name, status, secs);
                r.name.as_str()
            }
            None => gateway_finished(metrics, status, secs),
        };
        if ctx.core.as_ref().is_some_and(|c| c.cfg.access_log.enabled) {
            access_line(session, ctx, route, status, secs);
        }
        if let Some(e) = e {
            log_failed(route, status, e);
        }
    }
}

/// A form kept across the sign-in goes upstream in place of the browser's body: its type and
/// length on the head.
#[cold]
#[inline(never)]
fn replay_head(upstream: &mut RequestHeader, r: &endpoints::preserve_post::Replay) -> Result<()> {
    let len = r.body.as_ref().map_or(0, |b| b.len());
    upstream.remove_header(&http::header::TRANSFER_ENCODING);
    upstream.insert_header(http::header::CONTENT_TYPE, r.content_type.as_str())?;
    upstream.insert_header(http::header::CONTENT_LENGTH, len.to_string())?;
    Ok(())
}

/// The gateway's own pages and refusals, counted under route `_gateway`: not the hot path.
#[cold]
#[inline(never)]
fn gateway_finished(metrics: &Metrics, status: u16, secs: Option<f64>) -> &'static str {
    let route = "_gateway";
    metrics
        .requests
        .with_label_values(&[route, status_label(status)])
        .inc();
    if let Some(s) = secs {
        metrics
            .request_duration
            .with_label_values(&[route])
            .observe(s);
    }
    route
}

/// A request that ended in an error. A client hanging up is routine (load generators,
/// closed tabs); the rest is not.
#[cold]
#[inline(never)]
fn log_failed(route: &str, status: u16, e: &pingora::Error) {
    if *e.esource() == pingora::ErrorSource::Downstream {
        log::debug!("route {route}: client went away: {e}");
    } else {
        log::warn!("route {route}: request failed with {status}: {e}");
    }
}

/// The access log's line for a finished request (`logging.access: true`): the canonical path
/// when the request has one (else the raw one), never the query unless asked (and then with
/// secrets redacted), never a header or cookie.
fn access_line(session: &Session, ctx: &Ctx, route: &str, status: u16, secs: Option<f64>) {
    let Some(core) = &ctx.core else { return };
    let req = session.req_header();
    let canonical = canonical::of(req, core.routes.exceptions).ok();
    let raw = req.uri.path();
    let path = canonical.as_ref().map_or(raw, |c| c.path.as_str());
    let host = canonical
        .as_ref()
        .and_then(|c| c.host.as_deref())
        .unwrap_or("");
    let query = req
        .uri
        .query()
        .filter(|_| core.cfg.access_log.query)
        .map(crate::logging::redacted_query);
    crate::logging::access(crate::logging::Access {
        peer: ctx.peer,
        host,
        method: req.method.as_str(),
        path,
        query,
        route,
        status,
        user: ctx
            .identity
            .as_ref()
            .map(|i| &*i.user)
            .or(ctx.who.as_ref().map(|w| w.0.as_str())),
        provider: ctx
            .identity
            .as_ref()
            .map(|i| &*i.provider)
            .or(ctx.who.as_ref().map(|w| &*w.1)),
        reason: ctx.reason.clone(),
        upstream: ctx.upstream,
        bytes: session.body_bytes_sent(),
        secs,
    });
}
