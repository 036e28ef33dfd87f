//! The admin API, on the admin listener only, off unless `admin.api_token` is set:
//!
//! - `GET    /api/v1/sessions?user=U[&provider=P]`  a user's sessions
//! - `DELETE /api/v1/sessions?user=U[&provider=P]`  revoke all of them (and any issued until
//!   now whose cookies are elsewhere)
//! - `DELETE /api/v1/sessions/<id>`                  revoke one session
//!
//! `user` is the session's user key (the `X-Auth-User` value: Entra's `oid`). `provider` may
//! be left out when one provider is configured. Every call needs `Authorization: Bearer
//! <admin.api_token>` (compared in constant time) and every change is an audit line.

use http::{Method, Response};
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::exchange::{first, query_pairs};
use crate::session::{now_secs, StoreError};
use crate::state::Core;

pub(crate) const PREFIX: &str = "/api/v1/";

fn reply(status: u16, body: serde_json::Value) -> Response<Vec<u8>> {
    let body = body.to_string().into_bytes();
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .header("cache-control", "no-store");
    if status == 401 {
        r = r.header("www-authenticate", "Bearer realm=\"authgate-admin\"");
    }
    r.body(body).unwrap_or_else(|_| Response::new(Vec::new()))
}

fn error(status: u16, error: &str, message: &str) -> Response<Vec<u8>> {
    reply(status, json!({"error": error, "message": message}))
}

/// The bearer token matches (constant time in the token's content).
fn authorized(core: &Core, header: Option<&http::HeaderValue>) -> bool {
    let Some(token) = &core.cfg.admin_api_token else {
        return false;
    };
    let presented = header
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    presented.len() == token.0.len()
        && openssl::memcmp::eq(presented.as_bytes(), token.0.as_bytes())
}

fn store_error(e: &StoreError) -> Response<Vec<u8>> {
    match e {
        StoreError::Unsupported(..) => error(501, "unsupported", &e.to_string()),
        StoreError::Unavailable(_) => error(503, "store_unavailable", &e.to_string()),
    }
}

pub(crate) async fn serve(core: &Core, session: &ServerSession) -> Response<Vec<u8>> {
    let req = session.req_header();
    let peer = session
        .client_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    if core.cfg.admin_api_token.is_none() {
        return error(
            404,
            "not_found",
            "the admin API is off (set admin.api_token)",
        );
    }
    if !authorized(core, req.headers.get(http::header::AUTHORIZATION)) {
        log::warn!("admin API: refused a call from {peer} without the right token");
        return error(
            401,
            "unauthorized",
            "Authorization: Bearer <admin.api_token> required",
        );
    }
    let path = req.uri.path();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return error(404, "not_found", "no such admin endpoint");
    };
    let store = core.sessions.store();
    match (rest.split_once('/'), &req.method) {
        (None, m) if rest == "sessions" && (m == Method::GET || m == Method::DELETE) => {
            let q = query_pairs(req);
            let Some(user) = first(&q, "user").filter(|u| !u.is_empty()) else {
                return error(400, "bad_request", "give user=<user key>");
            };
            let provider = match first(&q, "provider") {
                Some(p) if core.provider(p).is_some() => p.to_string(),
                Some(p) => return error(404, "unknown_provider", &format!("no provider {p:?}")),
                None if core.providers.len() == 1 => core.providers[0].name().to_string(),
                None => {
                    return error(
                        400,
                        "bad_request",
                        "several providers: give provider=<name>",
                    )
                }
            };
            if req.method == Method::GET {
                return match store.sessions_of(&provider, user).await {
                    Ok(list) => reply(
                        200,
                        json!({"provider": provider, "user": user, "store": store.kind(),
                            "sessions": list.iter().map(|s| json!({"id": s.id, "expires": s.expires})).collect::<Vec<_>>()}),
                    ),
                    Err(e) => store_error(&e),
                };
            }
            match core.sessions.revoke_user(&provider, user, now_secs()).await {
                Ok(removed) => {
                    crate::logging::audit(
                        "admin_revoke_user",
                        json!({"provider": provider, "user": user, "stored_sessions": removed, "by": peer}),
                    );
                    reply(
                        200,
                        json!({"provider": provider, "user": user, "revoked": removed,
                        "note": "sessions issued until now are void on every replica"}),
                    )
                }
                Err(e) => store_error(&e),
            }
        }
        (Some(("sessions", id)), m)
            if m == Method::DELETE && !id.is_empty() && !id.contains('/') =>
        {
            match store.revoke(id).await {
                Ok(held) => {
                    let user = held.as_ref().map(|i| i.user.clone());
                    crate::logging::audit(
                        "admin_revoke_session",
                        json!({"session": id, "user": user, "by": peer}),
                    );
                    reply(200, json!({"session": id, "revoked": true, "user": user}))
                }
                Err(e) => store_error(&e),
            }
        }
        _ => error(404, "not_found", "no such admin endpoint (or wrong method)"),
    }
}
