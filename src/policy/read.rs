//! Reading a route's `allow:` and `deny:` blocks.

use serde_yaml::Value;

use super::claims::{intern, ClaimRule};
use super::{Denials, Policy};
use crate::identity::is_guid;
use crate::read::{join, Obj, Reader};

/// The most values one claim rule may list, and the longest value.
const MAX_RULE_VALUES: usize = 256;
const MAX_RULE_VALUE: usize = 1024;

/// The lists `allow:` and `deny:` share.
struct Lists {
    tenants: Vec<String>,
    groups: Vec<String>,
    roles: Vec<String>,
    email_domains: Vec<String>,
    users: Vec<String>,
    claims: Vec<ClaimRule>,
}

impl Reader<'_> {
    /// A route's `allow:` and `deny:` blocks.
    pub(crate) fn policy(&mut self, o: &mut Obj<'_>, path: &str) -> Policy {
        let apath = join(path, "allow");
        let v = self.get(o, "allow");
        let mut a = self.obj(&apath, v);
        let allow = self.policy_lists(&mut a, &apath);
        let require_assignment = self.bool(&mut a, "require_assignment").unwrap_or(false);
        let provisioned = self.bool(&mut a, "provisioned").unwrap_or(false);
        self.finish(a);
        let dpath = join(path, "deny");
        let v = self.get(o, "deny");
        let mut d = self.obj(&dpath, v);
        let deny = self.policy_lists(&mut d, &dpath);
        self.finish(d);
        Policy {
            tenants: allow.tenants,
            groups: allow.groups,
            roles: allow.roles,
            email_domains: allow.email_domains,
            users: allow.users,
            require_assignment,
            provisioned,
            claims: allow.claims,
            deny: Denials {
                tenants: deny.tenants,
                groups: deny.groups,
                roles: deny.roles,
                email_domains: deny.email_domains,
                users: deny.users,
                claims: deny.claims,
            },
        }
    }

    fn policy_lists(&mut self, a: &mut Obj<'_>, apath: &str) -> Lists {
        let mut list = |r: &mut Self, key: &str| r.string_list(a, key).unwrap_or_default();
        let tenants = list(self, "tenants");
        let groups = list(self, "groups");
        let roles = list(self, "roles");
        let email_domains = list(self, "email_domains");
        let users = list(self, "users");
        for t in &tenants {
            if !is_guid(t) {
                self.err(
                    join(apath, "tenants"),
                    format!("{t:?} is not a tenant ID (GUID)"),
                );
            }
        }
        let v = self.get(a, "claims");
        let claims = self.claim_rules(&join(apath, "claims"), v);
        Lists {
            tenants: tenants.iter().map(|t| t.to_ascii_lowercase()).collect(),
            groups,
            roles,
            email_domains: email_domains
                .iter()
                .map(|d| d.trim_start_matches('@').to_ascii_lowercase())
                .collect(),
            users,
            claims,
        }
    }

    /// `claims: {department: [Finance, HR], jobTitle: "*Manager"}`.
    fn claim_rules(&mut self, path: &str, v: Option<&Value>) -> Vec<ClaimRule> {
        let m = match v {
            None => return Vec::new(),
            Some(Value::Mapping(m)) => m,
            Some(_) => {
                self.err(
                    path,
                    "expected a mapping of claim name to the values that match",
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (k, v) in m {
            let Some(name) = k.as_str().filter(|n| valid_claim_name(n)) else {
                self.err(path, format!("{k:?} is not a claim name (a non-empty name or URI without spaces or control characters, at most 256 bytes)"));
                continue;
            };
            let at = join(path, name);
            let raw: Vec<&Value> = match v {
                Value::Sequence(items) => items.iter().collect(),
                one => vec![one],
            };
            let mut values = Vec::new();
            for (i, item) in raw.iter().enumerate() {
                let text = match item {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => n.to_string(),
                    _ => {
                        self.err(
                            format!("{at}[{i}]"),
                            "expected a value (a string, number or boolean)",
                        );
                        continue;
                    }
                };
                if text.matches('*').count() > 1 {
                    self.err(format!("{at}[{i}]"), "at most one * per value");
                } else if text.len() > MAX_RULE_VALUE || text.chars().any(char::is_control) {
                    self.err(
                        format!("{at}[{i}]"),
                        "at most 1024 bytes, no control characters",
                    );
                } else {
                    values.push(text);
                }
            }
            if raw.is_empty() || raw.len() > MAX_RULE_VALUES {
                self.err(&at, "list between 1 and 256 values");
                continue;
            }
            out.push(ClaimRule {
                name: name.to_string(),
                values,
                label: intern(&format!("{}.{name}", short_rule_path(path))),
            });
        }
        out
    }
}

/// `routes[2].allow.claims` → `allow.claims` (the label names the rule within its route).
fn short_rule_path(path: &str) -> &str {
    ["allow.claims", "deny.claims"]
        .into_iter()
        .find(|p| path.ends_with(p))
        .unwrap_or(path)
}

fn valid_claim_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 256 && !n.chars().any(|c| c.is_control() || c.is_whitespace())
}
