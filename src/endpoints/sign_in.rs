//! Starting and completing sign-ins, whatever the protocol: `/_authgate/sign_in`, the answer
//! to a request without a session (`challenge`: a redirect for browsers, a 401 for API
//! callers, a stop when a browser goes around in circles), and the protocol-independent end
//! of every sign-in (`complete`, `denied`).

use crate::answer::Answer;
use crate::cookies::LOOP_WINDOW;
use crate::exchange::{first, query_pairs, wants_html, Downstream};
use crate::identity::Identity;
use crate::idp::realm::Realm;
use crate::policy::Deny;
use crate::return_to;
use crate::route::Route;
use crate::scim::effects::Refusal;
use crate::session::{now_secs, CreateError, Grant, Held};
use crate::state::Core;

use super::discover;
use super::handoff;
use super::start::{start, start_more, start_with, with_hints, Back, More};

/// More trips to the IdP than this within `LOOP_WINDOW` is a sign-in loop.
const LOOP_MAX: u32 = 5;

/// The sealed sign-in loop counter: trips to the IdP that followed a completed sign-in.
#[derive(serde::Serialize, serde::Deserialize)]
struct Trips {
    n: u32,
    t: u64,
}

/// `GET /_authgate/sign_in?rd=<return path>&provider=<name>&login_hint=<address>`. Without a
/// provider, the route `rd` leads to decides: its sign-in provider, or the address page when it
/// discovers home realms (`discover`). `rd` on another served host (with `hb`, the browser
/// binding that host set) comes back through a handoff: at once when this browser is
/// signed in here already.
pub(crate) async fn sign_in(core: &Core, down: &mut dyn Downstream) -> Answer {
    let q = query_pairs(down.req());
    let (return_to, binding) = match handoff::back(core, down, &q).await {
        Ok(back) => back,
        Err(answer) => return answer,
    };
    let hint = first(&q, "login_hint").and_then(|h| {
        let ok = crate::idp::hints::login_hint(h);
        if ok.is_none() {
            log::info!("sign_in: login_hint dropped (not an email address or UPN)");
        }
        ok.map(str::to_string)
    });
    let provider = match first(&q, "provider") {
        Some(name) => core.providers.iter().position(|p| p.name() == name),
        None => match core.route_for(&return_to) {
            Some(route) if crate::idp::realm::discovers(&core.cfg.providers, route.accepted()) => {
                let choose = first(&q, "choose").is_some();
                let back = Back {
                    to: return_to,
                    binding,
                };
                return discover::ask(core, down, &route, back, hint.as_deref(), choose);
            }
            Some(route) => Some(route.provider),
            None => Some(0),
        },
    };
    let Some(provider) = provider else {
        return Answer::unknown_provider();
    };
    let more = More {
        realm: None,
        binding,
        ask: None,
    };
    let answer = start_more(core, down, provider, return_to, Vec::new(), more);
    with_hints(answer, hint.as_deref(), None)
}

/// No session: browsers are sent to sign in with the route's provider, API callers get a 401.
// Cold: an answer instead of the upstream's (BENCHMARKS.md, tenth round).
#[cold]
#[inline(never)]
pub(crate) fn challenge(core: &Core, down: &mut dyn Downstream, route: &Route) -> Answer {
    let req = down.req();
    let path_and_query = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let return_to = return_to::sanitize(path_and_query, &core.cfg.public_url);
    core.metrics.deny("unauthenticated");
    if !wants_html(req) {
        // With the route's own provider: a session of any other would not be accepted here.
        let provider = core.providers.get(route.provider).map_or("", |p| p.name());
        return Answer::unauthenticated(Some(core.sign_in_link(req, provider)));
    }
    // A browser that completed a sign-in and yet comes back without a session, again and
    // again within a minute, is in a loop (its session cookie never sticks): say so instead
    // of redirecting once more. Tabs that merely start sign-ins do not count; the counter is
    // sealed, so a client cannot set it.
    let now = now_secs();
    let window = LOOP_WINDOW.as_secs();
    let mut trips = core
        .cookies
        .loop_trips::<Trips>(req)
        .filter(|t| now.saturating_sub(t.t) < window)
        .unwrap_or(Trips { n: 0, t: now });
    let completed = core
        .cookies
        .sign_in_done(req)
        .is_some_and(|t| now.saturating_sub(t) < window);
    if completed {
        trips.n += 1;
    }
    if trips.n >= LOOP_MAX {
        core.metrics.deny("sign_in_loop");
        log::warn!(
            "sign-in loop: this browser signed in {} times within {window}s without keeping a session (route {}); check that cookies reach {} (public_url scheme and host, third-party cookie blocking, clock)",
            trips.n,
            route.name,
            core.cfg.public_url
        );
        return Answer::page(
            429,
            "Sign-in is going around in circles",
            "You signed in, but your browser keeps coming back without a session, so the gateway stopped sending you to sign in again. Check that cookies are allowed for this site, wait a minute, and reload. If it persists, tell your administrator: the gateway log names the cause.",
            None,
        );
    }
    let mut extra = vec![core.cookies.set_loop_trips(&trips)];
    if completed {
        extra.push(core.cookies.clear_sign_in_done());
    }
    // Another served host than public_url's: bind this browser here, sign in there, and
    // come back through a handoff.
    if let Some(here) = handoff::elsewhere(core, down.req(), &return_to) {
        return handoff::begin(core, &here, extra);
    }
    to_sign_in(core, down, route, return_to, extra)
}

/// Sends a browser to sign in for `route`: the address page (or the remembered organization)
/// when the route discovers home realms, else its sign-in provider.
pub(crate) fn to_sign_in(
    core: &Core,
    down: &mut dyn Downstream,
    route: &Route,
    return_to: String,
    extra: Vec<String>,
) -> Answer {
    if crate::idp::realm::discovers(&core.cfg.providers, route.accepted()) {
        let back = Back {
            to: return_to,
            binding: None,
        };
        return discover::begin(core, down, route, back, extra);
    }
    start(core, down, route.provider, return_to, extra)
}

/// The identity a sign-in returned is not of the tenant the address typed maps to: refused
/// (and counted), with the way to choose again. `None`: it matches, or no address chose.
pub(crate) fn realm_refused(
    core: &Core,
    provider: &str,
    identity: &Identity,
    realm: Option<&Realm>,
    return_to: &str,
    clear: &[String],
) -> Option<Answer> {
    let why = crate::idp::realm::check(realm?, identity).err()?;
    core.metrics.count_sign_in(provider, "home_realm_mismatch");
    core.metrics.deny("home_realm_mismatch");
    log::warn!(
        "sign-in with {provider} for {} refused (home_realm_mismatch): {why}",
        identity.user
    );
    let again = format!(
        "{}/sign_in?choose=1&rd={}",
        crate::canonical::RESERVED_PREFIX,
        url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
    );
    Some(
        Answer::page_with(
            403,
            "This account belongs to another organization",
            "You signed in with an account of a different organization than the email address you entered. Sign in again with an account of that organization, or enter another address.",
            Some(&format!("Reason: home_realm_mismatch\n{why}")),
            Some((&again, "Choose again")),
        )
        .cookies(clear.iter().cloned()),
    )
}

/// A session due for its re-check with a SAML provider: a browser navigating is sent through a
/// passive re-authentication (`IsPassive`) that keeps the page asked for, and replaces the
/// session; anything else (an API call, XHR, a form POST) gets a 401 with the sign-in link.
#[cold]
#[inline(never)]
pub(crate) fn reauthenticate(
    core: &Core,
    down: &mut dyn Downstream,
    identity: &Identity,
    held: &Held,
) -> Answer {
    let provider = core
        .providers
        .iter()
        .position(|p| p.name() == &*identity.provider);
    let req = down.req();
    match provider {
        Some(i) if wants_html(req) && req.method == http::Method::GET => {
            let path_and_query = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let return_to = return_to::sanitize(path_and_query, &core.cfg.public_url);
            log::info!(
                "session of {} with {} is due for its re-check: passive re-authentication",
                identity.user,
                identity.provider
            );
            start_with(
                core,
                down,
                i,
                return_to,
                Vec::new(),
                Some(&held.sid),
                Default::default(),
            )
        }
        _ => {
            core.metrics.deny("reauthentication_required");
            Answer::reauthentication_required(&core.sign_in_link(req, &identity.provider))
        }
    }
}

/// The IdP vouched for the user, but the gateway will not let them in (tenant, groups that
/// could not be resolved): a page with the reason, no session, no redirect to the IdP.
pub(crate) fn denied(
    core: &Core,
    provider: &str,
    deny: Deny,
    why: &str,
    clear: Vec<String>,
) -> Answer {
    core.metrics.count_sign_in(provider, deny.label());
    core.metrics.deny(deny.label());
    log::warn!("sign-in with {provider} denied ({}): {why}", deny.label());
    Answer::sign_in_denied(deny, why).cookies(clear)
}

/// Provisioning has its say before a session is made or upgraded: deprovisioned users stop
/// here (with the answer to give).
pub(crate) async fn admitted(
    core: &Core,
    provider: &str,
    identity: Identity,
    clear: &[String],
) -> Result<Identity, Answer> {
    let Some(scim) = &core.scim else {
        return Ok(identity);
    };
    let clear = clear.to_vec();
    match scim.admit(identity).await {
        Ok(identity) => Ok(identity),
        Err(Refusal::Deprovisioned) => Err(denied(
            core,
            provider,
            Deny::Deprovisioned,
            "the SCIM directory lists this user as inactive or deleted",
            clear,
        )),
        Err(Refusal::Unavailable(e)) => {
            core.metrics.count_sign_in(provider, "store_unavailable");
            log::error!("sign-in with {provider}: the SCIM directory cannot be read: {e}");
            Err(Answer::store_unavailable(true).cookies(clear))
        }
        Err(Refusal::Webhook(why)) => {
            core.metrics.count_sign_in(provider, "webhook_failed");
            log::error!("sign-in with {provider}: first-sign-in webhook failed: {why}");
            Err(Answer::page(
                503,
                "Your account could not be set up",
                "The application could not create your account just now. Try again in a minute; if it persists, tell your administrator.",
                Some("Reason: webhook_failed"),
            )
            .cookies(clear))
        }
    }
}

/// The protocol-independent end of every sign-in: the session, the audit line, the success
/// count, and the redirect back (or the page saying the session failed). `clear` deletes the
/// cookie of the pending sign-in. `back`: where to, through a handoff for another served
/// host.
pub(crate) async fn complete(
    core: &Core,
    provider: &str,
    identity: Identity,
    grant: Option<Grant>,
    back: &Back,
    clear: Vec<String>,
    mut audit: serde_json::Value,
) -> Answer {
    let identity = match admitted(core, provider, identity, &clear).await {
        Ok(identity) => identity,
        Err(answer) => return answer,
    };
    let (user, tenant) = (identity.user.clone(), identity.tenant.clone());
    match core.sessions.create_with(identity, grant).await {
        Ok(sealed) => {
            core.metrics.count_sign_in(provider, "success");
            audit["provider"] = provider.into();
            audit["user"] = user.to_string().into();
            audit["tenant"] = tenant.as_deref().into();
            crate::logging::audit("sign_in", audit);
            // If this browser comes back without the session, it is a loop round.
            let done = core.cookies.set_sign_in_done(now_secs());
            Answer::redirect(handoff::location(core, back, &sealed))
                .cookie(core.cookies.set_session_public(&sealed))
                .cookies(clear)
                .cookies(done)
        }
        Err(CreateError::TooLarge(bytes)) => {
            core.metrics.count_sign_in(provider, "cookie_too_large");
            log::error!("sign-in with {provider} for {user}: the identity is {bytes} bytes sealed, too large for a session cookie (4 KB): set session.store: memory or redis, or send fewer claims (groups: an Entra group filter)");
            Answer::page(
                413,
                "Your sign-in is too large for this gateway",
                "You signed in, but your account carries more information (such as group memberships) than fits in a browser cookie, so no session could be made. Tell your administrator: the gateway's session store needs to change.",
                Some(&format!("Reason: cookie_too_large
The sealed identity is {bytes} bytes; browsers keep at most about 4 KB per cookie. Set session.store: memory or redis.")),
            )
            .cookies(clear)
        }
        Err(CreateError::Store(e)) => {
            core.metrics.count_sign_in(provider, "store_unavailable");
            log::error!("sign-in with {provider} for {user}: session not stored: {e}");
            Answer::store_unavailable(true).cookies(clear)
        }
        Err(e) => {
            core.metrics.count_sign_in(provider, "session");
            log::error!("sign-in with {provider} for {user}: session not created: {e}");
            Answer::page(
                500,
                "Sign-in failed",
                "The session could not be created.",
                Some(&e.to_string()),
            )
            .cookies(clear)
        }
    }
}
