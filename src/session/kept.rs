//! What the stores without Redis keep beside sessions in this process: values under a kind
//! and an id, each for its own time (a session's IdP grant), and locks with an owner.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

pub(super) struct LocalKept {
    values: Cache<(String, String), (String, Duration)>,
    locks: Mutex<HashMap<String, (String, Instant)>>,
}

/// Each value is kept for its own TTL.
struct OwnTtl;

impl Expiry<(String, String), (String, Duration)> for OwnTtl {
    fn expire_after_create(
        &self,
        _key: &(String, String),
        value: &(String, Duration),
        _created: Instant,
    ) -> Option<Duration> {
        Some(value.1)
    }
    fn expire_after_update(
        &self,
        _key: &(String, String),
        value: &(String, Duration),
        _updated: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.1)
    }
}

impl LocalKept {
    pub(super) fn new(max_entries: u64) -> Self {
        Self {
            values: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(OwnTtl)
                .build(),
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn keep(&self, kind: &str, id: &str, value: String, ttl: Duration) {
        self.values
            .insert((kind.to_string(), id.to_string()), (value, ttl));
    }

    pub(super) fn kept(&self, kind: &str, id: &str) -> Option<String> {
        self.values
            .get(&(kind.to_string(), id.to_string()))
            .map(|(v, _)| v)
    }

    pub(super) fn forget(&self, kind: &str, id: &str) {
        self.values.invalidate(&(kind.to_string(), id.to_string()));
    }

    /// Takes lock `name` for `owner` until `ttl` from now; `false` if someone else holds it.
    pub(super) fn lock(&self, name: &str, owner: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, (_, until)| *until > now);
        match locks.get(name) {
            Some((held_by, _)) if held_by != owner => false,
            _ => {
                locks.insert(name.to_string(), (owner.to_string(), now + ttl));
                true
            }
        }
    }

    /// Releases lock `name` if `owner` still holds it.
    pub(super) fn unlock(&self, name: &str, owner: &str) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks.get(name).is_some_and(|(held_by, _)| held_by == owner) {
            locks.remove(name);
        }
    }
}
