//! Home-realm discovery: which provider an email address belongs to (and, for a multi-tenant
//! Entra app, which tenant), from `providers[].domains`. A route that accepts several
//! providers, or one Entra provider with a tenant map, asks for the address first
//! (`endpoints::discover`); the choice travels with the pending sign-in and the returned
//! identity must match it (`check`).

use serde::{Deserialize, Serialize};

use crate::identity::Identity;
use crate::idp::settings::{HomeRealmConfig, ProviderConfig};

pub use crate::idp::settings::DomainRule;

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

/// The providers a route accepts (`Route::accepted`, `RouteConfig::accepts`), by name.
pub trait Accepts {
    fn accepts_name(&self, name: &str) -> bool;
    fn count(&self) -> usize;
}

impl<T: AsRef<str>> Accepts for [T] {
    fn accepts_name(&self, name: &str) -> bool {
        self.iter().any(|a| a.as_ref() == name)
    }
    fn count(&self) -> usize {
        self.len()
    }
}

/// Does a sign-in on a route accepting `accepts` start with the address page? When it accepts
/// several providers and at least one lists domains, or its one provider maps domains to
/// tenants.
pub fn discovers<A: Accepts + ?Sized>(providers: &[ProviderConfig], accepts: &A) -> bool {
    let mut listed = providers
        .iter()
        .filter(|p| accepts.accepts_name(&p.name) && !p.domains.is_empty());
    match accepts.count() {
        0 => false,
        1 => listed.any(|p| p.domains.iter().any(|d| d.tenant.is_some())),
        _ => listed.next().is_some(),
    }
}

/// The provider `domain` (lower case) belongs to among those a route accepts: an exact entry
/// first, then the longest `*.` entry, else the default (`home_realm.default_provider` if the
/// route accepts it, else `sign_in_provider`, the route's own).
pub fn choose<A: Accepts + ?Sized>(
    providers: &[ProviderConfig],
    home_realm: &HomeRealmConfig,
    (accepts, sign_in_provider): (&A, usize),
    domain: &str,
) -> Choice {
    let mut best: Option<(usize, &DomainRule)> = None;
    for (i, p) in providers.iter().enumerate() {
        if !accepts.accepts_name(&p.name) {
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
    let default = home_realm
        .default_provider
        .as_deref()
        .filter(|name| accepts.accepts_name(name))
        .and_then(|name| providers.iter().position(|p| p.name == name));
    Choice {
        provider: default.unwrap_or(sign_in_provider),
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
        for no in [
            "contoso.com",
            "xcontoso.com",
            "evilcontoso.com",
            ".contoso.com",
        ] {
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
        assert_eq!(
            domain_of("Alice@Contoso.COM").as_deref(),
            Some("contoso.com")
        );
    }
}
