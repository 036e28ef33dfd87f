//! SAML 2.0 end to end: the real gateway binary as service provider in front of a real
//! upstream, signing in through a real SAML IdP (Debian's SimpleSAMLphp) with an Entra-style
//! entity ID and Entra claim URIs — in each of Entra's signing modes, with the IdP named by
//! metadata URL, metadata file and certificate fingerprint.

mod common;

use common::*;

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
    let md_url = idp.metadata_url();
    let by_url = format!("    idp_metadata_url: \"{md_url}\"");
    let up = format!("127.0.0.1:{}", upstream.port);
    let mut cfg = ConfigBuilder::binary(port, &gw_url, admin)
        .saml("ssp-assertion", &format!("{sp_base}-assertion"))
        .provider_lines(&by_url)
        .saml("ssp-response", &format!("{sp_base}-response"))
        .provider_lines(&format!("    idp_metadata_file: \"{}\"", md_file.display()))
        .saml("ssp-both", &format!("{sp_base}-both"))
        .provider_lines(&format!(
            "    idp_entity_id: \"{tenant_entity}\"\n    idp_sso_url: \"{base}/saml2/idp/SSOService.php\"\n    idp_slo_url: \"{base}/saml2/idp/SingleLogoutService.php\"\n    idp_cert_fingerprints: [\"{fp}\"]\n    allow_idp_initiated: true",
            base = idp.base,
            fp = idp.cert_sha1(),
        ))
        .saml("ssp-none", &format!("{sp_base}-none"))
        .provider_lines(&by_url)
        .saml("ssp-signedreq", &format!("{sp_base}-signedreq"))
        .provider_lines(&format!(
            "{by_url}\n    sp_key_file: \"{}\"\n    sp_cert_file: \"{}\"",
            idp.dir.path().join("cert/sp.key").display(),
            idp.dir.path().join("cert/sp.crt").display(),
        ));
    for m in ["assertion", "response", "both", "none", "signedreq"] {
        cfg = cfg.route(
            RouteSpec::new(m, &up)
                .prefix(&format!("/{m}"))
                .providers(&[&format!("ssp-{m}")]),
        );
    }
    // Attributes as headers (`headers.claims`): one value, and a multi-valued one joined.
    let cfg = cfg.tail(
        "headers:\n  claims:\n    X-Given-Name: http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname\n    X-Role-List: http://schemas.microsoft.com/ws/2008/06/identity/claims/role\n    X-Not-Sent: http://schemas.example/none\n",
    );
    let gw = start_built(&cfg);
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
        assert_eq!(h["x-given-name"], "Alice", "{seen}");
        assert_eq!(h["x-role-list"], "Reader,Admin", "{seen}");
        assert!(h.get("x-not-sent").is_none(), "{seen}");
        // A link's login_hint goes to the IdP beside the (signed or not) SAML parameters.
        let r = api()
            .get(format!(
                "{}/_authgate/sign_in?provider=ssp-{mode}&rd=/{mode}/&login_hint=alice%40contoso.example",
                t.gw.url
            ))
            .send()
            .expect("sign_in");
        let to = reqwest::Url::parse(&location(&r)).expect("SSO URL");
        let pairs: Vec<(String, String)> = to
            .query_pairs()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        assert!(
            pairs
                .iter()
                .any(|(k, v)| k == "login_hint" && v == "alice@contoso.example"),
            "{to}"
        );
        assert!(pairs.iter().any(|(k, _)| k == "SAMLRequest"), "{to}");
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
}

/// A LogoutRequest from the IdP, as SimpleSAMLphp would send it to the `assertion` SP.
fn logout_xml(t: &Saml, id: &str, issuer: &str, name_id: &str, instant: &str) -> String {
    format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{instant}" Destination="{gw}/_authgate/saml/ssp-assertion/slo"><saml:Issuer>{issuer}</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{name_id}</saml:NameID></samlp:LogoutRequest>"#,
        gw = t.gw.url
    )
}

fn idp_key(t: &Saml, file: &str) -> openssl::pkey::PKey<openssl::pkey::Private> {
    let pem = std::fs::read(t.idp.dir.path().join(file)).expect("key file");
    openssl::pkey::PKey::private_key_from_pem(&pem).expect("key")
}

/// HTTP-Redirect binding: the query, signed with `key` (SAML bindings §3.4.4.1) unless None.
fn redirect_query(
    xml: &str,
    relay: Option<&str>,
    key: Option<&openssl::pkey::PKey<openssl::pkey::Private>>,
) -> String {
    redirect_query_with(
        xml,
        relay,
        key,
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        openssl::hash::MessageDigest::sha256(),
    )
}

fn redirect_query_with(
    xml: &str,
    relay: Option<&str>,
    key: Option<&openssl::pkey::PKey<openssl::pkey::Private>>,
    alg: &str,
    digest: openssl::hash::MessageDigest,
) -> String {
    use base64::Engine;
    let mut q = format!("SAMLRequest={}", urlenc(&deflate_b64(xml)));
    if let Some(r) = relay {
        q.push_str(&format!("&RelayState={}", urlenc(r)));
    }
    if let Some(key) = key {
        q.push_str(&format!("&SigAlg={}", urlenc(alg)));
        let mut s = openssl::sign::Signer::new(digest, key).unwrap();
        s.update(q.as_bytes()).unwrap();
        let sig = base64::engine::general_purpose::STANDARD.encode(s.sign_to_vec().unwrap());
        q.push_str(&format!("&Signature={}", urlenc(&sig)));
    }
    q
}

/// HTTP-POST binding: the request with an enveloped XML signature by `key` (xmlsec).
fn signed_post(xml: &str, id: &str, key: &openssl::pkey::PKey<openssl::pkey::Private>) -> String {
    use base64::Engine;
    use samael::crypto::{Crypto, CryptoProvider};
    let template = r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#ID"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature>"##
        .replace("#ID", &format!("#{id}"));
    let at = xml.find("</saml:Issuer>").expect("issuer") + "</saml:Issuer>".len();
    let with_template = format!("{}{template}{}", &xml[..at], &xml[at..]);
    let signed =
        Crypto::sign_xml(with_template, &key.private_key_to_der().unwrap()).expect("xmlsec signs");
    base64::engine::general_purpose::STANDARD.encode(signed)
}

/// IdP-initiated single logout: only a LogoutRequest the IdP signed, naming the IdP and this
/// SP, fresh and unused, ends anything; a genuine one, in either binding, ends the session
/// wherever its cookie was copied; the RelayState goes back only when it is safe.
#[test]
fn idp_initiated_logout_must_be_signed_by_the_idp() {
    let t = start();
    let idp = idp_key(&t, "cert/idp.key");
    let other = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let issuer = format!("https://sts.windows.net/{TENANT}/");
    let now = chrono::Utc::now();
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let slo = format!("{}/_authgate/saml/ssp-assertion/slo", t.gw.url);
    let sign_in = |user: &str, pw: &str| {
        let b = Browser::new();
        let (acs, response, relay) =
            b.saml_login_until_post(&format!("{}/assertion/", t.gw.url), user, pw);
        assert_eq!(b.post_acs(&acs, &response, &relay).status(), 302);
        let cookie = b.cookie(&t.gw.url, "authgate_session").unwrap();
        (b, cookie)
    };
    let alive = |cookie: &str| {
        get_with_session(&format!("{}/assertion/x", t.gw.url), cookie).status() == 200
    };
    let (b, cookie) = sign_in("alice", "alice-pw");
    let alice = "alice@contoso.example";
    let n = std::sync::atomic::AtomicU32::new(0);
    let id = || {
        format!(
            "_attack{}",
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        )
    };
    enum Bind {
        Get(String),
        Post(String),
    }
    let cases: Vec<(&str, Bind, &str)> = vec![
        (
            "unsigned, redirect",
            Bind::Get(redirect_query(
                &logout_xml(&t, &id(), &issuer, alice, &fmt(now)),
                None,
                None,
            )),
            "logout_unsigned",
        ),
        (
            "signed by another key, redirect",
            Bind::Get(redirect_query(
                &logout_xml(&t, &id(), &issuer, alice, &fmt(now)),
                None,
                Some(&other),
            )),
            "logout_bad_signature",
        ),
        (
            "foreign issuer, signed by the IdP, redirect",
            Bind::Get(redirect_query(
                &logout_xml(&t, &id(), "https://evil.example/", alice, &fmt(now)),
                None,
                Some(&idp),
            )),
            "logout_wrong_issuer",
        ),
        (
            "a week old, redirect",
            Bind::Get(redirect_query(
                &logout_xml(
                    &t,
                    &id(),
                    &issuer,
                    alice,
                    &fmt(now - chrono::Duration::days(7)),
                ),
                None,
                Some(&idp),
            )),
            "logout_stale",
        ),
        (
            "for another SP, redirect",
            Bind::Get(redirect_query(
                &logout_xml(&t, &id(), &issuer, alice, &fmt(now))
                    .replace("ssp-assertion/slo", "ssp-none/slo"),
                None,
                Some(&idp),
            )),
            "logout_wrong_destination",
        ),
        (
            "SHA-1, redirect",
            Bind::Get(redirect_query_with(
                &logout_xml(&t, &id(), &issuer, alice, &fmt(now)),
                None,
                Some(&idp),
                "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
                openssl::hash::MessageDigest::sha1(),
            )),
            "logout_algorithm",
        ),
        (
            "unsigned, POST",
            Bind::Post({
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(logout_xml(
                    &t,
                    &id(),
                    &issuer,
                    alice,
                    &fmt(now),
                ))
            }),
            "logout_unsigned",
        ),
        (
            "signed by another key, POST",
            Bind::Post({
                let i = id();
                signed_post(&logout_xml(&t, &i, &issuer, alice, &fmt(now)), &i, &other)
            }),
            "logout_bad_signature",
        ),
        (
            "foreign issuer, signed by the IdP, POST",
            Bind::Post({
                let i = id();
                signed_post(
                    &logout_xml(&t, &i, "https://evil.example/", alice, &fmt(now)),
                    &i,
                    &idp,
                )
            }),
            "logout_wrong_issuer",
        ),
    ];
    for (case, bind, reason) in cases {
        let r = match bind {
            Bind::Get(q) => b.get(&format!("{slo}?{q}")),
            Bind::Post(body) => b
                .client
                .post(&slo)
                .form(&[("SAMLRequest", body.as_str())])
                .send()
                .unwrap(),
        };
        assert_eq!(r.status(), 400, "{case}");
        assert!(
            r.text().unwrap_or_default().contains(reason),
            "{case}: {reason}"
        );
        assert!(alive(&cookie), "{case}: the session survives");
        assert!(
            t.gw.log_text().contains(&format!("refused ({reason})")),
            "{case}: logged"
        );
    }
    // Fingerprint mode cannot check a redirect-bound request: refused, with the fix named.
    let q = redirect_query(
        &logout_xml(&t, &id(), &issuer, alice, &fmt(now)).replace("ssp-assertion", "ssp-both"),
        None,
        Some(&idp),
    );
    let r = b.get(&format!("{}/_authgate/saml/ssp-both/slo?{q}", t.gw.url));
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .unwrap_or_default()
        .contains("logout_no_certificate"));

    // Genuine, redirect binding: ends alice's session, also for the copied cookie; an unsafe
    // RelayState is not sent back to the IdP.
    let genuine = logout_xml(&t, "_genuine_redirect", &issuer, alice, &fmt(now));
    let q = redirect_query(&genuine, Some("https://evil.example/after"), Some(&idp));
    let (b2, bob_cookie) = sign_in("bob", "bob-pw");
    let r = b.get(&format!("{slo}?{q}"));
    assert_eq!(r.status(), 302, "{}", r.text().unwrap_or_default());
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.starts_with(&format!(
            "{}/saml2/idp/SingleLogoutService.php?SAMLResponse=",
            t.idp.base
        )),
        "{loc}"
    );
    assert!(!loc.contains("evil.example"), "{loc}");
    assert!(!alive(&cookie), "the copied cookie stops working");
    assert!(alive(&bob_cookie), "another user's session is untouched");
    // The same request again is a replay.
    let r = b.get(&format!("{slo}?{q}"));
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap_or_default().contains("logout_replay"));

    // Genuine, POST binding, for bob, presented by a different browser: bob's session ends
    // everywhere; an opaque RelayState goes back.
    let (_b3, bob_again) = sign_in("bob", "bob-pw");
    let genuine = logout_xml(
        &t,
        "_genuine_post",
        &issuer,
        "bob@contoso.example",
        &fmt(now),
    );
    let r = b2
        .client
        .post(&slo)
        .form(&[
            (
                "SAMLRequest",
                signed_post(&genuine, "_genuine_post", &idp).as_str(),
            ),
            ("RelayState", "_ssp_state_0123"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 302, "{}", r.text().unwrap_or_default());
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let relay = reqwest::Url::parse(&loc)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .map(|(_, v)| v.to_string());
    assert_eq!(relay.as_deref(), Some("_ssp_state_0123"), "{loc}");
    assert!(
        !alive(&bob_cookie) && !alive(&bob_again),
        "both of bob's sessions end"
    );
    let m = scrape(&t.gw.admin);
    assert!(metric(&m, "authgate_denials_total{reason=\"logout_unsigned\"}") >= 2.0);
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
    let md = idp.metadata_url();
    let up = format!("127.0.0.1:{}", upstream.port);
    let cfg = ConfigBuilder::binary(port, &gw_url, admin)
        .saml("ssp-assertion", &format!("{sp_base}-assertion"))
        .provider_lines(&format!(
            "    idp_metadata_url: \"{md}\"\n    graph_client_id: {CLIENT_ID}\n    graph_client_secret: \"${{TEST_CLIENT_SECRET}}\"\n    graph_url: \"{graph}\"\n    graph_token_url: \"{}/organizations/v2.0/token\"\n    group_names:\n      {ADMINS}: Admins",
            op.instance()
        ))
        .saml("ssp-response", &format!("{sp_base}-response"))
        .provider_lines(&format!("    idp_metadata_url: \"{md}\""))
        .route(
            RouteSpec::new("with-graph", &up)
                .prefix("/assertion")
                .providers(&["ssp-assertion"])
                .groups(&["Admins"]),
        )
        .route(
            RouteSpec::new("without-graph", &up)
                .prefix("/response")
                .providers(&["ssp-response"]),
        )
        .store("memory");
    let gw = start_built(&cfg);

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

/// The user key is the configured attribute (Entra's object ID by default), never the NameID
/// in its place: an account without the attribute is refused, even when its NameID equals
/// another user's object ID.
#[test]
fn the_user_key_attribute_never_falls_back_to_the_name_id() {
    let t = start();
    for user in ["nokey", "mallory"] {
        let b = Browser::new();
        let (acs, response, relay) = b.saml_login_until_post(
            &format!("{}/assertion/", t.gw.url),
            user,
            &format!("{user}-pw"),
        );
        let r = b.post_acs(&acs, &response, &relay);
        assert_eq!(r.status(), 400, "{user}");
        let page = r.text().unwrap_or_default();
        assert!(page.contains("objectidentifier"), "{user}: {page}");
        assert!(
            b.cookie(&t.gw.url, "authgate_session").is_none(),
            "{user}: no session"
        );
    }
    assert!(t.gw.log_text().contains("refused (no_user_key)"));
    let m = scrape(&t.gw.admin);
    assert!(
        metric(
            &m,
            "authgate_sign_ins_total{provider=\"ssp-assertion\",result=\"no_user_key\"}"
        ) >= 2.0
    );
    // alice, who has the attribute, is keyed by it.
    let b = Browser::new();
    let (acs, response, relay) =
        b.saml_login_until_post(&format!("{}/assertion/", t.gw.url), "alice", "alice-pw");
    assert_eq!(b.post_acs(&acs, &response, &relay).status(), 302);
    assert_eq!(
        json_get(&b, &format!("{}/assertion/x", t.gw.url))["headers"]["x-auth-user"],
        ALICE_OID
    );
}

/// Two real providers on one gateway, SimpleSAMLphp (SAML) and the oidc-provider (OIDC): a
/// session of one is no session on the other's routes (browsers are sent to sign in there,
/// API callers get 401), and a route naming both accepts both.
#[test]
fn saml_and_oidc_sessions_stay_on_their_own_routes() {
    let port = free_port();
    let admin = free_port();
    let gw_url = format!("http://127.0.0.1:{port}");
    let sp_base = format!("{gw_url}/sp/ssp");
    let idp = start_simplesamlphp(&sp_base, &format!("{gw_url}/_authgate/saml/ssp"));
    let op = start_op(&gw_url, 0);
    let upstream = start_upstream();
    let up = format!("127.0.0.1:{}", upstream.port);
    let cfg = ConfigBuilder::binary(port, &gw_url, admin)
        .saml("ssp-assertion", &format!("{sp_base}-assertion"))
        .provider_lines(&format!("    idp_metadata_url: \"{}\"", idp.metadata_url()))
        .oidc("test-idp", &op.issuer)
        .user_claim("oid")
        .route(
            RouteSpec::new("saml-app", &up)
                .prefix("/saml")
                .providers(&["ssp-assertion"]),
        )
        .route(
            RouteSpec::new("oidc-app", &up)
                .prefix("/oidc")
                .providers(&["test-idp"]),
        )
        .route(
            RouteSpec::new("both", &up)
                .prefix("/both")
                .providers(&["test-idp", "ssp-assertion"]),
        );
    let gw = start_built(&cfg);
    let location = |b: &Browser, path: &str| {
        let r = b.get(&format!("{gw_url}{path}"));
        assert_eq!(r.status(), 302, "{path}");
        r.headers()["location"].to_str().unwrap_or("").to_string()
    };

    // A SAML user (alice, same object ID as her OIDC self).
    let saml = Browser::new();
    let (acs, response, relay) =
        saml.saml_login_until_post(&format!("{gw_url}/saml/"), "alice", "alice-pw");
    assert_eq!(saml.post_acs(&acs, &response, &relay).status(), 302);
    let saml_cookie = saml
        .cookie(&gw_url, "authgate_session")
        .expect("SAML session");
    assert_eq!(
        echo(saml.api_get(&format!("{gw_url}/saml/x")))["headers"]["x-auth-provider"],
        "ssp-assertion"
    );
    let to = location(&saml, "/oidc/x");
    assert!(
        to.starts_with(&op.issuer),
        "sent to the OIDC provider: {to}"
    );
    assert_eq!(
        get_with_session(&format!("{gw_url}/oidc/x"), &saml_cookie).status(),
        401
    );
    assert_eq!(
        echo(get_with_session(&format!("{gw_url}/both/x"), &saml_cookie))["headers"]
            ["x-auth-provider"],
        "ssp-assertion"
    );

    // An OIDC user.
    let oidc = Browser::new();
    let (r, _) = oidc.sign_in(&format!("{gw_url}/oidc/x"), "alice");
    assert_eq!(r.status(), 200);
    let oidc_cookie = oidc
        .cookie(&gw_url, "authgate_session")
        .expect("OIDC session");
    let to = location(&oidc, "/saml/x");
    assert!(to.starts_with(&idp.base), "sent to the SAML IdP: {to}");
    assert_eq!(
        get_with_session(&format!("{gw_url}/saml/x"), &oidc_cookie).status(),
        401
    );
    assert_eq!(
        echo(get_with_session(&format!("{gw_url}/both/x"), &oidc_cookie))["headers"]
            ["x-auth-provider"],
        "test-idp"
    );
    let m = scrape(&gw.admin);
    assert!(
        metric(
            &m,
            "authgate_session_rejections_total{reason=\"wrong_provider\"}"
        ) >= 4.0
    );
}
