//! One sign-in for many hosts: a browser without a session on a served host other than
//! `public_url`'s is sent to sign in there, and comes back through a **handoff**, a one-time
//! code redeemed at `https://<that host>/_authgate/handoff`, which sets that host's own
//! session cookie (the same session: signing out anywhere ends it everywhere).
//!
//! The code is sealed (the session cookie's value, the host, the path, the binding, the
//! time), valid for 30 s, single-use on every replica (the store's single-use check), and
//! bound to the browser that started on that host: the host sets a random nonce in a cookie
//! of its own, the sign-in carries its hash, and the code is redeemed only with that cookie.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::answer::Answer;
use crate::canonical::RESERVED_PREFIX;
use crate::exchange::{first, query_pairs, Downstream};
use crate::hosts::Destination;
use crate::session::{now_secs, random_token, Check};
use crate::state::Core;

/// How long a code may be redeemed.
const CODE_TTL: u64 = 30;

/// A handoff code, sealed.
#[derive(Serialize, Deserialize)]
struct Code {
    /// The session cookie's value.
    v: String,
    /// The host it is for (lower case).
    h: String,
    /// Path and query on that host.
    p: String,
    /// Hash of the binding nonce.
    b: String,
    /// Issued at (seconds).
    t: u64,
    /// Random ID: what the single-use check remembers.
    i: String,
}

/// The binding a nonce stands for (what travels through the sign-in).
fn binding_of(nonce: &str) -> String {
    let d = openssl::sha::sha256(format!("authgate.handoff.{nonce}").as_bytes());
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// A binding as it arrives in a query: 32 lower-case hex digits.
pub(crate) fn valid_binding(b: &str) -> bool {
    b.len() == 32
        && b.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// On a served host without a session: bind this browser here, and sign in at `public_url`
/// for `here` (this host's URL of the page asked for).
pub(crate) fn begin(core: &Core, here: &Url, extra: Vec<String>) -> Answer {
    let rd: String = url::form_urlencoded::byte_serialize(here.as_str().as_bytes()).collect();
    if reaches(core, here) {
        // The parent-domain cookie will reach this host: no binding, no handoff.
        let to = core.public(&format!("{RESERVED_PREFIX}/sign_in?rd={rd}"));
        return Answer::redirect(to).cookies(extra);
    }
    let nonce = random_token(16);
    let to = core.public(&format!(
        "{RESERVED_PREFIX}/sign_in?rd={rd}&hb={}",
        binding_of(&nonce)
    ));
    Answer::redirect(to)
        .cookie(core.cookies.set_handoff_binding(&nonce))
        .cookies(extra)
}

/// On `public_url`'s host, with a session (`session`, its cookie value): where the browser
/// goes to take it to `target`, bound by `binding`.
pub(crate) fn issue(core: &Core, session: &str, target: &Url, binding: &str) -> Option<String> {
    let code = Code {
        v: session.to_string(),
        h: target.host_str()?.to_string(),
        p: path_of(target),
        b: binding.to_string(),
        t: now_secs(),
        i: random_token(16),
    };
    let sealed = core.cookies.seal_handoff(&code)?;
    let sealed: String = url::form_urlencoded::byte_serialize(sealed.as_bytes()).collect();
    core.metrics.handoff("issued");
    Some(format!(
        "{}{RESERVED_PREFIX}/handoff?code={sealed}",
        target.origin().ascii_serialization()
    ))
}

/// `GET /_authgate/handoff?code=` on the host the code is for: its session cookie, then the
/// page. `?rd=<path>` without a code starts a handoff for that path (what a sign-in link from
/// another host, such as an ingress's, comes back through).
pub(crate) async fn handoff(core: &Core, down: &mut dyn Downstream, host: Option<&str>) -> Answer {
    let q = query_pairs(down.req());
    let Some(host) = host.filter(|h| core.cfg.hosts.serves(h, &core.cfg.public_url)) else {
        return refused(core, "host", "this host is not served by the gateway");
    };
    let Some(code) = first(&q, "code") else {
        let path = crate::return_to::sanitize(first(&q, "rd").unwrap_or("/"), &core.cfg.public_url);
        return match here(core, host, &path) {
            Some(u) => begin(core, &u, Vec::new()),
            None => refused(
                core,
                "host",
                "this host has no address the gateway can send back to",
            ),
        };
    };
    let Some(c) = core.cookies.open_handoff::<Code>(code) else {
        return refused(core, "code", "the code is not one the gateway issued");
    };
    if c.h != host {
        return refused(core, "host", "the code is for another host");
    }
    if now_secs().saturating_sub(c.t) >= CODE_TTL {
        return refused(core, "expired", "the code is older than 30 seconds");
    }
    let bound = core
        .cookies
        .handoff_binding(down.req())
        .any(|nonce| binding_of(nonce) == c.b);
    if !bound {
        return refused(core, "browser", "the code was issued to another browser");
    }
    match core
        .sessions
        .first_use(
            "handoff",
            &c.i,
            std::time::Duration::from_secs(CODE_TTL * 2),
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => return refused(core, "replayed", "the code was used already"),
        Err(e) => {
            log::warn!("handoff refused: single-use check failed: {e}");
            return Answer::store_unavailable(true);
        }
    }
    core.metrics.handoff("redeemed");
    // The binding cookie stays (10 minutes): a replay from this browser is then named so.
    Answer::redirect(c.p)
        .cookie(core.cookies.set_session(&c.v, down.req()))
        .header("cache-control", "no-store".into())
        .header("referrer-policy", "no-referrer".into())
}

/// The return address of `/_authgate/sign_in`'s `rd` (and its binding): a path here, an
/// allowed URL, or another served host's URL with the binding its handoff needs. Without a
/// binding, the browser first goes to that host to get one; signed in here already, it goes
/// there at once with a code.
pub(crate) async fn back(
    core: &Core,
    down: &mut dyn Downstream,
    q: &[(String, String)],
) -> Result<(String, Option<String>), Answer> {
    let public = &core.cfg.public_url;
    let u = match core
        .cfg
        .hosts
        .destination(first(q, "rd").unwrap_or("/"), public)
    {
        Destination::Here(p) => return Ok((p, None)),
        Destination::Allowed(u) => return Ok((u.to_string(), None)),
        // The parent-domain cookie reaches it: no handoff.
        Destination::Served(u) if reaches(core, &u) => return Ok((u.to_string(), None)),
        Destination::Served(u) => u,
    };
    let Some(binding) = first(q, "hb").filter(|b| valid_binding(b)) else {
        let rd: String = url::form_urlencoded::byte_serialize(path_of(&u).as_bytes()).collect();
        return Err(Answer::redirect(format!(
            "{}{RESERVED_PREFIX}/handoff?rd={rd}",
            u.origin().ascii_serialization()
        )));
    };
    let presented: Vec<String> = core
        .cookies
        .sessions(down.req())
        .map(str::to_string)
        .collect();
    if let Some(value) = session_value(core, presented).await {
        if let Some(to) = issue(core, &value, &u, binding) {
            return Err(Answer::redirect(to));
        }
    }
    Ok((u.to_string(), Some(binding.to_string())))
}

/// Where a completed sign-in sends the browser, with `session` (its new cookie value): a
/// path here; another served host through a handoff (only with its binding); an allowed
/// host directly. The address is checked again against the configuration in force.
pub(crate) fn location(core: &Core, back: &super::start::Back, session: &str) -> String {
    let public = &core.cfg.public_url;
    if back.to.starts_with('/') {
        return core.public(&back.to);
    }
    match (core.cfg.hosts.destination(&back.to, public), &back.binding) {
        (Destination::Served(u), _) if reaches(core, &u) => u.to_string(),
        (Destination::Served(u), Some(b)) => {
            issue(core, session, &u, b).unwrap_or_else(|| core.public("/"))
        }
        (Destination::Allowed(u), _) => u.to_string(),
        (Destination::Here(p), _) => core.public(&p),
        (Destination::Served(_), None) => core.public("/"),
    }
}

/// The valid session cookie this browser presents here (rotated if due), if any.
async fn session_value(core: &Core, presented: Vec<String>) -> Option<String> {
    let now = now_secs();
    for v in presented {
        if let Check::Valid { refreshed, .. } = core.sessions.check(&v, now).await {
            return Some(refreshed.unwrap_or(v));
        }
    }
    None
}

fn path_of(u: &Url) -> String {
    let mut p = u.path().to_string();
    if let Some(q) = u.query() {
        p.push('?');
        p.push_str(q);
    }
    p
}

/// The session cookie (`session.cookie_domain`) reaches `u`'s host by itself.
fn reaches(core: &Core, u: &Url) -> bool {
    u.host_str()
        .is_some_and(|h| core.cfg.session.cookie_reaches(h))
}

/// A request for a served host other than `public_url`'s: that host's URL of `path`.
pub(crate) fn elsewhere(
    core: &Core,
    req: &pingora::http::RequestHeader,
    path: &str,
) -> Option<Url> {
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.host())?;
    let host = host
        .rsplit_once(':')
        .map_or(host, |(h, _)| h)
        .to_ascii_lowercase();
    let public = &core.cfg.public_url;
    if public.host_str() == Some(host.as_str()) || !core.cfg.hosts.serves(&host, public) {
        return None;
    }
    here(core, &host, path)
}

/// This host's URL for `path`, with `public_url`'s scheme and port.
pub(crate) fn here(core: &Core, host: &str, path: &str) -> Option<Url> {
    let mut u = core.cfg.public_url.clone();
    u.set_host(Some(host)).ok()?;
    let joined = u.join(path).ok()?;
    (joined.origin() == u.origin()).then_some(joined)
}

fn refused(core: &Core, why: &'static str, message: &str) -> Answer {
    core.metrics.handoff(why);
    core.metrics.deny("handoff_refused");
    log::warn!("handoff refused ({why}): {message}");
    Answer::page_with(
        403,
        "Sign-in could not be completed here",
        "The link that was to sign you in on this site is not valid here (used already, too old, or opened in another browser). Start again from the page you wanted.",
        Some(&format!("Reason: handoff_refused ({why})")),
        Some(("/", "Start again")),
    )
}
