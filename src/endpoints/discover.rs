//! Home-realm discovery, the address page: on a route that accepts several providers (or one
//! Entra provider with a tenant map), a sign-in asks for the email address first, and the
//! address's domain picks the provider and tenant (`idp::realm`). The page is the same for
//! everyone and never lists the configured domains; an address no provider lists goes to the
//! default provider the same way a listed one goes to its own, so the answers do not tell
//! which domains are configured. The choice is sealed with the pending sign-in and checked
//! when the IdP sends the user back (`sign_in::realm_refused`).

use crate::answer::Answer;
use crate::canonical::RESERVED_PREFIX;
use crate::exchange::{first, read_form, Downstream};
use crate::idp::hints;
use crate::idp::realm;
use crate::idp::settings::ProviderKind;
use crate::pages;
use crate::route::Route;
use crate::state::Core;

use super::start::{self, Back};
use crate::hosts::Destination;

/// The most the address form may weigh.
const MAX_FORM: usize = 2048;

/// For a request without a session on a discovering route: the domain this browser
/// remembers, else the address page.
pub(crate) fn begin(
    core: &Core,
    down: &mut dyn Downstream,
    route: &Route,
    back: Back,
    extra: Vec<String>,
) -> Answer {
    if let Some(domain) = remembered(core, down) {
        return go(core, down, route, None, &domain, back, extra, true);
    }
    Answer::redirect(core.public(&page_path(&back))).cookies(extra)
}

/// `GET /_authgate/sign_in` on a discovering route: straight on with a link's `login_hint` or
/// a remembered domain, else the page (`choose`: the page, forgetting the remembered domain).
pub(crate) fn ask(
    core: &Core,
    down: &mut dyn Downstream,
    route: &Route,
    back: Back,
    hint: Option<&str>,
    choose: bool,
) -> Answer {
    if let Some(address) = hint {
        let domain = realm::domain_of(address).unwrap_or_default();
        return go(core, down, route, hint, &domain, back, Vec::new(), false);
    }
    if choose {
        return page(core, &back, 200, None).cookie(core.cookies.clear_realm());
    }
    if let Some(domain) = remembered(core, down) {
        return go(core, down, route, None, &domain, back, Vec::new(), true);
    }
    page(core, &back, 200, None)
}

/// `POST /_authgate/sign_in`: the address typed on the page (same-origin only).
pub(crate) async fn submit(core: &Core, down: &mut dyn Downstream) -> pingora::Result<Answer> {
    if let Some(why) = foreign(core, down) {
        core.metrics.deny("sign_in_form_refused");
        log::warn!("address form refused ({why}): not posted from the gateway's own page");
        return Ok(Answer::page_with(
            403,
            "Sign-in not started",
            "This sign-in form was not sent from the gateway's own page. Start again.",
            Some("Reason: sign_in_form_refused"),
            Some((&format!("{RESERVED_PREFIX}/sign_in"), "Sign in")),
        ));
    }
    let Some(form) = read_form(down, MAX_FORM).await? else {
        core.metrics.deny("sign_in_form_refused");
        log::warn!("address form refused (too_large): over {MAX_FORM} bytes");
        return Ok(Answer::page(
            413,
            "Sign-in not started",
            "The form was too large.",
            Some("Reason: sign_in_form_refused"),
        ));
    };
    let back = back_of(core, &form);
    let address = first(&form, "email").map(str::trim).unwrap_or("");
    let Some(address) = hints::login_hint(address) else {
        return Ok(page(
            core,
            &back,
            400,
            Some("Enter an email address such as name@example.com."),
        ));
    };
    let Some(route) = core.route_for(&back.to) else {
        return Ok(start::with_hints(
            start::start(core, down, 0, back.to, Vec::new()),
            Some(address),
            None,
        ));
    };
    let domain = realm::domain_of(address).unwrap_or_default();
    let mut extra = Vec::new();
    if let Some(ttl) = core.cfg.home_realm.remember {
        if first(&form, "remember").is_some() {
            extra.extend(core.cookies.set_realm(&domain, ttl));
        }
    }
    Ok(go(
        core,
        down,
        &route,
        Some(address),
        &domain,
        back,
        extra,
        false,
    ))
}

/// The page's return address and binding, as checked as `/_authgate/sign_in` checks them: a
/// URL on another host only with a valid binding (else `/`).
fn back_of(core: &Core, form: &[(String, String)]) -> Back {
    let binding = first(form, "hb")
        .filter(|b| super::handoff::valid_binding(b))
        .map(str::to_string);
    let rd = first(form, "rd").unwrap_or("/");
    match core.cfg.hosts.destination(rd, &core.cfg.public_url) {
        Destination::Here(p) => Back {
            to: p,
            binding: None,
        },
        Destination::Allowed(u) => Back {
            to: u.to_string(),
            binding: None,
        },
        Destination::Served(u) if binding.is_some() => Back {
            to: u.to_string(),
            binding,
        },
        Destination::Served(_) => Back {
            to: "/".into(),
            binding: None,
        },
    }
}

/// Why a POST did not come from the gateway's own page: `Sec-Fetch-Site` other than
/// same-origin, or without it an `Origin` other than `public_url`'s (or none).
fn foreign(core: &Core, down: &dyn Downstream) -> Option<&'static str> {
    let req = down.req();
    let h = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
    let ours = core.cfg.public_url.origin().ascii_serialization();
    match (h("sec-fetch-site"), h("origin")) {
        (Some(site), _) if !site.eq_ignore_ascii_case("same-origin") => Some("cross_site"),
        (_, Some(o)) if o != ours => Some("origin"),
        (Some(_), _) | (None, Some(_)) => None,
        (None, None) => Some("no_origin"),
    }
}

/// Sends the browser to the provider `domain` leads to on `route`, with the hints: the
/// address as `login_hint` when one was typed, the domain as `domain_hint` to an Entra
/// provider (whether it lists the domain or is the default: a hint only for listed domains
/// would tell a visitor which domains are configured).
#[allow(clippy::too_many_arguments)]
fn go(
    core: &Core,
    down: &mut dyn Downstream,
    route: &Route,
    address: Option<&str>,
    domain: &str,
    back: Back,
    extra: Vec<String>,
    remembered: bool,
) -> Answer {
    let choice = realm::choose(
        &core.cfg.providers,
        &core.cfg.home_realm,
        (route.accepted(), route.provider),
        domain,
    );
    let entra = core
        .cfg
        .providers
        .get(choice.provider)
        .is_some_and(|p| matches!(&p.kind, ProviderKind::Oidc(o) if o.entra.is_some()));
    let domain_hint = entra.then_some(domain);
    let by = match remembered {
        true => "remembered",
        false => choice.picked.label(),
    };
    let name = core.providers.get(choice.provider).map_or("", |p| p.name());
    core.metrics.home_realm(name, by);
    let more = start::More {
        realm: Some(choice.realm),
        binding: back.binding,
        ask: None,
    };
    let answer = start::start_more(core, down, choice.provider, back.to, extra, more);
    start::with_hints(answer, address, domain_hint)
}

fn remembered(core: &Core, down: &dyn Downstream) -> Option<String> {
    let ttl = core.cfg.home_realm.remember?;
    core.cookies.realm(down.req(), ttl)
}

fn page_path(back: &Back) -> String {
    let rd: String = url::form_urlencoded::byte_serialize(back.to.as_bytes()).collect();
    match &back.binding {
        Some(b) => format!("{RESERVED_PREFIX}/sign_in?rd={rd}&hb={b}"),
        None => format!("{RESERVED_PREFIX}/sign_in?rd={rd}"),
    }
}

fn page(core: &Core, back: &Back, status: u16, error: Option<&str>) -> Answer {
    let html = pages::address_form(
        &format!("{RESERVED_PREFIX}/sign_in"),
        &back.to,
        back.binding.as_deref(),
        core.cfg.home_realm.remember.is_some(),
        error,
    );
    Answer::html(status, html).header("cache-control", "no-store".into())
}
