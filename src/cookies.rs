//! Every cookie the gateway reads or writes, in one place: their names, their attributes,
//! sealing, reading them from a request, and keeping them from the upstream.
//!
//! The cookies (with `session.cookie_name: authgate_session`):
//! - `authgate_session`: the sealed session ticket (`session.rs` decides what it holds);
//! - `authgate_login_<16 chars of the key>`: one per sign-in in flight, path `/_authgate/`,
//!   holding the provider's pending sign-in (OIDC state/nonce/PKCE, SAML request ID);
//! - `authgate_session_loop` and `authgate_session_done`: the sealed sign-in loop counter;
//! - `authgate_session_realm`: opt-in (`home_realm.remember`), the last domain typed on the
//!   address page, so the next sign-in skips it;
//! - `authgate_session_handoff` (`__Host-` over https): on a served host other than
//!   `public_url`'s, a random nonce binding the sign-in it starts to this browser (10 min); a
//!   handoff code (`authgate_handoff`, never a cookie) is sealed under its own name;
//! - `authgate_sign_out`: never a cookie, but the name a sign-out token is sealed under.
//!
//! Every value is sealed with AES-256-GCM (cookie's `PrivateJar`, key derived by HKDF from
//! `session.secret`), with the cookie's *name* as associated data: a value sealed for one
//! cookie cannot be replayed as another.

use std::time::Duration;

use bytes::Bytes;
use cookie::{Cookie, SameSite};
use pingora::http::RequestHeader;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::canonical::RESERVED_PREFIX;
use crate::idp::PendingSignIn;
use crate::seal::Sealer;
use crate::session::{now_secs, SessionConfig};

/// How long a started sign-in may take before its cookie is void.
pub(crate) const LOGIN_TTL: Duration = Duration::from_secs(600);
/// The window of the sign-in loop counter.
pub(crate) const LOOP_WINDOW: Duration = Duration::from_secs(60);
/// More values of one cookie name than this in a request are not tried.
const MAX_VALUES: usize = 8;

/// The gateway's cookies for one configuration.
#[derive(Clone)]
pub struct Cookies {
    sealer: Sealer,
    secure: bool,
    lifetime: Duration,
    session: String,
    login_prefix: String,
    loop_name: String,
    done_name: String,
    sign_out_name: String,
    post_name: String,
    replay_name: String,
    realm_name: String,
    binding_name: String,
    handoff_name: String,
    /// `session.cookie_domain`: the session cookie's `Domain`.
    domain: Option<String>,
}

impl Cookies {
    pub fn new(cfg: &SessionConfig) -> Option<Self> {
        Some(Self {
            sealer: Sealer::new(cfg.secret.0.as_bytes())?,
            secure: cfg.secure,
            // The longest any provider's sessions last (the ticket inside bounds each one).
            lifetime: cfg.longest_lifetime(),
            session: cfg.cookie_name.clone(),
            login_prefix: format!("{}_login_", cfg.base_name()),
            loop_name: format!("{}_loop", cfg.cookie_name),
            done_name: format!("{}_done", cfg.cookie_name),
            sign_out_name: format!("{}_sign_out", cfg.base_name()),
            post_name: format!("{}_post", cfg.cookie_name),
            replay_name: format!("{}_replay", cfg.cookie_name),
            realm_name: format!("{}_realm", cfg.cookie_name),
            // `__Host-` where the scheme allows: a sibling subdomain must not be able to plant
            // a nonce it knows (it would then hand its own session to this browser).
            binding_name: match cfg.secure {
                true => format!("__Host-{}_handoff", cfg.base_name()),
                false => format!("{}_handoff", cfg.base_name()),
            },
            handoff_name: format!("{}_handoff_code", cfg.base_name()),
            domain: cfg.cookie_domain.clone(),
        })
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    pub fn session_name(&self) -> &str {
        &self.session
    }

    /// A cookie the gateway reads or writes (never passed to the upstream).
    pub fn is_own(&self, name: &str) -> bool {
        name == self.session
            || name.starts_with(&self.login_prefix)
            || name == self.loop_name
            || name == self.done_name
            || name == self.post_name
            || name == self.replay_name
            || name == self.realm_name
            || name == self.binding_name
    }

    /// Every session cookie value the request presents.
    pub fn sessions<'a>(&'a self, req: &'a RequestHeader) -> impl Iterator<Item = &'a str> {
        values(req, &self.session)
    }

    /// `Set-Cookie` for a session cookie, in answer to `req`: for its whole
    /// `session.cookie_domain` when that covers the request's host, else for that host only.
    pub fn set_session(&self, value: &str, req: &RequestHeader) -> String {
        let c = self.build(&self.session, value, "/", Some(self.lifetime));
        self.with_domain(c, self.covers(req))
    }

    /// `set_session` on `public_url`'s host (where sign-ins complete; always under
    /// `session.cookie_domain` when one is set).
    pub fn set_session_public(&self, value: &str) -> String {
        let c = self.build(&self.session, value, "/", Some(self.lifetime));
        self.with_domain(c, true)
    }

    /// `Set-Cookie` that deletes the session cookie where `req`'s host would have it.
    pub fn clear_session(&self, req: &RequestHeader) -> String {
        let c = self.build(&self.session, "", "/", Some(Duration::ZERO));
        self.with_domain(c, self.covers(req))
    }

    fn covers(&self, req: &RequestHeader) -> bool {
        let Some(d) = &self.domain else { return false };
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let host = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .to_ascii_lowercase();
        host == *d
            || host
                .strip_suffix(d.as_str())
                .is_some_and(|r| r.ends_with('.'))
    }

    /// The session cookie's `Domain` (`session.cookie_domain`), when `shared`.
    fn with_domain(&self, cookie: String, shared: bool) -> String {
        match (&self.domain, shared) {
            (Some(d), true) => format!("{cookie}; Domain={d}"),
            _ => cookie,
        }
    }

    // --- Sign-ins in flight.

    fn login_name(&self, key: &str) -> String {
        let short = key.get(..16).unwrap_or(key);
        format!("{}{short}", self.login_prefix)
    }

    /// `Set-Cookie` keeping a started sign-in until the IdP sends the browser back; `None`
    /// when it cannot be sealed. `cross_site`: the IdP answers with a cross-site POST.
    pub fn start_login(
        &self,
        key: &str,
        pending: &serde_json::Value,
        cross_site: bool,
    ) -> Option<String> {
        let name = self.login_name(key);
        let sealed = self.sealer.seal(&name, pending)?;
        let path = format!("{RESERVED_PREFIX}/");
        Some(if cross_site {
            self.cross_site(&name, &sealed, &path, Some(LOGIN_TTL))
        } else {
            self.build(&name, &sealed, &path, Some(LOGIN_TTL))
        })
    }

    /// The sign-in this browser started with `key` (OIDC state, SAML RelayState), if its
    /// sealed cookie is present, names this provider, matches the key and is not too old.
    pub fn pending_login<T: PendingSignIn>(
        &self,
        req: &RequestHeader,
        key: &str,
        provider: &str,
    ) -> Option<T> {
        let name = self.login_name(key);
        let found = values(req, &name).find_map(|v| self.sealer.open::<T>(&name, v));
        found.filter(|p| {
            constant_time_eq(p.key().as_bytes(), key.as_bytes())
                && p.provider() == provider
                && now_secs().saturating_sub(p.created()) < LOGIN_TTL.as_secs()
        })
    }

    /// `Set-Cookie` that deletes the cookie of the sign-in started with `key`.
    pub fn clear_login(&self, key: &str) -> String {
        self.clear_login_named(&self.login_name(key))
    }

    fn clear_login_named(&self, name: &str) -> String {
        self.build(
            name,
            "",
            &format!("{RESERVED_PREFIX}/"),
            Some(Duration::ZERO),
        )
    }

    /// With this many sign-ins in flight in one browser, the next clears them all, so
    /// abandoned sign-ins cannot grow the `Cookie` header forever.
    pub fn clear_abandoned_logins(&self, req: &RequestHeader, max: usize) -> Vec<String> {
        let names: Vec<String> = req
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .flat_map(|h| pairs(h.as_bytes()))
            .filter_map(|pair| match split_pair(pair) {
                (n, Some(_)) => name_text(n),
                (_, None) => None,
            })
            .filter(|n| n.starts_with(&self.login_prefix))
            .map(str::to_string)
            .collect();
        if names.len() < max {
            return Vec::new();
        }
        names.iter().map(|n| self.clear_login_named(n)).collect()
    }

    // --- The sign-in loop counter.

    /// The sealed trips counter, if present and within the window at `now`.
    pub fn loop_trips<T: DeserializeOwned>(&self, req: &RequestHeader) -> Option<T> {
        self.sealed(req, &self.loop_name)
    }

    pub fn set_loop_trips<T: Serialize>(&self, trips: &T) -> String {
        let sealed = self.sealer.seal(&self.loop_name, trips).unwrap_or_default();
        self.build(&self.loop_name, &sealed, "/", Some(LOOP_WINDOW))
    }

    pub fn clear_loop_trips(&self) -> String {
        self.build(&self.loop_name, "", "/", Some(Duration::ZERO))
    }

    /// When this browser last completed a sign-in, if it did within the window.
    pub fn sign_in_done(&self, req: &RequestHeader) -> Option<u64> {
        self.sealed(req, &self.done_name)
    }

    pub fn set_sign_in_done(&self, at: u64) -> Option<String> {
        let sealed = self.sealer.seal(&self.done_name, &at)?;
        Some(self.build(&self.done_name, &sealed, "/", Some(LOOP_WINDOW)))
    }

    pub fn clear_sign_in_done(&self) -> String {
        self.build(&self.done_name, "", "/", Some(Duration::ZERO))
    }

    // --- Forms kept across a sign-in (`preserve_post`).

    /// The forms this browser has kept (sealed list), if any.
    pub fn kept_posts<T: DeserializeOwned>(&self, req: &RequestHeader) -> Option<T> {
        self.sealed(req, &self.post_name)
    }

    pub fn set_kept_posts<T: Serialize>(&self, list: &T, ttl: Duration) -> Option<String> {
        let sealed = self.sealer.seal(&self.post_name, list)?;
        Some(self.build(&self.post_name, &sealed, "/", Some(ttl)))
    }

    /// The form the browser is sending back now (set by the replay page for a minute).
    pub fn replay<T: DeserializeOwned>(&self, req: &RequestHeader) -> Option<T> {
        self.sealed(req, &self.replay_name)
    }

    pub fn set_replay<T: Serialize>(&self, value: &T, ttl: Duration) -> Option<String> {
        let sealed = self.sealer.seal(&self.replay_name, value)?;
        Some(self.build(&self.replay_name, &sealed, "/", Some(ttl)))
    }

    pub fn clear_replay(&self) -> String {
        self.build(&self.replay_name, "", "/", Some(Duration::ZERO))
    }

    // --- The remembered home realm (`home_realm.remember`).

    /// The domain this browser typed last, if remembered within `ttl`.
    pub fn realm(&self, req: &RequestHeader, ttl: Duration) -> Option<String> {
        let (domain, at): (String, u64) = self.sealed(req, &self.realm_name)?;
        (now_secs().saturating_sub(at) < ttl.as_secs()).then_some(domain)
    }

    pub fn set_realm(&self, domain: &str, ttl: Duration) -> Option<String> {
        let sealed = self.sealer.seal(&self.realm_name, &(domain, now_secs()))?;
        Some(self.build(&self.realm_name, &sealed, "/", Some(ttl)))
    }

    pub fn clear_realm(&self) -> String {
        self.build(&self.realm_name, "", "/", Some(Duration::ZERO))
    }

    // --- Handing a session to another served host.

    /// The binding nonce this browser holds on this host, if any.
    pub fn handoff_binding<'a>(&'a self, req: &'a RequestHeader) -> impl Iterator<Item = &'a str> {
        values(req, &self.binding_name)
    }

    pub fn set_handoff_binding(&self, nonce: &str) -> String {
        self.build(&self.binding_name, nonce, "/", Some(LOGIN_TTL))
    }

    pub fn seal_handoff<T: Serialize>(&self, value: &T) -> Option<String> {
        self.sealer.seal(&self.handoff_name, value)
    }

    pub fn open_handoff<T: DeserializeOwned>(&self, code: &str) -> Option<T> {
        self.sealer.open(&self.handoff_name, code)
    }

    // --- Sign-out confirmation tokens (a form field, sealed like a cookie).

    pub fn seal_sign_out<T: Serialize>(&self, value: &T) -> Option<String> {
        self.sealer.seal(&self.sign_out_name, value)
    }

    pub fn open_sign_out<T: DeserializeOwned>(&self, token: &str) -> Option<T> {
        self.sealer.open(&self.sign_out_name, token)
    }

    // --- What the upstream receives.

    /// Removes the gateway's cookies from the request the upstream receives: every pair whose
    /// name is one of ours goes, the others stay byte for byte (a header that is not UTF-8
    /// too: a pair is split at `;` in any encoding, and none of our names is anything but
    /// ASCII).
    pub fn keep_from_upstream(&self, upstream: &mut RequestHeader) -> pingora::Result<()> {
        let mut kept: Option<Vec<u8>> = None;
        let mut ours = false;
        for h in upstream.headers.get_all(http::header::COOKIE).iter() {
            ours |= keep_foreign(h.as_bytes(), |n| self.is_own(n), &mut kept);
        }
        if !ours {
            return Ok(());
        }
        upstream.remove_header(&http::header::COOKIE);
        // Pieces of valid header values joined with "; ": valid.
        if let Some(v) =
            kept.and_then(|k| http::HeaderValue::from_maybe_shared(Bytes::from(k)).ok())
        {
            upstream.insert_header(http::header::COOKIE, v)?;
        }
        Ok(())
    }

    // --- Attributes.

    /// A sealed value of cookie `name` that opens, if the request carries one.
    fn sealed<T: DeserializeOwned>(&self, req: &RequestHeader, name: &str) -> Option<T> {
        values(req, name).find_map(|v| self.sealer.open::<T>(name, v))
    }

    /// A cookie that must come back on a cross-site POST (SAML's ACS is POSTed from the IdP's
    /// origin, where SameSite=Lax cookies are not sent): SameSite=None, which browsers accept
    /// only with Secure. Over plain http (demo, tests) it stays Lax.
    pub fn cross_site(
        &self,
        name: &str,
        value: &str,
        path: &str,
        max_age: Option<Duration>,
    ) -> String {
        let mut c = Cookie::parse(self.build(name, value, path, max_age)).map(|c| c.into_owned());
        match (&mut c, self.secure) {
            (Ok(c), true) => {
                c.set_same_site(SameSite::None);
                c.to_string()
            }
            _ => self.build(name, value, path, max_age),
        }
    }

    /// A `Set-Cookie` value with the gateway's attributes (HttpOnly, SameSite=Lax, Secure as
    /// configured).
    pub fn build(&self, name: &str, value: &str, path: &str, max_age: Option<Duration>) -> String {
        let mut c = Cookie::new(name.to_string(), value.to_string());
        c.set_path(path.to_string());
        c.set_http_only(true);
        c.set_secure(self.secure);
        c.set_same_site(SameSite::Lax);
        if let Some(age) = max_age {
            c.set_max_age(cookie::time::Duration::seconds(age.as_secs() as i64));
        }
        c.to_string()
    }
}

/// Every value of cookie `name` across every `Cookie` header of the request (at most 8: each
/// is tried in turn, so a planted cookie cannot hide the real one).
pub(crate) fn values<'a>(req: &'a RequestHeader, name: &'a str) -> impl Iterator<Item = &'a str> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(move |h| all_cookies(h.as_bytes(), name))
        .take(MAX_VALUES)
}

/// Every value of cookie `name` in one `Cookie` header, in order (a sibling subdomain may
/// plant a cookie of the same name: each is tried, not just the first). Read pair by pair: a
/// sibling app's cookie that is not ASCII, or not even UTF-8, does not hide the session.
pub(crate) fn all_cookies<'a>(header: &'a [u8], name: &'a str) -> impl Iterator<Item = &'a str> {
    pairs(header).filter_map(move |pair| {
        let (n, v) = split_pair(pair);
        let v = v?;
        if !is_named(n, name) {
            return None;
        }
        Some(unquoted(std::str::from_utf8(v).ok()?.trim()))
    })
}

/// `name_text(n) == Some(name)`, without reading `n` as text when it is `name` byte for byte
/// or too short to become it by trimming.
fn is_named(n: &[u8], name: &str) -> bool {
    n == name.as_bytes() || (n.len() > name.len() && name_text(n) == Some(name))
}

/// `v.trim_matches('"')`, byte by byte (`"` is ASCII, so the cuts are character boundaries).
fn unquoted(v: &str) -> &str {
    let b = v.as_bytes();
    let start = b.iter().position(|c| *c != b'"').unwrap_or(b.len());
    let end = b.iter().rposition(|c| *c != b'"').map_or(start, |i| i + 1);
    v.get(start..end).unwrap_or("")
}

/// The `name=value` pairs of one `Cookie` header: split at `;` (found with `memchr`, many
/// bytes at a time: a cookie-store session is ~1.4 KB), ASCII white space trimmed, empty
/// ones skipped.
fn pairs(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(header);
    std::iter::from_fn(move || loop {
        let r = rest?;
        let (pair, next) = match memchr::memchr(b';', r) {
            Some(i) => (&r[..i], Some(&r[i + 1..])),
            None => (r, None),
        };
        rest = next;
        let pair = pair.trim_ascii();
        if !pair.is_empty() {
            return Some(pair);
        }
    })
}

/// A pair's name and, after the first `=`, its value (`None`: no `=`).
fn split_pair(pair: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr::memchr(b'=', pair) {
        Some(i) => (&pair[..i], Some(&pair[i + 1..])),
        None => (pair, None),
    }
}

/// A cookie name as text, trimmed of any white space (`None`: not UTF-8, so none of ours).
fn name_text(n: &[u8]) -> Option<&str> {
    std::str::from_utf8(n).ok().map(str::trim)
}

/// The first value of cookie `name` (the tests' view of `all_cookies`).
#[cfg(test)]
fn find_cookie<'a>(header: &'a str, name: &'a str) -> Option<&'a str> {
    all_cookies(header.as_bytes(), name).next()
}

/// Rewrites the `Cookie` header without the gateway's own cookies, so the session never
/// reaches the upstream. Returns the new header value (None = remove the header). (The
/// tests' view of `keep_foreign`.)
#[cfg(test)]
fn without_cookies(cookie_header: &str, is_ours: impl Fn(&str) -> bool) -> Option<String> {
    let mut kept = None;
    keep_foreign(cookie_header.as_bytes(), is_ours, &mut kept);
    kept.map(|k| String::from_utf8_lossy(&k).into_owned())
}

/// Appends the cookies of `header` that are not ours to `kept` ("; "-separated, allocated
/// only when there is one); returns whether the header held one of ours.
fn keep_foreign(header: &[u8], is_ours: impl Fn(&str) -> bool, kept: &mut Option<Vec<u8>>) -> bool {
    let mut ours = false;
    for pair in pairs(header) {
        if name_text(split_pair(pair).0).is_some_and(&is_ours) {
            ours = true;
            continue;
        }
        match kept {
            Some(k) => {
                k.extend_from_slice(b"; ");
                k.extend_from_slice(pair);
            }
            None => *kept = Some(pair.to_vec()),
        }
    }
    ours
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::Secret;
    use crate::session::StoreKind;

    fn cfg(secure: bool) -> SessionConfig {
        SessionConfig {
            cookie_name: "sess".into(),
            lifetime: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(600),
            lifecycle: Default::default(),
            secure,
            secret: Secret("k".repeat(32)),
            store: StoreKind::Cookie,
            max_sessions: 10,
            cookie_domain: None,
            redis: None,
        }
    }

    #[test]
    fn cross_site_cookie_is_samesite_none_only_when_secure() {
        let secure = Cookies::new(&cfg(true)).unwrap();
        let c = secure.cross_site("n", "v", "/p/", Some(Duration::from_secs(60)));
        assert!(
            c.contains("SameSite=None") && c.contains("Secure") && c.contains("HttpOnly"),
            "{c}"
        );
        let plain = Cookies::new(&cfg(false)).unwrap();
        let c = plain.cross_site("n", "v", "/p/", None);
        assert!(c.contains("SameSite=Lax") && !c.contains("Secure"), "{c}");
    }

    #[test]
    fn handoff_binding_cannot_be_planted_by_a_sibling_over_https() {
        let secure = Cookies::new(&cfg(true)).unwrap();
        let c = secure.set_handoff_binding("nonce");
        assert!(c.starts_with("__Host-sess_handoff=nonce"), "{c}");
        assert!(
            c.contains("Path=/") && c.contains("Secure") && !c.contains("Domain"),
            "{c}"
        );
        assert!(secure.is_own("__Host-sess_handoff"));
        let mut with_domain = cfg(true);
        with_domain.cookie_domain = Some("example.com".into());
        let shared = Cookies::new(&with_domain).unwrap();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("host", "app.example.com").unwrap();
        assert!(shared.set_session("v", &req).contains("Domain=example.com"));
        req.insert_header("host", "other.test").unwrap();
        assert!(!shared.set_session("v", &req).contains("Domain"));
        req.insert_header("host", "evilexample.com").unwrap();
        assert!(!shared.clear_session(&req).contains("Domain"));
    }

    #[test]
    fn name_is_bound_into_the_seal() {
        let s = Sealer::new(&[7u8; 32]).unwrap();
        let v = s.seal("a", &"x").unwrap();
        assert_eq!(s.open::<String>("a", &v).as_deref(), Some("x"));
        assert!(s.open::<String>("b", &v).is_none());
    }

    /// The byte-level name match and quote trimming say what the text functions say.
    #[test]
    fn names_and_quotes_read_as_the_text_reads_them() {
        let parts = ["", "sess", "s", "\"", " ", "\t", "\u{a0}", "x", "\u{e9}"];
        let mut all = vec![String::new()];
        for _ in 0..3 {
            all = all
                .iter()
                .flat_map(|a| parts.iter().map(move |p| format!("{a}{p}")))
                .collect();
        }
        for t in &all {
            let by_text = name_text(t.as_bytes()) == Some("sess");
            assert_eq!(is_named(t.as_bytes(), "sess"), by_text, "{t:?}");
            assert_eq!(unquoted(t), t.trim_matches('"'), "{t:?}");
        }
        assert!(!is_named(b"\xffsess", "sess"), "not UTF-8: not ours");
    }

    #[test]
    fn finds_cookies() {
        assert_eq!(find_cookie("a=1; sess=xyz; b=2", "sess"), Some("xyz"));
        assert_eq!(find_cookie("a=1;sess=\"q\"", "sess"), Some("q"));
        assert_eq!(find_cookie("xsess=1", "sess"), None);
        let all: Vec<_> = all_cookies(b"sess=bad; a=1; sess=good", "sess").collect();
        assert_eq!(all, ["bad", "good"]);
    }

    #[test]
    fn a_sibling_s_non_ascii_cookie_does_not_hide_the_session() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        let header = "lang=\u{e9}t\u{e9}; sess=abc; x=1".as_bytes();
        let value = http::HeaderValue::from_bytes(header).unwrap();
        req.insert_header(http::header::COOKIE, value).unwrap();
        assert_eq!(values(&req, "sess").collect::<Vec<_>>(), ["abc"]);
        // Not UTF-8 at all in another pair: the session is still read; a value that is not
        // UTF-8 is no value; a name with white space around it (any kind) is the name.
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        let value = http::HeaderValue::from_bytes(
            b"lang=\xff; sess=abc; sess=\xfe\xff;\xc2\xa0sess =\"q\"",
        )
        .unwrap();
        req.insert_header(http::header::COOKIE, value).unwrap();
        assert_eq!(values(&req, "sess").collect::<Vec<_>>(), ["abc", "q"]);
    }

    #[test]
    fn removes_own_cookies() {
        let ours = |n: &str| n == "authgate_session" || n.starts_with("authgate_login_");
        assert_eq!(
            without_cookies("a=1; authgate_session=xyz; b=2", ours).as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(
            without_cookies("authgate_session=x;authgate_login_ab=y", ours),
            None
        );
    }

    #[test]
    fn own_cookies_are_kept_from_the_upstream() {
        let c = Cookies::new(&cfg(true)).unwrap();
        let ours = |n: &str| c.is_own(n);
        assert_eq!(
            without_cookies("a=1; sess=xyz; b=2; sess_loop=1; sess_login_abc=2", ours).as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(without_cookies("sess=x;sess_login_ab=y", ours), None);
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("cookie", "keep=1; sess=v").unwrap();
        req.append_header("cookie", "sess_done=2").unwrap();
        c.keep_from_upstream(&mut req).unwrap();
        let all: Vec<_> = req.headers.get_all("cookie").iter().collect();
        assert_eq!(all, ["keep=1"]);
        // A header that is not UTF-8: ours go by name, the other pairs stay byte for byte
        // (also a name of ours spelled with non-ASCII white space around it).
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        let odd = http::HeaderValue::from_bytes(b"x=\xff; sess=v;\xc2\xa0sess_login_a=1; y=\xfe")
            .unwrap();
        req.append_header("cookie", odd).unwrap();
        req.append_header("cookie", "keep=1").unwrap();
        c.keep_from_upstream(&mut req).unwrap();
        let all: Vec<_> = req
            .headers
            .get_all("cookie")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        assert_eq!(all, [&b"x=\xff; y=\xfe; keep=1"[..]]);
        // Not UTF-8 and none of ours: left as the client sent it.
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("cookie", http::HeaderValue::from_bytes(b"x=\xff").unwrap())
            .unwrap();
        c.keep_from_upstream(&mut req).unwrap();
        assert_eq!(req.headers["cookie"].as_bytes(), b"x=\xff");
    }
}
