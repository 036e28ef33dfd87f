//! Home-realm discovery: which provider an email address belongs to (and, for a multi-tenant
//! Entra app, which tenant), from `providers[].domains`. A route that accepts several
//! providers, or one Entra provider with a tenant map, asks for the address first
//! (`endpoints::discover`); the choice travels with the pending sign-in and the returned
//! identity must match it (`check`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::identity::Identity;
use crate::idp::settings::ProviderConfig;
use crate::route::Route;

/// One `providers[].domains` entry: `contoso.com` (that domain only) or `*.contoso.com` (its
/// subdomains only), and, for a multi-tenant Entra provider, the tenant it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRule {
    /// Lower case, without the `*.`.
    pub domain: String,
    /// `*.domain`: subdomains at any depth, not the domain itself.
    pub subdomains: bool,
    /// The Entra tenant ID (lower case) this domain's users belong to.
    pub tenant: Option<String>,
}

impl DomainRule {
    fn matches(&self, domain: &str) -> bool {
        if !self.subdomains {
            return domain == self.domain;
        }
        domain.len() > self.domain.len() + 1
            && domain.ends_with(self.domain.as_str())
            && domain.as_bytes()[domain.len() - self.domain.len() - 1] == b'.'
    }

    /// As written in the configuration.
    pub fn pattern(&self) -> String {
        match self.subdomains {
            true => format!("*.{}", self.domain),
            false => self.domain.clone(),
        }
    }
}

/// `home_realm:` (every key optional).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HomeRealmConfig {
    /// Where an address no provider lists goes (else the route's sign-in provider).
    pub default_provider: Option<String>,
    /// Opt-in: how long a browser remembers the last domain typed, to skip the page.
    pub remember: Option<Duration>,
}

/// The domain a sign-in was started for, sealed with the pending sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Realm {
    /// The domain (lower case).
    pub d: String,
    /// The Entra tenant it maps to: the returned identity's `tid` must be this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<String>,
}

/// How a provider was picked (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picked {
    /// A `domains:` entry of the provider.
    Domain,
    /// No provider lists the domain: `home_realm.default_provider` or the route's own.
    Default,
}

impl Picked {
    pub fn label(self) -> &'static str {
        match self {
            Picked::Domain => "domain",
            Picked::Default => "default",
        }
    }
}

/// Where an address's domain leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Index into `Config::providers` (and `Core::providers`).
    pub provider: usize,
    pub realm: Realm,
    pub picked: Picked,
}

fn accepted(route: &Route, name: &str) -> bool {
    route.accepted().iter().any(|a| **a == *name)
}

/// Does a sign-in for `route` start with the address page? When it accepts several providers
/// and at least one lists domains, or its one provider maps domains to tenants.
pub fn discovers(cfg: &Config, route: &Route) -> bool {
    let listed = cfg
        .providers
        .iter()
        .filter(|p| accepted(route, &p.name) && !p.domains.is_empty());
    asks(route.accepted().len(), listed)
}

/// `discovers` for a route accepting `accepted` providers, `listed` those that list domains.
pub(crate) fn asks<'a>(
    accepted: usize,
    mut listed: impl Iterator<Item = &'a ProviderConfig>,
) -> bool {
    match accepted {
        0 => false,
        1 => listed.any(|p| p.domains.iter().any(|d| d.tenant.is_some())),
        _ => listed.next().is_some(),
    }
}

/// The provider `domain` (lower case) belongs to among those `route` accepts: an exact entry
/// first, then the longest `*.` entry, else the default.
pub fn choose(cfg: &Config, route: &Route, domain: &str) -> Choice {
    let mut best: Option<(usize, &DomainRule)> = None;
    for (i, p) in cfg.providers.iter().enumerate() {
        if !accepted(route, &p.name) {
            continue;
        }
        for rule in p.domains.iter().filter(|r| r.matches(domain)) {
            let better = match best {
                None => true,
                Some((_, b)) => {
                    (b.subdomains && !rule.subdomains)
                        || (b.subdomains == rule.subdomains && rule.domain.len() > b.domain.len())
                }
            };
            if better {
                best = Some((i, rule));
            }
        }
    }
    if let Some((provider, rule)) = best {
        return Choice {
            provider,
            realm: Realm {
                d: domain.to_string(),
                t: rule.tenant.clone(),
            },
            picked: Picked::Domain,
        };
    }
    let default = cfg
        .home_realm
        .default_provider
        .as_deref()
        .filter(|name| accepted(route, name))
        .and_then(|name| cfg.providers.iter().position(|p| p.name == name));
    Choice {
        provider: default.unwrap_or(route.provider),
        realm: Realm {
            d: domain.to_string(),
            t: None,
        },
        picked: Picked::Default,
    }
}

/// The domain of an address already checked by `hints::login_hint`, in lower case.
pub fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    Some(domain.to_ascii_lowercase())
}

/// On return: the identity must belong to the tenant the typed domain maps to. `Err` names
/// what differs (for the log and the page).
pub fn check(realm: &Realm, identity: &Identity) -> Result<(), String> {
    let Some(want) = &realm.t else {
        return Ok(());
    };
    match identity.tenant.as_deref() {
        Some(tid) if tid.eq_ignore_ascii_case(want) => Ok(()),
        got => Err(format!(
            "the address typed was for {} (tenant {want}), but the account signed in belongs to tenant {}",
            realm.d,
            got.unwrap_or("(none)")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(p: &str, tenant: Option<&str>) -> DomainRule {
        let (domain, subdomains) = match p.strip_prefix("*.") {
            Some(d) => (d, true),
            None => (p, false),
        };
        DomainRule {
            domain: domain.into(),
            subdomains,
            tenant: tenant.map(Into::into),
        }
    }

    #[test]
    fn exact_and_subdomain_rules() {
        let exact = rule("contoso.com", None);
        assert!(exact.matches("contoso.com"));
        for no in ["eu.contoso.com", "xcontoso.com", "contoso.com.evil", "com"] {
            assert!(!exact.matches(no), "{no}");
        }
        let sub = rule("*.contoso.com", None);
        for yes in ["eu.contoso.com", "a.b.contoso.com"] {
            assert!(sub.matches(yes), "{yes}");
        }
        for no in ["contoso.com", "xcontoso.com", "evilcontoso.com", ".contoso.com"] {
            assert!(!sub.matches(no), "{no}");
        }
        assert_eq!(sub.pattern(), "*.contoso.com");
    }

    #[test]
    fn tenant_mismatch_is_refused() {
        let mut id = Identity {
            user: "bob".into(),
            tenant: Some("tenant-b".into()),
            ..Default::default()
        };
        let realm = Realm {
            d: "contoso.com".into(),
            t: Some("TENANT-A".into()),
        };
        assert!(check(&realm, &id).unwrap_err().contains("tenant-b"));
        id.tenant = Some("tenant-a".into());
        assert!(check(&realm, &id).is_ok());
        id.tenant = None;
        assert!(check(&realm, &id).is_err());
        let untied = Realm {
            d: "contoso.com".into(),
            t: None,
        };
        assert!(check(&untied, &id).is_ok());
        assert_eq!(domain_of("Alice@Contoso.COM").as_deref(), Some("contoso.com"));
    }
}
