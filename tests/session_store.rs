//! One conformance suite for every `SessionStore` implementation (the in-memory store now; a
//! shared store such as Redis must pass the same function before it ships).

use std::sync::Arc;
use std::time::Duration;

use authgate::identity::Identity;
use authgate::session::{MemoryStore, SessionStore};

async fn conformance(store: &dyn SessionStore) {
    let alice = Arc::new(Identity {
        provider: "p".into(),
        user: "alice".into(),
        groups: authgate::identity::List::from(["g"]),
        ..Default::default()
    });
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
}

#[tokio::test]
async fn memory_store_conforms() {
    conformance(&MemoryStore::new(1000, Duration::from_secs(3600))).await;
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
