//! CORS preflights per route (`routes[].cors`). A preflight carries no cookies, so a route
//! that needs a session would refuse every cross-origin call: `pass` sends it on to the
//! upstream with no identity, `answer` replies from the configured lists, `refuse` (the
//! default) treats it like any other request. Only a real preflight counts: `OPTIONS` with
//! `Origin` and `Access-Control-Request-Method`; any other `OPTIONS` needs a session.

use std::time::Duration;

use pingora::http::RequestHeader;

use crate::read::{join, Obj, Reader};

/// What a route does with a preflight.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Preflight {
    /// Like any request: a session is needed (the default).
    #[default]
    Refuse,
    /// On to the upstream, with no identity.
    Pass,
    /// Answered by the gateway from these lists.
    Answer(Box<CorsAnswer>),
}

/// `preflight: answer`'s lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsAnswer {
    /// Exact origins (`https://app.example.com`, lower case), or `*` alone.
    pub origins: Vec<String>,
    /// Upper-case methods.
    pub methods: Vec<String>,
    /// Lower-case header names.
    pub headers: Vec<String>,
    pub max_age: Duration,
    pub credentials: bool,
}

/// What the gateway does with this request.
pub enum Decision {
    /// Not a preflight, or `refuse`: on as any request.
    Continue,
    /// A preflight for the upstream, with no identity.
    Pass,
    /// The gateway's reply.
    Reply(Reply),
}

/// A preflight's reply: `204` with these headers, or `403` naming what is not allowed.
pub enum Reply {
    Allowed(Vec<(&'static str, String)>),
    Refused(String),
}

/// Longest `max_age` (Chromium caps at 2 hours, Firefox at 24).
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

fn header<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A real preflight: `OPTIONS` + `Origin` + `Access-Control-Request-Method`.
pub fn is_preflight(req: &RequestHeader) -> bool {
    is_preflight_as(&req.method, req)
}

/// `is_preflight` for a request whose original method is `method` (forward-auth: the
/// controller names it in a header).
pub fn is_preflight_as(method: &http::Method, req: &RequestHeader) -> bool {
    *method == http::Method::OPTIONS
        && req.headers.contains_key(http::header::ORIGIN)
        && req
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

impl Preflight {
    /// The decision for a request on a route with this setting (cheap for non-`OPTIONS`).
    pub fn decide(&self, req: &RequestHeader) -> Decision {
        if matches!(self, Preflight::Refuse) || !is_preflight(req) {
            return Decision::Continue;
        }
        match self {
            Preflight::Answer(a) => Decision::Reply(a.reply(req)),
            _ => Decision::Pass,
        }
    }
}

impl CorsAnswer {
    /// The `Access-Control-Allow-Origin` value for `origin`, if allowed.
    pub fn allow_origin(&self, origin: &str) -> Option<String> {
        if self.origins.iter().any(|o| o == "*") {
            return Some("*".into());
        }
        let lower = origin.to_ascii_lowercase();
        self.origins.contains(&lower).then(|| origin.to_string())
    }

    fn reply(&self, req: &RequestHeader) -> Reply {
        let origin = header(req, "origin").unwrap_or("");
        let method = header(req, "access-control-request-method").unwrap_or("");
        let asked: Vec<String> = header(req, "access-control-request-headers")
            .unwrap_or("")
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        let refused = |why: &str| {
            log::info!("CORS preflight refused ({why}) for origin {origin:?}");
            Reply::Refused(why.to_string())
        };
        let Some(allow) = self.allow_origin(origin) else {
            return refused("origin not allowed");
        };
        if !self.methods.iter().any(|m| m == method) {
            return refused("method not allowed");
        }
        if let Some(h) = asked.iter().find(|h| !self.headers.contains(h)) {
            return refused(&format!("header {h} not allowed"));
        }
        let mut h = vec![
            ("access-control-allow-origin", allow),
            ("access-control-allow-methods", self.methods.join(", ")),
            ("access-control-max-age", self.max_age.as_secs().to_string()),
            ("vary", "Origin".into()),
        ];
        if !self.headers.is_empty() {
            h.push(("access-control-allow-headers", self.headers.join(", ")));
        }
        if self.credentials {
            h.push(("access-control-allow-credentials", "true".into()));
        }
        Reply::Allowed(h)
    }
}

impl Reader<'_> {
    /// `routes[i].cors: {preflight, allowed_origins, allowed_methods, allowed_headers,
    /// max_age, allow_credentials}`.
    pub(crate) fn cors(&mut self, o: &mut Obj<'_>, path: &str) -> Preflight {
        let at = join(path, "cors");
        let v = self.get(o, "cors");
        let mut c = self.obj(&at, v);
        let mode = self.string(&mut c, "preflight");
        let origins = self.string_list(&mut c, "allowed_origins");
        let methods = self.string_list(&mut c, "allowed_methods");
        let headers = self.string_list(&mut c, "allowed_headers");
        let max_age = self.duration(&mut c, "max_age");
        let credentials = self.bool(&mut c, "allow_credentials");
        self.finish(c);
        let lists = origins.is_some()
            || methods.is_some()
            || headers.is_some()
            || max_age.is_some()
            || credentials.is_some();
        match mode.as_deref() {
            None | Some("refuse") | Some("pass") if lists => {
                self.err(&at, "allowed_origins, allowed_methods, allowed_headers, max_age and allow_credentials are for preflight: answer");
                Preflight::Refuse
            }
            None | Some("refuse") => Preflight::Refuse,
            Some("pass") => Preflight::Pass,
            Some("answer") => {
                let answer = CorsAnswer {
                    origins: self.cors_origins(&at, origins.unwrap_or_default()),
                    methods: self.cors_tokens(&at, "allowed_methods", methods, true),
                    headers: self.cors_tokens(&at, "allowed_headers", headers, false),
                    max_age: max_age.unwrap_or(Duration::from_secs(600)),
                    credentials: credentials.unwrap_or(false),
                };
                if answer.max_age > MAX_AGE {
                    self.err(join(&at, "max_age"), "at most 24h (browsers cap it lower)");
                }
                if answer.credentials && answer.origins.iter().any(|o| o == "*") {
                    self.err(join(&at, "allowed_origins"), "\"*\" cannot go with allow_credentials: true (browsers refuse it): list the origins");
                }
                Preflight::Answer(Box::new(answer))
            }
            Some(other) => {
                self.err(
                    join(&at, "preflight"),
                    format!("{other:?} is not pass, answer or refuse"),
                );
                Preflight::Refuse
            }
        }
    }

    fn cors_origins(&mut self, at: &str, list: Vec<String>) -> Vec<String> {
        let path = join(at, "allowed_origins");
        if list.is_empty() {
            self.err(&path, "preflight: answer needs the origins it allows");
        }
        let mut out = Vec::new();
        for o in list {
            if o == "*" {
                out.push(o);
                continue;
            }
            let ok = url::Url::parse(&o).ok().is_some_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.path() == "/"
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && !o.ends_with('/')
            });
            if ok {
                out.push(o.to_ascii_lowercase());
            } else {
                self.err(
                    &path,
                    format!("{o:?} is not an origin (scheme://host[:port], no path), nor \"*\""),
                );
            }
        }
        out
    }

    fn cors_tokens(
        &mut self,
        at: &str,
        key: &str,
        list: Option<Vec<String>>,
        methods: bool,
    ) -> Vec<String> {
        let path = join(at, key);
        let list = match (list, methods) {
            (Some(l), _) => l,
            (None, true) => vec!["GET".into(), "HEAD".into(), "POST".into()],
            (None, false) => Vec::new(),
        };
        let mut out = Vec::new();
        for t in list {
            let valid = match methods {
                true => http::Method::from_bytes(t.as_bytes()).is_ok(),
                false => http::HeaderName::from_bytes(t.as_bytes()).is_ok(),
            };
            if t.is_empty() || t == "*" || !valid {
                self.err(
                    &path,
                    format!("{t:?} is not a method or header name (no \"*\": list them)"),
                );
                continue;
            }
            out.push(match methods {
                true => t.to_ascii_uppercase(),
                false => t.to_ascii_lowercase(),
            });
        }
        out
    }
}
