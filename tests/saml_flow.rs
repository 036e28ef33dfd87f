//! SAML 2.0 end to end: the real gateway binary as service provider in front of a real
//! upstream, signing in through a real SAML IdP (Debian's SimpleSAMLphp) with an Entra-style
//! entity ID and Entra claim URIs — in each of Entra's signing modes, with the IdP named by
//! metadata URL, metadata file and certificate fingerprint.

mod common;

use common::*;

const ALICE_OID: &str = "00000000-0000-0000-66f3-3332eca7ea81";

struct Saml {
    gw: Gateway,
    idp: SimpleSaml,
    _upstream: Upstream,
}

/// Four SAML providers, one per signing mode; each route (`/<mode>/`) uses one.
fn start() -> Saml {
    let port = free_port();
    let admin = free_port();
    let gw_url = format!("http://127.0.0.1:{port}");
    let sp_base = format!("{gw_url}/sp/ssp");
    let idp = start_simplesamlphp(&sp_base, &format!("{gw_url}/_authgate/saml/ssp"));
    let upstream = start_upstream();
    let md_file = idp.dir.path().join("idp-metadata.xml");
    let md = api()
        .get(idp.metadata_url())
        .send()
        .unwrap()
        .text()
        .unwrap();
    std::fs::write(&md_file, md).unwrap();
    let tenant_entity = format!("https://sts.windows.net/{TENANT}/");
    let providers = format!(
        r#"providers:
  - name: ssp-assertion
    type: saml
    entity_id: "{sp_base}-assertion"
    idp_metadata_url: "{md_url}"
  - name: ssp-response
    type: saml
    entity_id: "{sp_base}-response"
    idp_metadata_file: "{md_file}"
  - name: ssp-both
    type: saml
    entity_id: "{sp_base}-both"
    idp_entity_id: "{tenant_entity}"
    idp_sso_url: "{base}/saml2/idp/SSOService.php"
    idp_slo_url: "{base}/saml2/idp/SingleLogoutService.php"
    idp_cert_fingerprints: ["{fp}"]
    allow_idp_initiated: true
  - name: ssp-none
    type: saml
    entity_id: "{sp_base}-none"
    idp_metadata_url: "{md_url}"
  - name: ssp-signedreq
    type: saml
    entity_id: "{sp_base}-signedreq"
    idp_metadata_url: "{md_url}"
    sp_key_file: "{sp_key}"
    sp_cert_file: "{sp_cert}"
"#,
        sp_key = idp.dir.path().join("cert/sp.key").display(),
        sp_cert = idp.dir.path().join("cert/sp.crt").display(),
        md_url = idp.metadata_url(),
        md_file = md_file.display(),
        base = idp.base,
        fp = idp.cert_sha1(),
    );
    let routes: String = ["assertion", "response", "both", "none", "signedreq"]
        .iter()
        .map(|m| format!("  - name: {m}\n    path_prefix: /{m}\n    upstream: \"127.0.0.1:{}\"\n    provider: ssp-{m}\n", upstream.port))
        .collect();
    let yaml = format!(
        "listen: [\"127.0.0.1:{port}\"]\npublic_url: \"{gw_url}\"\nadmin:\n  listen: \"127.0.0.1:{admin}\"\nserver:\n  threads: 2\n  shutdown_grace: 1s\n{providers}routes:\n{routes}session:\n  secret: \"${{TEST_SESSION_SECRET}}\"\n"
    );
    let gw = start_gateway(port, admin, &yaml);
    Saml {
        gw,
        idp,
        _upstream: upstream,
    }
}

fn json_get(b: &Browser, url: &str) -> serde_json::Value {
    echo(b.api_get(url))
}

#[test]
fn sp_initiated_sign_in_in_every_signed_mode_and_unsigned_is_refused() {
    let t = start();
    for mode in ["assertion", "response", "both"] {
        let b = Browser::new();
        let start = format!("{}/{mode}/page?x=1", t.gw.url);
        let (acs, response, relay) = b.saml_login_until_post(&start, "alice", "alice-pw");
        assert_eq!(acs, format!("{}/_authgate/saml/ssp-{mode}/acs", t.gw.url));
        assert_eq!(relay.len(), 43, "RelayState is the sign-in key");
        let r = b.post_acs(&acs, &response, &relay);
        assert_eq!(
            r.status(),
            302,
            "mode {mode}: {}",
            r.text().unwrap_or_default()
        );
        assert_eq!(
            r.headers()["location"],
            start.as_str(),
            "returns to the first URL"
        );
        let seen = json_get(&b, &format!("{}/{mode}/data", t.gw.url));
        let h = &seen["headers"];
        assert_eq!(h["x-auth-user"], ALICE_OID, "mode {mode}: {seen}");
        assert_eq!(h["x-auth-email"], "alice@contoso.example");
        assert_eq!(h["x-auth-name"], "Alice Example");
        assert_eq!(h["x-auth-tenant"], TENANT);
        assert_eq!(
            h["x-auth-groups"],
            "6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1b1,c3d2a8f1-3e48-4a0f-8d53-7d0a7b6b2f11"
        );
        assert_eq!(h["x-auth-roles"], "Reader,Admin");
        assert_eq!(h["x-auth-provider"], format!("ssp-{mode}"));
    }
    // Neither response nor assertion signed: refused, with the reason on the page and in metrics.
    let b = Browser::new();
    let (acs, response, relay) =
        b.saml_login_until_post(&format!("{}/none/", t.gw.url), "alice", "alice-pw");
    let r = b.post_acs(&acs, &response, &relay);
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("no valid signature"));
    let metrics = api()
        .get(format!("{}/metrics", t.gw.admin))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics
            .contains(r#"authgate_sign_ins_total{provider="ssp-none",result="bad_signature"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"authgate_sign_ins_total{provider="ssp-assertion",result="success"} 1"#)
    );
    assert!(t
        .gw
        .log_text()
        .contains("SAML sign-in with ssp-none refused (bad_signature)"));
}

#[test]
fn replayed_and_cross_browser_responses_are_refused() {
    let t = start();
    let b = Browser::new();
    let (acs, response, relay) =
        b.saml_login_until_post(&format!("{}/assertion/", t.gw.url), "bob", "bob-pw");
    let login_cookie = b
        .cookie(
            &format!("{}/_authgate/", t.gw.url),
            &format!("authgate_session_login_{}", &relay[..16]),
        )
        .expect("pending sign-in cookie");
    // Another browser (no pending sign-in) posting this solicited response: refused.
    let r = Browser::new().post_acs(&acs, &response, &relay);
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .unwrap()
        .contains("does not match the sign-in this browser started"));
    // The genuine post works once...
    assert_eq!(b.post_acs(&acs, &response, &relay).status(), 302);
    // ...and a replay of it (same browser state) is refused.
    let r = api()
        .post(&acs)
        .header(
            "cookie",
            format!("authgate_session_login_{}={login_cookie}", &relay[..16]),
        )
        .form(&[
            ("SAMLResponse", response.as_str()),
            ("RelayState", relay.as_str()),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("already used (replay)"));
}

#[test]
fn idp_initiated_only_where_allowed_and_relay_state_stays_on_origin() {
    let t = start();
    let sp = |m: &str| format!("{}/sp/ssp-{m}", t.gw.url);
    // Allowed on ssp-both; RelayState is a same-origin return path.
    let b = Browser::new();
    let start = format!(
        "{}/saml2/idp/SSOService.php?spentityid={}&RelayState={}",
        t.idp.base,
        urlenc(&sp("both")),
        urlenc("/both/dashboard")
    );
    let (acs, response, relay) = b.saml_login_until_post(&start, "alice", "alice-pw");
    assert_eq!(relay, "/both/dashboard");
    let r = b.post_acs(&acs, &response, &relay);
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        format!("{}/both/dashboard", t.gw.url).as_str()
    );
    // A RelayState pointing elsewhere lands on /.
    let b = Browser::new();
    let start = format!(
        "{}/saml2/idp/SSOService.php?spentityid={}&RelayState={}",
        t.idp.base,
        urlenc(&sp("both")),
        urlenc("https://evil.example/")
    );
    let (acs, response, relay) = b.saml_login_until_post(&start, "alice", "alice-pw");
    let r = b.post_acs(&acs, &response, &relay);
    assert_eq!(r.headers()["location"], format!("{}/", t.gw.url).as_str());
    // Not allowed on ssp-assertion: unsolicited responses are refused.
    let b = Browser::new();
    let start = format!(
        "{}/saml2/idp/SSOService.php?spentityid={}",
        t.idp.base,
        urlenc(&sp("assertion"))
    );
    let (acs, response, relay) = b.saml_login_until_post(&start, "alice", "alice-pw");
    let r = b.post_acs(&acs, &response, &relay);
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .unwrap()
        .contains("IdP-initiated sign-in is not allowed"));
}

#[test]
fn sp_metadata_and_single_logout_both_ways() {
    let t = start();
    let md = api()
        .get(format!(
            "{}/_authgate/saml/ssp-assertion/metadata",
            t.gw.url
        ))
        .send()
        .unwrap();
    assert_eq!(md.status(), 200);
    let md = md.text().unwrap();
    assert!(md.contains(&format!("entityID=\"{}/sp/ssp-assertion\"", t.gw.url)));
    assert!(md.contains(&format!(
        "Location=\"{}/_authgate/saml/ssp-assertion/acs\"",
        t.gw.url
    )));
    assert!(md.contains("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"));

    // SP-initiated: sign-out sends a LogoutRequest to the IdP, which answers at our SLO URL.
    let b = Browser::new();
    let (acs, response, relay) =
        b.saml_login_until_post(&format!("{}/assertion/", t.gw.url), "alice", "alice-pw");
    assert_eq!(b.post_acs(&acs, &response, &relay).status(), 302);
    let cookie = b.cookie(&t.gw.url, "authgate_session").unwrap();
    let r = b.sign_out(&t.gw.url);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.starts_with(&format!(
            "{}/saml2/idp/SingleLogoutService.php?SAMLRequest=",
            t.idp.base
        )),
        "{loc}"
    );
    let (page, url) = b.follow(&loc);
    assert_eq!(
        url,
        format!("{}/_authgate/signed_out", t.gw.url),
        "the IdP answered at our SLO endpoint"
    );
    assert!(page.text().unwrap().contains("You have signed out"));
    let r = get_with_session(&format!("{}/assertion/x", t.gw.url), &cookie);
    assert_eq!(r.status(), 401, "the session is over");

    // IdP-initiated: a LogoutRequest arriving at our SLO endpoint ends the browser's session and
    // is answered with a LogoutResponse to the IdP.
    let b = Browser::new();
    let (acs, response, relay) =
        b.saml_login_until_post(&format!("{}/both/", t.gw.url), "bob", "bob-pw");
    assert_eq!(b.post_acs(&acs, &response, &relay).status(), 302);
    let cookie = b.cookie(&t.gw.url, "authgate_session").unwrap();
    let req = deflate_b64(&format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_idp_logout_1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>https://sts.windows.net/{TENANT}/</saml:Issuer><saml:NameID>bob@contoso.example</saml:NameID></samlp:LogoutRequest>"#
    ));
    let r = b.get(&format!(
        "{}/_authgate/saml/ssp-both/slo?SAMLRequest={}",
        t.gw.url,
        urlenc(&req)
    ));
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap();
    assert!(
        loc.starts_with(&format!(
            "{}/saml2/idp/SingleLogoutService.php?SAMLResponse=",
            t.idp.base
        )),
        "{loc}"
    );
    let r = get_with_session(&format!("{}/both/x", t.gw.url), &cookie);
    assert_eq!(r.status(), 401);
}

fn urlenc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn deflate_b64(xml: &str) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(xml.as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(e.finish().unwrap())
}

#[test]
fn signing_key_rollover_takes_effect_on_reload_without_restart() {
    let t = start();
    let sign_in = |route: &str| {
        let b = Browser::new();
        let (acs, response, relay) =
            b.saml_login_until_post(&format!("{}/{route}/", t.gw.url), "alice", "alice-pw");
        let r = b.post_acs(&acs, &response, &relay);
        (r.status().as_u16(), r.text().unwrap_or_default())
    };
    assert_eq!(sign_in("assertion").0, 302);
    // The IdP rolls to a new signing key (and publishes it in its metadata).
    let cert = t.idp.dir.path().join("cert");
    std::fs::remove_file(cert.join("idp.key")).unwrap();
    std::fs::remove_file(cert.join("idp.crt")).unwrap();
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "30",
            "-subj",
            "/CN=authgate-test-idp-rolled",
            "-keyout",
        ])
        .arg(cert.join("idp.key"))
        .arg("-out")
        .arg(cert.join("idp.crt"))
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok);
    // Until the gateway reloads the metadata, the new key is unknown: refused, fail closed.
    let (status, page) = sign_in("assertion");
    assert_eq!(status, 400);
    assert!(page.contains("no valid signature"), "{page}");
    // SIGHUP: configuration unchanged, metadata fetched again; the new key is trusted.
    signal(t.gw.proc.pid(), libc::SIGHUP);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, _) = sign_in("assertion");
        if status == 302 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rolled key was never trusted"
        );
    }
}

#[test]
fn signed_authn_requests_satisfy_an_idp_that_requires_them() {
    let t = start();
    // The IdP validates the AuthnRequest's redirect-binding signature against the SP cert.
    let b = Browser::new();
    let r = b.get(&format!("{}/signedreq/", t.gw.url));
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.contains("&SigAlg=http%3A%2F%2Fwww%2Ew3%2Eorg%2F2001%2F04%2Fxmldsig%2Dmore%23rsa%2Dsha256&Signature="), "{loc}");
    let (acs, response, relay) =
        b.saml_login_until_post(&format!("{}/signedreq/", t.gw.url), "alice", "alice-pw");
    assert_eq!(b.post_acs(&acs, &response, &relay).status(), 302);
    // A tampered signature is refused by the IdP (so the IdP really checks it).
    let tampered = loc.replacen("&Signature=", "&Signature=AAAA", 1);
    let (page, _) = Browser::new().follow(&tampered);
    let text = page.text().unwrap_or_default();
    assert!(
        !text.contains("name=\"AuthState\""),
        "the IdP accepted a bad signature"
    );
    // The SP metadata advertises the signing certificate.
    let md = api()
        .get(format!(
            "{}/_authgate/saml/ssp-signedreq/metadata",
            t.gw.url
        ))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        md.contains("AuthnRequestsSigned=\"true\"") && md.contains("<ds:X509Certificate>"),
        "{md}"
    );
    // The IdP signing certificate's expiry is exported (the test IdP's is valid for 30 days).
    let metrics = api()
        .get(format!("{}/metrics", t.gw.admin))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("authgate_saml_idp_certificate_expiry_timestamp_seconds{provider=\"ssp-signedreq\"}"))
        .unwrap_or_else(|| panic!("no certificate expiry gauge in:\n{metrics}"));
    let expiry: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (expiry - now - 30 * 86400).abs() < 2 * 86400,
        "expiry {expiry} vs now {now}"
    );
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/alerts.yaml"
    ))
    .unwrap();
    assert!(rules.contains("authgate_saml_idp_certificate_expiry_timestamp_seconds"));
}

/// Entra's SAML groups overage: the assertion carries `groups.link` instead of the groups.
/// With Graph credentials the gateway looks them up (in the Graph stand-in, with its own app
/// token); without, the user is refused with that reason rather than let in with none.
#[test]
fn saml_groups_overage_resolved_through_graph_or_refused() {
    let port = free_port();
    let admin = free_port();
    let gw_url = format!("http://127.0.0.1:{port}");
    let sp_base = format!("{gw_url}/sp/ssp");
    let idp = start_simplesamlphp(&sp_base, &format!("{gw_url}/_authgate/saml/ssp"));
    let upstream = start_upstream();
    let op = start_op_for(&[&gw_url], "unused", 0, &[]);
    let graph = format!("{}/graph", op.instance());
    let yaml = format!(
        r#"listen: ["127.0.0.1:{port}"]
public_url: "{gw_url}"
admin:
  listen: "127.0.0.1:{admin}"
providers:
  - name: ssp-assertion
    type: saml
    entity_id: "{sp_base}-assertion"
    idp_metadata_url: "{md}"
    graph_client_id: {CLIENT_ID}
    graph_client_secret: "${{TEST_CLIENT_SECRET}}"
    graph_url: "{graph}"
    graph_token_url: "{instance}/organizations/v2.0/token"
    group_names:
      6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1b1: Admins
  - name: ssp-response
    type: saml
    entity_id: "{sp_base}-response"
    idp_metadata_url: "{md}"
routes:
  - name: with-graph
    path_prefix: /assertion
    upstream: "127.0.0.1:{up}"
    provider: ssp-assertion
    allow:
      groups: [Admins]
  - name: without-graph
    path_prefix: /response
    upstream: "127.0.0.1:{up}"
    provider: ssp-response
session:
  secret: "${{TEST_SESSION_SECRET}}"
  store: memory
"#,
        md = idp.metadata_url(),
        instance = op.instance(),
        up = upstream.port,
    );
    let gw = start_gateway(port, admin, &yaml);

    let b = Browser::new();
    let (acs, response, relay) =
        b.saml_login_until_post(&format!("{gw_url}/assertion/x"), "olivia", "olivia-pw");
    let r = b.post_acs(&acs, &response, &relay);
    assert_eq!(r.status(), 302, "{}", r.text().unwrap_or_default());
    let seen = json_get(&b, &format!("{gw_url}/assertion/x"));
    let groups = seen["headers"]["x-auth-groups"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(groups.split(',').count(), 230, "from Graph");
    assert!(groups.split(',').any(|g| g == "Admins"));
    assert!(gw.log_text().contains("230 groups from Graph"));

    let b = Browser::new();
    let (acs, response, relay) =
        b.saml_login_until_post(&format!("{gw_url}/response/x"), "olivia", "olivia-pw");
    let r = b.post_acs(&acs, &response, &relay);
    assert_eq!(r.status(), 503);
    let page = r.text().unwrap();
    assert!(
        page.contains("groups_unresolved") && page.contains("groups.link"),
        "{page}"
    );
    assert!(b.cookie(&gw_url, "authgate_session").is_none());
    assert!(gw.log_text().contains("denied (groups_unresolved)"));
    // Alice's groups are in her assertion: nothing to look up.
    let b = Browser::new();
    let (acs, response, relay) =
        b.saml_login_until_post(&format!("{gw_url}/response/x"), "alice", "alice-pw");
    assert_eq!(b.post_acs(&acs, &response, &relay).status(), 302);
}
