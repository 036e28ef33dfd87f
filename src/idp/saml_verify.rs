//! SAML Response verification: a pure function from (document, trust, expectations, clock)
//! to a verified assertion or a typed rejection that names what to fix.
//!
//! Only content the XML signature covers is used: xmlsec (through samael) verifies every
//! signature against the IdP's certificates and returns a document reduced to the signed
//! content; everything unsigned (a wrapped evil assertion, an unsigned Destination, comments)
//! is gone before any field is read. Unsigned documents, SHA-1 signatures, DOCTYPEs (XXE,
//! entity expansion) and documents with more than one assertion are refused outright.

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use samael::crypto::{
    AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode,
};
use samael::schema::{Assertion, Response};

/// The largest SAMLResponse accepted (base64 text). Entra responses are a few KB; a user in
/// 150 groups is still far below this.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// Whom to believe.
#[derive(Clone)]
pub struct Trust {
    /// The IdP's entity ID (Entra: `https://sts.windows.net/<tenant id>/`).
    pub idp_entity_id: String,
    /// Every signing certificate the IdP publishes (rollover: all of them are trusted).
    pub certs: Vec<CertificateDer>,
}

/// What this service provider expects of a response.
pub struct Expect<'a> {
    pub sp_entity_id: &'a str,
    pub acs_url: &'a str,
    /// The ID of the AuthnRequest this browser sent (SP-initiated), if any.
    pub request_id: Option<&'a str>,
    pub allow_idp_initiated: bool,
    pub clock_skew: Duration,
}

/// A verified assertion, reduced to what the gateway uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub assertion_id: String,
    /// Until when the assertion ID must be remembered (replay cache).
    pub valid_until: DateTime<Utc>,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
    /// The earliest `SessionNotOnOrAfter` of the authentication statements: the session the
    /// gateway makes must end by then.
    pub session_not_on_or_after: Option<DateTime<Utc>>,
    pub in_response_to: Option<String>,
    /// Attribute name → values, in document order.
    pub attributes: Vec<(String, Vec<String>)>,
    /// When the user authenticated at the IdP (the latest `AuthnInstant`).
    pub authn_instant: Option<DateTime<Utc>>,
}

impl Verified {
    pub fn attribute(&self, name: &str) -> Option<&[String]> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The values of attribute `name` (a URI, or any name, exactly), or for a short name
    /// without `/` or `:` (`department`) of every attribute whose URI ends in `/department`
    /// (any case), as Entra names claims `<namespace>/<name>`.
    pub fn attribute_or_alias(&self, name: &str) -> Option<Vec<String>> {
        if let Some(v) = self.attribute(name) {
            return Some(v.to_vec());
        }
        if name.contains(['/', ':']) {
            return None;
        }
        let found: Vec<String> = self
            .attributes
            .iter()
            .filter(|(n, _)| {
                n.rsplit_once('/')
                    .is_some_and(|(_, last)| last.eq_ignore_ascii_case(name))
            })
            .flat_map(|(_, v)| v.iter().cloned())
            .collect();
        (!found.is_empty()).then_some(found)
    }
}

/// Why a response was refused. `reason()` is a bounded metric label; `Display` tells an admin
/// which setting to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AssertionRejection {
    #[error("SAMLResponse is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("SAMLResponse is not base64 or not UTF-8")]
    Encoding,
    #[error("response contains a DOCTYPE (refused: XXE / entity expansion)")]
    DocType,
    #[error("response has {0} assertions; exactly one is accepted")]
    AssertionCount(usize),
    #[error("the identity provider answered {code}: {message}")]
    IdpStatus { code: String, message: String },
    #[error("no valid signature from a trusted IdP certificate with RSA-SHA256 or stronger (unsigned, tampered, wrong certificate, or SHA-1)")]
    BadSignature,
    #[error("signed content is not a SAML response or assertion: {0}")]
    Malformed(String),
    #[error("encrypted assertions are not supported; turn off token encryption for this app")]
    Encrypted,
    #[error("wrong issuer: expected {expected:?}, got {got:?} (check the IdP entity ID / tenant)")]
    WrongIssuer { expected: String, got: String },
    #[error("wrong audience: expected {expected:?}, got {got:?} (the Identifier (Entity ID) in the IdP must equal the SP entity ID exactly, including any trailing slash)")]
    WrongAudience { expected: String, got: Vec<String> },
    #[error("wrong Destination: expected {expected:?}, got {got:?} (the Reply URL must equal the ACS URL)")]
    WrongDestination { expected: String, got: String },
    #[error("wrong Recipient: expected {expected:?}, got {got:?} (the Reply URL must equal the ACS URL)")]
    WrongRecipient { expected: String, got: String },
    #[error("not yet valid: NotBefore {not_before} is after now {now} plus {skew_secs}s skew (check the clocks)")]
    NotYetValid {
        not_before: String,
        now: String,
        skew_secs: u64,
    },
    #[error("expired: NotOnOrAfter {not_on_or_after} is before now {now} minus {skew_secs}s skew (check the clocks, or the sign-in took too long)")]
    Expired {
        not_on_or_after: String,
        now: String,
        skew_secs: u64,
    },
    #[error("no bearer SubjectConfirmation with Recipient and NotOnOrAfter")]
    NoBearer,
    #[error("InResponseTo {got:?} does not match the sign-in this browser started")]
    UnknownInResponseTo { got: Option<String> },
    #[error("unsolicited (IdP-initiated) response, and IdP-initiated sign-in is not allowed for this provider")]
    Unsolicited,
    #[error("assertion {0} was already used (replay)")]
    Replay(String),
    #[error("assertion has no NameID")]
    NoNameId,
    /// The configured user key attribute is absent: the NameID never stands in for it.
    #[error("assertion has no {0} attribute, the provider's user_attribute (set user_attribute: nameid to key users by their NameID instead)")]
    NoUserKey(String),
}

impl AssertionRejection {
    pub fn reason(&self) -> &'static str {
        match self {
            AssertionRejection::TooLarge => "too_large",
            AssertionRejection::Encoding => "encoding",
            AssertionRejection::DocType => "doctype",
            AssertionRejection::AssertionCount(_) => "assertion_count",
            AssertionRejection::IdpStatus { .. } => "idp_status",
            AssertionRejection::BadSignature => "bad_signature",
            AssertionRejection::Malformed(_) => "malformed",
            AssertionRejection::Encrypted => "encrypted",
            AssertionRejection::WrongIssuer { .. } => "wrong_issuer",
            AssertionRejection::WrongAudience { .. } => "wrong_audience",
            AssertionRejection::WrongDestination { .. } => "wrong_destination",
            AssertionRejection::WrongRecipient { .. } => "wrong_recipient",
            AssertionRejection::NotYetValid { .. } => "not_yet_valid",
            AssertionRejection::Expired { .. } => "expired",
            AssertionRejection::NoBearer => "no_bearer",
            AssertionRejection::UnknownInResponseTo { .. } => "unknown_in_response_to",
            AssertionRejection::Unsolicited => "unsolicited",
            AssertionRejection::Replay(_) => "replay",
            AssertionRejection::NoNameId => "no_name_id",
            AssertionRejection::NoUserKey(_) => "no_user_key",
        }
    }
}

/// Decodes the HTTP-POST binding's `SAMLResponse` value.
pub fn decode_post(b64: &str) -> Result<String, AssertionRejection> {
    if b64.len() > MAX_RESPONSE_BYTES {
        return Err(AssertionRejection::TooLarge);
    }
    let cleaned: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cleaned)
        .map_err(|_| AssertionRejection::Encoding)?;
    String::from_utf8(bytes).map_err(|_| AssertionRejection::Encoding)
}

/// Signature algorithms accepted on anything the IdP signs (no SHA-1).
pub const ALLOWED: [AllowedSignatureAlgorithm; 5] = [
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
];

/// Verifies a decoded SAML Response (or a bare assertion) at time `now`.
pub fn verify(
    xml: &str,
    trust: &Trust,
    expect: &Expect<'_>,
    now: DateTime<Utc>,
) -> Result<Verified, AssertionRejection> {
    if xml.len() > MAX_RESPONSE_BYTES {
        return Err(AssertionRejection::TooLarge);
    }
    if xml.to_ascii_uppercase().contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(AssertionRejection::DocType);
    }
    let assertions = count_elements(xml, &["Assertion", "EncryptedAssertion"])?;
    if count_elements(xml, &["EncryptedAssertion"])? > 0 {
        return Err(AssertionRejection::Encrypted);
    }
    // An IdP error (no assertion, often unsigned) is shown with its message; the message is
    // display-only and never grants anything.
    if assertions == 0 {
        if let Ok(resp) = xml.parse::<Response>() {
            if let Some(status) = resp.status {
                let code = status.status_code.value.unwrap_or_default();
                if code != SUCCESS {
                    let message = status
                        .status_message
                        .and_then(|m| m.value)
                        .unwrap_or_default();
                    return Err(AssertionRejection::IdpStatus { code, message });
                }
            }
        }
    }
    if assertions != 1 {
        return Err(AssertionRejection::AssertionCount(assertions));
    }
    if trust.certs.is_empty() {
        return Err(AssertionRejection::BadSignature);
    }

    // From here on, only signed content.
    let reduced = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &trust.certs,
        ReduceMode::ValidateAndMarkNoAncestors,
        Some(&ALLOWED),
    )
    .map_err(|_| AssertionRejection::BadSignature)?;

    let (response, assertion) = match root_name(&reduced)?.as_str() {
        "Response" => {
            let r: Response = reduced
                .parse()
                .map_err(|e: quick_xml::DeError| AssertionRejection::Malformed(e.to_string()))?;
            let a = r
                .assertion
                .clone()
                .ok_or(AssertionRejection::AssertionCount(0))?;
            (Some(r), a)
        }
        "Assertion" => {
            let a: Assertion = reduced.parse().map_err(|e: Box<dyn std::error::Error>| {
                AssertionRejection::Malformed(e.to_string())
            })?;
            (None, a)
        }
        other => {
            return Err(AssertionRejection::Malformed(format!(
                "signed root is <{other}>"
            )))
        }
    };
    // A signed Response additionally vouches for its envelope.
    if let Some(r) = &response {
        if let Some(dest) = &r.destination {
            if dest != expect.acs_url {
                return Err(AssertionRejection::WrongDestination {
                    expected: expect.acs_url.to_string(),
                    got: dest.clone(),
                });
            }
        }
        if let Some(issuer) = &r.issuer {
            check_issuer(issuer.value.as_deref().unwrap_or(""), trust)?;
        }
        if let Some(code) = r.status.as_ref().and_then(|s| s.status_code.value.clone()) {
            if code != SUCCESS {
                return Err(AssertionRejection::IdpStatus {
                    code,
                    message: String::new(),
                });
            }
        }
        check_in_response_to(r.in_response_to.as_deref(), expect)?;
    }
    verify_assertion(&assertion, trust, expect, now)
}

fn check_issuer(got: &str, trust: &Trust) -> Result<(), AssertionRejection> {
    if got != trust.idp_entity_id {
        return Err(AssertionRejection::WrongIssuer {
            expected: trust.idp_entity_id.clone(),
            got: got.to_string(),
        });
    }
    Ok(())
}

fn check_in_response_to(got: Option<&str>, expect: &Expect<'_>) -> Result<(), AssertionRejection> {
    match (got, expect.request_id) {
        (Some(got), Some(want)) if got == want => Ok(()),
        (None, _) if expect.allow_idp_initiated => Ok(()),
        (None, _) => Err(AssertionRejection::Unsolicited),
        (got, _) => Err(AssertionRejection::UnknownInResponseTo {
            got: got.map(str::to_string),
        }),
    }
}

/// The assertion's clock: `now` with the allowed skew, and the refusals it makes.
struct Window {
    now: DateTime<Utc>,
    skew: chrono::Duration,
    skew_secs: u64,
}

impl Window {
    fn new(expect: &Expect<'_>, now: DateTime<Utc>) -> Self {
        Self {
            now,
            skew: chrono::Duration::from_std(expect.clock_skew)
                .unwrap_or_else(|_| chrono::Duration::minutes(5)),
            skew_secs: expect.clock_skew.as_secs(),
        }
    }

    fn fmt(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// `NotBefore` still ahead (beyond the skew).
    fn too_early(&self, not_before: Option<DateTime<Utc>>) -> Option<AssertionRejection> {
        let nb = not_before?;
        (self.now + self.skew < nb).then(|| AssertionRejection::NotYetValid {
            not_before: Self::fmt(nb),
            now: Self::fmt(self.now),
            skew_secs: self.skew_secs,
        })
    }

    /// `NotOnOrAfter` passed (beyond the skew).
    fn too_late(&self, not_on_or_after: DateTime<Utc>) -> Option<AssertionRejection> {
        (self.now - self.skew >= not_on_or_after).then(|| AssertionRejection::Expired {
            not_on_or_after: Self::fmt(not_on_or_after),
            now: Self::fmt(self.now),
            skew_secs: self.skew_secs,
        })
    }
}

/// `Conditions`: the time window and the audience (required, and exact: Entra's
/// trailing-slash mistakes are the classic). Returns the conditions' `NotOnOrAfter`.
fn check_conditions(
    a: &Assertion,
    expect: &Expect<'_>,
    window: &Window,
) -> Result<Option<DateTime<Utc>>, AssertionRejection> {
    let conditions = a.conditions.as_ref();
    let mut valid_until: Option<DateTime<Utc>> = None;
    if let Some(c) = conditions {
        if let Some(early) = window.too_early(c.not_before) {
            return Err(early);
        }
        if let Some(noa) = c.not_on_or_after {
            if let Some(late) = window.too_late(noa) {
                return Err(late);
            }
            valid_until = Some(noa);
        }
    }
    let audience_restrictions = conditions
        .and_then(|c| c.audience_restrictions.as_ref())
        .map(|rs| rs.as_slice())
        .unwrap_or(&[]);
    let audience_ok = !audience_restrictions.is_empty()
        && audience_restrictions
            .iter()
            .all(|r| r.audience.iter().any(|x| x == expect.sp_entity_id));
    if !audience_ok {
        return Err(AssertionRejection::WrongAudience {
            expected: expect.sp_entity_id.to_string(),
            got: audience_restrictions
                .iter()
                .flat_map(|r| r.audience.iter().cloned())
                .collect(),
        });
    }
    Ok(valid_until)
}

/// A bearer subject confirmation: Recipient = our ACS, in its time window, InResponseTo
/// ours. Returns its `NotOnOrAfter` and `InResponseTo`, or the first confirmation's reason.
fn confirm_bearer(
    a: &Assertion,
    expect: &Expect<'_>,
    window: &Window,
) -> Result<(DateTime<Utc>, Option<String>), AssertionRejection> {
    let bearer = a
        .subject
        .as_ref()
        .and_then(|s| s.subject_confirmations.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.method.as_deref() == Some(BEARER));
    let mut first_err = None;
    for c in bearer {
        let Some(d) = &c.subject_confirmation_data else {
            first_err.get_or_insert(AssertionRejection::NoBearer);
            continue;
        };
        let Some(noa) = d.not_on_or_after else {
            first_err.get_or_insert(AssertionRejection::NoBearer);
            continue;
        };
        if let Some(e) = window
            .too_late(noa)
            .or_else(|| window.too_early(d.not_before))
        {
            first_err.get_or_insert(e);
            continue;
        }
        match d.recipient.as_deref() {
            Some(r) if r == expect.acs_url => {}
            other => {
                first_err.get_or_insert(AssertionRejection::WrongRecipient {
                    expected: expect.acs_url.to_string(),
                    got: other.unwrap_or("").to_string(),
                });
                continue;
            }
        }
        if let Err(e) = check_in_response_to(d.in_response_to.as_deref(), expect) {
            first_err.get_or_insert(e);
            continue;
        }
        return Ok((noa, d.in_response_to.clone()));
    }
    Err(first_err.unwrap_or(AssertionRejection::NoBearer))
}

fn verify_assertion(
    a: &Assertion,
    trust: &Trust,
    expect: &Expect<'_>,
    now: DateTime<Utc>,
) -> Result<Verified, AssertionRejection> {
    check_issuer(a.issuer.value.as_deref().unwrap_or(""), trust)?;
    let window = Window::new(expect, now);
    let valid_until = check_conditions(a, expect, &window)?;
    let (confirm_until, in_response_to) = confirm_bearer(a, expect, &window)?;
    // The IdP's session already over: no session can be made from this assertion.
    let session_not_on_or_after = a
        .authn_statements
        .iter()
        .flatten()
        .filter_map(|s| s.session_not_on_or_after)
        .min();
    if let Some(late) = session_not_on_or_after.and_then(|t| window.too_late(t)) {
        return Err(late);
    }
    let subject = a.subject.as_ref();
    let name = subject
        .and_then(|s| s.name_id.as_ref())
        .filter(|n| !n.value.trim().is_empty())
        .ok_or(AssertionRejection::NoNameId)?;
    let attributes = a
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| s.attributes.iter())
        .filter_map(|attr| {
            let name = attr.name.clone()?;
            let values = attr.values.iter().filter_map(|v| v.value.clone()).collect();
            Some((name, values))
        })
        .collect();
    Ok(Verified {
        assertion_id: a.id.clone(),
        valid_until: valid_until.map_or(confirm_until, |v| v.max(confirm_until)),
        name_id: name.value.clone(),
        name_id_format: name.format.clone(),
        session_index: a
            .authn_statements
            .iter()
            .flatten()
            .find_map(|s| s.session_index.clone()),
        session_not_on_or_after,
        in_response_to,
        attributes,
        authn_instant: a
            .authn_statements
            .iter()
            .flatten()
            .filter_map(|s| s.authn_instant)
            .max(),
    })
}

/// Counts elements with any of these local names (namespace prefixes ignored).
fn count_elements(xml: &str, names: &[&str]) -> Result<usize, AssertionRejection> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut n = 0;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e)) | Ok(quick_xml::events::Event::Empty(e)) => {
                let local = e.local_name();
                if names.iter().any(|x| x.as_bytes() == local.as_ref()) {
                    n += 1;
                }
            }
            Ok(quick_xml::events::Event::DocType(_)) => return Err(AssertionRejection::DocType),
            Ok(quick_xml::events::Event::Eof) => return Ok(n),
            Ok(_) => {}
            Err(e) => return Err(AssertionRejection::Malformed(e.to_string())),
        }
    }
}

fn root_name(xml: &str) -> Result<String, AssertionRejection> {
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e)) | Ok(quick_xml::events::Event::Empty(e)) => {
                return Ok(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
            }
            Ok(quick_xml::events::Event::Eof) => {
                return Err(AssertionRejection::Malformed("empty document".into()))
            }
            Ok(_) => {}
            Err(e) => return Err(AssertionRejection::Malformed(e.to_string())),
        }
    }
}
