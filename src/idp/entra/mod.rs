//! Microsoft Entra ID: every Entra quirk the gateway knows, in one place (the facts and their sources: docs/entra.md).
//!
//! - Authorities: a tenant GUID, a verified domain, `organizations` or `common`, under an
//!   instance (`https://login.microsoftonline.com`, or a sovereign cloud) → discovery URL.
//! - The multi-tenant issuer template `…/{tenantid}/v2.0` (§3): the token's `tid` must be a
//!   GUID, the substituted template must equal `iss`, and a signing key's own `issuer` member
//!   restricts which issuers it may sign for.
//! - nOAuth-safe identity (§6, §15): the user key is `tid` + `oid`; `email` is trusted only
//!   with `xms_edov: true`, otherwise the UPN (always a verified domain of the tenant) is used.
//! - Groups overage (§9, §10): `_claim_names.groups` / `hasgroups` → Microsoft Graph
//!   `getMemberObjects` with the app's own credentials, cached per user, failing closed.
//! - AADSTS errors (§16–18): the code, trace and correlation IDs out of `error_description`,
//!   and what each code means for the person looking at the page.

pub(crate) mod portal;
mod preset;
pub(crate) mod rules;
mod tokens;

use crate::identity::List;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;

pub(crate) const DEFAULT_INSTANCE: &str = "https://login.microsoftonline.com";
pub(crate) const DEFAULT_GRAPH: &str = "https://graph.microsoft.com";
pub(crate) const TENANT_PLACEHOLDER: &str = "{tenantid}";
/// Microsoft's own tenant for personal accounts (`consumers`).
#[cfg(test)]
pub(crate) const MSA_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// The tenant part of an authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenant {
    /// A tenant ID (lower-case GUID): single-tenant.
    Id(String),
    /// A verified domain (`contoso.onmicrosoft.com`): single-tenant, GUID learnt from discovery.
    Domain(String),
    /// Work and school accounts of any tenant.
    Organizations,
    /// Work, school and personal accounts.
    Common,
}

impl Tenant {
    pub fn parse(s: &str) -> Result<Tenant, String> {
        let l = s.trim().to_ascii_lowercase();
        match l.as_str() {
            "organizations" => Ok(Tenant::Organizations),
            "common" => Ok(Tenant::Common),
            "consumers" => Err(
                "\"consumers\" (personal Microsoft accounts only) is not supported: use a tenant, organizations or common"
                    .into(),
            ),
            _ if is_guid(&l) => Ok(Tenant::Id(l)),
            _ if l.contains('.')
                && l
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
            {
                Ok(Tenant::Domain(l))
            }
            _ => Err(format!(
                "{s:?} is not a tenant ID (GUID), a verified domain, organizations or common"
            )),
        }
    }

    pub fn segment(&self) -> &str {
        match self {
            Tenant::Id(s) | Tenant::Domain(s) => s,
            Tenant::Organizations => "organizations",
            Tenant::Common => "common",
        }
    }

    /// Several tenants can sign in: the issuer is the `{tenantid}` template.
    pub fn is_multi(&self) -> bool {
        matches!(self, Tenant::Organizations | Tenant::Common)
    }
}

use crate::identity::is_guid;

/// `<instance>/<tenant>/v2.0`: the issuer Entra states for a tenant (or the template).
pub(crate) fn authority(instance: &Url, tenant: &Tenant) -> String {
    format!(
        "{}/{}/v2.0",
        instance.as_str().trim_end_matches('/'),
        tenant.segment()
    )
}

/// The OpenID discovery URL of an authority.
pub(crate) fn discovery_url(instance: &Url, tenant: &Tenant) -> Result<Url, url::ParseError> {
    Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        authority(instance, tenant)
    ))
}

/// The SAML federation metadata URL of an app in a tenant.
pub(crate) fn federation_metadata_url(
    instance: &Url,
    tenant: &Tenant,
    app_id: &str,
) -> Result<Url, url::ParseError> {
    let mut u = Url::parse(&format!(
        "{}/{}/federationmetadata/2007-06/federationmetadata.xml",
        instance.as_str().trim_end_matches('/'),
        tenant.segment()
    ))?;
    u.query_pairs_mut().append_pair("appid", app_id);
    Ok(u)
}

/// Is a discovery document's issuer acceptable for the configured tenant?
/// GUID tenants need the exact issuer; a domain needs some GUID issuer under the instance;
/// `organizations`/`common` need the `{tenantid}` template.
pub(crate) fn discovery_issuer_ok(instance: &Url, tenant: &Tenant, issuer: &str) -> bool {
    let base = instance.as_str().trim_end_matches('/');
    let Some(rest) = issuer
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.strip_suffix("/v2.0"))
    else {
        return false;
    };
    match tenant {
        Tenant::Id(id) => rest == id,
        Tenant::Domain(_) => is_guid(rest),
        Tenant::Organizations | Tenant::Common => rest == TENANT_PLACEHOLDER,
    }
}

/// Which tenants may sign in. Multi-tenant apps must choose explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantRule {
    /// Only these tenant IDs (lower-case).
    Only(Vec<String>),
    /// `allowed_tenants: any` — an explicit choice, never a default.
    Any,
}

impl TenantRule {
    pub fn allows(&self, tid: &str) -> bool {
        match self {
            TenantRule::Any => true,
            TenantRule::Only(list) => list.iter().any(|t| t.eq_ignore_ascii_case(tid)),
        }
    }
}

pub(crate) use tokens::{check_token, key_issuers, Versions, V1_ISSUER_PREFIX};

/// The email address the gateway may trust (nOAuth): `email` only when the tenant proved it
/// owns the domain (`xms_edov: true`), otherwise the UPN, whose domain is always one the
/// tenant verified. Never `preferred_username`.
pub(crate) fn trusted_email(claims: &Value) -> Option<String> {
    let s = |n: &str| {
        claims
            .get(n)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty() && v.len() <= 320 && v.contains('@'))
            .map(str::to_string)
    };
    let edov = matches!(claims.get("xms_edov"), Some(Value::Bool(true)))
        || matches!(claims.get("xms_edov"), Some(Value::String(v)) if v == "true" || v == "1");
    match (edov, s("email")) {
        (true, Some(e)) => Some(e),
        _ => s("upn").filter(|u| !u.contains("#EXT#")),
    }
}

/// Did the token leave out the groups because there are too many (docs/entra.md §9)?
pub(crate) fn groups_overage(claims: &Value) -> bool {
    claims
        .get("_claim_names")
        .and_then(|n| n.get("groups"))
        .is_some()
        || matches!(claims.get("hasgroups"), Some(Value::Bool(true)))
}

/// The SAML attribute that replaces the groups when there are over 150.
pub(crate) const SAML_GROUPS_LINK: &str = "http://schemas.microsoft.com/claims/groups.link";

/// An error Entra sent back to the redirect URI (docs/entra.md §16), with what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AadError {
    pub error: String,
    /// `AADSTS50105` → 50105.
    pub code: Option<u32>,
    /// The first line of `error_description`, without the code prefix.
    pub message: String,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    pub timestamp: Option<String>,
}

impl AadError {
    pub(crate) fn parse(error: &str, description: &str, error_uri: Option<&str>) -> AadError {
        let mut lines = description.split(['\r', '\n']).filter(|l| !l.is_empty());
        let first = lines.next().unwrap_or("").trim();
        let (mut code, message) = match first.strip_prefix("AADSTS") {
            Some(rest) => {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let msg = rest[digits.len()..].trim_start_matches(':').trim();
                (digits.parse().ok(), msg.to_string())
            }
            None => (None, first.to_string()),
        };
        if code.is_none() {
            code = error_uri.and_then(|u| Url::parse(u).ok()).and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "code")
                    .and_then(|(_, v)| v.parse().ok())
            });
        }
        let mut out = AadError {
            error: error.to_string(),
            code,
            message,
            trace_id: None,
            correlation_id: None,
            timestamp: None,
        };
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                let v = Some(v.trim().to_string());
                match k.trim() {
                    "Trace ID" => out.trace_id = v,
                    "Correlation ID" => out.correlation_id = v,
                    "Timestamp" => out.timestamp = v,
                    _ => {}
                }
            }
        }
        out
    }

    /// Metric label: bounded.
    pub(crate) fn reason(&self) -> &'static str {
        match (self.code, self.error.as_str()) {
            (Some(50105), _) => "not_assigned",
            (Some(53003), _) => "conditional_access",
            (Some(65001), _) | (_, "consent_required") => "consent_required",
            (Some(90072 | 50020), _) => "external_account",
            (Some(50011), _) => "redirect_uri_mismatch",
            (Some(700016), _) => "unknown_client",
            (_, "access_denied") => "access_denied",
            _ => "idp_error",
        }
    }

    /// HTTP status, title and what to do next, for the person reading the page.
    pub(crate) fn explain(&self) -> (u16, &'static str, &'static str) {
        match self.reason() {
            "not_assigned" => (
                403,
                "You are not assigned to this application",
                "Your account signed in, but your organization has not given you access to this application. Ask your administrator to assign you to it (Entra admin center → Enterprise applications → this app → Users and groups), then try again.",
            ),
            "conditional_access" => (
                403,
                "Blocked by your organization's access policy",
                "A Conditional Access policy of your organization blocked this sign-in (device, location or risk). Contact your administrator with the details below.",
            ),
            "consent_required" => (
                403,
                "This application needs consent",
                "An administrator of your organization must grant consent to this application before you can use it. Send the details below to your administrator.",
            ),
            "external_account" => (
                403,
                "Your account is not a member of this organization",
                "The account you signed in with is not in the organization that owns this application. Sign in with your work account, or ask to be invited as a guest.",
            ),
            // A 4xx, though the fault is the registration's: an error response is input from
            // the network (anyone can send one to the callback), never answered with a 5xx.
            "redirect_uri_mismatch" | "unknown_client" => (
                400,
                "This gateway is not registered correctly",
                "The identity provider does not recognize this gateway's registration. This is a configuration problem: send the details below to your administrator.",
            ),
            "access_denied" => (
                403,
                "Access was denied",
                "The identity provider did not allow this sign-in. If you believe you should have access, send the details below to your administrator.",
            ),
            _ => (
                400,
                "Sign-in was not completed",
                "The identity provider did not sign you in. If this keeps happening, send the details below to your administrator.",
            ),
        }
    }

    /// The details block: code, message and the IDs support needs.
    pub(crate) fn detail(&self) -> String {
        let mut d = String::new();
        match self.code {
            Some(c) => d.push_str(&format!("AADSTS{c}: {}\n", self.message)),
            None => d.push_str(&format!("{}: {}\n", self.error, self.message)),
        }
        for (k, v) in [
            ("Error", Some(&self.error)),
            ("Trace ID", self.trace_id.as_ref()),
            ("Correlation ID", self.correlation_id.as_ref()),
            ("Timestamp", self.timestamp.as_ref()),
        ] {
            if let Some(v) = v {
                d.push_str(&format!("{k}: {v}\n"));
            }
        }
        d
    }
}

/// How Graph's client-credentials token is asked for: the OpenID provider's own credential, or
/// a SAML app's `graph_client_secret`.
pub(crate) enum GraphCredential {
    Client(Arc<crate::idp::credential::Credential>),
    Secret(String),
}

/// Resolves group memberships through Microsoft Graph when a token carries an overage
/// marker: client-credentials token per tenant (cached until shortly before it expires),
/// `POST /v1.0/users/{oid}/getMemberObjects` (transitive), results cached per user.
pub(crate) struct Graph {
    base: Url,
    token_endpoint_template: Url,
    client_id: String,
    credential: GraphCredential,
    http: reqwest::Client,
    tokens: moka::future::Cache<String, (String, Instant)>,
    groups: moka::future::Cache<String, List>,
}

/// Why Microsoft Graph could not say which groups a user is in (the sign-in is refused then).
#[derive(Debug, thiserror::Error)]
pub(crate) enum GraphError {
    #[error("{0}")]
    Client(String),
    #[error("Graph token request failed: {0}")]
    TokenRequest(String),
    #[error("Graph token request refused ({status}): {message}")]
    TokenRefused { status: String, message: String },
    #[error("Graph token response has no access_token")]
    NoAccessToken,
    #[error("tid and oid must be GUIDs to ask Graph")]
    NotGuids,
    #[error("Graph unreachable: {0}")]
    Unreachable(String),
    #[error("Graph getMemberObjects answered {status}: {message}")]
    Refused { status: String, message: String },
    #[error("Graph getMemberObjects response has no value list")]
    NoValue,
    #[error("Graph response refused: {0}")]
    Body(String),
    #[error("Graph response is not JSON: {0}")]
    NotJson(String),
    #[error("groups overage and Graph lookup failed: {0}")]
    Overage(Box<GraphError>),
}

/// Largest Graph response read (11,000 GUIDs in quotes is about 450 KB).
const MAX_GRAPH_BYTES: usize = 1024 * 1024;

impl Graph {
    pub(crate) fn new(
        base: Url,
        token_endpoint: Url,
        client_id: String,
        credential: GraphCredential,
        cache_ttl: Duration,
    ) -> Result<Graph, GraphError> {
        let http = crate::fetch::client(Duration::from_secs(10)).map_err(GraphError::Client)?;
        Ok(Graph {
            base,
            token_endpoint_template: token_endpoint,
            client_id,
            credential,
            http,
            tokens: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            groups: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cache_ttl)
                .build(),
        })
    }

    /// The token endpoint in the user's own tenant: the discovery document's, with its tenant
    /// segment (`organizations`, `common`, a domain) replaced by the tenant ID.
    fn token_endpoint(&self, tid: &str) -> Url {
        let mut u = self.token_endpoint_template.clone();
        let segs: Vec<String> = u
            .path_segments()
            .map(|s| s.map(str::to_string).collect())
            .unwrap_or_default();
        if let Some((_, rest)) = segs.split_first() {
            let mut path = format!("/{tid}");
            for s in rest {
                path.push('/');
                path.push_str(s);
            }
            u.set_path(&path);
        }
        u
    }

    async fn app_token(&self, tid: &str) -> Result<String, GraphError> {
        if let Some((tok, until)) = self.tokens.get(tid).await {
            if Instant::now() < until {
                return Ok(tok);
            }
        }
        let scope = format!("{}/.default", self.base.as_str().trim_end_matches('/'));
        let endpoint = self.token_endpoint(tid);
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".into()),
            ("scope", scope),
        ];
        let secret = match &self.credential {
            GraphCredential::Secret(s) => Some(s.as_str()),
            GraphCredential::Client(c) => {
                if c.secret().is_none() {
                    form.push(("client_id", self.client_id.clone()));
                    let fields = c
                        .fields(endpoint.as_str())
                        .map_err(|e| GraphError::TokenRequest(e.to_string()))?;
                    form.extend(fields);
                }
                c.secret()
            }
        };
        let mut request = self.http.post(endpoint);
        if let Some(secret) = secret {
            // HTTP Basic, form-encoded first (RFC 6749 §2.3.1), as the code exchange does.
            request = request.basic_auth(form_encode(&self.client_id), Some(form_encode(secret)));
        }
        let resp = request
            .form(&form)
            .send()
            .await
            .map_err(|e| GraphError::TokenRequest(format!("{e:?}")))?;
        let status = resp.status();
        let body: Value = read_json(resp).await?;
        if !status.is_success() {
            return Err(GraphError::TokenRefused {
                status: status.to_string(),
                message: body
                    .get("error_description")
                    .or_else(|| body.get("error"))
                    .and_then(Value::as_str)
                    .unwrap_or("no error given")
                    .to_string(),
            });
        }
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or(GraphError::NoAccessToken)?
            .to_string();
        let ttl = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(300);
        let until = Instant::now() + Duration::from_secs(ttl.saturating_sub(60).max(1));
        self.tokens
            .insert(tid.to_string(), (token.clone(), until))
            .await;
        Ok(token)
    }

    /// Replaces the identity's groups with the ones Graph lists for `oid` (overage), or says
    /// why it could not: the caller refuses the sign-in then, never keeps "no groups".
    pub(crate) async fn resolve_into(
        &self,
        provider: &str,
        identity: &mut crate::identity::Identity,
        oid: &str,
    ) -> Result<(), GraphError> {
        let tid = identity.tenant.clone().unwrap_or_default();
        let groups = self
            .member_groups(&tid, oid)
            .await
            .map_err(|why| GraphError::Overage(Box::new(why)))?;
        log::info!(
            "provider {provider}: groups overage for {}: {} groups from Graph",
            identity.user,
            groups.len()
        );
        identity.groups = groups;
        Ok(())
    }

    /// Every group (transitive) of user `oid` in tenant `tid`.
    pub(crate) async fn member_groups(&self, tid: &str, oid: &str) -> Result<List, GraphError> {
        if !is_guid(tid) || !is_guid(oid) {
            return Err(GraphError::NotGuids);
        }
        let key = format!("{tid}/{oid}");
        if let Some(hit) = self.groups.get(&key).await {
            return Ok(hit);
        }
        let token = self.app_token(tid).await?;
        let url = format!(
            "{}/v1.0/users/{oid}/getMemberObjects",
            self.base.as_str().trim_end_matches('/')
        );
        let resp = self
            .http
            .post(&url)
            .bearer_auth(token)
            .json(&serde_json::json!({"securityEnabledOnly": false}))
            .send()
            .await
            .map_err(|e| GraphError::Unreachable(e.to_string()))?;
        let status = resp.status();
        let body: Value = read_json(resp).await?;
        if !status.is_success() {
            let message = body
                .pointer("/error/message")
                .or_else(|| body.pointer("/error/code"))
                .and_then(Value::as_str)
                .unwrap_or("no error given")
                .to_string();
            return Err(GraphError::Refused {
                status: status.to_string(),
                message,
            });
        }
        let ids: List = body
            .get("value")
            .and_then(Value::as_array)
            .ok_or(GraphError::NoValue)?
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| is_guid(s))
            .map(str::to_ascii_lowercase)
            .collect();
        self.groups.insert(key, ids.clone()).await;
        Ok(ids)
    }
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn read_json(resp: reqwest::Response) -> Result<Value, GraphError> {
    let bytes = crate::fetch::body(resp, MAX_GRAPH_BYTES)
        .await
        .map_err(|e| GraphError::Body(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| GraphError::NotJson(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/oidc");

    fn fixture(name: &str) -> Value {
        let text = std::fs::read_to_string(format!("{FIX}/{name}")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn tenants_parse() {
        assert_eq!(
            Tenant::parse("72F988BF-86F1-41AF-91AB-2D7CD011DB47").unwrap(),
            Tenant::Id("72f988bf-86f1-41af-91ab-2d7cd011db47".into())
        );
        assert_eq!(
            Tenant::parse("organizations").unwrap(),
            Tenant::Organizations
        );
        assert!(Tenant::parse("common").unwrap().is_multi());
        assert!(matches!(
            Tenant::parse("contoso.onmicrosoft.com"),
            Ok(Tenant::Domain(_))
        ));
        assert!(Tenant::parse("consumers").is_err());
        assert!(Tenant::parse("../evil").is_err());
        assert!(Tenant::parse("72f988bf-86f1-41af-91ab").is_err());
    }

    /// The real `common` and `organizations` discovery documents: they parse as OpenID
    /// metadata, state the `{tenantid}` template, and pass only for a multi-tenant setup.
    #[test]
    fn real_multi_tenant_discovery_documents() {
        let instance = Url::parse(DEFAULT_INSTANCE).unwrap();
        for (file, tenant) in [
            (
                "panva_wellknown_entra-common.openid-configuration.json",
                Tenant::Common,
            ),
            (
                "panva_wellknown_entra-organizations.openid-configuration.json",
                Tenant::Organizations,
            ),
        ] {
            let doc = fixture(file);
            let md: openidconnect::core::CoreProviderMetadata =
                serde_json::from_value(doc.clone()).expect(file);
            let issuer = md.issuer().as_str();
            assert_eq!(issuer, "https://login.microsoftonline.com/{tenantid}/v2.0");
            assert!(discovery_issuer_ok(&instance, &tenant, issuer), "{file}");
            let single = Tenant::Id("72f988bf-86f1-41af-91ab-2d7cd011db47".into());
            assert!(!discovery_issuer_ok(&instance, &single, issuer), "{file}");
            assert_eq!(
                discovery_url(&instance, &tenant).unwrap().as_str(),
                format!(
                    "https://login.microsoftonline.com/{}/v2.0/.well-known/openid-configuration",
                    tenant.segment()
                )
            );
        }
        let other = Url::parse("https://login.microsoftonline.us").unwrap();
        assert!(!discovery_issuer_ok(
            &other,
            &Tenant::Common,
            "https://login.microsoftonline.com/{tenantid}/v2.0"
        ));
    }

    #[test]
    fn email_is_trusted_only_when_verified() {
        // nOAuth: an attacker's tenant sets mail to the victim's address.
        let attacker = json!({"email": "alice@contoso.example", "upn": "mallory@fabrikam.example"});
        assert_eq!(
            trusted_email(&attacker).as_deref(),
            Some("mallory@fabrikam.example")
        );
        let no_upn = json!({"email": "alice@contoso.example", "xms_edov": false});
        assert_eq!(trusted_email(&no_upn), None);
        let verified =
            json!({"email": "alice@contoso.example", "xms_edov": true, "upn": "a@x.example"});
        assert_eq!(
            trusted_email(&verified).as_deref(),
            Some("alice@contoso.example")
        );
        // A guest's UPN is not an address.
        let guest = json!({"upn": "bob_gmail.com#EXT#@contoso.onmicrosoft.com"});
        assert_eq!(trusted_email(&guest), None);
        // preferred_username is never used.
        assert_eq!(
            trusted_email(&json!({"preferred_username": "a@b.example"})),
            None
        );
    }

    #[test]
    fn overage_shapes_from_the_docs() {
        let shapes = fixture("entra_group_overage_documented_shapes.json");
        assert!(groups_overage(&shapes["jwt_overage_current_docs"]));
        assert!(groups_overage(&shapes["jwt_overage_legacy_aad_graph"]));
        assert!(groups_overage(&shapes["jwt_implicit_flow_hasgroups"]));
        assert!(!groups_overage(&json!({"groups": ["a"]})));
        assert_eq!(shapes["saml_overage_attribute"]["Name"], SAML_GROUPS_LINK);
    }

    /// The real AADSTS50105 redirect Entra sent to a client (nais/device).
    #[test]
    fn real_aadsts50105_redirect_parses() {
        let raw = std::fs::read_to_string(format!(
            "{FIX}/errors/nais_device_AADSTS50105_redirect.url.txt"
        ))
        .unwrap();
        let url = Url::parse(raw.trim()).unwrap();
        let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        let e = AadError::parse(
            &q["error"],
            &q["error_description"],
            q.get("error_uri").map(String::as_str),
        );
        assert_eq!(e.error, "interaction_required");
        assert_eq!(e.code, Some(50105));
        assert_eq!(e.reason(), "not_assigned");
        assert_eq!(e.explain().0, 403);
        assert_eq!(
            e.trace_id.as_deref(),
            Some("320db82b-71a0-4520-a16f-f962e19a9000")
        );
        assert_eq!(
            e.correlation_id.as_deref(),
            Some("ba8b945c-1cd8-4344-b355-b40c63174248")
        );
        assert_eq!(e.timestamp.as_deref(), Some("2020-07-14 11:00:34Z"));
        assert!(e
            .message
            .starts_with("The signed in user '{EmailHidden}' is not assigned"));
        let detail = e.detail();
        assert!(detail.contains("AADSTS50105"));
        assert!(detail.contains("Correlation ID: ba8b945c"));
        // The code also comes from error_uri when the description has none.
        let bare = AadError::parse(
            "access_denied",
            "",
            Some("https://login.microsoftonline.com/error?code=50105"),
        );
        assert_eq!(bare.reason(), "not_assigned");
        assert_eq!(
            AadError::parse("access_denied", "nope", None).reason(),
            "access_denied"
        );
        assert_eq!(AadError::parse("server_error", "x", None).explain().0, 400);
    }

    #[test]
    fn graph_token_endpoint_uses_the_users_tenant() {
        let g = Graph::new(
            Url::parse("https://graph.microsoft.com").unwrap(),
            Url::parse("https://login.microsoftonline.com/organizations/oauth2/v2.0/token")
                .unwrap(),
            "c".into(),
            GraphCredential::Secret("s".into()),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(
            g.token_endpoint("72f988bf-86f1-41af-91ab-2d7cd011db47").as_str(),
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
        );
    }
}

/// What `type: entra` adds to an OpenID provider.
#[derive(Debug, Clone, PartialEq)]
pub struct EntraSettings {
    pub instance: Url,
    pub tenant: Tenant,
    pub allowed_tenants: TenantRule,
    /// Microsoft Graph base URL for groups overage; `None` = deny overage users.
    pub graph: Option<Url>,
    pub groups_cache_ttl: Duration,
    /// `workload_identity: true`: client ID, tenant and assertion file from AKS's variables.
    pub workload_identity: bool,
}
