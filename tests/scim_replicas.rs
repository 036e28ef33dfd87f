//! SCIM with three replicas of the real binary on one real Redis: what Entra provisions
//! through one replica every other one knows, and a deprovisioning through any replica
//! ends the user's session on every replica within 2 s, under traffic, while other users'
//! requests keep passing.

mod common;

use std::time::{Duration, Instant};

use common::redis::start_standalone;
use common::replicas::*;
use common::*;
use serde_json::{json, Value};

const TOKEN: &str = "scim-secret-token-for-replicas-0123456789";

fn scim(gw: &Gateway, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = api()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}/_authgate/scim/v2{path}", gw.url),
        )
        .header("authorization", format!("Bearer {TOKEN}"));
    if let Some(b) = body {
        r = r
            .header("content-type", "application/scim+json")
            .body(b.to_string());
    }
    let r = r.send().expect("SCIM call");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn user(name: &str, oid: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "externalId": oid, "active": true})
}

#[test]
fn a_deprovisioning_through_one_replica_reaches_every_replica_within_two_seconds() {
    let redis = start_standalone();
    let upstream = start_upstream();
    let port_a = free_port();
    let public = format!("http://127.0.0.1:{port_a}");
    let op = start_op(&public, 0);
    let session = format!(
        "{}\nscim:\n  token: \"{TOKEN}\"\n",
        redis_session(&redis, "scim-replicas:", "")
    );
    let a = replica(port_a, &public, &op, upstream.port, &session);
    let b = replica(free_port(), &public, &op, upstream.port, &session);
    let c = replica(free_port(), &public, &op, upstream.port, &session);
    let all = [&a, &b, &c];

    // Provisioned through B; A and C see the same directory.
    let (status, alice) = scim(
        &b,
        "POST",
        "/Users",
        Some(user("alice@contoso.example", ALICE_OID)),
    );
    assert_eq!(status, 201, "{alice}");
    let id = alice["id"].as_str().unwrap().to_string();
    assert_eq!(
        scim(
            &b,
            "POST",
            "/Users",
            Some(user("bob@contoso.example", BOB_OID))
        )
        .0,
        201
    );
    for gw in all {
        let (status, found) = scim(
            gw,
            "GET",
            &format!("/Users?filter=externalId%20eq%20%22{ALICE_OID}%22"),
            None,
        );
        assert_eq!(
            (status, &found["totalResults"]),
            (200, &json!(1)),
            "on {}",
            gw.url
        );
    }
    assert_eq!(
        scim(
            &c,
            "POST",
            "/Users",
            Some(user("ALICE@contoso.example", "other"))
        )
        .0,
        409,
        "uniqueness across replicas"
    );

    let (_, alice_cookie) = signed_in(&a, "alice");
    let (_, bob_cookie) = signed_in(&a, "bob");
    for gw in all {
        assert_eq!(
            status_with(&format!("{}/secret", gw.url), &alice_cookie),
            200,
            "cached on {}",
            gw.url
        );
    }
    // Bob's traffic on every replica, all through the deprovisioning.
    let traffic: Vec<Traffic> = all
        .iter()
        .map(|gw| Traffic::start(format!("{}/secret", gw.url), bob_cookie.clone()))
        .collect();

    // Entra disables Alice through C.
    let started = Instant::now();
    let (status, body) = scim(
        &c,
        "PATCH",
        &format!("/Users/{id}"),
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
        })),
    );
    assert_eq!((status, &body["active"]), (200, &json!(false)), "{body}");
    for gw in all {
        within(
            Duration::from_secs(2),
            "deprovisioned session refused",
            || status_with(&format!("{}/secret", gw.url), &alice_cookie) == 401,
        );
    }
    let took = started.elapsed();
    eprintln!("every replica refused the deprovisioned session {took:?} after the PATCH was sent");
    assert!(took < Duration::from_secs(2));

    for t in traffic {
        let (ok, unavailable, other) = t.finish();
        assert!(ok > 0, "bob's requests passed");
        assert_eq!((unavailable, other), (0, vec![]), "bob unaffected");
    }
    // A new sign-in through another replica is refused (the directory is shared).
    let browser = Browser::new();
    let (r, _) = browser.sign_in(&format!("{}/secret", a.url), "alice");
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().contains("deprovisioned"));
    assert_eq!(status_with(&format!("{}/secret", b.url), &bob_cookie), 200);
}
