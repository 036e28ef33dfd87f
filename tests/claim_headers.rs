//! `headers.claims` through the real binary and the real `oidc-provider`: a table of claim
//! shapes a user's ID token may carry, and exactly what the upstream receives for each. Client
//! copies of the configured headers never reach it.

mod common;

use common::*;
use serde_json::{json, Value};

/// Gives the test provider's user `name` these claims (merged into the user).
fn set_claims(op: &OpenIdProvider, name: &str, claims: Value) {
    op.hook(&format!("/test/users/{name}"), claims);
}

const EXTENSION: &str = "extension_0f1e2d3c4b5a69788796a5b4c3d2e1f0_costCenter";

#[test]
fn every_claim_shape_reaches_the_upstream_as_documented() {
    let tail = format!(
        "headers:
  claims:
    X-Department: department
    X-Employee-Number: employee_number
    X-Is-Manager: is_manager
    X-Tags: tags
    X-Nested: nested_list
    X-Bio: bio
    X-Motto: motto
    X-Local-Name: local_name
    X-Cost-Center: {EXTENSION}
    X-Absent: never_issued
"
    );
    let env = start_env_with(|b| b.tail(&tail));
    set_claims(
        &env.op,
        "alice",
        json!({
            "department": "Finance",
            "employee_number": 4711,
            "is_manager": true,
            "tags": ["a", "b,c", "Zoë", 7, false],
            "nested_list": {"street": "1 Main St", "city": "X"},
            "bio": "x".repeat(10 * 1024),
            "motto": "hi\r\nX-Injected: 1",
            "local_name": "Zoë Ünïcode",
            EXTENSION: "CC-42",
        }),
    );
    let b = Browser::new();
    assert_eq!(
        b.sign_in(&format!("{}/x", env.gw.url), "alice").0.status(),
        200
    );
    let cookie = b
        .cookie(&format!("{}/", env.gw.url), "authgate_session")
        .expect("session");
    // Clients' copies of every configured header are removed first, in any spelling.
    let mut req = api()
        .get(format!("{}/x", env.gw.url))
        .header("cookie", format!("authgate_session={cookie}"));
    for spoof in ["X-Department", "x_absent", "X-NESTED", "X-Bio"] {
        req = req.header(spoof, "spoofed");
    }
    let seen = echo(req.send().expect("request"));
    let h = &seen["headers"];
    for (header, want) in [
        // A string as it is.
        ("x-department", Some("Finance")),
        // A number and a boolean as JSON writes them.
        ("x-employee-number", Some("4711")),
        ("x-is-manager", Some("true")),
        // A list comma-joined, a comma inside an element encoded, non-ASCII as UTF-8 escapes.
        ("x-tags", Some("a,b%2Cc,Zo%C3%AB,7,false")),
        // An object: no header (and a log line), never a JSON blob.
        ("x-nested", None),
        // 10 KB: over the 4 KB cap, so no header rather than a cut one.
        ("x-bio", None),
        // CR/LF encoded: no header splitting, the text survives.
        ("x-motto", Some("hi%0D%0AX-Injected: 1")),
        ("x-injected", None),
        ("x-local-name", Some("Zo%C3%AB %C3%9Cn%C3%AFcode")),
        // An Entra extension attribute is a claim like any other.
        ("x-cost-center", Some("CC-42")),
        // A claim the token does not carry: no header, not an empty one.
        ("x-absent", None),
    ] {
        assert_eq!(h.get(header).and_then(Value::as_str), want, "{header}: {h}");
    }
    assert!(h.get("x_absent").is_none(), "{h}");
    let log = env.gw.log_text();
    assert!(
        log.contains("claim \"nested_list\" sends no header (an object"),
        "{log}"
    );
    assert!(
        log.contains("claim \"bio\" sends no header (longer than 4096 bytes"),
        "{log}"
    );
}

/// A configuration `authgate check` accepts, to which each test adds what it checks.
const MINIMAL: &str = r#"
listen: ["127.0.0.1:8080"]
public_url: "http://gw.example"
providers:
  - name: idp
    type: oidc
    issuer: "https://idp.example"
    client_id: x
    client_secret: "s"
routes:
  - upstream: "127.0.0.1:3000"
session:
  secret: "0123456789abcdef0123456789abcdef"
"#;

/// What `authgate check` refuses in `headers.claims`: names that belong to someone else.
#[test]
fn claim_header_names_that_collide_are_refused() {
    let yaml = MINIMAL.to_string()
        + r#"
headers:
  claims:
    X-Auth-User: upn
    X_Forwarded_For: ipaddr
    Cookie: sid
    Authorization: at
    "Bad Name": x
    X-Address: address
    X-Ok: department
    X-Assert: jobTitle
assertion:
  header: X-Assert
scim:
  token: "0123456789abcdef0123456789abcdef"
  headers:
    department: X-Ok
    title: X-Title
"#;
    let (ok, out) = check_config(&yaml);
    assert!(!ok, "check must fail:\n{out}");
    assert_config_errors(
        &out,
        &[
            ("headers.claims.X-Auth-User", "already an identity header"),
            ("headers.claims.X_Forwarded_For", "a forwarding header"),
            ("headers.claims.Cookie", "the request's own headers"),
            ("headers.claims.Authorization", "the request's own headers"),
            ("headers.claims.Bad Name", "not a valid header name"),
            ("headers.claims.X-Address", "is an object"),
            ("assertion.header", "already an identity header"),
            ("assertion.key_files", "list at least one P-256 key"),
            (
                "scim.headers.department",
                "already an identity, claim or assertion header",
            ),
        ],
    );
    assert!(!out.contains("headers.claims.X-Ok"), "{out}");
    assert!(!out.contains("scim.headers.title"), "{out}");
}

/// Identity headers go upstream as wire lines appended to the head, so their names must not
/// be ones the request or the gateway sets: a second `Host` or `Content-Length` would be two
/// answers to one question, read differently by different upstreams. Other conventions' names
/// stay allowed (oauth2-proxy's `X-Forwarded-User`, a migration's first step).
#[test]
fn identity_header_names_that_frame_the_request_are_refused() {
    let yaml = MINIMAL.to_string()
        + r#"
headers:
  user: Host
  email: X-Forwarded-User
  groups: X_Forwarded_For
  roles: content-length
  tenant: Transfer-Encoding
  name: Authorization
"#;
    let (ok, out) = check_config(&yaml);
    assert!(!ok, "check must fail:\n{out}");
    assert_config_errors(
        &out,
        &[
            ("headers.user", "the request's own headers"),
            ("headers.groups", "a forwarding header the gateway sets"),
            ("headers.roles", "the request's own headers"),
            ("headers.tenant", "the request's own headers"),
            ("headers.name", "the request's own headers"),
        ],
    );
    assert!(!out.contains("headers.email"), "{out}");
}
