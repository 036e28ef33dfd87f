//! Upgraded connections (websockets) watch their session: once it is revoked (sign-out, the
//! admin API, SCIM, a logout channel, a failed re-check; here or, pushed, on another replica)
//! or runs out, the connection is closed within `SWEEP`, even while idle.
//!
//! Each watched connection holds a receiver; one sweeper task per process checks every watched
//! session against the same local, in-memory tests the hot path uses (no store round trip)
//! and says `true` to those that ended. A connection that closed on its own drops its receiver
//! and leaves the list at the next sweep.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::lifecycle::Held;
use super::store::{Clock, SessionStore};
use crate::identity::Identity;

/// How often watched sessions are checked.
pub(super) const SWEEP: Duration = Duration::from_millis(250);

struct Watched {
    held: Held,
    identity: Arc<Identity>,
    tell: watch::Sender<bool>,
}

#[derive(Default)]
pub(super) struct Watchers {
    list: Mutex<Vec<Watched>>,
    sweeping: std::sync::atomic::AtomicBool,
}

impl Watchers {
    /// A receiver that turns `true` when the session `held` of `identity` ends.
    pub(super) fn watch(
        self: &Arc<Self>,
        store: &Arc<dyn SessionStore>,
        clock: &Clock,
        held: &Held,
        identity: &Arc<Identity>,
    ) -> watch::Receiver<bool> {
        let (tell, rx) = watch::channel(false);
        self.lock().push(Watched {
            held: held.clone(),
            identity: identity.clone(),
            tell,
        });
        if !self
            .sweeping
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            let (this, store, clock) = (Arc::downgrade(self), store.clone(), clock.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SWEEP);
                loop {
                    tick.tick().await;
                    let Some(this) = this.upgrade() else { return };
                    this.sweep(&*store, clock());
                }
            });
        }
        rx
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Watched>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the ended sessions' connections, and forgets those and the closed ones.
    fn sweep(&self, store: &dyn SessionStore, now: u64) {
        self.lock().retain(|w| {
            if w.tell.is_closed() {
                return false;
            }
            let ended = now >= w.held.exp
                || store.is_revoked(&w.held.sid)
                || store.is_ended(&w.identity, w.held.iat);
            if ended {
                log::info!(
                    "closing an upgraded connection of {} with {}: its session ended",
                    w.identity.user,
                    w.identity.provider
                );
                let _ = w.tell.send(true);
            }
            !ended
        });
    }
}
