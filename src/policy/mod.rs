//! Per-route authorization: a pure function from (policy, identity) to allow or a typed
//! denial. The gateway turns a denial into a 403 page for browsers or a JSON body for API
//! callers; the reason is logged and counted.
//!
//! Every condition a route sets must hold (AND); within one list any entry matches (OR).
//! A route with no conditions allows every signed-in user.

use std::collections::HashMap;

pub mod claims;
mod read;

use crate::identity::Identity;
pub use claims::ClaimRule;

/// Group ID → readable name, from the provider's `group_names`.
pub type GroupNames = HashMap<String, String>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Tenant IDs (lower-case).
    pub tenants: Vec<String>,
    /// Group object IDs, or names from the provider's `group_names` (resolved to IDs when the
    /// route is built; see `resolve_groups`).
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    /// Domains (lower-case) of the trusted email address.
    pub email_domains: Vec<String>,
    /// Exact user keys (the user header's value: Entra `oid`).
    pub users: Vec<String>,
    /// A non-empty `roles` claim proves assignment to the app through an app role.
    pub require_assignment: bool,
    /// Only users provisioned (and active) through SCIM (`allow.provisioned`).
    pub provisioned: bool,
    /// Rules on any claim (`allow.claims`): each must match.
    pub claims: Vec<ClaimRule>,
    /// `deny:`: checked first, and any match refuses, whatever `allow` says.
    pub deny: Denials,
}

/// A route's `deny:` block: any entry that matches refuses the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denials {
    pub tenants: Vec<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub email_domains: Vec<String>,
    pub users: Vec<String>,
    pub claims: Vec<ClaimRule>,
}

/// Why a user may not pass. `label()` is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    WrongTenant,
    MissingGroup,
    MissingRole,
    NotAssigned,
    EmailDomain,
    UserNotAllowed,
    /// The IdP said the groups did not fit in the token and they could not be looked up.
    GroupsUnresolved,
    /// Made inactive or deleted through SCIM provisioning.
    Deprovisioned,
    /// The route admits only users provisioned through SCIM, and this one is not.
    NotProvisioned,
    /// An `allow.claims` rule did not match; the label names it (`allow.claims.department`).
    Claim(&'static str),
    /// A `deny:` entry matched; the label names it (`deny.groups`, `deny.claims.jobTitle`).
    Rule(&'static str),
}

impl Deny {
    pub fn label(self) -> &'static str {
        match self {
            Deny::WrongTenant => "wrong_tenant",
            Deny::MissingGroup => "missing_group",
            Deny::MissingRole => "missing_role",
            Deny::NotAssigned => "not_assigned",
            Deny::EmailDomain => "email_domain",
            Deny::UserNotAllowed => "user_not_allowed",
            Deny::GroupsUnresolved => "groups_unresolved",
            Deny::Deprovisioned => "deprovisioned",
            Deny::NotProvisioned => "not_provisioned",
            Deny::Claim(rule) | Deny::Rule(rule) => rule,
        }
    }

    /// The HTTP status: 403, except groups that could not be looked up (Graph down), a
    /// condition on our side that a retry may clear: 503.
    pub fn status(self) -> u16 {
        match self {
            Deny::GroupsUnresolved => 503,
            _ => 403,
        }
    }

    /// What the person reading the denial page should know and do.
    pub fn explain(self) -> (&'static str, &'static str) {
        match self {
            Deny::WrongTenant => (
                "Your organization does not have access",
                "You signed in with an account from an organization (tenant) this application does not accept. Sign in with an account of an allowed organization, or ask your administrator.",
            ),
            Deny::MissingGroup => (
                "You do not have access to this page",
                "This part of the application is limited to members of certain groups, and your account is not in one. Ask your administrator to add you to the right group.",
            ),
            Deny::MissingRole => (
                "You do not have access to this page",
                "This part of the application requires an application role your account does not have. Ask your administrator to assign you the role.",
            ),
            Deny::NotAssigned => (
                "You are not assigned to this application",
                "Your account signed in, but it has not been assigned to this application. Ask your administrator to assign you (Enterprise applications → Users and groups).",
            ),
            Deny::EmailDomain => (
                "You do not have access to this page",
                "This application accepts only accounts with a verified email address in certain domains, and yours is not one of them.",
            ),
            Deny::UserNotAllowed => (
                "You do not have access to this page",
                "This part of the application is limited to named users. Ask your administrator for access.",
            ),
            Deny::GroupsUnresolved => (
                "Your group memberships could not be checked",
                "You are in too many groups for the sign-in token to list them, and they could not be looked up right now. Try again in a few minutes; if it persists, tell your administrator.",
            ),
            Deny::Deprovisioned => (
                "Your access has been removed",
                "Your account has been deprovisioned from this application (unassigned, disabled or deleted in your organization's directory), so it cannot sign in here. If you think this is a mistake, ask your administrator.",
            ),
            Deny::NotProvisioned => (
                "Your account is not set up for this application",
                "This application admits only accounts your organization has provisioned to it, and yours has not been provisioned yet. Ask your administrator to assign you; provisioning can take up to 40 minutes, then sign in again.",
            ),
            Deny::Claim(_) => (
                "You do not have access to this page",
                "This part of the application admits only accounts with certain directory attributes (such as department or job title), and yours do not match. Ask your administrator if you need access.",
            ),
            Deny::Rule(_) => (
                "You do not have access to this page",
                "A rule of this application excludes your account from this part of it. Ask your administrator if you think this is a mistake.",
            ),
        }
    }
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    /// Replaces group names with the IDs they map to (entries that are no name stay as
    /// given: IDs, or names a non-Entra IdP sends as they are).
    pub fn resolve_groups(&mut self, names: &GroupNames) {
        self.groups = resolved(&self.groups, names);
        self.deny.groups = resolved(&self.deny.groups, names);
    }

    /// The claims its rules name (what sign-ins must keep).
    pub fn claim_names(&self) -> impl Iterator<Item = &str> {
        self.claims
            .iter()
            .chain(&self.deny.claims)
            .map(|r| r.name.as_str())
    }
}

fn resolved(groups: &[String], names: &GroupNames) -> Vec<String> {
    {
        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            let ids: Vec<&String> = names
                .iter()
                .filter(|(_, n)| *n == g)
                .map(|(id, _)| id)
                .collect();
            if ids.is_empty() {
                out.push(g.to_ascii_lowercase());
            } else {
                out.extend(ids.into_iter().map(|id| id.to_ascii_lowercase()));
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Whether one of `id`'s groups (by ID, or by a name the SCIM directory gave it) is in `list`.
fn in_groups(id: &Identity, list: &[String]) -> bool {
    list.iter().any(|p| {
        id.groups.contains_ignore_ascii_case(p)
            || id
                .more
                .group_names
                .as_ref()
                .is_some_and(|n| n.contains_ignore_ascii_case(p))
    })
}

fn email_domain_in(id: &Identity, list: &[String]) -> bool {
    let domain = id
        .email
        .as_deref()
        .and_then(|e| e.rsplit_once('@'))
        .map(|(_, d)| d);
    domain.is_some_and(|d| list.iter().any(|p| p.eq_ignore_ascii_case(d)))
}

/// The first `deny:` entry `id` matches, in a fixed order.
fn denied(d: &Denials, id: &Identity) -> Option<Deny> {
    let tenant = id
        .tenant
        .as_deref()
        .is_some_and(|t| d.tenants.iter().any(|p| p.eq_ignore_ascii_case(t)));
    if tenant {
        return Some(Deny::Rule("deny.tenants"));
    }
    if d.users.iter().any(|u| **u == *id.user) {
        return Some(Deny::Rule("deny.users"));
    }
    if d.roles.iter().any(|r| id.roles.contains(r)) {
        return Some(Deny::Rule("deny.roles"));
    }
    if !d.groups.is_empty() && in_groups(id, &d.groups) {
        return Some(Deny::Rule("deny.groups"));
    }
    if !d.email_domains.is_empty() && email_domain_in(id, &d.email_domains) {
        return Some(Deny::Rule("deny.email_domains"));
    }
    d.claims
        .iter()
        .find(|r| r.matches(id))
        .map(|r| Deny::Rule(r.label))
}

/// The decision. Checked in a fixed order, so the reason is stable: `deny:` first (it wins
/// over `allow:`), then each `allow:` condition.
pub fn decide(policy: &Policy, id: &Identity) -> Result<(), Deny> {
    if let Some(deny) = denied(&policy.deny, id) {
        return Err(deny);
    }
    if !policy.tenants.is_empty() {
        let ok = id
            .tenant
            .as_deref()
            .is_some_and(|t| policy.tenants.iter().any(|p| p.eq_ignore_ascii_case(t)));
        if !ok {
            return Err(Deny::WrongTenant);
        }
    }
    if policy.require_assignment && id.roles.is_empty() {
        return Err(Deny::NotAssigned);
    }
    if policy.provisioned && !id.provisioned {
        return Err(Deny::NotProvisioned);
    }
    if !policy.users.is_empty() && !policy.users.iter().any(|u| **u == *id.user) {
        return Err(Deny::UserNotAllowed);
    }
    if !policy.roles.is_empty() && !policy.roles.iter().any(|p| id.roles.contains(p)) {
        return Err(Deny::MissingRole);
    }
    // By ID, or by a name the SCIM directory gave the group.
    if !policy.groups.is_empty() && !in_groups(id, &policy.groups) {
        return Err(Deny::MissingGroup);
    }
    if !policy.email_domains.is_empty() && !email_domain_in(id, &policy.email_domains) {
        return Err(Deny::EmailDomain);
    }
    match policy.claims.iter().find(|r| !r.matches(id)) {
        Some(r) => Err(Deny::Claim(r.label)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::List;

    fn alice() -> Identity {
        Identity {
            provider: "entra".into(),
            user: "oid-alice".into(),
            email: Some("alice@Contoso.example".into()),
            tenant: Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into()),
            groups: List::from(["6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1b1"]),
            roles: List::from(["Reader"]),
            ..Default::default()
        }
    }

    #[test]
    fn empty_policy_allows() {
        assert!(Policy::default().is_empty());
        assert_eq!(decide(&Policy::default(), &Identity::default()), Ok(()));
    }

    #[test]
    fn each_condition_denies_with_its_reason() {
        let a = alice();
        let p = |f: &dyn Fn(&mut Policy)| {
            let mut p = Policy::default();
            f(&mut p);
            decide(&p, &a)
        };
        assert_eq!(
            p(&|p| p.tenants = vec!["other".into()]),
            Err(Deny::WrongTenant)
        );
        assert_eq!(
            p(&|p| p.tenants = vec!["72F988BF-86F1-41AF-91AB-2D7CD011DB47".into()]),
            Ok(())
        );
        assert_eq!(
            p(&|p| p.roles = vec!["Admin".into()]),
            Err(Deny::MissingRole)
        );
        assert_eq!(
            p(&|p| p.roles = vec!["Admin".into(), "Reader".into()]),
            Ok(())
        );
        assert_eq!(
            p(&|p| p.groups = vec!["nope".into()]),
            Err(Deny::MissingGroup)
        );
        assert_eq!(
            p(&|p| p.groups = vec!["6E6A3C0C-1D87-4D39-9B9A-9D54A0F0A1B1".into()]),
            Ok(())
        );
        assert_eq!(
            p(&|p| p.email_domains = vec!["fabrikam.example".into()]),
            Err(Deny::EmailDomain)
        );
        assert_eq!(
            p(&|p| p.email_domains = vec!["contoso.example".into()]),
            Ok(())
        );
        assert_eq!(
            p(&|p| p.users = vec!["oid-bob".into()]),
            Err(Deny::UserNotAllowed)
        );
        assert_eq!(p(&|p| p.require_assignment = true), Ok(()));
        let mut unassigned = a.clone();
        unassigned.roles = List::default();
        let ra = Policy {
            require_assignment: true,
            ..Default::default()
        };
        assert_eq!(decide(&ra, &unassigned), Err(Deny::NotAssigned));
        // No email at all (untrusted and dropped): a domain rule cannot pass.
        let mut no_email = a.clone();
        no_email.email = None;
        let d = Policy {
            email_domains: vec!["contoso.example".into()],
            ..Default::default()
        };
        assert_eq!(decide(&d, &no_email), Err(Deny::EmailDomain));
    }

    #[test]
    fn deny_wins_over_allow_and_every_refusal_names_its_rule() {
        let mut a = alice();
        a.more.rule_claims = vec![
            ("department".into(), vec!["Finance".into()]),
            ("jobTitle".into(), vec!["Contract Manager".into()]),
        ];
        let rule = |name: &str, values: &[&str], at: &str| ClaimRule {
            name: name.into(),
            values: values.iter().map(|s| s.to_string()).collect(),
            label: claims::intern(&format!("{at}.{name}")),
        };
        let allow = Policy {
            roles: vec!["Reader".into()],
            claims: vec![rule("department", &["Finance", "HR"], "allow.claims")],
            ..Default::default()
        };
        assert_eq!(decide(&allow, &a), Ok(()));
        let mut deny = allow.clone();
        deny.deny.claims = vec![rule("jobTitle", &["Contract*"], "deny.claims")];
        assert_eq!(decide(&deny, &a), Err(Deny::Rule("deny.claims.jobTitle")));
        assert_eq!(
            Deny::Rule("deny.claims.jobTitle").label(),
            "deny.claims.jobTitle"
        );
        let other = Policy {
            claims: vec![rule("department", &["HR"], "allow.claims")],
            ..Default::default()
        };
        assert_eq!(
            decide(&other, &a),
            Err(Deny::Claim("allow.claims.department"))
        );
        // A claim the user lacks: an allow rule fails, a deny rule does not match.
        let missing = Policy {
            claims: vec![rule("costCenter", &["*"], "allow.claims")],
            ..Default::default()
        };
        assert_eq!(
            decide(&missing, &a),
            Err(Deny::Claim("allow.claims.costCenter"))
        );
        let mut no_deny = Policy::default();
        no_deny.deny.claims = vec![rule("costCenter", &["*"], "deny.claims")];
        assert_eq!(decide(&no_deny, &a), Ok(()));
        // The fixed lists deny too, before any allow condition.
        for (d, label) in [
            (
                Denials {
                    roles: vec!["Admin".into(), "Reader".into()],
                    ..Default::default()
                },
                "deny.roles",
            ),
            (
                Denials {
                    groups: vec!["6E6A3C0C-1D87-4D39-9B9A-9D54A0F0A1B1".into()],
                    ..Default::default()
                },
                "deny.groups",
            ),
            (
                Denials {
                    users: vec!["oid-alice".into()],
                    ..Default::default()
                },
                "deny.users",
            ),
            (
                Denials {
                    email_domains: vec!["contoso.example".into()],
                    ..Default::default()
                },
                "deny.email_domains",
            ),
            (
                Denials {
                    tenants: vec!["72f988bf-86f1-41af-91ab-2d7cd011db47".into()],
                    ..Default::default()
                },
                "deny.tenants",
            ),
        ] {
            let p = Policy {
                deny: d,
                users: vec!["oid-alice".into()],
                ..Default::default()
            };
            assert_eq!(decide(&p, &a), Err(Deny::Rule(label)));
        }
    }

    #[test]
    fn conditions_combine_with_and() {
        let p = Policy {
            roles: vec!["Reader".into()],
            groups: vec!["other-group".into()],
            ..Default::default()
        };
        assert_eq!(decide(&p, &alice()), Err(Deny::MissingGroup));
    }

    #[test]
    fn group_names_resolve_to_ids() {
        let names: GroupNames = [
            (
                "6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1b1".to_string(),
                "Admins".to_string(),
            ),
            (
                "c3d2a8f1-3e48-4a0f-8d53-7d0a7b6b2f11".to_string(),
                "Staff".to_string(),
            ),
        ]
        .into();
        let mut p = Policy {
            groups: vec!["Admins".into()],
            ..Default::default()
        };
        p.resolve_groups(&names);
        assert_eq!(p.groups, vec!["6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1b1"]);
        assert_eq!(decide(&p, &alice()), Ok(()));
        let mut staff = Policy {
            groups: vec!["Staff".into()],
            ..Default::default()
        };
        staff.resolve_groups(&names);
        assert_eq!(decide(&staff, &alice()), Err(Deny::MissingGroup));
    }
}
