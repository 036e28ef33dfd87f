//! A deadline for the whole request head (`server.request_header_timeout`).
//!
//! pingora times each read of the head, not the head as a whole, so a client sending one
//! header line every 20 s holds a connection forever. This wraps the proxy's connections: from
//! the first byte of each request until the blank line that ends its head, reads must finish
//! before the deadline, or the connection is closed (logged and counted).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::metrics::Metrics;

/// Where a connection is in the current request head.
#[derive(Debug, Default)]
struct Scan {
    /// Armed: waiting for (or inside) a request head.
    armed: bool,
    /// The current line (perhaps fed in pieces) has a byte other than `\r` so far.
    in_line: bool,
    /// A non-empty line was seen (leading blank lines do not end a head).
    started: bool,
}

impl Scan {
    /// Feeds bytes; true when they complete the head. Jumps from line end to line end
    /// (`memchr`): a line's other bytes matter only in whether it has any besides `\r`.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        // The usual read: one whole head, ending with its blank line. A line that is
        // not blank has come before it (the first byte, or a line already begun) so the head
        // is complete within these bytes, wherever exactly it ended.
        if bytes.ends_with(b"\r\n\r\n")
            && (self.started || bytes.first().is_some_and(|&b| b != b'\r' && b != b'\n'))
        {
            self.armed = false;
            return true;
        }
        let mut rest = bytes;
        loop {
            let end = memchr::memchr(b'\n', rest);
            let line = &rest[..end.unwrap_or(rest.len())];
            if line.iter().any(|&b| b != b'\r') {
                self.in_line = true;
                self.started = true;
            }
            let Some(end) = end else { return false };
            if !self.in_line && self.started {
                self.armed = false;
                return true;
            }
            self.in_line = false;
            rest = &rest[end + 1..];
        }
    }
}

/// A connection whose request heads must arrive within `limit`.
pub struct Deadlined {
    inner: Stream,
    limit: Duration,
    scan: Scan,
    /// When the current head's first byte arrived, if the head is still incomplete.
    first_byte: Option<Instant>,
    /// Set only while waiting for the rest of an incomplete head: a head that arrives whole
    /// (the usual case) costs no timer and no clock read.
    timer: Option<Pin<Box<Sleep>>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Deadlined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadlined")
            .field("inner", &self.inner)
            .finish()
    }
}

impl Deadlined {
    /// Expect a new request head (a fresh or reused connection).
    fn arm(&mut self) {
        self.scan = Scan {
            armed: true,
            ..Scan::default()
        };
        self.first_byte = None;
        self.timer = None;
    }
}

impl AsyncRead for Deadlined {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if !this.scan.armed {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if this.scan.feed(new) {
                    this.first_byte = None;
                    this.timer = None;
                } else if !new.is_empty() && this.first_byte.is_none() {
                    this.first_byte = Some(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if let (None, Some(first)) = (&this.timer, this.first_byte) {
                    this.timer = Some(Box::pin(tokio::time::sleep_until(first + this.limit)));
                }
                if let Some(t) = this.timer.as_mut() {
                    if t.as_mut().poll(cx).is_ready() {
                        this.scan.armed = false;
                        this.first_byte = None;
                        this.timer = None;
                        this.metrics
                            .denials
                            .with_label_values(&["slow_request_head"])
                            .inc();
                        log::warn!(
                            "connection closed: the request head did not arrive within {:?} (server.request_header_timeout)",
                            this.limit
                        );
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "request head deadline",
                        )));
                    }
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl AsyncWrite for Deadlined {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Deadlined {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Deadlined {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Deadlined {
    fn get_ssl(&self) -> Option<&pingora::tls::ssl::SslRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Deadlined {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Deadlined {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Deadlined {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, d: pingora::protocols::SocketDigest) {
        self.inner.set_socket_digest(d)
    }
}

#[async_trait]
impl Peek for Deadlined {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// The proxy service's application, with request-head deadlines on its connections.
pub struct HeadDeadline<A> {
    pub inner: Arc<A>,
    pub limit: Duration,
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for HeadDeadline<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // HTTP/2 (chosen by ALPN) is binary framing with its own limits: the head scan
        // reads HTTP/1 only.
        if matches!(
            stream.selected_alpn_proto(),
            Some(pingora::protocols::ALPN::H2)
        ) {
            return self.inner.process_new(stream, shutdown).await;
        }
        // A reused connection comes back wrapped: re-arm it for the next request's head.
        let mut wrapped: Box<Deadlined> = if stream.as_any().is::<Deadlined>() {
            stream.into_any().downcast::<Deadlined>().ok()?
        } else {
            Box::new(Deadlined {
                inner: stream,
                limit: self.limit,
                scan: Scan::default(),
                first_byte: None,
                timer: None,
                metrics: self.metrics.clone(),
            })
        };
        wrapped.arm();
        self.inner.process_new(wrapped, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

#[cfg(test)]
mod tests {
    use super::Scan;

    #[test]
    fn head_end_is_found_in_any_split() {
        let head = b"\r\nGET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\nBODY";
        for split in 0..head.len() {
            let mut s = Scan {
                armed: true,
                ..Scan::default()
            };
            let (a, b) = head.split_at(split);
            let done = s.feed(a) || s.feed(b);
            assert!(done, "split at {split}");
        }
        let mut s = Scan {
            armed: true,
            ..Scan::default()
        };
        assert!(!s.feed(b"\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(s.feed(b"\n"));
        let mut s = Scan {
            armed: true,
            ..Scan::default()
        };
        assert!(s.feed(b"GET / HTTP/1.0\n\n"));
        // Lines of only `\r` are empty; a `\r` inside a line is not its end.
        let mut s = Scan {
            armed: true,
            ..Scan::default()
        };
        assert!(!s.feed(b"GET / HTTP/1.1\r\nA: b\rc\r\n\r"));
        assert!(!s.feed(b"\r"));
        assert!(s.feed(b"\r\n"), "a line holding only \\r ends the head");
        let mut s = Scan {
            armed: true,
            ..Scan::default()
        };
        assert!(!s.feed(b"GET / HTTP/1.1\r\n\r\r"));
        assert!(!s.feed(b"x\r\n"), "\\r\\rx\\r is a header line");
        assert!(s.feed(b"\r\n"));
        // A read that ends with a blank line: the whole head, unless nothing but blank lines
        // came so far.
        let armed = || Scan {
            armed: true,
            ..Scan::default()
        };
        assert!(armed().feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(
            !armed().feed(b"\r\n\r\n"),
            "leading blank lines are no head"
        );
        assert!(!armed().feed(b"\n\r\n\r\n"));
        let mut s = armed();
        assert!(!s.feed(b"\r\n\r\n"));
        assert!(!s.feed(b"GET / HTTP/1.1\r\nHost: a"));
        assert!(s.feed(b"\r\n\r\n"), "a head begun in an earlier read");
        let mut s = armed();
        assert!(!s.feed(b"GET / HTTP/1.1\r\n"));
        assert!(s.feed(b"\r\n\r\n"));
        assert!(!s.armed, "the deadline is off once the head is complete");
    }
}
