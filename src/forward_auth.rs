//! Forward-auth: the original request an ingress controller asks about, read from exactly
//! one source per dialect and then through the same canonical reading as a proxied request.
//!
//! The dialect is configuration (`forward_auth.dialect`), never guessed from which headers
//! arrived: Traefik passes client headers to the auth service, so a client-sent
//! `X-Original-URL` next to Traefik's `X-Forwarded-Uri` must not be believed.

use pingora::http::RequestHeader;

use crate::canonical::{self, Canonical, Exceptions, Unreadable};
use crate::read::{Cidr, Obj, Reader};

/// What the controller described, read once.
#[derive(Debug)]
pub struct Original {
    pub canonical: Canonical,
    /// The full URL, for the return after sign-in.
    pub url: String,
}

/// Why the controller's description was not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// A header the dialect needs is absent.
    Missing(&'static str),
    /// A header the dialect reads arrived more than once.
    Repeated(&'static str),
    /// The described request is refused by the canonical reading.
    Refused(Unreadable),
}

impl Unusable {
    pub fn label(&self) -> &'static str {
        match self {
            Unusable::Missing(_) | Unusable::Repeated(_) => "bad_request",
            Unusable::Refused(r) => r.label(),
        }
    }
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Missing(h) => write!(f, "no {h} header"),
            Unusable::Repeated(h) => write!(f, "{h} sent more than once"),
            Unusable::Refused(r) => write!(f, "original request refused: {r}"),
        }
    }
}

/// The one value of `name`, or why not.
fn one<'a>(req: &'a RequestHeader, name: &'static str) -> Result<Option<&'a [u8]>, Unusable> {
    let mut all = req.headers.get_all(name).iter();
    let first = all.next().map(|v| v.as_bytes());
    if all.next().is_some() {
        return Err(Unusable::Repeated(name));
    }
    Ok(first)
}

/// Reads the original request in `dialect`.
pub fn original(
    req: &RequestHeader,
    dialect: Dialect,
    allowed: Exceptions,
) -> Result<Original, Unusable> {
    let refused = Unusable::Refused;
    let (scheme, canonical) = match dialect {
        // ingress-nginx: `X-Original-URL: $scheme://$http_host$request_uri`, nothing else.
        Dialect::Nginx => {
            let url = one(req, "x-original-url")?.ok_or(Unusable::Missing("X-Original-URL"))?;
            let scheme = if url.len() > 5 && url[..5].eq_ignore_ascii_case(b"https") {
                "https"
            } else {
                "http"
            };
            (
                scheme,
                canonical::read(url, &[], None, true, allowed).map_err(refused)?,
            )
        }
        // Traefik: `X-Forwarded-Proto`, `-Host` and `-Uri`, which Traefik sets itself.
        Dialect::Traefik => {
            let host =
                one(req, "x-forwarded-host")?.ok_or(Unusable::Missing("X-Forwarded-Host"))?;
            let uri = one(req, "x-forwarded-uri")?.ok_or(Unusable::Missing("X-Forwarded-Uri"))?;
            let scheme = match one(req, "x-forwarded-proto")? {
                None => "https",
                Some(p) if p.eq_ignore_ascii_case(b"http") => "http",
                Some(p) if p.eq_ignore_ascii_case(b"https") => "https",
                Some(_) => return Err(refused(Unreadable::TargetForm)),
            };
            if !uri.starts_with(b"/") {
                return Err(refused(Unreadable::TargetForm));
            }
            (
                scheme,
                canonical::read(uri, &[host], None, true, allowed).map_err(refused)?,
            )
        }
    };
    let url = format!(
        "{scheme}://{}{}",
        canonical.authority.as_deref().unwrap_or(""),
        canonical.target()
    );
    Ok(Original { canonical, url })
}

/// Forward-auth mode (ingress-nginx `auth-url`, Traefik ForwardAuth): the original request's
/// URL comes from the controller's headers, trusted only from these addresses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ForwardAuth {
    pub enabled: bool,
    pub trusted_proxies: Vec<Cidr>,
    /// Which headers describe the original request: never guessed from what arrived.
    pub dialect: Dialect,
}

/// How an ingress controller describes the request it asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// ingress-nginx `auth-url`: `X-Original-URL` only.
    #[default]
    Nginx,
    /// Traefik ForwardAuth: `X-Forwarded-Proto`, `-Host`, `-Uri` only.
    Traefik,
}

impl Reader<'_> {
    pub(crate) fn forward_auth(&mut self, top: &mut Obj<'_>, trusted: &[Cidr]) -> ForwardAuth {
        let mut o = {
            let v = self.get(top, "forward_auth");
            self.obj("forward_auth", v)
        };
        let enabled = self.bool(&mut o, "enabled").unwrap_or(false);
        let own = o.map.is_some_and(|m| m.contains_key("trusted_proxies"));
        let mut trusted_proxies = self.cidrs(&mut o, "trusted_proxies");
        if !own {
            trusted_proxies = trusted.to_vec();
        }
        let dialect = match self.string(&mut o, "dialect").as_deref() {
            None | Some("nginx") => Dialect::Nginx,
            Some("traefik") => Dialect::Traefik,
            Some(other) => {
                self.err(
                    "forward_auth.dialect",
                    format!("{other:?} is not nginx or traefik"),
                );
                Dialect::Nginx
            }
        };
        if enabled
            && trusted_proxies.is_empty()
            && !self.errors.iter().any(|e| {
                e.path.starts_with("forward_auth") || e.path.starts_with("trusted_proxies")
            })
        {
            self.err(
                "forward_auth.trusted_proxies",
                "required when forward_auth is enabled (or set the top-level trusted_proxies): the addresses of the ingress controllers whose X-Original-URL / X-Forwarded-* headers may be believed",
            );
        }
        self.finish(o);
        ForwardAuth {
            enabled,
            trusted_proxies,
            dialect,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/_authgate/auth", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn each_dialect_believes_one_source() {
        let ex = Exceptions::default();
        // Traefik passes a client's X-Original-URL along: the Traefik dialect ignores it.
        let r = req(&[
            ("x-original-url", "http://app.test/public/"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", "/admin/secret"),
        ]);
        let o = original(&r, Dialect::Traefik, ex).unwrap();
        assert_eq!(o.canonical.path, "/admin/secret");
        assert_eq!(o.url, "https://app.test/admin/secret");
        // ... and the nginx dialect ignores X-Forwarded-*.
        let o = original(&r, Dialect::Nginx, ex).unwrap();
        assert_eq!(o.canonical.path, "/public/");
        assert_eq!(
            original(
                &req(&[("x-forwarded-host", "a"), ("x-forwarded-uri", "/")]),
                Dialect::Nginx,
                ex
            )
            .unwrap_err(),
            Unusable::Missing("X-Original-URL")
        );
        assert_eq!(
            original(
                &req(&[("x-original-url", "http://a/")]),
                Dialect::Traefik,
                ex
            )
            .unwrap_err(),
            Unusable::Missing("X-Forwarded-Host")
        );
    }

    #[test]
    fn descriptions_are_read_canonically() {
        let ex = Exceptions::default();
        let nginx = |u: &str| original(&req(&[("x-original-url", u)]), Dialect::Nginx, ex);
        assert_eq!(
            nginx("http://App.Test.:80/x")
                .unwrap()
                .canonical
                .host
                .as_deref(),
            Some("app.test")
        );
        for bad in [
            "http://app.test/public/..;/admin",
            "http://app.test/public/%252e%252e/admin",
            "http://app.test/admin%20",
            "http://u@app.test/",
            "javascript://app.test/",
            "http://app.test/a\\b",
        ] {
            assert!(matches!(nginx(bad), Err(Unusable::Refused(_))), "{bad}");
        }
        let twice = req(&[
            ("x-original-url", "http://a/"),
            ("x-original-url", "http://b/"),
        ]);
        assert_eq!(
            original(&twice, Dialect::Nginx, ex).unwrap_err(),
            Unusable::Repeated("x-original-url")
        );
        let traefik = |h: &str, u: &str| {
            original(
                &req(&[("x-forwarded-host", h), ("x-forwarded-uri", u)]),
                Dialect::Traefik,
                ex,
            )
        };
        assert!(traefik("app.test", "/ok").is_ok());
        assert!(traefik("app.test", "http://evil/").is_err());
        assert!(traefik("app.test, evil.test", "/").is_err());
        assert!(traefik("app.test", "/x;y").is_err());
    }
}
