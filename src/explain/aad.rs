//! The URL Entra sent the browser back to with an error: the callback's own reading of it.

use super::{Check, Outcome, Report};
use crate::idp::entra::{portal::aad_fix, AadError};

pub(super) fn explain(provider: &str, url: &url::Url) -> Report {
    let q = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let e = AadError::parse(
        &q("error").unwrap_or_default(),
        &q("error_description").unwrap_or_default(),
        q("error_uri").as_deref(),
    );
    let (status, title, _) = e.explain();
    let code = e
        .code
        .map_or_else(|| e.error.clone(), |c| format!("AADSTS{c}"));
    let mut checks = vec![Check::new(
        "sign-in",
        Outcome::Fail,
        format!("{code}: {} (error={})", e.message, e.error),
    )
    .fix(Some(aad_fix(&e).to_string()))];
    checks.push(Check::new(
        "what the user sees",
        Outcome::Info,
        format!(
            "a {status} page \"{title}\" (counted as authgate_sign_ins_total{{result=\"{}\"}}); no redirect back to Entra, so no loop",
            e.reason()
        ),
    ));
    for (k, v) in [
        ("Trace ID", &e.trace_id),
        ("Correlation ID", &e.correlation_id),
        ("Timestamp", &e.timestamp),
    ] {
        if let Some(v) = v {
            checks.push(Check::new(k, Outcome::Info, v.clone()));
        }
    }
    Report {
        title: format!("Error redirect from the IdP, as provider {provider:?}'s callback reads it"),
        checks,
    }
}
