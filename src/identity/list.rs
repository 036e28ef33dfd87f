//! A list of claim values (groups, roles), kept in one allocation per list.
//!
//! Entra sends group IDs as lower-case GUIDs: 36 characters of text for 16 bytes of value. A
//! list whose every value is one is kept packed, 16 bytes a value (20 groups: 321 bytes
//! instead of ~740); any other list is kept as the one comma-joined string the identity header
//! sends. Either way a list reads back exactly as it was given: a GUID is packed only in the
//! form it is printed in again (lower case, hyphens at 8-4-4-4-12), so upper-case IDs and
//! names stay text, byte for byte.
//!
//! Values are never empty and never contain a comma: the constructor drops such values (the
//! claim mappers already refuse them), so the joined form loses nothing.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The stored form's first byte: what follows.
const TEXT: u8 = 0;
const GUIDS: u8 = 1;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct List(Option<Arc<[u8]>>);

impl List {
    pub fn new<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Self {
        let mut joined = String::new();
        for v in values {
            let v = v.as_ref();
            if v.is_empty() || v.contains(',') {
                continue;
            }
            if !joined.is_empty() {
                joined.push(',');
            }
            joined.push_str(v);
        }
        if joined.is_empty() {
            return List(None);
        }
        let stored = packed(&joined).unwrap_or_else(|| {
            let mut text = Vec::with_capacity(1 + joined.len());
            text.push(TEXT);
            text.extend_from_slice(joined.as_bytes());
            text
        });
        List(Some(stored.into()))
    }

    /// The values in order (a packed GUID is printed again, as it came).
    pub fn iter(&self) -> Values<'_> {
        Values(match self.parts() {
            Parts::Empty => Inner::Done,
            Parts::Text(t) => Inner::Text(t.split(',')),
            Parts::Guids(g) => Inner::Guids(g.chunks_exact(16)),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub fn len(&self) -> usize {
        match self.parts() {
            Parts::Empty => 0,
            Parts::Text(t) => t.split(',').count(),
            Parts::Guids(g) => g.len() / 16,
        }
    }

    /// Whether `value` is one of the values, exactly.
    pub fn contains(&self, value: &str) -> bool {
        match self.parts() {
            Parts::Empty => false,
            Parts::Text(t) => t.split(',').any(|v| v == value),
            Parts::Guids(g) => guid(value, false).is_some_and(|want| has(g, &want)),
        }
    }

    /// Whether `value` is one of the values, ASCII case ignored (how policies name groups).
    pub fn contains_ignore_ascii_case(&self, value: &str) -> bool {
        match self.parts() {
            Parts::Empty => false,
            Parts::Text(t) => t.split(',').any(|v| v.eq_ignore_ascii_case(value)),
            Parts::Guids(g) => guid(value, true).is_some_and(|want| has(g, &want)),
        }
    }

    /// The comma-joined values ("" when empty).
    pub fn joined(&self) -> Cow<'_, str> {
        match self.parts() {
            Parts::Empty => Cow::Borrowed(""),
            Parts::Text(t) => Cow::Borrowed(t),
            Parts::Guids(g) => {
                let mut joined = String::with_capacity(g.len() / 16 * 37);
                for (i, one) in g.chunks_exact(16).enumerate() {
                    if i > 0 {
                        joined.push(',');
                    }
                    push_guid(&mut joined, one);
                }
                Cow::Owned(joined)
            }
        }
    }

    /// The joined values as a header value (None when empty or not a valid header value).
    /// A copy: a header value sharing the list's memory (`Bytes::from_owner`) made every
    /// request ~0.4 µs slower, and prepared headers are few (their memory is bounded).
    pub fn header_value(&self) -> Option<http::HeaderValue> {
        match self.parts() {
            Parts::Empty => None,
            Parts::Text(t) => http::HeaderValue::from_str(t).ok(),
            Parts::Guids(_) => http::HeaderValue::from_str(&self.joined()).ok(),
        }
    }

    /// Bytes the list holds on the heap (cache weighers).
    pub fn heap_len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| 16 + s.len())
    }

    fn parts(&self) -> Parts<'_> {
        let Some(stored) = self.0.as_deref() else {
            return Parts::Empty;
        };
        match stored.split_first() {
            Some((&GUIDS, g)) => Parts::Guids(g),
            // Written from a `String` by `new`: valid UTF-8 (checked again, never trusted).
            Some((_, t)) => std::str::from_utf8(t).map_or(Parts::Empty, Parts::Text),
            None => Parts::Empty,
        }
    }
}

enum Parts<'a> {
    Empty,
    Text(&'a str),
    Guids(&'a [u8]),
}

/// The values of a `List`, in order.
#[derive(Clone)]
pub struct Values<'a>(Inner<'a>);

#[derive(Clone)]
enum Inner<'a> {
    Done,
    Text(std::str::Split<'a, char>),
    Guids(std::slice::ChunksExact<'a, u8>),
}

impl<'a> Iterator for Values<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Cow<'a, str>> {
        match &mut self.0 {
            Inner::Done => None,
            Inner::Text(t) => t.next().map(Cow::Borrowed),
            Inner::Guids(g) => g.next().map(|b| Cow::Owned(print_guid(b))),
        }
    }
}

/// The packed form of `joined` when every value is a lower-case GUID.
fn packed(joined: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(1 + (joined.len() / 37 + 1) * 16);
    out.push(GUIDS);
    for v in joined.split(',') {
        out.extend_from_slice(&guid(v, false)?);
    }
    Some(out)
}

fn has(packed: &[u8], want: &[u8; 16]) -> bool {
    packed.chunks_exact(16).any(|g| g == want)
}

/// The 16 bytes of a GUID written `8-4-4-4-12`; upper-case hex digits only with `any_case`
/// (a packed value must print back exactly as it came).
fn guid(text: &str, any_case: bool) -> Option<[u8; 16]> {
    let b = text.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let mut digits = b.iter().filter(|&&c| c != b'-');
    let mut out = [0u8; 16];
    for byte in &mut out {
        let hi = nibble(*digits.next()?, any_case)?;
        let lo = nibble(*digits.next()?, any_case)?;
        *byte = hi << 4 | lo;
    }
    // Exactly 32 digits: a hyphen anywhere else leaves fewer.
    digits.next().is_none().then_some(out)
}

fn nibble(c: u8, any_case: bool) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' if any_case => Some(c - b'A' + 10),
        _ => None,
    }
}

fn print_guid(g: &[u8]) -> String {
    let mut s = String::with_capacity(36);
    push_guid(&mut s, g);
    s
}

/// Writes 16 bytes as a lower-case `8-4-4-4-12` GUID.
fn push_guid(out: &mut String, g: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in g.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 15)]));
    }
}

impl std::fmt::Debug for List {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<S: AsRef<str>> FromIterator<S> for List {
    fn from_iter<I: IntoIterator<Item = S>>(values: I) -> Self {
        List::new(values)
    }
}

impl From<Vec<String>> for List {
    fn from(values: Vec<String>) -> Self {
        List::new(values)
    }
}

impl<const N: usize> From<[&str; N]> for List {
    fn from(values: [&str; N]) -> Self {
        List::new(values)
    }
}

/// On the wire (sealed cookies, stores) a list stays a JSON array, as it always was.
impl Serialize for List {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(d).map(List::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G1: &str = "6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1b1";
    const G2: &str = "c3d2a8f1-3e48-4a0f-8d53-7d0a7b6b2f11";

    #[test]
    fn list_keeps_values_in_order_and_drops_what_it_cannot_join() {
        let l = List::new(["a", "", "b,c", "d"]);
        assert_eq!(l.iter().collect::<Vec<_>>(), ["a", "d"]);
        assert_eq!(l.len(), 2);
        assert!(l.contains("d") && !l.contains("b") && !l.contains("a,d"));
        assert_eq!(l.joined(), "a,d");
        assert_eq!(l.header_value().unwrap(), "a,d");
        let empty = List::new(Vec::<String>::new());
        assert!(empty.is_empty() && empty.header_value().is_none());
        assert_eq!(empty.iter().count(), 0);
        assert_eq!(empty.len(), 0);
        assert_eq!(empty.joined(), "");
        // Control characters: no header, but the values stay for policy decisions.
        assert!(List::new(["x\ny"]).header_value().is_none());
    }

    #[test]
    fn lower_case_guids_are_packed_and_read_back_exactly() {
        let l = List::new([G1, G2]);
        assert_eq!(l.heap_len(), 16 + 1 + 32, "16 bytes a value");
        assert_eq!(l.iter().collect::<Vec<_>>(), [G1, G2]);
        assert_eq!(l.len(), 2);
        assert_eq!(l.joined(), format!("{G1},{G2}"));
        assert_eq!(l.header_value().unwrap(), format!("{G1},{G2}").as_str());
        assert!(l.contains(G2) && !l.contains(&G2.to_uppercase()));
        assert!(l.contains_ignore_ascii_case(&G2.to_uppercase()));
        assert!(!l.contains("6e6a3c0c") && !l.contains(""));
        assert_eq!(l, List::new(vec![G1.to_string(), G2.to_string()]));
        let twenty: Vec<String> = (0..20).map(|i| format!("{i:08x}{}", &G1[8..])).collect();
        let l = List::new(&twenty);
        assert_eq!(l.heap_len(), 16 + 1 + 320);
        assert_eq!(l.iter().collect::<Vec<_>>(), twenty);
    }

    #[test]
    fn anything_not_printed_back_the_same_stays_text() {
        let upper = G1.to_uppercase();
        let braces = format!("{{{G1}}}");
        let no_hyphens = G1.replace('-', "");
        let moved = format!("{}-{}", &G1[..7], &G1[7..35].replace('-', "x"));
        let hostile = [
            vec![upper.as_str()],
            vec![G1, "Admins"],
            vec![braces.as_str()],
            vec![no_hyphens.as_str()],
            vec![&G1[..35]],
            vec!["6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1bg"],
            vec!["6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a-b1"],
            vec!["6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1b1 "],
            vec!["6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1é"],
            vec![moved.as_str()],
        ];
        for values in hostile {
            let l = List::new(values.clone());
            assert_eq!(l.iter().collect::<Vec<_>>(), values, "{values:?}");
            assert_eq!(l.joined(), values.join(","), "{values:?}");
            assert_eq!(l.heap_len(), 16 + 1 + values.join(",").len(), "{values:?}");
        }
        let l = List::new([upper.as_str()]);
        assert!(l.contains(&upper) && !l.contains(G1) && l.contains_ignore_ascii_case(G1));
    }

    /// GUID-like values with one byte changed (a hyphen moved, a letter out of range, upper
    /// case, a multi-byte character): every list reads back exactly, and `contains` answers
    /// as a plain comparison of the texts would.
    #[test]
    fn mutated_guids_read_back_and_compare_as_text_would() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let swaps: [&str; 8] = ["-", "g", "A", "F", "0", "é", ",", ""];
        for _ in 0..2_000 {
            let n = 1 + next() % 4;
            let values: Vec<String> = (0..n)
                .map(|_| {
                    let mut v = print_guid(&next().to_le_bytes().repeat(2));
                    if next() % 2 == 0 {
                        let at = (next() % 36) as usize;
                        let with = swaps[(next() % 8) as usize];
                        v.replace_range(at..at + 1, with);
                    }
                    v
                })
                .collect();
            let l = List::new(&values);
            let kept: Vec<&str> = values
                .iter()
                .map(String::as_str)
                .filter(|v| !v.is_empty() && !v.contains(','))
                .collect();
            assert_eq!(l.iter().collect::<Vec<_>>(), kept, "{values:?}");
            for probe in values.iter().chain([&values[0].to_uppercase()]) {
                let text = kept.iter().any(|v| v == probe);
                let folded = kept.iter().any(|v| v.eq_ignore_ascii_case(probe));
                assert_eq!(l.contains(probe), text, "{values:?} {probe}");
                assert_eq!(
                    l.contains_ignore_ascii_case(probe),
                    folded,
                    "{values:?} {probe}"
                );
            }
        }
    }

    #[test]
    fn list_is_a_json_array_on_the_wire() {
        for l in [List::new(["g1", "g2"]), List::new([G1, G2])] {
            let json = serde_json::to_string(&l).unwrap();
            let want = serde_json::to_string(&l.iter().collect::<Vec<_>>()).unwrap();
            assert_eq!(json, want);
            let back: List = serde_json::from_str(&json).unwrap();
            assert_eq!(back, l);
        }
        assert_eq!(
            serde_json::to_string(&List::new([G1])).unwrap(),
            format!(r#"["{G1}"]"#)
        );
        let dropped: List = serde_json::from_str(r#"["ok","a,b",""]"#).unwrap();
        assert_eq!(dropped.joined(), "ok");
    }
}
