//! Who the caller is, once an identity provider has vouched for them. Everything downstream
//! (headers, later authorization) reads this one shape, whichever protocol produced it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Identity {
    /// Name of the configured provider that signed the user in.
    #[serde(rename = "p")]
    pub provider: String,
    /// The stable user key (the provider's `user_claim`, `sub` by default).
    #[serde(rename = "u")]
    pub user: String,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(rename = "g", default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// SAML NameID and SessionIndex, kept for single logout.
    #[serde(rename = "ni", default, skip_serializing_if = "Option::is_none")]
    pub name_id: Option<String>,
    #[serde(rename = "si", default, skip_serializing_if = "Option::is_none")]
    pub session_index: Option<String>,
    /// The identity headers, built once per identity and header plan (never serialized).
    #[serde(skip)]
    pub prepared: Prepared,
}

/// Identity headers ready to send, for the header plan whose id they carry: a session used
/// again pays neither validation nor joining of lists, only the inserts. After a reload
/// changes the plan, the next request rebuilds them once and they are kept again.
pub struct Prepared(arc_swap::ArcSwapOption<(u64, PreparedHeaders)>);

/// (index of the header in the plan, value).
pub type PreparedHeaders = Vec<(usize, http::HeaderValue)>;

impl Prepared {
    /// The headers for plan `plan`, built with `build` when none are kept for it.
    pub fn get_or_build(
        &self,
        plan: u64,
        build: impl FnOnce() -> PreparedHeaders,
    ) -> std::sync::Arc<(u64, PreparedHeaders)> {
        if let Some(kept) = self.0.load_full().filter(|k| k.0 == plan) {
            return kept;
        }
        let fresh = std::sync::Arc::new((plan, build()));
        self.0.store(Some(fresh.clone()));
        fresh
    }
}

impl Default for Prepared {
    fn default() -> Self {
        Prepared(arc_swap::ArcSwapOption::const_empty())
    }
}

impl Clone for Prepared {
    fn clone(&self) -> Self {
        Prepared::default()
    }
}

/// A cache, not part of who the user is.
impl PartialEq for Prepared {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Prepared {}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prepared")
    }
}
