//! Rules on any claim (`allow.claims`, `deny.claims`): a claim name and the values that
//! match, each exact or with one `*` (`"*Manager"`, `"Fin*"`, `"*"` for any value). An array
//! claim matches if any element does; a claim the identity lacks matches nothing. Values
//! compare case-sensitively, as the IdP sent them.

use crate::identity::Identity;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRule {
    /// The claim (ID-token claim name, SAML attribute URI or its short name).
    pub name: String,
    pub values: Vec<String>,
    /// Where the rule is written (`allow.claims.department`): the denial's reason.
    pub label: &'static str,
}

impl ClaimRule {
    pub fn matches(&self, id: &Identity) -> bool {
        id.rule_claim(&self.name).is_some_and(|have| {
            have.iter()
                .any(|v| self.values.iter().any(|p| glob_matches(p, v)))
        })
    }
}

/// `pattern` is a value, or a value with one `*` standing for any run of characters.
pub fn glob_matches(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((pre, suf)) => {
            value.len() >= pre.len() + suf.len() && value.starts_with(pre) && value.ends_with(suf)
        }
    }
}

/// One shared `'static` copy of a rule's label (a bounded metric label that `Deny` carries
/// by copy): each distinct label is kept once for the life of the process, however often the
/// configuration is reloaded.
pub fn intern(label: &str) -> &'static str {
    static LABELS: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut labels = match LABELS.lock() {
        Ok(l) => l,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(kept) = labels.iter().find(|l| **l == label) {
        return kept;
    }
    let kept: &'static str = Box::leak(label.to_string().into_boxed_str());
    labels.push(kept);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(claims: &[(&str, &[&str])]) -> Identity {
        Identity {
            more: crate::identity::Rare {
                rule_claims: claims
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.iter().map(|s| s.to_string()).collect()))
                    .collect(),
                ..Default::default()
            }
            .into(),
            ..Default::default()
        }
    }

    fn rule(name: &str, values: &[&str]) -> ClaimRule {
        ClaimRule {
            name: name.into(),
            values: values.iter().map(|s| s.to_string()).collect(),
            label: intern(&format!("allow.claims.{name}")),
        }
    }

    #[test]
    fn globs_have_one_star() {
        for (p, v, want) in [
            ("Finance", "Finance", true),
            ("Finance", "finance", false),
            ("Finance", "Finance ", false),
            ("*Manager", "Sales Manager", true),
            ("*Manager", "Manager", true),
            ("*Manager", "Manager of Sales", false),
            ("Fin*", "Finance", true),
            ("Fin*", "Fi", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("*", "", true),
            ("*", "anything", true),
        ] {
            assert_eq!(glob_matches(p, v), want, "{p:?} vs {v:?}");
        }
    }

    #[test]
    fn arrays_match_on_any_element_and_missing_claims_never() {
        let id = with(&[("tags", &["blue", "red"]), ("department", &["Finance"])]);
        assert!(rule("tags", &["red"]).matches(&id));
        assert!(!rule("tags", &["green"]).matches(&id));
        assert!(rule("department", &["HR", "Finance"]).matches(&id));
        assert!(!rule("jobTitle", &["*"]).matches(&id));
        assert!(!rule("tags", &[]).matches(&id));
    }

    #[test]
    fn labels_are_kept_once() {
        let a = intern("deny.claims.x");
        let b = intern(&String::from("deny.claims.x"));
        assert!(std::ptr::eq(a, b));
    }
}
