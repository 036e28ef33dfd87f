//! Sending a browser to its IdP: the pending sign-in sealed in a cookie named after its key,
//! the hints added to the redirect, and the abandoned sign-ins cleared. Every way a sign-in
//! starts ends here (`sign_in`, the address page, forward-auth, kept forms, a declined
//! passive re-authentication).

use crate::answer::Answer;
use crate::assurance::Ask;
use crate::exchange::Downstream;
use crate::idp::realm::Realm;
use crate::idp::Provider;
use crate::state::Core;

/// More pending sign-ins than this in one browser: clear them instead of adding another.
const MAX_PENDING_LOGINS: usize = 5;

/// Sends the browser to provider number `provider`, keeping the pending sign-in sealed in a
/// cookie named after its key; `extra` cookies are set on the same answer.
pub(crate) fn start(
    core: &Core,
    down: &mut dyn Downstream,
    provider: usize,
    return_to: String,
    extra: Vec<String>,
) -> Answer {
    start_with(
        core,
        down,
        provider,
        return_to,
        extra,
        None,
        More::default(),
    )
}

/// Where a sign-in returns to: a path here, or an absolute URL on another served host (with
/// the browser binding of its handoff) or an allowed one.
#[derive(Debug, Clone, Default)]
pub(crate) struct Back {
    pub to: String,
    pub binding: Option<String>,
}

/// What a pending sign-in keeps besides the protocol's state.
#[derive(Debug, Clone, Default)]
pub(crate) struct More {
    /// The home realm an address chose: the identity that comes back must match it
    /// (`realm_refused`).
    pub realm: Option<Realm>,
    /// The return address is on another served host: the browser binding its handoff needs.
    pub binding: Option<String>,
    /// What to ask the IdP for (a step-up, `endpoints::step_up`); `None`: what the route the
    /// sign-in returns to requires, if it accepts this provider.
    pub ask: Option<Ask>,
}

/// `start`, keeping `more` with the pending sign-in.
pub(crate) fn start_more(
    core: &Core,
    down: &mut dyn Downstream,
    provider: usize,
    return_to: String,
    extra: Vec<String>,
    more: More,
) -> Answer {
    start_with(core, down, provider, return_to, extra, None, more)
}

/// `start`, or with `passive` (the session it replaces) a passive re-authentication.
pub(crate) fn start_with(
    core: &Core,
    down: &mut dyn Downstream,
    provider: usize,
    return_to: String,
    extra: Vec<String>,
    passive: Option<&str>,
    more: More,
) -> Answer {
    let Some(p) = core.providers.get(provider) else {
        return Answer::page(
            500,
            "Gateway misconfigured",
            "This route names no identity provider.",
            None,
        );
    };
    // No session could be made at the end of it: say so now, not after the IdP round trip.
    if !core.sessions.store().healthy() {
        log::warn!(
            "sign-in with {} not started: the {} session store does not answer",
            p.name(),
            core.sessions.store().kind()
        );
        return Answer::store_unavailable(true);
    }
    let ask = more
        .ask
        .unwrap_or_else(|| required(core, &return_to, p.name()));
    let begun = match (passive, &**p) {
        (Some(replaces), Provider::Saml(saml)) => saml.begin_passive(return_to, replaces),
        _ => p.begin(return_to, &ask),
    };
    let mut begun = match begun {
        Ok(b) => b,
        Err(e) => {
            log::warn!("sign-in could not start with provider {}: {e}", p.name());
            return Answer::sign_in_unavailable(&e);
        }
    };
    if let Some(obj) = begun.pending.as_object_mut() {
        if let Some(r) = more.realm {
            obj.insert("hr".into(), serde_json::to_value(r).unwrap_or_default());
        }
        if let Some(b) = more.binding {
            obj.insert("hb".into(), b.into());
        }
    }
    let Some(pending) = core
        .cookies
        .start_login(&begun.key, &begun.pending, begun.cross_site)
    else {
        return Answer::page(
            500,
            "Sign-in failed",
            "Could not protect the sign-in state.",
            None,
        );
    };
    // Many abandoned sign-ins: clear them so the Cookie header cannot grow forever.
    let abandoned = core
        .cookies
        .clear_abandoned_logins(down.req(), MAX_PENDING_LOGINS);
    Answer::redirect(begun.url.to_string())
        .cookie(pending)
        .cookies(extra)
        .cookies(abandoned)
}

/// What the route a sign-in returns to requires (`require:`), when it accepts `provider`: a
/// first sign-in for `/payroll` asks for its authentication context at once, not in a
/// second trip.
fn required(core: &Core, return_to: &str, provider: &str) -> Ask {
    core.route_for(return_to)
        .filter(|r| !r.require.is_empty() && r.accepted().iter().any(|a| &**a == provider))
        .map(|r| r.require.ask(None))
        .unwrap_or_default()
}

/// The redirect to the IdP, with `login_hint` and `domain_hint` added or replaced (OpenID
/// Connect and Entra's SAML endpoint both read `login_hint` from the query; a signed SAML
/// redirect signs only the SAML parameters).
pub(crate) fn with_hints(mut answer: Answer, login: Option<&str>, domain: Option<&str>) -> Answer {
    if login.is_none() && domain.is_none() {
        return answer;
    }
    for (name, value) in answer.headers.iter_mut() {
        if !name.eq_ignore_ascii_case("location") {
            continue;
        }
        let Ok(mut url) = url::Url::parse(value) else {
            continue;
        };
        // Entra: `login_hint` and `prompt=select_account` do not go together; a typed
        // address wins over the account picker.
        let replaced = |k: &str, v: &str| {
            (k == "login_hint" && login.is_some())
                || (k == "domain_hint" && domain.is_some())
                || (k == "prompt" && v == "select_account" && login.is_some())
        };
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, v)| !replaced(k, v))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        {
            let mut q = url.query_pairs_mut();
            q.clear().extend_pairs(kept);
            for (k, v) in [("login_hint", login), ("domain_hint", domain)] {
                if let Some(v) = v {
                    q.append_pair(k, v);
                }
            }
        }
        *value = url.to_string();
    }
    answer
}
