//! Reading a route's `allow:` policy.

use super::Policy;
use crate::identity::is_guid;
use crate::read::{join, Obj, Reader};

impl Reader<'_> {
    /// A route's `allow:` block.
    pub(crate) fn policy(&mut self, o: &mut Obj<'_>, path: &str) -> Policy {
        let apath = join(path, "allow");
        let v = self.get(o, "allow");
        let mut a = self.obj(&apath, v);
        let mut list = |r: &mut Self, key: &str| r.string_list(&mut a, key).unwrap_or_default();
        let tenants = list(self, "tenants");
        let groups = list(self, "groups");
        let roles = list(self, "roles");
        let email_domains = list(self, "email_domains");
        let users = list(self, "users");
        let require_assignment = self.bool(&mut a, "require_assignment").unwrap_or(false);
        let provisioned = self.bool(&mut a, "provisioned").unwrap_or(false);
        self.finish(a);
        for t in &tenants {
            if !is_guid(t) {
                self.err(
                    join(&apath, "tenants"),
                    format!("{t:?} is not a tenant ID (GUID)"),
                );
            }
        }
        Policy {
            tenants: tenants.iter().map(|t| t.to_ascii_lowercase()).collect(),
            groups,
            roles,
            email_domains: email_domains
                .iter()
                .map(|d| d.trim_start_matches('@').to_ascii_lowercase())
                .collect(),
            users,
            require_assignment,
            provisioned,
        }
    }
}
