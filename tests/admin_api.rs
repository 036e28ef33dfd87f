//! The admin API on the real binary (memory store: one replica, no Redis needed), as an
//! attacker on the admin network would try it: no token, wrong tokens, tokens of the wrong
//! length or scheme, paths and methods it does not serve, and then what it does serve.

mod common;

use common::*;

const TOKEN: &str = "admin-api-token-for-tests-0123456789";

fn call(method: &str, url: &str, auth: Option<&str>) -> (u16, String) {
    let mut r = api().request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    let r = r.send().expect("admin call");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

#[test]
fn the_admin_api_refuses_what_it_should_and_revokes_what_it_is_told() {
    let env = start_env_with(|b| b.admin_token(TOKEN).store("memory"));
    let admin = &env.gw.admin;
    let alice_oid = "00000000-0000-0000-66f3-3332eca7ea81";
    let list = format!("{admin}/api/v1/sessions?user={alice_oid}");
    let bearer = format!("Bearer {TOKEN}");
    let refused: &[(&str, &str, Option<&str>, u16)] = &[
        ("GET", &list, None, 401),
        ("GET", &list, Some(TOKEN), 401),
        ("GET", &list, Some(&format!("bearer {TOKEN}")), 401),
        ("GET", &list, Some(&format!("Basic {TOKEN}")), 401),
        ("GET", &list, Some(&format!("Bearer {TOKEN}x")), 401),
        (
            "GET",
            &list,
            Some(&format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
            401,
        ),
        ("GET", &list, Some("Bearer "), 401),
        ("GET", &list, Some(&format!("Bearer  {TOKEN}")), 401),
        (
            "DELETE",
            &list,
            Some("Bearer admin-api-token-for-tests-0123456788"),
            401,
        ),
        ("POST", &list, Some(&bearer), 404),
        (
            "PUT",
            &format!("{admin}/api/v1/sessions/x"),
            Some(&bearer),
            404,
        ),
        (
            "GET",
            &format!("{admin}/api/v1/sessions"),
            Some(&bearer),
            400,
        ),
        (
            "GET",
            &format!("{admin}/api/v1/sessions?user="),
            Some(&bearer),
            400,
        ),
        ("GET", &format!("{list}&provider=nope"), Some(&bearer), 404),
        ("GET", &format!("{admin}/api/v1/users"), Some(&bearer), 404),
        (
            "DELETE",
            &format!("{admin}/api/v1/sessions/a/b"),
            Some(&bearer),
            404,
        ),
        (
            "DELETE",
            &format!("{admin}/api/v1/sessions/"),
            Some(&bearer),
            404,
        ),
        (
            "GET",
            &format!("{admin}/api/v2/sessions?user=x"),
            Some(&bearer),
            404,
        ),
    ];
    for (method, url, auth, want) in refused {
        let (status, body) = call(method, url, *auth);
        assert_eq!(status, *want, "{method} {url} with {auth:?}: {body}");
        assert!(body.starts_with('{'), "JSON error body: {body}");
    }
    // Two sessions of Alice, one of Bob; the API lists and revokes them.
    let (a1, a2, b) = (Browser::new(), Browser::new(), Browser::new());
    for (br, user) in [(&a1, "alice"), (&a2, "alice"), (&b, "bob")] {
        assert_eq!(
            br.sign_in(&format!("{}/x", env.gw.url), user).0.status(),
            200
        );
    }
    let cookie = |br: &Browser| {
        br.cookie(&format!("{}/", env.gw.url), "authgate_session")
            .unwrap()
    };
    let (status, body) = call("GET", &list, Some(&bearer));
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<String> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{body}");
    let (status, _) = call(
        "DELETE",
        &format!("{admin}/api/v1/sessions/{}", ids[0]),
        Some(&bearer),
    );
    assert_eq!(status, 200);
    let still: Vec<u16> = [&a1, &a2]
        .iter()
        .map(|br| {
            get_with_session(&format!("{}/x", env.gw.url), &cookie(br))
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(
        still.iter().filter(|s| **s == 401).count(),
        1,
        "one of the two revoked: {still:?}"
    );
    let (status, body) = call("DELETE", &list, Some(&bearer));
    assert_eq!(status, 200, "{body}");
    for br in [&a1, &a2] {
        assert_eq!(
            get_with_session(&format!("{}/x", env.gw.url), &cookie(br)).status(),
            401
        );
    }
    assert_eq!(
        get_with_session(&format!("{}/x", env.gw.url), &cookie(&b)).status(),
        200
    );
    let log = env.gw.log_text();
    assert!(
        log.contains("admin_revoke_session") && log.contains("admin_revoke_user"),
        "audit lines"
    );
    assert!(
        log.contains("without the right token"),
        "refusals are logged"
    );
}

#[test]
fn without_a_token_the_admin_api_is_off() {
    let env = start_env("");
    let (status, body) = call(
        "GET",
        &format!("{}/api/v1/sessions?user=x", env.gw.admin),
        Some("Bearer anything-at-all-0123456789abcdef"),
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("admin API is off"));
}
