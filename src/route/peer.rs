//! Where a route's requests connect: the upstream's `HttpPeer`, prepared once per
//! configuration and copied per request.
//!
//! pingora's `HttpPeer::new` resolves its address with the standard library on every call: a
//! blocking `getaddrinfo` (reading `/etc/hosts`, asking DNS) inside the event loop, and a panic
//! (an unanswered, reset connection) when a name does not resolve. An IP address here is read
//! once, when the configuration is. A host name is looked up off the event loop, used for
//! `RESOLVED_FOR`, then looked up again by the next request (the others keep the address they
//! have meanwhile); a failed lookup keeps the last address that resolved, and with none the
//! request gets the gateway's 502 page (reason `dns`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pingora::prelude::*;
use pingora::upstreams::peer::HttpPeer;

use super::Upstream;

/// How long a looked-up address is used before the name is looked up again.
pub const RESOLVED_FOR: Duration = Duration::from_secs(30);
/// A lookup that takes longer fails (the request gets its 502).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed lookup, the last address is used this long before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The error type a failed lookup is reported with (`fail_to_proxy` names it `dns`).
pub const DNS_ERROR: &str = "upstream_dns";

pub struct Peer {
    /// Everything but (for a host name) the address.
    template: HttpPeer,
    /// The host name and port to look up; `None`: the template's address is an IP address.
    name: Option<(String, u16)>,
    resolved: Mutex<Resolved>,
}

#[derive(Default)]
struct Resolved {
    addr: Option<SocketAddr>,
    /// When `addr` stops being used without asking again.
    until: Option<Instant>,
    /// A request is looking the name up now: the others keep `addr` meanwhile.
    looking: bool,
}

/// A copy looks its name up afresh.
impl Clone for Peer {
    fn clone(&self) -> Self {
        Self {
            template: self.template.clone(),
            name: self.name.clone(),
            resolved: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("address", &self.template._address)
            .field("name", &self.name)
            .finish()
    }
}

impl Peer {
    /// The peer for `u`: its address (an IP address now, a host name when first used), TLS,
    /// SNI, `upstream_tls` and read timeout.
    pub fn new(u: &Upstream) -> Self {
        let (host, port) = split(&u.addr);
        let literal = host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        // Until a name is looked up, an address nothing listens on (never connected to).
        let addr = literal.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port)));
        // Without TLS there is no SNI: an empty one costs nothing to copy per request.
        let sni = if u.tls { u.sni.clone() } else { String::new() };
        let mut template = HttpPeer::new(addr, u.tls, sni);
        if let Some(tls) = &u.tls_options {
            tls.apply(&mut template);
        }
        template.options.read_timeout = u.read_timeout;
        Self {
            template,
            name: literal.is_none().then(|| (host.to_string(), port)),
            resolved: Mutex::default(),
        }
    }

    /// The peer a request connects to.
    pub async fn get(&self) -> Result<Box<HttpPeer>> {
        let Some((host, port)) = &self.name else {
            return Ok(Box::new(self.template.clone()));
        };
        let now = Instant::now();
        let (known, ask) = {
            let mut r = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = r.until.is_some_and(|u| now < u);
            // One request asks when the address is due; with no address yet, each does.
            let ask = !fresh && (r.addr.is_none() || !r.looking);
            if ask {
                r.looking = true;
            }
            (r.addr, ask)
        };
        let addr = if ask {
            self.look_up(host, *port, known).await
        } else {
            known
        };
        match addr {
            Some(a) => {
                let mut peer = Box::new(self.template.clone());
                peer._address = pingora::protocols::l4::socket::SocketAddr::Inet(a);
                Ok(peer)
            }
            None => Err(Error::explain(
                ErrorType::Custom(DNS_ERROR),
                format!("upstream host {host:?} does not resolve"),
            )
            .into_up()),
        }
    }

    /// Looks the name up off the event loop; keeps `known` when that fails.
    async fn look_up(
        &self,
        host: &str,
        port: u16,
        known: Option<SocketAddr>,
    ) -> Option<SocketAddr> {
        let found =
            tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port))).await;
        let first = match found {
            Ok(Ok(mut addrs)) => addrs.next(),
            Ok(Err(e)) => {
                log::warn!("upstream host {host:?}: lookup failed: {e}");
                None
            }
            Err(_) => {
                log::warn!("upstream host {host:?}: lookup timed out");
                None
            }
        };
        let mut r = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        r.looking = false;
        match first {
            Some(a) => {
                r.addr = Some(a);
                r.until = Some(Instant::now() + RESOLVED_FOR);
            }
            None if known.is_some() => {
                log::warn!(
                    "upstream host {host:?}: keeping {known:?} (last address that resolved)"
                );
                r.until = Some(Instant::now() + RETRY_AFTER);
            }
            None => {}
        }
        r.addr.or(known)
    }
}

/// `host:port` (an IPv6 host in brackets) as the configuration reader wrote it.
fn split(addr: &str) -> (&str, u16) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (h.trim_matches(['[', ']']), p.parse().unwrap_or(0)),
        None => (addr, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(addr: &str, tls: bool) -> Upstream {
        Upstream {
            addr: addr.into(),
            tls,
            sni: "app.internal".into(),
            tls_options: None,
            host_header: None,
            read_timeout: Some(Duration::from_secs(7)),
        }
    }

    #[tokio::test]
    async fn ip_addresses_are_read_once_names_are_looked_up() {
        let p = Peer::new(&upstream("127.0.0.1:8080", false));
        assert!(p.name.is_none());
        let got = p.get().await.expect("peer");
        assert_eq!(got._address.to_string(), "127.0.0.1:8080");
        assert_eq!(got.sni, "", "no SNI without TLS");
        assert_eq!(got.options.read_timeout, Some(Duration::from_secs(7)));

        let v6 = Peer::new(&upstream("[::1]:443", true))
            .get()
            .await
            .expect("peer");
        assert_eq!(v6._address.to_string(), "[::1]:443");
        assert_eq!(v6.sni, "app.internal");

        let named = Peer::new(&upstream("localhost:9000", false));
        assert_eq!(named.name.as_ref().map(|n| n.0.as_str()), Some("localhost"));
        let got = named.get().await.expect("localhost resolves");
        let a = got._address.as_inet().copied().expect("inet");
        assert!(a.ip().is_loopback() && a.port() == 9000, "{a}");
        assert!(named.resolved.lock().unwrap().until.is_some());
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_an_upstream_error_not_a_panic() {
        let p = Peer::new(&upstream("no-such-host.invalid:80", false));
        let e = p.get().await.expect_err("must not resolve");
        assert_eq!(e.etype(), &ErrorType::Custom(DNS_ERROR));
        assert_eq!(e.esource(), &ErrorSource::Upstream);
        // A name that resolved once keeps its address when a later lookup fails.
        let known = Some(SocketAddr::from(([10, 0, 0, 1], 80)));
        let kept = p.look_up("no-such-host.invalid", 80, known).await;
        assert_eq!(kept, known);
        assert!(!p.resolved.lock().unwrap().looking);
    }
}
