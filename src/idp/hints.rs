//! Sign-in hints: a `login_hint` a link may carry (`/_authgate/sign_in?login_hint=`), checked
//! before it goes to the IdP, and the provider's fixed `domain_hint`, `prompt` and `max_age`.

/// The longest hint passed on (an email address is at most 254 characters).
const MAX_HINT: usize = 254;

/// `hint` if it reads as an email address or UPN (`name@domain.tld`, no spaces, quotes or
/// controls), else `None`: anything else is dropped, never passed to the IdP.
pub fn login_hint(hint: &str) -> Option<&str> {
    if hint.is_empty() || hint.len() > MAX_HINT {
        return None;
    }
    let (local, domain) = hint.split_once('@')?;
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-'".contains(&b));
    (local_ok && is_domain(domain)).then_some(hint)
}

pub use crate::identity::is_domain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_pass() {
        for ok in [
            "alice@contoso.com",
            "a.b+c@sub.contoso.co.uk",
            "o'neil@x.io",
        ] {
            assert_eq!(login_hint(ok), Some(ok));
        }
        let long = format!("{}@contoso.com", "a".repeat(250));
        for bad in [
            "",
            "alice",
            "@contoso.com",
            "alice@",
            "alice@localhost",
            "a b@contoso.com",
            "alice@contoso.com\r\nX: 1",
            "alice@contoso.com&prompt=none",
            "<script>@x.io",
            "alice@-bad.com",
            "alice@@contoso.com",
            long.as_str(),
        ] {
            assert_eq!(login_hint(bad), None, "{bad:?}");
        }
    }
}
