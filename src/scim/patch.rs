//! PATCH (RFC 7644 §3.5.2) in both of Entra ID's dialects: the default one (capitalised
//! `op`s, `"active": "False"`, members removed by a `value` list) and the compliant one a
//! tenant URL with `aadOptscim062020` turns on (lower-case `op`s, booleans, a path-less
//! `replace` whose keys are dotted paths, `members[value eq "…"]`). Both are read by one
//! parser: `op` case-insensitively, booleans from strings where the attribute is boolean.
//!
//! The result is checked as a whole (`resource::check`) before it is stored.

use serde_json::{Map, Value};

use super::directory::Kind;
use super::path::{scalar_eq, Path, ENTERPRISE};
use super::resource::{check, ScimError, PATCH_SCHEMA};

/// At most this many operations in one PATCH.
const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// Applies the PatchOp `body` to `doc` (a stored resource without `id`/`meta`).
pub(crate) fn apply(
    kind: Kind,
    doc: &mut Map<String, Value>,
    body: &Value,
) -> Result<(), ScimError> {
    let Some(obj) = body.as_object() else {
        return Err(ScimError::invalid_syntax("the body must be a JSON object"));
    };
    let find = |name: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let is_patch = matches!(find("schemas"), Some(Value::Array(s))
        if s.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_SCHEMA))));
    if !is_patch {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must include {PATCH_SCHEMA}"
        )));
    }
    let ops = match find("Operations") {
        Some(Value::Array(ops)) if !ops.is_empty() && ops.len() <= MAX_OPERATIONS => ops,
        Some(Value::Array(ops)) if !ops.is_empty() => {
            return Err(ScimError::invalid_value(format!(
                "at most {MAX_OPERATIONS} operations per PATCH"
            )))
        }
        _ => {
            return Err(ScimError::invalid_syntax(
                "Operations must be a non-empty list",
            ))
        }
    };
    for o in ops {
        operation(kind, doc, o)?;
    }
    check(kind, doc)
}

fn operation(kind: Kind, doc: &mut Map<String, Value>, o: &Value) -> Result<(), ScimError> {
    let Some(o) = o.as_object() else {
        return Err(ScimError::invalid_syntax(
            "each operation must be an object",
        ));
    };
    let field = |name: &str| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let op = match field("op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("add") => Op::Add,
        Some("replace") => Op::Replace,
        Some("remove") => Op::Remove,
        _ => {
            return Err(ScimError::invalid_syntax(
                "op must be add, replace or remove",
            ))
        }
    };
    let value = field("value").filter(|v| !v.is_null());
    let path = match field("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => {
            Some(Path::parse(p).map_err(|e| ScimError::new(400, Some("invalidPath"), e.0))?)
        }
        Some(_) => {
            return Err(ScimError::new(
                400,
                Some("invalidPath"),
                "path must be a string",
            ))
        }
    };
    if let Some(urn) = path.as_ref().and_then(schema_urn) {
        return whole_schema(kind, doc, &urn, op, value);
    }
    match (path, op, value) {
        (None, Op::Remove, _) => Err(ScimError::new(400, Some("noTarget"), "remove needs a path")),
        (None, _, Some(Value::Object(values))) => {
            // Path-less: each key is an attribute, a dotted path or a URN-qualified one.
            for (k, v) in values {
                if v.is_null() {
                    continue;
                }
                let p =
                    Path::parse(k).map_err(|e| ScimError::new(400, Some("invalidPath"), e.0))?;
                // `"urn:…:enterprise:2.0:User": {...}`: the extension's attributes.
                match schema_urn(&p).filter(|_| v.is_object()) {
                    Some(urn) => whole_schema(kind, doc, &urn, op, Some(v))?,
                    None => set(kind, doc, &p, op, Some(v))?,
                }
            }
            Ok(())
        }
        (None, _, _) => Err(ScimError::invalid_value(
            "a path-less add or replace needs an object value",
        )),
        (Some(p), Op::Remove, v) => set(kind, doc, &p, op, v),
        (Some(_), _, None) => Err(ScimError::invalid_value("add and replace need a value")),
        (Some(p), _, v) => set(kind, doc, &p, op, v),
    }
}

/// The schema URN a path names as a whole (`urn:…:enterprise:2.0:User`), if it does: the
/// path reader takes its last part for an attribute.
fn schema_urn(p: &Path) -> Option<String> {
    let schema = p.schema.as_deref()?;
    let named = p.select.is_none()
        && p.sub.is_none()
        && (p.attr.eq_ignore_ascii_case("User") || p.attr.eq_ignore_ascii_case("Group"));
    named.then(|| format!("{schema}:{}", p.attr))
}

/// An operation on a whole schema: the core one's attributes, or an extension's object.
/// `add`/`replace` set the sub-attributes given (the others stay, RFC 7644 §3.5.2.1/3);
/// `remove` drops an extension with all its attributes.
fn whole_schema(
    kind: Kind,
    doc: &mut Map<String, Value>,
    urn: &str,
    op: Op,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let core = urn
        .to_ascii_lowercase()
        .starts_with("urn:ietf:params:scim:schemas:core:");
    match (op, value) {
        (Op::Remove, _) if core => Err(ScimError::new(
            400,
            Some("mutability"),
            "the core schema cannot be removed",
        )),
        (Op::Remove, _) => {
            if let Some(k) = key_of(doc, urn) {
                doc.remove(&k);
            }
            Ok(())
        }
        (_, Some(Value::Object(values))) => {
            for (sk, sv) in values.iter().filter(|(_, v)| !v.is_null()) {
                let name = if core {
                    sk.clone()
                } else {
                    format!("{urn}:{sk}")
                };
                let p = Path::parse(&name)
                    .map_err(|e| ScimError::new(400, Some("invalidPath"), e.0))?;
                set(kind, doc, &p, op, Some(sv))?;
            }
            Ok(())
        }
        _ => Err(ScimError::invalid_value(format!(
            "{urn} takes an object of its attributes"
        ))),
    }
}

/// The key `name` has in `map`, if any (attribute names are case-insensitive).
fn key_of(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// `map[name]`, created with `empty` when absent (under `name` as given).
fn slot<'a>(map: &'a mut Map<String, Value>, name: &str, empty: Value) -> &'a mut Value {
    let key = key_of(map, name).unwrap_or_else(|| name.to_string());
    map.entry(key).or_insert(empty)
}

/// A value as added: objects without their `null` fields (Entra's `"$ref": null`).
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(clean).collect()),
        other => other.clone(),
    }
}

/// Two elements of a multi-valued attribute are the same element: same `value` if they
/// have one, or equal.
fn same_element(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => scalar_eq(x, y, true),
        _ => a == b,
    }
}

/// The enterprise `manager`: `{"value": id}`, whether sent as that, as a bare id, or as
/// Entra's one-element `[{"$ref": …, "value": id}]`.
fn manager(v: &Value) -> Result<Value, ScimError> {
    let pick = match v {
        Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    match pick {
        Value::String(s) => Ok(serde_json::json!({ "value": s })),
        Value::Object(m) if m.get("value").is_some_and(Value::is_string) => {
            Ok(clean(&Value::Object(m)))
        }
        _ => Err(ScimError::invalid_value(
            "manager must be an id or {\"value\": id}",
        )),
    }
}

fn set(
    kind: Kind,
    doc: &mut Map<String, Value>,
    path: &Path,
    op: Op,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let top = path.attr.to_ascii_lowercase();
    if path.in_schema(None) && ["id", "meta", "schemas"].contains(&top.as_str()) {
        return Err(ScimError::new(
            400,
            Some("mutability"),
            format!("{} cannot be changed", path.attr),
        ));
    }
    // Where the attribute lives: the resource, or an extension's object inside it. Entra
    // names the manager without its schema (`"path": "manager"`).
    let is_manager = kind == Kind::User
        && top == "manager"
        && (path.in_schema(None) || path.in_schema(Some(ENTERPRISE)));
    let container: &mut Map<String, Value> = match (&path.schema, is_manager) {
        (_, true) => ext(doc, ENTERPRISE)?,
        (Some(s), _) if !path.in_schema(None) => ext(doc, s)?,
        _ => doc,
    };
    if is_manager && path.sub.is_none() && path.select.is_none() {
        match (op, value) {
            (Op::Remove, _) => {
                if let Some(k) = key_of(container, "manager") {
                    container.remove(&k);
                }
            }
            (_, Some(v)) => {
                let m = manager(v)?;
                *slot(container, "manager", Value::Null) = m;
            }
            (_, None) => {}
        }
        return Ok(());
    }
    match (&path.select, &path.sub) {
        (None, None) => set_whole(container, path, op, value),
        (None, Some(sub)) => set_sub(container, path, sub, op, value),
        (Some((sel, want)), sub) => {
            set_selected(container, path, (sel, want), sub.as_deref(), op, value)
        }
    }
}

/// `attr`: the whole attribute (a multi-valued one gains or loses elements).
fn set_whole(
    container: &mut Map<String, Value>,
    path: &Path,
    op: Op,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let Some(k) = key_of(container, &path.attr) else {
        if let (Op::Add | Op::Replace, Some(v)) = (op, value) {
            container.insert(path.attr.clone(), clean(v));
        }
        return Ok(());
    };
    match (op, value, container.get_mut(&k)) {
        (Op::Remove, None, _) => {
            container.remove(&k);
        }
        (Op::Remove, Some(v), Some(Value::Array(items))) => {
            // Entra's default member removal: `"value": [{"value": id}, ...]`.
            let doomed: Vec<Value> = match v {
                Value::Array(a) => a.clone(),
                one => vec![one.clone()],
            };
            items.retain(|i| !doomed.iter().any(|d| same_element(i, d)));
        }
        (Op::Remove, Some(_), _) => {
            container.remove(&k);
        }
        (Op::Add, Some(v), Some(Value::Array(items))) => {
            let new: Vec<Value> = match v {
                Value::Array(a) => a.iter().map(clean).collect(),
                one => vec![clean(one)],
            };
            for n in new {
                if !items.iter().any(|i| same_element(i, &n)) {
                    items.push(n);
                }
            }
        }
        (Op::Add | Op::Replace, Some(Value::Object(v)), Some(Value::Object(existing))) => {
            for (sk, sv) in v {
                if sv.is_null() {
                    continue;
                }
                *slot(existing, sk, Value::Null) = clean(sv);
            }
        }
        (_, Some(v), Some(existing)) => *existing = clean(v),
        _ => {}
    }
    Ok(())
}

/// `attr.sub`: one sub-attribute of a complex attribute.
fn set_sub(
    container: &mut Map<String, Value>,
    path: &Path,
    sub: &str,
    op: Op,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let parent = slot(container, &path.attr, Value::Object(Map::new()));
    let Value::Object(parent) = parent else {
        return Err(ScimError::new(
            400,
            Some("invalidPath"),
            format!("{} has no sub-attributes", path.attr),
        ));
    };
    match (op, value) {
        (Op::Remove, _) => {
            if let Some(k) = key_of(parent, sub) {
                parent.remove(&k);
            }
        }
        (_, Some(v)) => *slot(parent, sub, Value::Null) = clean(v),
        (_, None) => {}
    }
    if parent.is_empty() {
        if let Some(k) = key_of(container, &path.attr) {
            container.remove(&k);
        }
    }
    Ok(())
}

/// `attr[sel eq "want"].sub`: the elements a filter selects (created when absent).
fn set_selected(
    container: &mut Map<String, Value>,
    path: &Path,
    (sel, want): (&String, &Value),
    sub: Option<&str>,
    op: Op,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let list = slot(container, &path.attr, Value::Array(Vec::new()));
    let Value::Array(items) = list else {
        return Err(ScimError::new(
            400,
            Some("invalidPath"),
            format!("{} is not multi-valued", path.attr),
        ));
    };
    let matches = |i: &Value| {
        i.as_object()
            .and_then(|m| key_of(m, sel).and_then(|k| m.get(&k)))
            .is_some_and(|v| scalar_eq(v, want, false))
    };
    match (op, sub, value) {
        (Op::Remove, None, _) => items.retain(|i| !matches(i)),
        (Op::Remove, Some(sub), _) => {
            for i in items.iter_mut().filter(|i| matches(i)) {
                if let Some(m) = i.as_object_mut() {
                    if let Some(k) = key_of(m, sub) {
                        m.remove(&k);
                    }
                }
            }
        }
        (_, _, None) => {}
        (_, sub, Some(v)) => {
            let mut found = false;
            for i in items.iter_mut().filter(|i| matches(i)) {
                found = true;
                let Some(m) = i.as_object_mut() else { continue };
                match (sub, v) {
                    (Some(sub), v) => *slot(m, sub, Value::Null) = clean(v),
                    (None, Value::Object(o)) => {
                        for (sk, sv) in o {
                            *slot(m, sk, Value::Null) = clean(sv);
                        }
                    }
                    (None, _) => {
                        return Err(ScimError::invalid_value(
                            "a filtered path without a sub-attribute needs an object value",
                        ))
                    }
                }
            }
            if !found {
                // Entra replaces `emails[type eq "work"].value` on users without
                // one: the element is created.
                let mut m = Map::new();
                m.insert(sel.clone(), want.clone());
                match (sub, v) {
                    (Some(sub), v) => {
                        m.insert(sub.to_string(), clean(v));
                    }
                    (None, Value::Object(o)) => {
                        for (sk, sv) in o {
                            m.insert(sk.clone(), clean(sv));
                        }
                    }
                    (None, _) => {
                        return Err(ScimError::invalid_value(
                            "a filtered path without a sub-attribute needs an object value",
                        ))
                    }
                }
                items.push(Value::Object(m));
            }
        }
    }
    if items.is_empty() {
        if let Some(k) = key_of(container, &path.attr) {
            container.remove(&k);
        }
    }
    Ok(())
}

/// The extension object `urn` inside `doc`, created when absent.
fn ext<'a>(
    doc: &'a mut Map<String, Value>,
    urn: &str,
) -> Result<&'a mut Map<String, Value>, ScimError> {
    match slot(doc, urn, Value::Object(Map::new())) {
        Value::Object(m) => Ok(m),
        _ => Err(ScimError::invalid_value(format!("{urn} must be an object"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Map<String, Value> {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "active": true,
            "emails": [{"primary": true, "type": "work", "value": "old@testuser.com"}],
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn group() -> Map<String, Value> {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Sales", "members": []})
            .as_object()
            .cloned()
            .unwrap()
    }

    fn ops(ops: Value) -> Value {
        json!({"schemas": [PATCH_SCHEMA], "Operations": ops})
    }

    #[test]
    fn entra_default_dialect() {
        let mut u = user();
        apply(Kind::User, &mut u, &ops(json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "nickName", "value": "Babs"},
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "Eqpj"},
            {"op": "Add", "path": "manager", "value": [{"$ref": "http://x/scim/Users/00aa", "value": "00aa"}]},
        ]))).unwrap();
        assert_eq!(
            u["emails"],
            json!([{"primary": true, "type": "work", "value": "updatedEmail@microsoft.com"}])
        );
        assert_eq!(u["name"]["familyName"], json!("updatedFamilyName"));
        assert_eq!(u["active"], json!(false));
        assert_eq!(u["nickName"], json!("Babs"));
        assert_eq!(u[ENTERPRISE]["employeeNumber"], json!("Eqpj"));
        assert_eq!(
            u[ENTERPRISE]["manager"],
            json!({"$ref": "http://x/scim/Users/00aa", "value": "00aa"})
        );
    }

    #[test]
    fn entra_compliant_dialect() {
        let mut u = user();
        apply(Kind::User, &mut u, &ops(json!([
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "TestMhvaes@test.microsoft.com"},
            {"op": "replace", "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                "name.familyName": "Unua",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq"
            }},
            {"op": "replace", "path": "active", "value": false},
        ]))).unwrap();
        assert_eq!(u["displayName"], json!("Bjfe"));
        assert_eq!(
            u["name"],
            json!({"formatted": "givenName familyName", "familyName": "Unua", "givenName": "Kkom"})
        );
        assert_eq!(u[ENTERPRISE]["employeeNumber"], json!("Aklq"));
        assert_eq!(u["active"], json!(false));
        assert_eq!(
            u["emails"][0]["value"],
            json!("TestMhvaes@test.microsoft.com")
        );
    }

    #[test]
    fn group_members_in_both_dialects() {
        let mut g = group();
        apply(Kind::Group, &mut g, &ops(json!([
            {"op": "Add", "path": "members", "value": [{"$ref": null, "value": "u1"}, {"$ref": null, "value": "u2"}]},
            {"op": "Add", "path": "members", "value": [{"value": "u2"}, {"value": "u3"}]},
        ]))).unwrap();
        assert_eq!(
            g["members"],
            json!([{"value": "u1"}, {"value": "u2"}, {"value": "u3"}])
        );
        apply(
            Kind::Group,
            &mut g,
            &ops(json!([{"op": "Remove", "path": "members", "value": [{"value": "u1"}]}])),
        )
        .unwrap();
        apply(
            Kind::Group,
            &mut g,
            &ops(json!([{"op": "remove", "path": "members[value eq \"u3\"]"}])),
        )
        .unwrap();
        assert_eq!(g["members"], json!([{"value": "u2"}]));
        apply(
            Kind::Group,
            &mut g,
            &ops(json!([{"op": "Replace", "path": "displayName", "value": "Sales EMEA"}])),
        )
        .unwrap();
        assert_eq!(g["displayName"], json!("Sales EMEA"));
        apply(
            Kind::Group,
            &mut g,
            &ops(json!([{"op": "remove", "path": "members"}])),
        )
        .unwrap();
        assert!(!g.contains_key("members"));
    }

    #[test]
    fn an_email_is_created_when_entra_replaces_one_that_is_not_there() {
        let mut u = user();
        u.remove("emails");
        apply(Kind::User, &mut u, &ops(json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "a@b.c"}]))).unwrap();
        assert_eq!(u["emails"], json!([{"type": "work", "value": "a@b.c"}]));
    }

    #[test]
    fn bad_patches_are_refused_and_change_nothing_they_are_applied_to() {
        let cases: Vec<(Value, &str)> = vec![
            (json!([]), "invalidSyntax"),
            (
                json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]}),
                "invalidSyntax",
            ),
            (
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": [{"op": "add", "path": "title", "value": "x"}]}),
                "invalidSyntax",
            ),
            (ops(json!([])), "invalidSyntax"),
            (ops(json!("x")), "invalidSyntax"),
            (ops(json!(["x"])), "invalidSyntax"),
            (
                ops(json!([{"op": "Merge", "path": "title", "value": "x"}])),
                "invalidSyntax",
            ),
            (
                ops(json!([{"path": "title", "value": "x"}])),
                "invalidSyntax",
            ),
            (ops(json!([{"op": "remove"}])), "noTarget"),
            (ops(json!([{"op": "add", "value": "x"}])), "invalidValue"),
            (ops(json!([{"op": "add", "path": "title"}])), "invalidValue"),
            (
                ops(json!([{"op": "add", "path": 5, "value": "x"}])),
                "invalidPath",
            ),
            (
                ops(json!([{"op": "add", "path": "ti tle", "value": "x"}])),
                "invalidPath",
            ),
            (
                ops(json!([{"op": "add", "path": "emails[type ne \"work\"].value", "value": "x"}])),
                "invalidPath",
            ),
            (
                ops(json!([{"op": "replace", "path": "id", "value": "mine"}])),
                "mutability",
            ),
            (
                ops(json!([{"op": "replace", "path": "meta", "value": {}}])),
                "mutability",
            ),
            (
                ops(json!([{"op": "replace", "path": "schemas", "value": []}])),
                "mutability",
            ),
            (
                ops(json!([{"op": "replace", "path": "active", "value": "perhaps"}])),
                "invalidValue",
            ),
            (
                ops(json!([{"op": "replace", "path": "userName", "value": ""}])),
                "invalidValue",
            ),
            (
                ops(json!([{"op": "remove", "path": "userName"}])),
                "invalidValue",
            ),
            (
                ops(json!([{"op": "replace", "path": "userName", "value": ["a"]}])),
                "invalidValue",
            ),
            (
                ops(json!([{"op": "add", "path": "manager", "value": 7}])),
                "invalidValue",
            ),
            (
                ops(json!([{"op": "replace", "path": "userName.first", "value": "x"}])),
                "invalidPath",
            ),
            (
                ops(json!([{"op": "replace", "path": "name[type eq \"x\"].value", "value": "x"}])),
                "invalidPath",
            ),
        ];
        for (body, want) in cases {
            let mut u = user();
            let e = apply(Kind::User, &mut u, &body).expect_err(&body.to_string());
            assert_eq!(e.scim_type, Some(want), "{body}");
            assert_eq!(e.status, 400, "{body}");
        }
        let many = ops(Value::Array(vec![
            json!({"op": "add", "path": "title", "value": "x"});
            1001
        ]));
        assert!(apply(Kind::User, &mut user(), &many).is_err());
        // A group's members must keep their ids.
        let mut g = group();
        let e = apply(
            Kind::Group,
            &mut g,
            &ops(json!([{"op": "add", "path": "members", "value": [{"display": "no id"}]}])),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some("invalidValue"));
    }
}
