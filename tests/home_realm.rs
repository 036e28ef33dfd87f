//! Home-realm discovery through the real binary: two Entra tenants (the Entra-shaped
//! `oidc-provider`: one `organizations` provider whose domains map to tenants) and a SAML
//! provider (SimpleSAMLphp) behind one gateway, one route accepting both. The address page
//! sends each domain to its own IdP with the hints, an unknown domain to the default the
//! same way, and a sign-in that comes back from another tenant than the domain's is refused.

mod common;

use common::*;
use reqwest::blocking::Response;

const OTHER_TENANT: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

struct Env {
    gw: Gateway,
    op: OpenIdProvider,
    _idp: SimpleSaml,
    _upstream: Upstream,
}

fn start(home_realm: &str) -> Env {
    let port = free_port();
    let admin = free_port();
    let gw_url = format!("http://127.0.0.1:{port}");
    let upstream = start_upstream();
    let op = start_op_for(&[&gw_url], "entra", 0, &[]);
    let sp_base = format!("{gw_url}/sp/ssp");
    let idp = start_simplesamlphp(&sp_base, &format!("{gw_url}/_authgate/saml/ssp"));
    let up = format!("127.0.0.1:{}", upstream.port);
    let cfg = ConfigBuilder::binary(port, &gw_url, admin)
        .entra("entra", &op.instance(), None)
        .tenant("organizations")
        .provider_lines(&format!(
            "    allowed_tenants: [\"{TENANT}\", \"{OTHER_TENANT}\"]\n    domains:\n      contoso.example: \"{TENANT}\"\n      fabrikam.example: \"{}\"",
            OTHER_TENANT.to_uppercase()
        ))
        .saml("ssp-assertion", &format!("{sp_base}-assertion"))
        .provider_lines(&format!(
            "    idp_metadata_url: \"{}\"\n    domains: [university.example, \"*.university.example\"]",
            idp.metadata_url()
        ))
        .route(RouteSpec::new("app", &up).providers(&["entra", "ssp-assertion"]))
        .route(
            RouteSpec::new("saml-only", &up)
                .prefix("/saml-only")
                .providers(&["ssp-assertion"]),
        )
        .tail(home_realm);
    let gw = start_built(&cfg);
    Env {
        gw,
        op,
        _idp: idp,
        _upstream: upstream,
    }
}

/// The address form as the page posts it (same origin).
fn submit(b: &Browser, gw: &Gateway, email: &str, rd: &str, remember: bool) -> Response {
    let mut form = vec![("email", email), ("rd", rd)];
    if remember {
        form.push(("remember", "1"));
    }
    b.client
        .post(format!("{}/_authgate/sign_in", gw.url))
        .header("origin", &gw.url)
        .header("accept", "text/html")
        .form(&form)
        .send()
        .expect("post address")
}

fn params(r: &Response) -> (String, Vec<(String, String)>) {
    let to = reqwest::Url::parse(&location(r)).expect("IdP URL");
    let q = to
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (
        format!("{}{}", to.origin().ascii_serialization(), to.path()),
        q,
    )
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// What an answer shows a visitor besides where it points: status, header names, body.
fn shape(r: Response) -> (u16, Vec<String>, String) {
    let mut names: Vec<String> = r.headers().keys().map(|k| k.to_string()).collect();
    names.sort();
    names.retain(|n| n != "date");
    (r.status().as_u16(), names, r.text().unwrap_or_default())
}

#[test]
fn each_domain_lands_on_its_own_idp_and_a_foreign_tenant_is_refused() {
    let env = start("home_realm:\n  default_provider: entra\n");
    let gw = &env.gw;
    let entra = format!("{}/organizations/v2.0", env.op.instance());

    // No session on a route with two providers: the address page, the same for everyone.
    let b = Browser::new();
    let r = b.get(&format!("{}/reports?q=1", gw.url));
    assert_eq!(r.status(), 302);
    assert!(
        location(&r).ends_with("/_authgate/sign_in?rd=%2Freports%3Fq%3D1"),
        "{}",
        location(&r)
    );
    let page = b.get(&location(&r));
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().unwrap();
    assert!(html.contains("name=\"email\""), "{html}");
    for secret in ["contoso", "fabrikam", "university", "entra", "ssp-"] {
        assert!(!html.contains(secret), "the page names {secret}: {html}");
    }
    // A route with one provider and no tenant map signs in directly.
    let r = b.get(&format!("{}/saml-only/", gw.url));
    assert!(location(&r).contains("SSOService.php"), "{}", location(&r));

    // Each domain to its own IdP, with the hints.
    let (to, q) = params(&submit(&b, gw, "alice@contoso.example", "/", false));
    assert!(to.starts_with(&entra), "{to}");
    assert_eq!(param(&q, "login_hint"), Some("alice@contoso.example"));
    assert_eq!(param(&q, "domain_hint"), Some("contoso.example"));
    let (to, q) = params(&submit(&b, gw, "Mallory@Fabrikam.EXAMPLE", "/", false));
    assert!(to.starts_with(&entra), "{to}");
    assert_eq!(param(&q, "domain_hint"), Some("fabrikam.example"));
    for address in ["alice@university.example", "alice@cs.university.example"] {
        let (to, q) = params(&submit(&b, gw, address, "/", false));
        assert!(to.ends_with("/saml2/idp/SSOService.php"), "{address}: {to}");
        assert_eq!(param(&q, "login_hint"), Some(address));
        assert!(param(&q, "domain_hint").is_none(), "{q:?}");
        assert!(param(&q, "SAMLRequest").is_some());
    }
    // An unknown domain goes to the default, answered the same way as a known one.
    let unknown = submit(&b, gw, "eve@unknown.example", "/", false);
    let (to, q) = params(&unknown);
    assert!(to.starts_with(&entra), "{to}");
    assert_eq!(param(&q, "login_hint"), Some("eve@unknown.example"));
    assert_eq!(param(&q, "domain_hint"), Some("unknown.example"), "{q:?}");
    let known = submit(&b, gw, "eve@contoso.example", "/", false);
    assert_eq!(shape(unknown), shape(known));
    // Lookalikes of the SAML provider's domains are unknown: to the default.
    for lookalike in [
        "x@university.example.evil",
        "x@evil-university.example",
        "x@cs.university.example.evil",
    ] {
        let (to, _) = params(&submit(&b, gw, lookalike, "/", false));
        assert!(to.starts_with(&entra), "{lookalike}: {to}");
    }

    // Alice (home tenant) signs in through her domain and lands where she was going.
    let alice = Browser::new();
    let r = submit(&alice, gw, "alice@contoso.example", "/reports?q=1", false);
    let callback = alice.login_until_callback(&location(&r), "alice");
    let (r, url) = alice.follow(&callback);
    assert_eq!(r.status(), 200, "{}", gw.log_text());
    assert!(url.ends_with("/reports?q=1"), "{url}");
    let seen = echo(alice.api_get(&format!("{}/", gw.url)));
    assert_eq!(seen["headers"]["x-auth-tenant"], TENANT);

    // Mallory (other tenant) typed an address of Alice's domain: refused on return, no session.
    let mallory = Browser::new();
    let r = submit(&mallory, gw, "someone@contoso.example", "/", false);
    let callback = mallory.login_until_callback(&location(&r), "mallory");
    let (r, _) = mallory.follow(&callback);
    assert_eq!(r.status(), 403);
    let page = r.text().unwrap();
    assert!(page.contains("home_realm_mismatch"), "{page}");
    assert!(page.contains("choose=1"), "{page}");
    assert!(mallory.cookie(&gw.url, "authgate_session").is_none());
    assert!(gw.log_text().contains("refused (home_realm_mismatch)"));
    let m = scrape(&gw.admin);
    assert_eq!(
        metric(&m, "authgate_denials_total{reason=\"home_realm_mismatch\"}"),
        1.0
    );
    // Through her own domain she is let in.
    let r = submit(&mallory, gw, "mallory@fabrikam.example", "/", false);
    let callback = mallory.login_until_callback(&location(&r), "mallory");
    let (r, _) = mallory.follow(&callback);
    assert_eq!(r.status(), 200, "{}", gw.log_text());

    // The SAML provider's domain: SimpleSAMLphp, and back with a session.
    let sam = Browser::new();
    let r = submit(&sam, gw, "alice@university.example", "/", false);
    let (acs, response, relay) = sam.saml_login_until_post(&location(&r), "alice", "alice-pw");
    let r = sam.post_acs(&acs, &response, &relay);
    assert_eq!(r.status(), 302, "{}", gw.log_text());
    let seen = echo(sam.api_get(&format!("{}/", gw.url)));
    assert_eq!(seen["headers"]["x-auth-email"], "alice@contoso.example");

    let m = scrape(&gw.admin);
    assert!(
        metric(
            &m,
            "authgate_home_realm_total{by=\"domain\",provider=\"entra\"}"
        ) >= 4.0
    );
    assert_eq!(
        metric(
            &m,
            "authgate_home_realm_total{by=\"default\",provider=\"entra\"}"
        ),
        4.0
    );
    assert!(
        metric(
            &m,
            "authgate_home_realm_total{by=\"domain\",provider=\"ssp-assertion\"}"
        ) >= 3.0
    );
}

#[test]
fn a_remembered_domain_skips_the_page_until_the_user_chooses_again() {
    let env = start("home_realm:\n  remember: 30d\n");
    let gw = &env.gw;
    let b = Browser::new();
    // Not asked: nothing remembered.
    let r = submit(&b, gw, "alice@university.example", "/", false);
    assert!(location(&r).contains("SSOService.php"));
    assert!(b.cookie(&gw.url, "authgate_session_realm").is_none());
    let r = b.get(&format!("{}/", gw.url));
    assert!(
        location(&r).contains("/_authgate/sign_in?rd="),
        "{}",
        location(&r)
    );
    // The page offers it; asked: the next sign-in goes straight on, with the domain hint.
    let html = b.get(&location(&r)).text().unwrap();
    assert!(html.contains("name=\"remember\""), "{html}");
    submit(&b, gw, "alice@fabrikam.example", "/", true);
    assert!(b.cookie(&gw.url, "authgate_session_realm").is_some());
    let r = b.get(&format!("{}/x", gw.url));
    let (to, q) = params(&r);
    assert!(to.contains("/organizations/v2.0"), "{to}");
    assert_eq!(param(&q, "domain_hint"), Some("fabrikam.example"));
    assert!(
        param(&q, "login_hint").is_none(),
        "the address is not kept: {q:?}"
    );
    // The remembered choice is checked like a typed one: a contoso tenant user is refused.
    let callback = b.login_until_callback(&location(&r), "alice");
    let (r, _) = b.follow(&callback);
    assert_eq!(r.status(), 403);
    // Choosing again shows the page and forgets the domain.
    let r = b.get(&format!("{}/_authgate/sign_in?choose=1&rd=%2F", gw.url));
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("name=\"email\""));
    assert!(b.cookie(&gw.url, "authgate_session_realm").is_none());
    // The cookie never reaches the upstream: it is the gateway's own.
    let m = scrape(&gw.admin);
    assert!(
        metric(
            &m,
            "authgate_home_realm_total{by=\"remembered\",provider=\"entra\"}"
        ) >= 1.0
    );
}

#[test]
fn the_address_form_refuses_what_its_page_did_not_send() {
    let env = start("");
    let gw = &env.gw;
    let post = |headers: &[(&str, &str)], body: String| {
        let mut r = api()
            .post(format!("{}/_authgate/sign_in", gw.url))
            .header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(body).send().expect("post")
    };
    let form = "email=alice%40contoso.example&rd=%2F".to_string();
    for (headers, why) in [
        (vec![("origin", "https://evil.example")], "origin"),
        (vec![("sec-fetch-site", "cross-site")], "cross_site"),
        (
            vec![("sec-fetch-site", "same-site"), ("origin", gw.url.as_str())],
            "cross_site",
        ),
        (vec![], "no_origin"),
    ] {
        let r = post(&headers, form.clone());
        assert_eq!(r.status(), 403, "{why}");
        assert!(r.headers().get("location").is_none());
        assert!(gw
            .log_text()
            .contains(&format!("address form refused ({why})")));
    }
    let origin = [("origin", gw.url.as_str())];
    // Not an address: the page again, with one message for every kind of mistake.
    for bad in [
        "alice",
        "alice%40contoso.example%26domain_hint%3Devil.example",
        "alice%40contoso.example%0D%0ASet-Cookie%3A%20x%3D1",
        "%3Cscript%3E%40x.io",
        "",
    ] {
        let r = post(&origin, format!("email={bad}&rd=%2F"));
        assert_eq!(r.status(), 400, "{bad}");
        let html = r.text().unwrap();
        assert!(html.contains("Enter an email address"), "{bad}: {html}");
        assert!(!html.contains("<script>"), "{bad}");
    }
    // Oversized: refused before it is read whole.
    let r = post(&origin, format!("email={}%40x.io", "a".repeat(5000)));
    assert_eq!(r.status(), 413);
    // A foreign return path becomes "/".
    let r = post(
        &origin,
        "email=alice%40contoso.example&rd=https%3A%2F%2Fevil.example%2F".into(),
    );
    assert_eq!(r.status(), 302);
    let b = Browser::new();
    let r = submit(&b, gw, "alice@contoso.example", "//evil.example/x", false);
    let callback = b.login_until_callback(&location(&r), "alice");
    let (r, url) = b.follow(&callback);
    assert_eq!(r.status(), 200);
    assert!(url.starts_with(&gw.url) && url.ends_with('/'), "{url}");
    // A link's login_hint skips the page and goes where the address leads.
    let r = api()
        .get(format!(
            "{}/_authgate/sign_in?rd=%2F&login_hint=bob%40university.example",
            gw.url
        ))
        .send()
        .unwrap();
    assert!(location(&r).contains("SSOService.php"), "{}", location(&r));
    // Without home_realm, an unknown domain goes to the route's sign-in provider.
    let r = submit(&Browser::new(), gw, "x@nowhere.example", "/", false);
    assert!(
        location(&r).contains("/organizations/v2.0"),
        "{}",
        location(&r)
    );
    // Nothing failed on the gateway's side.
    let m = scrape(&gw.admin);
    assert_eq!(
        metric(
            &m,
            "authgate_denials_total{reason=\"sign_in_form_refused\"}"
        ),
        5.0
    );
}
