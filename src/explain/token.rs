//! An ID or access token through the provider's own checks: `token_times`, the audience rule,
//! the signature against the provider's keys and Entra's issuer, version and key rules.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use super::{Check, Outcome, Report};
use crate::idp::claims::{jwt_part, token_times};
use crate::idp::oidc::OidcProvider;

fn when(claims: &Value, name: &str) -> String {
    claims
        .get(name)
        .and_then(Value::as_i64)
        .and_then(|t| Utc.timestamp_opt(t, 0).single())
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

fn text(claims: &Value, name: &str) -> String {
    match claims.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "-".into(),
    }
}

pub(super) async fn explain(p: &OidcProvider, jwt: &str, at: DateTime<Utc>) -> Report {
    let id_token = jwt_part(jwt, 1).is_some_and(|c| c.get("nonce").is_some());
    let mut report = Report {
        title: format!(
            "{}, checked as provider {:?} would at {}",
            if id_token { "ID token" } else { "Access token" },
            p.name,
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        checks: Vec::new(),
    };
    let (Some(header), Some(claims)) = (jwt_part(jwt, 0), jwt_part(jwt, 1)) else {
        report.checks.push(Check::new(
            "structure",
            Outcome::Fail,
            "the header or the payload is not base64url JSON",
        ));
        return report;
    };
    report.checks.push(Check::new(
        "token",
        Outcome::Info,
        format!(
            "alg {}, kid {}, iss {}, aud {}, tid {}, ver {}, issued {}, expires {}",
            text(&header, "alg"),
            text(&header, "kid"),
            text(&claims, "iss"),
            text(&claims, "aud"),
            text(&claims, "tid"),
            text(&claims, "ver"),
            when(&claims, "iat"),
            when(&claims, "exp"),
        ),
    ));
    // Audience: an ID token is this client's; an access token this API's.
    let audiences: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    };
    let wanted = if id_token {
        Some(p.cfg.client_id.clone())
    } else {
        p.cfg.api_audience.clone()
    };
    report.checks.push(match wanted {
        Some(w) if audiences.contains(&w) => Check::new("audience", Outcome::Pass, w),
        Some(w) => Check::new(
            "audience",
            Outcome::Fail,
            format!("token audience {audiences:?} is not {w:?}"),
        )
        .fix(Some(if id_token {
            "the token was issued to another app: client_id must be this app registration's Application (client) ID".into()
        } else {
            format!("the client asked for a token for {audiences:?}: it must request scope {w}/.default (or a scope of it); api_audience must be the API's Application ID URI (App registrations → Expose an API)")
        })),
        None => Check::new(
            "audience",
            Outcome::Fail,
            "this provider accepts no bearer tokens (no api_audience)",
        )
        .fix(Some("set api_audience to the API's Application ID URI (App registrations → Expose an API) and list the provider in the route's accept".into())),
    });
    let secs = u64::try_from(at.timestamp()).unwrap_or(0);
    report.checks.push(match token_times(&claims, secs, p.cfg.clock_skew) {
        Ok(()) => Check::new("time window", Outcome::Pass, format!("valid until {}", when(&claims, "exp"))),
        Err(e) => Check::new("time window", Outcome::Fail, e).fix(Some(
            "nothing in Entra: tokens live about 60-90 minutes; paste a fresh one, or check the clocks".into(),
        )),
    });
    report.checks.extend(entra_identity(p, &claims));
    if let Err(e) = crate::idp::IdentityProvider::load(p).await {
        report.checks.push(Check::new(
            "signature",
            Outcome::Skipped,
            format!("the provider's keys could not be loaded here: {e}"),
        ));
        return report;
    }
    let (signature, issuer) = p.explain_signature(jwt, &claims, id_token).await;
    report.checks.push(match signature {
        Ok(()) => Check::new("signature", Outcome::Pass, "signed by a key of the provider's key set"),
        Err(e) => Check::new("signature", Outcome::Fail, e).fix(Some(
            "the token was not issued by this provider's tenant/instance, or it was altered: check the provider's tenant (and instance)".into(),
        )),
    });
    report.checks.push(match issuer {
        Ok(()) => Check::new("issuer and version", Outcome::Pass, text(&claims, "iss")),
        Err(e) => Check::new("issuer and version", Outcome::Fail, e).fix(Some(
            "v1.0 access tokens: App registrations → the API → Manifest: accessTokenAcceptedVersion 2 (or add 1 to api_token_versions); another tenant: the provider's tenant and allowed_tenants".into(),
        )),
    });
    report
}

/// Entra's identity rules at sign-in, on the token's claims: the tenant allow-list (the same
/// `TenantRule::allows`), and what the groups and roles claims will give the upstream.
fn entra_identity(p: &OidcProvider, claims: &Value) -> Vec<Check> {
    let Some(e) = p.entra() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let tid = claims.get("tid").and_then(Value::as_str).unwrap_or("");
    out.push(if e.allowed_tenants.allows(tid) {
        Check::new("tenant", Outcome::Pass, format!("{tid} is allowed"))
    } else {
        Check::new("tenant", Outcome::Fail, format!("tenant {tid:?} is not in allowed_tenants"))
            .fix(Some("a user of another organization: add its tenant ID to allowed_tenants if it should get in, or have the user sign in with an account of your tenant".into()))
    });
    let count = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    };
    out.push(if crate::idp::entra::groups_overage(claims) {
        Check::new(
            "groups",
            Outcome::Info,
            match e.graph {
                Some(_) => "too many groups for the token (overage): the gateway reads them from Microsoft Graph at sign-in (groups_overage: graph)",
                None => "too many groups for the token (overage), and groups_overage is deny: this user is refused; App registrations → Token configuration → groups claim: \"Groups assigned to the application\" keeps the list short",
            },
        )
    } else if claims.get("groups").is_none() {
        Check::new(
            "groups",
            Outcome::Info,
            "no groups claim: routes with allow.groups will refuse this user; App registrations → Token configuration → Add groups claim (Security groups)",
        )
    } else {
        Check::new("groups", Outcome::Info, format!("{} group ID(s) in the token", count("groups")))
    });
    out.push(Check::new(
        "roles",
        Outcome::Info,
        match count("roles") {
            0 => "no app roles: routes with allow.roles (or require_assignment) will refuse this user; Enterprise applications → Users and groups assigns them".to_string(),
            n => format!("{n} app role(s)"),
        },
    ));
    out
}
