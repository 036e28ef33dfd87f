//! SCIM provisioning on the real binary, with the real OpenID provider and upstream: Entra's
//! documented request sequences replayed (tests/fixtures/scim), what they do to sign-ins and
//! sessions (deprovisioning, group names, `allow.provisioned`, attribute headers, the
//! first-sign-in webhook), and a table of hostile input, each answered with an RFC 7644
//! error body and nothing stored.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use serde_json::{json, Value};

const TOKEN: &str = "scim-secret-token-for-tests-0123456789";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/scim/entra_requests.json"
    ))
    .expect("fixture");
    let all: Value = serde_json::from_str(&text).expect("fixture JSON");
    all[name].clone()
}

struct Reply {
    status: u16,
    content_type: String,
    location: Option<String>,
    body: Value,
    raw: String,
}

/// A SCIM call as Entra makes it (bearer Secret Token, application/scim+json).
fn call(base: &str, method: &str, path: &str, body: Option<&Value>) -> Reply {
    call_with(
        base,
        method,
        path,
        body.map(|b| b.to_string()),
        Some(&format!("Bearer {TOKEN}")),
        "application/scim+json",
    )
}

fn call_with(
    base: &str,
    method: &str,
    path: &str,
    body: Option<String>,
    auth: Option<&str>,
    ct: &str,
) -> Reply {
    let url = format!("{base}/_authgate/scim/v2{path}");
    let mut r = api().request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    if let Some(b) = body {
        r = r.header("content-type", ct).body(b);
    }
    let r = r.send().expect("SCIM call");
    let status = r.status().as_u16();
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let location = header("location");
    let raw = r.text().unwrap_or_default();
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Reply {
        status,
        content_type,
        location,
        body,
        raw,
    }
}

/// `authgate_scim_requests_total` for one label set.
fn scim_count(
    m: &std::collections::HashMap<String, f64>,
    op: &str,
    resource: &str,
    result: &str,
) -> f64 {
    metric(
        m,
        &format!(
            r#"authgate_scim_requests_total{{op="{op}",resource="{resource}",result="{result}"}}"#
        ),
    )
}

fn scim_yaml(extra: &str) -> String {
    format!("scim:\n  token: \"{TOKEN}\"\n{extra}")
}

/// The gateway with `store: memory`, SCIM configured with `scim_extra`, and the routes
/// `routes` makes (given the test upstream) before the usual ones.
fn start(scim_extra: &str, routes: fn(&str) -> Vec<RouteSpec>) -> Env {
    let scim = scim_yaml(scim_extra);
    start_env_with(move |b| {
        let first = routes(&b.upstream());
        b.routes_first(first).store("memory").tail(&scim)
    })
}

/// No routes beyond the usual ones.
fn usual(_: &str) -> Vec<RouteSpec> {
    Vec::new()
}

fn assert_error(r: &Reply, status: u16, scim_type: Option<&str>, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.raw);
    assert!(
        r.content_type.starts_with("application/scim+json"),
        "{what}: {}",
        r.content_type
    );
    assert_eq!(r.body["schemas"], json!([ERROR]), "{what}: {}", r.raw);
    assert_eq!(
        r.body["status"],
        json!(status.to_string()),
        "{what}: status is a string"
    );
    assert_eq!(r.body["scimType"].as_str(), scim_type, "{what}: {}", r.raw);
    assert!(
        r.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{what}"
    );
}

#[test]
fn entra_sequences_replayed_against_the_binary() {
    let env = start("", usual);
    let gw = &env.gw.url;
    // Test Connection: a random GUID matches nobody; 200 and an empty ListResponse.
    let probe = call(
        gw,
        "GET",
        "/Users?filter=userName+eq+%2200aa00aa-0000-4000-8000-0123456789ab%22",
        None,
    );
    assert_eq!(probe.status, 200, "{}", probe.raw);
    assert!(probe.content_type.starts_with("application/scim+json"));
    assert_eq!(
        probe.body,
        json!({"schemas": [LIST], "totalResults": 0, "startIndex": 1, "itemsPerPage": 0, "Resources": []})
    );

    // Create User (request 1): 201, an id, the values as sent, meta and Location.
    let created = call(gw, "POST", "/Users", Some(&fixture("create_user")));
    assert_eq!(created.status, 201, "{}", created.raw);
    let u = &created.body;
    let id = u["id"].as_str().expect("id").to_string();
    assert_eq!(
        u["userName"],
        "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
    );
    assert_eq!(u["externalId"], "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef");
    assert_eq!(u["active"], true);
    assert_eq!(u["emails"], fixture("create_user")["emails"]);
    assert_eq!(u["meta"]["resourceType"], "User");
    assert!(u["meta"]["created"]
        .as_str()
        .is_some_and(|c| c.ends_with('Z')));
    let loc = created.location.expect("Location");
    assert!(
        loc.ends_with(&format!("/_authgate/scim/v2/Users/{id}")),
        "{loc}"
    );
    assert_eq!(u["meta"]["location"], json!(loc));

    // Get User, and by each of the queries Entra uses to match.
    let got = call(gw, "GET", &format!("/Users/{id}"), None);
    assert_eq!((got.status, &got.body), (200, &created.body));
    for filter in [
        r#"userName eq "test_user_00aa00aa-bb11-cc22-dd33-44ee44ee44ee""#,
        r#"externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef""#,
        r#"emails[type eq "work"].value eq "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com""#,
        &format!(
            r#"id eq "{id}" and userName eq "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee""#
        ),
        r#"active eq true"#,
    ] {
        let q = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>();
        let r = call(gw, "GET", &format!("/Users?filter={q}"), None);
        assert_eq!(r.status, 200, "{filter}: {}", r.raw);
        assert_eq!(r.body["totalResults"], 1, "{filter}: {}", r.raw);
        assert_eq!(r.body["Resources"][0]["id"], json!(id), "{filter}");
    }
    let none = call(
        gw,
        "GET",
        "/Users?filter=userName%20eq%20%22non-existent%20user%22",
        None,
    );
    assert_eq!(none.body["totalResults"], 0);
    assert_eq!(none.body["Resources"], json!([]));

    // The same userName or externalId again: 409 uniqueness, nothing stored.
    assert_error(
        &call(gw, "POST", "/Users", Some(&fixture("create_user"))),
        409,
        Some("uniqueness"),
        "duplicate",
    );
    let mut other = fixture("create_user_example2");
    other["externalId"] = json!("0A21F0F2-8D2A-4F8E-BF98-7363C4AED4EF");
    assert_error(
        &call(gw, "POST", "/Users", Some(&other)),
        409,
        Some("uniqueness"),
        "duplicate externalId",
    );

    // Microsoft's second sample (nulls, the misspelt enterprise URI) is accepted, nulls dropped.
    let joy = call(gw, "POST", "/Users", Some(&fixture("create_user_example2")));
    assert_eq!(joy.status, 201, "{}", joy.raw);
    assert!(
        joy.body.get("title").is_none() && joy.body.get("addresses").is_none(),
        "{}",
        joy.raw
    );

    // Update User [multi-valued], [single-valued], manager; then disable with "False".
    let r = call(
        gw,
        "PATCH",
        &format!("/Users/{id}"),
        Some(&fixture("patch_user_multi_valued")),
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["emails"][0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(r.body["emails"][0]["primary"], true);
    assert_eq!(r.body["name"]["familyName"], "updatedFamilyName");
    let r = call(
        gw,
        "PATCH",
        &format!("/Users/{id}"),
        Some(&fixture("patch_user_single_valued")),
    );
    assert_eq!(
        r.body["userName"], "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com",
        "{}",
        r.raw
    );
    let r = call(
        gw,
        "PATCH",
        &format!("/Users/{id}"),
        Some(&fixture("patch_user_manager")),
    );
    assert_eq!(
        r.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]["value"],
        "00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
        "{}",
        r.raw
    );
    for (fx, compliant) in [
        ("replace_many_default", false),
        ("replace_many_compliant", true),
    ] {
        let r = call(gw, "PATCH", &format!("/Users/{id}"), Some(&fixture(fx)));
        assert_eq!(r.status, 200, "{fx}: {}", r.raw);
        let ent = &r.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
        assert_eq!(
            ent["employeeNumber"],
            if compliant { "Aklq" } else { "Eqpj" },
            "{fx}"
        );
        assert_eq!(
            r.body["displayName"],
            if compliant { "Bjfe" } else { "Pvlo" },
            "{fx}"
        );
    }
    // The old userName no longer finds the user; the new one does.
    let old = call(
        gw,
        "GET",
        "/Users?filter=userName%20eq%20%22Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee%22",
        None,
    );
    assert_eq!(old.body["totalResults"], 0, "{}", old.raw);
    for fx in [
        "disable_user_default",
        "disable_user_compliant",
        "disable_user_boolean",
    ] {
        let r = call(gw, "PATCH", &format!("/Users/{id}"), Some(&fixture(fx)));
        assert_eq!(
            (r.status, &r.body["active"]),
            (200, &json!(false)),
            "{fx}: {}",
            r.raw
        );
    }
    // Soft-deleted users are still returned (Entra requires it).
    assert_eq!(
        call(gw, "GET", &format!("/Users/{id}"), None).body["active"],
        false
    );

    // Groups: created with no members, found by displayName without members, PATCH → 204.
    let g = call(gw, "POST", "/Groups", Some(&fixture("create_group")));
    assert_eq!(g.status, 201, "{}", g.raw);
    assert_eq!(g.body["displayName"], "displayName");
    let gid = g.body["id"].as_str().unwrap().to_string();
    let found = call(
        gw,
        "GET",
        "/Groups?excludedAttributes=members&filter=displayName+eq+%22displayName%22",
        None,
    );
    assert_eq!(found.body["totalResults"], 1, "{}", found.raw);
    assert!(found.body["Resources"][0].get("members").is_none());
    assert_eq!(found.body["Resources"][0]["id"], json!(gid));
    let add = call(
        gw,
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(&fixture("patch_group_add_members")),
    );
    assert_eq!((add.status, add.raw.as_str()), (204, ""));
    // A batch of member adds in one PATCH (Entra batches them).
    let batch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Add", "path": "members", "value": [{"value": id}, {"value": "u1091"}, {"value": "7f4bc1a3-285e-48ae-8202-5accb43efb0e"}]}
    ]});
    assert_eq!(
        call(gw, "PATCH", &format!("/Groups/{gid}"), Some(&batch)).status,
        204
    );
    let members = |gw: &str| -> Vec<String> {
        let r = call(gw, "GET", &format!("/Groups/{gid}"), None);
        r.body["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| m["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(members(gw).len(), 4);
    let member_filter = format!("/Groups?filter=id%20eq%20%22{gid}%22%20and%20members%20eq%20%22u1091%22&excludedAttributes=members");
    assert_eq!(
        call(gw, "GET", &member_filter, None).body["totalResults"],
        1
    );
    for fx in [
        "patch_group_remove_members",
        "remove_member_default",
        "remove_member_compliant",
    ] {
        assert_eq!(
            call(gw, "PATCH", &format!("/Groups/{gid}"), Some(&fixture(fx))).status,
            204,
            "{fx}"
        );
    }
    assert_eq!(members(gw), vec![id.clone()]);
    assert_eq!(
        call(gw, "GET", &member_filter, None).body["totalResults"],
        0
    );
    assert_eq!(
        call(
            gw,
            "PATCH",
            &format!("/Groups/{gid}"),
            Some(&fixture("patch_group_display_name"))
        )
        .status,
        204
    );
    let renamed = call(
        gw,
        "GET",
        &format!("/Groups/{gid}?attributes=displayName"),
        None,
    );
    assert_eq!(
        renamed.body["displayName"],
        "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    );
    assert!(renamed.body.get("members").is_none() && renamed.body.get("id").is_some());

    // Paging: 2 users, one per page; totalResults stays the whole count.
    let p1 = call(gw, "GET", "/Users?startIndex=1&count=1", None);
    let p2 = call(gw, "GET", "/Users?startIndex=2&count=1", None);
    let p3 = call(gw, "GET", "/Users?startIndex=3&count=1", None);
    assert_eq!(
        (
            p1.body["totalResults"].clone(),
            p1.body["itemsPerPage"].clone()
        ),
        (json!(2), json!(1))
    );
    assert_ne!(p1.body["Resources"][0]["id"], p2.body["Resources"][0]["id"]);
    assert_eq!(
        (
            p3.body["totalResults"].clone(),
            p3.body["Resources"].clone()
        ),
        (json!(2), json!([]))
    );
    assert_eq!(
        call(gw, "GET", "/Users?count=0", None).body["Resources"],
        json!([])
    );

    // Delete Group and User: 204, then 404 with an error body.
    assert_eq!(
        call(gw, "DELETE", &format!("/Groups/{gid}"), None).status,
        204
    );
    assert_error(
        &call(gw, "GET", &format!("/Groups/{gid}"), None),
        404,
        None,
        "deleted group",
    );
    assert_eq!(
        call(gw, "DELETE", &format!("/Users/{id}"), None).status,
        204
    );
    assert_error(
        &call(gw, "GET", &format!("/Users/{id}"), None),
        404,
        None,
        "deleted user",
    );
    assert_error(
        &call(gw, "DELETE", &format!("/Users/{id}"), None),
        404,
        None,
        "deleted twice",
    );

    // Discovery.
    let spc = call(gw, "GET", "/ServiceProviderConfig", None);
    assert_eq!(
        (
            spc.status,
            &spc.body["patch"]["supported"],
            &spc.body["bulk"]["supported"]
        ),
        (200, &json!(true), &json!(false))
    );
    let schemas = call(gw, "GET", "/Schemas", None);
    assert_eq!(schemas.body["totalResults"], 3, "{}", schemas.raw);
    let one = call(
        gw,
        "GET",
        "/Schemas/urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        None,
    );
    assert_eq!(one.body["name"], "EnterpriseUser", "{}", one.raw);
    assert_eq!(
        call(gw, "GET", "/ResourceTypes", None).body["totalResults"],
        2
    );
    assert_eq!(
        call(gw, "GET", "/ResourceTypes/Group", None).body["endpoint"],
        "/Groups"
    );

    let m = scrape(&env.gw.admin);
    assert!(scim_count(&m, "create", "User", "ok") >= 2.0);
    assert!(scim_count(&m, "create", "User", "uniqueness") >= 2.0);
    assert_eq!(metric(&m, "authgate_scim_users"), 1.0);
    assert_eq!(metric(&m, "authgate_scim_groups"), 0.0);
    let log = env.gw.log_text();
    for line in [
        "scim_user_created",
        "scim_user_changed",
        "scim_user_deleted",
        "scim_group_created",
        "scim_group_deleted",
    ] {
        assert!(log.contains(line), "audit line {line}");
    }
}

/// Signs `user` in (through a fresh browser); the status of the page it ends on and its body.
fn sign_in(gw: &str, user: &str, path: &str) -> (u16, String, Browser) {
    let b = Browser::new();
    let (r, _) = b.sign_in(&format!("{gw}{path}"), user);
    let status = r.status().as_u16();
    (status, r.text().unwrap_or_default(), b)
}

fn session_of(b: &Browser, gw: &str) -> String {
    b.cookie(&format!("{gw}/"), "authgate_session")
        .expect("session cookie")
}

fn user_body(user_name: &str, external: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name, "externalId": external, "active": true})
}

#[test]
fn deprovisioning_ends_sessions_and_refuses_sign_ins_until_reactivated() {
    let env = start("", usual);
    let gw = &env.gw.url;
    let (status, _, alice) = sign_in(gw, "alice", "/x");
    assert_eq!(status, 200);
    let (_, _, bob) = sign_in(gw, "bob", "/x");
    let (ca, cb) = (session_of(&alice, gw), session_of(&bob, gw));
    let id = call(
        gw,
        "POST",
        "/Users",
        Some(&user_body("alice@contoso.example", ALICE_OID)),
    )
    .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get_with_session(&format!("{gw}/x"), &ca).status(),
        200,
        "provisioning alone changes nothing"
    );

    // Entra's disable: the session is refused at once, Bob's is not.
    assert_eq!(
        call(
            gw,
            "PATCH",
            &format!("/Users/{id}"),
            Some(&fixture("disable_user_default"))
        )
        .status,
        200
    );
    assert_eq!(
        get_with_session(&format!("{gw}/x"), &ca).status(),
        401,
        "deprovisioned session"
    );
    assert_eq!(
        get_with_session(&format!("{gw}/x"), &cb).status(),
        200,
        "others unaffected"
    );
    // A new sign-in is refused with the deprovisioned page (no loop, no session).
    let (status, page, again) = sign_in(gw, "alice", "/x");
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("Your access has been removed") && page.contains("deprovisioned"),
        "{page}"
    );
    assert!(again
        .cookie(&format!("{gw}/"), "authgate_session")
        .is_none());

    // Reactivated: she signs in again.
    let on = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "Replace", "path": "active", "value": "True"}]});
    assert_eq!(
        call(gw, "PATCH", &format!("/Users/{id}"), Some(&on)).status,
        200
    );
    let (status, _, alice) = sign_in(gw, "alice", "/x");
    assert_eq!(status, 200, "reactivated");
    let ca = session_of(&alice, gw);
    // Hard delete: the session ends, and the deleted user cannot come back until created again.
    assert_eq!(
        call(gw, "DELETE", &format!("/Users/{id}"), None).status,
        204
    );
    assert_eq!(
        get_with_session(&format!("{gw}/x"), &ca).status(),
        401,
        "deleted user's session"
    );
    assert_eq!(sign_in(gw, "alice", "/x").0, 403, "deleted user signs in");
    assert_eq!(
        call(
            gw,
            "POST",
            "/Users",
            Some(&user_body("alice@contoso.example", ALICE_OID))
        )
        .status,
        201
    );
    assert_eq!(sign_in(gw, "alice", "/x").0, 200, "created again");
    // Replaced (PUT) as inactive: the same.
    let id = call(
        gw,
        "GET",
        &format!("/Users?filter=externalId%20eq%20%22{ALICE_OID}%22"),
        None,
    )
    .body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, _, alice) = sign_in(gw, "alice", "/x");
    let mut off = user_body("alice@contoso.example", ALICE_OID);
    off["active"] = json!(false);
    assert_eq!(
        call(gw, "PUT", &format!("/Users/{id}"), Some(&off)).status,
        200
    );
    assert_eq!(
        get_with_session(&format!("{gw}/x"), &session_of(&alice, gw)).status(),
        401
    );

    let m = scrape(&env.gw.admin);
    assert!(metric(&m, r#"authgate_denials_total{reason="deprovisioned"}"#) >= 2.0);
    let log = env.gw.log_text();
    assert!(
        log.contains("scim_sessions_ended") && log.contains("denied (deprovisioned)"),
        "logged"
    );
}

#[test]
fn group_names_policies_provisioned_only_routes_and_attribute_headers() {
    let hook = Webhook::start();
    let extra = format!(
        "  headers:\n    department: X-Auth-Department\n    manager: X-Auth-Manager\n    employeeNumber: X-Auth-Employee-Number\n  webhook:\n    url: \"{}\"\n    timeout: 1s\n",
        hook.url
    );
    let routes = |up: &str| {
        vec![
            RouteSpec::new("staff", up)
                .prefix("/staff")
                .groups(&["Staff Team"]),
            RouteSpec::new("known", up).prefix("/known").provisioned(),
        ]
    };
    let env = start(&extra, routes);
    let gw = &env.gw.url;
    // Before SCIM names the group, the name matches nothing.
    assert_eq!(
        sign_in(gw, "bob", "/staff/a").0,
        403,
        "no group is called Staff Team yet"
    );

    let staff = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Staff Team", "externalId": STAFF});
    assert_eq!(call(gw, "POST", "/Groups", Some(&staff)).status, 201);
    // A name a header cannot carry (non-ASCII, or a comma): the ID is sent instead.
    let admins = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Café, Ops", "externalId": ADMINS});
    assert_eq!(call(gw, "POST", "/Groups", Some(&admins)).status, 201);
    let bob = call(
        gw,
        "POST",
        "/Users",
        Some(&user_body("bob@contoso.example", BOB_OID)),
    )
    .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut alice = user_body("alice@contoso.example", ALICE_OID);
    alice["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] =
        json!({"department": "Finance", "employeeNumber": "E-1001", "manager": {"value": bob}});
    assert_eq!(call(gw, "POST", "/Users", Some(&alice)).status, 201);

    // Alice: the group by its SCIM name, the unnamed one by ID, her attributes as headers.
    let b = Browser::new();
    let (r, _) = b.sign_in(&format!("{gw}/staff/a"), "alice");
    assert_eq!(r.status(), 200);
    let seen = echo(b.api_get(&format!("{gw}/staff/a")));
    let groups = seen["headers"]["x-auth-groups"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(groups, format!("{ADMINS},Staff Team"));
    assert_eq!(seen["headers"]["x-auth-department"], "Finance");
    assert_eq!(seen["headers"]["x-auth-employee-number"], "E-1001");
    assert_eq!(seen["headers"]["x-auth-manager"], "bob@contoso.example");
    assert_eq!(b.get(&format!("{gw}/known/a")).status(), 200, "provisioned");

    // Carol is in the group but not provisioned: the provisioned-only route refuses her, and
    // the attribute headers she sends herself never reach the upstream.
    let c = Browser::new();
    let (r, _) = c.sign_in(&format!("{gw}/staff/a"), "carol");
    assert_eq!(r.status(), 200);
    let denied = c.get(&format!("{gw}/known/a"));
    assert_eq!(denied.status(), 403);
    assert!(denied.text().unwrap().contains("not_provisioned"));
    let spoof = api()
        .get(format!("{gw}/x"))
        .header("cookie", format!("authgate_session={}", session_of(&c, gw)))
        .header("x-auth-department", "CEO Office")
        .header("X_Auth_Manager", "ceo")
        .send()
        .unwrap();
    let seen = echo(spoof);
    assert!(seen["headers"].get("x-auth-department").is_none(), "{seen}");
    assert!(
        seen["headers"].get("x-auth-manager").is_none()
            && seen["headers"].get("x_auth_manager").is_none(),
        "{seen}"
    );

    // The webhook heard of both first sign-ins (once each) and of the provisioning.
    let events = hook.events();
    let firsts: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "first_sign_in")
        .collect();
    assert_eq!(firsts.len(), 3, "bob, alice, carol: {events:?}");
    assert!(firsts
        .iter()
        .any(|e| e["user"] == ALICE_OID && e["scim_id"].is_string()));
    assert!(
        firsts
            .iter()
            .any(|e| e["user"] == BOB_OID && e["scim_id"].is_null()),
        "bob signed in before he was provisioned"
    );
    let (_, _, _) = sign_in(gw, "alice", "/x");
    assert_eq!(
        hook.events()
            .iter()
            .filter(|e| e["event"] == "first_sign_in")
            .count(),
        3,
        "first only"
    );
    hook.wait_for(|e| e["event"] == "provisioned" && e["externalId"] == ALICE_OID);
}

/// A webhook receiver: records every JSON body POSTed to it; answers 200.
struct Webhook {
    url: String,
    events: Arc<Mutex<Vec<Value>>>,
    _thread: std::thread::JoinHandle<()>,
}

impl Webhook {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let thread = std::thread::spawn(move || {
            use std::io::{BufRead, BufReader, Read, Write};
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                if let Ok(v) = serde_json::from_slice(&body) {
                    seen.lock().unwrap().push(v);
                }
                let mut s = stream;
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Self {
            url,
            events,
            _thread: thread,
        }
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Change notifications are sent in the background: waits (up to 5 s) for one.
    fn wait_for(&self, what: impl Fn(&Value) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !self.events().iter().any(&what) {
            assert!(
                std::time::Instant::now() < deadline,
                "webhook event: {:?}",
                self.events()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

#[test]
fn a_failing_webhook_denies_the_first_sign_in_and_is_asked_again() {
    // Nothing listens there: the call fails fast.
    let dead = format!("http://127.0.0.1:{}/hook", free_port());
    let env = start(
        &format!("  webhook:\n    url: \"{dead}\"\n    timeout: 1s\n"),
        usual,
    );
    let gw = &env.gw.url;
    let (status, page, _) = sign_in(gw, "alice", "/x");
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("webhook_failed"), "{page}");
    let (status, _, _) = sign_in(gw, "alice", "/x");
    assert_eq!(status, 503, "asked again, still failing");
    let m = scrape(&env.gw.admin);
    assert!(
        metric(
            &m,
            r#"authgate_scim_webhook_calls_total{event="first_sign_in",result="failed"}"#
        ) >= 2.0
    );
}

#[test]
fn hostile_scim_input_gets_rfc_errors_and_stores_nothing() {
    let env = start("  max_body_bytes: 4096\n", usual);
    let gw = &env.gw.url;
    let user = || Some(user_body("mallory@contoso.example", "m-1").to_string());
    let bearer = format!("Bearer {TOKEN}");
    let (basic, longer, shorter) = (
        format!("Basic {TOKEN}"),
        format!("Bearer {TOKEN}x"),
        format!("Bearer {}", &TOKEN[1..]),
    );
    let j = "application/scim+json";
    // (method, path, body, auth, content type, status, scimType)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<String>,
        Option<&'a str>,
        &'a str,
        u16,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        ("GET", "/Users", None, None, j, 401, None),
        ("POST", "/Users", user(), None, j, 401, None),
        ("GET", "/Users", None, Some(TOKEN), j, 401, None),
        ("GET", "/Users", None, Some(&basic), j, 401, None),
        ("GET", "/Users", None, Some(&longer), j, 401, None),
        ("GET", "/Users", None, Some(&shorter), j, 401, None),
        ("GET", "/Users", None, Some("Bearer "), j, 401, None),
        ("DELETE", "/Users/x", None, Some("Bearer scim-secret-token-for-tests-0123456788"), j, 401, None),
        ("POST", "/Users", Some("{not json".into()), Some(&bearer), j, 400, Some("invalidSyntax")),
        ("POST", "/Users", Some("".into()), Some(&bearer), j, 400, Some("invalidSyntax")),
        ("POST", "/Users", Some("[]".into()), Some(&bearer), j, 400, Some("invalidSyntax")),
        ("POST", "/Users", Some(r#"{"schemas":["urn:evil"],"userName":"x"}"#.into()), Some(&bearer), j, 400, Some("invalidSyntax")),
        ("POST", "/Users", Some(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"userName":"x"}"#.into()), Some(&bearer), j, 400, Some("invalidSyntax")),
        ("POST", "/Users", Some(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]}"#.into()), Some(&bearer), j, 400, Some("invalidValue")),
        ("POST", "/Users", Some(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","active":"sometimes"}"#.into()), Some(&bearer), j, 400, Some("invalidValue")),
        ("POST", "/Groups", Some(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":""}"#.into()), Some(&bearer), j, 400, Some("invalidValue")),
        ("POST", "/Users", Some(format!(r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","pad":"{}"}}"#, "a".repeat(5000))), Some(&bearer), j, 413, None),
        ("POST", "/Users", user(), Some(&bearer), "text/plain", 415, None),
        ("POST", "/Users", user(), Some(&bearer), "application/x-www-form-urlencoded", 415, None),
        ("GET", "/Users?filter=userName%20co%20%22a%22", None, Some(&bearer), j, 400, Some("invalidFilter")),
        ("GET", "/Users?filter=userName%20eq%20%22a%22%20or%20userName%20eq%20%22b%22", None, Some(&bearer), j, 400, Some("invalidFilter")),
        ("GET", "/Users?filter=password%20eq%20%22a%22", None, Some(&bearer), j, 400, Some("invalidFilter")),
        ("GET", "/Users?filter=userName%20eq%20jyoung", None, Some(&bearer), j, 400, Some("invalidFilter")),
        ("GET", "/Users?filter=(userName%20eq%20%22a%22)", None, Some(&bearer), j, 400, Some("invalidFilter")),
        ("GET", "/Users?filter=", None, Some(&bearer), j, 400, Some("invalidFilter")),
        ("GET", "/Groups?filter=userName%20eq%20%22a%22", None, Some(&bearer), j, 400, Some("invalidFilter")),
        ("GET", "/Users?count=many", None, Some(&bearer), j, 400, Some("invalidValue")),
        ("GET", "/Users/does-not-exist", None, Some(&bearer), j, 404, None),
        ("PATCH", "/Users/does-not-exist", Some(fixture("disable_user_default").to_string()), Some(&bearer), j, 404, None),
        ("PUT", "/Users", user(), Some(&bearer), j, 405, None),
        ("DELETE", "/Users", None, Some(&bearer), j, 405, None),
        ("POST", "/Users/abc", user(), Some(&bearer), j, 405, None),
        ("GET", "/Users/a/b", None, Some(&bearer), j, 404, None),
        ("POST", "/Bulk", Some("{}".into()), Some(&bearer), j, 501, None),
        ("GET", "/Me", None, Some(&bearer), j, 404, None),
        ("GET", "/Schemas/urn:nope", None, Some(&bearer), j, 404, None),
    ];
    for (method, path, body, auth, ct, status, scim_type) in cases {
        let r = call_with(gw, method, path, body, auth, ct);
        assert_error(
            &r,
            status,
            scim_type,
            &format!("{method} {path} auth {auth:?} ct {ct}"),
        );
    }
    // A PATCH of an existing user that fails leaves it as it was.
    let id = call(
        gw,
        "POST",
        "/Users",
        Some(&user_body("victim@contoso.example", "v-1")),
    )
    .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    for patch in [
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "id", "value": "mine"}]}),
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "userName", "value": "x"}, {"op": "replace", "path": "active", "value": "nah"}]}),
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "remove", "path": "userName"}]}),
        json!({"Operations": [{"op": "replace", "path": "userName", "value": "x"}]}),
    ] {
        let r = call(gw, "PATCH", &format!("/Users/{id}"), Some(&patch));
        assert_eq!(r.status, 400, "{patch}: {}", r.raw);
    }
    let after = call(gw, "GET", &format!("/Users/{id}"), None);
    assert_eq!(
        (
            after.body["userName"].as_str(),
            after.body["active"].as_bool()
        ),
        (Some("victim@contoso.example"), Some(true))
    );
    // Nothing else was stored.
    let all = call(gw, "GET", "/Users", None);
    assert_eq!(all.body["totalResults"], 1, "{}", all.raw);
    // The reserved prefix in another spelling still reaches SCIM, never the upstream.
    let r = api()
        .get(format!("{gw}/_AuthGate/SCIM/v2/Users"))
        .header("authorization", &bearer)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        env.gw.log_text().contains("without the right token"),
        "refusals are logged"
    );
    let m = scrape(&env.gw.admin);
    assert!(scim_count(&m, "list", "User", "unauthorized") >= 1.0);
    assert!(scim_count(&m, "list", "User", "invalidFilter") >= 5.0);
}

#[test]
fn without_a_scim_section_the_endpoint_is_off() {
    let env = start_env("");
    let r = call(&env.gw.url, "GET", "/Users", None);
    assert_error(&r, 404, None, "off");
    assert!(r.raw.contains("off"));
}
