//! Which list filters the directory answers, and whether a stored resource satisfies one
//! (`GET /Users?filter=...`): the conditions `path::Filter` read, held against documents.

use serde_json::Value;

use super::directory::{attr, Kind};
use super::path::{scalar_eq, Cond, Path, ENTERPRISE};
use super::resource::ScimError;

/// A filter condition the directory can answer (an attribute it knows), and whether it
/// compares case-exactly.
pub(crate) fn supported(kind: Kind, path: &Path) -> Result<bool, ScimError> {
    let key = path.key();
    let ent = ENTERPRISE.to_ascii_lowercase();
    let ok: &[(&str, bool)] = match kind {
        Kind::User => &[
            ("id", true),
            ("username", false),
            ("externalid", false),
            ("displayname", false),
            ("active", false),
            ("emails.value", false),
            ("manager", true),
            ("manager.value", true),
        ],
        Kind::Group => &[
            ("id", true),
            ("displayname", false),
            ("externalid", false),
            ("members", true),
            ("members.value", true),
        ],
    };
    let plain = match (&path.select, path.in_schema(Some(ENTERPRISE))) {
        // `emails[type eq "work"].value`: the element's `value` is what is compared.
        (Some(_), _) => format!(
            "{}.{}",
            path.attr.to_ascii_lowercase(),
            path.sub.as_deref().unwrap_or("").to_ascii_lowercase()
        ),
        (None, true) => key.trim_start_matches(&format!("{ent}:")).to_string(),
        (None, false) if path.schema.is_some() && !path.in_schema(None) => key,
        (None, false) => key,
    };
    ok.iter()
        .find(|(k, _)| *k == plain)
        .map(|(_, exact)| *exact)
        .ok_or_else(|| {
            ScimError::new(
                400,
                Some("invalidFilter"),
                format!("filtering on {} is not supported", path.key()),
            )
        })
}

/// Whether `doc` satisfies `cond`.
pub(crate) fn matches(doc: &Value, cond: &Cond, exact: bool) -> bool {
    let p = &cond.path;
    let container = if p.in_schema(Some(ENTERPRISE))
        || (p.attr.eq_ignore_ascii_case("manager") && p.in_schema(None))
    {
        attr(doc, ENTERPRISE)
    } else {
        Some(doc)
    };
    let Some(v) = container.and_then(|c| attr(c, &p.attr)) else {
        return false;
    };
    let values: Vec<&Value> = match v {
        Value::Array(items) => items
            .iter()
            .filter(|i| match &p.select {
                Some((sel, want)) => attr(i, sel).is_some_and(|s| scalar_eq(s, want, false)),
                None => true,
            })
            .filter_map(|i| attr(i, p.sub.as_deref().unwrap_or("value")))
            .collect(),
        Value::Object(_) => attr(v, p.sub.as_deref().unwrap_or("value"))
            .into_iter()
            .collect(),
        scalar => vec![scalar],
    };
    values
        .iter()
        .any(|have| scalar_eq(have, &cond.value, exact))
}
