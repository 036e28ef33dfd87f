//! What `scim:` configures (read by `read.rs`): plain data, used by the configuration,
//! the header plan and the SCIM service alike.

use std::time::Duration;

use crate::read::Secret;

/// Which SCIM attribute of a user is the session's user key (the provider's `user_claim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchAttribute {
    /// Entra's object ID, when the provisioning mapping sends `objectId` → `externalId`
    /// (and the provider's user key is `oid`, the Entra preset's default).
    ExternalId,
    /// The user principal name (with a `user_claim` such as `preferred_username`/`upn`).
    UserName,
}

impl MatchAttribute {
    pub fn attr(self) -> &'static str {
        match self {
            MatchAttribute::ExternalId => "externalId",
            MatchAttribute::UserName => "userName",
        }
    }
    /// Its index tag in the directory.
    pub fn tag(self) -> &'static str {
        match self {
            MatchAttribute::ExternalId => "x",
            MatchAttribute::UserName => "un",
        }
    }
}

/// A provisioned attribute that may become an identity header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    Department,
    EmployeeNumber,
    Manager,
    CostCenter,
    Division,
    Organization,
    Title,
}

impl Attribute {
    pub const ALL: [Attribute; 7] = [
        Attribute::Department,
        Attribute::EmployeeNumber,
        Attribute::Manager,
        Attribute::CostCenter,
        Attribute::Division,
        Attribute::Organization,
        Attribute::Title,
    ];
    /// The name in `scim.headers` and in the SCIM schema.
    pub fn key(self) -> &'static str {
        match self {
            Attribute::Department => "department",
            Attribute::EmployeeNumber => "employeeNumber",
            Attribute::Manager => "manager",
            Attribute::CostCenter => "costCenter",
            Attribute::Division => "division",
            Attribute::Organization => "organization",
            Attribute::Title => "title",
        }
    }
}

/// When the webhook cannot be reached at a first sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// The sign-in fails (503) and is retried next time: the app has no account yet.
    Deny,
    /// The sign-in goes ahead; the failure is logged and counted.
    Allow,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    pub url: url::Url,
    pub token: Option<Secret>,
    pub timeout: Duration,
    pub on_failure: OnFailure,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScimConfig {
    /// Entra's "Secret Token": the bearer secret every SCIM request must carry.
    pub token: Secret,
    pub match_attribute: MatchAttribute,
    /// Providers whose users SCIM speaks for (empty: all).
    pub providers: Vec<String>,
    /// Attribute → identity header name.
    pub headers: Vec<(Attribute, String)>,
    pub webhook: Option<WebhookConfig>,
    pub max_body: usize,
}
