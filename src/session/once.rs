//! Single-use values kept in this process (OIDC states, SAML assertion and logout request
//! ids): the stores without Redis use it; with Redis the check is shared by every replica.

use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

pub(super) struct LocalOnce {
    used: Cache<(String, String), Duration>,
}

/// Each value is remembered for its own TTL.
struct OwnTtl;

impl Expiry<(String, String), Duration> for OwnTtl {
    fn expire_after_create(
        &self,
        _key: &(String, String),
        ttl: &Duration,
        _created: Instant,
    ) -> Option<Duration> {
        Some(*ttl)
    }
}

impl Default for LocalOnce {
    fn default() -> Self {
        Self {
            used: Cache::builder()
                .max_capacity(1_000_000)
                .expire_after(OwnTtl)
                .build(),
        }
    }
}

impl LocalOnce {
    /// Marks `id` used in `scope` for `ttl`; `false` if it already was.
    pub(super) fn first_use(&self, scope: &str, id: &str, ttl: Duration) -> bool {
        let mut fresh = false;
        self.used
            .entry((scope.to_string(), id.to_string()))
            .or_insert_with(|| {
                fresh = true;
                ttl
            });
        fresh
    }
}
