// authgate patch (see PATCHES.md): header lines encoded once for HTTP/1.

//! Headers written as HTTP/1 wire bytes once, then appended to many requests.
//!
//! A proxy that adds the same headers to every request of a session (an identity, say)
//! pays, per request, for inserting each into the header map (hashing, growing the map) and
//! then for writing each out. [EncodedHeaders] holds them already written, `name: value\r\n`
//! after `name: value\r\n`; [crate::RequestHeader::append_encoded()] appends the whole block
//! to the head with one copy, and a clone of the block shares its bytes.
//!
//! A block can only be made from parsed [HeaderName]s and [HeaderValue]s, so it cannot carry
//! a line break or a malformed name. Header names go out in lower case.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};

/// Header lines in HTTP/1 wire form (`name: value\r\n` each), made from valid names and values
/// only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedHeaders(Bytes);

impl EncodedHeaders {
    /// Encodes `headers` in order. Repeated names give repeated lines.
    pub fn encode<'a, I>(headers: I) -> Self
    where
        I: IntoIterator<Item = (&'a HeaderName, &'a HeaderValue)>,
        I::IntoIter: Clone,
    {
        let headers = headers.into_iter();
        let len = headers
            .clone()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        let mut buf = BytesMut::with_capacity(len);
        for (name, value) in headers {
            buf.extend_from_slice(name.as_str().as_bytes());
            buf.extend_from_slice(b": ");
            buf.extend_from_slice(value.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        EncodedHeaders(buf.freeze())
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length of the wire bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no lines.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The headers back as names and values (for HTTP/2, which has no wire form to append
    /// to). The values share the block's bytes.
    pub fn iter(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            let rest = &self.0[at..];
            let end = rest.windows(2).position(|w| w == b"\r\n")?;
            let colon = rest[..end].iter().position(|&b| b == b':')?;
            let start = at;
            at += end + 2;
            // Made from a parsed name and value: neither can fail to parse again.
            let name = HeaderName::from_bytes(&rest[..colon]).ok()?;
            let value = self.0.slice(start + colon + 2..start + end);
            let value = HeaderValue::from_maybe_shared(value).ok()?;
            Some((name, value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_reads_back() {
        let a = HeaderName::from_static("x-auth-user");
        let b = HeaderName::from_static("x-auth-groups");
        let va = HeaderValue::from_static("ana@example.com");
        let vb = HeaderValue::from_static("a, b,c");
        let empty = HeaderValue::from_static("");
        let e = EncodedHeaders::encode([(&a, &va), (&b, &vb), (&b, &empty)]);
        assert_eq!(
            e.as_bytes(),
            b"x-auth-user: ana@example.com\r\nx-auth-groups: a, b,c\r\nx-auth-groups: \r\n"
        );
        let back: Vec<_> = e.iter().collect();
        assert_eq!(back, vec![(a, va), (b.clone(), vb), (b, empty)]);
        assert!(EncodedHeaders::encode([]).is_empty());
        assert_eq!(EncodedHeaders::encode([]).iter().count(), 0);
    }

    #[test]
    fn a_value_with_a_colon_reads_back_whole() {
        let n = HeaderName::from_static("x-url");
        let v = HeaderValue::from_static("https://a:1/b: c");
        let e = EncodedHeaders::encode([(&n, &v)]);
        assert_eq!(e.iter().collect::<Vec<_>>(), vec![(n, v)]);
    }
}
