//! The SCIM protocol endpoint: `/_authgate/scim/v2/{Users,Groups}[/<id>]` (create, get, list
//! with `filter`, replace, PATCH, delete), `ServiceProviderConfig`, `Schemas`,
//! `ResourceTypes`. Every request needs Entra's Secret Token; every answer is
//! `application/scim+json`; every change is an audit line; every request is counted by
//! resource, operation and result.

use std::sync::Arc;

use http::Method;
use serde_json::{json, Value};

mod discovery;

use crate::answer::Answer;
use crate::canonical::RESERVED_PREFIX;
use crate::exchange::{bearer_token, first, query_pairs, Downstream};
use crate::scim::directory::{DirError, Kind};
use crate::scim::effects::audit;
use crate::scim::filter::{matches, supported};
use crate::scim::path::{Cond, Filter};
use crate::scim::resource::{self, answer, Projection, ScimError, LIST_SCHEMA, MAX_RESULTS};
use crate::scim::{patch, Scim, PATH};
use crate::state::Core;

/// What a request was, for the metric's labels.
struct Call {
    resource: &'static str,
    op: &'static str,
}

pub(crate) async fn serve(core: &Core, down: &mut dyn Downstream, rest: &str) -> Answer {
    let Some(scim) = core.scim.clone() else {
        return ScimError::new(404, None, "SCIM provisioning is off (configure scim:)").answer();
    };
    let segments: Vec<&str> = rest
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let kind = match segments.first().map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("users") => Some(Kind::User),
        Some("groups") => Some(Kind::Group),
        _ => None,
    };
    let method = down.req().method.clone();
    let call = Call {
        resource: match (kind, segments.first()) {
            (Some(k), _) => k.name(),
            (None, Some(_)) => "discovery",
            (None, None) => "root",
        },
        op: match (&method, segments.len()) {
            (&Method::GET, 1) if kind.is_some() => "list",
            (&Method::GET, _) => "get",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "replace",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, _) => "delete",
            _ => "other",
        },
    };
    let peer = down.peer().map(|p| p.to_string()).unwrap_or_default();
    if !scim.authorized(bearer_token(down.req())) {
        log::warn!(
            "SCIM: refused a {} {} from {peer} without the right token",
            call.op,
            call.resource
        );
        return finish(
            &scim,
            &call,
            Err(ScimError::new(
                401,
                None,
                "Authorization: Bearer <scim.token> required",
            )),
        );
    }
    let result = route(core, &scim, down, &method, kind, &segments).await;
    if let Err(e) = &result {
        log::warn!(
            "SCIM: {} {} refused ({}): {}",
            call.op,
            call.resource,
            e.label(),
            e.detail
        );
    }
    finish(&scim, &call, result)
}

fn finish(scim: &Scim, call: &Call, result: Result<Answer, ScimError>) -> Answer {
    let label = match &result {
        Ok(_) => "ok",
        Err(e) => e.label(),
    };
    scim.metrics
        .scim_requests
        .with_label_values(&[call.resource, call.op, label])
        .inc();
    result.unwrap_or_else(|e| e.answer())
}

async fn route(
    core: &Core,
    scim: &Arc<Scim>,
    down: &mut dyn Downstream,
    method: &Method,
    kind: Option<Kind>,
    segments: &[&str],
) -> Result<Answer, ScimError> {
    let q = query_pairs(down.req());
    let projection = Projection::new(first(&q, "attributes"), first(&q, "excludedAttributes"));
    let Some(kind) = kind else {
        return match (method, segments) {
            (&Method::GET, _) => discovery::serve(core, segments),
            (_, [s, ..]) if s.eq_ignore_ascii_case("Bulk") || s.eq_ignore_ascii_case(".search") => {
                Err(ScimError::new(501, None, format!("{s} is not supported")))
            }
            // The discovery endpoints are read-only (RFC 7644 §4).
            (_, [s, ..])
                if ["ServiceProviderConfig", "ResourceTypes", "Schemas"]
                    .iter()
                    .any(|d| s.eq_ignore_ascii_case(d)) =>
            {
                Err(ScimError::new(
                    405,
                    None,
                    format!("{s} is read-only: GET only"),
                ))
            }
            _ => Err(ScimError::new(404, None, "no such SCIM endpoint")),
        };
    };
    let store = |e: crate::session::StoreError| ScimError::new(503, None, e.to_string());
    match (method, segments) {
        (&Method::GET, [_]) => list(scim, kind, &q, &projection).await,
        (&Method::POST, [_]) => {
            let body = body(scim, down).await?;
            let doc = resource::accept(kind, &body)?;
            let id = format!("{:032x}", rand::random::<u128>());
            let now = now_rfc3339();
            let stored = resource::stored(kind, &id, doc, &now, &now, &location(core, kind, &id));
            write(scim, kind, &id, &stored, None).await?;
            Ok(answer(201, &stored).header("location", location(core, kind, &id)))
        }
        (m, [_, _]) if ![Method::GET, Method::PUT, Method::PATCH, Method::DELETE].contains(m) => {
            Err(ScimError::new(405, None, "method not allowed here"))
        }
        (_, [_, id]) => {
            let old = scim.dir.get(kind, id).await.map_err(store)?;
            let Some(old) = old else {
                return Err(ScimError::not_found(kind, id));
            };
            match *method {
                Method::GET => Ok(answer(200, &projection.apply(&old))),
                Method::PUT | Method::PATCH => {
                    let body = body(scim, down).await?;
                    let doc = if *method == Method::PUT {
                        resource::accept(kind, &body)?
                    } else {
                        let mut doc = resource::editable(&old);
                        patch::apply(kind, &mut doc, &body)?;
                        doc
                    };
                    let stored = resource::stored(
                        kind,
                        id,
                        doc,
                        &resource::created(&old),
                        &now_rfc3339(),
                        &location(core, kind, id),
                    );
                    write(scim, kind, id, &stored, Some(&old)).await?;
                    // Entra expects a group PATCH to answer 204 (members are not echoed).
                    Ok(match (kind, method) {
                        (Kind::Group, &Method::PATCH) => {
                            Answer::new(204, resource::CONTENT_TYPE, Vec::new())
                        }
                        _ => answer(200, &stored),
                    })
                }
                Method::DELETE => {
                    scim.dir.delete(kind, id).await.map_err(store)?;
                    if kind == Kind::User {
                        scim.after_user_change(Some(&old), None)
                            .await
                            .map_err(store)?;
                    }
                    audit(kind, "deleted", &old);
                    scim.count(kind).await;
                    Ok(Answer::new(204, resource::CONTENT_TYPE, Vec::new()))
                }
                _ => Err(ScimError::new(405, None, "method not allowed here")),
            }
        }
        (_, [_]) => Err(ScimError::new(405, None, "method not allowed here")),
        _ => Err(ScimError::new(404, None, "no such SCIM endpoint")),
    }
}

/// Largest stored resource (a group of ~50,000 members): PATCHes cannot grow one without
/// bound.
const MAX_RESOURCE: usize = 4 << 20;

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn location(core: &Core, kind: Kind, id: &str) -> String {
    core.public(&format!(
        "{RESERVED_PREFIX}{}/{}/{id}",
        PATH,
        kind.endpoint()
    ))
}

/// The JSON body, at most `max_body_bytes`.
async fn body(scim: &Scim, down: &mut dyn Downstream) -> Result<Value, ScimError> {
    if let Some(ct) = down.req().headers.get(http::header::CONTENT_TYPE) {
        let ct = String::from_utf8_lossy(ct.as_bytes()).to_ascii_lowercase();
        if !ct.contains("json") {
            return Err(ScimError::new(415, None, "send application/scim+json"));
        }
    }
    let raw = match down.body(scim.cfg.max_body).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Err(ScimError::new(
                413,
                None,
                format!("the body is larger than {} bytes", scim.cfg.max_body),
            ))
        }
        Err(e) => {
            return Err(ScimError::invalid_syntax(format!(
                "the body could not be read: {e}"
            )))
        }
    };
    if raw.is_empty() {
        return Err(ScimError::invalid_syntax("a JSON body is required"));
    }
    serde_json::from_slice(&raw)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")))
}

/// Stores a created or changed resource, then what the change means for sessions.
async fn write(
    scim: &Arc<Scim>,
    kind: Kind,
    id: &str,
    doc: &Value,
    old: Option<&Value>,
) -> Result<(), ScimError> {
    let size = doc.to_string().len();
    if size > MAX_RESOURCE {
        return Err(ScimError::new(
            400,
            Some("invalidValue"),
            format!(
                "the {} would be {size} bytes; at most {MAX_RESOURCE}",
                kind.name()
            ),
        ));
    }
    match scim.dir.put(kind, id, doc, old).await {
        Ok(()) => {}
        Err(DirError::Conflict(k, a)) => {
            return Err(ScimError::new(
                409,
                Some("uniqueness"),
                format!("another {k} already has this {a}"),
            ))
        }
        Err(DirError::Store(e)) => return Err(ScimError::new(503, None, e.to_string())),
    }
    if kind == Kind::User {
        scim.after_user_change(old, Some(doc))
            .await
            .map_err(|e| ScimError::new(503, None, e.to_string()))?;
    }
    audit(kind, if old.is_some() { "changed" } else { "created" }, doc);
    scim.count(kind).await;
    Ok(())
}

async fn list(
    scim: &Scim,
    kind: Kind,
    q: &[(String, String)],
    projection: &Projection,
) -> Result<Answer, ScimError> {
    let store = |e: crate::session::StoreError| ScimError::new(503, None, e.to_string());
    let number = |name: &str| -> Result<Option<usize>, ScimError> {
        match first(q, name) {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse::<i64>()
                .map(|n| Some(n.max(0) as usize))
                .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer"))),
        }
    };
    let start = number("startIndex")?.unwrap_or(1).max(1);
    let count = number("count")?.unwrap_or(MAX_RESULTS).min(MAX_RESULTS);
    let filter = match first(q, "filter") {
        Some(f) => {
            Some(Filter::parse(f).map_err(|e| ScimError::new(400, Some("invalidFilter"), e.0))?)
        }
        None => None,
    };
    let conds: Vec<(&Cond, bool)> = match &filter {
        Some(f) => {
            f.0.iter()
                .map(|c| supported(kind, &c.path).map(|e| (c, e)))
                .collect::<Result<_, _>>()?
        }
        None => Vec::new(),
    };
    // An indexed condition narrows the candidates to (at most) one.
    let indexed = conds.iter().find_map(|(c, _)| {
        let s = c.value.as_str()?;
        let a = c.path.attr.as_str();
        let unique = c.path.sub.is_none() && c.path.select.is_none() && c.path.in_schema(None);
        unique.then_some((a, s))
    });
    let ids: Vec<String> = match indexed {
        Some((a, v)) if a.eq_ignore_ascii_case("id") => vec![v.to_string()],
        Some((a, v)) if kind.unique().iter().any(|(u, _)| u.eq_ignore_ascii_case(a)) => scim
            .dir
            .lookup(kind, a, v)
            .await
            .map_err(store)?
            .into_iter()
            .collect(),
        _ => scim.dir.ids(kind).await.map_err(store)?,
    };
    let (total, page) = if conds.is_empty() {
        // No filter: only the page is read.
        let window: Vec<String> = ids.iter().skip(start - 1).take(count).cloned().collect();
        let docs = scim.dir.get_many(kind, &window).await.map_err(store)?;
        (ids.len(), docs)
    } else {
        let mut docs = Vec::new();
        for chunk in ids.chunks(200) {
            let got = scim.dir.get_many(kind, chunk).await.map_err(store)?;
            docs.extend(
                got.into_iter()
                    .filter(|d| conds.iter().all(|(c, e)| matches(d, c, *e))),
            );
        }
        let total = docs.len();
        (
            total,
            docs.into_iter().skip(start - 1).take(count).collect(),
        )
    };
    let page: Vec<Value> = page.iter().map(|d| projection.apply(d)).collect();
    Ok(answer(
        200,
        &json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    ))
}
