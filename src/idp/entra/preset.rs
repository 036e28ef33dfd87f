//! Reading `type: entra`: the preset that turns a tenant (and a protocol) into the issuer,
//! metadata URLs, tenant rules and claim settings Entra needs (the facts are in `mod.rs`
//! and docs/entra.md).

use std::time::Duration;

use url::Url;

use serde_yaml::Value;

use super::{EntraSettings, Tenant, TenantRule};
use crate::idp::entra;
use crate::idp::settings::{OidcConfig, ProviderKind, SamlConfig, SamlGraph, SamlIdp};
use crate::read::{join, Obj, Reader};

impl Reader<'_> {
    /// `type: entra`: an OpenID provider whose URLs, issuer rules and claim handling come from
    /// the tenant and app ID (docs/entra.md §1–3).
    pub(crate) fn entra(&mut self, o: &mut Obj<'_>, path: &str) -> Option<ProviderKind> {
        match self.string(o, "protocol").as_deref() {
            None | Some("oidc") => self.entra_oidc(o, path).map(ProviderKind::Oidc),
            Some("saml") => self.entra_saml(o, path).map(ProviderKind::Saml),
            Some(other) => {
                self.err(
                    join(path, "protocol"),
                    format!("{other:?}: expected oidc or saml"),
                );
                None
            }
        }
    }

    pub(crate) fn entra_instance(&mut self, o: &mut Obj<'_>, path: &str) -> Option<Url> {
        match self.string(o, "instance") {
            Some(s) => match Url::parse(&s) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
                _ => {
                    self.err(
                        join(path, "instance"),
                        format!("{s:?} is not an http(s) URL"),
                    );
                    None
                }
            },
            None => Url::parse(entra::DEFAULT_INSTANCE).ok(),
        }
    }

    /// `type: entra` + `protocol: saml`: an enterprise app's SAML sign-on, its federation
    /// metadata URL derived from tenant and app ID; with `client_secret`, groups overage is
    /// looked up in Graph with the app's credentials.
    pub(crate) fn entra_saml(&mut self, o: &mut Obj<'_>, path: &str) -> Option<SamlConfig> {
        let instance = self.entra_instance(o, path);
        let tenant = self
            .required_string(o, "tenant")
            .and_then(|t| match Tenant::parse(&t) {
                Ok(t) if t.is_multi() => {
                    self.err(
                        join(path, "tenant"),
                        "SAML apps live in one tenant: give its ID or domain",
                    );
                    None
                }
                Ok(t) => Some(t),
                Err(e) => {
                    self.err(join(path, "tenant"), e);
                    None
                }
            });
        let client_id = self.required_string(o, "client_id");
        let has_secret = o.map.is_some_and(|m| {
            m.contains_key("client_secret") || m.contains_key("client_secret_file")
        });
        let client_secret = if has_secret {
            self.secret(o, "client_secret")
        } else {
            None
        };
        let graph_url = self.string(o, "graph_url");
        let cache_ttl = self
            .duration(o, "groups_cache_ttl")
            .unwrap_or(Duration::from_secs(600));
        let derived = match (&instance, &tenant, &client_id) {
            (Some(i), Some(t), Some(c)) => entra::federation_metadata_url(i, t, c)
                .ok()
                .map(|m| (i.clone(), m, c.clone())),
            _ => None,
        };
        let graph = match (&derived, client_secret) {
            (Some((instance, _, client_id)), Some(client_secret)) => Some(SamlGraph {
                client_id: client_id.clone(),
                client_secret,
                url: Url::parse(graph_url.as_deref().unwrap_or(entra::DEFAULT_GRAPH)).ok()?,
                token_url: instance.join("/organizations/oauth2/v2.0/token").ok(),
                cache_ttl,
            }),
            _ => None,
        };
        // The rest of the section is read even when the preset could not derive its URLs,
        // so its keys are checked too (and not reported unknown).
        let metadata = match &derived {
            Some((_, m, _)) => m.clone(),
            None => placeholder()?,
        };
        let saml = self.saml(o, path, Some((SamlIdp::MetadataUrl(metadata), graph)));
        derived.and(saml)
    }

    /// `groups_overage` and `graph_url`: `Some(None)` for deny, `Some(Some(url))` for Graph,
    /// `None` when either is wrong (reported).
    fn entra_graph(&mut self, o: &mut Obj<'_>, path: &str) -> Option<Option<Url>> {
        let overage = self.string(o, "groups_overage");
        let graph_url = self.string(o, "graph_url");
        match overage.as_deref() {
            None | Some("graph") => {
                let u = graph_url.unwrap_or_else(|| entra::DEFAULT_GRAPH.into());
                match Url::parse(&u) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => Some(Some(u)),
                    _ => {
                        self.err(
                            join(path, "graph_url"),
                            format!("{u:?} is not an http(s) URL"),
                        );
                        None
                    }
                }
            }
            Some("deny") => Some(None),
            Some(other) => {
                self.err(
                    join(path, "groups_overage"),
                    format!("{other:?}: expected graph (look the groups up) or deny"),
                );
                None
            }
        }
    }

    pub(crate) fn entra_oidc(&mut self, o: &mut Obj<'_>, path: &str) -> Option<OidcConfig> {
        let instance = self.entra_instance(o, path);
        let workload_identity = self.bool(o, "workload_identity").unwrap_or(false);
        let tenant = match (
            workload_identity,
            o.map.is_some_and(|m| m.contains_key("tenant")),
        ) {
            (true, false) => self.workload_env(path, "tenant", "AZURE_TENANT_ID"),
            _ => self.required_string(o, "tenant"),
        };
        let tenant = tenant.and_then(|t| match Tenant::parse(&t) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(join(path, "tenant"), e);
                None
            }
        });
        let tpath = join(path, "allowed_tenants");
        let allowed = match o.map.and_then(|m| m.get("allowed_tenants")) {
            Some(Value::String(s)) if s == "any" => {
                self.get(o, "allowed_tenants");
                Some(TenantRule::Any)
            }
            Some(Value::String(_)) => {
                self.get(o, "allowed_tenants");
                self.err(&tpath, "expected a list of tenant IDs, or the word any");
                None
            }
            _ => self.string_list(o, "allowed_tenants").map(|l| {
                for t in &l {
                    if !crate::identity::is_guid(t) {
                        self.err(&tpath, format!("{t:?} is not a tenant ID (GUID)"));
                    }
                }
                TenantRule::Only(l.iter().map(|t| t.to_ascii_lowercase()).collect())
            }),
        };
        let allowed_tenants = match (&tenant, allowed) {
            (Some(Tenant::Id(id)), None) => Some(TenantRule::Only(vec![id.clone()])),
            (Some(Tenant::Id(id)), Some(TenantRule::Only(l))) if !l.contains(id) => {
                self.err(&tpath, format!("a single-tenant app only ever sees tenant {id}; list it or leave allowed_tenants out"));
                None
            }
            (Some(t), None) if t.is_multi() => {
                self.err(&tpath, format!("tenant {} lets any organization sign in: list the tenant IDs to accept, or write allowed_tenants: any to accept every tenant on purpose", t.segment()));
                None
            }
            (Some(Tenant::Domain(_)), None) => Some(TenantRule::Any),
            (_, a) => a,
        };
        let graph = self.entra_graph(o, path);
        let groups_cache_ttl = self
            .duration(o, "groups_cache_ttl")
            .unwrap_or(Duration::from_secs(600));
        let (issuer, discovery) = match (&instance, &tenant) {
            (Some(i), Some(t)) => (
                Url::parse(&entra::authority(i, t)).ok(),
                entra::discovery_url(i, t).ok(),
            ),
            _ => (None, None),
        };
        let complete = instance.is_some()
            && tenant.is_some()
            && allowed_tenants.is_some()
            && graph.is_some()
            && issuer.is_some()
            && discovery.is_some();
        // The rest of the section is read even when the preset could not derive its URLs,
        // so its keys are checked too (and not reported unknown).
        let fallback = placeholder()?;
        let settings = EntraSettings {
            instance: instance.unwrap_or_else(|| fallback.clone()),
            tenant: tenant.unwrap_or(Tenant::Organizations),
            allowed_tenants: allowed_tenants.unwrap_or(TenantRule::Any),
            graph: graph.unwrap_or(None),
            groups_cache_ttl,
            workload_identity,
        };
        let issuer = issuer.unwrap_or_else(|| fallback.clone());
        let oidc = self.oidc(
            o,
            path,
            Some((issuer, discovery.unwrap_or(fallback), settings)),
        );
        oidc.filter(|_| complete)
    }

    /// `api_token_versions: [2]` (default), `[1]` or `[1, 2]`: Entra only, whose APIs get v1.0
    /// access tokens unless their manifest sets `accessTokenAcceptedVersion: 2`.
    pub(crate) fn token_versions(
        &mut self,
        o: &mut Obj<'_>,
        path: &str,
        entra: bool,
    ) -> super::Versions {
        let key = join(path, "api_token_versions");
        let v = self.get(o, "api_token_versions");
        let Some(v) = v else {
            return super::Versions::V2;
        };
        if !entra {
            self.err(key, "only for type: entra (the v1.0 issuer is Entra's)");
            return super::Versions::V2;
        }
        let mut out = super::Versions {
            v1: false,
            v2: false,
        };
        match v.as_sequence() {
            Some(items) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_u64() {
                        Some(1) => out.v1 = true,
                        Some(2) => out.v2 = true,
                        _ => self.err(format!("{key}[{i}]"), "expected 1 or 2"),
                    }
                }
            }
            _ => self.err(key, "expected a list of versions: [2], [1] or [1, 2]"),
        }
        out
    }
}

/// A URL standing in for one the preset could not derive (the error is already reported).
fn placeholder() -> Option<Url> {
    Url::parse(entra::DEFAULT_INSTANCE).ok()
}
