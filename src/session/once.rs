//! Single-use values kept in this process (OIDC states, SAML assertion and logout request
//! ids): the stores without Redis use it; with Redis the check is shared by every replica.
//!
//! Not a cache: an entry must never be dropped before its time, or the value it stands for
//! could be used twice. So it is a set that refuses (the caller answers "try again") when it
//! is full, where a cache would evict. Each value is kept as a 16-byte digest of its scope
//! and text with a 4-byte expiry: ~24 bytes an entry, where a moka entry with two strings
//! as its key took ~450 (every sign-in keeps one for ten minutes).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shards: sign-ins on different threads rarely wait on one another.
const SHARDS: usize = 16;

/// At most this many values at once (a million sign-ins within ten minutes).
const MAX_VALUES: usize = 1_000_000;

/// The set is full: nothing more can be marked used until older values expire.
#[derive(Debug, thiserror::Error)]
#[error("the single-use set holds {MAX_VALUES} values, none expired yet")]
pub(super) struct Full;

pub(super) struct LocalOnce {
    shards: Box<[Mutex<Shard>]>,
    hasher: ahash::RandomState,
    /// Expiries count whole seconds from here.
    start: Instant,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    /// Digest → the second (from `start`) from which the value may be used again.
    used: HashMap<[u8; 16], u32, ahash::RandomState>,
    /// Expired entries are swept when the shard reaches this many (then twice what is
    /// left): each sweep is paid for by as many inserts as it looks at.
    sweep_at: usize,
}

impl Default for LocalOnce {
    fn default() -> Self {
        Self::with_capacity(MAX_VALUES)
    }
}

impl LocalOnce {
    fn with_capacity(max: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: ahash::RandomState::new(),
            start: Instant::now(),
            per_shard: max.div_ceil(SHARDS).max(1),
        }
    }

    /// Marks `id` used in `scope` for at least `ttl`; `Ok(false)` if it already was.
    pub(super) fn first_use(&self, scope: &str, id: &str, ttl: Duration) -> Result<bool, Full> {
        let key = digest(scope, id);
        let now = self.start.elapsed();
        let now_s = u32::try_from(now.as_secs()).unwrap_or(u32::MAX);
        // Rounded up: a value is never forgotten before its TTL.
        let until =
            u32::try_from(now.saturating_add(ttl).as_secs().saturating_add(1)).unwrap_or(u32::MAX);
        let shard = usize::try_from(self.hasher.hash_one(key)).unwrap_or(0) % SHARDS;
        // A poisoned lock only means another thread panicked while holding it; the set
        // itself is never left half-changed by these operations.
        let mut shard = self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(&exp) = shard.used.get(&key) {
            if exp > now_s {
                return Ok(false);
            }
        }
        if shard.used.len() >= shard.sweep_at.max(1024) || shard.used.len() >= self.per_shard {
            shard.used.retain(|_, exp| *exp > now_s);
            shard.sweep_at = shard.used.len() * 2;
            if shard.used.capacity() > 4 * shard.used.len().max(1024) {
                shard.used.shrink_to_fit();
            }
            if shard.used.len() >= self.per_shard {
                return Err(Full);
            }
        }
        shard.used.insert(key, until);
        Ok(true)
    }
}

/// The first 16 bytes of SHA-256(length of scope, scope, id): no scope and value pair spells
/// another. A collision could only make a fresh value look used (a refused sign-in), never
/// let a used one through.
fn digest(scope: &str, id: &str) -> [u8; 16] {
    let mut h = openssl::sha::Sha256::new();
    h.update(&(scope.len() as u64).to_le_bytes());
    h.update(scope.as_bytes());
    h.update(id.as_bytes());
    let full = h.finish();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_value_is_used_once_per_scope() {
        let once = LocalOnce::default();
        assert!(once.first_use("state", "abc", MIN).unwrap());
        assert!(!once.first_use("state", "abc", MIN).unwrap());
        assert!(once.first_use("assertion", "abc", MIN).unwrap());
        // The scope and the value are kept apart: "a" + "bc" is not "ab" + "c".
        assert!(once.first_use("stat", "eabc", MIN).unwrap());
        assert!(once.first_use("a\0", "b", MIN).unwrap());
        assert!(once.first_use("a", "\0b", MIN).unwrap());
        assert!(once.first_use("", "", MIN).unwrap());
        assert!(!once.first_use("", "", MIN).unwrap());
        // Values of any size and bytes are taken once, and the set keeps only their digest.
        let big = "\u{202e}x".repeat(100_000);
        assert!(once.first_use("state", &big, MIN).unwrap());
        assert!(!once.first_use("state", &big, MIN).unwrap());
        assert!(once.first_use("state", &big[..big.len() - 1], MIN).unwrap());
        // A TTL past what the set can count is kept for good, never wrapped into the past.
        assert!(once.first_use("state", "forever", Duration::MAX).unwrap());
        assert!(!once.first_use("state", "forever", MIN).unwrap());
    }

    #[test]
    fn a_full_set_refuses_and_never_forgets_a_live_value() {
        let once = LocalOnce::with_capacity(SHARDS * 2);
        let mut taken = Vec::new();
        let mut refused = 0;
        for i in 0..SHARDS * 8 {
            let id = format!("v{i}");
            match once.first_use("state", &id, MIN) {
                Ok(fresh) => {
                    assert!(fresh, "{id} is new");
                    taken.push(id);
                }
                Err(Full) => refused += 1,
            }
        }
        assert!(refused > 0, "the bound holds");
        assert!(taken.len() <= SHARDS * 2, "{} kept", taken.len());
        for id in &taken {
            assert!(
                !once.first_use("state", id, MIN).unwrap(),
                "{id} still counts as used when the set is full"
            );
        }
    }

    #[test]
    fn expired_values_are_swept_and_make_room() {
        let once = LocalOnce::with_capacity(SHARDS * 4);
        let mut taken = Vec::new();
        let mut refused = None;
        for i in 0..SHARDS * 16 {
            let id = format!("v{i}");
            match once.first_use("state", &id, Duration::ZERO) {
                Ok(fresh) => {
                    assert!(fresh, "{id} is new");
                    taken.push(id);
                }
                Err(Full) => {
                    refused = Some(id);
                    break;
                }
            }
        }
        let refused = refused.expect("the set filled up");
        std::thread::sleep(Duration::from_millis(1100));
        // Each value's second has passed: the refused value fits now, and none of the others
        // counts as used any more (one shard may be full again with the refused value in it).
        assert_eq!(once.first_use("state", &refused, MIN).ok(), Some(true));
        let mut again = 0;
        for id in &taken {
            match once.first_use("state", id, MIN) {
                Ok(fresh) => {
                    assert!(fresh, "{id} expired");
                    again += 1;
                }
                Err(Full) => {}
            }
        }
        assert!(again + 4 >= taken.len(), "{again} of {}", taken.len());
    }
}
