//! Reading configuration: the YAML walker every section's reader uses (`Reader`, `Obj`),
//! errors with the path of the value they are about, all collected instead of stopping at
//! the first, and the value types it reads (secrets, address ranges, durations). Each
//! section's reader lives beside what it configures (`route/read.rs`, `idp/read.rs`,
//! `idp/entra/preset.rs`, `session/read.rs`, `headers/read.rs`, `policy/read.rs`,
//! `forward_auth.rs`); `config.rs` reads the top level and calls them.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

/// One problem in the configuration, with the path of the value it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// All problems found in one file; never just the first.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} error(s) in the configuration:", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A secret value; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// An address range such as `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip.parse::<std::net::IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let ip = s.parse::<std::net::IpAddr>().ok()?;
                (ip, if ip.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { net: ip, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map(V4).unwrap_or(V6(v6)),
            v4 => v4,
        };
        match (self.net, ip) {
            (V4(n), V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (V6(n), V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Walks the YAML tree, collecting errors instead of stopping at the first.
pub(crate) struct Reader<'e> {
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) warnings: Vec<ConfigError>,
    pub(crate) env: &'e dyn Fn(&str) -> Option<String>,
}

/// A YAML mapping being read; remembers which keys were used so the rest can be reported.
pub(crate) struct Obj<'a> {
    pub(crate) path: String,
    pub(crate) map: Option<&'a Mapping>,
    pub(crate) used: HashSet<String>,
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'e> Reader<'e> {
    pub(crate) fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// A finding that does not stop the gateway (shown by `authgate check`, logged).
    pub(crate) fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn obj<'a>(&mut self, path: &str, v: Option<&'a Value>) -> Obj<'a> {
        let map = match v {
            None | Some(Value::Null) => None,
            Some(Value::Mapping(m)) => Some(m),
            Some(_) => {
                self.err(path, "expected a mapping (key: value)");
                None
            }
        };
        Obj {
            path: path.to_string(),
            map,
            used: HashSet::new(),
        }
    }

    pub(crate) fn get<'a>(&mut self, o: &mut Obj<'a>, key: &str) -> Option<&'a Value> {
        o.used.insert(key.to_string());
        match o.map?.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// Reports keys of `o` that nothing read: a typo in an auth product is dangerous.
    pub(crate) fn finish(&mut self, o: Obj<'_>) {
        let Some(map) = o.map else { return };
        for k in map.keys() {
            let name = match k {
                Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            };
            if !o.used.contains(&name) {
                let mut known: Vec<&str> = o.used.iter().map(String::as_str).collect();
                known.sort_unstable();
                self.err(
                    join(&o.path, &name),
                    format!("unknown key (known keys here: {})", known.join(", ")),
                );
            }
        }
    }

    /// Expands `${NAME}` from the environment; a missing variable is an error at `path`.
    pub(crate) fn expand(&mut self, path: &str, s: &str) -> Option<String> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                self.err(path, "unterminated ${...} reference");
                return None;
            };
            let name = &after[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                self.err(path, format!("invalid environment variable name {name:?}"));
                return None;
            }
            match (self.env)(name) {
                Some(v) => out.push_str(&v),
                None => {
                    self.err(path, format!("environment variable {name} is not set"));
                    return None;
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    pub(crate) fn string(&mut self, o: &mut Obj<'_>, key: &str) -> Option<String> {
        let path = join(&o.path, key);
        match self.get(o, key)? {
            Value::String(s) => self.expand(&path, s),
            Value::Number(n) => Some(n.to_string()),
            _ => {
                self.err(path, "expected a string");
                None
            }
        }
    }

    pub(crate) fn required_string(&mut self, o: &mut Obj<'_>, key: &str) -> Option<String> {
        let v = self.string(o, key);
        if v.is_none() && !self.errors.iter().any(|e| e.path == join(&o.path, key)) {
            self.err(join(&o.path, key), "is required");
        }
        v
    }

    pub(crate) fn bool(&mut self, o: &mut Obj<'_>, key: &str) -> Option<bool> {
        let path = join(&o.path, key);
        match self.get(o, key)? {
            Value::Bool(b) => Some(*b),
            _ => {
                self.err(path, "expected true or false");
                None
            }
        }
    }

    pub(crate) fn uint(&mut self, o: &mut Obj<'_>, key: &str) -> Option<u64> {
        let path = join(&o.path, key);
        match self.get(o, key)? {
            Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
            _ => {
                self.err(path, "expected a whole number");
                None
            }
        }
    }

    pub(crate) fn duration(&mut self, o: &mut Obj<'_>, key: &str) -> Option<Duration> {
        let path = join(&o.path, key);
        let v = self.get(o, key)?;
        let parsed = match v {
            Value::Number(n) => n.as_u64().map(Duration::from_secs),
            Value::String(s) => parse_duration(s),
            _ => None,
        };
        if parsed.is_none() {
            self.err(path, "expected a duration such as 90s, 15m, 8h or 1d");
        }
        parsed
    }

    pub(crate) fn list<'a>(&mut self, o: &mut Obj<'a>, key: &str) -> Vec<(String, &'a Value)> {
        let path = join(&o.path, key);
        match self.get(o, key) {
            None => Vec::new(),
            Some(Value::Sequence(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{path}[{i}]"), v))
                .collect(),
            Some(_) => {
                self.err(path, "expected a list");
                Vec::new()
            }
        }
    }

    pub(crate) fn string_list(&mut self, o: &mut Obj<'_>, key: &str) -> Option<Vec<String>> {
        let present = o.map.and_then(|m| m.get(key)).is_some();
        let items = self.list(o, key);
        if !present {
            return None;
        }
        let mut out = Vec::new();
        for (path, v) in items {
            match v {
                Value::String(s) => {
                    if let Some(s) = self.expand(&path, s) {
                        out.push(s);
                    }
                }
                _ => self.err(path, "expected a string"),
            }
        }
        Some(out)
    }

    /// A secret given as `key` (usually `${ENV}`) or `key_file` (a path), exactly one of them.
    pub(crate) fn secret(&mut self, o: &mut Obj<'_>, key: &str) -> Option<Secret> {
        let file_key = format!("{key}_file");
        let raw_inline = o
            .map
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_string);
        let inline = self.string(o, key);
        let file = self.string(o, &file_key);
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.err(
                    join(&o.path, key),
                    format!("give either {key} or {file_key}, not both"),
                );
                None
            }
            (Some(v), None) => {
                if raw_inline.is_some_and(|raw| !raw.contains("${")) {
                    self.warnings.push(ConfigError {
                        path: join(&o.path, key),
                        message: format!(
                            "secret written inline in the file; prefer ${{ENV_VAR}} or {file_key}"
                        ),
                    });
                }
                Some(Secret(v))
            }
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(s) => Some(Secret(s.trim_end_matches(['\r', '\n']).to_string())),
                Err(e) => {
                    self.err(join(&o.path, &file_key), format!("cannot read {path}: {e}"));
                    None
                }
            },
            (None, None) => {
                let path = join(&o.path, key);
                if !self.errors.iter().any(|e| e.path.starts_with(&path)) {
                    self.err(path, format!("is required (or {file_key})"));
                }
                None
            }
        }
    }

    pub(crate) fn socket_addr(&mut self, path: &str, s: &str) -> Option<SocketAddr> {
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(path, format!("{s:?} is not an address like 0.0.0.0:8080"));
                None
            }
        }
    }

    /// A list of address ranges at `key` of `o`.
    pub(crate) fn cidrs(&mut self, o: &mut Obj<'_>, key: &str) -> Vec<Cidr> {
        let mut out = Vec::new();
        for (path, v) in self.list(o, key) {
            match v.as_str().map(|s| (s, Cidr::parse(s))) {
                Some((_, Some(c))) => out.push(c),
                Some((s, None)) => self.err(
                    path,
                    format!("{s:?} is not an address or range like 10.0.0.0/8"),
                ),
                None => self.err(path, "expected an address range string"),
            }
        }
        out
    }
}

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `90s`, `15m`, `8h`, `1d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

/// For the section readers' tests: a minimal valid configuration ending in `session:`, so a
/// test appends session keys (indented) or a section (not indented).
#[cfg(test)]
pub(crate) mod testing {
    pub(crate) const BASE: &str = "listen: [\"127.0.0.1:8080\"]\npublic_url: \"http://127.0.0.1:8080\"\n\
        providers:\n  - name: demo\n    type: oidc\n    issuer: \"http://127.0.0.1:4000/t/v2.0\"\n    client_id: app\n    client_secret: x\n\
        routes:\n  - name: app\n    upstream: \"127.0.0.1:3000\"\n\
        session:\n  secret: \"0123456789abcdef0123456789abcdef-long\"\n";
}
