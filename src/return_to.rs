//! Where a user lands after signing in. Only ever a path on the gateway's own origin: any
//! value that a browser could read as another origin (`//evil`, `/\evil`, `https://evil`,
//! their percent-encoded forms, control characters) becomes `/`.

use percent_encoding::percent_decode_str;
use url::Url;

/// Returns a safe same-origin path (with query) for `candidate`, or `/`.
/// `candidate` may be a path or an absolute URL on `origin`.
pub(crate) fn sanitize(candidate: &str, origin: &Url) -> String {
    safe(candidate, origin).unwrap_or_else(|| "/".to_string())
}

/// Whether a RelayState received from an IdP may be sent back to it (SAML logout): an opaque
/// token (`[A-Za-z0-9_.-]`, what IdPs use to find their own state), or a URL or path that
/// `sanitize` would keep on one of `origins` (the gateway's, the IdP's). Anything else, such
/// as `https://evil.example/after`, is dropped: echoing it would make the pair an open
/// redirect.
pub(crate) fn relay_state_ok(candidate: &str, origins: &[&Url]) -> bool {
    let opaque = !candidate.is_empty()
        && candidate.len() <= 512
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    opaque || origins.iter().any(|o| safe(candidate, o).is_some())
}

fn safe(candidate: &str, origin: &Url) -> Option<String> {
    if candidate.len() > 4096 {
        return None;
    }
    let path = if candidate.starts_with('/') {
        candidate.to_string()
    } else {
        // An absolute URL is accepted only on exactly our origin.
        let u = Url::parse(candidate).ok()?;
        if u.origin() != origin.origin() || !u.username().is_empty() || u.password().is_some() {
            return None;
        }
        let mut p = u.path().to_string();
        if let Some(q) = u.query() {
            p.push('?');
            p.push_str(q);
        }
        p
    };
    if !is_plain_path(&path) {
        return None;
    }
    // Decode (repeatedly, to catch double encoding) and check again: a browser or the
    // upstream may decode `%2F%2Fevil` into `//evil`.
    let mut decoded = path.clone();
    for _ in 0..3 {
        let next = percent_decode_str(&decoded)
            .decode_utf8_lossy()
            .into_owned();
        if !starts_as_path(&next) {
            return None;
        }
        if next == decoded {
            break;
        }
        decoded = next;
    }
    // Finally, the URL parser must agree that joining it to our origin stays on our origin.
    let joined = origin.join(&path).ok()?;
    (joined.origin() == origin.origin()).then_some(path)
}

/// A path, not a scheme-relative or backslash URL.
fn starts_as_path(p: &str) -> bool {
    let b = p.as_bytes();
    b.first() == Some(&b'/') && !matches!(b.get(1), Some(b'/' | b'\\'))
}

fn is_plain_path(p: &str) -> bool {
    starts_as_path(p)
        && !p
            .chars()
            .any(|c| c.is_control() || c == '\\' || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_states_sent_back_to_the_idp() {
        let gw = Url::parse("https://gw.example").unwrap();
        let idp = Url::parse("https://idp.example:8443").unwrap();
        let origins = [&gw, &idp];
        for ok in [
            "_7f3c0a9e1b",
            "abc-DEF.123",
            "/after",
            "https://gw.example/after?x=1",
            "https://idp.example:8443/logout/done",
        ] {
            assert!(relay_state_ok(ok, &origins), "{ok}");
        }
        for bad in [
            "https://evil.example/after",
            "//evil.example",
            "/\\evil.example",
            "https://idp.example/other-port",
            "javascript:alert(1)",
            "https://gw.example@evil.example/",
            "",
            "a b",
            "%2F%2Fevil.example",
        ] {
            assert!(!relay_state_ok(bad, &origins), "{bad}");
        }
    }

    #[test]
    fn only_same_origin_paths() {
        let o = Url::parse("https://gw.example").unwrap();
        for bad in [
            "//evil.example",
            "https://evil.example/",
            "/\\evil.example",
            "\\\\evil.example",
            "/%2Fevil.example",
            "%2F%2Fevil.example",
            "/%5Cevil.example",
            "/%252F%252Fevil",
            "https://gw.example@evil.example/",
            "http://gw.example/",
            "javascript:alert(1)",
            "/\t/evil.example",
            "/x\r\nSet-Cookie: a=b",
            "",
        ] {
            assert_eq!(sanitize(bad, &o), "/", "{bad:?} must land on /");
        }
        assert_eq!(sanitize("/app?x=1&y=%20", &o), "/app?x=1&y=%20");
        assert_eq!(sanitize("https://gw.example/a/b?c", &o), "/a/b?c");
    }
}
