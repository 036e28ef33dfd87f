//! Values kept beside sessions (a session's IdP grant, sealed) and locks with an owner, in
//! Redis: one write replaces a value whole, and a lock is `SET NX` with an expiry, released
//! only by its owner (a script compares and deletes in one step).

use std::time::Duration;

use fred::prelude::*;

use super::{Keys, Link};
use crate::session::StoreError;

/// Deletes the lock only if it still holds the caller's owner token.
const UNLOCK: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis().max(1)).unwrap_or(i64::MAX)
}

pub(super) async fn keep(
    link: &Link,
    keys: &Keys,
    kind: &str,
    id: &str,
    value: String,
    ttl: Duration,
) -> Result<(), StoreError> {
    let (key, ttl) = (keys.kept(kind, id), millis(ttl));
    link.run("kept value write", move |r| async move {
        r.set::<(), _, _>(key, value, Some(Expiration::PX(ttl)), None, false)
            .await
    })
    .await
}

pub(super) async fn kept(
    link: &Link,
    keys: &Keys,
    kind: &str,
    id: &str,
) -> Result<Option<String>, StoreError> {
    let key = keys.kept(kind, id);
    link.run("kept value read", move |r| async move {
        r.get::<Option<String>, _>(key).await
    })
    .await
}

pub(super) async fn forget(
    link: &Link,
    keys: &Keys,
    kind: &str,
    id: &str,
) -> Result<(), StoreError> {
    let key = keys.kept(kind, id);
    link.run("kept value delete", move |r| async move {
        r.del::<(), _>(key).await
    })
    .await
}

pub(super) async fn lock(
    link: &Link,
    keys: &Keys,
    name: &str,
    owner: &str,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let (key, owner, ttl) = (keys.lock(name), owner.to_string(), millis(ttl));
    link.run("lock", move |r| async move {
        r.set::<Option<String>, _, _>(
            key,
            owner,
            Some(Expiration::PX(ttl)),
            Some(SetOptions::NX),
            false,
        )
        .await
        .map(|set| set.is_some())
    })
    .await
}

pub(super) async fn unlock(
    link: &Link,
    keys: &Keys,
    name: &str,
    owner: &str,
) -> Result<(), StoreError> {
    let (key, owner) = (keys.lock(name), owner.to_string());
    link.run("unlock", move |r| async move {
        // Through the pool (a connected client, which knows the cluster's slots: a client
        // that never connected cannot route a script by its key).
        match r
            .eval::<i64, _, _, _>(UNLOCK, vec![key.clone()], vec![owner.clone()])
            .await
        {
            Ok(_) => Ok(()),
            // Scripts refused or unroutable: compare, then delete. Not atomic, but the lock
            // is released right after its work, long before its TTL could hand it to another.
            Err(e) => {
                log::debug!("session store: unlock script refused ({e}); comparing, then deleting");
                let held: Option<String> = r.get(&key).await?;
                if held.as_deref() == Some(owner.as_str()) {
                    r.del::<(), _>(&key).await?;
                }
                Ok(())
            }
        }
    })
    .await
}
