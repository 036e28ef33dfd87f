//! Talking to the gateway as people and programs do: a browser with a cookie jar that
//! signs in, the API client, raw requests, the Prometheus scraper and HTML helpers.
#![allow(unused_imports)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::redirect::Policy;
use serde_json::Value;

use super::*;

/// A cookie-keeping HTTP client that does not follow redirects by itself.
pub struct Browser {
    pub client: Client,
    pub jar: Arc<Jar>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        let jar = Arc::new(Jar::default());
        let client = Client::builder()
            .redirect(Policy::none())
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Self { client, jar }
    }

    /// A browser whose resolver sends each (host, address) to that address (the port is the
    /// URL's): several test host names on loopback.
    pub fn resolving(hosts: &[(&str, std::net::SocketAddr)]) -> Self {
        let jar = Arc::new(Jar::default());
        let mut b = Client::builder()
            .redirect(Policy::none())
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(20));
        for (host, addr) in hosts {
            b = b.resolve(host, *addr);
        }
        Self {
            client: b.build().expect("client"),
            jar,
        }
    }

    /// A navigation: `Accept: text/html`.
    pub fn get(&self, url: &str) -> Response {
        self.client
            .get(url)
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// Follows redirects (as a browser would) until a non-redirect answer; returns it and
    /// the URL it came from.
    pub fn follow(&self, start: &str) -> (Response, String) {
        let mut url = start.to_string();
        for _ in 0..15 {
            let r = self.get(&url);
            if !r.status().is_redirection() {
                return (r, url);
            }
            let loc = r
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .expect("redirect has a location")
                .to_string();
            url = reqwest::Url::parse(&url)
                .and_then(|base| base.join(&loc))
                .expect("location resolves")
                .to_string();
        }
        panic!("too many redirects from {start}");
    }

    /// Follows the sign-in from `start` through the provider's login form as `user`, up to
    /// the gateway's callback (not followed). Returns the callback URL.
    pub fn login_until_callback(&self, start: &str, user: &str) -> String {
        self.login_with_code(start, user, None)
    }

    /// `login_until_callback`, giving `code` when the provider asks for a second factor
    /// (`None`: the second-factor step is left out, as a user without one does).
    pub fn login_with_code(&self, start: &str, user: &str, code: Option<&str>) -> String {
        let mut url = start.to_string();
        // A page a form post answered with (the second-factor step), not yet filled in.
        let mut in_hand: Option<(reqwest::StatusCode, String)> = None;
        for _ in 0..20 {
            let here = url.clone();
            let (status, page) = match in_hand.take() {
                Some(p) => p,
                None => {
                    let r = self.get(&url);
                    if r.status().is_redirection() {
                        url = join_location(&here, &r);
                        if url.contains("/_authgate/callback/") {
                            return url;
                        }
                        continue;
                    }
                    (r.status(), r.text().unwrap_or_default())
                }
            };
            let action = form_action(&page)
                .unwrap_or_else(|| panic!("no form on {here} ({status}):\n{page}"));
            let action = reqwest::Url::parse(&here).unwrap().join(&action).unwrap();
            // The provider's own auto-posted forms (another account signing in ends the
            // provider's session of the first: a logout confirmation) carry their values.
            let xsrf = input_value(&page, "xsrf");
            let form: Vec<(&str, &str)> = if let Some(x) = xsrf.as_deref() {
                vec![("xsrf", x), ("logout", "yes")]
            } else if page.contains("name=\"otp\"") {
                let mut f = vec![("prompt", "login"), ("login", user), ("password", "any")];
                // An empty code: the second factor left out.
                f.push(("otp", code.unwrap_or("")));
                f
            } else if page.contains("name=\"login\"") {
                vec![("prompt", "login"), ("login", user), ("password", "any")]
            } else {
                vec![("prompt", "consent")]
            };
            let r = self
                .client
                .post(action)
                .form(&form)
                .send()
                .expect("post form");
            if r.status() == 200 {
                in_hand = Some((r.status(), r.text().unwrap_or_default()));
                continue;
            }
            let status = r.status();
            assert!(
                status.is_redirection(),
                "form post answered {status}: {}",
                r.text().unwrap_or_default()
            );
            url = join_location(&here, &r);
            if url.contains("/_authgate/callback/") {
                return url;
            }
        }
        panic!("sign-in did not reach the callback (last at {url})");
    }

    /// Full sign-in: start at `start` (a protected URL), log in as `user`, complete the
    /// callback, and return the final response and URL.
    pub fn sign_in(&self, start: &str, user: &str) -> (Response, String) {
        let callback = self.login_until_callback(start, user);
        self.follow(&callback)
    }

    /// Signs out as a person does: GET the confirmation page, POST its form (with its token).
    /// Returns the POST's answer (a 303 to the provider or the signed-out page).
    pub fn sign_out(&self, gw: &str) -> Response {
        let page = self.get(&format!("{gw}/_authgate/sign_out"));
        assert_eq!(page.status(), 200, "sign-out confirmation page");
        let html = page.text().unwrap_or_default();
        let action = form_action(&html).expect("sign-out form");
        let token = input_value(&html, "token").expect("sign-out token");
        let r = self
            .client
            .post(format!("{gw}{action}"))
            .header("origin", gw)
            .form(&[("token", token)])
            .send()
            .expect("post sign-out");
        assert_eq!(r.status(), 303, "sign-out answer");
        r
    }

    /// An API call with this browser's cookies: `Accept: application/json`, so the upstream
    /// echo answers in JSON.
    pub fn api_get(&self, url: &str) -> Response {
        self.client
            .get(url)
            .header("accept", "application/json")
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// The gateway session cookie's value, if the jar holds one for `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = reqwest::Url::parse(url).ok()?;
        let header = self.jar.cookies(&url)?;
        let header = header.to_str().ok()?.to_string();
        header.split(';').find_map(|p| {
            let (n, v) = p.trim().split_once('=')?;
            (n == name).then(|| v.to_string())
        })
    }
}

/// The absolute URL a redirect from `here` leads to.
fn join_location(here: &str, r: &Response) -> String {
    let loc = r.headers()["location"].to_str().expect("location");
    reqwest::Url::parse(here)
        .unwrap()
        .join(loc)
        .unwrap()
        .to_string()
}

/// The action of the first form on a page (the provider renders it; never build it).
pub fn form_action(html: &str) -> Option<String> {
    let i = html.find("<form")?;
    let rest = &html[i..];
    let a = rest.find("action=\"")? + 8;
    let end = rest[a..].find('"')?;
    Some(rest[a..a + end].replace("&amp;", "&"))
}

/// The upstream's echo of a request, as JSON.
/// A redirect's location, made absolute against the URL it answered.
pub fn location(r: &Response) -> String {
    let loc = r.headers()["location"].to_str().expect("location");
    r.url().join(loc).expect("location resolves").to_string()
}

pub fn echo(r: Response) -> Value {
    let status = r.status();
    let text = r.text().unwrap_or_default();
    serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("not an upstream echo ({status}): {text}"))
}

/// An API GET presenting `session` as the gateway's session cookie (a copied, minted or
/// tampered value); nothing else is kept between calls.
pub fn get_with_session(url: &str, session: &str) -> Response {
    api()
        .get(url)
        .header("cookie", format!("authgate_session={session}"))
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Parses the Prometheus text exposition format strictly enough to catch malformed output:
/// every line is a comment (`# HELP`/`# TYPE`) or `name{labels} value`.
pub fn scrape(admin: &str) -> HashMap<String, f64> {
    let text = api()
        .get(format!("{admin}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let mut out = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                name.starts_with("authgate_"),
                "metric without the authgate_ prefix: {line}"
            );
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter without _total: {line}");
            }
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        let base = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            typed.contains(name) || typed.contains(base),
            "sample before its TYPE: {line}"
        );
        if let Some(labels) = series.split_once('{').map(|(_, l)| l) {
            assert!(labels.ends_with('}'), "{line}");
        }
        out.insert(series.to_string(), value);
    }
    out
}

/// One series' value in a scrape (0 when absent).
pub fn metric(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

/// A plain API client (no cookies kept, no redirects followed).
pub fn api() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Sends a request with an exact, unnormalized request target (HTTP clients resolve `..`
/// themselves) and returns the status code and the whole response.
pub fn raw_get(base: &str, target: &str) -> (u16, String) {
    raw_request(base, "GET", target, "")
}

/// `raw_get` with another method and `extra` header lines (each ending in CRLF).
pub fn raw_request(base: &str, method: &str, target: &str, extra: &str) -> (u16, String) {
    use std::io::Read;
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n{extra}Connection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

/// The value of a named (hidden) input in an HTML form.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let i = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..i].rfind('<')?;
    let tag_end = i + html[i..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + 7;
    let end = tag[v..].find('"')?;
    Some(html_unescape(&tag[v..v + end]))
}

pub fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#039;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl Browser {
    /// Drives SimpleSAMLphp from `start` (a gateway URL or an IdP-initiated IdP URL) through
    /// its login form as `user`, up to the auto-POST page. Returns (ACS URL, SAMLResponse,
    /// RelayState) without posting them.
    pub fn saml_login_until_post(
        &self,
        start: &str,
        user: &str,
        password: &str,
    ) -> (String, String, String) {
        let (r, url) = self.follow(start);
        let page = r.text().unwrap_or_default();
        let auth_state = input_value(&page, "AuthState")
            .unwrap_or_else(|| panic!("no login form at {url}:\n{page}"));
        let action = form_action(&page)
            .filter(|a| !a.is_empty() && a != "?")
            .unwrap_or_else(|| url.clone());
        let action = reqwest::Url::parse(&url).unwrap().join(&action).unwrap();
        let r = self
            .client
            .post(action.clone())
            .form(&[
                ("username", user),
                ("password", password),
                ("AuthState", auth_state.as_str()),
            ])
            .send()
            .expect("post login");
        let (r, url) = if r.status().is_redirection() {
            let loc = r.headers()["location"].to_str().unwrap().to_string();
            self.follow(action.join(&loc).unwrap().as_ref())
        } else {
            (r, action.to_string())
        };
        let page = r.text().unwrap_or_default();
        let acs =
            form_action(&page).unwrap_or_else(|| panic!("no auto-POST form at {url}:\n{page}"));
        let response = input_value(&page, "SAMLResponse").expect("SAMLResponse");
        let relay = input_value(&page, "RelayState").unwrap_or_default();
        (acs, response, relay)
    }

    /// POSTs a SAMLResponse to the ACS, as the auto-POST page would.
    pub fn post_acs(&self, acs: &str, response: &str, relay: &str) -> Response {
        self.client
            .post(acs)
            .header("accept", "text/html")
            .form(&[("SAMLResponse", response), ("RelayState", relay)])
            .send()
            .expect("post to ACS")
    }
}
