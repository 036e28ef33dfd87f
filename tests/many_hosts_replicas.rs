//! Handoffs across two replicas on one Redis: replica A on 127.0.0.1, replica B on 127.0.0.2,
//! both on the same port (so every host's URL carries public_url's port). A code issued by A
//! and redeemed on B is then spent on A too; signing out through B ends the session on A's
//! hosts.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::redis::start_standalone;
use common::*;

#[test]
fn a_handoff_code_is_single_use_across_replicas() {
    let redis = start_standalone();
    let port = free_port();
    let upstream = start_upstream();
    let public = format!("http://login.test:{port}");
    let op = start_op(&public, 0);
    let session = format!(
        "  store: redis\n  redis:\n{}hosts: [a.test, b.test]\n",
        redis.yaml("handoff:")
    );
    let config = |admin: u16| {
        ConfigBuilder::for_binary(port, &public, admin, &op.issuer, upstream.port).tail(&session)
    };
    let a = start_built(&config(free_port()));
    let mut b_cfg = config(free_port());
    b_cfg.listen = format!("127.0.0.2:{port}");
    let b = start_built(&b_cfg);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.2", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "replica B did not listen"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    let on_a: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let on_b: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    let url = |h: &str, p: &str| format!("http://{h}:{port}{p}");

    // login.test and a.test reach A, b.test reaches B.
    let browser = Browser::resolving(&[("login.test", on_a), ("a.test", on_a), ("b.test", on_b)]);
    let (r, landed) = browser.sign_in(&url("a.test", "/x"), "alice");
    assert_eq!(r.status(), 200, "{}", a.log_text());
    assert_eq!(landed, url("a.test", "/x"));

    // A code for b.test, issued by A, redeemed on B.
    let r = browser.get(&url("b.test", "/y"));
    let r = browser.get(&location(&r));
    let code = location(&r);
    assert!(
        code.starts_with(&url("b.test", "/_authgate/handoff?code=")),
        "{code}"
    );
    let r = browser.get(&code);
    assert_eq!(location(&r), url("b.test", "/y"), "{}", b.log_text());

    // The same browser (its cookies) sending the spent code to A under b.test's name.
    let via_a = Browser {
        client: reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(browser.jar.clone())
            .resolve("b.test", on_a)
            .build()
            .unwrap(),
        jar: browser.jar.clone(),
    };
    let r = via_a.get(&code);
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().contains("handoff_refused (replayed)"));
    assert!(a.log_text().contains("handoff refused (replayed)"));

    // Signing out on b.test (through B) ends the session on a.test (through A).
    let seen = echo(browser.api_get(&url("a.test", "/x")));
    assert_eq!(seen["headers"]["x-auth-user"], ALICE_OID);
    browser.sign_out(&url("b.test", ""));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while browser.api_get(&url("a.test", "/x")).status() != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "a.test still signed in"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
