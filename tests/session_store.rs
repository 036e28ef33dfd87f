//! One conformance suite for every `SessionStore` implementation (the in-memory and cookie
//! stores now; a shared store such as Redis must pass the same functions before it ships),
//! with a clock the suite moves forward.
//!
//! - `storage`: stores that keep identities (memory): save, load, overwrite, remove, ids,
//!   expiry;
//! - `revocation`: every store, through the session manager the proxy uses: one session,
//!   all of a user's sessions ("sessions issued until T are void"), sessions ended by their
//!   IdP, listing a user's sessions, and expiry on the moved clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authgate::config::{Secret, SessionConfig, StoreKind};
use authgate::identity::Identity;
use authgate::session::{
    Check, Clock, CookieStore, MemoryStore, Rejection, SessionStore, Sessions, StoreError,
};

/// A clock the suite moves: starts at a fixed, realistic time.
fn clock() -> (Clock, Arc<AtomicU64>) {
    let t = Arc::new(AtomicU64::new(1_800_000_000));
    let read = t.clone();
    (Arc::new(move || read.load(Ordering::SeqCst)), t)
}

fn identity(user: &str) -> Identity {
    Identity {
        provider: "p".into(),
        user: user.into(),
        groups: authgate::identity::List::from(["g"]),
        ..Default::default()
    }
}

async fn storage(store: &dyn SessionStore, time: &AtomicU64) {
    assert!(store.keeps_identities());
    let alice = Arc::new(identity("alice"));
    assert!(
        store.load("nope").await.unwrap().is_none(),
        "unknown id loads nothing"
    );
    store
        .save("s1", alice.clone(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.load("s1").await.unwrap().as_deref(), Some(&*alice));
    // Overwrite.
    let bob = Arc::new(Identity {
        user: "bob".into(),
        ..(*alice).clone()
    });
    store
        .save("s1", bob.clone(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.load("s1").await.unwrap().unwrap().user, "bob");
    // Independent keys; remove is idempotent.
    store
        .save("s2", alice.clone(), Duration::from_secs(60))
        .await
        .unwrap();
    store.remove("s1").await.unwrap();
    store.remove("s1").await.unwrap();
    assert!(store.load("s1").await.unwrap().is_none());
    assert_eq!(store.load("s2").await.unwrap().unwrap().user, "alice");
    // Real ids are 24 characters; ids that share a prefix are different sessions; an id
    // longer than any the gateway makes loads nothing.
    let real = "Qk3xv9_TnRz0aB-1cD2eF3gH";
    store
        .save(real, bob.clone(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.load(real).await.unwrap().unwrap().user, "bob");
    assert!(store.load(&real[..23]).await.unwrap().is_none());
    assert!(store.load(&"x".repeat(300)).await.unwrap().is_none());
    // A zero TTL is expired at once.
    store
        .save("s3", alice.clone(), Duration::ZERO)
        .await
        .unwrap();
    assert!(
        store.load("s3").await.unwrap().is_none(),
        "expired entries do not load"
    );
    // Expiry follows the clock: alive one second before its TTL, gone at it.
    store
        .save("s4", alice.clone(), Duration::from_secs(30))
        .await
        .unwrap();
    time.fetch_add(29, Ordering::SeqCst);
    assert!(
        store.load("s4").await.unwrap().is_some(),
        "alive before its TTL"
    );
    time.fetch_add(1, Ordering::SeqCst);
    assert!(store.load("s4").await.unwrap().is_none(), "gone at its TTL");
    // Revoking one id ends it and hands back what was held; the id stays void.
    store
        .save("s5", alice.clone(), Duration::from_secs(60))
        .await
        .unwrap();
    let held = store.revoke("s5").await.unwrap();
    assert_eq!(held.as_deref().map(|i| i.user.as_str()), Some("alice"));
    assert!(store.load("s5").await.unwrap().is_none());
    assert!(store.is_revoked("s5") && !store.is_revoked("s2"));
}

fn session_config(store: StoreKind) -> SessionConfig {
    SessionConfig {
        cookie_name: "sess".into(),
        lifetime: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(1800),
        secure: true,
        secret: Secret("k".repeat(32)),
        store,
        max_sessions: 1000,
    }
}

fn is_valid(c: &Check, user: &str) -> bool {
    matches!(c, Check::Valid { identity, .. } if identity.user == user)
}

async fn revocation(kind: StoreKind, make: impl Fn(Clock) -> Arc<dyn SessionStore>) {
    let (clock, time) = clock();
    let store = make(clock.clone());
    let sessions = Sessions::with_store(session_config(kind), store.clone(), clock).unwrap();
    let now = || time.load(Ordering::SeqCst);
    let saml_alice = Identity {
        name_id: Some("alice@idp".into()),
        session_index: Some("idx-1".into()),
        ..identity("alice")
    };
    let a1 = sessions.create(identity("alice")).await.unwrap();
    let a2 = sessions.create(saml_alice.clone()).await.unwrap();
    let b1 = sessions.create(identity("bob")).await.unwrap();
    let other_provider = sessions
        .create(Identity {
            provider: "q".into(),
            ..identity("alice")
        })
        .await
        .unwrap();
    for (c, user) in [(&a1, "alice"), (&a2, "alice"), (&b1, "bob")] {
        assert!(
            is_valid(&sessions.check(c, now()).await, user),
            "{user} signed in"
        );
    }

    // Listing: the stores that hold sessions list exactly the user's live ones.
    match store.sessions_of("p", "alice").await {
        Ok(list) => {
            assert_eq!(list.len(), 2, "{list:?}");
            assert!(list.iter().all(|s| s.expires > now()));
        }
        Err(StoreError::Unsupported(..)) => assert!(!store.keeps_identities()),
        Err(e) => panic!("{e}"),
    }

    // One session: revoked, and the copy of its cookie with it; the others stand.
    let revoked = sessions.revoke(&a1).await.map(|i| i.user);
    assert_eq!(revoked.as_deref(), Some("alice"));
    assert!(matches!(
        sessions.check(&a1, now()).await,
        Check::Rejected(Rejection::Revoked)
    ));
    assert!(is_valid(&sessions.check(&a2, now()).await, "alice"));

    // Ended by the IdP (SAML logout), by NameID and SessionIndex: only that subject.
    time.fetch_add(5, Ordering::SeqCst);
    sessions.end_by_idp("p", "someone-else@idp", &[], now());
    assert!(is_valid(&sessions.check(&a2, now()).await, "alice"));
    sessions.end_by_idp("p", "alice@idp", &["idx-2".into()], now());
    assert!(
        is_valid(&sessions.check(&a2, now()).await, "alice"),
        "another SessionIndex"
    );
    sessions.end_by_idp("p", "alice@idp", &["idx-1".into()], now());
    assert!(matches!(
        sessions.check(&a2, now()).await,
        Check::Rejected(Rejection::Revoked)
    ));

    // Every session of a user, wherever the cookies are: issued until now are void; other
    // users, the same user name at another provider, and sessions issued later stand.
    let a3 = sessions.create(identity("alice")).await.unwrap();
    let removed = sessions.revoke_user("p", "alice", now()).await.unwrap();
    if store.keeps_identities() {
        // a3, and a2 (void since its IdP ended it, but still held until now).
        assert_eq!(removed, 2, "alice's stored sessions at this provider");
    } else {
        assert_eq!(removed, 0, "the cookie store holds none");
    }
    assert!(matches!(
        sessions.check(&a3, now()).await,
        Check::Rejected(Rejection::Revoked | Rejection::Unknown)
    ));
    assert!(is_valid(&sessions.check(&b1, now()).await, "bob"));
    assert!(is_valid(
        &sessions.check(&other_provider, now()).await,
        "alice"
    ));
    time.fetch_add(1, Ordering::SeqCst);
    let a4 = sessions.create(identity("alice")).await.unwrap();
    assert!(
        is_valid(&sessions.check(&a4, now()).await, "alice"),
        "signed in again after the revocation"
    );
    if let Ok(list) = store.sessions_of("p", "alice").await {
        assert_eq!(list.len(), 1, "only the new session: {list:?}");
    }

    // Expiry on the moved clock: the ticket's absolute lifetime.
    time.fetch_add(3600, Ordering::SeqCst);
    assert!(matches!(
        sessions.check(&a4, now()).await,
        Check::Rejected(Rejection::Expired)
    ));
}

#[tokio::test]
async fn memory_store_conforms() {
    let (clock, time) = clock();
    let store = MemoryStore::with_clock(1000, Duration::from_secs(3600), clock);
    storage(&store, &time).await;
    revocation(StoreKind::Memory, |clock| {
        Arc::new(MemoryStore::with_clock(
            1000,
            Duration::from_secs(3600),
            clock,
        ))
    })
    .await;
}

#[tokio::test]
async fn cookie_store_conforms() {
    // It keeps no identities (they travel in the ticket): only the revocation suite applies.
    let store = CookieStore::new(Duration::from_secs(3600));
    assert!(!store.keeps_identities());
    assert!(store.load("any").await.unwrap().is_none());
    revocation(StoreKind::Cookie, |_| {
        Arc::new(CookieStore::new(Duration::from_secs(3600)))
    })
    .await;
}

#[tokio::test]
async fn memory_store_is_bounded() {
    let store = MemoryStore::new(100, Duration::from_secs(3600));
    let id = Arc::new(Identity::default());
    for i in 0..1000 {
        store
            .save(&format!("s{i}"), id.clone(), Duration::from_secs(60))
            .await
            .unwrap();
    }
    assert!(store.len() <= 100, "holds {} entries", store.len());
}
