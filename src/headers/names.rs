//! The names stripping removes: each normalized name or prefix with its kinds, found with
//! one lookup per request header.

use std::collections::HashMap;

use super::normalize;

/// What a name in a `NameSet` is (bits): a header only the gateway sets, removed from every
/// request; a forwarding header, removed unless a trusted proxy sent it.
pub(super) const OWNED: u8 = 1;
pub(super) const FORWARDS: u8 = 2;

/// Normalized header names and name prefixes, each with its kinds, matched without
/// allocating: one hash lookup and one pass over the prefixes per request header.
#[derive(Debug, Clone, Default)]
pub(super) struct NameSet {
    exact: HashMap<String, u8, ahash::RandomState>,
    /// (first byte, prefix, kinds): the first byte is compared before the prefix.
    prefixes: Vec<(u8, String, u8)>,
    /// The kinds of an empty prefix (`*`: every name).
    every: u8,
    /// The first two bytes of every name and prefix, hashed into 1,024 bits (every pair for
    /// an empty or one-byte prefix): most of a browser's headers (`host`, `cookie`, `accept`,
    /// `user-agent`, `sec-…`) are told apart by them, without hashing the name or comparing
    /// prefixes.
    heads: [u64; 16],
}

/// The bit of `heads` for a name's first two bytes, folded (`0` for a missing second byte).
fn head_bit(first: u8, second: u8) -> (usize, u64) {
    let h = (usize::from(first) * 31 + usize::from(second)) % 1024;
    (h / 64, 1 << (h % 64))
}

/// `b` as `normalize` reads it.
fn fold(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        b => b.to_ascii_lowercase(),
    }
}

impl NameSet {
    pub(super) fn add(&mut self, name: &str, kinds: u8) {
        let n = normalize(name);
        match n.as_bytes() {
            [] | [b'*', ..] => self.heads = [u64::MAX; 16],
            [first, b'*', ..] => {
                for second in 0..=u8::MAX {
                    self.set_head(*first, second);
                }
            }
            [first] => self.set_head(*first, 0),
            [first, second, ..] => self.set_head(*first, *second),
        }
        match n.strip_suffix('*') {
            Some("") => self.every |= kinds,
            Some(p) => {
                let first = p.as_bytes()[0];
                match self.prefixes.iter_mut().find(|(_, q, _)| q == p) {
                    Some((_, _, k)) => *k |= kinds,
                    None => self.prefixes.push((first, p.to_string(), kinds)),
                }
            }
            None => *self.exact.entry(n).or_default() |= kinds,
        }
    }

    fn set_head(&mut self, first: u8, second: u8) {
        let (word, bit) = head_bit(first, second);
        self.heads[word] |= bit;
    }

    /// The kinds `name` has (0: none). `name` comes from the wire (pingora lower-cases it);
    /// `_` is read as `-`.
    pub(super) fn kinds(&self, name: &str) -> u8 {
        let Some(&b) = name.as_bytes().first() else {
            return self.every | self.exact.get("").copied().unwrap_or(0);
        };
        let b = fold(b);
        let (word, bit) = head_bit(b, name.as_bytes().get(1).map_or(0, |&c| fold(c)));
        if self.heads[word] & bit == 0 {
            return 0;
        }
        let folded;
        let name = if name.bytes().any(|b| b == b'_' || b.is_ascii_uppercase()) {
            folded = normalize(name);
            folded.as_str()
        } else {
            name
        };
        let mut k = self.every | self.exact.get(name).copied().unwrap_or(0);
        for (first, p, kinds) in &self.prefixes {
            if *first == b && name.starts_with(p.as_str()) {
                k |= kinds;
            }
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_has_every_kind_it_was_given() {
        let mut set = NameSet::default();
        set.add("X-Forwarded-User", OWNED);
        set.add("x-forwarded-*", FORWARDS);
        set.add("X_Corp_*", OWNED);
        set.add("x-corp-*", FORWARDS);
        assert_eq!(set.kinds("x-forwarded-user"), OWNED | FORWARDS);
        assert_eq!(set.kinds("x_forwarded_user"), OWNED | FORWARDS);
        assert_eq!(set.kinds("x-forwarded-for"), FORWARDS);
        assert_eq!(set.kinds("X_CORP_ROLE"), OWNED | FORWARDS);
        assert_eq!(set.kinds("x-corp"), 0, "a prefix is not its own name");
        assert_eq!(set.kinds("accept"), 0);
        assert_eq!(set.kinds("y-forwarded-user"), 0);
        // One-byte names and prefixes: every second byte (or none) may follow.
        set.add("Q*", OWNED);
        set.add("z", FORWARDS);
        for (name, kinds) in [("q", OWNED), ("q_x", OWNED), ("qz", OWNED), ("z", FORWARDS)] {
            assert_eq!(set.kinds(name), kinds, "{name}");
        }
        assert_eq!(set.kinds("za"), 0);
        // `*` alone: every name, whatever its first byte.
        set.add("*", OWNED);
        assert_eq!(set.kinds("accept"), OWNED);
        assert_eq!(set.kinds("x-forwarded-for"), OWNED | FORWARDS);
    }
}
