//! The request as the gateway's decisions see it: its head, who sent it, and its body on
//! demand. `Downstream` is implemented by pingora's `Session` (the real listener) and by
//! `InProcess` (tests that drive the decision logic without sockets).

use std::net::IpAddr;

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::proxy::Session;

#[async_trait]
pub trait Downstream: Send {
    fn req(&self) -> &RequestHeader;
    fn req_mut(&mut self) -> &mut RequestHeader;
    /// The peer's address (the TCP client: maybe a proxy).
    fn peer(&self) -> Option<IpAddr>;
    /// The request body, at most `limit` bytes: `None` beyond that.
    async fn body(&mut self, limit: usize) -> pingora::Result<Option<Vec<u8>>>;
}

#[async_trait]
impl Downstream for Session {
    fn req(&self) -> &RequestHeader {
        self.req_header()
    }
    fn req_mut(&mut self) -> &mut RequestHeader {
        self.req_header_mut()
    }
    fn peer(&self) -> Option<IpAddr> {
        self.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())
    }
    async fn body(&mut self, limit: usize) -> pingora::Result<Option<Vec<u8>>> {
        let mut body = Vec::new();
        while let Some(chunk) = self.read_request_body().await? {
            body.extend_from_slice(&chunk);
            if body.len() > limit {
                return Ok(None);
            }
        }
        Ok(Some(body))
    }
}

/// A request held in memory, for driving `Gateway::admit` and the endpoints in tests.
pub struct InProcess {
    pub head: RequestHeader,
    pub peer: Option<IpAddr>,
    pub body: Vec<u8>,
}

impl InProcess {
    /// `GET target` from 127.0.0.1 with a `Host` header.
    pub fn get(host: &str, target: &str) -> Self {
        Self::new("GET", host, target)
    }

    pub fn new(method: &str, host: &str, target: &str) -> Self {
        let mut head = RequestHeader::build(method, target.as_bytes(), None)
            .unwrap_or_else(|_| RequestHeader::build("GET", b"/", None).expect("a plain head"));
        let _ = head.insert_header("host", host);
        Self {
            head,
            peer: Some(IpAddr::from([127, 0, 0, 1])),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        let _ = self.head.append_header(name.to_string(), value);
        self
    }

    pub fn form(mut self, body: &str) -> Self {
        self.body = body.as_bytes().to_vec();
        let _ = self
            .head
            .insert_header("content-type", "application/x-www-form-urlencoded");
        self
    }
}

#[async_trait]
impl Downstream for InProcess {
    fn req(&self) -> &RequestHeader {
        &self.head
    }
    fn req_mut(&mut self) -> &mut RequestHeader {
        &mut self.head
    }
    fn peer(&self) -> Option<IpAddr> {
        self.peer
    }
    async fn body(&mut self, limit: usize) -> pingora::Result<Option<Vec<u8>>> {
        Ok((self.body.len() <= limit).then(|| self.body.clone()))
    }
}

/// A form POST body, at most `limit` bytes (`None` beyond), as name/value pairs (at most 16).
pub async fn read_form(
    down: &mut dyn Downstream,
    limit: usize,
) -> pingora::Result<Option<Vec<(String, String)>>> {
    Ok(down.body(limit).await?.map(|body| {
        url::form_urlencoded::parse(&body)
            .take(16)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }))
}

/// The query's name/value pairs (at most 32).
pub fn query_pairs(req: &RequestHeader) -> Vec<(String, String)> {
    req.uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .take(32)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The first value of `name` among `pairs`.
pub fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The token of an `Authorization: Bearer` header (scheme case-insensitive, RFC 6750).
pub fn bearer_token(req: &RequestHeader) -> Option<&str> {
    let v = req
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A browser navigation (as opposed to an API/XHR call).
pub fn wants_html(req: &RequestHeader) -> bool {
    if req.method != http::Method::GET && req.method != http::Method::HEAD {
        return false;
    }
    let h = &req.headers;
    if h.contains_key("x-requested-with") {
        return false;
    }
    if let Some(mode) = h.get("sec-fetch-mode").and_then(|v| v.to_str().ok()) {
        if mode != "navigate" {
            return false;
        }
    }
    h.get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

/// State values the gateway issues: 43 base64url characters.
pub fn is_token(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
