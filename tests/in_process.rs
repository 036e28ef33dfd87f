//! The gateway's decisions driven in-process, without sockets or peers: a typed config
//! (`common::builder`), `Core::build`, and `Gateway::admit` on in-memory requests
//! (`exchange::InProcess`). Each case is one row of a table: the request, and what the
//! gateway must decide (the status it answers, or that it proxies, and with which identity).
//! The providers here are never loaded: what needs the IdP must fail closed (503, 401).
//! The real-binary end-to-end suites (oidc_flow, saml_flow, hostile_requests, ...) stay.

mod common;

use std::sync::Arc;

use arc_swap::ArcSwap;
use authgate::answer::Answer;
use authgate::exchange::InProcess;
use authgate::gateway::{Ctx, Gateway};
use authgate::identity::{Identity, List};
use authgate::metrics::Metrics;
use authgate::state::Core;
use common::{ConfigBuilder, RouteSpec};

const HOST: &str = "gw.test";

fn config() -> ConfigBuilder {
    ConfigBuilder::new("http://gw.test")
        .oidc("demo", "http://127.0.0.1:9/demo")
        .oidc("partners", "http://127.0.0.1:9/partners")
        .route(
            RouteSpec::new("public", "127.0.0.1:3000")
                .prefix("/public")
                .providers(&["demo"])
                .public(),
        )
        .route(
            RouteSpec::new("admin", "127.0.0.1:3000")
                .prefix("/admin")
                .providers(&["demo"])
                .groups(&["admins"]),
        )
        .route(
            RouteSpec::new("partner-app", "127.0.0.1:3000")
                .prefix("/partners")
                .providers(&["partners"]),
        )
        .route(RouteSpec::new("app", "127.0.0.1:3000").providers(&["demo", "partners"]))
}

struct Harness {
    gw: Gateway,
    core: Arc<Core>,
}

impl Harness {
    fn new(b: ConfigBuilder) -> Self {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let core = Core::build(b.build(), None, &metrics).expect("core");
        let gw = Gateway::new(Arc::new(ArcSwap::from_pointee(core)), metrics);
        let core = gw.core();
        Self { gw, core }
    }

    async fn session(&self, provider: &str, user: &str, groups: &[&str]) -> String {
        let id = Identity {
            provider: provider.into(),
            user: user.into(),
            email: Some(format!("{user}@example.test").into()),
            groups: List::from(
                groups
                    .iter()
                    .map(|g| g.to_string())
                    .collect::<Vec<String>>(),
            ),
            ..Default::default()
        };
        let sealed = self.core.sessions.create(id).await.expect("session");
        format!("{}={sealed}", self.core.cookies.session_name())
    }

    async fn admit(&self, req: &mut InProcess) -> (Option<Answer>, Ctx) {
        let mut ctx = Ctx::default();
        let answer = self
            .gw
            .admit(&self.core, req, &mut ctx)
            .await
            .expect("no transport error in memory");
        (answer, ctx)
    }
}

fn browser(target: &str) -> InProcess {
    InProcess::get(HOST, target)
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
}

fn api(target: &str) -> InProcess {
    InProcess::get(HOST, target).header("accept", "application/json")
}

fn body(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

/// What a row expects.
#[derive(Debug)]
enum Expect {
    /// Proxied, as `user` (None: anonymous) on `route`.
    Proxy(&'static str, Option<&'static str>),
    /// Answered by the gateway with this status and a body containing this text.
    Answer(u16, &'static str),
}

#[tokio::test]
async fn decisions_table() {
    let h = Harness::new(config());
    let alice = h.session("demo", "alice", &["admins"]).await;
    let bob = h.session("demo", "bob", &["staff"]).await;
    let pat = h.session("partners", "pat", &[]).await;
    let forged = format!("{}=AAAAforged", h.core.cookies.session_name());
    let with = |r: InProcess, cookie: &str| r.header("cookie", cookie);
    use Expect::*;
    let rows: Vec<(&str, InProcess, Expect)> = vec![
        (
            "public route, anonymous",
            browser("/public/x"),
            Proxy("public", None),
        ),
        (
            "public route keeps a session out of it",
            with(browser("/public/"), &alice),
            Proxy("public", None),
        ),
        (
            "signed in on the default route",
            with(api("/"), &alice),
            Proxy("app", Some("alice")),
        ),
        (
            "second provider accepted by the default route",
            with(api("/x"), &pat),
            Proxy("app", Some("pat")),
        ),
        (
            "policy: a member of admins",
            with(api("/admin/"), &alice),
            Proxy("admin", Some("alice")),
        ),
        (
            "policy: not a member, API",
            with(api("/admin/"), &bob),
            Answer(403, "missing_group"),
        ),
        (
            "policy: not a member, browser",
            with(browser("/admin/"), &bob),
            Answer(403, "Reason: missing_group"),
        ),
        (
            "another provider's session on a single-provider route",
            with(api("/admin/"), &pat),
            Answer(401, "provider=demo"),
        ),
        (
            "demo's session on the partners route",
            with(api("/partners/"), &alice),
            Answer(401, "provider=partners"),
        ),
        (
            "no session, API: 401 naming where to sign in",
            api("/"),
            Answer(401, "/_authgate/sign_in?rd=%2F&provider=demo"),
        ),
        (
            "a forged session cookie is no session",
            with(api("/"), &forged),
            Answer(401, "unauthenticated"),
        ),
        (
            "no session, browser, IdP not loaded: fail closed",
            browser("/"),
            Answer(503, "Sign-in temporarily unavailable"),
        ),
        (
            "bearer token on a route with no API provider is not ours: still no session",
            api("/").header("authorization", "Bearer abc"),
            Answer(401, "unauthenticated"),
        ),
        (
            "dot segments refused",
            api("/public/%2e%2e/admin"),
            Answer(400, "dot_segment"),
        ),
        (
            "path parameters refused",
            api("/admin;x"),
            Answer(400, "path_parameter"),
        ),
        (
            "encoded slash refused",
            api("/public/..%2fadmin"),
            Answer(400, ""),
        ),
        (
            "unknown host still routes by path (no host rules)",
            InProcess::get("other.test", "/public/"),
            Proxy("public", None),
        ),
        (
            "gateway page that does not exist",
            api("/_authgate/nope"),
            Answer(404, "no such gateway page"),
        ),
        (
            "reserved prefix in another case",
            api("/_AUTHGATE/nope"),
            Answer(404, "no such gateway page"),
        ),
        (
            "sign-in with an unknown provider",
            browser("/_authgate/sign_in?provider=nope"),
            Answer(404, "Unknown identity provider"),
        ),
        (
            "sign-in while the IdP is down",
            browser("/_authgate/sign_in?provider=partners"),
            Answer(503, "temporarily unavailable"),
        ),
        (
            "callback without state",
            browser("/_authgate/callback/demo?code=x"),
            Answer(400, "no valid state"),
        ),
        (
            "callback of an unknown provider",
            browser("/_authgate/callback/nope?state=x"),
            Answer(404, "Unknown identity provider"),
        ),
        (
            "callback with a state this browser never started",
            browser(
                "/_authgate/callback/demo?code=x&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            ),
            Answer(400, "not started in this browser"),
        ),
        (
            "SAML endpoints of an OIDC provider",
            browser("/_authgate/saml/demo/acs"),
            Answer(404, "does not speak SAML"),
        ),
        (
            "signed-out page",
            browser("/_authgate/signed_out"),
            Answer(200, "You have signed out"),
        ),
        (
            "sign-out confirmation page for a session",
            with(browser("/_authgate/sign_out"), &alice),
            Answer(200, "name=\"token\""),
        ),
        (
            "sign-out without a session goes to the signed-out page",
            browser("/_authgate/sign_out"),
            Answer(302, ""),
        ),
        (
            "sign-out POST without its token",
            with(
                InProcess::new("POST", HOST, "/_authgate/sign_out").form("token=x"),
                &alice,
            ),
            Answer(403, "Sign-out not confirmed"),
        ),
        (
            "forward-auth is off unless enabled",
            api("/_authgate/auth"),
            Answer(404, "Forward-auth is not enabled"),
        ),
    ];
    let mut failures = Vec::new();
    for (what, mut req, expect) in rows {
        let (answer, ctx) = h.admit(&mut req).await;
        let ok = match (&expect, &answer) {
            (Proxy(route, user), None) => {
                ctx.route.as_ref().map(|r| r.name.as_str()) == Some(*route)
                    && ctx.identity.as_ref().map(|i| &*i.user) == *user
            }
            (Answer(status, text), Some(a)) => a.status == *status && body(a).contains(text),
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{what}: expected {expect:?}, got {}",
                match &answer {
                    Some(a) => format!(
                        "{} {}",
                        a.status,
                        body(a).chars().take(300).collect::<String>()
                    ),
                    None => format!(
                        "proxy to {:?} as {:?}",
                        ctx.route.as_ref().map(|r| r.name.clone()),
                        ctx.identity.as_ref().map(|i| i.user.clone())
                    ),
                }
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn what_the_upstream_would_receive_is_decided_in_admit() {
    let h = Harness::new(config());
    let alice = h.session("demo", "alice", &["admins"]).await;
    let mut req = api("/admin/x")
        .header("cookie", &alice)
        .header("x-auth-user", "mallory")
        .header("X_Auth_Groups", "admins")
        .header("x-forwarded-for", "6.6.6.6");
    let (answer, ctx) = h.admit(&mut req).await;
    assert!(answer.is_none(), "{answer:?}");
    assert_eq!(ctx.identity.as_ref().map(|i| &*i.user), Some("alice"));
    for spoofed in ["x-auth-user", "x_auth_groups", "x-forwarded-for"] {
        assert!(
            !req.head.headers.contains_key(spoofed),
            "{spoofed} must be stripped: {:?}",
            req.head.headers
        );
    }
}

#[tokio::test]
async fn sign_out_confirmed_in_process_ends_the_session() {
    let h = Harness::new(config());
    let alice = h.session("demo", "alice", &["admins"]).await;
    let (page, _) = h
        .admit(&mut browser("/_authgate/sign_out").header("cookie", &alice))
        .await;
    let page = body(&page.expect("confirmation page"));
    let token = common::input_value(&page, "token").expect("token field");
    let form = format!(
        "token={}",
        percent_encoding::utf8_percent_encode(&token, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut post = InProcess::new("POST", HOST, "/_authgate/sign_out")
        .form(&form)
        .header("cookie", &alice);
    let (answer, _) = h.admit(&mut post).await;
    let answer = answer.expect("an answer");
    assert_eq!(answer.status, 303, "{}", body(&answer));
    assert!(answer
        .header_value("location")
        .is_some_and(|l| l.ends_with("/_authgate/signed_out")));
    // The copy of the cookie no longer works.
    let (again, _) = h.admit(&mut api("/").header("cookie", &alice)).await;
    assert_eq!(again.map(|a| a.status), Some(401));
}

#[tokio::test]
async fn revoking_a_user_ends_their_sessions_in_process() {
    let h = Harness::new(config().store("memory"));
    let a1 = h.session("demo", "alice", &["admins"]).await;
    let a2 = h.session("demo", "alice", &["admins"]).await;
    let bob = h.session("demo", "bob", &[]).await;
    let now = authgate::session::now_secs();
    let removed = h
        .core
        .sessions
        .revoke_user("demo", "alice", now)
        .await
        .unwrap();
    assert_eq!(removed, 2);
    for c in [&a1, &a2] {
        let (a, _) = h.admit(&mut api("/").header("cookie", c)).await;
        assert_eq!(a.map(|a| a.status), Some(401));
    }
    let (a, ctx) = h.admit(&mut api("/").header("cookie", &bob)).await;
    assert!(a.is_none());
    assert_eq!(ctx.identity.map(|i| i.user.clone()).as_deref(), Some("bob"));
}

#[tokio::test]
async fn forward_auth_in_process() {
    let h = Harness::new(config().forward_auth("nginx", &["10.0.0.0/8"]));
    let alice = h.session("demo", "alice", &["admins"]).await;
    let bob = h.session("demo", "bob", &[]).await;
    let ask = |url: &str, cookie: Option<&str>, peer: [u8; 4]| {
        let mut r = InProcess::get(HOST, "/_authgate/auth").header("x-original-url", url);
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.peer = Some(std::net::IpAddr::from(peer));
        r
    };
    let rows = [
        (
            "untrusted peer",
            ask("http://gw.test/", Some(&alice), [127, 0, 0, 1]),
            403,
            None,
        ),
        (
            "allowed",
            ask("http://gw.test/admin/", Some(&alice), [10, 1, 2, 3]),
            200,
            Some("alice"),
        ),
        (
            "policy says no",
            ask("http://gw.test/admin/", Some(&bob), [10, 1, 2, 3]),
            403,
            None,
        ),
        (
            "no session",
            ask("http://gw.test/", None, [10, 1, 2, 3]),
            401,
            None,
        ),
        (
            "public route",
            ask("http://gw.test/public/", None, [10, 1, 2, 3]),
            200,
            None,
        ),
        (
            "hostile original path",
            ask(
                "http://gw.test/public/%2e%2e/admin/",
                Some(&bob),
                [10, 1, 2, 3],
            ),
            403,
            None,
        ),
    ];
    for (what, mut req, status, user) in rows {
        let (answer, _) = h.admit(&mut req).await;
        let answer = answer.expect("forward-auth always answers");
        assert_eq!(answer.status, status, "{what}: {}", body(&answer));
        assert_eq!(answer.header_value("x-auth-user"), user, "{what}");
    }
}

/// pingora boxes the future of `request_filter`, which awaits `admit`, on every request, and
/// that box is written (copied) whole whatever branch the request takes. Rarely taken
/// branches that await something large (the gateway's own endpoints ~5 KB, bearer-token
/// verification ~2.3 KB, writing an answer ~1.2 KB) are boxed where they are awaited, so
/// only the requests that take them pay for their size (BENCHMARKS.md, ninth round).
/// 880 bytes when this was written (992 before step 7 became a function of its own); 5,464 with
/// `endpoints::serve` awaited inline, as it was.
#[tokio::test]
async fn the_admission_future_stays_small() {
    const LIMIT: usize = 2_000;
    let h = Harness::new(config());
    let mut req = api("/");
    let mut ctx = Ctx::default();
    let future = h.gw.admit(&h.core, &mut req, &mut ctx);
    let size = std::mem::size_of_val(&future);
    drop(future);
    println!("Gateway::admit's future: {size} bytes");
    assert!(
        size <= LIMIT,
        "Gateway::admit's future is {size} bytes (limit {LIMIT}): box the large branch you added"
    );
    // The future still decides: the request it was made for is refused (no session).
    let (answer, _) = h.admit(&mut req).await;
    assert_eq!(answer.map(|a| a.status), Some(401));
}
