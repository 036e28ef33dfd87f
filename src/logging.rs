//! Logs: human text by default, one JSON object per line with `server.log_format: json`.
//! Audit events (sign-in, sign-out, denial) are structured: who, tenant, route, reason —
//! never tokens, cookies or secrets.

use std::io::Write;

use serde_json::{json, Value};

pub const AUDIT_TARGET: &str = "audit";

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
                rec.target() == AUDIT_TARGET,
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
