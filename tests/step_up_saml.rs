//! Per-route assurance and claim rules with SAML, through the real binary and Debian's
//! SimpleSAMLphp: `require.mfa` sends `ForceAuthn` (never `RequestedAuthnContext`) and needs
//! Entra's `authnmethodsreferences` to hold `multipleauthn`; claim rules reach attributes by
//! URI and by short name.

mod common;

use std::io::Read;

use base64::Engine;
use common::*;

const DEPARTMENT: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/department";

struct Env {
    gw: Gateway,
    _idp: SimpleSaml,
    _upstream: Upstream,
}

fn start() -> Env {
    let port = free_port();
    let gw_url = format!("http://127.0.0.1:{port}");
    let sp_base = format!("{gw_url}/sp/ssp");
    let idp = start_simplesamlphp(&sp_base, &format!("{gw_url}/_authgate/saml/ssp"));
    let upstream = start_upstream();
    let up = format!("127.0.0.1:{}", upstream.port);
    let cfg = ConfigBuilder::binary(port, &gw_url, free_port())
        .saml("ssp-assertion", &format!("{sp_base}-assertion"))
        .provider_lines(&format!(
            "    idp_metadata_url: \"{}\"\n    user_attribute: http://schemas.microsoft.com/identity/claims/objectidentifier",
            idp.metadata_url()
        ))
        .route(RouteSpec::new("mfa", &up).prefix("/mfa").with("require:\n  mfa: true"))
        .route(
            RouteSpec::new("finance", &up)
                .prefix("/finance")
                .with("allow:\n  claims:\n    department: [Finance]"),
        )
        .route(
            RouteSpec::new("not-finance", &up)
                .prefix("/not-finance")
                .with(&format!("deny:\n  claims:\n    \"{DEPARTMENT}\": [\"Fin*\"]")),
        )
        .route(RouteSpec::new("app", &up));
    let gw = start_built(&cfg);
    Env {
        gw,
        _idp: idp,
        _upstream: upstream,
    }
}

/// The AuthnRequest a redirect to the IdP carries, inflated.
fn authn_request(to_idp: &str) -> String {
    let url = reqwest::Url::parse(to_idp).unwrap();
    let b64 = url
        .query_pairs()
        .find(|(k, _)| k == "SAMLRequest")
        .map(|(_, v)| v.into_owned())
        .expect("SAMLRequest");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&raw[..])
        .read_to_string(&mut xml)
        .unwrap();
    xml
}

fn sign_in(b: &Browser, gw: &Gateway, start: &str, user: &str) -> reqwest::blocking::Response {
    let (acs, response, relay) =
        b.saml_login_until_post(&format!("{}{start}", gw.url), user, &format!("{user}-pw"));
    let r = b.post_acs(&acs, &response, &relay);
    if r.status().is_redirection() {
        let next = reqwest::Url::parse(&acs)
            .unwrap()
            .join(&location(&r))
            .unwrap();
        return b.follow(next.as_str()).0;
    }
    r
}

#[test]
fn mfa_sends_force_authn_and_needs_multipleauthn() {
    let env = start();
    let gw = &env.gw;
    // Alice signs in (password only) for /.
    let alice = Browser::new();
    assert_eq!(
        sign_in(&alice, gw, "/", "alice").status(),
        200,
        "{}",
        gw.log_text()
    );
    // A plain sign-in asks for no fresh authentication.
    let plain = authn_request(&location(&Browser::new().get(&format!("{}/", gw.url))));
    assert!(!plain.contains("ForceAuthn"), "{plain}");

    // /mfa: a step-up with ForceAuthn and no RequestedAuthnContext.
    let r = alice.get(&format!("{}/mfa/", gw.url));
    assert_eq!(r.status(), 302);
    let xml = authn_request(&location(&r));
    assert!(xml.contains(r#"ForceAuthn="true""#), "{xml}");
    assert!(!xml.contains("RequestedAuthnContext"), "{xml}");
    // SimpleSAMLphp honours ForceAuthn (its login form again, though its session is alive);
    // Alice's assertion shows no second factor: refused, and her session stays.
    let r = sign_in(&alice, gw, "/mfa/", "alice");
    assert_eq!(r.status(), 403);
    let page = r.text().unwrap();
    assert!(page.contains("mfa_missing"), "{page}");
    assert_eq!(alice.get(&format!("{}/", gw.url)).status(), 200);
    assert_eq!(alice.get(&format!("{}/mfa/", gw.url)).status(), 302);

    // Dana's assertion lists multipleauthn: in, at the page asked for, and remembered.
    let dana = Browser::new();
    let r = sign_in(&dana, gw, "/mfa/x", "dana");
    assert_eq!(r.status(), 200, "{}", gw.log_text());
    assert_eq!(dana.get(&format!("{}/mfa/y", gw.url)).status(), 200);
}

#[test]
fn claim_rules_reach_saml_attributes_by_uri_and_by_short_name() {
    let env = start();
    let gw = &env.gw;
    let dana = Browser::new();
    assert_eq!(
        sign_in(&dana, gw, "/", "dana").status(),
        200,
        "{}",
        gw.log_text()
    );
    let alice = Browser::new();
    assert_eq!(sign_in(&alice, gw, "/", "alice").status(), 200);
    // allow.claims.department (short name: …/claims/department).
    assert_eq!(dana.get(&format!("{}/finance/", gw.url)).status(), 200);
    let r = alice.get(&format!("{}/finance/", gw.url));
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .unwrap()
        .contains("Reason: allow.claims.department"));
    // deny.claims by the full URI, with a glob.
    let r = dana.get(&format!("{}/not-finance/", gw.url));
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .unwrap()
        .contains(&format!("Reason: deny.claims.{DEPARTMENT}")));
    assert_eq!(alice.get(&format!("{}/not-finance/", gw.url)).status(), 200);
    let m = scrape(&gw.admin);
    assert_eq!(
        metric(
            &m,
            "authgate_denials_total{reason=\"allow.claims.department\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            &format!("authgate_denials_total{{reason=\"deny.claims.{DEPARTMENT}\"}}")
        ),
        1.0
    );
}
