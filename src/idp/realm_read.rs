//! Reading `providers[].domains` and `home_realm:`, every error with its path.

use std::collections::HashMap;

use serde_yaml::Value;

use super::entra::TenantRule;
use super::hints::is_domain;
use super::settings::{DomainRule, HomeRealmConfig, ProviderConfig, ProviderKind};
use crate::identity::is_guid;
use crate::read::{join, Obj, Reader};

/// Sessions of a remembered choice last at most this long.
const MAX_REMEMBER: std::time::Duration = std::time::Duration::from_secs(400 * 24 * 3600);

impl Reader<'_> {
    /// `domains: [contoso.com, "*.contoso.com"]`, or for a multi-tenant Entra provider a map
    /// `{contoso.com: <tenant ID>}`.
    pub(crate) fn domains(
        &mut self,
        o: &mut Obj<'_>,
        path: &str,
        kind: Option<&ProviderKind>,
    ) -> Vec<DomainRule> {
        let at = join(path, "domains");
        let entries: Vec<(String, String, Option<&Value>)> = match self.get(o, "domains") {
            None => return Vec::new(),
            Some(Value::Sequence(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    let p = format!("{at}[{i}]");
                    match v.as_str() {
                        Some(s) => Some((p, s.to_string(), None)),
                        None => {
                            self.err(p, "expected a domain name");
                            None
                        }
                    }
                })
                .collect(),
            Some(Value::Mapping(m)) => m
                .iter()
                .filter_map(|(k, v)| match k.as_str() {
                    Some(s) => Some((join(&at, s), s.to_string(), Some(v))),
                    None => {
                        self.err(&at, "keys must be domain names");
                        None
                    }
                })
                .collect(),
            Some(_) => {
                self.err(
                    &at,
                    "expected a list of domains, or a map of domain to Entra tenant ID",
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (p, pattern, tenant) in entries {
            let Some(rule) = self.domain_rule(&p, &pattern) else {
                continue;
            };
            let tenant = match tenant {
                None => None,
                Some(v) => match self.domain_tenant(&p, v, kind) {
                    Some(t) => Some(t),
                    None => continue,
                },
            };
            out.push(DomainRule { tenant, ..rule });
        }
        out
    }

    fn domain_rule(&mut self, path: &str, pattern: &str) -> Option<DomainRule> {
        let lower = pattern.trim().to_ascii_lowercase();
        let (domain, subdomains) = match lower.strip_prefix("*.") {
            Some(d) => (d.to_string(), true),
            None => (lower.clone(), false),
        };
        if !is_domain(&domain) {
            self.err(
                path,
                format!("{pattern:?} is not a domain name (contoso.com, or *.contoso.com for its subdomains)"),
            );
            return None;
        }
        Some(DomainRule {
            domain,
            subdomains,
            tenant: None,
        })
    }

    /// A tenant in a domain map: a GUID the multi-tenant Entra provider accepts.
    fn domain_tenant(
        &mut self,
        path: &str,
        v: &Value,
        kind: Option<&ProviderKind>,
    ) -> Option<String> {
        let Some(t) = v.as_str().map(str::to_ascii_lowercase) else {
            self.err(
                path,
                "expected the Entra tenant ID (a GUID) this domain belongs to",
            );
            return None;
        };
        let entra = match kind {
            Some(ProviderKind::Oidc(o)) => o.entra.as_ref(),
            _ => None,
        };
        let Some(entra) = entra.filter(|e| e.tenant.is_multi()) else {
            self.err(path, "a domain maps to a tenant only on a type: entra provider with tenant: organizations or common; list the domains instead");
            return None;
        };
        if !is_guid(&t) {
            self.err(path, format!("{t:?} is not a tenant ID (GUID)"));
            return None;
        }
        if let TenantRule::Only(list) = &entra.allowed_tenants {
            if !list.iter().any(|a| a.eq_ignore_ascii_case(&t)) {
                self.err(path, format!("tenant {t} is not in this provider's allowed_tenants: its users would be refused"));
                return None;
            }
        }
        Some(t)
    }

    /// Each domain pattern belongs to one provider.
    pub(crate) fn unique_domains(&mut self, providers: &[Option<ProviderConfig>]) {
        let mut seen: HashMap<String, String> = HashMap::new();
        for (i, p) in providers.iter().enumerate() {
            let Some(p) = p else { continue };
            for rule in &p.domains {
                let pattern = rule.pattern();
                if let Some(other) = seen.insert(pattern.clone(), p.name.clone()) {
                    let at = format!("providers[{i}].domains");
                    match other == p.name {
                        true => self.err(at, format!("{pattern} is listed twice")),
                        false => self.err(
                            at,
                            format!("{pattern} is already listed by provider {other:?}: a domain leads to one provider"),
                        ),
                    }
                }
            }
        }
    }

    /// `home_realm: {default_provider, remember}`; a warning when no route would ask for an
    /// address although providers list domains.
    pub(crate) fn home_realm(
        &mut self,
        top: &mut Obj<'_>,
        providers: &[Option<ProviderConfig>],
        signed_in_routes: &[&[String]],
    ) -> HomeRealmConfig {
        let v = self.get(top, "home_realm");
        let present = v.is_some();
        let mut o = self.obj("home_realm", v);
        let default_provider = self.string(&mut o, "default_provider");
        let remember = self.duration(&mut o, "remember");
        self.finish(o);
        let named = |n: &str| providers.iter().flatten().any(|p| p.name == n);
        if let Some(d) = default_provider.as_deref().filter(|d| !named(d)) {
            self.err(
                "home_realm.default_provider",
                format!("no provider named {d:?} in providers"),
            );
        }
        if remember.is_some_and(|r| r.is_zero() || r > MAX_REMEMBER) {
            self.err(
                "home_realm.remember",
                "must be between 1s and 400d (browsers keep cookies at most 400 days)",
            );
        }
        let any_domains = providers.iter().flatten().any(|p| !p.domains.is_empty());
        if present && !any_domains {
            self.warn(
                "home_realm",
                "no provider lists domains:, so no sign-in asks for an address",
            );
        }
        let known: Vec<ProviderConfig> = providers.iter().flatten().cloned().collect();
        let asks = |accepts: &&[String]| super::realm::discovers(&known, *accepts);
        if any_domains && !signed_in_routes.iter().any(asks) {
            self.warn(
                "providers",
                "providers list domains:, but no route asks for an address: that needs a route accepting several providers (providers: [a, b]), or one Entra provider whose domains map to tenants",
            );
        }
        HomeRealmConfig {
            default_provider,
            remember,
        }
    }
}
