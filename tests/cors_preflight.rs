//! CORS preflights per route through the real binary and the real upstream: `pass` reaches
//! the upstream with no identity, `answer` is replied by the gateway from its lists (and the
//! actual responses say so too), `refuse` (the default) needs a session; only a real
//! preflight counts. Forward-auth lets a real preflight through the same way.

mod common;

use common::*;
use reqwest::blocking::Response;

const APP: &str = "https://app.example";

fn options(url: &str, headers: &[(&str, &str)]) -> Response {
    let mut r = api().request(reqwest::Method::OPTIONS, url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().expect("OPTIONS")
}

fn start() -> Env {
    start_env_with(|b| {
        let up = b.upstream();
        b.forward_auth_default(&["127.0.0.1/32"]).routes_first([
            RouteSpec::new("pass", &up)
                .prefix("/pass")
                .with("cors:\n  preflight: pass"),
            RouteSpec::new("answer", &up).prefix("/answer").with(
                "cors:\n  preflight: answer\n  allowed_origins: [\"https://App.example\", \"http://127.0.0.1:1\"]\n  allowed_methods: [GET, put]\n  allowed_headers: [Content-Type, X-Requested-With]\n  max_age: 5m\n  allow_credentials: true",
            ),
        ])
    })
}

#[test]
fn preflights_pass_are_answered_or_need_a_session_per_route() {
    let env = start();
    let gw = &env.gw;
    let real = [
        ("origin", APP),
        ("access-control-request-method", "PUT"),
        ("x-auth-user", "spoofed"),
    ];

    // pass: the upstream answers, and sees no identity (a spoofed one is stripped).
    let r = options(&format!("{}/pass/items", gw.url), &real);
    assert_eq!(r.status(), 200);
    let seen = echo(r);
    assert_eq!(seen["method"], "OPTIONS");
    assert!(seen["headers"].get("x-auth-user").is_none(), "{seen}");
    assert!(seen["headers"].get("x-auth-assertion").is_none(), "{seen}");

    // answer: the gateway replies; the upstream never sees it.
    let r = options(
        &format!("{}/answer/items", gw.url),
        &[
            ("origin", APP),
            ("access-control-request-method", "PUT"),
            (
                "access-control-request-headers",
                "content-type, X-Requested-With",
            ),
        ],
    );
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], APP);
    assert_eq!(h["access-control-allow-methods"], "GET, PUT");
    assert_eq!(
        h["access-control-allow-headers"],
        "content-type, x-requested-with"
    );
    assert_eq!(h["access-control-max-age"], "300");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["vary"], "Origin");
    // What the lists do not allow: 403, with no CORS headers (the browser blocks the call).
    for (headers, why) in [
        (
            vec![
                ("origin", "https://evil.example"),
                ("access-control-request-method", "GET"),
            ],
            "origin",
        ),
        (
            vec![
                ("origin", "https://app.example.evil"),
                ("access-control-request-method", "GET"),
            ],
            "origin",
        ),
        (
            vec![("origin", "null"), ("access-control-request-method", "GET")],
            "origin",
        ),
        (
            vec![("origin", APP), ("access-control-request-method", "DELETE")],
            "method",
        ),
        (
            vec![
                ("origin", APP),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "authorization"),
            ],
            "header",
        ),
    ] {
        let r = options(&format!("{}/answer/items", gw.url), &headers);
        assert_eq!(r.status(), 403, "{why}");
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{why}"
        );
        assert!(
            r.text().unwrap().contains("cors_preflight_refused"),
            "{why}"
        );
    }

    // refuse (the default), and anything that is not a real preflight: a session is needed.
    let r = options(&format!("{}/items", gw.url), &real);
    assert_eq!(r.status(), 401);
    for (route, headers) in [
        ("pass", vec![("origin", APP)]),
        ("pass", vec![("access-control-request-method", "PUT")]),
        ("answer", vec![("origin", APP)]),
        ("answer", vec![]),
    ] {
        let r = options(&format!("{}/{route}/items", gw.url), &headers);
        assert_eq!(r.status(), 401, "{route} {headers:?}");
    }
    // A GET with preflight headers is no preflight either.
    let r = api()
        .get(format!("{}/pass/items", gw.url))
        .header("origin", APP)
        .header("access-control-request-method", "GET")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);

    // The actual request, signed in: the answer route's responses carry the CORS headers for an
    // allowed origin only.
    let b = Browser::new();
    let (r, _) = b.sign_in(&format!("{}/answer/x", gw.url), "alice");
    assert_eq!(r.status(), 200);
    let r = b
        .client
        .get(format!("{}/answer/x", gw.url))
        .header("origin", "https://APP.example")
        .send()
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://APP.example"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let r = b
        .client
        .get(format!("{}/answer/x", gw.url))
        .header("origin", "https://evil.example")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = b
        .client
        .get(format!("{}/x", gw.url))
        .header("origin", APP)
        .send()
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn forward_auth_lets_a_real_preflight_through_with_no_identity() {
    let env = start();
    let gw = &env.gw;
    let ask = |uri: &str, headers: &[(&str, &str)]| {
        let mut r = api()
            .get(format!("{}/_authgate/auth", gw.url))
            .header("x-original-url", format!("http://127.0.0.1{uri}"));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().expect("auth")
    };
    let preflight = [
        ("x-original-method", "OPTIONS"),
        ("origin", APP),
        ("access-control-request-method", "PUT"),
    ];
    for route in ["/pass/items", "/answer/items"] {
        let r = ask(route, &preflight);
        assert_eq!(r.status(), 200, "{route}");
        assert!(r.headers().get("x-auth-user").is_none());
    }
    // The default route, a method that is not OPTIONS, a repeated method header, no Origin.
    assert_eq!(ask("/items", &preflight).status(), 401);
    let get = [
        ("x-original-method", "GET"),
        ("origin", APP),
        ("access-control-request-method", "PUT"),
    ];
    assert_eq!(ask("/pass/items", &get).status(), 401);
    let twice = [
        ("x-original-method", "OPTIONS"),
        ("x-original-method", "GET"),
        ("origin", APP),
        ("access-control-request-method", "PUT"),
    ];
    assert_eq!(ask("/pass/items", &twice).status(), 401);
    let no_origin = [
        ("x-original-method", "OPTIONS"),
        ("access-control-request-method", "PUT"),
    ];
    assert_eq!(ask("/pass/items", &no_origin).status(), 401);
}

#[test]
fn cors_mistakes_are_checked_all_at_once() {
    let yaml = "listen: [\"127.0.0.1:8080\"]\npublic_url: \"http://gw.example\"\nproviders:\n  - name: idp\n    type: oidc\n    issuer: \"https://idp.example\"\n    client_id: x\n    client_secret: s\nroutes:
  - name: wild
    upstream: \"127.0.0.1:3000\"
    cors:
      preflight: answer
      allowed_origins: [\"*\"]
      allow_credentials: true
  - name: bad
    path_prefix: /bad
    upstream: \"127.0.0.1:3000\"
    cors:
      preflight: answer
      allowed_origins: [\"https://a.example/path\", \"javascript:alert(1)\", \"https://u@a.example\"]
      allowed_methods: [\"GE T\", \"*\"]
      allowed_headers: [\"*\", \"X Bad\"]
      max_age: 2d
  - name: empty
    path_prefix: /empty
    upstream: \"127.0.0.1:3000\"
    cors:
      preflight: answer
  - name: lists
    path_prefix: /lists
    upstream: \"127.0.0.1:3000\"
    cors:
      preflight: pass
      allowed_origins: [\"https://a.example\"]
  - name: mode
    path_prefix: /mode
    upstream: \"127.0.0.1:3000\"
    cors:
      preflight: allow
session:\n  secret: \"0123456789abcdef0123456789abcdef\"\n";
    let (ok, out) = check_config(yaml);
    assert!(!ok, "{out}");
    assert_config_errors(
        &out,
        &[
            (
                "routes[0].cors.allowed_origins",
                "cannot go with allow_credentials",
            ),
            (
                "routes[1].cors.allowed_origins",
                "\"https://a.example/path\" is not an origin",
            ),
            (
                "routes[1].cors.allowed_origins",
                "\"javascript:alert(1)\" is not an origin",
            ),
            (
                "routes[1].cors.allowed_origins",
                "\"https://u@a.example\" is not an origin",
            ),
            ("routes[1].cors.allowed_methods", "\"GE T\" is not a method"),
            ("routes[1].cors.allowed_methods", "\"*\" is not a method"),
            (
                "routes[1].cors.allowed_headers",
                "\"X Bad\" is not a method or header name",
            ),
            ("routes[1].cors.max_age", "at most 24h"),
            (
                "routes[2].cors.allowed_origins",
                "needs the origins it allows",
            ),
            ("routes[3].cors", "are for preflight: answer"),
            ("routes[4].cors.preflight", "is not pass, answer or refuse"),
        ],
    );
}
