//! One gateway for three hosts (`login.test` = public_url, `a.test`, `b.test`; all on
//! 127.0.0.1 through the client's resolver), through the real binary and the real
//! `oidc-provider`: one sign-in, then each host through a handoff with no second trip to the
//! IdP; handoff codes refused when replayed, used on another host, too old, or from another
//! browser; signing out on one host ends the session on all; `rd` never leaves the served
//! and allowed hosts.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

struct Hosts {
    gw: Gateway,
    op: OpenIdProvider,
    port: u16,
    _upstream: Upstream,
}

fn start() -> Hosts {
    start_on(
        "login.test",
        "hosts: [a.test, b.test]\nallowed_redirect_hosts: [\"docs.test\"]\n",
    )
}

fn start_on(public_host: &str, tail: &str) -> Hosts {
    let port = free_port();
    let admin = free_port();
    let upstream = start_upstream();
    let public = format!("http://{public_host}:{port}");
    let op = start_op(&public, 0);
    let cfg = ConfigBuilder::for_binary(port, &public, admin, &op.issuer, upstream.port)
        .store("memory")
        .tail(tail);
    let gw = start_built(&cfg);
    Hosts {
        gw,
        op,
        port,
        _upstream: upstream,
    }
}

/// A browser that finds every test host on the gateway.
fn browser(port: u16) -> Browser {
    browser_with(port, &[])
}

/// A browser whose resolver sends `elsewhere` hosts to 127.0.0.2 (an ingress in front), and
/// every other test host to the gateway on 127.0.0.1; the port is the URL's.
fn browser_with(port: u16, elsewhere: &[&str]) -> Browser {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let front: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    let hosts: Vec<(&str, SocketAddr)> = [
        "login.test",
        "a.test",
        "b.test",
        "c.test",
        "docs.test",
        "login.corp.test",
        "a.corp.test",
        "c.corp.test",
    ]
    .into_iter()
    .map(|h| (h, if elsewhere.contains(&h) { front } else { addr }))
    .collect();
    Browser::resolving(&hosts)
}

impl Hosts {
    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }

    /// A fresh handoff code for `host` from a browser signed in at login.test: the URL it
    /// is redeemed at.
    fn code_for(&self, b: &Browser, host: &str, path: &str) -> String {
        let rd = self.url(host, path);
        let start = format!(
            "{}?rd={}",
            self.url("login.test", "/_authgate/sign_in"),
            url_encode(&rd)
        );
        // No binding yet: to the host for one, back to sign in, and on with a code.
        let r = b.get(&start);
        assert!(
            location(&r).starts_with(&self.url(host, "/_authgate/handoff?rd=")),
            "{}",
            location(&r)
        );
        let r = b.get(&location(&r));
        assert!(location(&r).starts_with(&self.url("login.test", "/_authgate/sign_in?rd=")));
        let r = b.get(&location(&r));
        let to = location(&r);
        assert!(
            to.starts_with(&self.url(host, "/_authgate/handoff?code=")),
            "{to}"
        );
        to
    }
}

/// Authorization codes the IdP has redeemed: one per sign-in.
fn codes_redeemed(op: &OpenIdProvider) -> u64 {
    let c: serde_json::Value = api()
        .get(format!("http://127.0.0.1:{}/test/counts", op.port))
        .send()
        .and_then(|r| r.json())
        .expect("counts");
    c["codes"].as_u64().expect("codes")
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn one_sign_in_serves_every_host_and_one_sign_out_ends_it_everywhere() {
    let t = start();
    let b = browser(t.port);

    // a.test: to sign in at login.test, and back through a handoff to the page asked for.
    let (r, url) = b.sign_in(&t.url("a.test", "/x?q=1"), "alice");
    assert_eq!(r.status(), 200, "{}", t.gw.log_text());
    assert_eq!(url, t.url("a.test", "/x?q=1"));
    let seen = echo(b.api_get(&t.url("a.test", "/x")));
    assert_eq!(seen["headers"]["x-auth-user"], ALICE_OID);
    assert!(seen["headers"]["cookie"]
        .as_str()
        .is_none_or(|c| !c.contains("authgate")));
    let logins = codes_redeemed(&t.op);

    // b.test: handed off at once, no trip to the IdP.
    let r = b.get(&t.url("b.test", "/y"));
    assert!(location(&r).starts_with(&t.url("login.test", "/_authgate/sign_in?rd=")));
    let r = b.get(&location(&r));
    let code_url = location(&r);
    assert!(
        code_url.starts_with(&t.url("b.test", "/_authgate/handoff?code=")),
        "{code_url}"
    );
    let r = b.get(&code_url);
    assert_eq!(location(&r), t.url("b.test", "/y"));
    let seen = echo(b.api_get(&t.url("b.test", "/y")));
    assert_eq!(seen["headers"]["x-auth-user"], ALICE_OID);
    assert_eq!(
        codes_redeemed(&t.op),
        logins,
        "no second sign-in at the IdP"
    );

    // A code once used is spent.
    let r = b.get(&code_url);
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().contains("handoff_refused (replayed)"));

    // A code is for its host, and its browser.
    let code = t.code_for(&b, "b.test", "/z");
    let on_a = code.replace("b.test", "a.test");
    let r = b.get(&on_a);
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().contains("(host)"));
    let thief = browser(t.port);
    let r = thief.get(&code);
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().contains("(browser)"));
    assert!(thief
        .cookie(&t.url("b.test", "/"), "authgate_session")
        .is_none());
    // Refusals did not spend it: its own browser still can.
    let r = b.get(&code);
    assert_eq!(location(&r), t.url("b.test", "/z"));
    // Tampered or foreign codes are not codes.
    let r = b.get(&format!("{code}x"));
    assert_eq!(r.status(), 403);
    let r = b.get(&t.url("b.test", "/_authgate/handoff?code=AAAA"));
    assert!(r.text().unwrap().contains("(code)"));

    // Too old: 30 seconds.
    let late = t.code_for(&b, "a.test", "/late");
    std::thread::sleep(Duration::from_secs(31));
    let r = b.get(&late);
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().contains("(expired)"));

    // A host not listed is refused.
    let r = b.get(&t.url("c.test", "/"));
    assert_eq!(r.status(), 421);

    // Signing out on b.test ends the one session: refused on every host.
    b.sign_out(&t.url("b.test", ""));
    for host in ["a.test", "b.test", "login.test"] {
        let r = b.api_get(&t.url(host, "/x"));
        assert_eq!(r.status(), 401, "{host}");
    }
    let m = scrape(&t.gw.admin);
    assert_eq!(
        metric(&m, "authgate_handoffs_total{result=\"redeemed\"}"),
        3.0
    );
    assert_eq!(
        metric(&m, "authgate_handoffs_total{result=\"replayed\"}"),
        1.0
    );
}

#[test]
fn return_addresses_never_leave_the_served_and_allowed_hosts() {
    let t = start();
    let b = browser(t.port);
    let (r, _) = b.sign_in(&t.url("login.test", "/"), "alice");
    assert_eq!(r.status(), 200);
    let p = t.port;
    let op_origin = reqwest::Url::parse(&t.op.issuer)
        .unwrap()
        .origin()
        .ascii_serialization();
    let ours = [
        t.url("login.test", ""),
        t.url("a.test", ""),
        t.url("b.test", ""),
        op_origin.clone(),
    ];
    for rd in [
        format!("http://evil.test:{p}/"),
        format!("http://user@a.test:{p}/"),
        "//evil.test/".to_string(),
        "/\\evil.test/".to_string(),
        "https:evil.test".to_string(),
        "%2F%2Fevil.test".to_string(),
        format!("http://a.test:{}/", p + 1),
        format!("http://A.TEST:{p}/x"),
        format!("http://a.test.:{p}/x"),
        format!("http://a.test:{p}//evil.test"),
        format!("http://a.test:{p}/%2F%2Fevil.test"),
        "http://docs.test/x".to_string(),
        "javascript:alert(1)".to_string(),
    ] {
        let r = b.get(&format!(
            "{}?rd={}",
            t.url("login.test", "/_authgate/sign_in"),
            url_encode(&rd)
        ));
        let to = location(&r);
        assert!(
            ours.iter().any(|o| to.starts_with(o.as_str())),
            "{rd} -> {to}"
        );
    }
    // A foreign rd, signed in through the IdP, lands on login.test's "/".
    let fresh = browser(t.port);
    let start = format!(
        "{}?rd={}",
        t.url("login.test", "/_authgate/sign_in"),
        url_encode(&format!("http://evil.test:{p}/steal"))
    );
    let (r, url) = fresh.sign_in(&start, "alice");
    assert_eq!(r.status(), 200);
    assert_eq!(url, t.url("login.test", "/"));
    // An allow-listed host the gateway does not serve (docs.test on public_url's port): a plain
    // redirect after the sign-in, no handoff.
    let r = b.get(&format!(
        "{}?rd={}",
        t.url("login.test", "/_authgate/sign_in"),
        url_encode(&t.url("docs.test", "/guide"))
    ));
    let callback = b.login_until_callback(&location(&r), "alice");
    let r = b.get(&callback);
    assert_eq!(location(&r), t.url("docs.test", "/guide"));
}

/// `session.cookie_domain`: hosts under it share the cookie, so no handoff is needed; hosts
/// outside it still get one.
#[test]
fn a_parent_domain_cookie_reaches_every_host_under_it() {
    let t = start_on(
        "login.corp.test",
        "  cookie_domain: .corp.test\nhosts: [a.corp.test, c.corp.test, b.test]\n",
    );
    let b = browser(t.port);
    let r = b.get(&t.url("a.corp.test", "/x"));
    let to = location(&r);
    assert!(
        to.starts_with(&t.url("login.corp.test", "/_authgate/sign_in?rd=")),
        "{to}"
    );
    assert!(
        !to.contains("hb="),
        "no binding under the shared cookie: {to}"
    );
    let callback = b.login_until_callback(&t.url("a.corp.test", "/x"), "alice");
    let r = b.get(&callback);
    assert_eq!(
        location(&r),
        t.url("a.corp.test", "/x"),
        "straight back, no handoff"
    );
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("Domain=corp.test"), "{set}");
    // Every host under the domain: signed in at once.
    for host in ["a.corp.test", "c.corp.test", "login.corp.test"] {
        let seen = echo(b.api_get(&t.url(host, "/y")));
        assert_eq!(seen["headers"]["x-auth-user"], ALICE_OID, "{host}");
    }
    // A host outside it still goes through a handoff.
    let r = b.get(&t.url("b.test", "/z"));
    assert!(location(&r).contains("hb="), "{}", location(&r));
    let (r, url) = b.follow(&t.url("b.test", "/z"));
    assert_eq!(r.status(), 200);
    assert_eq!(url, t.url("b.test", "/z"));
    // Signing out clears the shared cookie.
    let out = b.sign_out(&t.url("c.corp.test", ""));
    let cleared = out.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cleared.contains("Domain=corp.test"), "{cleared}");
    assert_eq!(b.api_get(&t.url("a.corp.test", "/y")).status(), 401);
}

#[test]
fn parent_domain_cookie_mistakes_are_refused_and_the_choice_is_warned_about() {
    let base = |public: &str, domain: &str| {
        format!("listen: [\"127.0.0.1:8080\"]\npublic_url: \"{public}\"\nproviders:\n  - name: idp\n    type: oidc\n    issuer: \"https://idp.example\"\n    client_id: x\n    client_secret: s\nroutes:\n  - upstream: \"127.0.0.1:3000\"\nhosts: [\"a.b\", \"x y\"]\nallowed_redirect_hosts: [\"*\", \"*.example.com:http\"]\nsession:\n  secret: \"0123456789abcdef0123456789abcdef\"\n  cookie_domain: \"{domain}\"\n")
    };
    for (public, domain, says) in [
        ("https://login.example.co.uk", "co.uk", "is a public suffix"),
        ("https://login.example.com", "com", "is not a domain name"),
        (
            "https://login.example.com",
            "other.example",
            "must be public_url's host or a parent",
        ),
        (
            "https://login.example.com",
            "ample.com",
            "must be public_url's host or a parent",
        ),
        ("https://app.github.io", "github.io", "is a public suffix"),
    ] {
        let (ok, out) = check_config(&base(public, domain));
        assert!(!ok, "{domain}: {out}");
        assert_config_errors(&out, &[("session.cookie_domain", says)]);
        assert_config_errors(
            &out,
            &[
                ("hosts[1]", "is not a host name"),
                ("allowed_redirect_hosts[0]", "is not a host"),
                ("allowed_redirect_hosts[1]", "is not a host"),
            ],
        );
    }
    let good = base("https://login.example.com", ".Example.com").replace(
        "hosts: [\"a.b\", \"x y\"]\nallowed_redirect_hosts: [\"*\", \"*.example.com:http\"]\n",
        "",
    );
    let (ok, out) = check_config(&good);
    assert!(ok, "{out}");
    assert_config_errors(
        &out,
        &[(
            "session.cookie_domain",
            "every host under example.com receives the session",
        )],
    );
}

/// nginx (as ingress-nginx renders `auth-url` and `auth-signin`) in front of two hosts with
/// different policies, on 127.0.0.2 with the gateway's port number (so the hosts' URLs carry
/// public_url's port); its sign-in link points at public_url, and the browser comes back to
/// each host through a handoff, which nginx passes to the gateway under `/_authgate/`.
fn two_host_ingress(port: u16, app_port: u16) -> String {
    let server = |host: &str| {
        format!(
            r#"
  server {{
    listen 127.0.0.2:{port};
    server_name {host};
    location = /_external-auth {{
      internal;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_pass http://127.0.0.1:{port}/_authgate/auth;
    }}
    location @signin {{
      internal;
      return 302 http://login.test:{port}/_authgate/sign_in?rd=$scheme://$http_host$request_uri;
    }}
    location /_authgate/ {{
      proxy_set_header Host $http_host;
      proxy_pass http://127.0.0.1:{port};
    }}
    location / {{
      auth_request /_external-auth;
      auth_request_set $user $upstream_http_x_auth_user;
      proxy_set_header X-Auth-User $user;
      error_page 401 = @signin;
      proxy_set_header Host $http_host;
      proxy_pass http://127.0.0.1:{app_port};
    }}
  }}
"#
        )
    };
    format!("{}{}", server("a.test"), server("b.test"))
}

#[test]
fn forward_auth_for_two_hosts_behind_nginx_signs_in_once() {
    let port = free_port();
    let admin = free_port();
    let upstream = start_upstream();
    let public = format!("http://login.test:{port}");
    let op = start_op(&public, 0);
    let up = format!("127.0.0.1:{}", upstream.port);
    let cfg = ConfigBuilder::for_binary(port, &public, admin, &op.issuer, upstream.port)
        .store("memory")
        .forward_auth_default(&["127.0.0.1/32"])
        .routes_first([
            RouteSpec::new("a", &up).host("a.test").groups(&[ADMINS]),
            RouteSpec::new("b", &up).host("b.test"),
        ])
        .tail("hosts: [a.test, b.test]\n");
    let gw = start_built(&cfg);
    let (_nginx, _dir) = start_nginx(port, &two_host_ingress(port, upstream.port));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.2", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "nginx on 127.0.0.2");
        std::thread::sleep(Duration::from_millis(25));
    }
    let url = |host: &str, path: &str| format!("http://{host}:{port}{path}");

    // Alice (an admin) at a.test: nginx's sign-in link, the binding on a.test, the IdP, and
    // back through the handoff to the page.
    let alice = browser_with(port, &["a.test", "b.test"]);
    let (r, landed) = alice.sign_in(&url("a.test", "/x"), "alice");
    assert_eq!(r.status(), 200, "{}", gw.log_text());
    assert_eq!(landed, url("a.test", "/x"));
    let seen = echo(alice.api_get(&url("a.test", "/x")));
    assert_eq!(seen["headers"]["x-auth-user"], ALICE_OID);
    let codes = codes_redeemed(&op);
    // b.test: no second trip to the IdP.
    let (r, landed) = alice.follow(&url("b.test", "/y"));
    assert_eq!(r.status(), 200);
    assert_eq!(landed, url("b.test", "/y"));
    assert_eq!(codes_redeemed(&op), codes);
    let seen = echo(alice.api_get(&url("b.test", "/y")));
    assert_eq!(seen["headers"]["x-auth-user"], ALICE_OID);

    // Bob is no admin: b.test lets him in, a.test's policy does not.
    let bob = browser_with(port, &["a.test", "b.test"]);
    let (r, _) = bob.sign_in(&url("b.test", "/y"), "bob");
    assert_eq!(r.status(), 200);
    let (r, landed) = bob.follow(&url("a.test", "/x"));
    assert_eq!(r.status(), 403, "{}", gw.log_text());
    assert_eq!(
        landed,
        url("a.test", "/x"),
        "handed off, then refused by a.test's policy"
    );

    // Signing out on a.test (through nginx) ends Alice's session on b.test too.
    alice.sign_out(&url("a.test", ""));
    let r = alice.get(&url("b.test", "/y"));
    assert_eq!(r.status(), 302, "sent to sign in again");
}
