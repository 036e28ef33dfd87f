//! The access log (`logging.access: true`) and audit events through the real binary: one JSON
//! line per request with what it came to, and not one line of the whole run — access, audit or
//! any other — carrying a secret, a cookie, a code, a token or an assertion.

mod common;

use common::*;
use serde_json::Value;

fn lines(gw: &Gateway) -> Vec<Value> {
    gw.log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

fn access<'a>(all: &'a [Value], path: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|l| l["event"] == "access" && l["path"] == path)
        .collect()
}

#[test]
fn one_line_per_request_and_no_secret_in_any_line() {
    let env = start_env_with(|b| {
        let up = b.upstream();
        b.server("log_format", "json")
            .routes_first([RouteSpec::new("admins", &up)
                .prefix("/admins")
                .roles(&["Nobody"])])
            .api_audience("api://authgate-reports")
            .tail("logging:\n  access: true\n")
    });
    let gw = &env.gw;
    // A public page, a sign-in (its callback carries a code and a state), a proxied page, a
    // denial, a hostile path, a forged bearer token, a sign-out.
    assert_eq!(
        Browser::new()
            .get(&format!("{}/public/x?secret_param=1", gw.url))
            .status(),
        200
    );
    let b = Browser::new();
    let callback = b.login_until_callback(&format!("{}/app?q=1", gw.url), "alice");
    let code = reqwest::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let (r, _) = b.follow(&callback);
    assert_eq!(r.status(), 200);
    let session = b
        .cookie(&format!("{}/", gw.url), "authgate_session")
        .unwrap();
    assert_eq!(b.get(&format!("{}/admins/", gw.url)).status(), 403);
    assert_eq!(raw_get(&gw.url, "/a/%2e%2e/admins").0, 400);
    let forged = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    let r = api()
        .get(format!("{}/app", gw.url))
        .bearer_auth(forged)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    b.sign_out(&gw.url);
    std::thread::sleep(std::time::Duration::from_millis(300));

    let all = lines(gw);
    let public = access(&all, "/public/x");
    assert_eq!(public.len(), 1, "{all:?}");
    assert_eq!(public[0]["decision"], "allow");
    assert_eq!(public[0]["upstream_status"], 200);
    assert!(public[0]["query"].is_null(), "no query by default");
    let app: Vec<&Value> = access(&all, "/app")
        .into_iter()
        .filter(|l| l["status"] == 200)
        .collect();
    assert_eq!(app.len(), 1, "{all:?}");
    assert_eq!(app[0]["user"], ALICE_OID);
    assert_eq!(app[0]["provider"], "test-idp");
    assert_eq!(app[0]["route"], "app");
    assert!(app[0]["bytes"].as_u64().unwrap() > 0 && app[0]["ms"].is_u64());
    let denied = access(&all, "/admins/");
    assert_eq!(denied[0]["decision"], "deny");
    assert_eq!(denied[0]["reason"], "missing_role");
    assert_eq!(denied[0]["user"], ALICE_OID);
    let callback_line = access(&all, "/_authgate/callback/test-idp");
    assert_eq!(callback_line.len(), 1);
    assert_eq!(callback_line[0]["decision"], "redirect");
    assert!(all
        .iter()
        .any(|l| l["event"] == "access" && l["status"] == 400 && l["decision"] == "refuse"));
    // Audit events beside the access lines: the denial, the hostile path, the forged token.
    let audits: Vec<&Value> = all.iter().filter(|l| l["event"] == "denied").collect();
    for reason in ["missing_role", "invalid_token"] {
        assert!(
            audits.iter().any(|a| a["reason"] == reason),
            "{reason}: {audits:?}"
        );
    }
    assert!(audits.len() >= 3, "{audits:?}");

    // Not one line carries a secret.
    let text = gw.log_text();
    for (what, secret) in [
        ("the session cookie", session.as_str()),
        ("the authorization code", code.as_str()),
        ("the client secret", CLIENT_SECRET),
        ("the session secret", SESSION_SECRET),
        ("the forged token", forged),
        ("a query parameter", "secret_param"),
    ] {
        assert!(!text.contains(secret), "{what} is in the log");
    }
    assert!(!text.contains("eyJ"), "a JWT is in the log");
}
