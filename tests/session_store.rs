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

use authgate::identity::Identity;
use authgate::read::Secret;
use authgate::session::{
    Check, Clock, CookieStore, MemoryStore, Rejection, SessionStore, Sessions, StoreError,
};
use authgate::session::{SessionConfig, StoreKind};

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

/// `load`'s answer, after checking that `load_now` (the hot path's answer without waiting)
/// says the same whenever it answers.
async fn loaded(store: &dyn SessionStore, sid: &str) -> Option<Arc<Identity>> {
    let waited = store.load(sid).await.unwrap();
    if let Some(now) = store.load_now(sid) {
        assert_eq!(now, waited, "load_now and load disagree on {sid:?}");
    }
    waited
}

async fn storage(store: &dyn SessionStore, time: &AtomicU64) {
    assert!(store.keeps_identities());
    let alice = Arc::new(identity("alice"));
    assert!(
        loaded(store, "nope").await.is_none(),
        "unknown id loads nothing"
    );
    store
        .save(
            "s1",
            alice.clone(),
            time.load(Ordering::SeqCst),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(loaded(store, "s1").await.as_deref(), Some(&*alice));
    // Overwrite.
    let bob = Arc::new(Identity {
        user: "bob".into(),
        ..(*alice).clone()
    });
    store
        .save(
            "s1",
            bob.clone(),
            time.load(Ordering::SeqCst),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(&*loaded(store, "s1").await.unwrap().user, "bob");
    // Independent keys; remove is idempotent.
    store
        .save(
            "s2",
            alice.clone(),
            time.load(Ordering::SeqCst),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    store.remove("s1").await.unwrap();
    store.remove("s1").await.unwrap();
    assert!(loaded(store, "s1").await.is_none());
    assert_eq!(&*loaded(store, "s2").await.unwrap().user, "alice");
    // Real ids are 24 characters; ids that share a prefix are different sessions; an id
    // longer than any the gateway makes loads nothing.
    let real = "Qk3xv9_TnRz0aB-1cD2eF3gH";
    store
        .save(
            real,
            bob.clone(),
            time.load(Ordering::SeqCst),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(&*loaded(store, real).await.unwrap().user, "bob");
    assert!(loaded(store, &real[..23]).await.is_none());
    assert!(loaded(store, &"x".repeat(300)).await.is_none());
    // A zero TTL is expired at once.
    store
        .save(
            "s3",
            alice.clone(),
            time.load(Ordering::SeqCst),
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert!(
        loaded(store, "s3").await.is_none(),
        "expired entries do not load"
    );
    // Expiry follows the clock: alive one second before its TTL, gone at it.
    store
        .save(
            "s4",
            alice.clone(),
            time.load(Ordering::SeqCst),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    time.fetch_add(29, Ordering::SeqCst);
    assert!(loaded(store, "s4").await.is_some(), "alive before its TTL");
    time.fetch_add(1, Ordering::SeqCst);
    assert!(loaded(store, "s4").await.is_none(), "gone at its TTL");
    // Revoking one id ends it and hands back what was held; the id stays void.
    store
        .save(
            "s5",
            alice.clone(),
            time.load(Ordering::SeqCst),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let held = store.revoke("s5").await.unwrap();
    assert_eq!(held.as_deref().map(|i| &*i.user), Some("alice"));
    assert!(loaded(store, "s5").await.is_none());
    assert!(store.is_revoked("s5") && !store.is_revoked("s2"));
}

fn session_config(store: StoreKind) -> SessionConfig {
    SessionConfig {
        cookie_name: "sess".into(),
        lifetime: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(1800),
        lifecycle: Default::default(),
        secure: true,
        secret: Secret("k".repeat(32)),
        store,
        max_sessions: 1000,
        cookie_domain: None,
        redis: None,
    }
}

fn is_valid(c: &Check, user: &str) -> bool {
    matches!(c, Check::Valid { identity, .. } if &*identity.user == user)
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
    sessions
        .end_by_idp("p", "someone-else@idp", &[], now())
        .await
        .unwrap();
    assert!(is_valid(&sessions.check(&a2, now()).await, "alice"));
    sessions
        .end_by_idp("p", "alice@idp", &["idx-2".into()], now())
        .await
        .unwrap();
    assert!(
        is_valid(&sessions.check(&a2, now()).await, "alice"),
        "another SessionIndex"
    );
    sessions
        .end_by_idp("p", "alice@idp", &["idx-1".into()], now())
        .await
        .unwrap();
    assert!(matches!(
        sessions.check(&a2, now()).await,
        Check::Rejected(Rejection::Revoked)
    ));

    // Ended by the IdP's session alone (an OpenID logout token with only `sid`): that
    // session, whoever's; another session of the same subject stands.
    let oidc = |sid: &str| Identity {
        name_id: Some("dave-sub".into()),
        session_index: Some(sid.into()),
        ..identity("dave")
    };
    let d1 = sessions.create(oidc("sid-7")).await.unwrap();
    let d2 = sessions.create(oidc("sid-8")).await.unwrap();
    sessions
        .end_by_idp("p", "", &["sid-7".into()], now())
        .await
        .unwrap();
    assert!(matches!(
        sessions.check(&d1, now()).await,
        Check::Rejected(Rejection::Revoked)
    ));
    assert!(
        is_valid(&sessions.check(&d2, now()).await, "dave"),
        "another sid"
    );

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
    // Signed in again in the same second as the revocation: not born void.
    let a5 = sessions.create(identity("alice")).await.unwrap();
    assert!(
        is_valid(&sessions.check(&a5, now()).await, "alice"),
        "a session made after a revocation, in its second"
    );
    sessions.revoke(&a5).await.expect("revoked");
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
    assert!(loaded(&store, "any").await.is_none());
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
            .save(
                &format!("s{i}"),
                id.clone(),
                authgate::session::now_secs(),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
    }
    assert!(store.len() <= 100, "holds {} entries", store.len());
}

// ---- Redis: the same suite in each topology, then what only a shared store can do. ----

mod common;

use authgate::session::{system_clock, RedisStore};
use common::redis::{start_cluster, start_sentinel, start_standalone, Redis};
use std::time::Instant;

/// A key prefix no other test uses: tests share each Redis deployment's keyspace.
fn unique_prefix(what: &str) -> String {
    format!(
        "t{}:{what}:{}:",
        std::process::id(),
        authgate::session::random_token(6)
    )
}

/// A Redis store that answers (and receives pushes) before the suite starts. The wait
/// blocks this thread only: the store's I/O runs on a runtime of its own.
fn ready_store(redis: &Redis, prefix: &str, keeps: bool, clock: Clock) -> Arc<RedisStore> {
    let store = RedisStore::with_clock(
        &redis.config(prefix),
        Duration::from_secs(3600),
        keeps,
        clock,
    )
    .expect("redis store");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(store.healthy() && store.subscribed()) {
        assert!(Instant::now() < deadline, "{} Redis not ready", redis.kind);
        std::thread::sleep(Duration::from_millis(20));
    }
    Arc::new(store)
}

async fn single_use(store: &dyn SessionStore) {
    let ttl = Duration::from_secs(60);
    assert!(
        store.first_use("state", "abc", ttl).await.unwrap(),
        "first use"
    );
    assert!(
        !store.first_use("state", "abc", ttl).await.unwrap(),
        "second use refused"
    );
    assert!(
        store.first_use("assertion", "abc", ttl).await.unwrap(),
        "scopes are independent"
    );
    // Forgotten after its TTL (real time: Redis and moka expire on the wall clock).
    assert!(store
        .first_use("state", "short", Duration::from_secs(1))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        store
            .first_use("state", "short", Duration::from_secs(1))
            .await
            .unwrap(),
        "usable again once its TTL passed"
    );
}

/// Values kept beside sessions and locks with owners: `a` and `b` are two replicas of one
/// store (the same store for the local ones).
async fn kept_and_locks(a: &dyn SessionStore, b: &dyn SessionStore) {
    let ttl = Duration::from_secs(60);
    assert_eq!(
        a.kept("grant", "s1").await.unwrap(),
        None,
        "nothing kept yet"
    );
    a.keep("grant", "s1", "one".into(), ttl).await.unwrap();
    assert_eq!(b.kept("grant", "s1").await.unwrap().as_deref(), Some("one"));
    assert_eq!(
        b.kept("other", "s1").await.unwrap(),
        None,
        "kinds are independent"
    );
    // Replaced whole, by either replica.
    b.keep("grant", "s1", "two".into(), ttl).await.unwrap();
    assert_eq!(a.kept("grant", "s1").await.unwrap().as_deref(), Some("two"));
    a.forget("grant", "s1").await.unwrap();
    assert_eq!(b.kept("grant", "s1").await.unwrap(), None, "forgotten");
    // Gone after its TTL (wall clock).
    a.keep("grant", "s2", "short".into(), Duration::from_secs(1))
        .await
        .unwrap();
    // One owner at a time, across replicas; the owner may take it again; only the owner
    // releases it.
    assert!(
        a.lock("recheck:s1", "A", ttl).await.unwrap(),
        "A takes the lock"
    );
    assert!(
        !b.lock("recheck:s1", "B", ttl).await.unwrap(),
        "B cannot while A holds it"
    );
    assert!(
        b.lock("recheck:s2", "B", ttl).await.unwrap(),
        "locks are independent"
    );
    b.unlock("recheck:s1", "B").await.unwrap();
    assert!(
        !b.lock("recheck:s1", "B", ttl).await.unwrap(),
        "B cannot release A's lock"
    );
    a.unlock("recheck:s1", "A").await.unwrap();
    assert!(
        b.lock("recheck:s1", "B", ttl).await.unwrap(),
        "released by its owner"
    );
    // A lock whose holder died expires on its own.
    assert!(a
        .lock("recheck:s3", "A", Duration::from_millis(500))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        b.lock("recheck:s3", "B", ttl).await.unwrap(),
        "expired lock taken over"
    );
    assert_eq!(
        a.kept("grant", "s2").await.unwrap(),
        None,
        "kept value expired"
    );
}

#[tokio::test]
async fn memory_store_keeps_values_and_locks() {
    let store = MemoryStore::new(10, Duration::from_secs(3600));
    kept_and_locks(&store, &store).await;
    // The cookie store keeps nothing server-side, but still locks (for its own process).
    let cookie = CookieStore::new(Duration::from_secs(3600));
    assert!(cookie
        .keep("grant", "s", "v".into(), Duration::from_secs(9))
        .await
        .is_err());
    assert!(cookie.lock("l", "A", Duration::from_secs(9)).await.unwrap());
    assert!(!cookie.lock("l", "B", Duration::from_secs(9)).await.unwrap());
}

#[tokio::test]
async fn local_stores_single_use() {
    single_use(&MemoryStore::new(10, Duration::from_secs(3600))).await;
    single_use(&CookieStore::new(Duration::from_secs(3600))).await;
}

/// The conformance suite and the replica tests against one Redis deployment.
async fn redis_conforms(redis: &Redis) {
    let (clock, time) = clock();
    let store = ready_store(redis, &unique_prefix("storage"), true, clock);
    storage(&*store, &time).await;
    single_use(&*store).await;
    {
        let prefix = unique_prefix("kept");
        let a = ready_store(redis, &prefix, true, system_clock());
        let b = ready_store(redis, &prefix, true, system_clock());
        kept_and_locks(&*a, &*b).await;
    }
    for keeps in [true, false] {
        let prefix = unique_prefix("revocation");
        let kind = if keeps {
            StoreKind::Redis
        } else {
            StoreKind::Cookie
        };
        revocation(kind, |clock| {
            ready_store(redis, &prefix, keeps, clock) as Arc<dyn SessionStore>
        })
        .await;
        replicas(redis, keeps).await;
    }
}

/// Waits up to `limit` for `check` to hold; returns how long it took.
async fn within<F, Fut>(limit: Duration, what: &str, check: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Several replicas on one Redis (`keeps`: `store: redis`; otherwise the cookie store with
/// `revocation: redis`): a session made on one is good on the others; revoked on one, every
/// other refuses it within a second (each had it cached), and so does a replica started
/// after the revocation; a user revoked on one is refused everywhere; a single-use value
/// is taken by exactly one of many concurrent attempts across replicas.
async fn replicas(redis: &Redis, keeps: bool) {
    let prefix = unique_prefix("replicas");
    let kind = if keeps {
        StoreKind::Redis
    } else {
        StoreKind::Cookie
    };
    let replica = || {
        let store = ready_store(redis, &prefix, keeps, system_clock());
        (
            Sessions::with_store(session_config(kind), store.clone(), system_clock()).unwrap(),
            store,
        )
    };
    let now = authgate::session::now_secs;
    let ((a, sa), (b, _), (c, _)) = (replica(), replica(), replica());
    let alice = a.create(identity("alice")).await.unwrap();
    let bob = a.create(identity("bob")).await.unwrap();
    for s in [&a, &b, &c] {
        assert!(
            is_valid(&s.check(&alice, now()).await, "alice"),
            "{} keeps={keeps}",
            redis.kind
        );
    }
    // Signed out on C: A and B, which have it cached, refuse it within a second.
    c.revoke(&alice).await.expect("revoked");
    for (name, s) in [("A", &a), ("B", &b)] {
        let took = within(
            Duration::from_secs(1),
            &format!("replica {name} refuses"),
            || async { matches!(s.check(&alice, now()).await, Check::Rejected(_)) },
        )
        .await;
        eprintln!(
            "{} keeps={keeps}: replica {name} refused a revoked session after {took:?}",
            redis.kind
        );
    }
    // A replica that started after the revocation never saw the push: Redis tells it.
    let (d, _) = replica();
    assert!(
        matches!(d.check(&alice, now()).await, Check::Rejected(_)),
        "late replica"
    );
    // A user's every session, revoked on B, is refused on A, C and D; bob is not.
    let alice2 = a.create(identity("alice")).await.unwrap();
    for s in [&b, &c, &d] {
        assert!(is_valid(&s.check(&alice2, now()).await, "alice"));
    }
    b.revoke_user("p", "alice", now()).await.unwrap();
    for s in [&a, &c, &d] {
        within(
            Duration::from_secs(1),
            "user revoked everywhere",
            || async { matches!(s.check(&alice2, now()).await, Check::Rejected(_)) },
        )
        .await;
        assert!(
            is_valid(&s.check(&bob, now()).await, "bob"),
            "other users stand"
        );
    }
    // Ended by its IdP (SAML logout) through one replica: the others refuse it too.
    let saml = Identity {
        name_id: Some("carol@idp".into()),
        session_index: Some("idx-9".into()),
        ..identity("carol")
    };
    let carol = a.create(saml).await.unwrap();
    for s in [&b, &d] {
        assert!(is_valid(&s.check(&carol, now()).await, "carol"));
    }
    c.end_by_idp("p", "carol@idp", &["idx-9".into()], now())
        .await
        .unwrap();
    for s in [&a, &b, &d] {
        within(Duration::from_secs(1), "IdP logout everywhere", || async {
            matches!(s.check(&carol, now()).await, Check::Rejected(_))
        })
        .await;
    }
    // Ended by its IdP session alone (`sid`, an OpenID logout token): everywhere too.
    let oidc = Identity {
        name_id: Some("erin-sub".into()),
        session_index: Some("sid-erin".into()),
        ..identity("erin")
    };
    let erin = a.create(oidc).await.unwrap();
    assert!(is_valid(&d.check(&erin, now()).await, "erin"));
    b.end_by_idp("p", "", &["sid-erin".into()], now())
        .await
        .unwrap();
    for s in [&a, &c, &d] {
        within(Duration::from_secs(1), "sid logout everywhere", || async {
            matches!(s.check(&erin, now()).await, Check::Rejected(_))
        })
        .await;
    }
    // One winner among concurrent takes of one value on different replicas.
    let stores: Vec<Arc<RedisStore>> = (0..3)
        .map(|_| ready_store(redis, &prefix, keeps, system_clock()))
        .collect();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let s = stores[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            s.first_use("state", "contested", Duration::from_secs(60))
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one replica takes a single-use value");
    assert!(sa.healthy());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_standalone_conforms() {
    redis_conforms(&start_standalone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_conforms() {
    let redis = start_cluster();
    redis_conforms(&redis).await;
    // The keys really are spread over the masters (not all on one node).
    let holding = redis
        .servers
        .iter()
        .filter(|s| s.cli(&["dbsize"]).trim().parse::<u64>().unwrap_or(0) > 0)
        .count();
    assert!(holding >= 2, "keys on {holding} of 3 masters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_conforms() {
    redis_conforms(&start_sentinel()).await;
}

/// What lies in Redis is input too: a session record that does not parse, one of the wrong
/// shape, and pushes on the revocation channel that are not ours. Each is "no session" or
/// ignored (with a log line), never a crash or a pass; a well-formed push still works after
/// them (whoever can write to Redis can revoke: the README calls Redis a trust boundary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_redis_records_and_pushes() {
    let redis = start_standalone();
    let prefix = unique_prefix("hostile");
    let port = redis.servers[0].port;
    let make = || {
        let store = ready_store(&redis, &prefix, true, system_clock());
        Sessions::with_store(session_config(StoreKind::Redis), store, system_clock()).unwrap()
    };
    let (a, b) = (make(), make());
    let now = authgate::session::now_secs;
    let sid_of = |s: &Sessions, cookie: &str| {
        s.sealer()
            .open::<authgate::session::Ticket>("sess", cookie)
            .expect("ticket")
            .sid
    };
    let records = [
        "not json",
        "{}",
        "{\"id\": 5, \"iat\": 1, \"exp\": 99999999999}",
        "{\"id\": {\"provider\": \"p\"}, \"iat\": \"x\", \"exp\": 1}",
        "[1,2,3]",
        "",
    ];
    for raw in records {
        let cookie = a.create(identity("alice")).await.unwrap();
        let key = format!("{prefix}s:{}", sid_of(&a, &cookie));
        common::redis::cli(port, &["set", &key, raw]);
        // B has never read it: it reads the record from Redis.
        assert!(
            matches!(
                b.check(&cookie, now()).await,
                Check::Rejected(Rejection::Unknown)
            ),
            "record {raw:?} is no session"
        );
    }
    let good = a.create(identity("bob")).await.unwrap();
    assert!(is_valid(&b.check(&good, now()).await, "bob"));
    let channel = format!("{prefix}events");
    let big = "x".repeat(100_000);
    for push in [
        "not json",
        "{\"k\":\"sid\"}",
        "{\"k\":\"user\",\"p\":1,\"u\":[],\"at\":\"now\"}",
        "{\"k\":\"unknown\",\"sid\":\"x\"}",
        big.as_str(),
    ] {
        common::redis::cli(port, &["publish", &channel, push]);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        is_valid(&a.check(&good, now()).await, "bob"),
        "junk pushes change nothing"
    );
    assert!(is_valid(&b.check(&good, now()).await, "bob"));
    // A well-formed push still arrives and is applied by every store.
    let push = format!("{{\"k\":\"sid\",\"sid\":\"{}\"}}", sid_of(&a, &good));
    common::redis::cli(port, &["publish", &channel, &push]);
    for s in [&a, &b] {
        within(
            Duration::from_secs(1),
            "a pushed revocation applies",
            || async {
                matches!(
                    s.check(&good, now()).await,
                    Check::Rejected(Rejection::Revoked)
                )
            },
        )
        .await;
    }
}
