//! `tls.redirect_listen`: a plain-HTTP listener that serves nothing but a redirect to the same
//! path under the `https://` public URL. It never proxies, so nothing reaches an upstream in
//! clear text, and the target's host is always the public URL's (never the request's `Host`):
//! it cannot be turned into an open redirect.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use url::Url;

pub struct HttpsRedirect {
    /// `https://host[:port]` without the trailing slash.
    pub origin: String,
}

impl HttpsRedirect {
    pub fn new(public_url: &Url) -> Self {
        Self {
            origin: public_url.as_str().trim_end_matches('/').to_string(),
        }
    }

    /// Where `target` (the request target as received) is sent: the public URL's origin and
    /// the target's path and query when it is origin-form, the root otherwise.
    pub fn location(&self, target: &[u8]) -> String {
        let ok = target.first() == Some(&b'/')
            && !target.starts_with(b"//")
            && target.len() <= 8192
            && target.iter().all(|b| b.is_ascii_graphic());
        let path = if ok {
            String::from_utf8_lossy(target).into_owned()
        } else {
            "/".to_string()
        };
        format!("{}{path}", self.origin)
    }
}

#[async_trait]
impl ServeHttp for HttpsRedirect {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let target = session.req_header().raw_path().to_vec();
        let location = self.location(&target);
        Response::builder()
            .status(308)
            .header("location", location)
            .header("content-type", "text/plain; charset=utf-8")
            .header("content-length", "0")
            .header("cache-control", "no-store")
            .body(Vec::new())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::HttpsRedirect;

    #[test]
    fn the_redirect_keeps_the_public_host_whatever_the_target() {
        let r = HttpsRedirect::new(&"https://gw.example.com:8443".parse().expect("url"));
        let cases: [(&[u8], &str); 8] = [
            (b"/", "https://gw.example.com:8443/"),
            (
                b"/app/x?a=1&b=%2F",
                "https://gw.example.com:8443/app/x?a=1&b=%2F",
            ),
            (b"//evil.example/x", "https://gw.example.com:8443/"),
            (b"http://evil.example/x", "https://gw.example.com:8443/"),
            (b"*", "https://gw.example.com:8443/"),
            (b"/a b", "https://gw.example.com:8443/"),
            (b"/\r\nSet-Cookie: x=1", "https://gw.example.com:8443/"),
            (b"/\xff", "https://gw.example.com:8443/"),
        ];
        for (target, want) in cases {
            assert_eq!(
                r.location(target),
                want,
                "{:?}",
                String::from_utf8_lossy(target)
            );
        }
    }
}
