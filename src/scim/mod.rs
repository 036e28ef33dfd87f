//! SCIM 2.0 provisioning (RFC 7643/7644) from Entra ID, or any SCIM client: the gateway is
//! the service provider at `/_authgate/scim/v2/` on its public listener (Entra's
//! provisioning service calls from the Internet, where the gateway already has its public
//! URL and TLS; the admin listener stays internal). Off unless `scim:` is configured.
//!
//! What the gateway does with what it is told:
//! - a user made inactive (Entra's unassignment, scoping out, disabling, soft deletion) or
//!   deleted: every session of theirs ends on every replica (`Sessions::revoke_user`, pushed
//!   through the shared store), their bearer tokens stop passing, and new sign-ins are
//!   refused (`deprovisioned`) until they are active again;
//! - groups: their `displayName` becomes the name upstreams see for the group ID in tokens
//!   (`X-Auth-Groups`), and policies may name them;
//! - `allow.provisioned: true` admits only users provisioned and active;
//! - chosen enterprise attributes (department, employee number, manager…) become identity
//!   headers; an optional webhook hears of first sign-ins and of (de)provisioning.
//!
//! `api` serves the protocol; `resource`, `path` and `patch` read its shapes; `directory`
//! stores them (in this process, or in Redis when sessions are shared); `effects` is what a
//! sign-in and a deprovisioning do; `read` reads the configuration.

pub mod api;
pub mod directory;
mod discovery;
pub mod effects;
pub mod patch;
pub mod path;
mod read;
pub mod redis_kv;
pub mod resource;

use std::sync::Arc;
use std::time::Duration;

use directory::{Directory, Kv, MemoryKv};

use crate::metrics::Metrics;
use crate::read::Secret;
use crate::session::redis::RedisConfig;
use crate::session::SessionConfig;

/// Where the SCIM API lives, under the reserved prefix.
pub const PATH: &str = "/scim/v2";

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

/// Where the directory lives: with Redis when sessions are shared, else in this process.
#[derive(Debug, Clone, PartialEq)]
enum Backend {
    Memory,
    Redis(Box<RedisConfig>),
}

/// The SCIM service, built from `scim:` (and `session.redis`).
pub struct Scim {
    pub cfg: ScimConfig,
    pub dir: Directory,
    kv: Arc<dyn Kv>,
    backend: Backend,
    /// SHA-256 of the token: presented tokens are compared digest to digest, in constant
    /// time, so neither content nor length leaks.
    token_digest: [u8; 32],
    pub(crate) effects: effects::Effects,
    pub(crate) metrics: Arc<Metrics>,
}

#[derive(Debug, thiserror::Error)]
#[error("scim: {0}")]
pub struct ScimBuildError(String);

impl Scim {
    /// Builds the service; the directory of `previous` is kept when it lives in the same
    /// place (a reload must not forget what was provisioned).
    pub fn build(
        cfg: &ScimConfig,
        session: &SessionConfig,
        previous: Option<&Scim>,
        metrics: Arc<Metrics>,
    ) -> Result<Scim, ScimBuildError> {
        let backend = match &session.redis {
            Some(r) => Backend::Redis(Box::new(r.clone())),
            None => Backend::Memory,
        };
        let kv: Arc<dyn Kv> = match (previous, &backend) {
            (Some(p), b) if &p.backend == b => p.kv.clone(),
            (_, Backend::Memory) => Arc::new(MemoryKv::default()),
            (_, Backend::Redis(r)) => {
                Arc::new(redis_kv::RedisKv::connect(r).map_err(ScimBuildError)?)
            }
        };
        let effects = effects::Effects::new(cfg).map_err(ScimBuildError)?;
        Ok(Scim {
            cfg: cfg.clone(),
            dir: Directory::new(kv.clone()),
            kv,
            backend,
            token_digest: digest(cfg.token.0.as_bytes()),
            effects,
            metrics,
        })
    }

    /// The bearer token is Entra's Secret Token.
    pub fn authorized(&self, presented: Option<&str>) -> bool {
        let Some(p) = presented else {
            return false;
        };
        openssl::memcmp::eq(&digest(p.as_bytes()), &self.token_digest)
    }

    /// This provider's users are spoken for by SCIM.
    pub fn covers(&self, provider: &str) -> bool {
        self.cfg.providers.is_empty() || self.cfg.providers.iter().any(|p| p == provider)
    }

    pub fn backend_kind(&self) -> &'static str {
        self.kv.kind()
    }
}

fn digest(b: &[u8]) -> [u8; 32] {
    openssl::sha::sha256(b)
}
