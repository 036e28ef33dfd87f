//! The resources as SCIM shapes them (RFC 7643): what a client may send for a User or a
//! Group, the server's attributes (`id`, `meta`), RFC 7644's error bodies, and which
//! attributes a response carries (`attributes`, `excludedAttributes`).
//!
//! Values are stored as they were sent (Entra asks for that), except what the gateway must
//! read: `active` becomes a boolean (Entra sends the string "False"), and top-level `null`s
//! are dropped (Entra sends `"title": null` for attributes it has no value for).

use serde_json::{json, Map, Value};

use super::directory::{attr, attr_str, Kind};
use super::path::{as_bool, ENTERPRISE};
use crate::answer::Answer;

pub(crate) const CONTENT_TYPE: &str = "application/scim+json";
pub(crate) const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(crate) const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub(crate) const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub(crate) const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub(crate) const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The schema URI Entra puts on the groups it creates, beside the core one.
const ENTRA_GROUP_SCHEMA: &str =
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";

/// Most resources in one list page.
pub(crate) const MAX_RESULTS: usize = 100;

/// Longest value of a string attribute the gateway reads (userName, externalId, displayName).
const MAX_NAME: usize = 512;

/// A request the SCIM API refuses: status, RFC 7644 `scimType` (if any), detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub(crate) fn new(
        status: u16,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }
    pub(crate) fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidValue"), detail)
    }
    pub(crate) fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidSyntax"), detail)
    }
    pub(crate) fn not_found(kind: Kind, id: &str) -> Self {
        Self::new(404, None, format!("{} {id:?} not found", kind.name()))
    }

    /// A short label for the metric's `result` and the log.
    pub(crate) fn label(&self) -> &'static str {
        match (self.status, self.scim_type) {
            (_, Some(t)) => t,
            (401, _) => "unauthorized",
            (404, _) => "not_found",
            (405, _) => "method_not_allowed",
            (413, _) => "too_large",
            (415, _) => "unsupported_media_type",
            (501, _) => "not_implemented",
            (503, _) => "store_unavailable",
            _ => "error",
        }
    }

    /// RFC 7644 §3.12: `status` is a string.
    pub(crate) fn answer(&self) -> Answer {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = t.into();
        }
        let a = Answer::new(self.status, CONTENT_TYPE, body.to_string().into_bytes());
        match self.status {
            401 => a.header("www-authenticate", "Bearer realm=\"authgate-scim\"".into()),
            503 => a.header("retry-after", "5".into()),
            _ => a,
        }
    }
}

pub(crate) fn answer(status: u16, body: &Value) -> Answer {
    Answer::new(status, CONTENT_TYPE, body.to_string().into_bytes())
}

fn bad_string(v: &Value, name: &str, required: bool) -> Result<(), ScimError> {
    match v {
        Value::String(s) if s.trim().is_empty() && required => Err(ScimError::invalid_value(
            format!("{name} must not be empty"),
        )),
        Value::String(s) if s.len() > MAX_NAME => Err(ScimError::invalid_value(format!(
            "{name} is longer than {MAX_NAME} bytes"
        ))),
        Value::String(s) if s.chars().any(char::is_control) => Err(ScimError::invalid_value(
            format!("{name} contains control characters"),
        )),
        Value::String(_) => Ok(()),
        _ => Err(ScimError::invalid_value(format!("{name} must be a string"))),
    }
}

/// The schema URIs a resource of `kind` may list; anything else is refused.
fn known_schema(kind: Kind, s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    match kind {
        Kind::User => {
            lower == USER_SCHEMA.to_ascii_lowercase()
                // The enterprise extension and custom ones (Entra admins add their own;
                // Microsoft's own sample spells the enterprise one without its last colon).
                || lower.starts_with("urn:ietf:params:scim:schemas:extension:")
        }
        Kind::Group => {
            lower == GROUP_SCHEMA.to_ascii_lowercase()
                || lower == ENTRA_GROUP_SCHEMA.to_ascii_lowercase()
                || lower.starts_with("urn:ietf:params:scim:schemas:extension:")
        }
    }
}

/// Checks a User or Group as a client sent it (POST, PUT) and returns what to store:
/// without the server's attributes and nulls, `active` a boolean.
pub(crate) fn accept(kind: Kind, body: &Value) -> Result<Map<String, Value>, ScimError> {
    let Some(obj) = body.as_object() else {
        return Err(ScimError::invalid_syntax("the body must be a JSON object"));
    };
    let schemas = match attr(body, "schemas") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => {
            return Err(ScimError::invalid_syntax(
                "schemas must list the resource's schema URIs",
            ))
        }
    };
    let core = match kind {
        Kind::User => USER_SCHEMA,
        Kind::Group => GROUP_SCHEMA,
    };
    let mut has_core = false;
    for s in schemas {
        let Some(s) = s.as_str() else {
            return Err(ScimError::invalid_syntax("schemas must be strings"));
        };
        if !known_schema(kind, s) {
            return Err(ScimError::invalid_syntax(format!(
                "unknown schema {s:?} for a {}",
                kind.name()
            )));
        }
        has_core |= s.eq_ignore_ascii_case(core);
    }
    if !has_core {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must include {core}"
        )));
    }
    let mut out = Map::new();
    for (k, v) in obj {
        if v.is_null() || ["id", "meta"].iter().any(|r| k.eq_ignore_ascii_case(r)) {
            continue;
        }
        out.insert(k.clone(), v.clone());
    }
    // A created or replaced user without `active` is active; a patch that removes it leaves
    // it unset (which the gateway reads as active, as it always did).
    if kind == Kind::User && !out.keys().any(|k| k.eq_ignore_ascii_case("active")) {
        out.insert("active".into(), Value::Bool(true));
    }
    check(kind, &mut out)?;
    Ok(out)
}

/// What must hold of a stored resource, after a create, a replace or a patch.
pub(crate) fn check(kind: Kind, doc: &mut Map<String, Value>) -> Result<(), ScimError> {
    let get = |doc: &Map<String, Value>, name: &str| {
        doc.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(k, v)| (k.clone(), v.clone()))
    };
    match kind {
        Kind::User => {
            let Some((_, user_name)) = get(doc, "userName") else {
                return Err(ScimError::invalid_value("userName is required"));
            };
            bad_string(&user_name, "userName", true)?;
            if let Some((k, v)) = get(doc, "active") {
                match as_bool(&v) {
                    Some(b) => {
                        doc.insert(k, Value::Bool(b));
                    }
                    None => return Err(ScimError::invalid_value("active must be a boolean")),
                }
            }
            if let Some((_, ext)) = get(doc, ENTERPRISE) {
                if !ext.is_object() {
                    return Err(ScimError::invalid_value(format!(
                        "{ENTERPRISE} must be an object"
                    )));
                }
            }
            list_extension(doc);
        }
        Kind::Group => {
            let Some((_, name)) = get(doc, "displayName") else {
                return Err(ScimError::invalid_value("displayName is required"));
            };
            bad_string(&name, "displayName", true)?;
            match get(doc, "members") {
                None => {}
                Some((_, Value::Array(members))) => {
                    for m in &members {
                        match attr(m, "value") {
                            Some(v) => bad_string(v, "members.value", true)?,
                            None => {
                                return Err(ScimError::invalid_value(
                                    "every member needs a value (the member's id)",
                                ))
                            }
                        }
                    }
                }
                Some(_) => return Err(ScimError::invalid_value("members must be a list")),
            }
        }
    }
    if let Some((_, x)) = get(doc, "externalId") {
        bad_string(&x, "externalId", true)?;
    }
    doc.retain(|_, v| !v.is_null());
    Ok(())
}

/// `schemas` lists the enterprise extension exactly when the user carries its attributes
/// (RFC 7643 §3: a resource names every schema it has attributes of); an emptied extension
/// object is dropped with it.
fn list_extension(doc: &mut Map<String, Value>) {
    let key = doc
        .keys()
        .find(|k| k.eq_ignore_ascii_case(ENTERPRISE))
        .cloned();
    let carried = key
        .as_ref()
        .and_then(|k| doc.get(k))
        .is_some_and(|v| v.as_object().is_some_and(|m| !m.is_empty()));
    if let (Some(k), false) = (&key, carried) {
        doc.remove(k);
    }
    let Some(Value::Array(schemas)) = doc
        .iter_mut()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .map(|(_, v)| v)
    else {
        return;
    };
    schemas.retain(|s| {
        !s.as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case(ENTERPRISE))
    });
    if carried {
        schemas.push(ENTERPRISE.into());
    }
}

/// The resource as stored: what the client sent, plus `schemas`, `id` and `meta`.
pub(crate) fn stored(
    kind: Kind,
    id: &str,
    mut doc: Map<String, Value>,
    created: &str,
    now: &str,
    location: &str,
) -> Value {
    doc.insert("id".into(), id.into());
    doc.insert(
        "meta".into(),
        json!({
            "resourceType": kind.name(),
            "created": created,
            "lastModified": now,
            "location": location,
        }),
    );
    Value::Object(doc)
}

/// The `created` time of a stored resource.
pub(crate) fn created(doc: &Value) -> String {
    attr(doc, "meta")
        .and_then(|m| attr_str(m, "created"))
        .unwrap_or_default()
        .to_string()
}

/// The stored resource without its server attributes (what a PATCH edits).
pub(crate) fn editable(doc: &Value) -> Map<String, Value> {
    let mut m = doc.as_object().cloned().unwrap_or_default();
    m.retain(|k, _| !k.eq_ignore_ascii_case("id") && !k.eq_ignore_ascii_case("meta"));
    m
}

/// Which attributes a response carries (RFC 7644 §3.4.2.5): `attributes` names the only
/// ones (with `id` and `schemas`, always returned), `excludedAttributes` ones to leave out.
#[derive(Debug, Default, Clone)]
pub(crate) struct Projection {
    only: Vec<String>,
    excluded: Vec<String>,
}

impl Projection {
    pub(crate) fn new(attributes: Option<&str>, excluded: Option<&str>) -> Self {
        let split = |s: Option<&str>| -> Vec<String> {
            s.map(|s| {
                s.split(',')
                    .map(|a| a.trim())
                    .filter(|a| !a.is_empty())
                    // `name.givenName` selects (or drops) the top-level `name`.
                    .map(|a| a.split('.').next().unwrap_or(a).to_ascii_lowercase())
                    .take(64)
                    .collect()
            })
            .unwrap_or_default()
        };
        Self {
            only: split(attributes),
            excluded: split(excluded),
        }
    }

    pub(crate) fn apply(&self, doc: &Value) -> Value {
        let Some(obj) = doc.as_object() else {
            return doc.clone();
        };
        let always = |k: &str| k == "id" || k == "schemas";
        let mut out = Map::new();
        for (k, v) in obj {
            let lk = k.to_ascii_lowercase();
            if !always(&lk) {
                if !self.only.is_empty() && !self.only.contains(&lk) {
                    continue;
                }
                if self.excluded.contains(&lk) {
                    continue;
                }
            }
            out.insert(k.clone(), v.clone());
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(extra: Value) -> Value {
        let mut u = json!({"schemas": [USER_SCHEMA], "userName": "alice@contoso.example"});
        for (k, v) in extra.as_object().unwrap() {
            u[k] = v.clone();
        }
        u
    }

    #[test]
    fn users_are_accepted_as_entra_sends_them() {
        let got = accept(Kind::User, &user(json!({"active": "False", "title": null, "id": "x", "meta": {"resourceType": "User"}}))).unwrap();
        assert_eq!(got["active"], json!(false));
        assert!(!got.contains_key("title") && !got.contains_key("id") && !got.contains_key("meta"));
        let got = accept(Kind::User, &user(json!({}))).unwrap();
        assert_eq!(got["active"], json!(true));
        let typo = json!({"schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"], "userName": "a"});
        assert!(accept(Kind::User, &typo).is_ok());
    }

    #[test]
    fn bad_users_are_refused_with_their_reason() {
        let cases: Vec<(Kind, Value, &str)> = vec![
            (Kind::User, json!([]), "invalidSyntax"),
            (Kind::User, json!({"userName": "a"}), "invalidSyntax"),
            (
                Kind::User,
                json!({"schemas": [], "userName": "a"}),
                "invalidSyntax",
            ),
            (
                Kind::User,
                json!({"schemas": [GROUP_SCHEMA], "userName": "a"}),
                "invalidSyntax",
            ),
            (
                Kind::User,
                json!({"schemas": [USER_SCHEMA, "urn:evil"], "userName": "a"}),
                "invalidSyntax",
            ),
            (
                Kind::User,
                json!({"schemas": [USER_SCHEMA, 7], "userName": "a"}),
                "invalidSyntax",
            ),
            (
                Kind::User,
                json!({"schemas": [USER_SCHEMA]}),
                "invalidValue",
            ),
            (
                Kind::User,
                json!({"schemas": [USER_SCHEMA], "userName": ""}),
                "invalidValue",
            ),
            (
                Kind::User,
                json!({"schemas": [USER_SCHEMA], "userName": "  "}),
                "invalidValue",
            ),
            (
                Kind::User,
                json!({"schemas": [USER_SCHEMA], "userName": 5}),
                "invalidValue",
            ),
            (
                Kind::User,
                json!({"schemas": [USER_SCHEMA], "userName": "a\nb"}),
                "invalidValue",
            ),
            (
                Kind::User,
                json!({"schemas": [USER_SCHEMA], "userName": "x".repeat(600)}),
                "invalidValue",
            ),
            (
                Kind::User,
                json!({"schemas": [USER_SCHEMA], "userName": "a", "active": "maybe"}),
                "invalidValue",
            ),
            (
                Kind::User,
                json!({"schemas": [USER_SCHEMA], "userName": "a", "active": 0}),
                "invalidValue",
            ),
            (
                Kind::User,
                json!({"schemas": [USER_SCHEMA], "userName": "a", "externalId": ""}),
                "invalidValue",
            ),
            (
                Kind::User,
                json!({"schemas": [USER_SCHEMA], "userName": "a", "externalId": {}}),
                "invalidValue",
            ),
            (
                Kind::User,
                json!({"schemas": [USER_SCHEMA], "userName": "a", ENTERPRISE: "x"}),
                "invalidValue",
            ),
        ];
        refused(cases);
    }

    #[test]
    fn bad_groups_are_refused_with_their_reason() {
        let cases: Vec<(Kind, Value, &str)> = vec![
            (
                Kind::Group,
                json!({"schemas": [GROUP_SCHEMA]}),
                "invalidValue",
            ),
            (
                Kind::Group,
                json!({"schemas": [USER_SCHEMA], "displayName": "g"}),
                "invalidSyntax",
            ),
            (
                Kind::Group,
                json!({"schemas": [GROUP_SCHEMA], "displayName": "g", "members": {}}),
                "invalidValue",
            ),
            (
                Kind::Group,
                json!({"schemas": [GROUP_SCHEMA], "displayName": "g", "members": [{"display": "x"}]}),
                "invalidValue",
            ),
            (
                Kind::Group,
                json!({"schemas": [GROUP_SCHEMA], "displayName": "g", "members": [{"value": ""}]}),
                "invalidValue",
            ),
        ];
        refused(cases);
    }

    /// Each body is refused (400) with its SCIM error type.
    fn refused(cases: Vec<(Kind, Value, &str)>) {
        for (kind, body, want) in cases {
            let e = accept(kind, &body).expect_err(&body.to_string());
            assert_eq!(e.scim_type, Some(want), "{body}");
            assert_eq!(e.status, 400);
        }
    }

    #[test]
    fn errors_have_the_rfc_shape() {
        let a = ScimError::new(400, Some("invalidFilter"), "nope").answer();
        let body: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(
            body,
            json!({"schemas": [ERROR_SCHEMA], "status": "400", "scimType": "invalidFilter", "detail": "nope"})
        );
        assert_eq!(a.content_type, CONTENT_TYPE);
        let a = ScimError::new(401, None, "token").answer();
        assert!(a.header_value("www-authenticate").is_some());
    }

    #[test]
    fn projections() {
        let doc = json!({"schemas": [GROUP_SCHEMA], "id": "1", "displayName": "g", "members": [], "meta": {}});
        let p = Projection::new(None, Some("members"));
        assert_eq!(
            p.apply(&doc),
            json!({"schemas": [GROUP_SCHEMA], "id": "1", "displayName": "g", "meta": {}})
        );
        let p = Projection::new(Some("displayName"), None);
        assert_eq!(
            p.apply(&doc),
            json!({"schemas": [GROUP_SCHEMA], "id": "1", "displayName": "g"})
        );
        let p = Projection::new(None, Some("id,schemas"));
        assert_eq!(p.apply(&doc), doc);
    }
}
