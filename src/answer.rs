//! What the gateway answers itself (instead of proxying), and the one place that maps every
//! refusal, denial and failure to the status and page (or JSON) the user sees.

use std::borrow::Cow;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::canonical::Unreadable;
use crate::canonical::RESERVED_PREFIX;
use crate::identity::Identity;
use crate::idp::saml_verify::AssertionRejection;
use crate::idp::IdpError;
use crate::pages;
use crate::policy::Deny;

/// A complete response the gateway writes: always with `Content-Length` (pingora #498) and
/// `Cache-Control: no-store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(Cow<'static, str>, String)>,
    /// Who was refused (user key, provider), for the access log; never sent.
    pub who: Option<(String, std::sync::Arc<str>)>,
}

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

impl Answer {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type,
            body,
            headers: Vec::new(),
            who: None,
        }
    }

    /// An empty `text/plain` answer (forward-auth's yes).
    pub fn empty(status: u16) -> Self {
        Self::new(status, "text/plain", Vec::new())
    }

    /// A 302 to `location`.
    pub fn redirect(location: String) -> Self {
        Self::empty(302).header("location", location)
    }

    /// A 303 to `location` (after a POST).
    pub fn see_other(location: String) -> Self {
        Self::empty(303).header("location", location)
    }

    /// A page for people.
    pub fn page(status: u16, title: &str, message: &str, detail: Option<&str>) -> Self {
        Self::page_with(status, title, message, detail, None)
    }

    /// A page with an action button (`href`, label).
    pub fn page_with(
        status: u16,
        title: &str,
        message: &str,
        detail: Option<&str>,
        action: Option<(&str, &str)>,
    ) -> Self {
        let html = pages::page(title, message, detail, action);
        Self::new(status, HTML, html.into_bytes())
    }

    /// An HTML document built elsewhere (the sign-out confirmation).
    pub fn html(status: u16, html: String) -> Self {
        Self::new(status, HTML, html.into_bytes())
    }

    /// `{"error": …, "message": …}` for programs.
    pub fn json_error(status: u16, error: &str, message: &str) -> Self {
        let body = serde_json::json!({ "error": error, "message": message }).to_string();
        Self::new(status, JSON, body.into_bytes())
    }

    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self::new(status, JSON, body.to_string().into_bytes())
    }

    pub fn header(mut self, name: impl Into<Cow<'static, str>>, value: String) -> Self {
        self.headers.push((name.into(), value));
        self
    }

    pub fn cookie(self, set_cookie: String) -> Self {
        self.header("set-cookie", set_cookie)
    }

    pub fn cookies(mut self, set_cookies: impl IntoIterator<Item = String>) -> Self {
        self.headers
            .extend(set_cookies.into_iter().map(|c| ("set-cookie".into(), c)));
        self
    }

    /// The reason this answer names, for the access log: a JSON body's `error`, a page's
    /// `Reason: …` line, `redirect` for a redirect.
    pub fn reason(&self) -> Option<String> {
        if self.content_type == JSON {
            let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
            return v.get("error")?.as_str().map(str::to_string);
        }
        let body = std::str::from_utf8(&self.body).ok()?;
        if let Some(i) = body.find("Reason: ") {
            let rest = &body[i + "Reason: ".len()..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '<' || c == '&')
                .unwrap_or(rest.len());
            return Some(rest[..end].chars().take(128).collect());
        }
        self.header_value("location")
            .filter(|_| (300..400).contains(&self.status))
            .map(|_| "redirect".to_string())
    }

    /// The first value of header `name`, if set.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Writes the answer to the client.
    pub async fn write(self, session: &mut Session) -> pingora::Result<()> {
        let mut resp = ResponseHeader::build(self.status, Some(6 + self.headers.len()))?;
        resp.insert_header("content-length", self.body.len().to_string())?;
        if self.header_value("cache-control").is_none() {
            resp.insert_header("cache-control", "no-store")?;
        }
        resp.insert_header("content-type", self.content_type)?;
        let own_csp = self.header_value("content-security-policy").is_some();
        if self.content_type.starts_with("text/html") && !own_csp {
            resp.insert_header(
                "content-security-policy",
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            )?;
        }
        if self.content_type.starts_with("text/html") {
            resp.insert_header("referrer-policy", "no-referrer")?;
        }
        for (k, v) in &self.headers {
            resp.append_header(k.to_string(), v.as_str())?;
        }
        let head_only = session.req_header().method == http::Method::HEAD || self.body.is_empty();
        session
            .write_response_header(Box::new(resp), head_only)
            .await?;
        if !head_only {
            session
                .write_response_body(Some(Bytes::from(self.body)), true)
                .await?;
        }
        Ok(())
    }

    // --- The mapping of what went wrong to what is seen.

    pub fn not_found() -> Self {
        Self::page(404, "Not found", "There is no such gateway page.", None)
    }

    pub fn unknown_provider() -> Self {
        Self::page(
            404,
            "Unknown identity provider",
            "No provider by that name is configured.",
            None,
        )
    }

    /// A request the gateway cannot read unambiguously.
    pub fn refused(why: Unreadable) -> Self {
        let message = if why.is_host() {
            "The request's host is missing, repeated, malformed or contradicts its target."
        } else {
            "The request path contains a form that web servers read in different ways, so the gateway does not pass it on."
        };
        let detail = format!("Reason: {}", why.label());
        Self::page(400, "Bad request", message, Some(&detail))
    }

    /// A failed sign-in: what happened, and a way to start again at `restart`.
    pub fn sign_in_failed(status: u16, message: &str, detail: Option<&str>, restart: &str) -> Self {
        Self::page_with(
            status,
            "Sign-in failed",
            message,
            detail,
            Some((restart, "Sign in again")),
        )
    }

    /// An OIDC sign-in that could not be verified: the IdP's fault (502) or the response's.
    pub fn sign_in_error(e: &IdpError, restart: &str) -> Self {
        let status = match e {
            IdpError::NotReady | IdpError::Discovery(_) => 502,
            IdpError::Credential(_) => 503,
            _ => 400,
        };
        let message = "The sign-in could not be verified. Start again; if it keeps failing, send the details below to your administrator.";
        Self::sign_in_failed(status, message, Some(&e.to_string()), restart)
    }

    /// A SAML response that could not be accepted: the IdP's own refusal is a 403.
    pub fn saml_rejected(rejection: &AssertionRejection, restart: &str) -> Self {
        let status = if matches!(rejection, AssertionRejection::IdpStatus { .. }) {
            403
        } else {
            400
        };
        let message = "The identity provider's answer could not be accepted. Start again; if it keeps failing, send the details below to your administrator.";
        Self::sign_in_failed(status, message, Some(&rejection.to_string()), restart)
    }

    /// The IdP vouched for the user, but the gateway will not let them in.
    pub fn sign_in_denied(deny: Deny, why: &str) -> Self {
        let (title, message) = deny.explain();
        let detail = format!("Reason: {}\n{why}", deny.label());
        Self::page(deny.status(), title, message, Some(&detail))
    }

    /// The IdP cannot be reached to start a sign-in.
    pub fn sign_in_unavailable(e: &IdpError) -> Self {
        Self::page(
            503,
            "Sign-in temporarily unavailable",
            "The identity provider cannot be reached right now. Try again in a minute; if it persists, tell your administrator.",
            Some(&e.to_string()),
        )
    }

    /// The session store (Redis) cannot be reached: no sign-in can start or finish, and a
    /// session this replica has not read recently cannot be checked. 503, never a redirect
    /// to the IdP (the user could not get a session at the end of it anyway).
    pub fn store_unavailable(html: bool) -> Self {
        let answer = if html {
            Self::page(
                503,
                "Temporarily unavailable",
                "The gateway cannot reach its session store right now, so it cannot check or start sessions. Try again in a minute; if it persists, tell your administrator.",
                Some("Reason: store_unavailable"),
            )
        } else {
            Self::json_error(
                503,
                "store_unavailable",
                "the session store cannot be reached; try again shortly",
            )
        };
        answer.header("retry-after", "5".to_string())
    }

    /// The session ended while in use (its re-check: the IdP refused, or could not be reached
    /// for too long): a page with a sign-in link for people, a 401 for programs. Never a
    /// redirect to the IdP from here, so a refusing IdP cannot start a loop.
    pub fn session_expired(html: bool, sign_in: &str) -> Self {
        if html {
            return Self::page_with(
                401,
                "Your sign-in has expired",
                "Your identity provider no longer vouches for this session (you may have been signed out or disabled, or your access changed). Sign in again to continue.",
                Some("Reason: session_expired"),
                Some((sign_in, "Sign in again")),
            );
        }
        Self::sign_in_needed(
            "session_expired",
            "the session ended; sign in again",
            sign_in,
        )
    }

    /// A program's call on a session that must be confirmed with its identity provider first
    /// (a SAML session due for its re-check): a top-level navigation to `sign_in` does it.
    pub fn reauthentication_required(sign_in: &str) -> Self {
        Self::sign_in_needed(
            "reauthentication_required",
            "the session must be confirmed with the identity provider; navigate to sign_in",
            sign_in,
        )
    }

    /// A route's policy said no: a page for people (`html`), JSON for programs.
    pub fn forbidden(deny: Deny, identity: &Identity, route: &str, html: bool) -> Self {
        let mut answer = Self::forbidden_answer(deny, identity, route, html);
        answer.who = Some((identity.user.to_string(), identity.provider.clone()));
        answer
    }

    fn forbidden_answer(deny: Deny, identity: &Identity, route: &str, html: bool) -> Self {
        let (title, message) = deny.explain();
        if !html {
            return Self::json_error(403, deny.label(), message);
        }
        let who = identity
            .email
            .as_deref()
            .or(identity.name.as_deref())
            .unwrap_or(&identity.user);
        let detail = format!(
            "Reason: {}\nSigned in as: {who}\nUser ID: {}\nApplication: {route}",
            deny.label(),
            identity.user,
        );
        let sign_out = format!("{RESERVED_PREFIX}/sign_out");
        Self::page_with(
            403,
            title,
            message,
            Some(&detail),
            Some((&sign_out, "Sign in as someone else")),
        )
    }

    /// A bearer token that failed a check: RFC 6750's challenge, the reason in both places.
    pub fn invalid_token(e: &IdpError) -> Self {
        let message = e.to_string();
        let challenge = format!(
            "Bearer realm=\"authgate\", error=\"invalid_token\", error_description=\"{}\"",
            message.replace(['"', '\\'], "'")
        );
        Self::json(
            401,
            serde_json::json!({"error": "invalid_token", "message": message}),
        )
        .header("www-authenticate", challenge)
    }

    /// No session on an API call: 401, with where to sign in.
    pub fn unauthenticated(sign_in: Option<String>) -> Self {
        match sign_in {
            Some(sign_in) => Self::sign_in_needed(
                "unauthenticated",
                "no valid session; sign in first",
                &sign_in,
            ),
            None => Self::json_error(401, "unauthenticated", "no valid session; sign in first"),
        }
    }

    /// A program's 401 that says why and where a browser would go to sign in.
    fn sign_in_needed(error: &str, message: &str, sign_in: &str) -> Self {
        Self::json(
            401,
            serde_json::json!({"error": error, "message": message, "sign_in": sign_in}),
        )
        .header("www-authenticate", "Session realm=\"authgate\"".to_string())
    }
}
