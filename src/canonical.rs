//! The canonical request: the one reading of a request's host and path that routing, policy,
//! forward-auth and the upstream all share.
//!
//! The gateway decides on exactly the request the upstream receives: the host it routes on is
//! the `Host` the upstream gets, the path it routes on is the request target the upstream
//! gets. What common upstream servers read differently from each other (servlet containers'
//! `;parameters`, double-decoding apps' `%25`, Windows/IIS' trailing dots, `::$DATA` and
//! short names, backslashes, control bytes, Unicode look-alikes of `/` and `.`) is refused,
//! because no single reading of it is safe for every upstream.

use std::fmt;

/// Why a request could not be read unambiguously. The label goes into metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// A byte outside printable ASCII in the request target (raw UTF-8, controls, spaces).
    RawByte,
    /// Neither origin-form (`/path`) nor an `http(s)://` absolute-form target.
    TargetForm,
    /// More than one `Host` header.
    DuplicateHost,
    /// HTTP/1.1 without `Host` (RFC 9112 §3.2), or an empty one.
    MissingHost,
    /// A host that is not a plain DNS name or IP literal (userinfo, `%`, spaces, ...).
    BadHost,
    /// The absolute-form target names another host than `Host`.
    HostConflict,
    /// `.` or `..` segments, also encoded.
    DotSegment,
    /// `%2F` (upstreams disagree on whether it separates segments).
    EncodedSlash,
    /// `\` or `%5C` (Windows servers read it as `/`).
    Backslash,
    /// `%25`: an encoded percent sign decodes to another escape in a double-decoding app.
    EncodedPercent,
    /// `%` not followed by two hex digits (IIS reads `%u002e`).
    BadEscape,
    /// A control byte, encoded (`%00`, `%09`, `%0A`, `%7F`).
    Control,
    /// `;` in the path: servlet containers drop `;params` from each segment.
    PathParameter,
    /// A segment ending in `.` or a space: Windows drops them (`/admin.` is `/admin`).
    TrailingDotOrSpace,
    /// `::` or `:$` (NTFS alternate data streams, `/admin::$DATA`).
    AlternateStream,
    /// `~` and a digit: a Windows 8.3 short name (`/ADMINI~1` is `/administrator`).
    ShortName,
    /// Percent-encoded bytes that are not UTF-8 (overlong `%C0%AE` is `.` to old decoders).
    BadUtf8,
    /// A Unicode character that normalizes to ASCII (full-width `／`, `．`, `Ａ`, ...).
    Lookalike,
}

impl Unreadable {
    pub fn label(self) -> &'static str {
        match self {
            Unreadable::RawByte => "raw_byte",
            Unreadable::TargetForm => "target_form",
            Unreadable::DuplicateHost => "duplicate_host",
            Unreadable::MissingHost => "missing_host",
            Unreadable::BadHost => "bad_host",
            Unreadable::HostConflict => "host_conflict",
            Unreadable::DotSegment => "dot_segment",
            Unreadable::EncodedSlash => "encoded_slash",
            Unreadable::Backslash => "backslash",
            Unreadable::EncodedPercent => "encoded_percent",
            Unreadable::BadEscape => "bad_escape",
            Unreadable::Control => "control_byte",
            Unreadable::PathParameter => "path_parameter",
            Unreadable::TrailingDotOrSpace => "trailing_dot_or_space",
            Unreadable::AlternateStream => "alternate_stream",
            Unreadable::ShortName => "short_name",
            Unreadable::BadUtf8 => "bad_utf8",
            Unreadable::Lookalike => "unicode_lookalike",
        }
    }

    /// Refusals about the host, as opposed to the path.
    pub fn is_host(self) -> bool {
        matches!(
            self,
            Unreadable::DuplicateHost
                | Unreadable::MissingHost
                | Unreadable::BadHost
                | Unreadable::HostConflict
        )
    }
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Path forms a route may accept although some upstream servers read them differently
/// (`routes[].path_exceptions`). Each is a documented risk the operator takes for one app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Exceptions {
    /// `;` path parameters (`;jsessionid=...`). Routing uses the path without them (the
    /// servlet reading); the upstream receives them.
    pub path_parameters: bool,
    /// `%2F` inside a segment, kept encoded. Routing uses both readings and they must agree.
    pub encoded_slash: bool,
}

impl Exceptions {
    pub const ALL: [&'static str; 2] = ["path_parameters", "encoded_slash"];

    pub fn union(self, o: Exceptions) -> Exceptions {
        Exceptions {
            path_parameters: self.path_parameters || o.path_parameters,
            encoded_slash: self.encoded_slash || o.encoded_slash,
        }
    }

    /// Whether `self` permits everything `used` needs.
    pub fn covers(self, used: Exceptions) -> bool {
        (self.path_parameters || !used.path_parameters)
            && (self.encoded_slash || !used.encoded_slash)
    }
}

/// A request target and host, read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    /// Lower-case, no trailing dot, no port: what host routes match.
    pub host: Option<String>,
    /// `host[:port]` (a default port dropped): the `Host` the upstream receives.
    pub authority: Option<String>,
    /// The port the client named, if any (for `X-Forwarded-Port`).
    pub port: Option<u16>,
    /// The normalized path the upstream receives.
    pub path: String,
    /// The path as routing reads it, when that differs (path parameters removed under that
    /// exception): see `route_path`.
    routed: Option<String>,
    /// The query, as received (it does not take part in routing).
    pub query: Option<String>,
    /// Which exceptions this request needed: only routes allowing them may take it.
    pub used: Exceptions,
}

impl Canonical {
    /// The origin-form request target the upstream receives.
    pub fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// The same path as routing reads it (path parameters removed under that exception).
    pub fn route_path(&self) -> &str {
        self.routed.as_deref().unwrap_or(&self.path)
    }

    /// Whether the path is under the gateway's reserved prefix, in any spelling.
    pub fn is_reserved(&self, prefix: &str) -> bool {
        has_prefix_ci(self.route_path(), prefix)
    }
}

/// `path` starts with `prefix` (ASCII case-insensitively) at a segment boundary.
pub fn has_prefix_ci(path: &str, prefix: &str) -> bool {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        return true;
    }
    path.len() >= p.len()
        && path.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
        && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
}

/// Reads a request as pingora parsed it: the target's exact bytes, every `Host`, HTTP/2's
/// `:authority`.
pub fn of(
    req: &pingora::http::RequestHeader,
    allowed: Exceptions,
) -> Result<Canonical, Unreadable> {
    // Two values are enough to know there is more than one (refused either way).
    let mut hosts: [&[u8]; 2] = [b"", b""];
    let mut n = 0;
    for v in req.headers.get_all(http::header::HOST).iter().take(2) {
        hosts[n] = v.as_bytes();
        n += 1;
    }
    let authority = req.uri.authority().map(|a| a.as_str());
    read(
        req.raw_path(),
        &hosts[..n],
        authority,
        req.version >= http::Version::HTTP_11,
        allowed,
    )
}

/// Makes the request say exactly what was read: origin-form target, canonical `Host`.
pub fn apply(req: &mut pingora::http::RequestHeader, c: &Canonical) -> pingora::Result<()> {
    let raw = req.raw_path();
    let path = c.path.as_bytes();
    let same = match &c.query {
        Some(q) => {
            raw.len() == path.len() + 1 + q.len()
                && raw.starts_with(path)
                && raw[path.len()] == b'?'
                && raw.ends_with(q.as_bytes())
        }
        None => raw == path,
    };
    if !same || req.uri.authority().is_some() {
        match c.target().parse::<http::Uri>() {
            Ok(uri) => req.set_uri(uri),
            Err(_) => {
                return pingora::Error::e_explain(
                    pingora::ErrorType::InvalidHTTPHeader,
                    "canonical target is not a URI",
                )
            }
        }
    }
    if let Some(a) = &c.authority {
        let same = req
            .headers
            .get(http::header::HOST)
            .is_some_and(|h| h.as_bytes() == a.as_bytes());
        if !same {
            req.insert_header(http::header::HOST, a.as_str())?;
        }
    }
    Ok(())
}

/// Reads a request: `target` is the request-target exactly as received, `hosts` the values of
/// every `Host` header, `authority` the HTTP/2 `:authority` if any, `http11` whether a `Host` is
/// mandatory, and `allowed` the union of every route's exceptions.
pub fn read(
    target: &[u8],
    hosts: &[&[u8]],
    authority: Option<&str>,
    http11: bool,
    allowed: Exceptions,
) -> Result<Canonical, Unreadable> {
    if target.iter().any(|b| !(0x21..=0x7e).contains(b)) {
        return Err(Unreadable::RawByte);
    }
    // Only ASCII remains, so this cannot fail.
    let target = std::str::from_utf8(target).map_err(|_| Unreadable::RawByte)?;
    let (target_authority, path_and_query) = split_target(target)?;
    let (raw_path, query) = match split_at_byte(path_and_query, b'?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (path_and_query, None),
    };
    let raw_path = if raw_path.is_empty() { "/" } else { raw_path };

    // The host: the target's authority, `:authority` and `Host` must all agree.
    if hosts.len() > 1 {
        return Err(Unreadable::DuplicateHost);
    }
    let mut named: Option<(String, Option<u16>)> = None;
    let header = match hosts.first() {
        Some(h) => Some(std::str::from_utf8(h).map_err(|_| Unreadable::BadHost)?),
        None => None,
    };
    for source in [target_authority, authority, header].into_iter().flatten() {
        let got = read_authority(source)?;
        match &named {
            Some(prev) if *prev != got => return Err(Unreadable::HostConflict),
            Some(_) => {}
            None => named = Some(got),
        }
    }
    if named.is_none() && http11 {
        return Err(Unreadable::MissingHost);
    }

    let (path, routed, used) = read_path(raw_path, allowed)?;
    let (host, port) = match named {
        Some((h, p)) => (Some(h), p),
        None => (None, None),
    };
    let authority = host.as_deref().map(|h| authority_of(h, port));
    Ok(Canonical {
        host,
        authority,
        port,
        path,
        routed,
        query,
        used,
    })
}

/// `host[:port]`, built to its exact length (it becomes a header value without a copy).
fn authority_of(host: &str, port: Option<u16>) -> String {
    let Some(mut n) = port else {
        return host.to_string();
    };
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut a = String::with_capacity(host.len() + 1 + digits.len() - i);
    a.push_str(host);
    a.push(':');
    for d in &digits[i..] {
        a.push(char::from(*d));
    }
    a
}

/// Splits origin-form and absolute-form targets into (authority, path-and-query).
fn split_target(target: &str) -> Result<(Option<&str>, &str), Unreadable> {
    if target.starts_with('/') {
        return Ok((None, target));
    }
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|s| {
            (target.len() > s.len() && target[..s.len()].eq_ignore_ascii_case(s))
                .then(|| &target[s.len()..])
        })
        .ok_or(Unreadable::TargetForm)?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, pq) = rest.split_at(end);
    if authority.is_empty() {
        return Err(Unreadable::BadHost);
    }
    // `http://host?q` has the path `/` (the caller maps an empty path to it).
    Ok((Some(authority), pq))
}

/// `host[:port]` → (lower-case host without a trailing dot, port).
fn read_authority(a: &str) -> Result<(String, Option<u16>), Unreadable> {
    let a = trim_blanks(a);
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or(Unreadable::BadHost)?;
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(Unreadable::BadHost);
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(Unreadable::BadHost)?),
        };
        (format!("[{}]", h.to_ascii_lowercase()), port)
    } else {
        let (h, p) = match split_at_byte(a, b':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        };
        let h = h.strip_suffix('.').unwrap_or(h);
        let ok = !h.is_empty() && h.len() <= 253 && labels_ok(h.as_bytes());
        if !ok {
            return Err(Unreadable::BadHost);
        }
        (h.to_ascii_lowercase(), p)
    };
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Unreadable::BadHost);
            }
            match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(Unreadable::BadHost),
                Ok(n) => Some(n),
            }
        }
    };
    // A default port names the same origin as none: both spellings are one host.
    let port = port.filter(|p| *p != 80 && *p != 443);
    Ok((host, port))
}

/// `s.split_once(c)` for an ASCII `c`, without a searcher (these strings are short).
fn split_at_byte(s: &str, c: u8) -> Option<(&str, &str)> {
    let i = s.as_bytes().iter().position(|&b| b == c)?;
    // `c` is ASCII: both sides of it are character boundaries.
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// Spaces and tabs cut from both ends (a `Host` value's optional white space).
fn trim_blanks(a: &str) -> &str {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let b = a.as_bytes();
    let start = b.iter().position(|c| !blank(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !blank(c)).map_or(start, |i| i + 1);
    // Both ends are next to ASCII bytes (or the ends of `a`): character boundaries.
    a.get(start..end).unwrap_or("")
}

/// Every `.`-separated label is non-empty and only letters, digits, `-` and `_`.
fn labels_ok(h: &[u8]) -> bool {
    let mut prev = b'.';
    for &b in h {
        let ok = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && prev != b'.');
        if !ok {
            return false;
        }
        prev = b;
    }
    prev != b'.'
}

/// Normalizes a path: decodes unreserved escapes (RFC 3986 §6.2.2.2), upper-cases the hex of
/// the others, folds `//`, and refuses what upstream servers read in different ways. Returns
/// (path for the upstream, path for routing, exceptions used).
fn read_path(
    raw: &str,
    allowed: Exceptions,
) -> Result<(String, Option<String>, Exceptions), Unreadable> {
    match plain_path(raw) {
        Some(read) => read,
        None => read_path_in_full(raw, allowed),
    }
}

/// The common path, with nothing to decode, fold or refuse by character (no `%`, `\`, `;`
/// or `//`): it is its own normal form, and its segments are checked in one pass. `None`:
/// it needs `read_path_in_full`, which reads such a path the same way.
fn plain_path(raw: &str) -> Option<Result<(String, Option<String>, Exceptions), Unreadable>> {
    let mut prev = 0u8;
    for &c in raw.as_bytes() {
        if matches!(c, b'%' | b'\\' | b';') || (c == b'/' && prev == b'/') {
            return None;
        }
        prev = c;
    }
    Some(plain_segments(raw).map(|()| (raw.to_string(), None, Exceptions::default())))
}

/// `check_segment` on every segment of a path with no `%` and no `;` (nothing to decode or
/// cut, and ASCII only), without splitting or searching per segment.
fn plain_segments(path: &str) -> Result<(), Unreadable> {
    for seg in path.as_bytes().split(|&b| b == b'/') {
        if seg == b"." || seg == b".." {
            return Err(Unreadable::DotSegment);
        }
        if matches!(seg.last(), Some(b'.' | b' ')) {
            return Err(Unreadable::TrailingDotOrSpace);
        }
        let (mut alternate, mut short) = (false, false);
        for w in seg.windows(2) {
            alternate |= w[0] == b':' && matches!(w[1], b':' | b'$');
            short |= w[0] == b'~' && w[1].is_ascii_digit();
        }
        if alternate {
            return Err(Unreadable::AlternateStream);
        }
        if short {
            return Err(Unreadable::ShortName);
        }
    }
    Ok(())
}

/// `read_path` for any path: escapes, `;` parameters, `//`.
fn read_path_in_full(
    raw: &str,
    allowed: Exceptions,
) -> Result<(String, Option<String>, Exceptions), Unreadable> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut used = Exceptions::default();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'%' => {
                let hex = |x: Option<&u8>| x.and_then(|x| (*x as char).to_digit(16));
                let (Some(h), Some(l)) = (hex(b.get(i + 1)), hex(b.get(i + 2))) else {
                    return Err(Unreadable::BadEscape);
                };
                let v = (h * 16 + l) as u8;
                match v {
                    b'%' => return Err(Unreadable::EncodedPercent),
                    b'\\' => return Err(Unreadable::Backslash),
                    b'/' if allowed.encoded_slash => {
                        used.encoded_slash = true;
                        out.push_str("%2F");
                    }
                    b'/' => return Err(Unreadable::EncodedSlash),
                    0..=0x1f | 0x7f => return Err(Unreadable::Control),
                    b';' if !allowed.path_parameters => return Err(Unreadable::PathParameter),
                    v if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') => {
                        out.push(v as char)
                    }
                    v => {
                        out.push('%');
                        out.push(char::from_digit((v >> 4) as u32, 16).unwrap_or('0'));
                        out.push(char::from_digit((v & 15) as u32, 16).unwrap_or('0'));
                        let n = out.len();
                        out[n - 2..].make_ascii_uppercase();
                    }
                }
                i += 3;
            }
            b'\\' => return Err(Unreadable::Backslash),
            b';' if allowed.path_parameters => {
                used.path_parameters = true;
                out.push(';');
                i += 1;
            }
            b';' => return Err(Unreadable::PathParameter),
            b'/' if out.ends_with('/') => i += 1,
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    // Routing reads the path the way the strictest upstream would: without `;params`.
    let routed = used.path_parameters.then(|| {
        let stripped: Vec<&str> = out
            .split('/')
            .map(|seg| seg.split(';').next().unwrap_or(""))
            .collect();
        let mut p = stripped.join("/");
        while p.contains("//") {
            p = p.replace("//", "/");
        }
        p
    });
    let paths: &[&str] = match &routed {
        Some(r) => &[out.as_str(), r.as_str()],
        None => &[out.as_str()],
    };
    for path in paths {
        for seg in path.split('/') {
            check_segment(seg)?;
        }
        // `%2F` read as a separator must not make a dot segment either.
        if used.encoded_slash {
            for seg in path.split(['/']).flat_map(|s| s.split("%2F")) {
                check_segment(seg)?;
            }
        }
    }
    Ok((out, routed, used))
}

fn check_segment(seg: &str) -> Result<(), Unreadable> {
    // Each segment as a decoding server sees it (servlets also cut at `;`).
    for part in seg.split(';') {
        let decoded = decode(part)?;
        let decoded: &str = &decoded;
        if decoded == "." || decoded == ".." {
            return Err(Unreadable::DotSegment);
        }
        if decoded.ends_with(['.', ' ']) && !decoded.is_empty() {
            return Err(Unreadable::TrailingDotOrSpace);
        }
        if decoded.contains("::") || decoded.contains(":$") {
            return Err(Unreadable::AlternateStream);
        }
        let bytes = decoded.as_bytes();
        if bytes
            .windows(2)
            .any(|w| w[0] == b'~' && w[1].is_ascii_digit())
        {
            return Err(Unreadable::ShortName);
        }
        if !decoded.is_ascii() && decoded.chars().any(is_lookalike) {
            return Err(Unreadable::Lookalike);
        }
    }
    Ok(())
}

/// Full percent-decoding of one segment (escapes are already validated); must be UTF-8.
fn decode(seg: &str) -> Result<std::borrow::Cow<'_, str>, Unreadable> {
    if !seg.contains('%') {
        return Ok(std::borrow::Cow::Borrowed(seg));
    }
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(seg).collect();
    String::from_utf8(bytes)
        .map(std::borrow::Cow::Owned)
        .map_err(|_| Unreadable::BadUtf8)
}

/// Characters that Unicode compatibility normalization (NFKC, used by IIS/ASP.NET and some
/// frameworks) turns into ASCII, or that look like `/` and `.`.
fn is_lookalike(c: char) -> bool {
    matches!(c as u32,
        0xFF01..=0xFF5E          // full-width ASCII
        | 0x2024 | 0x2025 | 0x2026 // one/two-dot leader, ellipsis
        | 0xFE52 | 0xFE4D..=0xFE4F // small full stop, low lines
        | 0x2215 | 0x2044 | 0x29F8 // division slash, fraction slash, big solidus
        | 0x2216 | 0xFE68 | 0x29F5 | 0x29F9 // backslash look-alikes
        | 0x00A0 | 0x2000..=0x200F | 0x2028..=0x202F | 0x205F..=0x206F | 0x3000 | 0xFEFF // spaces, invisibles
        | 0x2100..=0x214F          // letterlike symbols (Kelvin and Angstrom signs among them)
        | 0x2460..=0x24FF          // enclosed alphanumerics
        | 0x1D400..=0x1D7FF        // mathematical alphanumerics
        | 0x00AA | 0x00B2 | 0x00B3 | 0x00B9 | 0x00BA | 0x017F // ª ² ³ ¹ º ſ
        | 0x0130 | 0x0131          // dotted/dotless i (case mapping to ASCII)
    )
}

/// The path prefix the gateway keeps for itself on every host (callback, sign-out, ...).
pub const RESERVED_PREFIX: &str = "/_authgate";

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(target: &str) -> Canonical {
        read(
            target.as_bytes(),
            &[b"app.test"],
            None,
            true,
            Exceptions::default(),
        )
        .unwrap_or_else(|e| panic!("{target}: {e}"))
    }

    fn refused(target: &str) -> Unreadable {
        match read(
            target.as_bytes(),
            &[b"app.test"],
            None,
            true,
            Exceptions::default(),
        ) {
            Ok(c) => panic!("{target} accepted as {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn normal_paths() {
        assert_eq!(ok("/a/b?x=1").target(), "/a/b?x=1");
        assert_eq!(ok("//admin//x").path, "/admin/x");
        assert_eq!(ok("/%61dmin").path, "/admin");
        assert_eq!(ok("/a%20b").path, "/a%20b");
        assert_eq!(ok("/caf%c3%a9").path, "/caf%C3%A9");
        assert_eq!(ok("/~user/x").path, "/~user/x");
        assert_eq!(ok("/v1.2/file.txt").path, "/v1.2/file.txt");
        assert_eq!(ok("/?q=..;%25").target(), "/?q=..;%25");
    }

    #[test]
    fn refusals() {
        use Unreadable::*;
        let table: &[(&str, Unreadable)] = &[
            ("/public/../admin", DotSegment),
            ("/public/%2e%2e/admin", DotSegment),
            ("/./admin", DotSegment),
            ("/a%2Fb", EncodedSlash),
            ("/a\\b", Backslash),
            ("/a%5cb", Backslash),
            ("/a%00", Control),
            ("/admin%09", Control),
            ("/public/..;/admin/", PathParameter),
            ("/admin;x", PathParameter),
            ("/admin%3bx", PathParameter),
            ("/public/%252e%252e/admin", EncodedPercent),
            ("/admin.", TrailingDotOrSpace),
            ("/admin%20", TrailingDotOrSpace),
            ("/admin%2e/", TrailingDotOrSpace),
            ("/admin::$DATA", AlternateStream),
            ("/admin:$DATA", AlternateStream),
            ("/ADMINI~1/", ShortName),
            ("/%u002e%u002e/admin", BadEscape),
            ("/a%zz", BadEscape),
            ("/a%", BadEscape),
            ("/public/%c0%ae%c0%ae/admin", BadUtf8),
            ("/%ef%bc%a1dmin", Lookalike),
            ("/public/%ef%bc%8e%ef%bc%8e/admin", Lookalike),
            ("*", TargetForm),
            ("ftp://app.test/", TargetForm),
            ("app.test:80", TargetForm),
        ];
        for (t, want) in table {
            assert_eq!(refused(t), *want, "{t}");
        }
    }

    /// The one-pass reading of plain paths says exactly what the full reading says, on every
    /// path it takes: every string of up to 4 characters from an alphabet of the characters
    /// the checks look at, after a `/`, and a table of longer ones.
    #[test]
    fn plain_paths_read_as_the_full_reading_reads_them() {
        let alphabet = [
            b'/', b'.', b':', b'$', b'~', b'1', b'a', b' ', b'%', b';', b'\\',
        ];
        let mut paths: Vec<String> = [
            "/",
            "/app/x.html",
            "/a/b/c/",
            "/ADMINI~1/x",
            "/x~a/y",
            "/a:b/c",
            "/a/b::$DATA",
            "/a/b:$DATA/c",
            "/a./b",
            "/a/..",
            "/a/.../b",
            "/.well-known/x",
            "/_authgate/callback",
        ]
        .iter()
        .map(|p| p.to_string())
        .collect();
        let mut frontier = vec![String::from("/")];
        for _ in 0..4 {
            let mut next = Vec::new();
            for p in &frontier {
                for c in alphabet {
                    next.push(format!("{p}{}", c as char));
                }
            }
            paths.extend(next.iter().cloned());
            frontier = next;
        }
        let mut plain = 0;
        for p in &paths {
            let Some(fast) = plain_path(p) else { continue };
            plain += 1;
            let full = read_path_in_full(p, Exceptions::default());
            assert_eq!(fast, full, "{p:?}");
            let all = Exceptions {
                encoded_slash: true,
                path_parameters: true,
            };
            assert_eq!(plain_path(p), Some(read_path_in_full(p, all)), "{p:?}");
        }
        assert!(plain > 1_000, "{plain} plain paths");
    }

    /// The byte loops for host labels and blanks say what the string splits said.
    #[test]
    fn host_labels_and_blanks_read_as_the_splits_read_them() {
        let by_split = |h: &str| {
            h.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        };
        let alphabet = ["a", "Z", "0", "-", "_", ".", ":", " ", "\t", "é", "*"];
        let mut hosts = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..4 {
            let next: Vec<String> = frontier
                .iter()
                .flat_map(|h| alphabet.iter().map(move |c| format!("{h}{c}")))
                .collect();
            hosts.extend(next.iter().cloned());
            frontier = next;
        }
        for h in &hosts {
            if !h.is_empty() {
                assert_eq!(labels_ok(h.as_bytes()), by_split(h), "{h:?}");
            }
            assert_eq!(trim_blanks(h), h.trim_matches([' ', '\t']), "{h:?}");
            assert_eq!(split_at_byte(h, b':'), h.split_once(':'), "{h:?}");
        }
    }

    #[test]
    fn hosts() {
        let r = |t: &str, hosts: &[&[u8]], h11: bool| {
            read(t.as_bytes(), hosts, None, h11, Exceptions::default())
        };
        let c = r("/", &[b"Secret.TEST.:80"], true).unwrap();
        assert_eq!(c.host.as_deref(), Some("secret.test"));
        assert_eq!(c.authority.as_deref(), Some("secret.test"));
        let c = r("/", &[b"secret.test:8443"], true).unwrap();
        assert_eq!(c.authority.as_deref(), Some("secret.test:8443"));
        assert_eq!(c.port, Some(8443));
        // Absolute form: the target's authority is the host, and must agree with Host.
        let c = r("http://secret.test/public/x", &[], true).unwrap();
        assert_eq!(c.host.as_deref(), Some("secret.test"));
        assert_eq!(c.target(), "/public/x");
        let c = r("HTTPS://secret.test:443", &[b"secret.test"], true).unwrap();
        assert_eq!(
            (c.host.as_deref(), c.path.as_str()),
            (Some("secret.test"), "/")
        );
        assert_eq!(
            r("http://secret.test/", &[b"other.test"], true),
            Err(Unreadable::HostConflict)
        );
        assert_eq!(
            r("/", &[b"a.test", b"b.test"], true),
            Err(Unreadable::DuplicateHost)
        );
        assert_eq!(r("/", &[], true), Err(Unreadable::MissingHost));
        assert_eq!(r("/", &[], false).unwrap().host, None);
        for bad in [
            "",
            "a b",
            "user@host",
            "host%2etest",
            "a..b",
            "[zz]",
            "h:",
            "h:0",
            "h:99999",
            "h:8x",
            "h/x",
        ] {
            assert_eq!(
                r("/", &[bad.as_bytes()], true),
                Err(Unreadable::BadHost),
                "{bad:?}"
            );
        }
        assert_eq!(r("http://u@h.test/", &[], true), Err(Unreadable::BadHost));
        assert_eq!(r("/caf\u{e9}", &[b"h"], true), Err(Unreadable::RawByte));
    }

    #[test]
    fn exceptions() {
        let both = Exceptions {
            path_parameters: true,
            encoded_slash: true,
        };
        let c = read(b"/app/x;jsessionid=AB", &[b"h"], None, true, both).unwrap();
        assert_eq!(c.path, "/app/x;jsessionid=AB");
        assert_eq!(c.route_path(), "/app/x");
        assert!(c.used.path_parameters && !c.used.encoded_slash);
        // `..;` is still a dot segment to the servlet reading.
        assert_eq!(
            read(b"/public/..;/admin", &[b"h"], None, true, both),
            Err(Unreadable::DotSegment)
        );
        let c = read(b"/pkg/a%2fb", &[b"h"], None, true, both).unwrap();
        assert_eq!(c.path, "/pkg/a%2Fb");
        assert!(c.used.encoded_slash);
        assert_eq!(
            read(b"/pkg/%2e%2e%2fadmin", &[b"h"], None, true, both),
            Err(Unreadable::DotSegment)
        );
        assert!(!Exceptions::default().covers(c.used));
        assert!(both.covers(c.used));
    }

    #[test]
    fn reserved_prefix_in_every_spelling() {
        for t in [
            "/_authgate/x",
            "//_authgate/x",
            "/%5fauthgate/x",
            "/_AUTHGATE/x",
            "/_authgate",
        ] {
            assert!(ok(t).is_reserved("/_authgate"), "{t}");
        }
        assert!(!ok("/_authgatex").is_reserved("/_authgate"));
    }
}
