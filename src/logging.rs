//! Logs: human text by default, one JSON object per line with `server.log_format: json`.
//! Audit events (sign-in, sign-out, denial) are structured: who, tenant, route, reason —
//! never tokens, cookies or secrets.

use std::io::Write;

use serde_json::{json, Value};

pub const AUDIT_TARGET: &str = "audit";
/// Access log lines (`logging.access: true`): one JSON object per request.
pub const ACCESS_TARGET: &str = "access";

pub fn init(format: LogFormat) {
    let mut b =
        env_logger::Builder::from_env(env_logger::Env::default().filter_or("AUTHGATE_LOG", "info"));
    if format == LogFormat::Json {
        b.format(|buf, rec| {
            let msg = rec.args().to_string();
            let mut line = json!({
                "ts": buf.timestamp_millis().to_string(),
                "level": rec.level().as_str(),
                "target": rec.target(),
            });
            match (
                rec.target() == AUDIT_TARGET || rec.target() == ACCESS_TARGET,
                serde_json::from_str::<Value>(&msg),
            ) {
                (true, Ok(Value::Object(fields))) => {
                    for (k, v) in fields {
                        line[k] = v;
                    }
                }
                _ => line["msg"] = Value::String(msg),
            }
            writeln!(buf, "{line}")
        });
    }
    // A second init (tests, embedding) keeps the first logger.
    let _ = b.try_init();
}

/// One audit event: `event` plus fields, as a JSON object on the `audit` target.
pub fn audit(event: &str, mut fields: Value) {
    fields["event"] = Value::String(event.to_string());
    log::info!(target: AUDIT_TARGET, "{fields}");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `logging:` what the access log writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessLog {
    /// `access: true`: one line per request.
    pub enabled: bool,
    /// `access_query: true`: the query string too, with the values of parameters that carry
    /// codes, tokens, assertions or state replaced by `REDACTED`.
    pub query: bool,
}

impl crate::read::Reader<'_> {
    /// The top-level `logging:` section.
    pub(crate) fn access_log(&mut self, top: &mut crate::read::Obj<'_>) -> AccessLog {
        let v = self.get(top, "logging");
        let mut o = self.obj("logging", v);
        let enabled = self.bool(&mut o, "access").unwrap_or(false);
        let query = self.bool(&mut o, "access_query").unwrap_or(false);
        self.finish(o);
        AccessLog { enabled, query }
    }
}

/// Query parameters whose values never reach a log line.
const SECRET_PARAMS: &[&str] = &[
    "code",
    "state",
    "session_state",
    "id_token",
    "access_token",
    "refresh_token",
    "token",
    "samlrequest",
    "samlresponse",
    "relaystate",
    "signature",
    "sigalg",
    "client_secret",
    "client_assertion",
    "logout_token",
    "id_token_hint",
    "hb",
];

/// `query` with the values of `SECRET_PARAMS` (any case) replaced.
pub fn redacted_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_PARAMS.iter().any(|s| k.eq_ignore_ascii_case(s)) => {
                format!("{k}=REDACTED")
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// What one request came to, for the access log.
pub struct Access<'a> {
    pub peer: Option<std::net::IpAddr>,
    pub host: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<String>,
    pub route: &'a str,
    pub status: u16,
    pub user: Option<&'a str>,
    pub provider: Option<&'a str>,
    /// Set when the gateway answered itself: the reason its answer names (`redirect` for a
    /// redirect).
    pub reason: Option<String>,
    /// The upstream's status and time to its response head, when it was asked.
    pub upstream: Option<(u16, f64)>,
    pub bytes: usize,
    pub secs: Option<f64>,
}

/// Writes one access line.
pub fn access(a: Access<'_>) {
    let decision = match (a.upstream.is_some(), a.status) {
        (true, _) => "allow",
        (false, 401) => "challenge",
        (false, 300..=399) => "redirect",
        (false, 403) => "deny",
        (false, 400..=499) => "refuse",
        (false, 500..=599) => "error",
        (false, _) => "answer",
    };
    let cut = |s: &str| s.chars().take(1024).collect::<String>();
    let line = json!({
        "peer": a.peer.map(|p| p.to_string()),
        "host": cut(a.host),
        "method": cut(a.method),
        "path": cut(a.path),
        "query": a.query.as_deref().map(cut),
        "route": a.route,
        "status": a.status,
        "user": a.user,
        "provider": a.provider,
        "decision": decision,
        "reason": a.reason,
        "upstream_status": a.upstream.map(|u| u.0),
        "upstream_ms": a.upstream.map(|u| (u.1 * 1000.0).round() as u64),
        "bytes": a.bytes,
        "ms": a.secs.map(|s| (s * 1000.0).round() as u64),
        "event": "access",
    });
    log::info!(target: ACCESS_TARGET, "{line}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_in_queries_are_redacted() {
        assert_eq!(
            super::redacted_query("code=abc&STATE=x&rd=%2Fa&SAMLResponse=PD94&x"),
            "code=REDACTED&STATE=REDACTED&rd=%2Fa&SAMLResponse=REDACTED&x"
        );
    }
}
