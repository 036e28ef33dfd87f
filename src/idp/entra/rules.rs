//! Entra's half of the OpenID Connect dialect (`crate::idp::dialect`): the discovery issuer
//! of the configured tenant, the Graph client for groups overage, and the identity rules of
//! a sign-in or bearer token (tenant allow-list, nOAuth-safe email, groups overage).

use std::sync::{Arc, RwLock};

use serde_json::Value;
use url::Url;

use super::{discovery_issuer_ok, groups_overage, trusted_email, EntraSettings, Graph};
use crate::identity::Identity;
use crate::idp::settings::OidcConfig;
use crate::idp::IdpError;
use crate::policy::Deny;

pub(crate) struct EntraRules {
    settings: EntraSettings,
    /// Graph lookups for groups overage, built once discovery names the token endpoint.
    graph: RwLock<Option<Arc<Graph>>>,
}

impl EntraRules {
    pub(crate) fn new(settings: EntraSettings) -> Self {
        Self {
            settings,
            graph: RwLock::new(None),
        }
    }

    pub(crate) fn settings(&self) -> &EntraSettings {
        &self.settings
    }

    pub(crate) fn discovery_issuer_ok(&self, issuer: &str) -> bool {
        discovery_issuer_ok(&self.settings.instance, &self.settings.tenant, issuer)
    }

    /// Builds the Graph client (once) when `graph` is configured.
    pub(crate) fn discovered(
        &self,
        cfg: &OidcConfig,
        token_endpoint: &Url,
        credential: &Arc<crate::idp::credential::Credential>,
    ) -> Result<(), IdpError> {
        let Some(graph_url) = self.settings.graph.clone() else {
            return Ok(());
        };
        if self.graph.read().is_ok_and(|g| g.is_some()) {
            return Ok(());
        }
        let graph = Graph::new(
            graph_url,
            token_endpoint.clone(),
            cfg.client_id.clone(),
            super::GraphCredential::Client(credential.clone()),
            self.settings.groups_cache_ttl,
        )
        .map_err(|e| IdpError::Setup(e.to_string()))?;
        if let Ok(mut slot) = self.graph.write() {
            if slot.is_none() {
                *slot = Some(Arc::new(graph));
            }
        }
        Ok(())
    }

    /// The tenant allow-list, the nOAuth-safe email, and groups that did not fit in the token
    /// (looked up in Graph, or the sign-in is refused).
    pub(crate) async fn identity(
        &self,
        provider: &str,
        claims: &Value,
        identity: &mut Identity,
    ) -> Result<(), IdpError> {
        let tid = identity.tenant.clone().unwrap_or_default();
        if !self.settings.allowed_tenants.allows(&tid) {
            return Err(IdpError::Denied(
                Deny::WrongTenant,
                format!("tenant {tid} is not in allowed_tenants"),
            ));
        }
        identity.email = trusted_email(claims).map(Into::into);
        identity.groups = identity
            .groups
            .iter()
            .map(|g| g.to_ascii_lowercase())
            .collect();
        if groups_overage(claims) {
            let graph = self.graph.read().ok().and_then(|g| g.clone());
            let Some(graph) = graph else {
                return Err(IdpError::Denied(
                    Deny::GroupsUnresolved,
                    "the token has too many groups to list and groups_overage is deny".into(),
                ));
            };
            let oid = claims.get("oid").and_then(Value::as_str).unwrap_or("");
            graph
                .resolve_into(provider, identity, oid)
                .await
                .map_err(|why| IdpError::Denied(Deny::GroupsUnresolved, why.to_string()))?;
        }
        Ok(())
    }
}
