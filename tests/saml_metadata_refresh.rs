//! The periodic refresh of SAML metadata and signing keys (`metadata_refresh`, hourly by
//! default; 1 s here), through the real binary and SimpleSAMLphp: a key rotated at the IdP is
//! picked up by the refresh alone (no sign-in asks for it), and a refresh that fails keeps
//! the last good copy in service.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn sign_in(gw: &Gateway, user: &str) -> u16 {
    let b = Browser::new();
    let (acs, response, relay) =
        b.saml_login_until_post(&format!("{}/", gw.url), user, &format!("{user}-pw"));
    b.post_acs(&acs, &response, &relay).status().as_u16()
}

/// Waits until the gateway has logged `text` `n` times (the refresher's lines).
fn wait_for_log(gw: &Gateway, text: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while gw.log_text().matches(text).count() < n {
        assert!(
            Instant::now() < deadline,
            "no {n}x {text:?} in:\n{}",
            gw.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rotated_keys_are_picked_up_and_a_failed_refresh_keeps_the_last_good_copy() {
    let port = free_port();
    let gw_url = format!("http://127.0.0.1:{port}");
    let sp_base = format!("{gw_url}/sp/ssp");
    let idp = start_simplesamlphp(&sp_base, &format!("{gw_url}/_authgate/saml/ssp"));
    let upstream = start_upstream();
    let metadata = || {
        api()
            .get(idp.metadata_url())
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let md_file = idp.dir.path().join("idp-metadata.xml");
    std::fs::write(&md_file, metadata()).unwrap();
    let cfg = ConfigBuilder::binary(port, &gw_url, free_port())
        .saml("ssp-assertion", &format!("{sp_base}-assertion"))
        .provider_lines(&format!(
            "    idp_metadata_file: \"{}\"\n    metadata_refresh: 1s",
            md_file.display()
        ))
        .route(RouteSpec::new(
            "app",
            &format!("127.0.0.1:{}", upstream.port),
        ));
    let gw = start_built(&cfg);
    assert_eq!(sign_in(&gw, "alice"), 302, "{}", gw.log_text());
    let loaded = "provider ssp-assertion: metadata and signing keys loaded";
    let before = gw.log_text().matches(loaded).count();
    wait_for_log(&gw, loaded, before + 1);

    // The metadata breaks: refreshes fail (logged), and the copy in service stays.
    let failures = |gw: &Gateway| {
        let log = gw.log_text();
        log.matches("provider ssp-assertion: ").count() - log.matches(loaded).count()
    };
    let failed_before = failures(&gw);
    std::fs::write(&md_file, "<md:EntityDescriptor broken").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while failures(&gw) < failed_before + 2 {
        assert!(
            Instant::now() < deadline,
            "no failed refresh logged:\n{}",
            gw.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sign_in(&gw, "alice"), 302, "{}", gw.log_text());

    // The IdP rotates its signing key: assertions signed with the new one are refused while
    // the gateway knows only the old one...
    let cert = idp.dir.path().join("cert");
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
        ])
        .args(["-subj", "/CN=rotated-idp"])
        .arg("-keyout")
        .arg(cert.join("idp.key"))
        .arg("-out")
        .arg(cert.join("idp.crt"))
        .output()
        .expect("openssl")
        .status
        .success();
    assert!(ok);
    let refused = sign_in(&gw, "alice");
    assert!(
        (400..500).contains(&refused),
        "{refused}: {}",
        gw.log_text()
    );
    assert!(gw
        .log_text()
        .contains("SAML sign-in with ssp-assertion refused"));
    // ... and once the new metadata is published, the refresh alone brings the new key.
    let loads = gw.log_text().matches(loaded).count();
    std::fs::write(&md_file, metadata()).unwrap();
    wait_for_log(&gw, loaded, loads + 1);
    assert_eq!(sign_in(&gw, "alice"), 302, "{}", gw.log_text());
}
