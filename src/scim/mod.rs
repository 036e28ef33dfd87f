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
//! The protocol's HTTP handlers are in `crate::endpoints::scim`, beside the gateway's other
//! endpoints; this module is what they call. `resource`, `path` and `patch` read the
//! protocol's shapes, `filter` answers list filters; `directory` stores them (in this
//! process, or in Redis when sessions are shared); `effects` is what a sign-in and a
//! (de)provisioning do to sessions and the webhook; `read` reads the configuration. It is
//! built with what it needs (the providers' names and group names, the session manager), so
//! it knows nothing of the gateway above it.

pub mod directory;
pub(crate) mod effects;
pub(crate) mod filter;
pub(crate) mod patch;
pub(crate) mod path;
mod read;
pub mod redis_kv;
pub(crate) mod resource;
mod settings;

use std::sync::Arc;
use std::time::Duration;

/// For the fuzzers (`crate::fuzz_targets`): `which` picks the reader of `text`: a filter, an
/// attribute path, or a PATCH body applied to a user and a group (an applied PATCH must leave
/// a resource that passes the checks a create passes).
pub(crate) fn fuzz(which: u8, text: &str) {
    use serde_json::{json, Value};
    match which % 3 {
        0 => {
            let _ = path::Filter::parse(text);
        }
        1 => {
            let _ = path::Path::parse(text);
        }
        _ => {
            let Ok(body) = serde_json::from_str::<Value>(text) else {
                return;
            };
            let user = json!({"schemas": [resource::USER_SCHEMA], "userName": "a@b.example",
                "active": true, "emails": [{"type": "work", "value": "a@b.example"}]});
            let group = json!({"schemas": [resource::GROUP_SCHEMA], "displayName": "G",
                "members": [{"value": "m1"}]});
            for (kind, doc) in [
                (directory::Kind::User, user),
                (directory::Kind::Group, group),
            ] {
                let mut doc = doc.as_object().cloned().unwrap_or_default();
                if patch::apply(kind, &mut doc, &body).is_ok() {
                    let mut again = doc.clone();
                    assert!(
                        resource::check(kind, &mut again).is_ok(),
                        "an applied PATCH left an invalid resource"
                    );
                }
            }
        }
    }
}

use directory::{Directory, Kv, MemoryKv};
pub use settings::{Attribute, MatchAttribute, OnFailure, ScimConfig, WebhookConfig};

use crate::metrics::Metrics;
use crate::policy::GroupNames;
use crate::session::RedisConfig;
use crate::session::{SessionConfig, Sessions};
use serde_json::Value;

/// Where the SCIM API lives, under the reserved prefix.
pub const PATH: &str = "/scim/v2";

/// What the directory says of a user key.
#[derive(Debug, Clone)]
pub enum Status {
    Active(Arc<Value>),
    Deprovisioned,
    Unknown,
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
    pub(crate) effects: Effects,
    pub(crate) metrics: Arc<Metrics>,
    /// Every configured provider, with the group names its config fixes.
    providers: Vec<ProviderNames>,
    /// Where a deprovisioning ends sessions.
    sessions: Arc<Sessions>,
}

/// A configured provider as SCIM sees it: its name and its fixed group names.
#[derive(Debug, Clone)]
pub struct ProviderNames {
    pub name: String,
    pub group_names: GroupNames,
}

/// What SCIM is built with, besides its own section.
pub struct ScimContext<'a> {
    pub session: &'a SessionConfig,
    pub sessions: Arc<Sessions>,
    pub providers: Vec<ProviderNames>,
    pub metrics: Arc<Metrics>,
}

#[derive(Debug, thiserror::Error)]
#[error("scim: {0}")]
pub struct ScimBuildError(String);

impl Scim {
    /// Builds the service; the directory of `previous` is kept when it lives in the same
    /// place (a reload must not forget what was provisioned).
    pub fn build(
        cfg: &ScimConfig,
        cx: ScimContext<'_>,
        previous: Option<&Scim>,
    ) -> Result<Scim, ScimBuildError> {
        let backend = match &cx.session.redis {
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
        let effects = Effects::new(cfg).map_err(ScimBuildError)?;
        Ok(Scim {
            cfg: cfg.clone(),
            dir: Directory::new(kv.clone()),
            kv,
            backend,
            token_digest: digest(cfg.token.0.as_bytes()),
            effects,
            metrics: cx.metrics,
            providers: cx.providers,
            sessions: cx.sessions,
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

/// The webhook's HTTP client, and the bearer tokens' recent user statuses.
pub(crate) struct Effects {
    http: reqwest::Client,
    /// Bearer tokens are checked on every request: their users' status, for a few seconds.
    bearer: moka::sync::Cache<(Arc<str>, String), Status, ahash::RandomState>,
}

/// How long a bearer token's user status is reused: a deprovisioning reaches API callers
/// within this (sessions end at once, by push).
const BEARER_STATUS_TTL: Duration = Duration::from_secs(5);

impl Effects {
    pub(crate) fn new(cfg: &ScimConfig) -> Result<Self, String> {
        let timeout = cfg
            .webhook
            .as_ref()
            .map_or(Duration::from_secs(2), |w| w.timeout);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(Self {
            http,
            bearer: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(BEARER_STATUS_TTL)
                .build_with_hasher(ahash::RandomState::new()),
        })
    }
}
