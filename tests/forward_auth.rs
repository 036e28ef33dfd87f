//! Forward-auth behind a real nginx, configured the way ingress-nginx renders the
//! `auth-url`, `auth-signin` and `auth-response-headers` annotations (`auth_request` to the
//! gateway, 401 → sign-in redirect, identity headers copied from the auth response), and the
//! Traefik ForwardAuth header dialect against the gateway directly.

mod common;

use common::*;

/// Sends a prepared request to another URL (same headers).
trait SendTo {
    fn send_to(self, url: &str) -> reqwest::blocking::Response;
}

impl SendTo for reqwest::blocking::RequestBuilder {
    fn send_to(self, url: &str) -> reqwest::blocking::Response {
        let mut req = self.build().expect("request");
        *req.url_mut() = reqwest::Url::parse(url).expect("url");
        api().execute(req).expect("send")
    }
}

struct Topology {
    _op: OpenIdProvider,
    upstream: Upstream,
    gw: Gateway,
    _nginx: (Proc, tempfile::TempDir),
    /// What the browser talks to: nginx, in front of the app and the gateway's endpoints.
    front: String,
    /// The gateway's configuration (nginx dialect).
    cfg: ConfigBuilder,
}

impl Topology {
    /// A second gateway with the same configuration in Traefik's dialect (Traefik calls the
    /// gateway directly; the dialect is configuration, never guessed).
    fn traefik_gateway(&self) -> Gateway {
        let (port, admin) = (free_port(), free_port());
        start_built(
            &self
                .cfg
                .clone()
                .listen(port, admin)
                .forward_auth("traefik", &["127.0.0.1/32"]),
        )
    }
}

fn topology() -> Topology {
    let front_port = free_port();
    let gw_port = free_port();
    let admin = free_port();
    let front = format!("http://127.0.0.1:{front_port}");
    let upstream = start_upstream();
    let op = start_op(&front, 0);
    let cfg = ConfigBuilder::for_binary(gw_port, &front, admin, &op.issuer, upstream.port)
        .api_audience("api://authgate")
        .routes_first([
            RouteSpec::new("admin", &format!("127.0.0.1:{}", upstream.port))
                .prefix("/admin")
                .roles(&["Admin"]),
        ])
        .forward_auth_default(&["127.0.0.1/32"]);
    let gw = start_built(&cfg);
    let conf = nginx_like_ingress(front_port, gw_port, upstream.port);
    let nginx = start_nginx(front_port, &conf);
    Topology {
        _op: op,
        upstream,
        gw,
        _nginx: nginx,
        front,
        cfg,
    }
}

#[test]
fn behind_nginx_auth_request_sign_in_then_identity_headers_reach_the_app() {
    let t = topology();
    let b = Browser::new();
    // Unauthenticated: nginx's auth subrequest gets 401, nginx redirects to sign in.
    let r = b.get(&format!("{}/app/page", t.front));
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        loc,
        format!("{}/_authgate/sign_in?rd={}/app/page", t.front, t.front)
    );

    // Sign in through nginx; the callback comes back to the page first asked for.
    let (resp, url) = b.sign_in(&format!("{}/app/page", t.front), "alice");
    assert_eq!(resp.status(), 200);
    assert_eq!(url, format!("{}/app/page", t.front));

    // The app behind nginx receives the identity headers, and not the client's forgeries.
    let r = b
        .client
        .get(format!("{}/app/data", t.front))
        .header("accept", "application/json")
        .header("X-Auth-User", "forged-admin")
        .header("X-Auth-Roles", "Admin,Owner")
        .send()
        .unwrap();
    let seen = echo(r);
    let h = &seen["headers"];
    assert_identity(h, &ALICE, "test-idp");

    // Bob has no roles: the empty auth response header makes nginx drop X-Auth-Roles, so a
    // client-sent one cannot survive either.
    let b2 = Browser::new();
    b2.sign_in(&format!("{}/app/", t.front), "bob");
    let seen = echo(
        b2.client
            .get(format!("{}/app/x", t.front))
            .header("accept", "application/json")
            .header("X-Auth-Roles", "Admin")
            .send()
            .unwrap(),
    );
    assert!(seen["headers"].get("x-auth-roles").is_none(), "{seen}");

    // The route's policy holds behind the ingress too: Bob lacks the Admin role.
    let r = b2.get(&format!("{}/admin/", t.front));
    assert_eq!(r.status(), 403, "nginx relays the gateway's 403");
    assert_eq!(b.get(&format!("{}/admin/", t.front)).status(), 200);
    assert!(t.gw.log_text().contains("access to route admin denied"));

    let metrics = api()
        .get(format!("{}/metrics", t.gw.admin))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(r#"authgate_denials_total{reason="unauthenticated"}"#),
        "{metrics}"
    );
    let _ = &t.upstream;
}

#[test]
fn traefik_forward_auth_dialect_and_trust_rules() {
    let t = topology();
    let traefik_gw = t.traefik_gateway();
    let gw_auth = format!("{}/_authgate/auth", traefik_gw.url);
    let fwd = |rb: reqwest::blocking::RequestBuilder| {
        rb.header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Host", t.front.trim_start_matches("http://"))
            .header("X-Forwarded-Uri", "/app/report?id=7")
            .header("X-Forwarded-Method", "GET")
    };
    // No session: API callers get 401, browsers get sent to the IdP (Traefik relays it).
    assert_eq!(fwd(api().get(&gw_auth)).send().unwrap().status(), 401);
    let r = fwd(api().get(&gw_auth))
        .header("accept", "text/html")
        .send()
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(
        r.headers()["location"].to_str().unwrap().contains("/auth?"),
        "goes to the IdP"
    );

    // With a session: 2xx and the identity headers.
    let b = Browser::new();
    b.sign_in(&format!("{}/app/", t.front), "alice");
    let cookie = b.cookie(&t.front, "authgate_session").expect("session");
    let r = fwd(api().get(&gw_auth))
        .header("cookie", format!("authgate_session={cookie}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-user"], ALICE_OID);
    assert_eq!(
        r.headers()["x-auth-groups"],
        "6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1b1,c3d2a8f1-3e48-4a0f-8d53-7d0a7b6b2f11"
    );

    // A public route answers 2xx without identity; a path trick is refused.
    let described = |uri: &str| {
        api()
            .get(&gw_auth)
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Host", t.front.trim_start_matches("http://"))
            .header("X-Forwarded-Uri", uri)
    };
    let r = described("/public/x").send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-auth-user").is_none());
    assert_eq!(
        described("/public/%2e%2e/app").send().unwrap().status(),
        400
    );
    // Traefik passes client headers along: a client's X-Original-URL naming a public page
    // next to Traefik's X-Forwarded-Uri is not believed: refused, naming the dialect.
    let r = described("/app/secret")
        .header("X-Original-URL", format!("{}/public/", t.front))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("mixed_dialect"));
    // The nginx-dialect gateway, asked in Traefik's dialect, does not guess: refused.
    let r = described("/public/x").send_to(&format!("{}/_authgate/auth", t.gw.url));
    assert_eq!(r.status(), 403);
    // Nothing describing the request: refused.
    assert_eq!(api().get(&gw_auth).send().unwrap().status(), 400);

    // A gateway that trusts only 10.0.0.0/8 refuses forward-auth from 127.0.0.1.
    let port = free_port();
    let admin = free_port();
    let yaml = config_with(
        port,
        &t.front,
        admin,
        &t._op.issuer,
        t.upstream.port,
        "forward_auth:\n  enabled: true\n  trusted_proxies: [\"10.0.0.0/8\"]",
    );
    let strict = start_gateway(port, admin, &yaml);
    let r = api()
        .get(format!("{}/_authgate/auth", strict.url))
        .header("X-Original-URL", format!("{}/app/", t.front))
        .header("cookie", format!("authgate_session={cookie}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(strict
        .log_text()
        .contains("not in forward_auth.trusted_proxies"));
}

#[test]
fn bearer_tokens_are_judged_by_forward_auth() {
    let t = topology();
    let good = t._op.app_token(TENANT, "daemon", "api://authgate");
    // Through nginx (auth_request passes the client's Authorization header to the gateway):
    // the app reaches the upstream with the token's identity, not the forged header.
    let r = api()
        .get(format!("{}/app/report", t.front))
        .header("accept", "application/json")
        .header("X-Auth-User", "forged-admin")
        .bearer_auth(&good)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = &echo(r)["headers"];
    assert_eq!(h["x-auth-name"], "daemon");
    assert_eq!(h["x-auth-roles"], "Reports.Read");
    assert_eq!(h["x-auth-tenant"], TENANT);
    assert_ne!(h["x-auth-user"], "forged-admin");
    // The route policy holds for tokens too: /admin needs the Admin role.
    let r = api()
        .get(format!("{}/admin/", t.front))
        .bearer_auth(&good)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403, "nginx relays the gateway's 403");

    // At the gateway in Traefik's dialect: a bad token is refused with its reason and a
    // challenge, never sent to sign in.
    let traefik_gw = t.traefik_gateway();
    let gw_auth = format!("{}/_authgate/auth", traefik_gw.url);
    let traefik = |token: &str| {
        api()
            .get(&gw_auth)
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Host", t.front.trim_start_matches("http://"))
            .header("X-Forwarded-Uri", "/app/report")
            .header("accept", "text/html")
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    let r = traefik(&good);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-name"], "daemon");
    let wrong_aud = t._op.app_token(TENANT, "daemon", "api://someone-else");
    for bad in [wrong_aud.as_str(), "not-a-jwt"] {
        let r = traefik(bad);
        assert_eq!(r.status(), 401);
        let challenge = r.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("invalid_token"), "{challenge}");
        assert!(r.headers().get("x-auth-user").is_none());
    }
    let unassigned = t._op.app_token(TENANT, "daemon-norole", "api://authgate");
    let r = traefik(&unassigned);
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("x-auth-user").is_none());
    let m = scrape(&traefik_gw.admin);
    assert!(metric(&m, r#"authgate_denials_total{reason="invalid_token"}"#) >= 2.0);
    let _ = &t.upstream;
}
