//! A websocket client on a raw connection: the handshake and server frames, read by hand.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A websocket handshake on a raw connection; returns the response head and the stream.
pub fn ws_connect(port: u16, path: &str, cookie: Option<&str>) -> (String, TcpStream) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Auth-User: mallory\r\n{cookie}\r\n"
    )
    .expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    (String::from_utf8_lossy(&head).into_owned(), s)
}

/// One unmasked server text frame (short payload).
pub fn ws_read(s: &mut TcpStream, log: &dyn Fn() -> String) -> String {
    let mut h = [0u8; 2];
    s.read_exact(&mut h)
        .unwrap_or_else(|e| panic!("frame head: {e}\nlog:\n{}", log()));
    assert_eq!(h[0], 0x81, "a text frame");
    let mut data = vec![0u8; (h[1] & 0x7f) as usize];
    s.read_exact(&mut data).expect("frame data");
    String::from_utf8_lossy(&data).into_owned()
}

/// Waits up to `limit` for the server to close `s` (EOF or a reset); returns how long it took,
/// or `None` if it stayed open. Nothing is expected from the server meanwhile.
pub fn ws_closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    closed_within(s, limit)
}

/// Reads `s` (whose read timeout is set) until the server closes it (EOF or a reset), for up
/// to `limit`, ignoring whatever it sends meanwhile; how long that took, `None` if still open.
pub fn closed_within(s: &mut impl Read, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}
