//! SAML single logout initiated by the IdP: a LogoutRequest is believed only when the IdP's
//! keys signed it (HTTP-Redirect: the query signature of SAML bindings §3.4.4.1; HTTP-POST:
//! an enveloped XML signature on the request, checked by xmlsec like an assertion), it names
//! the IdP as issuer and this SP's logout URL as destination, and it is fresh and unused.
//! A pure function from (binding input, trust, expectations, clock) to the request or a
//! typed rejection; the gateway then ends the sessions it names.

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use openssl::hash::MessageDigest;
use samael::crypto::{CertificateDer, Crypto, CryptoProvider, ReduceMode};

use super::saml_verify::{self, Trust};

/// Largest LogoutRequest accepted, encoded or inflated.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How old a LogoutRequest may be (beyond the clock skew).
pub(crate) const MAX_AGE: Duration = Duration::from_secs(600);

/// A verified LogoutRequest, reduced to what the gateway acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub id: String,
    pub name_id: String,
    /// The sessions to end; none = every session of `name_id`.
    pub session_indexes: Vec<String>,
}

/// Why a LogoutRequest was refused. `reason()` is a bounded metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutRejection {
    #[error("the logout request is larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    #[error("the logout request is not signed (SigAlg and Signature, or an XML signature)")]
    Unsigned,
    #[error("signature algorithm {0:?} is not accepted (RSA-SHA256 or stronger)")]
    Algorithm(String),
    #[error("the logout request's signature does not verify with the IdP's certificates")]
    BadSignature,
    #[error("the IdP is configured by certificate fingerprint, which cannot verify HTTP-Redirect logout requests (no certificate travels with them): configure its metadata instead")]
    NoCertificate,
    #[error("the logout request cannot be read: {0}")]
    Malformed(String),
    #[error("the logout request's issuer is {got:?}, not the IdP ({expected:?})")]
    WrongIssuer { expected: String, got: String },
    #[error(
        "the logout request is for {got:?}, not this service provider's logout URL {expected:?}"
    )]
    WrongDestination { expected: String, got: String },
    #[error(
        "the logout request was issued at {0}, outside the accepted window (check the clocks)"
    )]
    Stale(String),
    #[error("logout request {0} was already used (replay)")]
    Replay(String),
}

impl LogoutRejection {
    pub fn reason(&self) -> &'static str {
        match self {
            LogoutRejection::TooLarge => "logout_too_large",
            LogoutRejection::Unsigned => "logout_unsigned",
            LogoutRejection::Algorithm(_) => "logout_algorithm",
            LogoutRejection::BadSignature => "logout_bad_signature",
            LogoutRejection::NoCertificate => "logout_no_certificate",
            LogoutRejection::Malformed(_) => "logout_malformed",
            LogoutRejection::WrongIssuer { .. } => "logout_wrong_issuer",
            LogoutRejection::WrongDestination { .. } => "logout_wrong_destination",
            LogoutRejection::Stale(_) => "logout_stale",
            LogoutRejection::Replay(_) => "logout_replay",
        }
    }
}

/// What a logout request must match.
pub(crate) struct Expect<'a> {
    /// This SP's logout URL (the request's Destination, when it names one).
    pub slo_url: &'a str,
    pub clock_skew: Duration,
}

/// For the fuzzers (`crate::fuzz_targets`): `text` through the XML reader, and through both
/// bindings against an IdP with no certificate (nothing can verify; nothing may panic).
pub(crate) fn fuzz(text: &str) {
    let _ = parse(text);
    let trust = Trust {
        idp_entity_id: "https://idp.example/".into(),
        certs: Vec::new(),
    };
    let expect = Expect {
        slo_url: "https://gw.example/_authgate/saml/p/slo",
        clock_skew: Duration::from_secs(60),
    };
    let now = Utc::now();
    assert!(
        from_redirect(text, &trust, &expect, now).is_err(),
        "verified without a key"
    );
    assert!(
        from_post(text, &trust, &expect, now).is_err(),
        "verified without a key"
    );
}

/// The HTTP-Redirect binding: `raw_query` exactly as received. The signature covers
/// `SAMLRequest=…[&RelayState=…]&SigAlg=…` in their received (URL-encoded) form.
pub(crate) fn from_redirect(
    raw_query: &str,
    trust: &Trust,
    expect: &Expect<'_>,
    now: DateTime<Utc>,
) -> Result<LogoutRequest, LogoutRejection> {
    if raw_query.len() > MAX_REQUEST_BYTES {
        return Err(LogoutRejection::TooLarge);
    }
    let mut fields: [Option<&str>; 4] = [None; 4];
    const NAMES: [&str; 4] = ["SAMLRequest", "RelayState", "SigAlg", "Signature"];
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if let Some(i) = NAMES.iter().position(|n| *n == name) {
            if fields[i].replace(value).is_some() {
                return Err(LogoutRejection::Malformed(format!("{name} given twice")));
            }
        }
    }
    let [Some(request), relay, sig_alg, signature] = fields else {
        return Err(LogoutRejection::Malformed("no SAMLRequest".into()));
    };
    let (Some(sig_alg), Some(signature)) = (sig_alg, signature) else {
        return Err(LogoutRejection::Unsigned);
    };
    let decode = |v: &str| -> String {
        percent_encoding::percent_decode_str(&v.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    let alg = decode(sig_alg);
    let digest = match alg.as_str() {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => MessageDigest::sha256(),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => MessageDigest::sha384(),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => MessageDigest::sha512(),
        _ => return Err(LogoutRejection::Algorithm(alg)),
    };
    let signature = base64::engine::general_purpose::STANDARD
        .decode(decode(signature).replace(' ', "+").trim())
        .map_err(|_| LogoutRejection::Malformed("Signature is not base64".into()))?;
    let mut signed = format!("SAMLRequest={request}");
    if let Some(r) = relay {
        signed.push_str(&format!("&RelayState={r}"));
    }
    signed.push_str(&format!("&SigAlg={sig_alg}"));
    if trust.certs.is_empty() {
        return Err(LogoutRejection::NoCertificate);
    }
    if !trust
        .certs
        .iter()
        .any(|c| verifies(c, digest, signed.as_bytes(), &signature))
    {
        return Err(LogoutRejection::BadSignature);
    }
    let xml = inflate(&decode(request))?;
    read(&xml, trust, expect, now)
}

/// The HTTP-POST binding: `SAMLRequest` (base64 XML) with an enveloped signature.
pub(crate) fn from_post(
    b64: &str,
    trust: &Trust,
    expect: &Expect<'_>,
    now: DateTime<Utc>,
) -> Result<LogoutRequest, LogoutRejection> {
    if b64.len() > MAX_REQUEST_BYTES {
        return Err(LogoutRejection::TooLarge);
    }
    let xml = saml_verify::decode_post(b64)
        .map_err(|_| LogoutRejection::Malformed("SAMLRequest is not base64 UTF-8".into()))?;
    refuse_doctype(&xml)?;
    if !xml.contains("Signature") {
        return Err(LogoutRejection::Unsigned);
    }
    if trust.certs.is_empty() {
        return Err(LogoutRejection::BadSignature);
    }
    // Only what the signature covers survives: a wrapped, unsigned request is gone.
    let reduced = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        &xml,
        &trust.certs,
        ReduceMode::ValidateAndMarkNoAncestors,
        Some(&saml_verify::ALLOWED),
    )
    .map_err(|_| LogoutRejection::BadSignature)?;
    read(&reduced, trust, expect, now)
}

fn verifies(cert: &CertificateDer, digest: MessageDigest, data: &[u8], sig: &[u8]) -> bool {
    let Ok(x509) = openssl::x509::X509::from_der(cert.der_data()) else {
        return false;
    };
    let Ok(key) = x509.public_key() else {
        return false;
    };
    openssl::sign::Verifier::new(digest, &key)
        .and_then(|mut v| v.verify_oneshot(sig, data))
        .unwrap_or(false)
}

fn inflate(b64: &str) -> Result<String, LogoutRejection> {
    use std::io::Read as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| LogoutRejection::Malformed("SAMLRequest is not base64".into()))?;
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&bytes[..])
        .take(MAX_REQUEST_BYTES as u64 + 1)
        .read_to_string(&mut xml)
        .map_err(|_| LogoutRejection::Malformed("SAMLRequest does not inflate".into()))?;
    if xml.len() > MAX_REQUEST_BYTES {
        return Err(LogoutRejection::TooLarge);
    }
    refuse_doctype(&xml)?;
    Ok(xml)
}

fn refuse_doctype(xml: &str) -> Result<(), LogoutRejection> {
    if xml.to_ascii_uppercase().contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(LogoutRejection::Malformed("DOCTYPE refused".into()));
    }
    Ok(())
}

/// Reads a (signed) LogoutRequest and checks issuer, destination and time.
fn read(
    xml: &str,
    trust: &Trust,
    expect: &Expect<'_>,
    now: DateTime<Utc>,
) -> Result<LogoutRequest, LogoutRejection> {
    let parsed = parse(xml)?;
    let issuer = parsed.issuer.unwrap_or_default();
    if issuer != trust.idp_entity_id {
        return Err(LogoutRejection::WrongIssuer {
            expected: trust.idp_entity_id.clone(),
            got: issuer,
        });
    }
    if let Some(dest) = parsed.destination {
        if dest != expect.slo_url {
            return Err(LogoutRejection::WrongDestination {
                expected: expect.slo_url.to_string(),
                got: dest,
            });
        }
    }
    let skew = chrono::Duration::from_std(expect.clock_skew).unwrap_or_default();
    let max_age = chrono::Duration::from_std(MAX_AGE).unwrap_or_default();
    let instant = parsed
        .issue_instant
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| LogoutRejection::Malformed("no readable IssueInstant".into()))?;
    if instant > now + skew || instant + max_age + skew < now {
        return Err(LogoutRejection::Stale(instant.to_rfc3339()));
    }
    if let Some(noa) = parsed
        .not_on_or_after
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    {
        if now - skew >= noa.with_timezone(&Utc) {
            return Err(LogoutRejection::Stale(noa.to_rfc3339()));
        }
    }
    let id = parsed
        .id
        .filter(|id| {
            id.len() <= 256
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
        })
        .ok_or_else(|| LogoutRejection::Malformed("no usable ID".into()))?;
    let name_id = parsed
        .name_id
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| LogoutRejection::Malformed("no NameID".into()))?;
    Ok(LogoutRequest {
        id,
        name_id,
        session_indexes: parsed.session_indexes,
    })
}

#[derive(Default)]
struct Parsed {
    id: Option<String>,
    issue_instant: Option<String>,
    not_on_or_after: Option<String>,
    destination: Option<String>,
    issuer: Option<String>,
    name_id: Option<String>,
    session_indexes: Vec<String>,
}

/// The root LogoutRequest's attributes and its direct children Issuer, NameID and
/// SessionIndex (namespace prefixes ignored). One root, one of each but SessionIndex.
fn parse(xml: &str) -> Result<Parsed, LogoutRejection> {
    use quick_xml::events::Event;
    let bad = |m: &str| LogoutRejection::Malformed(m.to_string());
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Parsed::default();
    let mut depth = 0usize;
    let mut roots = 0usize;
    let mut field: Option<&'static str> = None;
    let mut text = String::new();
    loop {
        let event = reader.read_event().map_err(|e| bad(&e.to_string()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) if depth == 0 => {
                roots += 1;
                if e.local_name().as_ref() != b"LogoutRequest" || roots > 1 {
                    return Err(bad("the root element is not one LogoutRequest"));
                }
                for a in e.attributes() {
                    let a = a.map_err(|e| bad(&e.to_string()))?;
                    let v = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| bad(&e.to_string()))?
                        .into_owned();
                    match a.key.local_name().as_ref() {
                        b"ID" => out.id = Some(v),
                        b"IssueInstant" => out.issue_instant = Some(v),
                        b"NotOnOrAfter" => out.not_on_or_after = Some(v),
                        b"Destination" => out.destination = Some(v),
                        _ => {}
                    }
                }
                if matches!(event, Event::Start(_)) {
                    depth = 1;
                }
            }
            Event::Start(e) => {
                if depth == 1 {
                    field = match e.local_name().as_ref() {
                        b"Issuer" => Some("issuer"),
                        b"NameID" => Some("name_id"),
                        b"SessionIndex" => Some("session_index"),
                        b"EncryptedID" => return Err(bad("encrypted NameIDs are not supported")),
                        _ => None,
                    };
                    text.clear();
                }
                depth += 1;
            }
            Event::Empty(e) if depth == 1 && e.local_name().as_ref() == b"EncryptedID" => {
                return Err(bad("encrypted NameIDs are not supported"));
            }
            Event::Text(t) if depth == 2 && field.is_some() => {
                text.push_str(&t.decode().map_err(|e| bad(&e.to_string()))?);
            }
            Event::GeneralRef(r) if depth == 2 && field.is_some() => {
                let name = r.decode().map_err(|e| bad(&e.to_string()))?;
                let ch = match r.resolve_char_ref().map_err(|e| bad(&e.to_string()))? {
                    Some(c) => c,
                    None => match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => s.chars().next().unwrap_or('\u{fffd}'),
                        None => return Err(bad("unknown entity")),
                    },
                };
                text.push(ch);
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    let value = std::mem::take(&mut text).trim().to_string();
                    match field.take() {
                        Some("issuer") if out.issuer.is_none() => out.issuer = Some(value),
                        Some("name_id") if out.name_id.is_none() => out.name_id = Some(value),
                        Some("session_index") if out.session_indexes.len() < 16 => {
                            out.session_indexes.push(value)
                        }
                        Some(other) => return Err(bad(&format!("{other} given twice"))),
                        None => {}
                    }
                }
            }
            Event::DocType(_) => return Err(bad("DOCTYPE refused")),
            Event::Eof => break,
            _ => {}
        }
    }
    if roots != 1 {
        return Err(bad("no LogoutRequest"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_children_only_at_the_top() {
        let xml = r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a1" IssueInstant="2026-01-01T00:00:00Z" Destination="https://gw/slo"><saml:Issuer>idp</saml:Issuer><saml:NameID>alice</saml:NameID><samlp:SessionIndex>s1</samlp:SessionIndex><samlp:Extensions><saml:NameID>mallory</saml:NameID></samlp:Extensions></samlp:LogoutRequest>"#;
        let p = parse(xml).unwrap();
        assert_eq!(p.id.as_deref(), Some("_a1"));
        assert_eq!(p.issuer.as_deref(), Some("idp"));
        assert_eq!(p.name_id.as_deref(), Some("alice"));
        assert_eq!(p.session_indexes, vec!["s1".to_string()]);
        assert_eq!(p.destination.as_deref(), Some("https://gw/slo"));
    }

    #[test]
    fn refuses_odd_shapes() {
        for xml in [
            "<Response/>",
            "<LogoutRequest ID='a'><Issuer>x</Issuer><Issuer>y</Issuer></LogoutRequest>",
            "<LogoutRequest ID='a'><NameID>x</NameID><NameID>y</NameID></LogoutRequest>",
            "<LogoutRequest ID='a'><EncryptedID/></LogoutRequest>",
            "<LogoutRequest ID='a'/><LogoutRequest ID='b'/>",
            "<!DOCTYPE x><LogoutRequest ID='a'/>",
            "",
        ] {
            assert!(parse(xml).is_err(), "{xml}");
        }
    }
}
