//! `routes[].preserve_post`: a form POST whose session has expired survives the sign-in and
//! reaches the upstream exactly once afterwards, with its body intact and the new identity.
//!
//! 1. **Kept.** Only a same-origin top-level navigation (`Sec-Fetch-Site: same-origin` and
//!    `Sec-Fetch-Mode: navigate`, or without those headers an `Origin` equal to the gateway's)
//!    with a urlencoded or multipart body: replaying a cross-site POST after the sign-in would
//!    defeat the app's own CSRF defences, and XHR/fetch callers handle a 401 themselves. The
//!    body (at most `max_bytes`) is sealed into the store under a random id for `ttl`; the
//!    browser's own sealed cookie lists the ids it kept (at most three) with a secret of its
//!    own each. The sign-in then returns to `/_authgate/post_replay?id=<id>`.
//! 2. **Offered.** That page, for a signed-in browser whose cookie lists the id, sets a
//!    one-minute replay cookie and re-submits a one-field form to the original address
//!    (a script with a CSP nonce; a button without script).
//! 3. **Sent.** That POST, once signed in and past the route's policy, is single-use through
//!    the store (every replica); the kept body and content type replace the one field, and
//!    the request goes upstream as the original did.
//!
//! What unauthenticated POSTs can make the store hold is bounded three ways: `max_bytes` per
//! form, `ttl`, and 64 MiB of forms per replica at a time (`post_store_full`, 503).
//!
//! Every refusal is a page naming the reason, never a silent GET: `post_too_large` (413),
//! `post_other_browser` (403), `post_expired` (410, expired or already sent), `post_mismatch`
//! (400, sent back to another address).

use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::answer::Answer;
use crate::canonical::RESERVED_PREFIX;
use crate::exchange::{first, is_token, query_pairs, Downstream};
use crate::route::{PreservePost, Route};
use crate::session::{now_secs, random_token};
use crate::state::Core;

/// Forms one browser may have kept at once; a fourth drops the oldest.
const MAX_PER_BROWSER: usize = 3;
/// The store's kind for kept forms.
const KIND: &str = "post";
/// How long the replay page's cookie lets its form be sent.
const REPLAY_TTL: Duration = Duration::from_secs(60);
/// The most kept-form bytes one replica stashes at a time: the per-browser cap is a cookie,
/// which a client that drops cookies does not keep, so this bounds what unauthenticated
/// POSTs can make the store hold.
const MAX_KEPT_BYTES: u64 = 64 * 1024 * 1024;

/// What this replica has kept, by id, weighed in bytes, until sent or an hour (the longest
/// `ttl`) has passed.
fn kept_here() -> &'static moka::sync::Cache<String, u32> {
    static KEPT: std::sync::OnceLock<moka::sync::Cache<String, u32>> = std::sync::OnceLock::new();
    KEPT.get_or_init(|| {
        moka::sync::Cache::builder()
            .weigher(|_, n: &u32| *n)
            .max_capacity(2 * MAX_KEPT_BYTES)
            .time_to_live(Duration::from_secs(3600))
            .build()
    })
}

/// The one field the replay page's form carries.
const FIELD: &str = "authgate_post";
const URLENCODED: &str = "application/x-www-form-urlencoded";

/// A kept form, sealed in the store.
#[derive(Serialize, Deserialize)]
struct Kept {
    /// The path and query it was sent to.
    p: String,
    /// Its content type.
    ct: String,
    /// Its body, base64.
    b: String,
    /// The secret of the browser that sent it.
    n: String,
}

/// One entry of a browser's list of kept forms (and of its replay cookie).
#[derive(Serialize, Deserialize, Clone)]
struct Mine {
    id: String,
    n: String,
    t: u64,
}

/// The form a replayed POST carries upstream instead of its own body.
pub(crate) struct Replay {
    pub(crate) body: Option<bytes::Bytes>,
    pub(crate) content_type: String,
}

fn sealed_name(id: &str) -> String {
    format!("{KIND}.{id}")
}

/// Why a POST that found no session is not kept (it then gets the 401 any program gets).
fn not_navigation(req: &pingora::http::RequestHeader, core: &Core) -> Option<&'static str> {
    let h = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
    if h("x-requested-with").is_some() {
        return Some("xhr");
    }
    let origin_ok = |o: &str| o == core.cfg.public_url.origin().ascii_serialization();
    match (h("sec-fetch-site"), h("sec-fetch-mode")) {
        (Some(site), _) if !site.eq_ignore_ascii_case("same-origin") => Some("cross_site"),
        (Some(_), mode) if !mode.is_some_and(|m| m.eq_ignore_ascii_case("navigate")) => {
            Some("not_navigation")
        }
        (Some(_), _) if h("origin").is_some_and(|o| !origin_ok(o)) => Some("origin"),
        (Some(_), _) => None,
        (None, _) if h("origin").is_some_and(origin_ok) => None,
        (None, _) => Some("origin"),
    }
}

fn form_type(req: &pingora::http::RequestHeader) -> Option<String> {
    let ct = req.headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(essence.as_str(), URLENCODED | "multipart/form-data").then(|| ct.to_string())
}

/// A POST on `route` that found no session: kept and sent to sign in, or `None` when it may not
/// be kept (not a same-origin navigation, not a form).
pub(crate) async fn keep(
    core: &Core,
    down: &mut dyn Downstream,
    route: &Route,
    pp: &PreservePost,
) -> pingora::Result<Option<Answer>> {
    let req = down.req();
    if let Some(why) = not_navigation(req, core) {
        log::info!(
            "POST on route {} not kept across the sign-in ({why})",
            route.name
        );
        return Ok(None);
    }
    let Some(ct) = form_type(req) else {
        return Ok(None);
    };
    let path = req
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    // A target the replay page could not send back to as a same-origin path.
    if !path.starts_with('/') || path.starts_with("//") {
        return Ok(None);
    }
    let Some(body) = down.body(pp.max_bytes).await? else {
        core.metrics.deny("post_too_large");
        log::warn!(
            "POST on route {} not kept: over {} bytes",
            route.name,
            pp.max_bytes
        );
        return Ok(Some(Answer::page(
            413,
            "Your form is too large to keep",
            "Your session had ended, and this form is too large to keep while you sign in again. Sign in, then send the form again.",
            Some("Reason: post_too_large"),
        )));
    };
    let here = kept_here();
    here.run_pending_tasks();
    if here.weighted_size() + body.len() as u64 > MAX_KEPT_BYTES {
        core.metrics.deny("post_store_full");
        log::warn!(
            "POST on route {} not kept: this replica already keeps {MAX_KEPT_BYTES} bytes of forms",
            route.name
        );
        return Ok(Some(Answer::page(
            503,
            "Your form could not be kept",
            "Your session had ended, and too many forms are waiting for their senders to sign in right now. Sign in, then send the form again.",
            Some("Reason: post_store_full"),
        )));
    }
    let (id, n, now) = (random_token(32), random_token(16), now_secs());
    let kept = Kept {
        p: path,
        ct,
        b: base64::engine::general_purpose::STANDARD.encode(&body),
        n: n.clone(),
    };
    let Some(sealed) = core.sessions.sealer().seal(&sealed_name(&id), &kept) else {
        return Ok(Some(Answer::store_unavailable(true)));
    };
    let store = core.sessions.store();
    if let Err(e) = store.keep(KIND, &id, sealed, pp.ttl).await {
        log::warn!("POST on route {} not kept: {e}", route.name);
        return Ok(Some(Answer::store_unavailable(true)));
    }
    // This browser's list: the expired leave it, and over the cap the oldest is forgotten.
    let mut mine: Vec<Mine> = core.cookies.kept_posts(down.req()).unwrap_or_default();
    mine.retain(|m| now.saturating_sub(m.t) < pp.ttl.as_secs());
    while mine.len() >= MAX_PER_BROWSER {
        let old = mine.remove(0);
        let _ = store.forget(KIND, &old.id).await;
    }
    here.insert(id.clone(), u32::try_from(body.len()).unwrap_or(u32::MAX));
    mine.push(Mine {
        id: id.clone(),
        n,
        t: now,
    });
    let cookie = core.cookies.set_kept_posts(&mine, pp.ttl);
    log::info!(
        "POST on route {} kept across the sign-in ({} bytes)",
        route.name,
        body.len()
    );
    let back = format!("{RESERVED_PREFIX}/post_replay?id={id}");
    Ok(Some(super::start::start(
        core,
        down,
        route.provider,
        back,
        cookie.into_iter().collect(),
    )))
}

fn refused(status: u16, reason: &str, message: &str) -> Answer {
    Answer::page(
        status,
        "Your form was not sent",
        message,
        Some(&format!("Reason: {reason}")),
    )
}

/// `/_authgate/post_replay?id=`: after the sign-in, the page that sends the kept form back to
/// its address, from this browser only.
pub(crate) async fn offer(core: &Core, down: &mut dyn Downstream) -> Answer {
    let q = query_pairs(down.req());
    let Some(id) = first(&q, "id").filter(|i| is_token(i)).map(str::to_string) else {
        return refused(400, "post_expired", "This link names no kept form.");
    };
    if !matches!(
        crate::authenticate::session_of(core, down).await,
        Ok(Some(_))
    ) {
        return refused(
            401,
            "post_no_session",
            "Sign in first; then the form is sent.",
        );
    }
    let kept = match core.sessions.store().kept(KIND, &id).await {
        Ok(Some(sealed)) => core
            .sessions
            .sealer()
            .open_any::<Kept>(&sealed_name(&id), &sealed),
        Ok(None) => None,
        Err(_) => return Answer::store_unavailable(true),
    };
    let Some(kept) = kept else {
        return refused(
            410,
            "post_expired",
            "This form was kept too long ago, or it was already sent. Send it again.",
        );
    };
    let mine: Vec<Mine> = core.cookies.kept_posts(down.req()).unwrap_or_default();
    let Some(entry) = mine.into_iter().find(|m| m.id == id && m.n == kept.n) else {
        core.metrics.deny("post_other_browser");
        log::warn!("kept form {id} asked for by a browser that did not keep it");
        return refused(
            403,
            "post_other_browser",
            "This form was kept for another browser.",
        );
    };
    let nonce = random_token(16);
    let page = format!(
        r#"<!doctype html><meta charset="utf-8"><title>Sending your form</title><form method="post" action="{action}" enctype="application/x-www-form-urlencoded"><input type="hidden" name="{FIELD}" value="{id}"><noscript><p>You are signed in again. <button>Send your form</button></p></noscript></form><script nonce="{nonce}">document.forms[0].submit()</script>"#,
        action = crate::pages::escape(&kept.p),
    );
    let replay = core.cookies.set_replay(&entry, REPLAY_TTL);
    Answer::html(200, page)
        .header(
            "content-security-policy",
            format!("default-src 'none'; script-src 'nonce-{nonce}'; form-action 'self'; frame-ancestors 'none'"),
        )
        .cookies(replay)
}

/// A signed-in POST that carries the replay cookie: the kept form it names, once, or the
/// refusal to answer. `None`: not a replay.
pub(crate) async fn take(core: &Core, down: &mut dyn Downstream) -> Option<Result<Replay, Answer>> {
    let entry: Mine = core.cookies.replay(down.req())?;
    // Only the replay page's own form (one urlencoded field naming this id) is a replay: any
    // other POST of the browser in that minute goes through untouched.
    let req = down.req();
    let length = format!("{}", FIELD.len() + 1 + entry.id.len());
    let is_form = form_type(req).is_some_and(|ct| ct.to_ascii_lowercase().starts_with(URLENCODED))
        && req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            == Some(&length);
    if !is_form {
        return None;
    }
    let store = core.sessions.store();
    Some(
        match store
            .first_use("post_replay", &entry.id, REPLAY_TTL * 2)
            .await
        {
            Ok(true) => {
                let kept = match store.kept(KIND, &entry.id).await {
                    Ok(Some(sealed)) => core
                        .sessions
                        .sealer()
                        .open_any::<Kept>(&sealed_name(&entry.id), &sealed),
                    Ok(None) => None,
                    Err(_) => return Some(Err(Answer::store_unavailable(true))),
                };
                let _ = store.forget(KIND, &entry.id).await;
                kept_here().invalidate(&entry.id);
                let here = down.req().uri.path_and_query().map_or("/", |p| p.as_str());
                match kept {
                    None => Err(refused(
                        410,
                        "post_expired",
                        "This form was kept too long ago, or it was already sent.",
                    )),
                    Some(k) if k.n != entry.n => Err(refused(
                        403,
                        "post_other_browser",
                        "This form was kept for another browser.",
                    )),
                    Some(k) if k.p != here => Err(refused(
                        400,
                        "post_mismatch",
                        "This form belongs to another address.",
                    )),
                    Some(k) => match base64::engine::general_purpose::STANDARD.decode(&k.b) {
                        Ok(b) => Ok(Replay {
                            body: Some(b.into()),
                            content_type: k.ct,
                        }),
                        Err(_) => Err(refused(
                            410,
                            "post_expired",
                            "This form could not be read back.",
                        )),
                    },
                }
            }
            Ok(false) => {
                core.metrics.deny("post_replayed");
                log::warn!("kept form {} sent again (replay) refused", entry.id);
                Err(refused(410, "post_expired", "This form was already sent."))
            }
            Err(_) => Err(Answer::store_unavailable(true)),
        },
    )
}
