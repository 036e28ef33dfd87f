//! SAML 2.0 service provider: IdP metadata (URL with background refresh, file, or
//! fingerprints), AuthnRequest over HTTP-Redirect, the ACS (HTTP-POST) with verification off
//! the event loop, a replay cache of assertion IDs, SP metadata, and SP-initiated logout.
//! The verification itself is `saml_verify` (pure, tested against captures and attacks).

use std::io::Write;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::Utc;
use samael::crypto::CertificateDer;
use samael::metadata::EntityDescriptor;
use serde::{Deserialize, Serialize};
use url::Url;

use super::entra::{self, Graph};
use super::saml_logout::{self, LogoutRejection};
use super::saml_verify::{self, AssertionRejection, Expect, Trust, Verified};
use super::settings::{SamlConfig, SamlIdp};
use super::{Begun, IdentityProvider, IdpError};
use crate::assurance::Ask;
use crate::canonical::RESERVED_PREFIX;
use crate::identity::{shared, Identity};
use crate::metrics::Metrics;
use crate::policy::Deny;

const MAX_METADATA_BYTES: usize = 2 * 1024 * 1024;

/// What the browser carries (sealed) between the AuthnRequest and the ACS POST.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingSaml {
    /// RelayState key (also names the cookie).
    pub k: String,
    /// AuthnRequest ID: the response's InResponseTo must equal it.
    pub id: String,
    /// Same-origin path to return to.
    pub r: String,
    pub p: String,
    pub t: u64,
    /// A passive re-authentication (`IsPassive="true"`): a refusal by the IdP leads to a
    /// normal sign-in, not an error page.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pv: bool,
    /// The session a re-authentication replaces (ended once the new one is made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rs: Option<String>,
    /// The domain typed on the address page (home-realm discovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hr: Option<super::realm::Realm>,
    /// The return address is on another served host: its handoff's browser binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hb: Option<String>,
    /// What the sign-in asked for (a route's `require:`), and the session a step-up upgrades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub su: Option<Ask>,
}

/// The IdP as loaded from its metadata (or from fingerprint settings).
pub struct IdpInfo {
    pub entity_id: String,
    pub sso_url: Url,
    pub slo_url: Option<Url>,
    /// Trusted signing certificates; empty in fingerprint mode (taken from each response).
    pub certs: Vec<CertificateDer>,
    fetched_at: Instant,
}

/// The SP's own key and certificate, for signing AuthnRequests.
struct SpSigner {
    key: openssl::pkey::PKey<openssl::pkey::Private>,
    /// Base64 DER, for the SP metadata's KeyDescriptor.
    cert_b64: String,
}

pub struct SamlProvider {
    pub name: String,
    signer: Option<SpSigner>,
    pub cfg: SamlConfig,
    pub acs_url: String,
    pub slo_url: String,
    http: reqwest::Client,
    idp: RwLock<Option<Arc<IdpInfo>>>,
    metrics: Arc<Metrics>,
    /// Entra groups overage lookups (built when the IdP's sign-on URL is known).
    graph: RwLock<Option<Arc<Graph>>>,
}

/// What a response must match, owned (see `SamlProvider::expectation`).
#[derive(Debug, Clone)]
pub struct Expectation {
    pub sp_entity_id: String,
    pub acs_url: String,
    pub request_id: Option<String>,
    pub allow_idp_initiated: bool,
    pub clock_skew: Duration,
}

impl Expectation {
    pub fn as_expect(&self) -> Expect<'_> {
        Expect {
            sp_entity_id: &self.sp_entity_id,
            acs_url: &self.acs_url,
            request_id: self.request_id.as_deref(),
            allow_idp_initiated: self.allow_idp_initiated,
            clock_skew: self.clock_skew,
        }
    }
}

pub(crate) fn acs_path(name: &str) -> String {
    format!("{RESERVED_PREFIX}/saml/{name}/acs")
}

impl SamlProvider {
    pub fn new(
        name: String,
        cfg: SamlConfig,
        public_url: &Url,
        metrics: Arc<Metrics>,
    ) -> Result<Self, IdpError> {
        let base = public_url.as_str().trim_end_matches('/');
        let http = crate::fetch::client(Duration::from_secs(10)).map_err(IdpError::Setup)?;
        let signer = match &cfg.sp_signing {
            Some((key, cert)) => {
                let read = |p: &std::path::Path| {
                    std::fs::read(p)
                        .map_err(|e| IdpError::Setup(format!("cannot read {}: {e}", p.display())))
                };
                let key = openssl::pkey::PKey::private_key_from_pem(&read(key)?).map_err(|e| {
                    IdpError::Setup(format!("sp_key_file is not a PEM private key: {e}"))
                })?;
                let cert = openssl::x509::X509::from_pem(&read(cert)?).map_err(|e| {
                    IdpError::Setup(format!("sp_cert_file is not a PEM certificate: {e}"))
                })?;
                let der = cert.to_der().map_err(|e| IdpError::Setup(e.to_string()))?;
                Some(SpSigner {
                    key,
                    cert_b64: base64::engine::general_purpose::STANDARD.encode(der),
                })
            }
            None => None,
        };
        Ok(Self {
            signer,
            acs_url: format!("{base}{}", acs_path(&name)),
            slo_url: format!("{base}{RESERVED_PREFIX}/saml/{name}/slo"),
            name,
            cfg,
            http,
            idp: RwLock::new(None),
            metrics,
            graph: RwLock::new(None),
        })
    }

    pub fn is_ready(&self) -> bool {
        self.idp.read().map(|i| i.is_some()).unwrap_or(false)
    }

    pub fn idp(&self) -> Result<Arc<IdpInfo>, IdpError> {
        self.idp
            .read()
            .ok()
            .and_then(|i| i.clone())
            .ok_or(IdpError::NotReady)
    }

    pub fn age(&self) -> Option<Duration> {
        self.idp().ok().map(|i| i.fetched_at.elapsed())
    }

    /// Loads (or reloads) the IdP. A failure keeps the last good copy: a refreshed metadata
    /// with a new signing key takes effect without a restart; a broken one changes nothing.
    pub async fn load(&self) -> Result<(), IdpError> {
        let started = Instant::now();
        let info = match &self.cfg.idp {
            SamlIdp::MetadataUrl(url) => {
                let result = self.fetch(url).await;
                self.metrics
                    .idp_fetch_duration
                    .with_label_values(&[self.name.as_str(), "saml_metadata"])
                    .observe(started.elapsed().as_secs_f64());
                self.metrics
                    .idp_fetches
                    .with_label_values(&[
                        self.name.as_str(),
                        "saml_metadata",
                        if result.is_ok() { "ok" } else { "error" },
                    ])
                    .inc();
                parse_metadata(&result?)?
            }
            SamlIdp::MetadataFile(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    IdpError::Discovery(format!("cannot read {}: {e}", path.display()))
                })?;
                parse_metadata(&text)?
            }
            SamlIdp::Fingerprint {
                entity_id,
                sso_url,
                slo_url,
                ..
            } => IdpInfo {
                entity_id: entity_id.clone(),
                sso_url: sso_url.clone(),
                slo_url: slo_url.clone(),
                certs: Vec::new(),
                fetched_at: Instant::now(),
            },
        };
        // The earliest expiry among the trusted signing certificates, for the expiry alert.
        let expiry = info
            .certs
            .iter()
            .filter_map(|c| openssl::x509::X509::from_der(c.der_data()).ok())
            .filter_map(|x| {
                let now = openssl::asn1::Asn1Time::days_from_now(0).ok()?;
                let d = now.diff(x.not_after()).ok()?;
                let now_unix = i64::try_from(crate::session::now_secs()).ok()?;
                Some(now_unix + i64::from(d.days) * 86400 + i64::from(d.secs))
            })
            .min();
        if let Some(t) = expiry {
            self.metrics
                .saml_cert_expiry
                .with_label_values(&[&self.name])
                .set(t);
        }
        if let Some(g) = &self.cfg.graph {
            let token_url = match &g.token_url {
                Some(u) => u.clone(),
                None => info
                    .sso_url
                    .join("/organizations/oauth2/v2.0/token")
                    .map_err(|e| IdpError::Setup(e.to_string()))?,
            };
            let graph = Graph::new(
                g.url.clone(),
                token_url,
                g.client_id.clone(),
                crate::idp::entra::GraphCredential::Secret(g.client_secret.0.clone()),
                g.cache_ttl,
            )
            .map_err(|e| IdpError::Setup(e.to_string()))?;
            if let Ok(mut slot) = self.graph.write() {
                if slot.is_none() {
                    *slot = Some(Arc::new(graph));
                }
            }
        }
        if let Ok(mut slot) = self.idp.write() {
            *slot = Some(Arc::new(info));
        }
        self.metrics
            .idp_ready
            .with_label_values(&[&self.name])
            .set(1);
        Ok(())
    }

    async fn fetch(&self, url: &Url) -> Result<String, IdpError> {
        let resp = self.http.get(url.clone()).send().await.map_err(|e| {
            IdpError::Discovery(format!("SAML metadata fetch from {url} failed: {e}"))
        })?;
        if !resp.status().is_success() {
            return Err(IdpError::Discovery(format!(
                "SAML metadata fetch from {url}: HTTP {}",
                resp.status()
            )));
        }
        let body = crate::fetch::body(resp, MAX_METADATA_BYTES)
            .await
            .map_err(|e| IdpError::Discovery(format!("SAML metadata from {url} refused: {e}")))?;
        String::from_utf8(body)
            .map_err(|_| IdpError::Discovery("SAML metadata is not UTF-8".into()))
    }

    /// The AuthnRequest (HTTP-Redirect binding) and the state to keep until the ACS.
    pub fn begin(&self, return_to: String, ask: &Ask) -> Result<(Url, PendingSaml), IdpError> {
        self.begin_with(return_to, None, ask)
    }

    /// A passive re-authentication of the session `replaces` (`IsPassive="true"`: the IdP
    /// answers at once, with an assertion if its own session is alive, a status if not).
    pub fn begin_passive(&self, return_to: String, replaces: &str) -> Result<Begun, IdpError> {
        let (url, pending) = self.begin_with(return_to, Some(replaces), &Ask::default())?;
        begun(url, pending)
    }

    /// `ask`: a route's `mfa` or `max_age` sends `ForceAuthn` (never `RequestedAuthnContext`:
    /// Entra has no MFA class, and a password class refuses FIDO and Windows Hello users with
    /// AADSTS75011).
    fn begin_with(
        &self,
        return_to: String,
        replaces: Option<&str>,
        ask: &Ask,
    ) -> Result<(Url, PendingSaml), IdpError> {
        let idp = self.idp()?;
        // Entra: the ID must not start with a digit.
        let id = format!("_{}", hex(&random_bytes(20)));
        let key = crate::session::random_token(32);
        let xml = format!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{dest}" AssertionConsumerServiceURL="{acs}" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"{passive}><saml:Issuer>{issuer}</saml:Issuer><samlp:NameIDPolicy Format="{fmt}" AllowCreate="true"/></samlp:AuthnRequest>"#,
            now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            dest = xml_escape(idp.sso_url.as_str()),
            acs = xml_escape(&self.acs_url),
            issuer = xml_escape(&self.cfg.entity_id),
            fmt = xml_escape(&self.cfg.name_id_format),
            passive = match (replaces, ask.mfa || ask.max_age.is_some()) {
                (Some(_), _) => r#" IsPassive="true""#,
                (None, true) => r#" ForceAuthn="true""#,
                (None, false) => "",
            },
        );
        let url =
            self.redirect_url(&idp.sso_url, "SAMLRequest", &deflate_b64(&xml)?, Some(&key))?;
        Ok((
            url,
            PendingSaml {
                k: key,
                id,
                r: return_to,
                p: self.name.clone(),
                t: crate::session::now_secs(),
                pv: replaces.is_some(),
                rs: replaces.map(str::to_string),
                hr: None,
                hb: None,
                su: (!ask.asks_nothing() || ask.session.is_some()).then(|| ask.clone()),
            },
        ))
    }

    /// An HTTP-Redirect binding URL; signed (SigAlg + Signature over the exact query octets,
    /// SAML bindings §3.4.4.1) when the SP has a key.
    fn redirect_url(
        &self,
        endpoint: &Url,
        param: &str,
        value: &str,
        relay: Option<&str>,
    ) -> Result<Url, IdpError> {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let mut query = format!("{param}={}", enc(value));
        if let Some(r) = relay {
            query.push_str(&format!("&RelayState={}", enc(r)));
        }
        if let Some(signer) = &self.signer {
            query.push_str(&format!(
                "&SigAlg={}",
                enc("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
            ));
            let mut s =
                openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &signer.key)
                    .map_err(|e| IdpError::Setup(e.to_string()))?;
            s.update(query.as_bytes())
                .map_err(|e| IdpError::Setup(e.to_string()))?;
            let sig = s
                .sign_to_vec()
                .map_err(|e| IdpError::Setup(e.to_string()))?;
            query.push_str(&format!(
                "&Signature={}",
                enc(&base64::engine::general_purpose::STANDARD.encode(sig))
            ));
        }
        let mut url = endpoint.clone();
        let joined = match endpoint.query() {
            Some(q) if !q.is_empty() => format!("{q}&{query}"),
            _ => query,
        };
        url.set_query(Some(&joined));
        Ok(url)
    }

    /// Whom this provider believes for a decoded response, and what it expects of one: the
    /// one setup both the ACS and `authgate explain` verify with. `request_id` is the ID of
    /// the AuthnRequest this browser sent (None: unsolicited).
    pub fn expectation(
        &self,
        xml: &str,
        request_id: Option<String>,
    ) -> Result<(Trust, Expectation), AssertionRejection> {
        let idp = self
            .idp()
            .map_err(|_| AssertionRejection::Malformed("IdP metadata not loaded".into()))?;
        let certs = match &self.cfg.idp {
            SamlIdp::Fingerprint { fingerprints, .. } => certs_matching(xml, fingerprints),
            _ => idp.certs.clone(),
        };
        let trust = Trust {
            idp_entity_id: idp.entity_id.clone(),
            certs,
        };
        Ok((
            trust,
            Expectation {
                sp_entity_id: self.cfg.entity_id.clone(),
                acs_url: self.acs_url.clone(),
                request_id,
                allow_idp_initiated: self.cfg.allow_idp_initiated,
                clock_skew: self.cfg.clock_skew,
            },
        ))
    }

    /// Verifies an ACS POST. `pending` is the sign-in this browser started (None: unsolicited).
    /// Verification is CPU-bound (xmlsec), so it runs on a blocking thread.
    pub async fn finish(
        &self,
        saml_response: &str,
        pending: Option<&PendingSaml>,
    ) -> Result<(Identity, Verified), AssertionRejection> {
        let xml = saml_verify::decode_post(saml_response)?;
        let (trust, expectation) = self.expectation(&xml, pending.map(|p| p.id.clone()))?;
        let verified = tokio::task::spawn_blocking(move || {
            saml_verify::verify(&xml, &trust, &expectation.as_expect(), Utc::now())
        })
        .await
        .map_err(|e| AssertionRejection::Malformed(format!("verification task failed: {e}")))??;
        // One use per assertion: checked by the caller in the session store (shared by
        // every replica with Redis), for `replay_ttl`.
        Ok((self.identity(&verified)?, verified))
    }

    /// Entra leaves the groups out of an assertion with over 150 of them and sends
    /// `groups.link` instead: look them up in Graph, or refuse (never "no groups").
    pub async fn resolve_overage(
        &self,
        identity: &mut Identity,
        v: &Verified,
    ) -> Result<(), (Deny, String)> {
        if v.attribute(entra::SAML_GROUPS_LINK).is_none() {
            return Ok(());
        }
        let graph = self.graph.read().ok().and_then(|g| g.clone());
        let Some(graph) = graph else {
            return Err((
                Deny::GroupsUnresolved,
                "the assertion has too many groups to list (groups.link) and no graph_client_id is configured".into(),
            ));
        };
        let oid = v
            .attribute("http://schemas.microsoft.com/identity/claims/objectidentifier")
            .and_then(|o| o.first())
            .cloned()
            .unwrap_or_default();
        graph
            .resolve_into(&self.name, identity, &oid)
            .await
            .map_err(|why| (Deny::GroupsUnresolved, why.to_string()))
    }

    /// The identity an assertion vouches for. The user key is the configured attribute or the
    /// NameID, as configured: an assertion without the attribute is refused, never keyed by
    /// its NameID instead (which another account may hold equal to someone's object ID).
    pub fn identity(&self, v: &Verified) -> Result<Identity, AssertionRejection> {
        let a = &self.cfg.attributes;
        let first = |name: &str| {
            v.attribute(name)
                .and_then(|vals| vals.first())
                .filter(|s| !s.is_empty())
                .cloned()
        };
        let list = |name: &str| -> Vec<String> {
            v.attribute(name)
                .unwrap_or(&[])
                .iter()
                .filter(|s| !s.is_empty() && !s.contains(',') && s.len() <= 512)
                .take(1000)
                .cloned()
                .collect()
        };
        let user = match self.cfg.user_attribute.as_deref() {
            Some(attr) => first(attr)
                .filter(|u| u.len() <= 512)
                .ok_or_else(|| AssertionRejection::NoUserKey(attr.to_string()))?,
            None => v.name_id.clone(),
        };
        let (auth_time, assured) = crate::assurance::from_saml(
            v.authn_instant
                .and_then(|t| u64::try_from(t.timestamp()).ok()),
            v.attribute(crate::assurance::SAML_METHODS),
            crate::session::now_secs(),
        );
        Ok(Identity {
            provider: shared(&self.name),
            user: user.into(),
            auth_time,
            email: first(&a.email).map(Into::into),
            name: first(&a.name)
                .or_else(|| first("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"))
                .map(Into::into),
            tenant: first(&a.tenant).map(|t| shared(&t)),
            groups: list(&a.groups).into(),
            roles: list(&a.roles).into(),
            name_id: Some(v.name_id.as_str().into()),
            session_index: v.session_index.as_deref().map(Into::into),
            more: crate::identity::Rare {
                assured,
                rule_claims: self
                    .cfg
                    .rule_claims
                    .iter()
                    .filter_map(|n| {
                        let values = crate::assurance::bounded(v.attribute_or_alias(n)?);
                        Some((n.clone(), values))
                    })
                    .collect(),
                claims: self.header_claims(v),
                session_not_after: v
                    .session_not_on_or_after
                    .and_then(|t| u64::try_from(t.timestamp()).ok())
                    .unwrap_or(0),
                ..Default::default()
            }
            .into(),
            ..Default::default()
        })
    }

    /// The configured attributes (`headers.claims`) the assertion carries, flattened as an
    /// ID token's list claims are (several values comma-joined).
    fn header_claims(&self, v: &Verified) -> Vec<(String, String)> {
        let as_json = serde_json::Value::Object(
            self.cfg
                .header_claims
                .iter()
                .filter_map(|name| {
                    let vals = v.attribute(name)?;
                    let value = match vals {
                        [one] => serde_json::Value::from(one.as_str()),
                        many => many.iter().map(|s| s.as_str()).collect(),
                    };
                    Some((name.clone(), value))
                })
                .collect(),
        );
        super::claims::header_claims(&self.name, &as_json, &self.cfg.header_claims)
    }

    /// What an admin pastes into the IdP (Entra: "Upload metadata file").
    pub fn sp_metadata(&self) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="{signed}" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{key}
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{slo}"/>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{slo}"/>
    <md:NameIDFormat>{fmt}</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
            signed = self.signer.is_some(),
            key = self.signer.as_ref().map(|s| format!(
                "\n    <md:KeyDescriptor use=\"signing\"><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>",
                s.cert_b64
            )).unwrap_or_default(),
            entity = xml_escape(&self.cfg.entity_id),
            slo = xml_escape(&self.slo_url),
            fmt = xml_escape(&self.cfg.name_id_format),
            acs = xml_escape(&self.acs_url),
        )
    }

    /// SP-initiated single logout: a LogoutRequest over HTTP-Redirect, if the IdP has an SLO URL.
    pub fn logout_url(&self, id: &Identity) -> Option<Url> {
        let idp = self.idp().ok()?;
        let mut url = idp.slo_url.clone()?;
        let name_id = id.name_id.as_deref()?;
        let session_index = id
            .session_index
            .as_deref()
            .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", xml_escape(s)))
            .unwrap_or_default();
        let xml = format!(
            r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_{id}" Version="2.0" IssueInstant="{now}" Destination="{dest}"><saml:Issuer>{issuer}</saml:Issuer><saml:NameID Format="{fmt}">{name_id}</saml:NameID>{session_index}</samlp:LogoutRequest>"#,
            id = hex(&random_bytes(20)),
            now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            dest = xml_escape(url.as_str()),
            issuer = xml_escape(&self.cfg.entity_id),
            fmt = xml_escape(&self.cfg.name_id_format),
            name_id = xml_escape(name_id),
        );
        url.query_pairs_mut()
            .append_pair("SAMLRequest", &deflate_b64(&xml).ok()?);
        Some(url)
    }

    /// Verifies an IdP's LogoutRequest (either binding) and marks its ID used. xmlsec and
    /// RSA are CPU work: it runs on a blocking thread.
    pub async fn logout_request(
        &self,
        input: LogoutInput,
    ) -> Result<saml_logout::LogoutRequest, LogoutRejection> {
        let idp = self
            .idp()
            .map_err(|_| LogoutRejection::Malformed("IdP metadata not loaded".into()))?;
        let fingerprints = match &self.cfg.idp {
            SamlIdp::Fingerprint { fingerprints, .. } => Some(fingerprints.clone()),
            _ => None,
        };
        let (slo, skew) = (self.slo_url.clone(), self.cfg.clock_skew);
        let request = tokio::task::spawn_blocking(move || {
            let expect = saml_logout::Expect {
                slo_url: &slo,
                clock_skew: skew,
            };
            let mut trust = Trust {
                idp_entity_id: idp.entity_id.clone(),
                certs: idp.certs.clone(),
            };
            match input {
                LogoutInput::Redirect(query) => {
                    saml_logout::from_redirect(&query, &trust, &expect, Utc::now())
                }
                LogoutInput::Post(b64) => {
                    if let (Some(f), Ok(xml)) = (&fingerprints, saml_verify::decode_post(&b64)) {
                        trust.certs = certs_matching(&xml, f);
                    }
                    saml_logout::from_post(&b64, &trust, &expect, Utc::now())
                }
            }
        })
        .await
        .map_err(|e| LogoutRejection::Malformed(format!("verification task failed: {e}")))??;
        Ok(request)
    }

    /// How long a LogoutRequest id must be remembered: as long as such a request verifies.
    pub fn logout_replay_ttl(&self) -> Duration {
        saml_logout::MAX_AGE + 2 * self.cfg.clock_skew
    }

    /// How long an assertion id must be remembered: until the assertion could no longer
    /// verify anyway (its validity plus the clock skew allowed).
    pub fn replay_ttl(&self, verified: &saml_verify::Verified) -> Duration {
        let left = (verified.valid_until - Utc::now()).num_seconds().max(0);
        Duration::from_secs(u64::try_from(left).unwrap_or(0))
            + self.cfg.clock_skew
            + Duration::from_secs(1)
    }

    /// The LogoutResponse (HTTP-Redirect, signed when the SP has a key) answering an IdP's
    /// LogoutRequest. `relay_state` must have passed `return_to::relay_state_ok`.
    pub fn logout_response_url(
        &self,
        in_response_to: &str,
        relay_state: Option<&str>,
    ) -> Option<Url> {
        let idp = self.idp().ok()?;
        let url = idp.slo_url.clone()?;
        let xml = format!(
            r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_{id}" Version="2.0" IssueInstant="{now}" Destination="{dest}" InResponseTo="{irt}"><saml:Issuer>{issuer}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#,
            id = hex(&random_bytes(20)),
            now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            dest = xml_escape(url.as_str()),
            irt = xml_escape(in_response_to),
            issuer = xml_escape(&self.cfg.entity_id),
        );
        self.redirect_url(&url, "SAMLResponse", &deflate_b64(&xml).ok()?, relay_state)
            .ok()
    }

    /// The IdP's single logout URL, if it has one.
    pub fn idp_slo_url(&self) -> Option<Url> {
        self.idp().ok()?.slo_url.clone()
    }
}

/// A LogoutRequest as it arrived: the raw query (HTTP-Redirect) or the form's `SAMLRequest`
/// (HTTP-POST).
pub enum LogoutInput {
    Redirect(String),
    Post(String),
}

fn parse_metadata(text: &str) -> Result<IdpInfo, IdpError> {
    // Entra's federation metadata may start with a UTF-8 BOM.
    let text = text.trim_start_matches('\u{feff}');
    if text.to_ascii_uppercase().contains("<!DOCTYPE") {
        return Err(IdpError::Discovery(
            "SAML metadata contains a DOCTYPE (refused)".into(),
        ));
    }
    let md: EntityDescriptor = text
        .parse()
        .map_err(|e| IdpError::Discovery(format!("SAML metadata does not parse: {e}")))?;
    let entity_id = md
        .entity_id
        .clone()
        .ok_or_else(|| IdpError::Discovery("SAML metadata has no entityID".into()))?;
    let idp = md
        .idp_sso_descriptors
        .as_ref()
        .and_then(|d| d.first())
        .ok_or_else(|| IdpError::Discovery("SAML metadata has no IDPSSODescriptor".into()))?;
    let redirect = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
    let sso_url = idp
        .single_sign_on_services
        .iter()
        .find(|s| s.binding == redirect)
        .and_then(|s| Url::parse(&s.location).ok())
        .ok_or_else(|| {
            IdpError::Discovery("SAML metadata has no HTTP-Redirect SingleSignOnService".into())
        })?;
    let slo_url = idp
        .single_logout_services
        .iter()
        .find(|s| s.binding == redirect)
        .and_then(|s| Url::parse(&s.location).ok());
    // Every signing key is trusted (rollover: Entra publishes the next one in advance).
    let certs: Vec<CertificateDer> = idp
        .key_descriptors
        .iter()
        .filter(|k| k.key_use.as_deref().is_none_or(|u| u == "signing"))
        .filter_map(|k| k.key_info.x509_data.as_ref())
        .flat_map(|x| x.certificates.iter())
        .filter_map(|c| samael::crypto::decode_x509_cert(c).ok())
        .collect();
    if certs.is_empty() {
        return Err(IdpError::Discovery(
            "SAML metadata has no signing certificate".into(),
        ));
    }
    Ok(IdpInfo {
        entity_id,
        sso_url,
        slo_url,
        certs,
        fetched_at: Instant::now(),
    })
}

/// Fingerprint mode: the certificates a response carries whose SHA-1 or SHA-256 fingerprint
/// is configured. Anything else in the document is ignored.
fn certs_matching(xml: &str, fingerprints: &[Vec<u8>]) -> Vec<CertificateDer> {
    embedded_certs(xml)
        .into_iter()
        .filter(|cert| {
            let der = cert.der_data();
            let sha1 = openssl::hash::hash(openssl::hash::MessageDigest::sha1(), der).ok();
            let sha256 = openssl::hash::hash(openssl::hash::MessageDigest::sha256(), der).ok();
            fingerprints.iter().any(|f| {
                sha1.as_deref() == Some(f.as_slice()) || sha256.as_deref() == Some(f.as_slice())
            })
        })
        .collect()
}

/// The certificates a response carries in its KeyInfo (unverified: whoever made the response
/// chose them), each once.
pub(crate) fn embedded_certs(xml: &str) -> Vec<CertificateDer> {
    let mut out: Vec<CertificateDer> = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("X509Certificate>") {
        let after = &rest[i + "X509Certificate>".len()..];
        if let Some(end) = after.find("</") {
            // (A closing tag's "X509Certificate>" is followed by nothing to decode.)
            if let Ok(cert) = samael::crypto::decode_x509_cert(&after[..end]) {
                if !cert.der_data().is_empty()
                    && !out.iter().any(|c| c.der_data() == cert.der_data())
                {
                    out.push(cert);
                }
            }
        }
        rest = after;
    }
    out
}

fn deflate_b64(xml: &str) -> Result<String, IdpError> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(xml.as_bytes())
        .map_err(|e| IdpError::Setup(e.to_string()))?;
    let bytes = enc.finish().map_err(|e| IdpError::Setup(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::Rng::fill(&mut rand::thread_rng(), b.as_mut_slice());
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn xml_escape(s: &str) -> String {
    crate::pages::escape(s)
}

/// What a started sign-in gives the gateway to keep.
fn begun(url: Url, pending: PendingSaml) -> Result<Begun, IdpError> {
    Ok(Begun {
        url,
        key: pending.k.clone(),
        pending: serde_json::to_value(&pending).map_err(|e| IdpError::Setup(e.to_string()))?,
        // The ACS is POSTed from the IdP's origin.
        cross_site: true,
    })
}

#[async_trait::async_trait]
impl IdentityProvider for SamlProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn protocol(&self) -> &'static str {
        "saml"
    }
    async fn load(&self) -> Result<(), IdpError> {
        SamlProvider::load(self).await
    }
    fn age(&self) -> Option<Duration> {
        SamlProvider::age(self)
    }
    fn is_ready(&self) -> bool {
        SamlProvider::is_ready(self)
    }
    fn begin(&self, return_to: String, ask: &Ask) -> Result<Begun, IdpError> {
        let (url, pending) = SamlProvider::begin(self, return_to, ask)?;
        begun(url, pending)
    }
    fn sign_out_url(
        &self,
        identity: &Identity,
        _grant: Option<&crate::session::Grant>,
        _signed_out: &str,
    ) -> Option<Url> {
        self.logout_url(identity)
    }
}
