//! The Entra preset end to end: the real gateway binary against the Entra-shaped OpenID
//! provider (npm `oidc-provider`, two tenants, `/organizations` with the `{tenantid}` issuer
//! template, client-credentials app tokens) and its Microsoft Graph stand-in.

mod common;

use common::*;
use serde_json::Value;

const OTHER_TENANT: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

/// A gateway config with one `type: entra` provider named `entra`; `provider_extra` adds
/// provider keys (indented four spaces), `session_extra` session keys.
fn entra_config(
    port: u16,
    admin: u16,
    op: &OpenIdProvider,
    tenant: &str,
    upstream: u16,
    provider_extra: &str,
    session_extra: &str,
) -> String {
    let up = format!("127.0.0.1:{upstream}");
    ConfigBuilder::binary(port, &format!("http://127.0.0.1:{port}"), admin)
        .entra("entra", &op.instance(), None)
        .tenant(tenant)
        .group_name(ADMINS, "Admins")
        .provider_lines(provider_extra)
        .route(RouteSpec::new("app", &up).require_assignment())
        .route(
            RouteSpec::new("admin", &up)
                .prefix("/admin")
                .groups(&["Admins"]),
        )
        .route(
            RouteSpec::new("reports", &up)
                .prefix("/reports")
                .roles(&["Admin"]),
        )
        .route(
            RouteSpec::new("contoso", &up)
                .prefix("/contoso")
                .email_domains(&["contoso.example"]),
        )
        .route(
            RouteSpec::new("api", &up)
                .prefix("/api")
                .roles(&["Reports.Read"]),
        )
        .route(RouteSpec::new("public", &up).prefix("/public").public())
        .tail(session_extra)
        .yaml()
}

struct Entra {
    gw: Gateway,
    op: OpenIdProvider,
    _upstream: Upstream,
}

fn start(tenant: &str, provider_extra: &str, session_extra: &str) -> Entra {
    let port = free_port();
    let admin = free_port();
    let upstream = start_upstream();
    let op = start_op_for(&[&format!("http://127.0.0.1:{port}")], "entra", 0, &[]);
    let yaml = entra_config(
        port,
        admin,
        &op,
        tenant,
        upstream.port,
        provider_extra,
        session_extra,
    );
    let gw = start_gateway(port, admin, &yaml);
    Entra {
        gw,
        op,
        _upstream: upstream,
    }
}

/// A series of the gateway's metrics (0 when absent).
fn gw_metric(gw: &Gateway, series: &str) -> f64 {
    metric(&scrape(&gw.admin), series)
}

/// What the upstream saw of a request from this browser (JSON, not the HTML page).
fn seen(b: &Browser, url: &str) -> Value {
    let r = b.api_get(url);
    assert_eq!(r.status(), 200, "{url}");
    echo(r)
}

fn json_get(url: &str, cookie: Option<&str>, bearer: Option<&str>) -> (u16, Value, String) {
    let mut req = api().get(url).header("accept", "application/json");
    if let Some(c) = cookie {
        req = req.header("cookie", format!("authgate_session={c}"));
    }
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let r = req.send().expect("request");
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = r.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
        challenge,
    )
}

/// Single tenant: the identity Entra-style (oid, tid, trusted email, mapped group names) and
/// every policy condition allowing and denying, as a page for people and JSON for programs.
#[test]
fn single_tenant_identity_and_route_policies() {
    let t = start(TENANT, "", "");
    let gw = &t.gw.url;

    let alice = Browser::new();
    let (r, _) = alice.sign_in(&format!("{gw}/admin/panel"), "alice");
    assert_eq!(r.status(), 200);
    let h = &seen(&alice, &format!("{gw}/admin/panel"))["headers"];
    assert_eq!(h["x-auth-user"], ALICE_OID);
    assert_eq!(h["x-auth-tenant"], TENANT);
    assert_eq!(h["x-auth-email"], "alice@contoso.example");
    // The mapped group goes upstream by name, the unmapped one by ID.
    assert_eq!(h["x-auth-groups"], format!("Admins,{STAFF}"));
    assert_eq!(h["x-auth-roles"], "Reader,Admin");
    assert_eq!(alice.get(&format!("{gw}/reports")).status(), 200);

    // Carol's mail attribute is unverified (no xms_edov): her UPN is what the gateway trusts.
    let carol = Browser::new();
    let (r, _) = carol.sign_in(&format!("{gw}/contoso/home"), "carol");
    assert_eq!(r.status(), 200, "carol's UPN is in contoso.example");
    let h = &seen(&carol, &format!("{gw}/contoso/home"))["headers"];
    assert_eq!(h["x-auth-email"], "carol@contoso.example");
    // Not in Admins: a page for the browser, with the reason and a way to switch accounts...
    let r = carol.get(&format!("{gw}/admin"));
    assert_eq!(r.status(), 403);
    let page = r.text().unwrap();
    assert!(page.contains("Reason: missing_group"), "{page}");
    assert!(page.contains("carol@contoso.example"), "{page}");
    assert!(page.contains("/_authgate/sign_out"), "{page}");
    assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"));
    // ...and JSON for a program.
    let session = carol
        .cookie(gw, "authgate_session")
        .expect("carol's session");
    let (status, body, _) = json_get(&format!("{gw}/admin"), Some(&session), None);
    assert_eq!(status, 403);
    assert_eq!(body["error"], "missing_group");
    let (status, body, _) = json_get(&format!("{gw}/reports"), Some(&session), None);
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("missing_role"))
    );

    // Bob holds no app role: signed in, but not assigned to the app.
    let bob = Browser::new();
    let (r, _) = bob.sign_in(&format!("{gw}/"), "bob");
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().contains("not_assigned"));

    assert!(gw_metric(&t.gw, "authgate_denials_total{reason=\"missing_group\"}") >= 2.0);
    assert!(gw_metric(&t.gw, "authgate_denials_total{reason=\"not_assigned\"}") >= 1.0);
    let log = t.gw.log_text();
    assert!(
        log.contains("access to route admin denied") && log.contains("missing_group"),
        "{log}"
    );
}

/// Multi-tenant (`organizations`): the `{tenantid}` template is checked against each token's
/// tid, and the allow-list keeps other tenants out; a tenant let in on purpose still cannot
/// pass as another tenant's user by its mail attribute (nOAuth).
#[test]
fn multi_tenant_allow_list_and_noauth() {
    let port = free_port();
    let port_any = free_port();
    let (admin, admin_any) = (free_port(), free_port());
    let upstream = start_upstream();
    let op = start_op_for(
        &[
            &format!("http://127.0.0.1:{port}"),
            &format!("http://127.0.0.1:{port_any}"),
        ],
        "entra",
        0,
        &[],
    );
    let only_home = format!("    allowed_tenants: [\"{TENANT}\"]");
    let gw = start_gateway(
        port,
        admin,
        &entra_config(
            port,
            admin,
            &op,
            "organizations",
            upstream.port,
            &only_home,
            "",
        ),
    );
    let any = "    allowed_tenants: any";
    let gw_any = start_gateway(
        port_any,
        admin_any,
        &entra_config(
            port_any,
            admin_any,
            &op,
            "organizations",
            upstream.port,
            any,
            "",
        ),
    );

    // Alice, home tenant, through home realm discovery and the templated issuer.
    let alice = Browser::new();
    let (r, _) = alice.sign_in(&format!("{}/admin", gw.url), "alice");
    assert_eq!(r.status(), 200);
    let h = &seen(&alice, &format!("{}/admin", gw.url))["headers"];
    assert_eq!(h["x-auth-tenant"], TENANT);

    // Mallory's tenant is not on the list: denied at sign-in, with no session.
    let mallory = Browser::new();
    let (r, _) = mallory.sign_in(&format!("{}/", gw.url), "mallory");
    assert_eq!(r.status(), 403);
    let page = r.text().unwrap();
    assert!(
        page.contains("wrong_tenant") && page.contains(OTHER_TENANT),
        "{page}"
    );
    assert!(mallory.cookie(&gw.url, "authgate_session").is_none());
    assert!(gw.log_text().contains("denied (wrong_tenant)"));

    // Every tenant allowed: Mallory signs in, but her mail attribute (the victim's address,
    // unverified) is not trusted, so neither the header nor an email-domain rule believe it.
    let mallory = Browser::new();
    let (r, _) = mallory.sign_in(&format!("{}/", gw_any.url), "mallory");
    assert_eq!(r.status(), 200);
    let r = mallory.get(&format!("{}/contoso/", gw_any.url));
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().contains("email_domain"));
    let h = &seen(&mallory, &format!("{}/", gw_any.url))["headers"];
    assert_eq!(h["x-auth-tenant"], OTHER_TENANT);
    assert_eq!(h["x-auth-email"], "mallory@fabrikam.example");
}

/// Groups overage: Olivia's token has `_claim_names` instead of groups; the gateway asks the
/// Graph stand-in with its own app token and lets her into the Admins route. With Graph down
/// she is denied, with that reason, and gets no session.
#[test]
fn groups_overage_resolved_through_graph_or_denied() {
    let port = free_port();
    let port_down = free_port();
    let (admin, admin_down) = (free_port(), free_port());
    let upstream = start_upstream();
    let op = start_op_for(
        &[
            &format!("http://127.0.0.1:{port}"),
            &format!("http://127.0.0.1:{port_down}"),
        ],
        "entra",
        0,
        &[],
    );
    let api = "    api_audience: \"api://authgate\"";
    let graph = format!("    graph_url: \"{}/graph\"\n{api}", op.instance());
    // 230 group IDs do not fit a cookie: overage tenants keep sessions server-side.
    let memory = "  store: memory";
    let gw = start_gateway(
        port,
        admin,
        &entra_config(port, admin, &op, TENANT, upstream.port, &graph, memory),
    );
    let olivia = Browser::new();
    let (r, _) = olivia.sign_in(&format!("{}/admin/", gw.url), "olivia");
    assert_eq!(r.status(), 200, "Admins came from Graph: {}", gw.log_text());
    let groups = seen(&olivia, &format!("{}/admin/", gw.url))["headers"]["x-auth-groups"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(groups.split(',').count(), 230);
    assert!(groups.split(',').any(|g| g == "Admins"));
    assert!(gw.log_text().contains("230 groups from Graph"));
    // Her API token has the same overage: its groups come from Graph too.
    let token = op.user_token(
        TENANT,
        "olivia",
        &format!("{}/_authgate/callback/entra", gw.url),
        "api://authgate",
    );
    let (status, body, _) = json_get(&format!("{}/admin/", gw.url), None, Some(&token));
    assert_eq!(status, 200, "{body}");
    let groups = body["headers"]["x-auth-groups"].as_str().unwrap();
    assert_eq!(groups.split(',').count(), 230);

    let closed = free_port();
    let down = format!("    graph_url: \"http://127.0.0.1:{closed}\"\n{api}");
    let gw_down = start_gateway(
        port_down,
        admin_down,
        &entra_config(
            port_down,
            admin_down,
            &op,
            TENANT,
            upstream.port,
            &down,
            memory,
        ),
    );
    let olivia = Browser::new();
    let (r, _) = olivia.sign_in(&format!("{}/admin/", gw_down.url), "olivia");
    assert_eq!(r.status(), 503);
    let page = r.text().unwrap();
    assert!(page.contains("groups_unresolved"), "{page}");
    assert!(olivia.cookie(&gw_down.url, "authgate_session").is_none());
    assert!(gw_down.log_text().contains("Graph unreachable"));
    assert_eq!(
        gw_metric(
            &gw_down,
            "authgate_sign_ins_total{provider=\"entra\",result=\"groups_unresolved\"}"
        ),
        1.0
    );
    // Her API token: refused with the same reason, as a retryable 503.
    let (status, body, _) = json_get(&format!("{}/admin/", gw_down.url), None, Some(&token));
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("groups_unresolved"))
    );
    // Alice's groups fit in her token: Graph being down does not matter to her.
    let alice = Browser::new();
    let (r, _) = alice.sign_in(&format!("{}/admin/", gw_down.url), "alice");
    assert_eq!(r.status(), 200);
}

/// The real AADSTS50105 redirect (captured from Entra by nais/device), delivered to the
/// gateway's callback for a sign-in this browser started: a 403 page saying the user is not
/// assigned, with the trace and correlation IDs, and no redirect back to the IdP.
#[test]
fn real_aadsts50105_redirect_renders_the_denial_page() {
    let t = start(TENANT, "", "");
    let b = Browser::new();
    let r = b.get(&format!("{}/app", t.gw.url));
    assert_eq!(r.status(), 302);
    let state = state_of(&r);
    let capture = std::fs::read_to_string(
        "tests/fixtures/oidc/errors/nais_device_AADSTS50105_redirect.url.txt",
    )
    .expect("capture");
    // The capture's own query string, byte for byte, with this sign-in's state.
    let query = capture.trim().split_once('?').unwrap().1;
    let query = query.replace("state=8MuwmgykQzr1FCT2", &format!("state={state}"));
    let r = b.get(&format!("{}/_authgate/callback/entra?{query}", t.gw.url));
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("location").is_none());
    let page = r.text().unwrap();
    assert!(
        page.contains("You are not assigned to this application"),
        "{page}"
    );
    assert!(page.contains("AADSTS50105"));
    assert!(page.contains("Trace ID: 320db82b-71a0-4520-a16f-f962e19a9000"));
    assert!(page.contains("Correlation ID: ba8b945c-1cd8-4344-b355-b40c63174248"));
    assert!(page.contains("&#39;{EmailHidden}&#39;"), "escaped, not raw");
    assert!(b.cookie(&t.gw.url, "authgate_session").is_none());
    assert!(t.gw.log_text().contains("returned an error (not_assigned)"));
    assert_eq!(
        gw_metric(
            &t.gw,
            "authgate_sign_ins_total{provider=\"entra\",result=\"not_assigned\"}"
        ),
        1.0
    );
}

/// A browser that signs in but never keeps its session is sent to the IdP five times in a
/// minute at most; then it gets a (4xx) page saying so, not a sixth redirect. Tabs that only
/// start sign-ins are not a loop, and a client-made loop counter is not believed.
#[test]
fn sign_in_loop_is_broken() {
    let t = start(TENANT, "", "");
    // Six tabs reopened at once, none finished yet: six redirects, no loop page.
    let tabs = Browser::new();
    for i in 0..6 {
        assert_eq!(
            tabs.get(&format!("{}/app", t.gw.url)).status(),
            302,
            "tab {i}"
        );
    }
    // A forged counter (the loop cookie is sealed) is ignored, and is never a 5xx.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let r = api()
        .get(format!("{}/app", t.gw.url))
        .header("accept", "text/html")
        .header("cookie", format!("authgate_session_loop=99.{now}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 302);
    // The real loop: each sign-in completes, and the session cookie is lost every time.
    let b = Browser::new();
    let gw = reqwest::Url::parse(&t.gw.url).unwrap();
    for i in 0..5 {
        let callback = b.login_until_callback(&format!("{}/app", t.gw.url), "alice");
        let r = b.get(&callback);
        assert_eq!(r.status(), 302, "sign-in {i} completes");
        b.jar
            .add_cookie_str("authgate_session=gone; Path=/; Max-Age=0", &gw);
        assert!(b.cookie(&t.gw.url, "authgate_session").is_none());
    }
    let r = b.get(&format!("{}/app", t.gw.url));
    assert_eq!(r.status(), 429);
    assert!(r.text().unwrap().contains("going around in circles"));
    assert!(t.gw.log_text().contains("sign-in loop"));
    assert_eq!(
        gw_metric(&t.gw, "authgate_denials_total{reason=\"sign_in_loop\"}"),
        1.0
    );
    // Another browser is not affected.
    assert_eq!(
        Browser::new().get(&format!("{}/app", t.gw.url)).status(),
        302
    );
}

/// API clients with Entra app-only access tokens: audience, expiry, tenant, signature and
/// assignment (roles) checked, then the same route policy as people.
#[test]
fn bearer_tokens_for_api_clients() {
    let t = start(
        TENANT,
        "    api_audience: \"api://authgate\"\n    clock_skew: 0s",
        "",
    );
    let api_url = format!("{}/api/reports", t.gw.url);

    let good = t.op.app_token(TENANT, "daemon", "api://authgate");
    let r = api()
        .get(&api_url)
        .bearer_auth(&good)
        .send()
        .expect("request");
    assert_eq!(r.status(), 200);
    let h = &echo(r)["headers"];
    assert_eq!(h["x-auth-roles"], "Reports.Read");
    assert_eq!(h["x-auth-name"], "daemon");
    assert_eq!(h["x-auth-tenant"], TENANT);
    assert!(h.get("x-auth-email").is_none());
    // The same token on a route that needs a group the app is not in.
    let (status, body, _) = json_get(&format!("{}/admin", t.gw.url), None, Some(&good));
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("missing_group"))
    );

    // Refusals, each with its reason.
    let wrong_aud = t.op.app_token(TENANT, "daemon", "api://someone-else");
    let (status, body, challenge) = json_get(&api_url, None, Some(&wrong_aud));
    assert_eq!(status, 401);
    assert!(challenge.starts_with("Bearer ") && challenge.contains("invalid_token"));
    assert!(
        body["message"].as_str().unwrap().contains("audience"),
        "{body}"
    );

    let other_tenant = t.op.app_token(OTHER_TENANT, "daemon", "api://authgate");
    let (status, body, _) = json_get(&api_url, None, Some(&other_tenant));
    assert_eq!(status, 401);
    assert!(
        body["message"].as_str().unwrap().contains("issuer"),
        "{body}"
    );

    let unassigned = t.op.app_token(TENANT, "daemon-norole", "api://authgate");
    let (status, body, _) = json_get(&api_url, None, Some(&unassigned));
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("not_assigned"))
    );

    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let (status, body, _) = json_get(&api_url, None, Some(&tampered));
    assert_eq!(status, 401, "{body}");

    let (status, _, _) = json_get(&api_url, None, Some("not-a-jwt"));
    assert_eq!(status, 401);

    let short = t.op.app_token(TENANT, "daemon-short", "api://authgate");
    assert_eq!(json_get(&api_url, None, Some(&short)).0, 200);
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let (status, body, _) = json_get(&api_url, None, Some(&short));
    assert_eq!(status, 401);
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    assert!(gw_metric(&t.gw, "authgate_denials_total{reason=\"invalid_token\"}") >= 5.0);
    let log = t.gw.log_text();
    assert!(log.contains("bearer token on route api refused"), "{log}");
}

/// One sign-in in a real browser (Debian's Chromium, driven by npm playwright-core): the
/// provider's login form, the upstream with the identity headers, then a route the user lacks
/// the group for. Screenshots of both pages are kept as artifacts in
/// target/tmp/artifacts/browser/.
#[test]
fn real_browser_signs_in_and_sees_the_denial_page() {
    let t = start(TENANT, "", "");
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts/browser");
    let _ = std::fs::remove_dir_all(&shots);
    let out = std::process::Command::new("node")
        .arg(testenv().join("browser-e2e.mjs"))
        .current_dir(testenv())
        .env("GATEWAY", &t.gw.url)
        .env("LOGIN", "carol")
        .env("ALLOWED", "/contoso/welcome")
        .env("DENIED", "/admin/settings")
        .env("SHOTS", &shots)
        .output()
        .expect("run node browser-e2e.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser run failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let op_origin = t.op.instance();
    assert!(
        seen["login_url"].as_str().unwrap().starts_with(&op_origin),
        "{seen}"
    );
    assert_eq!(
        seen["signed_in_url"],
        format!("{}/contoso/welcome", t.gw.url)
    );
    assert_eq!(seen["signed_in_title"], "Upstream app");
    assert_eq!(
        seen["upstream_user"],
        "00000000-0000-0000-ca70-1ca701ca7011"
    );
    assert_eq!(seen["upstream_groups"], STAFF);
    assert_eq!(seen["denied_status"], 403);
    assert_eq!(
        seen["denied_heading"],
        "You do not have access to this page"
    );
    let text = seen["denied_text"].as_str().unwrap();
    assert!(text.contains("Reason: missing_group"), "{text}");
    assert!(text.contains("carol@contoso.example"), "{text}");
    assert_eq!(seen["denied_sign_out_link"], "/_authgate/sign_out");
    assert_eq!(
        seen["denied_overflows"], false,
        "the page fits a phone screen"
    );
    for name in ["signed-in.png", "denied.png", "denied-narrow.png"] {
        let png = std::fs::read(shots.join(name)).expect(name);
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 2000,
            "{name}"
        );
    }
}

#[test]
fn delegated_bearer_tokens_for_signed_in_users() {
    let t = start(TENANT, "    api_audience: \"api://authgate\"", "");
    let callback = format!("{}/_authgate/callback/entra", t.gw.url);
    // alice's token, got by an app she signed in to (authorization code + resource=).
    let alice =
        t.op.user_token(TENANT, "alice", &callback, "api://authgate");
    let (status, body, _) = json_get(&format!("{}/reports/q1", t.gw.url), None, Some(&alice));
    assert_eq!(status, 200, "{body}");
    let h = &body["headers"];
    assert_eq!(h["x-auth-user"], ALICE_OID);
    assert_eq!(h["x-auth-tenant"], TENANT);
    assert_eq!(h["x-auth-roles"], "Reader,Admin");
    assert_eq!(h["x-auth-groups"], format!("Admins,{STAFF}"));
    assert_eq!(h["x-auth-email"], "alice@contoso.example", "the UPN");
    let (status, _, _) = json_get(&format!("{}/admin/", t.gw.url), None, Some(&alice));
    assert_eq!(status, 200, "alice is in Admins");

    // bob has no app role: a delegated token needs none (only app-only tokens do), but the
    // routes that ask for a role or an assignment still say no.
    let bob = t.op.user_token(TENANT, "bob", &callback, "api://authgate");
    let (status, body, _) = json_get(&format!("{}/contoso/x", t.gw.url), None, Some(&bob));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["headers"]["x-auth-user"],
        "00000000-0000-0000-a1c4-7f3e2b1d9c55"
    );
    let (status, body, _) = json_get(&format!("{}/", t.gw.url), None, Some(&bob));
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("not_assigned"))
    );
    let (status, body, _) = json_get(&format!("{}/reports/q1", t.gw.url), None, Some(&bob));
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("missing_role"))
    );

    // A user token for another API, and one from another tenant: refused, with the reason.
    let refused = |path: &str, token: &str, reason: &str| {
        let (status, body, _) = json_get(&format!("{}{path}", t.gw.url), None, Some(token));
        assert_eq!(status, 401);
        assert!(body["message"].as_str().unwrap().contains(reason), "{body}");
    };
    let elsewhere =
        t.op.user_token(TENANT, "alice", &callback, "api://someone-else");
    refused("/reports/q1", &elsewhere, "audience");
    let mallory =
        t.op.user_token(OTHER_TENANT, "mallory", &callback, "api://authgate");
    refused("/contoso/x", &mallory, "issuer");
}

/// Every Entra error the README explains, through the real callback with this browser's real
/// state: its own page (status, title), the code and IDs support asks for, the reason logged
/// and counted, no session, and never a 5xx or another redirect to the IdP.
#[test]
fn entra_error_pages_explain_each_code() {
    let t = start(TENANT, "", "");
    for (code, error, status, title, reason) in [
        (
            53003,
            "access_denied",
            403,
            "Blocked by your organization's access policy",
            "conditional_access",
        ),
        (
            65001,
            "consent_required",
            403,
            "This application needs consent",
            "consent_required",
        ),
        (
            90072,
            "access_denied",
            403,
            "Your account is not a member of this organization",
            "external_account",
        ),
        (
            50020,
            "access_denied",
            403,
            "Your account is not a member of this organization",
            "external_account",
        ),
        (
            50011,
            "invalid_request",
            400,
            "This gateway is not registered correctly",
            "redirect_uri_mismatch",
        ),
        (
            700016,
            "unauthorized_client",
            400,
            "This gateway is not registered correctly",
            "unknown_client",
        ),
    ] {
        let b = Browser::new();
        let r = b.get(&format!("{}/app", t.gw.url));
        let state = state_of(&r);
        let description = format!(
            "AADSTS{code}: Shaped after Entra's message.\r\nTrace ID: 0b1c2d3e-0000-4000-8000-00000000{code:04}\r\nCorrelation ID: 11111111-2222-3333-4444-555555555555\r\nTimestamp: 2026-12-06 00:00:00Z"
        );
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("error", error)
            .append_pair("error_description", &description)
            .append_pair("state", &state)
            .finish();
        let r = b.get(&format!("{}/_authgate/callback/entra?{q}", t.gw.url));
        assert_eq!(r.status().as_u16(), status, "AADSTS{code}");
        assert!(r.headers().get("location").is_none(), "AADSTS{code}");
        let page = r.text().unwrap();
        assert!(page.contains(&pages_escape(title)), "AADSTS{code}: {page}");
        assert!(page.contains(&format!("AADSTS{code}")), "AADSTS{code}");
        assert!(
            page.contains("Correlation ID: 11111111-2222-3333-4444-555555555555"),
            "AADSTS{code}"
        );
        assert!(b.cookie(&t.gw.url, "authgate_session").is_none());
        assert!(
            t.gw.log_text()
                .contains(&format!("returned an error ({reason})")),
            "AADSTS{code}"
        );
    }
    let m = scrape(&t.gw.admin);
    assert_eq!(
        metric(
            &m,
            "authgate_sign_ins_total{provider=\"entra\",result=\"external_account\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            "authgate_sign_ins_total{provider=\"entra\",result=\"unknown_client\"}"
        ),
        1.0
    );
}

/// The `state` of the sign-in a redirect to the IdP starts.
fn state_of(r: &reqwest::blocking::Response) -> String {
    reqwest::Url::parse(&location(r))
        .expect("authorize URL")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state")
}

/// A title as the page writes it (HTML-escaped apostrophes).
fn pages_escape(s: &str) -> String {
    s.replace('\'', "&#39;")
}

/// Entra's logout names the user by `logout_hint` (her `login_hint` claim). The session keeps
/// no ID token for it (Entra ID reads none: ~1.6 KB less per session in a server-side store),
/// unless a route passes ID tokens upstream; then the logout sends it too.
#[test]
fn entra_logout_names_the_user_by_hint_and_the_id_token_is_kept_only_for_a_route() {
    for passed in [false, true] {
        let port = free_port();
        let admin = free_port();
        let upstream = start_upstream();
        let op = start_op_for(&[&format!("http://127.0.0.1:{port}")], "entra", 0, &[]);
        let route = RouteSpec::new("app", &format!("127.0.0.1:{}", upstream.port));
        let route = if passed {
            route.with("pass_id_token: true")
        } else {
            route
        };
        let yaml = ConfigBuilder::binary(port, &format!("http://127.0.0.1:{port}"), admin)
            .entra("entra", &op.instance(), None)
            .tenant(TENANT)
            .store("memory")
            .route(route)
            .yaml();
        let gw = start_gateway(port, admin, &yaml);
        let alice = Browser::new();
        let (r, _) = alice.sign_in(&format!("{}/x", gw.url), "alice");
        assert_eq!(r.status(), 200, "{}", gw.log_text());
        let id_token_upstream = seen(&alice, &format!("{}/x", gw.url))["headers"]
            .get("x-auth-id-token")
            .is_some();
        assert_eq!(id_token_upstream, passed);
        let out = alice.sign_out(&gw.url);
        let location = out.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        assert!(location.starts_with(&op.instance()), "{location}");
        let url = url::Url::parse(&location).expect("a URL");
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        assert_eq!(
            param("logout_hint").as_deref(),
            Some("O.CiQ2ZTZhM2MwYy0xZDg3LTRkMzktOWI5YS05ZDU0YTBmMGExYjE"),
            "{location}"
        );
        assert_eq!(param("id_token_hint").is_some(), passed, "{location}");
        assert!(param("post_logout_redirect_uri").is_some(), "{location}");
    }
}
