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
    /// Another dialect's headers describe a different request: `set` is configured.
    Mixed {
        set: &'static str,
        other: &'static str,
    },
}

impl Unusable {
    pub fn label(&self) -> &'static str {
        match self {
            Unusable::Missing(_) | Unusable::Repeated(_) => "bad_request",
            Unusable::Mixed { .. } => "mixed_dialect",
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
            Unusable::Mixed { set, other } => write!(
                f,
                "{other} headers describe another request than the {set} dialect reads: if {other} asks, set forward_auth.dialect: {other}; otherwise a client sent them"
            ),
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

/// Reads the original request in `dialect` (`envoy_prefix`: where Envoy's check requests put
/// the original path). Another dialect's headers that describe a different request are
/// refused: a controller configured as one dialect but behaving as another, or a client
/// trying its luck, never decides what is judged.
pub fn original(
    req: &RequestHeader,
    dialect: Dialect,
    allowed: Exceptions,
    envoy_prefix: &str,
) -> Result<Original, Unusable> {
    let (scheme, canonical) = match dialect {
        Dialect::Nginx => nginx(req, allowed)?.ok_or(Unusable::Missing("X-Original-URL"))?,
        Dialect::Traefik | Dialect::Caddy => {
            forwarded(req, allowed)?.ok_or(Unusable::Missing("X-Forwarded-Host"))?
        }
        Dialect::Envoy => envoy(req, allowed, envoy_prefix)?,
    };
    // The other dialects' descriptions, where sent (Traefik's and Caddy's are the same).
    let others: Vec<(Dialect, Option<(&str, Canonical)>)> = match dialect {
        Dialect::Nginx => vec![(Dialect::Traefik, forwarded(req, allowed).ok().flatten())],
        Dialect::Traefik | Dialect::Caddy => {
            vec![(Dialect::Nginx, nginx(req, allowed).ok().flatten())]
        }
        Dialect::Envoy => vec![
            (Dialect::Nginx, nginx(req, allowed).ok().flatten()),
            (Dialect::Traefik, forwarded(req, allowed).ok().flatten()),
        ],
    };
    let present = |d: Dialect| match d {
        Dialect::Nginx => req.headers.contains_key("x-original-url"),
        _ => {
            req.headers.contains_key("x-forwarded-uri")
                || req.headers.contains_key("x-forwarded-host")
        }
    };
    for (other, described) in others {
        if !present(other) {
            continue;
        }
        let agrees = described
            .is_some_and(|(_, c)| c.host == canonical.host && c.target() == canonical.target());
        if !agrees {
            return Err(Unusable::Mixed {
                set: dialect.name(),
                other: other.name(),
            });
        }
    }
    let url = format!(
        "{scheme}://{}{}",
        canonical.authority.as_deref().unwrap_or(""),
        canonical.target()
    );
    Ok(Original { canonical, url })
}

/// ingress-nginx: `X-Original-URL: $scheme://$http_host$request_uri`, if sent.
fn nginx(
    req: &RequestHeader,
    allowed: Exceptions,
) -> Result<Option<(&'static str, Canonical)>, Unusable> {
    let Some(url) = one(req, "x-original-url")? else {
        return Ok(None);
    };
    let scheme = if url.len() > 5 && url[..5].eq_ignore_ascii_case(b"https") {
        "https"
    } else {
        "http"
    };
    let c = canonical::read(url, &[], None, true, allowed).map_err(Unusable::Refused)?;
    Ok(Some((scheme, c)))
}

/// Traefik ForwardAuth and Caddy `forward_auth`: `X-Forwarded-Proto`, `-Host` and `-Uri`, if
/// sent.
fn forwarded(
    req: &RequestHeader,
    allowed: Exceptions,
) -> Result<Option<(&'static str, Canonical)>, Unusable> {
    let (Some(host), Some(uri)) = (one(req, "x-forwarded-host")?, one(req, "x-forwarded-uri")?)
    else {
        return match one(req, "x-forwarded-host")? {
            Some(_) => Err(Unusable::Missing("X-Forwarded-Uri")),
            None => Ok(None),
        };
    };
    let scheme = proto(req)?;
    if !uri.starts_with(b"/") {
        return Err(Unusable::Refused(Unreadable::TargetForm));
    }
    let c = canonical::read(uri, &[host], None, true, allowed).map_err(Unusable::Refused)?;
    Ok(Some((scheme, c)))
}

/// Envoy's `ext_authz` HTTP service: the original method, `Host` (`:authority`), and the
/// original path and query under `prefix`, as received (the prefix is cut from the raw
/// target, so no normalization can cross it).
fn envoy(
    req: &RequestHeader,
    allowed: Exceptions,
    prefix: &str,
) -> Result<(&'static str, Canonical), Unusable> {
    let target = req.uri.path_and_query().map_or("", |p| p.as_str());
    let rest = target
        .strip_prefix(prefix)
        .filter(|r| r.starts_with('/'))
        .ok_or(Unusable::Refused(Unreadable::TargetForm))?;
    let host = one(req, "host")?
        .or_else(|| req.uri.authority().map(|a| a.as_str().as_bytes()))
        .ok_or(Unusable::Missing("Host"))?;
    let scheme = proto(req)?;
    let c = canonical::read(rest.as_bytes(), &[host], None, true, allowed)
        .map_err(Unusable::Refused)?;
    Ok((scheme, c))
}

/// `X-Forwarded-Proto` (https when absent).
fn proto(req: &RequestHeader) -> Result<&'static str, Unusable> {
    match one(req, "x-forwarded-proto")? {
        None => Ok("https"),
        Some(p) if p.eq_ignore_ascii_case(b"http") => Ok("http"),
        Some(p) if p.eq_ignore_ascii_case(b"https") => Ok("https"),
        Some(_) => Err(Unusable::Refused(Unreadable::TargetForm)),
    }
}

/// Envoy's check requests, by default: `path_prefix: /_authgate/ext_authz`.
pub const ENVOY_PREFIX: &str = "/_authgate/ext_authz";

/// Forward-auth mode (ingress-nginx `auth-url`, Traefik ForwardAuth): the original request's
/// URL comes from the controller's headers, trusted only from these addresses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ForwardAuth {
    pub enabled: bool,
    pub trusted_proxies: Vec<Cidr>,
    /// Which headers describe the original request: never guessed from what arrived.
    pub dialect: Dialect,
    /// `envoy_path_prefix`: Envoy's `path_prefix` (under `/_authgate/`).
    pub envoy_prefix: String,
}

/// How an ingress controller describes the request it asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// ingress-nginx `auth-url`: `X-Original-URL` only.
    #[default]
    Nginx,
    /// Traefik ForwardAuth: `X-Forwarded-Proto`, `-Host`, `-Uri` only.
    Traefik,
    /// Caddy `forward_auth`: the same headers as Traefik (and `X-Forwarded-Method`).
    Caddy,
    /// Envoy / Istio `ext_authz` (HTTP service): the original method, `Host`, and path under
    /// `forward_auth.envoy_path_prefix`.
    Envoy,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Nginx => "nginx",
            Dialect::Traefik => "traefik",
            Dialect::Caddy => "caddy",
            Dialect::Envoy => "envoy",
        }
    }

    /// The controller hands a non-2xx answer to the client as is (ingress-nginx takes only
    /// 2xx/401/403 and redirects by itself).
    pub fn relays_answers(self) -> bool {
        self != Dialect::Nginx
    }

    /// The header carrying the original method (Envoy keeps it as the request's own).
    pub fn method_header(self) -> Option<&'static str> {
        match self {
            Dialect::Nginx => Some("x-original-method"),
            Dialect::Traefik | Dialect::Caddy => Some("x-forwarded-method"),
            Dialect::Envoy => None,
        }
    }
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
            Some("caddy") => Dialect::Caddy,
            Some("envoy") => Dialect::Envoy,
            Some(other) => {
                self.err(
                    "forward_auth.dialect",
                    format!("{other:?} is not nginx, traefik, caddy or envoy"),
                );
                Dialect::Nginx
            }
        };
        let envoy_prefix = self
            .string(&mut o, "envoy_path_prefix")
            .unwrap_or_else(|| ENVOY_PREFIX.to_string());
        let reserved = envoy_prefix.len() > "/_authgate/".len()
            && envoy_prefix.starts_with("/_authgate/")
            && !envoy_prefix.ends_with('/')
            && envoy_prefix["/_authgate/".len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !reserved {
            self.err(
                "forward_auth.envoy_path_prefix",
                "must be /_authgate/<name> (letters, digits, _ and -), the path_prefix set in Envoy's ext_authz http_service",
            );
        }
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
            envoy_prefix,
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
        // Traefik passes a client's X-Original-URL along: one that describes another request
        // is refused, naming the dialect; one that agrees changes nothing.
        let r = req(&[
            ("x-original-url", "http://app.test/public/"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", "/admin/secret"),
        ]);
        for (d, other) in [
            (Dialect::Traefik, "nginx"),
            (Dialect::Caddy, "nginx"),
            (Dialect::Nginx, "traefik"),
        ] {
            let e = original(&r, d, ex, ENVOY_PREFIX).unwrap_err();
            assert_eq!(
                e,
                Unusable::Mixed {
                    set: d.name(),
                    other
                },
                "{d:?}"
            );
            assert!(e
                .to_string()
                .contains(&format!("forward_auth.dialect: {other}")));
        }
        let agree = req(&[
            ("x-original-url", "https://app.test/admin/secret"),
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", "/admin/secret"),
        ]);
        let o = original(&agree, Dialect::Traefik, ex, ENVOY_PREFIX).unwrap();
        assert_eq!(o.url, "https://app.test/admin/secret");
        assert!(original(&agree, Dialect::Nginx, ex, ENVOY_PREFIX).is_ok());
        assert_eq!(
            original(
                &req(&[("x-forwarded-host", "a"), ("x-forwarded-uri", "/")]),
                Dialect::Nginx,
                ex,
                ENVOY_PREFIX,
            )
            .unwrap_err(),
            Unusable::Missing("X-Original-URL")
        );
        assert_eq!(
            original(
                &req(&[("x-original-url", "http://a/")]),
                Dialect::Traefik,
                ex,
                ENVOY_PREFIX,
            )
            .unwrap_err(),
            Unusable::Missing("X-Forwarded-Host")
        );
    }

    #[test]
    fn descriptions_are_read_canonically() {
        let ex = Exceptions::default();
        let nginx = |u: &str| {
            original(
                &req(&[("x-original-url", u)]),
                Dialect::Nginx,
                ex,
                ENVOY_PREFIX,
            )
        };
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
            original(&twice, Dialect::Nginx, ex, ENVOY_PREFIX).unwrap_err(),
            Unusable::Repeated("x-original-url")
        );
        let traefik = |h: &str, u: &str| {
            original(
                &req(&[("x-forwarded-host", h), ("x-forwarded-uri", u)]),
                Dialect::Traefik,
                ex,
                ENVOY_PREFIX,
            )
        };
        assert!(traefik("app.test", "/ok").is_ok());
        assert!(traefik("app.test", "http://evil/").is_err());
        assert!(traefik("app.test, evil.test", "/").is_err());
        assert!(traefik("app.test", "/x;y").is_err());
    }

    #[test]
    fn envoy_reads_the_path_under_its_prefix_from_the_raw_target() {
        let ex = Exceptions::default();
        let check = |target: &str, host: &str| {
            let mut r = RequestHeader::build("DELETE", target.as_bytes(), None).unwrap();
            r.append_header("host", host).unwrap();
            original(&r, Dialect::Envoy, ex, ENVOY_PREFIX)
        };
        let o = check("/_authgate/ext_authz/admin/x?y=1", "App.test").unwrap();
        assert_eq!(o.canonical.path, "/admin/x");
        assert_eq!(o.url, "https://app.test/admin/x?y=1");
        for bad in [
            "/_authgate/ext_authzadmin",
            "/_authgate/ext_authz",
            "/_authgate/other/admin",
            "/_authgate/ext_authz/../admin",
            "/_authgate/ext_authz/a/%2e%2e/admin",
        ] {
            assert!(check(bad, "app.test").is_err(), "{bad}");
        }
        // Nginx's or Traefik's headers that disagree: refused.
        let mut r = RequestHeader::build("GET", b"/_authgate/ext_authz/public", None).unwrap();
        r.append_header("host", "app.test").unwrap();
        r.append_header("x-original-url", "https://app.test/admin")
            .unwrap();
        assert_eq!(
            original(&r, Dialect::Envoy, ex, ENVOY_PREFIX).unwrap_err(),
            Unusable::Mixed {
                set: "envoy",
                other: "nginx"
            }
        );
    }
}
