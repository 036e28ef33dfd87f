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
/// again pays neither validation nor joining of lists, only the inserts.
#[derive(Default)]
pub struct Prepared(std::sync::OnceLock<(u64, PreparedHeaders)>);

/// (index of the header in the plan, value).
pub type PreparedHeaders = Vec<(usize, http::HeaderValue)>;

impl Prepared {
    /// The headers for plan `plan`, building them with `build` the first time. Another plan
    /// (after a reload changed the names) builds them afresh without caching.
    pub fn get_or_build(
        &self,
        plan: u64,
        build: impl Fn() -> PreparedHeaders,
    ) -> std::borrow::Cow<'_, PreparedHeaders> {
        if self.0.get().is_none() {
            // Two requests racing here both build; one result is kept. Harmless.
            let _ = self.0.set((plan, build()));
        }
        match self.0.get() {
            Some((id, headers)) if *id == plan => std::borrow::Cow::Borrowed(headers),
            _ => std::borrow::Cow::Owned(build()),
        }
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
