//! The forwarding headers the upstream receives (`X-Forwarded-For`, `-Proto`, `-Host`,
//! `-Port`): the gateway's own, or appended to a trusted proxy's.

use http::header::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

use bytes::Bytes;

/// Headers that describe the client or the original request: the gateway's to set. Removed
/// from any peer that is not a trusted proxy. Normalized; `*` = prefix.
pub(super) const FORWARDING: &[&str] = &[
    "forwarded",
    "x-forwarded-*",
    "x-real-ip",
    "x-original-*",
    "x-rewrite-url",
    "x-host",
    "x-http-host",
    "x-proxyuser-ip",
    "client-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-envoy-*",
    "x-scheme",
    "x-url-scheme",
    "front-end-https",
];

/// Whether a normalized name is a forwarding header (`Forwarded`, `X-Forwarded-*`, ...).
pub(crate) fn is_forwarding(normalized: &str) -> bool {
    FORWARDING.iter().any(|f| match f.strip_suffix('*') {
        Some(prefix) => normalized.starts_with(prefix),
        None => normalized == *f,
    })
}

/// What the forwarding headers say about the request.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// The TCP peer.
    pub peer: Option<std::net::IpAddr>,
    /// The peer is a trusted proxy: its forwarding headers are kept and appended to.
    pub trusted: bool,
    /// The public URL's scheme.
    pub proto: &'a HeaderValue,
    /// The canonical `Host`.
    pub authority: Option<&'a str>,
    /// The port the client named; `None`: `default_port` (the public URL's).
    pub port: Option<u16>,
    pub default_port: &'a HeaderValue,
}

impl Forwarding<'_> {
    fn port(&self) -> HeaderValue {
        match self.port {
            Some(p) => port_value(p),
            None => self.default_port.clone(),
        }
    }
}

/// `ip` as a header value. The last one made on this thread is kept: a connection's requests
/// come from one peer, and a clone shares the bytes (no formatting, no allocation).
fn peer_value(ip: std::net::IpAddr) -> Option<HeaderValue> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(std::net::IpAddr, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((seen, v)) if *seen == ip => Some(v.clone()),
            _ => {
                let v = HeaderValue::from_str(&ip.to_string()).ok()?;
                *last = Some((ip, v.clone()));
                Some(v)
            }
        }
    })
}

/// `port` as a header value, the last one made on this thread kept (as `peer_value`).
pub fn port_value(port: u16) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u16, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((seen, v)) if *seen == port => v.clone(),
            _ => {
                let v = HeaderValue::from(port);
                *last = Some((port, v.clone()));
                v
            }
        }
    })
}

/// A header value that takes the string's buffer instead of copying it.
fn owned_value(s: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(Bytes::from(s)).ok()
}

/// The forwarding headers the gateway sets (normalized).
pub(crate) const SET_FORWARDING: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
];

const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
const PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// Sets the forwarding headers the upstream receives: the gateway's own, appended to (or,
/// for `-Proto`/`-Host`/`-Port`, replaced by) a trusted proxy's.
pub fn set_forwarding(upstream: &mut RequestHeader, f: Forwarding) -> pingora::Result<()> {
    if !f.trusted {
        // `strip` removed every forwarding header an untrusted peer sent: the gateway's own
        // go out as one block of wire lines, made once for a connection's requests.
        return upstream.append_encoded(forwarding_block(f));
    }
    // A trusted proxy: its own are kept, `-For` appended to, the others set when absent.
    if let Some(ip) = f.peer {
        let xff = match upstream.headers.get(&XFF).and_then(|v| v.to_str().ok()) {
            Some(prev) => owned_value(format!("{prev}, {ip}")),
            None => peer_value(ip),
        };
        if let Some(v) = xff {
            upstream.insert_parsed_header(XFF, v)?;
        }
    }
    if !upstream.headers.contains_key(&PROTO) {
        upstream.insert_parsed_header(PROTO, f.proto.clone())?;
    }
    if !upstream.headers.contains_key(&HOST) {
        if let Some(a) = f.authority.map(str::to_string).and_then(owned_value) {
            upstream.insert_parsed_header(HOST, a)?;
        }
    }
    if !upstream.headers.contains_key(&PORT) {
        upstream.insert_parsed_header(PORT, f.port())?;
    }
    Ok(())
}

/// The forwarding headers for a peer that is not a trusted proxy, as wire lines. The last
/// block made on this thread is kept: a connection's requests share peer, scheme, host and
/// port, and a clone shares the bytes.
fn forwarding_block(f: Forwarding) -> pingora::http::EncodedHeaders {
    /// Peer, scheme, host, the port named, the default port.
    type Key = (
        Option<std::net::IpAddr>,
        HeaderValue,
        Option<String>,
        Option<u16>,
        HeaderValue,
    );
    thread_local! {
        static LAST: std::cell::RefCell<Option<(Key, pingora::http::EncodedHeaders)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some(((peer, proto, authority, port, default_port), block)) = &*last {
            if *peer == f.peer
                && proto == f.proto
                && authority.as_deref() == f.authority
                && *port == f.port
                && default_port == f.default_port
            {
                return block.clone();
            }
        }
        let xff = f.peer.and_then(peer_value);
        let host = f.authority.and_then(|a| HeaderValue::from_str(a).ok());
        let port = f.port();
        let lines = [
            (&XFF, xff.as_ref()),
            (&PROTO, Some(f.proto)),
            (&HOST, host.as_ref()),
            (&PORT, Some(&port)),
        ];
        let block = pingora::http::EncodedHeaders::encode(
            lines.iter().filter_map(|(n, v)| Some((*n, (*v)?))),
        );
        let key = (
            f.peer,
            f.proto.clone(),
            f.authority.map(str::to_string),
            f.port,
            f.default_port.clone(),
        );
        *last = Some((key, block.clone()));
        block
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forwarding block kept per thread is made again whenever anything in it differs:
    /// one connection's requests after another's never carry the other's peer, host or port.
    #[test]
    fn the_kept_forwarding_block_follows_every_ingredient() {
        use pingora::protocols::http::v1::client::http_req_header_to_wire;
        let https = HeaderValue::from_static("https");
        let http = HeaderValue::from_static("http");
        let (p443, p8443) = (port_value(443), port_value(8443));
        let a = Forwarding {
            peer: Some("192.0.2.7".parse().unwrap()),
            trusted: false,
            proto: &https,
            authority: Some("a.example"),
            port: None,
            default_port: &p443,
        };
        let cases = [
            (a, "192.0.2.7", "https", "a.example", "443"),
            (
                Forwarding {
                    peer: Some("192.0.2.8".parse().unwrap()),
                    ..a
                },
                "192.0.2.8",
                "https",
                "a.example",
                "443",
            ),
            (
                Forwarding { proto: &http, ..a },
                "192.0.2.7",
                "http",
                "a.example",
                "443",
            ),
            (
                Forwarding {
                    authority: Some("b.example:8080"),
                    port: Some(8080),
                    ..a
                },
                "192.0.2.7",
                "https",
                "b.example:8080",
                "8080",
            ),
            (
                Forwarding {
                    default_port: &p8443,
                    ..a
                },
                "192.0.2.7",
                "https",
                "a.example",
                "8443",
            ),
            (a, "192.0.2.7", "https", "a.example", "443"),
        ];
        for (f, peer, proto, host, port) in cases {
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            set_forwarding(&mut req, f).unwrap();
            let wire = String::from_utf8(http_req_header_to_wire(&req).unwrap().to_vec()).unwrap();
            for line in [
                format!("x-forwarded-for: {peer}\r\n"),
                format!("x-forwarded-proto: {proto}\r\n"),
                format!("x-forwarded-host: {host}\r\n"),
                format!("x-forwarded-port: {port}\r\n"),
            ] {
                assert_eq!(wire.matches(&line).count(), 1, "{line:?} in {wire:?}");
            }
        }
    }
}
