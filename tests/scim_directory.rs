//! One conformance suite for the SCIM directory on every backend it runs on: in this
//! process, and on real Redis standalone and Cluster. Unique indexes (claimed before the
//! write, released after), group names for tokens, tombstones, first-sign-in marks, and
//! what a corrupted record in Redis comes to (ignored, never a crash).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use authgate::scim::directory::{DirError, Directory, Kind, Kv, MemoryKv};
use authgate::scim::redis_kv::RedisKv;
use common::redis::{start_cluster, start_standalone, Redis};
use serde_json::json;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn conformance(dir: &Directory) {
    let alice = json!({"userName": "Alice@Contoso.example", "externalId": "oid-a", "active": true});
    dir.put(Kind::User, "u1", &alice, None).await.unwrap();
    assert_eq!(
        dir.get(Kind::User, "u1").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        dir.lookup(Kind::User, "userName", "alice@contoso.EXAMPLE")
            .await
            .unwrap()
            .as_deref(),
        Some("u1")
    );
    assert_eq!(
        dir.lookup(Kind::User, "externalid", "OID-A")
            .await
            .unwrap()
            .as_deref(),
        Some("u1")
    );
    assert_eq!(
        dir.lookup(Kind::User, "displayName", "x").await.unwrap(),
        None,
        "not an index"
    );
    // The same userName or externalId for someone else: refused, nothing half-written.
    let clash = json!({"userName": "bob@contoso.example", "externalId": "oid-a"});
    assert!(matches!(
        dir.put(Kind::User, "u2", &clash, None).await,
        Err(DirError::Conflict("User", "externalId"))
    ));
    assert_eq!(
        dir.lookup(Kind::User, "userName", "bob@contoso.example")
            .await
            .unwrap(),
        None,
        "claim released"
    );
    assert!(dir.get(Kind::User, "u2").await.unwrap().is_none());
    // Renamed: the old name is free, the new one found; writing the same again is fine.
    let renamed =
        json!({"userName": "alice.new@contoso.example", "externalId": "oid-a", "active": false});
    dir.put(Kind::User, "u1", &renamed, Some(&alice))
        .await
        .unwrap();
    dir.put(Kind::User, "u1", &renamed, Some(&renamed))
        .await
        .unwrap();
    assert_eq!(
        dir.lookup(Kind::User, "userName", "alice@contoso.example")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        dir.lookup(Kind::User, "userName", "alice.new@contoso.example")
            .await
            .unwrap()
            .as_deref(),
        Some("u1")
    );
    let bob = json!({"userName": "alice@contoso.example", "externalId": "oid-b"});
    dir.put(Kind::User, "u2", &bob, None).await.unwrap();
    assert_eq!(dir.ids(Kind::User).await.unwrap(), ["u1", "u2"]);
    assert_eq!(dir.count(Kind::User).await.unwrap(), 2);
    assert_eq!(
        dir.get_many(Kind::User, &["u2".into(), "nope".into(), "u1".into()])
            .await
            .unwrap(),
        vec![bob.clone(), renamed.clone()]
    );

    // Groups: the name tokens' group IDs get, following renames and deletes.
    let g = json!({"displayName": "Sales", "externalId": "G-1"});
    dir.put(Kind::Group, "g1", &g, None).await.unwrap();
    assert_eq!(
        dir.group_names(&["g-1", "g-2"]).await.unwrap(),
        vec![Some("Sales".to_string()), None]
    );
    let g2 = json!({"displayName": "Sales EMEA", "externalId": "g-1"});
    dir.put(Kind::Group, "g1", &g2, Some(&g)).await.unwrap();
    assert_eq!(
        dir.group_names(&["G-1"]).await.unwrap(),
        vec![Some("Sales EMEA".to_string())]
    );
    assert!(matches!(
        dir.put(
            Kind::Group,
            "g2",
            &json!({"displayName": "sales emea"}),
            None
        )
        .await,
        Err(DirError::Conflict("Group", "displayName"))
    ));
    assert_eq!(dir.delete(Kind::Group, "g1").await.unwrap(), Some(g2));
    assert_eq!(dir.group_names(&["g-1"]).await.unwrap(), vec![None]);
    assert_eq!(
        dir.lookup(Kind::Group, "displayName", "Sales EMEA")
            .await
            .unwrap(),
        None
    );
    assert_eq!(dir.delete(Kind::Group, "g1").await.unwrap(), None);

    // Deleted users: indexes released, tombstones as told.
    dir.delete(Kind::User, "u2").await.unwrap();
    assert_eq!(
        dir.lookup(Kind::User, "externalId", "oid-b").await.unwrap(),
        None
    );
    assert_eq!(dir.ids(Kind::User).await.unwrap(), ["u1"]);
    dir.set_tombstone("x", "OID-B", true).await.unwrap();
    assert!(dir.tombstoned("x", "oid-b").await.unwrap());
    assert!(
        !dir.tombstoned("un", "oid-b").await.unwrap(),
        "per attribute"
    );
    dir.set_tombstone("x", "oid-b", false).await.unwrap();
    assert!(!dir.tombstoned("x", "oid-b").await.unwrap());
    // First sign-in marks: once.
    let k = Directory::seen_key("entra", "oid-a");
    assert!(dir.mark(k.clone()).await.unwrap());
    assert!(!dir.mark(k.clone()).await.unwrap());
    dir.unmark(k.clone()).await.unwrap();
    assert!(dir.mark(k).await.unwrap());
}

#[test]
fn the_directory_in_memory() {
    let dir = Directory::new(Arc::new(MemoryKv::default()));
    assert_eq!(dir.kind(), "memory");
    rt().block_on(conformance(&dir));
}

fn ready(redis: &Redis, prefix: &str) -> Arc<RedisKv> {
    let kv = RedisKv::connect(&redis.config(prefix)).expect("redis");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !kv.healthy() {
        assert!(Instant::now() < deadline, "{} Redis not ready", redis.kind);
        std::thread::sleep(Duration::from_millis(20));
    }
    Arc::new(kv)
}

#[test]
fn the_directory_on_redis_standalone_and_what_a_corrupt_record_comes_to() {
    let redis = start_standalone();
    let kv = ready(&redis, "dir:");
    let dir = Directory::new(kv.clone() as Arc<dyn Kv>);
    assert_eq!(dir.kind(), "redis");
    rt().block_on(conformance(&dir));
    // Someone with Redis access writes garbage into a user record: ignored and logged.
    redis.servers[0].cli(&["SET", "dir:scim:u:u1", "{not json"]);
    redis.servers[0].cli(&["SET", "dir:scim:u:u9", "[1,2]"]);
    redis.servers[0].cli(&["SADD", "dir:scim:us", "u9"]);
    rt().block_on(async {
        assert!(dir.get(Kind::User, "u1").await.unwrap().is_none());
        let ids = dir.ids(Kind::User).await.unwrap();
        assert!(dir.get_many(Kind::User, &ids).await.unwrap().is_empty());
    });
    // Keys live under the configured prefix only.
    let all = redis.servers[0].cli(&["DBSIZE"]);
    let ours = redis.servers[0].cli(&["EVAL", "return #redis.call('KEYS', 'dir:scim:*')", "0"]);
    assert_eq!(all.trim(), ours.trim());
    assert!(all.trim().parse::<u32>().unwrap() > 3, "{all}");
}

#[test]
fn the_directory_on_redis_cluster() {
    let redis = start_cluster();
    let dir = Directory::new(ready(&redis, "cl:") as Arc<dyn Kv>);
    rt().block_on(conformance(&dir));
}
