//! SCIM attribute paths and filters (RFC 7644 §3.4.2.2, §3.5.2), to the extent Entra ID's
//! provisioning service uses them: `eq` joined by `and`, on a plain or dotted attribute,
//! a schema-qualified one (`urn:…:enterprise:2.0:User:department`), or a multi-valued one
//! selected by a sub-attribute (`emails[type eq "work"].value`). Anything else is refused
//! with `invalidFilter` / `invalidPath`: a filter the gateway does not understand must not
//! silently match everything (or nothing).

use serde_json::Value;

/// The enterprise user extension, whose attributes may be named with it as a prefix.
pub(crate) const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// An attribute path: `attr[.sub]`, `attr[sel eq "v"][.sub]`, with an optional schema URN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path {
    /// The schema URN (as written) when the path names one.
    pub schema: Option<String>,
    pub attr: String,
    /// `[sub eq value]`: the elements of a multi-valued attribute whose `sub` equals value.
    pub select: Option<(String, Value)>,
    pub sub: Option<String>,
}

/// Why a path or filter was not accepted (the SCIM error's `detail`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unsupported(pub String);

fn bad<T>(why: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(why.into()))
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
}

impl Path {
    pub(crate) fn parse(text: &str) -> Result<Path, Unsupported> {
        let text = text.trim();
        if text.is_empty() || text.len() > 512 {
            return bad("empty or overlong attribute path");
        }
        // A schema URN prefix: everything up to the last ':' before the attribute.
        let (schema, rest) = if text.len() > 4
            && text
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        {
            let head_end = text.find('[').unwrap_or(text.len());
            match text[..head_end].rfind(':') {
                Some(i) => (Some(text[..i].to_string()), &text[i + 1..]),
                None => return bad(format!("{text:?} is not an attribute path")),
            }
        } else {
            (None, text)
        };
        let (head, select, tail) = match rest.find('[') {
            Some(open) => {
                let Some(close) = rest.rfind(']').filter(|c| *c > open) else {
                    return bad(format!("unbalanced [ in {text:?}"));
                };
                let inner = &rest[open + 1..close];
                let filter = Filter::parse(inner)?;
                let [Cond { path, value }] = filter.0.as_slice() else {
                    return bad(format!(
                        "only one `sub eq value` is supported inside [...] in {text:?}"
                    ));
                };
                if path.schema.is_some() || path.select.is_some() || path.sub.is_some() {
                    return bad(format!("{inner:?} must name a sub-attribute"));
                }
                let tail = &rest[close + 1..];
                (
                    &rest[..open],
                    Some((path.attr.clone(), value.clone())),
                    tail,
                )
            }
            None => (rest, None, ""),
        };
        let (attr, mut sub) = match head.split_once('.') {
            Some((a, s)) => (a, Some(s.to_string())),
            None => (head, None),
        };
        if let Some(t) = tail.strip_prefix('.') {
            if sub.is_some() {
                return bad(format!("{text:?} has two sub-attributes"));
            }
            sub = Some(t.to_string());
        } else if !tail.is_empty() {
            return bad(format!("unexpected {tail:?} after [...] in {text:?}"));
        }
        if !is_name(attr) || sub.as_deref().is_some_and(|s| !is_name(s)) {
            return bad(format!("{text:?} is not an attribute path"));
        }
        Ok(Path {
            schema,
            attr: attr.to_string(),
            select,
            sub,
        })
    }

    /// The path as one lower-case dotted name (for comparing with the supported set).
    pub(crate) fn key(&self) -> String {
        let mut k = String::new();
        if let Some(s) = &self.schema {
            k.push_str(&s.to_ascii_lowercase());
            k.push(':');
        }
        k.push_str(&self.attr.to_ascii_lowercase());
        if let Some((sel, v)) = &self.select {
            k.push_str(&format!("[{} eq {}]", sel.to_ascii_lowercase(), v));
        }
        if let Some(s) = &self.sub {
            k.push('.');
            k.push_str(&s.to_ascii_lowercase());
        }
        k
    }

    /// In the extension `urn` (case-insensitive), or (`urn` = None) in no extension: the
    /// core schema's own URN counts as none.
    pub(crate) fn in_schema(&self, urn: Option<&str>) -> bool {
        let core = |s: &str| {
            s.to_ascii_lowercase()
                .starts_with("urn:ietf:params:scim:schemas:core:")
        };
        match (self.schema.as_deref().filter(|s| !core(s)), urn) {
            (None, None) => true,
            (Some(s), Some(u)) => s.eq_ignore_ascii_case(u),
            _ => false,
        }
    }
}

/// `a eq v and b eq w ...`
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Filter(pub Vec<Cond>);

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cond {
    pub path: Path,
    pub value: Value,
}

/// One token of a filter: a word (attribute path or keyword) or a JSON value.
fn tokens(text: &str) -> Result<Vec<(bool, String)>, Unsupported> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' => i += 1,
            b'"' => {
                // A JSON string: up to the closing quote not escaped.
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if i >= b.len() {
                    return bad("unterminated string in filter");
                }
                i += 1;
                out.push((true, text[start..i].to_string()));
            }
            b'(' | b')' => return bad("parentheses are not supported in filters"),
            _ => {
                let start = i;
                let mut depth = 0;
                while i < b.len() && (depth > 0 || (b[i] != b' ' && b[i] != b'\t')) {
                    match b[i] {
                        b'[' => depth += 1,
                        b']' => depth -= 1,
                        b'"' => {
                            i += 1;
                            while i < b.len() && b[i] != b'"' {
                                i += if b[i] == b'\\' { 2 } else { 1 };
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                if depth != 0 {
                    return bad("unbalanced [ in filter");
                }
                out.push((false, text[start..i.min(b.len())].to_string()));
            }
        }
    }
    Ok(out)
}

impl Filter {
    pub(crate) fn parse(text: &str) -> Result<Filter, Unsupported> {
        if text.len() > 2048 {
            return bad("filter longer than 2048 bytes");
        }
        let toks = tokens(text)?;
        let mut conds = Vec::new();
        let mut it = toks.into_iter();
        loop {
            let Some((false, attr)) = it.next() else {
                return bad("expected an attribute path");
            };
            let path = Path::parse(&attr)?;
            match it.next() {
                Some((false, op)) if op.eq_ignore_ascii_case("eq") => {}
                Some((false, op)) => {
                    return bad(format!(
                        "operator {op:?} is not supported (only eq, joined by and)"
                    ))
                }
                _ => return bad("expected an operator after the attribute path"),
            }
            let Some((_, raw)) = it.next() else {
                return bad("expected a value after eq");
            };
            let value: Value = match serde_json::from_str(&raw) {
                Ok(v @ (Value::String(_) | Value::Bool(_) | Value::Number(_) | Value::Null)) => v,
                _ => {
                    return bad(format!(
                        "{raw:?} is not a JSON string, number, boolean or null"
                    ))
                }
            };
            conds.push(Cond { path, value });
            match it.next() {
                None => break,
                Some((false, j)) if j.eq_ignore_ascii_case("and") => {}
                Some((false, j))
                    if j.eq_ignore_ascii_case("or") || j.eq_ignore_ascii_case("not") =>
                {
                    return bad(format!("{j:?} is not supported (only and)"))
                }
                Some((_, t)) => return bad(format!("unexpected {t:?} in filter")),
            }
            if conds.len() > 8 {
                return bad("at most 8 conditions");
            }
        }
        Ok(Filter(conds))
    }
}

/// Two scalar values are equal for a filter: strings compared as the attribute says
/// (case-insensitively unless `case_exact`), booleans also against Entra's "True"/"False".
pub(crate) fn scalar_eq(have: &Value, want: &Value, case_exact: bool) -> bool {
    match (have, want) {
        (Value::String(a), Value::String(b)) if case_exact => a == b,
        (Value::String(a), Value::String(b)) => {
            a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
        }
        (Value::Bool(a), v) | (v, Value::Bool(a)) => as_bool(v) == Some(*a),
        (Value::Number(a), Value::Number(b)) => a == b,
        _ => false,
    }
}

/// A boolean as Entra sends it: `true`, or the strings "True"/"False" (any case).
pub(crate) fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by the `scim` fuzz target: a multi-byte character within the first four bytes
    /// made the URN-prefix test slice inside it (a panic on network input).
    #[test]
    fn multibyte_text_where_a_urn_may_start_is_refused_not_a_panic() {
        for text in ["\u{e9}rn:x", "u\u{e9}n:a:b", "\u{1f600}:a", "urn\u{e9}x:a"] {
            let _ = Path::parse(text);
            let _ = Filter::parse(&format!("{text} eq \"x\""));
        }
        assert!(Path::parse("\u{e9}rn:x").is_err());
    }

    #[test]
    fn paths_entra_sends() {
        let p = Path::parse(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.attr, "emails");
        assert_eq!(p.select, Some(("type".into(), json!("work"))));
        assert_eq!(p.sub.as_deref(), Some("value"));
        let p = Path::parse(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        )
        .unwrap();
        assert_eq!(p.schema.as_deref(), Some(ENTERPRISE));
        assert_eq!(p.attr, "employeeNumber");
        let p = Path::parse("name.givenName").unwrap();
        assert_eq!(
            (p.attr.as_str(), p.sub.as_deref()),
            ("name", Some("givenName"))
        );
        let p = Path::parse(r#"members[value eq "7f4bc1a3-285e-48ae-8202-5accb43efb0e"]"#).unwrap();
        assert_eq!(
            p.select.unwrap().1,
            json!("7f4bc1a3-285e-48ae-8202-5accb43efb0e")
        );
        let p =
            Path::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
                .unwrap();
        assert_eq!(
            p.key(),
            format!("{}:manager.value", ENTERPRISE.to_ascii_lowercase())
        );
    }

    #[test]
    fn filters_entra_sends() {
        let f = Filter::parse(r#"userName eq "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee""#)
            .unwrap();
        assert_eq!(f.0.len(), 1);
        assert_eq!(
            f.0[0].value,
            json!("Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee")
        );
        let f = Filter::parse(r#"emails[type eq "work"].value eq "a@b.c" and externalId EQ "x y""#)
            .unwrap();
        assert_eq!(f.0.len(), 2);
        assert_eq!(f.0[1].path.attr, "externalId");
        assert_eq!(f.0[1].value, json!("x y"));
        let f = Filter::parse(r#"displayName eq "with \"quotes\" and spaces""#).unwrap();
        assert_eq!(f.0[0].value, json!("with \"quotes\" and spaces"));
    }

    #[test]
    fn filters_outside_the_supported_set_are_refused() {
        for f in [
            "",
            "userName",
            "userName eq",
            r#"userName ne "a""#,
            r#"userName co "a""#,
            r#"userName sw "a""#,
            "userName pr",
            r#"userName eq "a" or userName eq "b""#,
            r#"not (userName eq "a")"#,
            r#"(userName eq "a")"#,
            r#"userName eq "a" and"#,
            r#"userName eq "a" userName eq "b""#,
            r#"userName eq "unterminated"#,
            "userName eq jyoung",
            r#"userName eq ["a"]"#,
            r#"userName eq {"a":1}"#,
            r#"emails[type eq "work" and value eq "x"].value eq "a""#,
            r#"emails[type eq "work".value eq "a""#,
            r#"1abc eq "a""#,
            r#"user;Name eq "a""#,
            r#"emails[type eq "work"]].value eq "a""#,
        ] {
            assert!(Filter::parse(f).is_err(), "accepted {f:?}");
        }
        let many = [r#"userName eq "a""#; 10].join(" and ");
        assert!(Filter::parse(&many).is_err());
        assert!(Filter::parse(&"a".repeat(3000)).is_err());
    }

    #[test]
    fn scalar_comparisons() {
        assert!(scalar_eq(&json!("Alice@X"), &json!("alice@x"), false));
        assert!(!scalar_eq(&json!("Alice@X"), &json!("alice@x"), true));
        assert!(scalar_eq(&json!(false), &json!("False"), false));
        assert!(!scalar_eq(&json!(true), &json!("False"), false));
        assert!(!scalar_eq(&json!("1"), &json!(1), false));
        assert_eq!(as_bool(&json!("TRUE")), Some(true));
        assert_eq!(as_bool(&json!("no")), None);
    }
}
