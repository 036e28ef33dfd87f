//! Sign-in hints through the real binary and the real `oidc-provider`: a link's `login_hint`
//! reaches the IdP only when it reads as an address, the provider's `domain_hint`, `prompt`
//! and `max_age` go with every sign-in, and the returned `auth_time` is checked.

mod common;

use common::*;

fn authorize_params(gw: &Gateway, query: &str) -> Vec<(String, String)> {
    let r = api()
        .get(format!("{}/_authgate/sign_in?rd=/x{query}", gw.url))
        .send()
        .expect("sign_in");
    assert_eq!(r.status(), 302);
    let to = reqwest::Url::parse(&location(&r)).expect("authorize URL");
    to.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn values<'a>(params: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn hints_reach_the_idp_and_auth_time_is_checked() {
    let env = start_env_with(|b| {
        b.provider_lines("    domain_hint: contoso.example\n    prompt: login\n    max_age: 1h")
    });
    let p = authorize_params(&env.gw, "&login_hint=alice%40contoso.example");
    assert_eq!(values(&p, "login_hint"), ["alice@contoso.example"]);
    assert_eq!(values(&p, "domain_hint"), ["contoso.example"]);
    assert_eq!(values(&p, "prompt"), ["login"]);
    assert_eq!(values(&p, "max_age"), ["3600"]);
    // What does not read as an address is dropped, never passed on (nor smuggles a parameter).
    for bad in [
        "alice%40contoso.example%26prompt%3Dnone",
        "alice",
        "%3Cscript%3E%40x.io",
        "alice%40contoso.example%0D%0AX%3A1",
    ] {
        let p = authorize_params(&env.gw, &format!("&login_hint={bad}"));
        assert!(values(&p, "login_hint").is_empty(), "{bad}: {p:?}");
        assert_eq!(values(&p, "prompt"), ["login"], "{bad}");
    }
    // With max_age the IdP's auth_time is checked: a fresh sign-in passes.
    let b = Browser::new();
    let (r, _) = b.sign_in(&format!("{}/x", env.gw.url), "alice");
    assert_eq!(r.status(), 200, "{}", env.gw.log_text());
}

#[test]
fn bad_static_hints_are_refused_by_check() {
    let yaml = "listen: [\"127.0.0.1:8080\"]\npublic_url: \"http://gw.example\"\nproviders:\n  - name: idp\n    type: oidc\n    issuer: \"https://idp.example\"\n    client_id: x\n    client_secret: s\n    domain_hint: \"contoso com\"\n    prompt: none\n    max_age: soon\nroutes:\n  - upstream: \"127.0.0.1:3000\"\nsession:\n  secret: \"0123456789abcdef0123456789abcdef\"\n";
    let (ok, out) = check_config(yaml);
    assert!(!ok, "{out}");
    assert_config_errors(
        &out,
        &[
            ("providers[0].domain_hint", "is not a domain name"),
            ("providers[0].prompt", "is not select_account or login"),
            ("providers[0].max_age", "expected a duration"),
        ],
    );
}

/// `max_age` is enforced on what the IdP says (`auth_time`), not on what was asked: a callback
/// completed after the allowed age is refused.
#[test]
fn an_authentication_older_than_max_age_is_refused() {
    let env = start_env_with(|b| b.provider_lines("    max_age: 1s\n    clock_skew: 0s"));
    let b = Browser::new();
    let callback = b.login_until_callback(&format!("{}/x", env.gw.url), "alice");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let (r, _) = b.follow(&callback);
    assert_eq!(r.status(), 400);
    let body = r.text().unwrap_or_default();
    assert!(body.contains("more than max_age"), "{body}");
}

/// Entra cannot take `login_hint` with `prompt=select_account`: an address given wins over the
/// account picker, for that sign-in only.
#[test]
fn an_address_replaces_the_account_picker() {
    let env = start_env_with(|b| b.provider_lines("    prompt: select_account"));
    let p = authorize_params(&env.gw, "");
    assert_eq!(values(&p, "prompt"), ["select_account"]);
    let p = authorize_params(&env.gw, "&login_hint=alice%40contoso.example");
    assert_eq!(values(&p, "login_hint"), ["alice@contoso.example"]);
    assert!(values(&p, "prompt").is_empty(), "{p:?}");
}
