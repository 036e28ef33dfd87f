//! A SAML response through the provider's own verification (`saml_verify::verify` with the
//! provider's trust and expectations, then its identity mapping).

use chrono::{DateTime, Utc};
use samael::crypto::CertificateDer;

use super::{Check, Outcome, Report};
use crate::idp::entra::portal::saml_fix;
use crate::idp::saml::Expectation;
use crate::idp::saml::{embedded_certs, SamlProvider};
use crate::idp::saml_verify::{verify, AssertionRejection, Trust, Verified};

/// The checks in the order the gateway makes them.
const ORDER: [&str; 11] = [
    "structure",
    "IdP status",
    "signature",
    "issuer",
    "destination",
    "InResponseTo",
    "time window",
    "audience",
    "subject confirmation",
    "NameID",
    "user key",
];

fn check_of(r: &AssertionRejection) -> &'static str {
    match r {
        AssertionRejection::TooLarge
        | AssertionRejection::Encoding
        | AssertionRejection::DocType
        | AssertionRejection::AssertionCount(_)
        | AssertionRejection::Encrypted
        | AssertionRejection::Malformed(_)
        | AssertionRejection::Replay(_) => "structure",
        AssertionRejection::IdpStatus { .. } => "IdP status",
        AssertionRejection::BadSignature => "signature",
        AssertionRejection::WrongIssuer { .. } => "issuer",
        AssertionRejection::WrongDestination { .. } => "destination",
        AssertionRejection::UnknownInResponseTo { .. } | AssertionRejection::Unsolicited => {
            "InResponseTo"
        }
        AssertionRejection::NotYetValid { .. } | AssertionRejection::Expired { .. } => {
            "time window"
        }
        AssertionRejection::WrongAudience { .. } => "audience",
        AssertionRejection::NoBearer | AssertionRejection::WrongRecipient { .. } => {
            "subject confirmation"
        }
        AssertionRejection::NoNameId => "NameID",
        AssertionRejection::NoUserKey(_) => "user key",
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn thumbprints(cert: &CertificateDer) -> String {
    let hex = |d: openssl::hash::MessageDigest| {
        openssl::hash::hash(d, cert.der_data())
            .map(|h| h.iter().map(|b| format!("{b:02X}")).collect::<String>())
            .unwrap_or_default()
    };
    let subject = openssl::x509::X509::from_der(cert.der_data())
        .ok()
        .and_then(|c| {
            c.subject_name().entries().last().and_then(|e| {
                std::str::from_utf8(e.data().as_slice())
                    .ok()
                    .map(str::to_string)
            })
        })
        .unwrap_or_default();
    format!(
        "{subject:?}, SHA-1 thumbprint {} (as Entra shows it)",
        hex(openssl::hash::MessageDigest::sha1())
    )
}

pub(super) async fn explain(p: &SamlProvider, xml: &str, at: DateTime<Utc>) -> Report {
    let mut report = Report {
        title: format!(
            "SAML response, checked as provider {:?} would at {} (ACS {}, SP entity ID {})",
            p.name,
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            p.acs_url,
            p.cfg.entity_id
        ),
        checks: Vec::new(),
    };
    if let Err(e) = crate::idp::IdentityProvider::load(p).await {
        report.checks.push(
            Check::new(
                "IdP metadata",
                Outcome::Fail,
                format!("could not be loaded: {e}"),
            )
            .fix(Some(
                "the provider's idp_metadata_url / idp_metadata_file must be reachable and valid"
                    .into(),
            )),
        );
        return report;
    }
    // Which sign-in this answers is known only to the browser that started it: take the
    // response's word for it, and say so.
    // (Only a document verify itself would read: no DOCTYPE, within the size limit.)
    let readable = xml.len() <= crate::idp::saml_verify::MAX_RESPONSE_BYTES
        && !xml.to_ascii_uppercase().contains("<!DOCTYPE")
        && !xml.contains("<!ENTITY");
    let in_response_to = readable
        .then(|| xml.parse::<samael::schema::Response>().ok())
        .flatten()
        .and_then(|r| r.in_response_to);
    let (trust, expectation) = match p.expectation(xml, in_response_to.clone()) {
        Ok(x) => x,
        Err(e) => {
            report
                .checks
                .push(Check::new("IdP metadata", Outcome::Fail, e.to_string()));
            return report;
        }
    };
    // What the provider expects, before any relaxing: what a passed check is reported as.
    let (issuer, wanted) = (trust.idp_entity_id.clone(), expectation.clone());
    let mut probe = Probe {
        trust,
        expectation,
        now: at,
        signature_note: None,
    };
    let (mut failures, verified) = probe.run(xml);
    let now = probe.now;
    let signature_note = probe.signature_note;
    // The identity mapping, as at sign-in.
    let mut identity = None;
    if let Some(v) = &verified {
        match p.identity(v) {
            Ok(id) => identity = Some(id),
            Err(r) => failures.push(r),
        }
    }
    let reached_end = verified.is_some();
    for name in ORDER {
        let failed: Vec<&AssertionRejection> =
            failures.iter().filter(|r| check_of(r) == name).collect();
        if let Some(first) = failed.first() {
            let mut detail = failed
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            if name == "signature" {
                if let Some(note) = &signature_note {
                    detail = format!("{detail} — {note}");
                }
            }
            report
                .checks
                .push(Check::new(name, Outcome::Fail, detail).fix(saml_fix(first)));
        } else if reached_end || name == "structure" {
            let detail = passed(name, &issuer, &wanted, in_response_to.as_deref(), now);
            report.checks.push(Check::new(name, Outcome::Pass, detail));
        } else {
            report.checks.push(Check::new(
                name,
                Outcome::Skipped,
                "not reached: the failure above stops the checks",
            ));
        }
    }
    if let (Some(v), Some(id)) = (&verified, &identity) {
        identity_checks(&mut report, v, id);
    }
    report
}

/// What the gateway would make of the user: the identity, and hints about groups.
fn identity_checks(report: &mut Report, v: &Verified, id: &crate::identity::Identity) {
    report.checks.push(Check::new(
        "identity",
        Outcome::Info,
        format!(
            "user {:?}, email {:?}, name {:?}, tenant {:?}, {} group(s), {} role(s), NameID {:?}",
            id.user,
            id.email.as_deref().unwrap_or(""),
            id.name.as_deref().unwrap_or(""),
            id.tenant.as_deref().unwrap_or(""),
            id.groups.len(),
            id.roles.len(),
            v.name_id
        ),
    ));
    if id.groups.is_empty() && v.attribute(crate::idp::entra::SAML_GROUPS_LINK).is_none() {
        report.checks.push(Check::new(
            "groups",
            Outcome::Info,
            "no groups in the assertion: routes with allow.groups will refuse this user; Single sign-on → Attributes & Claims → Add a group claim",
        ));
    }
    if v.attribute(crate::idp::entra::SAML_GROUPS_LINK).is_some() {
        report.checks.push(Check::new(
            "groups",
            Outcome::Info,
            "over 150 groups: Entra sent a groups.link instead; the gateway reads them from Microsoft Graph at sign-in (or refuses if it cannot)",
        ));
    }
}

/// What the checks run with, relaxed one failure at a time to find the next one.
struct Probe {
    trust: Trust,
    expectation: Expectation,
    now: DateTime<Utc>,
    /// What the signature failure means (a certificate the gateway does not trust, or none).
    signature_note: Option<String>,
}

impl Probe {
    /// Verifies, relaxing each failure (at most 16) until it passes or a failure repeats or
    /// cannot be relaxed. Returns every failure, and the verified assertion if it passed.
    fn run(&mut self, xml: &str) -> (Vec<AssertionRejection>, Option<Verified>) {
        let mut failures: Vec<AssertionRejection> = Vec::new();
        for _ in 0..16 {
            let r = match verify(xml, &self.trust, &self.expectation.as_expect(), self.now) {
                Ok(v) => return (failures, Some(v)),
                Err(r) => r,
            };
            let relaxed = self.relax(&r, xml);
            let stop = !relaxed || failures.iter().any(|f| f == &r);
            failures.push(r);
            if stop {
                break;
            }
        }
        (failures, None)
    }

    /// Sets the failed expectation to what the response says, to find the next failure.
    fn relax(&mut self, r: &AssertionRejection, xml: &str) -> bool {
        let skew = chrono::Duration::from_std(self.expectation.clock_skew).unwrap_or_default();
        let one = chrono::Duration::seconds(1);
        match r {
            AssertionRejection::Expired {
                not_on_or_after, ..
            } => parse_time(not_on_or_after)
                .map(|t| self.now = t + skew - one)
                .is_some(),
            AssertionRejection::NotYetValid { not_before, .. } => parse_time(not_before)
                .map(|t| self.now = t - skew + one)
                .is_some(),
            AssertionRejection::WrongAudience { got, .. } => match got.first() {
                Some(a) => {
                    self.expectation.sp_entity_id = a.clone();
                    true
                }
                None => false,
            },
            AssertionRejection::WrongDestination { got, .. }
            | AssertionRejection::WrongRecipient { got, .. }
                if !got.is_empty() =>
            {
                self.expectation.acs_url = got.clone();
                true
            }
            AssertionRejection::WrongIssuer { got, .. } => {
                self.trust.idp_entity_id = got.clone();
                true
            }
            AssertionRejection::UnknownInResponseTo { got: Some(g) } => {
                self.expectation.request_id = Some(g.clone());
                true
            }
            AssertionRejection::Unsolicited => {
                self.expectation.allow_idp_initiated = true;
                true
            }
            AssertionRejection::BadSignature if self.signature_note.is_none() => {
                self.trust_carried_certificates(xml)
            }
            _ => false,
        }
    }

    /// A bad signature: does the response carry a certificate the gateway does not trust?
    /// Then the rest is checked as if it were trusted.
    fn trust_carried_certificates(&mut self, xml: &str) -> bool {
        let novel: Vec<CertificateDer> = embedded_certs(xml)
            .into_iter()
            .filter(|c| {
                !self
                    .trust
                    .certs
                    .iter()
                    .any(|t| t.der_data() == c.der_data())
            })
            .collect();
        if novel.is_empty() {
            self.signature_note = Some("no signature verifies with a trusted certificate, and the response carries no other certificate: it was altered, unsigned, or signed with SHA-1".to_string());
            return false;
        }
        let names: Vec<String> = novel.iter().map(thumbprints).collect();
        self.signature_note = Some(format!(
            "signed with a certificate the gateway does not trust: {} (the checks below assume it were trusted)",
            names.join("; ")
        ));
        self.trust.certs = novel;
        true
    }
}

/// What a passed check is reported as: what the provider expected (before any relaxing).
fn passed(
    name: &str,
    issuer: &str,
    wanted: &Expectation,
    in_response_to: Option<&str>,
    now: DateTime<Utc>,
) -> String {
    match name {
        "signature" => "signed by a trusted certificate, RSA/ECDSA with SHA-256 or stronger".into(),
        "issuer" => issuer.to_string(),
        "destination" => format!("not elsewhere than {}", wanted.acs_url),
        "subject confirmation" => format!("bearer, to {}", wanted.acs_url),
        "audience" => wanted.sp_entity_id.clone(),
        "InResponseTo" => match in_response_to {
            Some(id) => format!("answers AuthnRequest {id} (the ACS accepts it only from the browser that started that sign-in, once)"),
            None => "unsolicited (IdP-initiated), allowed for this provider".into(),
        },
        "time window" => format!("valid at {}", now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        _ => "as expected".into(),
    }
}
