//! Rules on any claim (`allow.claims`, `deny:`) through the real binary and the real
//! `oidc-provider`: a table of users, claim shapes and routes, and the reason each refusal
//! names on the page, in the JSON answer and in `authgate_denials_total`.

mod common;

use common::*;
use serde_json::{json, Value};

fn set_claims(op: &OpenIdProvider, name: &str, claims: Value) {
    op.hook(&format!("/test/users/{name}"), claims);
}

#[test]
fn claim_rules_allow_and_deny_as_written() {
    let env = start_env_with(|b| {
        let up = b.upstream();
        b.routes_first([
            RouteSpec::new("finance", &up)
                .prefix("/finance")
                .with("allow:\n  claims:\n    department: [Finance, HR]"),
            RouteSpec::new("managers", &up)
                .prefix("/managers")
                .with("allow:\n  claims:\n    jobTitle: \"*Manager\""),
            RouteSpec::new("level", &up)
                .prefix("/level")
                .with("allow:\n  claims:\n    level: [7]\n    is_manager: [true]"),
            RouteSpec::new("no-contractors", &up)
                .prefix("/no-contractors")
                .roles(&["Reader"])
                .with("deny:\n  claims:\n    tags: [contractor]"),
            RouteSpec::new("both", &up)
                .prefix("/both")
                .with("allow:\n  claims:\n    department: [Finance, HR]\ndeny:\n  claims:\n    jobTitle: [\"Contract*\"]\n  groups: [\"6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1b1\"]"),
        ])
    });
    set_claims(
        &env.op,
        "alice",
        json!({"department": "Finance", "jobTitle": "Sales Manager",
        "tags": ["blue", "contractor"], "level": 7, "is_manager": true}),
    );
    set_claims(
        &env.op,
        "carol",
        json!({"department": "HR", "jobTitle": "Contract Manager",
        "tags": ["green"], "level": "7", "is_manager": false}),
    );
    let gw = &env.gw;
    let users: Vec<(&str, Browser)> = ["alice", "carol", "bob"]
        .into_iter()
        .map(|u| {
            let b = Browser::new();
            let (r, _) = b.sign_in(&format!("{}/", gw.url), u);
            assert_eq!(r.status(), 200, "{u}: {}", gw.log_text());
            (u, b)
        })
        .collect();
    // (user, path, status, reason)
    let table = [
        ("alice", "/finance/", 200, ""),
        ("carol", "/finance/", 200, ""),
        ("bob", "/finance/", 403, "allow.claims.department"),
        ("alice", "/managers/", 200, ""),
        ("carol", "/managers/", 200, ""),
        ("bob", "/managers/", 403, "allow.claims.jobTitle"),
        // A number and a boolean match their written forms; a string "7" matches 7 too.
        ("alice", "/level/", 200, ""),
        ("carol", "/level/", 403, "allow.claims.is_manager"),
        // An array matches if any element does; deny wins over allow.
        ("alice", "/no-contractors/", 403, "deny.claims.tags"),
        ("carol", "/no-contractors/", 200, ""),
        ("bob", "/no-contractors/", 403, "missing_role"),
        // Alice is in the denied group; Carol's title is denied though HR is allowed.
        ("alice", "/both/", 403, "deny.groups"),
        ("carol", "/both/", 403, "deny.claims.jobTitle"),
        ("bob", "/both/", 403, "allow.claims.department"),
    ];
    for (user, path, status, reason) in table {
        let b = &users.iter().find(|(u, _)| *u == user).unwrap().1;
        let r = b.get(&format!("{}{path}", gw.url));
        assert_eq!(r.status(), status, "{user} {path}");
        if status == 403 {
            let page = r.text().unwrap();
            assert!(
                page.contains(&format!("Reason: {reason}")),
                "{user} {path}: {page}"
            );
            let r = b.api_get(&format!("{}{path}", gw.url));
            let body: Value = r.json().unwrap();
            assert_eq!(body["error"], reason, "{user} {path}");
        }
    }
    let m = scrape(&gw.admin);
    assert_eq!(
        metric(&m, "authgate_denials_total{reason=\"deny.claims.tags\"}"),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            "authgate_denials_total{reason=\"allow.claims.department\"}"
        ),
        4.0
    );
}

#[test]
fn claim_rules_that_cannot_work_are_refused_by_check() {
    let env_free = |routes: &str| {
        format!(
            "listen: [\"127.0.0.1:8080\"]\npublic_url: \"http://gw.example\"\nproviders:\n  - name: e\n    type: entra\n    tenant: {TENANT}\n    client_id: x\n    client_secret: \"s\"\n  - name: s\n    type: saml\n    entity_id: \"https://gw.example/saml\"\n    idp_metadata_url: \"https://idp.example/metadata\"\nsession:\n  secret: \"{SESSION_SECRET}\"\nroutes:\n{routes}"
        )
    };
    let (ok, out) = check_config(&env_free(
        "  - name: a\n    upstream: 127.0.0.1:3\n    provider: e\n    allow:\n      claims:\n        jobTitle: [\"*a*\"]\n        \"bad name\": [x]\n        dept: []\n    require:\n      mfa: true\n      auth_context: c0\n      max_age: 0s\n  - name: b\n    path_prefix: /b\n    upstream: 127.0.0.1:3\n    provider: s\n    require:\n      auth_context: c1\n  - name: c\n    path_prefix: /c\n    upstream: 127.0.0.1:3\n    provider: e\n    public: true\n    require:\n      max_age: 1h\n    deny:\n      claims: [x]\n",
    ));
    assert!(!ok, "{out}");
    assert_config_errors(
        &out,
        &[
            ("routes[0].allow.claims.jobTitle[0]", "at most one *"),
            ("routes[0].allow.claims", "is not a claim name"),
            ("routes[0].allow.claims.dept", "between 1 and 256"),
            ("routes[0].require.mfa", "use auth_context"),
            (
                "routes[0].require.auth_context",
                "not an authentication context ID",
            ),
            ("routes[0].require.max_age", "between 1s and 400d"),
            ("routes[1].require.auth_context", "SAML"),
            ("routes[2].require", "public route"),
            ("routes[2].deny.claims", "expected a mapping"),
        ],
    );
}
