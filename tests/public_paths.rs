//! `public_methods` and `public_paths` through the real binary and the real upstream: health
//! checks and static assets pass without a session and with no identity, anything else on the
//! route still needs one, path tricks never widen a pattern, forward-auth applies the same
//! rule, and `authgate check` refuses patterns that could reach the gateway's own paths.

mod common;

use common::*;

fn start() -> Env {
    start_env_with(|b| {
        b.forward_auth_default(&["127.0.0.1/32"]).edit_route("app", |r| {
            r.with("public_methods: [head]\npublic_paths: [\"/healthz\", \"/static/**\", \"/assets/*.css\"]")
        })
    })
}

fn status(gw: &Gateway, method: &str, target: &str) -> u16 {
    raw_request(gw, method, target).0
}

/// A request sent as written (no client-side normalization of the target), with a spoofed
/// identity header.
fn raw_request(gw: &Gateway, method: &str, target: &str) -> (u16, String) {
    common::raw_request(&gw.url, method, target, "X-Auth-User: spoofed\r\n")
}

#[test]
fn listed_paths_and_methods_pass_without_a_session_and_nothing_more() {
    let env = start();
    let gw = &env.gw;
    for open in [
        "/healthz",
        "/static/app.js",
        "/static/a/b/c.png",
        "/assets/site.css",
    ] {
        let (code, body) = raw_request(gw, "GET", open);
        assert_eq!(code, 200, "{open}: {body}");
        assert!(
            body.contains("\"method\":\"GET\""),
            "{open}: reached the upstream"
        );
        assert!(
            !body.contains("spoofed"),
            "{open}: a client's identity header is stripped"
        );
        assert!(!body.contains("x-auth-user"), "{open}: no identity");
    }
    assert_eq!(status(gw, "HEAD", "/private/report"), 200);
    for closed in [
        "/healthz/x",
        "/x/healthz",
        "/HEALTHZ",
        "/Static/app.js",
        "/static",
        "/staticx/a.js",
        "/assets/a/site.css",
        "/assets/site.css.map",
        "/private/report",
        "/static/../private",
        "/static/%2e%2e/private",
        "/static/..%2fprivate",
        "/static%2f..%2fprivate",
        "/static/./../private",
    ] {
        let code = status(gw, "GET", closed);
        assert!(code == 401 || code == 400, "{closed}: {code}");
    }
    assert_eq!(
        status(gw, "POST", "/static/app.js"),
        200,
        "paths are open to every method"
    );
    assert_eq!(status(gw, "DELETE", "/private/report"), 401);

    // Forward-auth: the same rule, on the original request.
    let ask = |uri: &str, method: &str| {
        api()
            .get(format!("{}/_authgate/auth", gw.url))
            .header("x-original-url", format!("http://127.0.0.1{uri}"))
            .header("x-original-method", method)
            .send()
            .expect("auth")
    };
    let r = ask("/static/app.js", "GET");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-auth-user").is_none());
    assert_eq!(ask("/private/report", "HEAD").status(), 200);
    assert_eq!(ask("/private/report", "GET").status(), 401);
    assert_eq!(ask("/Static/app.js", "GET").status(), 401);
}

#[test]
fn patterns_that_could_reach_the_gateway_or_change_things_are_refused() {
    let yaml = "listen: [\"127.0.0.1:8080\"]\npublic_url: \"http://gw.example\"\nproviders:\n  - name: idp\n    type: oidc\n    issuer: \"https://idp.example\"\n    client_id: x\n    client_secret: s\nroutes:
  - name: app
    upstream: \"127.0.0.1:3000\"
    public_methods: [GET, post, \"BAD METHOD\"]
    public_paths: [\"/**\", \"/_*/**\", \"/*\", \"static/**\", \"/a/../b\", \"/a?b\", \"/a/***\", \"/%2e\", \"/*/*/*/*/*/*/*/*/*\", \"/ok/**\"]
  - name: pub
    path_prefix: /pub
    upstream: \"127.0.0.1:3000\"
    public: true
    public_paths: [\"/pub/x\"]
session:\n  secret: \"0123456789abcdef0123456789abcdef\"\n";
    let (ok, out) = check_config(yaml);
    assert!(!ok, "{out}");
    assert_config_errors(
        &out,
        &[
            ("routes[0].public_methods[1]", "POST changes things"),
            ("routes[0].public_methods[2]", "is not a method"),
            (
                "routes[0].public_paths[0]",
                "could match the gateway's own paths",
            ),
            (
                "routes[0].public_paths[1]",
                "could match the gateway's own paths",
            ),
            (
                "routes[0].public_paths[2]",
                "could match the gateway's own paths",
            ),
            ("routes[0].public_paths[3]", "is not a path pattern"),
            ("routes[0].public_paths[4]", "is not a path pattern"),
            ("routes[0].public_paths[5]", "is not a path pattern"),
            ("routes[0].public_paths[6]", "is not a path pattern"),
            ("routes[0].public_paths[7]", "is not a path pattern"),
            ("routes[0].public_paths[8]", "is not a path pattern"),
            ("routes[1]", "drop public_methods and public_paths"),
        ],
    );
    assert!(!out.contains("public_paths[9]"), "/ok/** is fine: {out}");
    assert!(!out.contains("public_methods[0]"), "GET is fine: {out}");
}
