//! Micro-benchmarks of the hot path pieces: a request with a valid session pays for route
//! matching, the canonical request reading, header stripping, opening the sealed cookie, and injecting
//! identity headers, and the route's policy decision. Run: cargo bench --bench hot_path

use std::hint::black_box;
use std::time::Duration;

use authgate::canonical::{self, Exceptions};
use authgate::headers::HeaderNames;
use authgate::headers::HeaderPlan;
use authgate::identity::Identity;
use authgate::policy::{self, Policy};
use authgate::read::Secret;
use authgate::route::RouteTable;
use authgate::route::{RouteConfig, Upstream};
use authgate::session::{now_secs, Sessions, Ticket};
use authgate::session::{SessionConfig, StoreKind};
use criterion::{criterion_group, criterion_main, Criterion};
use pingora::http::RequestHeader;

fn identity() -> Identity {
    Identity {
        provider: "entra".into(),
        user: "00000000-0000-0000-66f3-3332eca7ea81".into(),
        email: Some("alice@contoso.example".into()),
        name: Some("Alice Example".into()),
        tenant: Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into()),
        groups: (0..20)
            .map(|i| format!("6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1{i:02}"))
            .collect(),
        roles: ["Reader", "Admin"].into(),
        ..Default::default()
    }
}

fn header_names() -> HeaderNames {
    HeaderNames::default()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // What the harness itself costs (block_on): subtract it from session_check.
    c.bench_function("block_on_empty", |b| {
        b.iter(|| rt.block_on(async { black_box(1) }))
    });
    for store in [StoreKind::Cookie, StoreKind::Memory] {
        let sessions = Sessions::new(SessionConfig {
            cookie_name: "authgate_session".into(),
            lifetime: Duration::from_secs(8 * 3600),
            idle_timeout: Duration::from_secs(3600),
            lifecycle: Default::default(),
            secure: true,
            secret: Secret("b".repeat(48)),
            store,
            max_sessions: 1000,
            cookie_domain: None,
            redis: None,
        })
        .unwrap();
        let cookie = rt.block_on(sessions.create(identity())).unwrap();
        let now = now_secs();
        // A cookie this process has opened before: the steady state of a signed-in user.
        c.bench_function(&format!("session_check_{store:?}"), |b| {
            b.iter(|| rt.block_on(sessions.check(black_box(&cookie), now)))
        });
        // The first request with a cookie (or after a restart): decrypt and parse.
        c.bench_function(&format!("session_open_cold_{store:?}"), |b| {
            b.iter(|| {
                sessions
                    .sealer()
                    .open::<Ticket>("authgate_session", black_box(&cookie))
            })
        });
    }

    let plan = HeaderPlan::new(&header_names()).unwrap();
    // Held twice, as a session store's cache holds it: its headers are kept.
    let id = std::sync::Arc::new(identity());
    let _cached = id.clone();
    c.bench_function("strip_and_inject_headers", |b| {
        b.iter_batched(
            || {
                let mut req = RequestHeader::build("GET", b"/app/page", None).unwrap();
                for (k, v) in [
                    ("host", "gw"),
                    ("accept", "*/*"),
                    ("user-agent", "bench"),
                    ("cookie", "a=1; authgate_session=x"),
                    ("x_auth_user", "spoof"),
                ] {
                    req.append_header(k, v).unwrap();
                }
                req
            },
            |mut req| {
                plan.strip(&mut req, false);
                plan.inject(&mut req, &id).unwrap();
                req
            },
            criterion::BatchSize::SmallInput,
        )
    });

    let routes: Vec<RouteConfig> = (0..20)
        .map(|i| RouteConfig {
            name: format!("r{i}"),
            host: (i % 2 == 0).then(|| format!("app{i}.example")),
            path_prefix: format!("/svc{i}"),
            upstream: Upstream {
                addr: "127.0.0.1:1".into(),
                tls: false,
                sni: String::new(),
                tls_options: None,
                host_header: None,
                read_timeout: None,
            },
            public: false,
            provider: 0,
            accepts: vec!["demo".into()],
            policy: Policy::default(),
            require: Default::default(),
            exceptions: Exceptions::default(),
            preserve_post: None,
            cors: Default::default(),
            open: Default::default(),
            assertion_audience: None,
            tokens: Default::default(),
        })
        .chain(std::iter::once(RouteConfig {
            name: "root".into(),
            host: None,
            path_prefix: "/".into(),
            upstream: Upstream {
                addr: "127.0.0.1:1".into(),
                tls: false,
                sni: String::new(),
                tls_options: None,
                host_header: None,
                read_timeout: None,
            },
            public: false,
            provider: 0,
            accepts: vec!["demo".into()],
            policy: Policy::default(),
            require: Default::default(),
            exceptions: Exceptions::default(),
            preserve_post: None,
            cors: Default::default(),
            open: Default::default(),
            assertion_audience: None,
            tokens: Default::default(),
        }))
        .collect();
    let table = RouteTable::new(&routes);
    c.bench_function("route_match_21_routes", |b| {
        b.iter(|| {
            table
                .find(
                    black_box(Some("gw.example:8443")),
                    black_box("/app/some/page"),
                )
                .map(|r| r.public)
        })
    });
    // A route that names a group and a role, against an identity with 20 groups.
    let mut admin = Policy {
        groups: vec!["Admins".into()],
        roles: vec!["Admin".into()],
        require_assignment: true,
        ..Default::default()
    };
    admin.resolve_groups(
        &[(
            "6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a119".to_string(),
            "Admins".to_string(),
        )]
        .into(),
    );
    c.bench_function("policy_decide_group_and_role", |b| {
        b.iter(|| policy::decide(black_box(&admin), black_box(&id)))
    });
    // The signed assertion: a new ES256 signature (what a session pays once per half
    // lifetime and audience), then the kept one (what every other request pays).
    let signer = authgate::assertion::Signer::new(
        &authgate::assertion::AssertionConfig {
            header: "X-Auth-Assertion".into(),
            lifetime: Duration::from_secs(120),
            key_files: Vec::new(),
        },
        &url::Url::parse("https://gw.example").expect("url"),
        None,
        &std::sync::Arc::new(authgate::metrics::Metrics::new().expect("metrics")),
    )
    .expect("signer");
    let aud: std::sync::Arc<str> = "app.example".into();
    let mut now = now_secs();
    c.bench_function("assertion_sign", |b| {
        b.iter(|| {
            // Each a fresh second past the kept one's half life: always a new signature.
            now += 61;
            let prepared = plan.prepared(&id);
            signer.assertion(about(&id, &prepared, &plan, &aud, now))
        })
    });
    let prepared = plan.prepared(&id);
    let now = now_secs();
    c.bench_function("assertion_kept", |b| {
        b.iter(|| signer.assertion(about(&id, black_box(&prepared), &plan, &aud, now)))
    });
    c.bench_function("canonical_request", |b| {
        b.iter(|| {
            canonical::read(
                black_box(b"/app/some/page/with/segments?x=1"),
                black_box(&[b"gw.example:8443"]),
                None,
                true,
                Exceptions::default(),
            )
        })
    });
}

/// What an assertion is about, for the benchmark's one identity.
fn about<'a>(
    identity: &'a Identity,
    prepared: &'a authgate::identity::PreparedSet,
    plan: &'a HeaderPlan,
    aud: &'a std::sync::Arc<str>,
    now: u64,
) -> authgate::assertion::About<'a> {
    authgate::assertion::About {
        identity,
        prepared,
        plan,
        aud,
        sid: Some("session-id"),
        now,
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
