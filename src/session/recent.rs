//! The cookie values each worker thread opened last: the signed-in request's lookup.
//!
//! A browser sends its session cookie with every request of a page (its documents, scripts,
//! images, API calls) in bursts, and the proxy's worker threads each serve a share of them.
//! The opened-cookie cache (`Sessions::opened`, moka) is the bound and the truth; these few
//! slots per thread sit in front of it and answer a repeat without moka's hashing, read
//! recording and expiry clock. A slot holds the same `Opened` the cache holds, for the exact
//! cookie text (compared whole), for one `Sessions` (a reload's new manager has another
//! `owner`, so a rotated secret never meets an opening made under the old one), and for at
//! most `FRESH_SECS`; every check after the lookup (expiry, idle time, revocation, the store)
//! runs on each request as before.
//!
//! A presented value is compared byte by byte with another user's only when their keyed
//! hashes (of the authentication tag at the end, and the length) are equal, so how long a
//! comparison takes tells an attacker nothing about the cookies kept here.

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::{Opened, TailHash};

/// Slots per thread: a few users' bursts interleaved on one thread.
const SLOTS: usize = 4;
/// How long a slot answers before the cache is asked again (seconds).
const FRESH_SECS: u64 = 2;

/// A new owner id for a `Sessions`.
pub(super) fn new_owner() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The value's keyed hash, by the opened-cookie cache's own hasher (`TailHash`: the last 32
/// characters, the authentication tag that differs in every value sealed, and the length).
fn hash(sealed: &str) -> u64 {
    static KEY: OnceLock<TailHash> = OnceLock::new();
    KEY.get_or_init(TailHash::default).hash_one(sealed)
}

struct Slot {
    owner: u64,
    hash: u64,
    /// When the slot was filled (the `now` of `check`, seconds).
    at: u64,
    sealed: Box<str>,
    opened: Arc<Opened>,
}

struct Recent {
    slots: [Option<Slot>; SLOTS],
    /// The slot the next new value goes into (round robin).
    next: usize,
}

thread_local! {
    static RECENT: RefCell<Recent> = const {
        RefCell::new(Recent { slots: [const { None }; SLOTS], next: 0 })
    };
}

impl Slot {
    fn holds(&self, key: &Lookup<'_>) -> bool {
        self.owner == key.owner
            && self.hash == key.hash
            && self.sealed.as_bytes() == key.sealed.as_bytes()
    }
}

/// One presented value looked up in this thread's slots for one `Sessions` (`owner`) at `now`
/// (seconds), hashed once for the finding and the keeping.
pub(super) struct Lookup<'a> {
    owner: u64,
    sealed: &'a str,
    hash: u64,
    now: u64,
}

impl<'a> Lookup<'a> {
    pub(super) fn new(owner: u64, sealed: &'a str, now: u64) -> Self {
        Lookup {
            owner,
            sealed,
            hash: hash(sealed),
            now,
        }
    }

    /// The opening of the value this thread made or found for the owner in the last
    /// `FRESH_SECS`.
    pub(super) fn find(&self) -> Option<Arc<Opened>> {
        let fresh = |s: &&Slot| self.now >= s.at && self.now - s.at < FRESH_SECS;
        RECENT
            .try_with(|r| {
                let r = r.try_borrow().ok()?;
                let slot = r
                    .slots
                    .iter()
                    .flatten()
                    .filter(fresh)
                    .find(|s| s.holds(self))?;
                Some(slot.opened.clone())
            })
            .ok()
            .flatten()
    }

    /// Keeps `opened` (the cache's own entry for the value) for this thread's next requests.
    pub(super) fn keep(&self, opened: &Arc<Opened>) {
        let _ = RECENT.try_with(|r| {
            let Ok(mut r) = r.try_borrow_mut() else {
                return;
            };
            let at = r
                .slots
                .iter()
                .position(|s| s.as_ref().is_some_and(|s| s.holds(self)))
                .unwrap_or(r.next);
            if at == r.next {
                r.next = (r.next + 1) % SLOTS;
            }
            r.slots[at] = Some(Slot {
                owner: self.owner,
                hash: self.hash,
                at: self.now,
                sealed: self.sealed.into(),
                opened: opened.clone(),
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(owner: u64, sealed: &str, now: u64) -> Option<Arc<Opened>> {
        Lookup::new(owner, sealed, now).find()
    }

    fn keep(owner: u64, sealed: &str, opened: &Arc<Opened>, now: u64) {
        Lookup::new(owner, sealed, now).keep(opened)
    }

    fn opened() -> Arc<Opened> {
        Arc::new(Opened {
            held: super::super::Held {
                sid: "sid".into(),
                iat: 0,
                exp: 10,
            },
            seen: 0,
            idle: 10,
            identity: None,
            renewed: std::sync::Mutex::new(None),
            unrevoked_at: AtomicU64::new(0),
            loaded: arc_swap::ArcSwapOption::const_empty(),
        })
    }

    #[test]
    fn a_slot_answers_only_its_owner_its_exact_value_and_only_while_fresh() {
        let (me, other) = (new_owner(), new_owner());
        let o = opened();
        keep(me, "value-a", &o, 100);
        let found = find(me, "value-a", 101).expect("kept a second ago");
        assert!(Arc::ptr_eq(&found, &o), "the cache's own entry, not a copy");
        assert!(
            find(other, "value-a", 101).is_none(),
            "another manager's opening"
        );
        assert!(find(me, "value-b", 101).is_none());
        assert!(
            find(me, "value-", 101).is_none(),
            "a prefix is not the value"
        );
        assert!(find(me, "value-a\0", 101).is_none(), "nor a longer one");
        assert!(find(me, "value-a", 100 + FRESH_SECS).is_none(), "stale");
        assert!(find(me, "value-a", 99).is_none(), "a clock that went back");
        // Same tag and length (same hash), another value: still compared whole.
        let tag = "t".repeat(32);
        let (a, b) = (
            format!("{}{tag}", "x".repeat(40)),
            format!("{}{tag}", "y".repeat(40)),
        );
        keep(me, &a, &o, 100);
        assert!(find(me, &a, 100).is_some());
        assert!(
            find(me, &b, 100).is_none(),
            "a forged value sharing the tail"
        );
    }

    #[test]
    fn slots_are_bounded_and_a_value_kept_again_reuses_its_slot() {
        let me = new_owner();
        let o = opened();
        for i in 0..SLOTS {
            keep(me, &format!("v{i}"), &o, 5);
        }
        keep(me, "v0", &o, 6);
        assert!(find(me, "v0", 6).is_some());
        assert!(
            (1..SLOTS).all(|i| find(me, &format!("v{i}"), 6).is_some()),
            "keeping v0 again took no one else's slot"
        );
        keep(me, "new", &o, 6);
        let kept = (0..SLOTS)
            .filter(|i| find(me, &format!("v{i}"), 6).is_some())
            .count();
        assert_eq!(kept, SLOTS - 1, "a new value takes exactly one slot");
        assert!(find(me, "new", 6).is_some());
    }
}
