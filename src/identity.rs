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
}
