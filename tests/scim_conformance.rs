//! SCIM beyond Entra's dialect: a conformance table built from RFC 7643/7644's request and
//! response shapes, run against `/_authgate/scim/v2` with the memory and the Redis store.
//! Every attribute the gateway's `/Schemas` advertises is added, replaced and removed at
//! each path form (plain, URN-qualified, path-less), and every response is checked against
//! the advertised schema: no attribute it does not name, each of its type, and `schemas`
//! listing the extension exactly when the resource carries its attributes.

mod common;

use common::*;
use serde_json::{json, Value};

const TOKEN: &str = "scim-conformance-token-0123456789";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{base}/_authgate/scim/v2{path}");
    let mut r = api()
        .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
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

fn patch(base: &str, id: &str, ops: Value) -> (u16, Value) {
    call(
        base,
        "PATCH",
        &format!("/Users/{id}"),
        Some(json!({"schemas": [PATCH], "Operations": ops})),
    )
}

/// The advertised schemas, by URN.
fn advertised(base: &str) -> std::collections::HashMap<String, Value> {
    let (status, body) = call(base, "GET", "/Schemas", None);
    assert_eq!(status, 200);
    body["Resources"]
        .as_array()
        .expect("Resources")
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

/// `value` conforms to attribute definition `def` (type, multiValued, sub-attributes).
fn conforms(def: &Value, value: &Value, at: &str) {
    let one = |v: &Value, at: &str| match def["type"].as_str().unwrap() {
        "string" | "reference" => assert!(v.is_string(), "{at}: {v} is not a string"),
        "boolean" => assert!(v.is_boolean(), "{at}: {v} is not a boolean"),
        "complex" => {
            let m = v
                .as_object()
                .unwrap_or_else(|| panic!("{at}: {v} is not an object"));
            for (k, sv) in m {
                let sub = def["subAttributes"]
                    .as_array()
                    .and_then(|s| {
                        s.iter().find(|d| {
                            d["name"]
                                .as_str()
                                .is_some_and(|n| n.eq_ignore_ascii_case(k))
                        })
                    })
                    .unwrap_or_else(|| panic!("{at}.{k} is not advertised"));
                conforms(sub, sv, &format!("{at}.{k}"));
            }
        }
        other => panic!("{at}: type {other} not handled here"),
    };
    if def["multiValued"] == json!(true) {
        let items = value
            .as_array()
            .unwrap_or_else(|| panic!("{at}: {value} is not a list"));
        items.iter().for_each(|v| one(v, at));
    } else {
        one(value, at);
    }
}

/// A User as the gateway answered: every attribute advertised, of its type.
fn check_user(schemas: &std::collections::HashMap<String, Value>, user: &Value) {
    let find = |urn: &str, name: &str| {
        schemas[urn]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| {
                d["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .cloned()
    };
    let listed: Vec<&str> = user["schemas"]
        .as_array()
        .expect("schemas")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(listed.contains(&USER), "{user}");
    let has_ext = user.get(ENTERPRISE).is_some();
    assert_eq!(
        listed.contains(&ENTERPRISE),
        has_ext,
        "schemas must list the extension exactly when it is carried: {user}"
    );
    for (k, v) in user.as_object().unwrap() {
        match k.as_str() {
            "schemas" | "id" | "meta" => {}
            ENTERPRISE => {
                let ext = v
                    .as_object()
                    .unwrap_or_else(|| panic!("{k} is not an object"));
                assert!(!ext.is_empty(), "an empty extension object: {user}");
                for (ek, ev) in ext {
                    let def = find(ENTERPRISE, ek)
                        .unwrap_or_else(|| panic!("{ENTERPRISE}:{ek} is not advertised"));
                    conforms(&def, ev, ek);
                }
            }
            _ => {
                let def = find(USER, k).unwrap_or_else(|| panic!("{k} is not advertised: {user}"));
                conforms(&def, v, k);
            }
        }
    }
}

/// Where attribute `path` (a dotted or bracketed SCIM path, without URN) is in a User.
fn read<'a>(user: &'a Value, urn: &str, path: &str) -> Option<&'a Value> {
    let base = if urn == ENTERPRISE {
        user.get(ENTERPRISE)?
    } else {
        user
    };
    if let Some((attr, _)) = path.split_once("[type eq \"work\"]") {
        let items = base.get(attr)?.as_array()?;
        return items
            .iter()
            .find(|i| i["type"] == "work")
            .and_then(|i| i.get("value"));
    }
    match path.split_once('.') {
        Some((a, s)) => base.get(a)?.get(s),
        None => base.get(path),
    }
}

fn run_table(base: &str) {
    let schemas = advertised(base);
    let (status, created) = call(
        base,
        "POST",
        "/Users",
        Some(json!({
        "schemas": [USER], "userName": "conformance@contoso.example", "active": true,
        "emails": [{"type": "work", "value": "c@contoso.example", "primary": true}]})),
    );
    assert_eq!(status, 201, "{created}");
    check_user(&schemas, &created);
    assert!(created.get(ENTERPRISE).is_none());
    let id = created["id"].as_str().unwrap().to_string();

    // (schema, path, value): every string attribute advertised, a sub-attribute, a filtered one.
    let mut cases: Vec<(&str, String, Value)> = Vec::new();
    for (urn, s) in [(USER, &schemas[USER]), (ENTERPRISE, &schemas[ENTERPRISE])] {
        for def in s["attributes"].as_array().unwrap() {
            let name = def["name"].as_str().unwrap();
            if def["type"] == "string" && def["multiValued"] == false && name != "userName" {
                cases.push((urn, name.to_string(), json!(format!("v-{name}"))));
            }
        }
    }
    cases.push((USER, "name.givenName".into(), json!("Given")));
    cases.push((
        USER,
        "emails[type eq \"work\"].value".into(),
        json!("w@contoso.example"),
    ));
    let mut n = 0;
    for (urn, path, value) in &cases {
        let prefixed = format!("{urn}:{path}");
        // Plain paths exist for the core schema only; the extension's need their URN.
        let forms: Vec<String> = if *urn == USER {
            vec![path.clone(), prefixed.clone()]
        } else {
            vec![prefixed.clone()]
        };
        for form in forms {
            for op in ["add", "replace"] {
                n += 1;
                let v = json!(format!("{}-{n}", value.as_str().unwrap()));
                let (status, got) = patch(base, &id, json!([{"op": op, "path": form, "value": v}]));
                assert_eq!(status, 200, "{op} {form}: {got}");
                assert_eq!(read(&got, urn, path), Some(&v), "{op} {form}: {got}");
                check_user(&schemas, &got);
                let (_, stored) = call(base, "GET", &format!("/Users/{id}"), None);
                assert_eq!(read(&stored, urn, path), Some(&v), "GET after {op} {form}");
            }
            if path.contains('[') {
                continue;
            }
            let (status, got) = patch(base, &id, json!([{"op": "remove", "path": form}]));
            assert_eq!(status, 200, "remove {form}: {got}");
            assert_eq!(read(&got, urn, path), None, "remove {form}: {got}");
            check_user(&schemas, &got);
        }
        // Path-less: the key is the (URN-qualified) path.
        n += 1;
        let v = json!(format!("pathless-{n}"));
        let (status, got) = patch(
            base,
            &id,
            json!([{"op": "replace", "value": {prefixed.clone(): v}}]),
        );
        assert_eq!(status, 200, "path-less {prefixed}: {got}");
        assert_eq!(
            read(&got, urn, path),
            Some(&v),
            "path-less {prefixed}: {got}"
        );
        check_user(&schemas, &got);
    }

    // The extension URN itself as the path, its value the extension's object.
    let (status, got) = patch(
        base,
        &id,
        json!([{"op": "add", "path": ENTERPRISE,
        "value": {"department": "Sales", "employeeNumber": "701"}}]),
    );
    assert_eq!(status, 200, "{got}");
    assert_eq!(got[ENTERPRISE]["department"], "Sales", "{got}");
    assert!(
        got.get("urn:ietf:params:scim:schemas:extension:enterprise:2.0")
            .is_none(),
        "a bogus key: {got}"
    );
    check_user(&schemas, &got);
    let (_, got) = patch(
        base,
        &id,
        json!([{"op": "replace", "path": ENTERPRISE, "value": {"department": "HR"}}]),
    );
    assert_eq!(got[ENTERPRISE]["department"], "HR");
    assert_eq!(
        got[ENTERPRISE]["employeeNumber"], "701",
        "replace keeps the sub-attributes not given: {got}"
    );
    let (_, got) = patch(base, &id, json!([{"op": "remove", "path": ENTERPRISE}]));
    assert!(got.get(ENTERPRISE).is_none(), "{got}");
    check_user(&schemas, &got);
    let (status, _) = patch(
        base,
        &id,
        json!([{"op": "add", "path": ENTERPRISE, "value": "Sales"}]),
    );
    assert_eq!(status, 400);

    // Removing `active` removes it.
    let (status, got) = patch(base, &id, json!([{"op": "remove", "path": "active"}]));
    assert_eq!(status, 200);
    assert!(got.get("active").is_none(), "{got}");
    let (_, got) = patch(
        base,
        &id,
        json!([{"op": "replace", "path": "active", "value": false}]),
    );
    assert_eq!(got["active"], false);

    // The discovery endpoints are read-only: 405, not 404.
    for path in [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/Schemas",
        &format!("/Schemas/{USER}"),
    ] {
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let (status, body) = call(base, method, path, Some(json!({})));
            assert_eq!(status, 405, "{method} {path}: {body}");
        }
        assert_eq!(call(base, "GET", path, None).0, 200, "GET {path}");
    }
}

#[test]
fn conformance_table_on_the_memory_store() {
    let scim = format!("scim:\n  token: \"{TOKEN}\"\n");
    let env = start_env_with(|b| b.store("memory").tail(&scim));
    run_table(&env.gw.url);
}

#[test]
fn conformance_table_on_the_redis_store() {
    let redis = common::redis::start_standalone();
    let tail = format!(
        "  redis:\n{}scim:\n  token: \"{TOKEN}\"\n",
        redis.yaml("scimconf:")
    );
    let env = start_env_with(|b| b.store("redis").tail(&tail));
    run_table(&env.gw.url);
}
