//! Reading `providers:` (generic OpenID Connect and SAML; the Entra preset is in
//! `entra/preset.rs`), every error with its path.

use std::collections::HashSet;
use std::time::Duration;

use url::Url;

use super::entra::{self, EntraSettings};
use super::settings::{
    OidcConfig, ProviderConfig, ProviderKind, SamlAttributes, SamlConfig, SamlGraph, SamlIdp,
};
use crate::policy::GroupNames;
use crate::read::{join, valid_name, Obj, Reader};
use crate::session::{SessionConfig, StoreKind};

impl Reader<'_> {
    /// Returns one entry per list item (None where the item was broken) so indices match.
    pub(crate) fn providers(&mut self, top: &mut Obj<'_>) -> Vec<Option<ProviderConfig>> {
        let items = self.list(top, "providers");
        if items.is_empty() && !self.errors.iter().any(|e| e.path == "providers") {
            self.err("providers", "at least one identity provider is required");
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (path, v) in items {
            let mut o = self.obj(&path, Some(v));
            let name = self.required_string(&mut o, "name");
            if let Some(n) = &name {
                if !valid_name(n) {
                    self.err(
                        join(&path, "name"),
                        "use letters, digits, '-' and '_' only (it appears in URLs)",
                    );
                } else if !seen.insert(n.clone()) {
                    self.err(
                        join(&path, "name"),
                        format!("duplicate provider name {n:?}"),
                    );
                }
            }
            let kind = self.required_string(&mut o, "type");
            let parsed = match kind.as_deref() {
                Some("oidc") => self.oidc(&mut o, &path, None).map(ProviderKind::Oidc),
                Some("entra") => self.entra(&mut o, &path),
                Some("saml") => self.saml(&mut o, &path, None).map(ProviderKind::Saml),
                Some(other) => {
                    self.err(
                        join(&path, "type"),
                        format!("unknown provider type {other:?} (supported: oidc, entra, saml)"),
                    );
                    // Its other keys belong to that type: one error, not one per key.
                    if let Some(map) = o.map {
                        o.used
                            .extend(map.keys().filter_map(|k| k.as_str().map(str::to_string)));
                    }
                    None
                }
                None => None,
            };
            let group_names = self.group_names(&mut o, &path);
            let domains = self.domains(&mut o, &path, parsed.as_ref());
            let metadata_refresh = self
                .duration(&mut o, "metadata_refresh")
                .unwrap_or(std::time::Duration::from_secs(3600));
            if metadata_refresh.is_zero() || metadata_refresh.as_secs() > 7 * 86_400 {
                self.err(join(&path, "metadata_refresh"), "between 1s and 7d");
            }
            let session = {
                let at = join(&path, "session");
                let v = self.get(&mut o, "session");
                let mut so = self.obj(&at, v);
                let t = self.timer_overrides(&mut so, &at);
                self.finish(so);
                t
            };
            self.finish(o);
            out.push(match (name, parsed) {
                (Some(name), Some(kind)) => Some(ProviderConfig {
                    name,
                    kind,
                    group_names,
                    session,
                    domains,
                    metadata_refresh,
                }),
                _ => None,
            });
        }
        self.unique_domains(&out);
        out
    }

    /// Each provider's timers, from `session:` and its own `session:` block, into
    /// `session.lifecycle`: each re-check interval shorter than its session; an OpenID Connect
    /// provider that re-checks needs a store that keeps its refresh tokens, and asks for
    /// `offline_access`.
    pub(crate) fn provider_timers(
        &mut self,
        providers: &mut [Option<ProviderConfig>],
        session: &mut SessionConfig,
    ) {
        let defaults = session.default_timers();
        let mut resolved = Vec::new();
        for (i, p) in providers.iter_mut().enumerate() {
            let Some(p) = p else { continue };
            let at = format!("providers[{i}].session");
            let t = defaults.with(&p.session);
            let path = match p.session.recheck_every {
                Some(_) => format!("{at}.recheck_every"),
                None => "session.recheck_every".to_string(),
            };
            if let Some(every) = t.recheck_every {
                if every >= t.max_lifetime {
                    self.err(
                        &path,
                        format!(
                            "must be shorter than the session's max_lifetime ({}s)",
                            t.max_lifetime.as_secs()
                        ),
                    );
                }
                // SAML re-checks are passive re-authentications through the browser: any
                // store. OpenID Connect ones redeem a refresh token kept server-side.
                if let ProviderKind::Oidc(o) = &mut p.kind {
                    if session.store == StoreKind::Cookie {
                        self.err(&path, "needs a store that keeps the refresh token server-side: set session.store: redis (several replicas) or memory (one replica)");
                    }
                    if !o.scopes.iter().any(|s| s == "offline_access") {
                        o.scopes.push("offline_access".into());
                    }
                }
            }
            if t != defaults {
                resolved.push((p.name.clone(), t));
            }
        }
        session.lifecycle.providers = resolved;
    }

    /// `group_names: {<group id>: <name>}`.
    pub(crate) fn group_names(&mut self, o: &mut Obj<'_>, path: &str) -> GroupNames {
        let mut out = GroupNames::new();
        let gpath = join(path, "group_names");
        let g = self.get(o, "group_names");
        let mut obj = self.obj(&gpath, g);
        let keys: Vec<String> = obj
            .map
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for k in keys {
            if let Some(name) = self.string(&mut obj, &k) {
                if name.is_empty() || name.contains(',') {
                    self.err(join(&gpath, &k), "a group name must be non-empty and have no comma (header values are comma-joined)");
                } else {
                    out.insert(k.to_ascii_lowercase(), name);
                }
            }
        }
        self.finish(obj);
        out
    }

    pub(crate) fn oidc(
        &mut self,
        o: &mut Obj<'_>,
        path: &str,
        entra: Option<(Url, Url, EntraSettings)>,
    ) -> Option<OidcConfig> {
        let (issuer, derived_discovery, entra) = match entra {
            Some((i, d, e)) => (Some(i), Some(d), Some(e)),
            None => {
                let issuer = self
                    .required_string(o, "issuer")
                    .and_then(|s| match Url::parse(&s) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
                        _ => {
                            self.err(join(path, "issuer"), format!("{s:?} is not an http(s) URL"));
                            None
                        }
                    });
                (issuer, None, None)
            }
        };
        let discovery_url = match derived_discovery {
            Some(d) => Some(d),
            None => match self.string(o, "discovery_url") {
                Some(s) => match Url::parse(&s) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
                    _ => {
                        self.err(
                            join(path, "discovery_url"),
                            format!("{s:?} is not an http(s) URL"),
                        );
                        None
                    }
                },
                None => issuer.as_ref().and_then(|i| {
                    Url::parse(&format!(
                        "{}/.well-known/openid-configuration",
                        i.as_str().trim_end_matches('/')
                    ))
                    .ok()
                }),
            },
        };
        let workload = entra.as_ref().is_some_and(|e| e.workload_identity);
        let client_id = match (workload, o.map.is_some_and(|m| m.contains_key("client_id"))) {
            (true, false) => self.workload_env(path, "client_id", "AZURE_CLIENT_ID"),
            _ => self.required_string(o, "client_id"),
        };
        let credential = self.client_credential(o, path, workload);
        let scopes = self
            .string_list(o, "scopes")
            .unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
        if !scopes.iter().any(|s| s == "openid") {
            self.err(join(path, "scopes"), "must include openid");
        }
        // Entra: the stable key is oid (unique within tid, the same for every app).
        let default_claim = if entra.is_some() { "oid" } else { "sub" };
        let user_claim = self
            .string(o, "user_claim")
            .unwrap_or_else(|| default_claim.into());
        let clock_skew = self
            .duration(o, "clock_skew")
            .unwrap_or(Duration::from_secs(60));
        let api_audience = self.string(o, "api_audience");
        let api_versions = self.token_versions(o, path, entra.is_some());
        let signing_algs = self.signing_algs(o, path);
        let hints = self.static_hints(o, path);
        let mfa_acr_values = self.string_list(o, "mfa_acr_values").unwrap_or_default();
        Some(OidcConfig {
            mfa_acr_values,
            api_versions,
            signing_algs,
            issuer: issuer?,
            discovery_url: discovery_url?,
            client_id: client_id?,
            credential: credential?,
            scopes,
            user_claim,
            clock_skew,
            api_audience,
            entra,
            header_claims: Vec::new(),
            rule_claims: Vec::new(),
            hints,
        })
    }

    /// `signing_algs`: the JWS algorithms tokens may be signed with. Default RS256, PS256 and
    /// ES256; HS256/384/512 (keyed with the client secret, ID tokens only) only when listed.
    pub(crate) fn signing_algs(&mut self, o: &mut Obj<'_>, path: &str) -> Vec<String> {
        const KNOWN: [&str; 11] = [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "HS256",
            "HS384", "HS512",
        ];
        let Some(list) = self.string_list(o, "signing_algs") else {
            return vec!["RS256".into(), "PS256".into(), "ES256".into()];
        };
        if list.is_empty() {
            self.err(
                join(path, "signing_algs"),
                "must name at least one algorithm",
            );
        }
        for (i, a) in list.iter().enumerate() {
            if !KNOWN.contains(&a.as_str()) {
                self.err(
                    format!("{}[{i}]", join(path, "signing_algs")),
                    format!("{a:?} is not one of {}", KNOWN.join(", ")),
                );
            }
        }
        list
    }

    /// `preset`: the IdP and Graph settings the Entra preset derived (its own keys for them
    /// are then not read, so giving them is an error).
    pub(crate) fn saml(
        &mut self,
        o: &mut Obj<'_>,
        path: &str,
        preset: Option<(SamlIdp, Option<SamlGraph>)>,
    ) -> Option<SamlConfig> {
        let entity_id = self.required_string(o, "entity_id");
        if let Some((idp, graph)) = preset {
            return self.saml_rest(o, path, entity_id, Some(idp), graph);
        }
        let url = |r: &mut Self, key: &str, v: Option<String>| r.http_url(path, key, v);
        let md_url = self.string(o, "idp_metadata_url");
        let md_url = url(self, "idp_metadata_url", md_url);
        let md_file = self.string(o, "idp_metadata_file");
        let idp_entity = self.string(o, "idp_entity_id");
        let sso = self.string(o, "idp_sso_url");
        let sso = url(self, "idp_sso_url", sso);
        let slo = self.string(o, "idp_slo_url");
        let slo = url(self, "idp_slo_url", slo);
        let fps = self.string_list(o, "idp_cert_fingerprints");
        let given = [md_url.is_some(), md_file.is_some(), fps.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        let idp = if given != 1 {
            self.err(
                path,
                "name the IdP exactly one way: idp_metadata_url, idp_metadata_file, or idp_cert_fingerprints with idp_entity_id and idp_sso_url",
            );
            None
        } else if let Some(u) = md_url {
            Some(SamlIdp::MetadataUrl(u))
        } else if let Some(f) = md_file {
            if std::fs::metadata(&f).is_err() {
                self.err(join(path, "idp_metadata_file"), format!("cannot read {f}"));
            }
            Some(SamlIdp::MetadataFile(f.into()))
        } else {
            let fingerprints = self.fingerprints(path, &fps.unwrap_or_default());
            if idp_entity.is_none() {
                self.err(join(path, "idp_entity_id"), "required with idp_cert_fingerprints (Entra: https://sts.windows.net/<tenant id>/)");
            }
            if sso.is_none() {
                self.err(
                    join(path, "idp_sso_url"),
                    "required with idp_cert_fingerprints (Entra: Login URL)",
                );
            }
            match (idp_entity, sso) {
                (Some(entity_id), Some(sso_url)) => Some(SamlIdp::Fingerprint {
                    entity_id,
                    sso_url,
                    slo_url: slo,
                    fingerprints,
                }),
                _ => None,
            }
        };
        let graph = self.saml_graph(o, path);
        self.saml_rest(o, path, entity_id, idp, graph)
    }

    /// `graph_*`: the Graph app for SAML groups overage (all of them need `graph_client_id`).
    fn saml_graph(&mut self, o: &mut Obj<'_>, path: &str) -> Option<SamlGraph> {
        match self.string(o, "graph_client_id") {
            Some(client_id) => {
                let client_secret = self.secret(o, "graph_client_secret");
                let gurl = self.string(o, "graph_url");
                let gurl = self
                    .http_url(path, "graph_url", gurl)
                    .or_else(|| Url::parse(entra::DEFAULT_GRAPH).ok());
                let turl = self.string(o, "graph_token_url");
                let token_url = self.http_url(path, "graph_token_url", turl);
                let cache_ttl = self
                    .duration(o, "groups_cache_ttl")
                    .unwrap_or(Duration::from_secs(600));
                match (client_secret, gurl) {
                    (Some(client_secret), Some(url)) => Some(SamlGraph {
                        client_id,
                        client_secret,
                        url,
                        token_url,
                        cache_ttl,
                    }),
                    _ => None,
                }
            }
            None => {
                for key in [
                    "graph_client_secret",
                    "graph_client_secret_file",
                    "graph_url",
                    "graph_token_url",
                    "groups_cache_ttl",
                ] {
                    if self.get(o, key).is_some() {
                        self.err(join(path, key), "needs graph_client_id");
                    }
                }
                None
            }
        }
    }

    /// An http(s) URL at `path.key`, or the error saying it is not one.
    fn http_url(&mut self, path: &str, key: &str, v: Option<String>) -> Option<Url> {
        let v = v?;
        match Url::parse(&v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            _ => {
                self.err(join(path, key), format!("{v:?} is not an http(s) URL"));
                None
            }
        }
    }

    /// `idp_cert_fingerprints`: SHA-1 (Entra's thumbprints) or SHA-256, in hex with any
    /// separators.
    fn fingerprints(&mut self, path: &str, given: &[String]) -> Vec<Vec<u8>> {
        let mut fingerprints = Vec::new();
        for (i, f) in given.iter().enumerate() {
            let hex: String = f.chars().filter(|c| c.is_ascii_hexdigit()).collect();
            let bytes: Option<Vec<u8>> = (0..hex.len())
                .step_by(2)
                .map(|j| {
                    hex.get(j..j + 2)
                        .and_then(|b| u8::from_str_radix(b, 16).ok())
                })
                .collect();
            match bytes.filter(|b| b.len() == 20 || b.len() == 32) {
                Some(b) => fingerprints.push(b),
                None => self.err(
                    format!("{path}.idp_cert_fingerprints[{i}]"),
                    "expected a SHA-1 (40 hex digits, Entra's thumbprint) or SHA-256 (64) fingerprint",
                ),
            }
        }
        fingerprints
    }

    /// The SAML settings that do not name the IdP.
    pub(crate) fn saml_rest(
        &mut self,
        o: &mut Obj<'_>,
        path: &str,
        entity_id: Option<String>,
        idp: Option<SamlIdp>,
        graph: Option<SamlGraph>,
    ) -> Option<SamlConfig> {
        let name_id_format = match self.string(o, "name_id_format").as_deref() {
            None | Some("emailAddress") => {
                "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".to_string()
            }
            Some("persistent") => {
                "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".to_string()
            }
            Some("unspecified") => {
                "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified".to_string()
            }
            Some("transient") => "urn:oasis:names:tc:SAML:2.0:nameid-format:transient".to_string(),
            Some(other) => {
                self.err(
                    join(path, "name_id_format"),
                    format!("{other:?} is not emailAddress, persistent, unspecified or transient"),
                );
                String::new()
            }
        };
        let clock_skew = self
            .duration(o, "clock_skew")
            .unwrap_or(Duration::from_secs(300));
        let allow_idp_initiated = self.bool(o, "allow_idp_initiated").unwrap_or(false);
        let user_attribute = match self.string(o, "user_attribute") {
            Some(a) if a == "nameid" => None,
            Some(a) => Some(a),
            None => {
                Some("http://schemas.microsoft.com/identity/claims/objectidentifier".to_string())
            }
        };
        let mut m = {
            let v = self.get(o, "attributes");
            self.obj(&join(path, "attributes"), v)
        };
        let c = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/";
        let attributes = SamlAttributes {
            email: self
                .string(&mut m, "email")
                .unwrap_or_else(|| format!("{c}emailaddress")),
            name: self.string(&mut m, "name").unwrap_or_else(|| {
                "http://schemas.microsoft.com/identity/claims/displayname".into()
            }),
            groups: self.string(&mut m, "groups").unwrap_or_else(|| {
                "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups".into()
            }),
            roles: self.string(&mut m, "roles").unwrap_or_else(|| {
                "http://schemas.microsoft.com/ws/2008/06/identity/claims/role".into()
            }),
            tenant: self
                .string(&mut m, "tenant")
                .unwrap_or_else(|| "http://schemas.microsoft.com/identity/claims/tenantid".into()),
        };
        self.finish(m);
        let sp_key = self.string(o, "sp_key_file");
        let sp_cert = self.string(o, "sp_cert_file");
        let sp_signing = match (sp_key, sp_cert) {
            (Some(k), Some(c)) => {
                for (key, file) in [("sp_key_file", &k), ("sp_cert_file", &c)] {
                    if std::fs::metadata(file).is_err() {
                        self.err(join(path, key), format!("cannot read {file}"));
                    }
                }
                Some((k.into(), c.into()))
            }
            (None, None) => None,
            _ => {
                self.err(
                    path,
                    "sp_key_file and sp_cert_file go together (AuthnRequest signing)",
                );
                None
            }
        };
        Some(SamlConfig {
            graph,
            sp_signing,
            entity_id: entity_id?,
            idp: idp?,
            name_id_format,
            clock_skew,
            allow_idp_initiated,
            user_attribute,
            attributes,
            header_claims: Vec::new(),
            rule_claims: Vec::new(),
        })
    }
}
