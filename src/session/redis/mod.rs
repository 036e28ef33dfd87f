//! Redis, shared by every replica: the connection (`Link`: a pool for commands, a subscriber
//! for revocations pushed to every replica, health), the key layout, the revocation list
//! (`shared`), and the session store on top (`store`). Standalone, Sentinel and Cluster are
//! all spoken by the `fred` client; authgate only says which.
//!
//! Every command runs on a runtime of its own (one thread): the proxy's runtimes only wait
//! for answers, bounded by `timeout`, so a slow or absent Redis costs a request at most that.

mod kept;
mod link;
mod shared;
mod store;

use std::path::PathBuf;
use std::time::Duration;

pub(crate) use link::Link;
pub use store::RedisStore;

use crate::read::Secret;

/// Where Redis is and how to reach it (`session.redis`).
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    pub topology: Topology,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Sentinel only: the Sentinels' own credentials (`requirepass`, or an ACL user of theirs).
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<Secret>,
    pub database: Option<u8>,
    /// TLS (`rediss://`, or `tls:` for Sentinel and Cluster), with an optional CA bundle.
    pub tls: Option<RedisTls>,
    pub key_prefix: String,
    /// Longest wait for one command before the store counts Redis as unavailable.
    pub timeout: Duration,
    pub pool_size: usize,
    /// How long a session read from Redis is used from this process's cache before it is
    /// read again (revocations reach the cache sooner, pushed by pub/sub).
    pub cache_ttl: Duration,
    /// Upper bound of that cache, in bytes.
    pub cache_bytes: u64,
    /// While Redis is unavailable, sessions this process read within this long keep working;
    /// others get 503. Zero: every request that needs Redis gets 503.
    pub unavailable_grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    Standalone {
        host: String,
        port: u16,
    },
    Sentinel {
        service_name: String,
        nodes: Vec<(String, u16)>,
    },
    Cluster {
        nodes: Vec<(String, u16)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RedisTls {
    pub ca_file: Option<PathBuf>,
    /// PEM of the CA bundle, read when the configuration was.
    pub ca_pem: Option<Vec<u8>>,
}

impl RedisConfig {
    /// A standalone Redis at `host:port` with the defaults `session.redis` documents (key
    /// prefix `authgate:`, 500 ms timeout, 4 connections, 5 s cache of 32 MiB, 60 s grace).
    pub fn standalone(host: &str, port: u16) -> Self {
        Self {
            topology: Topology::Standalone {
                host: host.to_string(),
                port,
            },
            username: None,
            password: None,
            sentinel_username: None,
            sentinel_password: None,
            database: None,
            tls: None,
            key_prefix: "authgate:".into(),
            timeout: Duration::from_millis(500),
            pool_size: 4,
            cache_ttl: Duration::from_secs(5),
            cache_bytes: 32 * 1024 * 1024,
            unavailable_grace: Duration::from_secs(60),
        }
    }
}

/// The key layout, under `key_prefix`. Every command names one key (no multi-key commands),
/// so Cluster needs no hash tags.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

/// Separates the parts of a composite key (provider, user): cannot occur in a provider name.
const SEP: char = '\n';

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }
    /// A session: its identity and absolute expiry, as JSON.
    pub(crate) fn session(&self, sid: &str) -> String {
        format!("{}s:{sid}", self.prefix)
    }
    /// The ids of a user's sessions (a set), for listing and revoking them.
    pub(crate) fn user_sessions(&self, provider: &str, user: &str) -> String {
        format!("{}u:{provider}{SEP}{user}", self.prefix)
    }
    /// A revoked session id.
    pub(crate) fn revoked(&self, sid: &str) -> String {
        format!("{}r:{sid}", self.prefix)
    }
    /// A user whose sessions issued until the stored time are void.
    pub(crate) fn user_revoked(&self, provider: &str, user: &str) -> String {
        format!("{}ru:{provider}{SEP}{user}", self.prefix)
    }
    /// A subject (and session index, or "") its IdP ended until the stored time.
    pub(crate) fn idp_ended(&self, provider: &str, name_id: &str, index: &str) -> String {
        format!("{}ri:{provider}{SEP}{name_id}{SEP}{index}", self.prefix)
    }
    /// A single-use value (OIDC state, SAML assertion or logout request id).
    pub(crate) fn once(&self, scope: &str, id: &str) -> String {
        format!("{}o:{scope}:{id}", self.prefix)
    }
    /// A value kept beside a session (its IdP grant, sealed).
    pub(crate) fn kept(&self, kind: &str, id: &str) -> String {
        format!("{}k:{kind}:{id}", self.prefix)
    }
    /// A lock with an owner (one re-check of a session at a time, on every replica).
    pub(crate) fn lock(&self, name: &str) -> String {
        format!("{}l:{name}", self.prefix)
    }
    /// The pub/sub channel revocations are pushed on.
    pub(crate) fn channel(&self) -> String {
        format!("{}events", self.prefix)
    }
}
