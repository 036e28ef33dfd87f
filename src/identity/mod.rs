//! Who the caller is, once an identity provider has vouched for them. Everything downstream
//! (headers, later authorization) reads this one shape, whichever protocol produced it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

mod list;
pub use list::List;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Identity {
    /// Name of the configured provider that signed the user in.
    #[serde(rename = "p")]
    pub provider: Arc<str>,
    /// The stable user key (the provider's `user_claim`, `sub` by default).
    #[serde(rename = "u")]
    pub user: Box<str>,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Box<str>>,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Box<str>>,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Arc<str>>,
    #[serde(rename = "g", default, skip_serializing_if = "List::is_empty")]
    pub groups: List,
    #[serde(rename = "r", default, skip_serializing_if = "List::is_empty")]
    pub roles: List,
    /// SAML NameID and SessionIndex (OpenID: `sub` and `sid`), kept for single logout.
    #[serde(rename = "ni", default, skip_serializing_if = "Option::is_none")]
    pub name_id: Option<Box<str>>,
    #[serde(rename = "si", default, skip_serializing_if = "Option::is_none")]
    pub session_index: Option<Box<str>>,
    /// Entra's `login_hint` claim (an opaque value): the RP-initiated logout's
    /// `logout_hint`, with which Entra signs this account out without asking which.
    #[serde(rename = "lh", default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<Box<str>>,
    /// Provisioned (and active) in the SCIM directory when signing in.
    #[serde(rename = "pv", default, skip_serializing_if = "std::ops::Not::not")]
    pub provisioned: bool,
    /// When the IdP last vouched for this identity (the sign-in, or the last re-check),
    /// seconds since the epoch: what `recheck_every` counts from.
    #[serde(rename = "ck", default, skip_serializing_if = "is_zero")]
    pub checked_at: u64,
    /// When the user last authenticated at the IdP (OpenID `auth_time`, SAML
    /// `AuthnInstant`), seconds since the epoch; 0: not said. What `require.max_age` reads.
    #[serde(rename = "at", default, skip_serializing_if = "is_zero")]
    pub auth_time: u64,
    /// The fields few identities have (SCIM names and attributes, claim
    /// headers, assurance, rule claims), behind one pointer: 8 bytes where there are none.
    /// Serialized in line with the others (the wire form is one flat object).
    #[serde(flatten)]
    pub more: More,
    /// The identity headers, built once per identity and header plan (never serialized).
    #[serde(skip)]
    pub prepared: Prepared,
}

/// An identity's rarely set fields (see `Identity::more`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Rare {
    /// The groups as upstreams see them, when the SCIM directory named some of them
    /// (`groups` keeps the IDs, for policies written with IDs).
    #[serde(rename = "gn", default, skip_serializing_if = "Option::is_none")]
    pub group_names: Option<List>,
    /// Provisioned attributes configured as headers (`scim.headers`): (attribute, value).
    #[serde(rename = "x", default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<(String, String)>,
    /// Claims configured as headers (`headers.claims`), flattened at sign-in: (claim, value).
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<(String, String)>,
    /// The IdP's own session ends then (SAML `SessionNotOnOrAfter`), seconds since the epoch;
    /// 0: not said. The gateway's session ends by then too.
    #[serde(rename = "sn", default, skip_serializing_if = "is_zero")]
    pub session_not_after: u64,
    /// What the IdP proved about how the user signed in, each with when the gateway verified
    /// it: Entra authentication contexts (`c1`...) from `acrs`, and `mfa`. What
    /// `require.auth_context` and `require.mfa` read; a step-up adds to it.
    #[serde(rename = "ax", default, skip_serializing_if = "Vec::is_empty")]
    pub assured: Vec<(String, u64)>,
    /// The claims `allow.claims` and `deny.claims` rules name, as the IdP sent them: (name,
    /// values; an array's elements, numbers and booleans as their JSON text).
    #[serde(rename = "rc", default, skip_serializing_if = "Vec::is_empty")]
    pub rule_claims: Vec<(String, Vec<String>)>,
}

impl Rare {
    const EMPTY: Rare = Rare {
        group_names: None,
        attributes: Vec::new(),
        claims: Vec::new(),
        session_not_after: 0,
        assured: Vec::new(),
        rule_claims: Vec::new(),
    };
}

/// What an identity without rare fields reads.
static NO_RARE: Rare = Rare::EMPTY;

/// `Rare`, allocated only once one of its fields is set: reading an unset one reads an empty
/// `Rare`, writing through `DerefMut` allocates it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct More(Option<Box<Rare>>);

impl std::ops::Deref for More {
    type Target = Rare;
    fn deref(&self) -> &Rare {
        self.0.as_deref().unwrap_or(&NO_RARE)
    }
}

impl std::ops::DerefMut for More {
    fn deref_mut(&mut self) -> &mut Rare {
        self.0.get_or_insert_with(Box::default)
    }
}

impl More {
    /// Sets one field (`field` picks it), allocating only for a value that is not empty:
    /// `id.more.set(|r| &mut r.assured, assured)`. Writing through `DerefMut` allocates even
    /// to store an empty value.
    pub fn set<T: Default + PartialEq>(&mut self, field: fn(&mut Rare) -> &mut T, value: T) {
        if self.0.is_none() && value == T::default() {
            return;
        }
        *field(self) = value;
    }

    /// Takes one field's value, leaving it empty, without allocating when nothing is set.
    pub fn take<T: Default>(&mut self, field: fn(&mut Rare) -> &mut T) -> T {
        self.0
            .as_deref_mut()
            .map_or_else(T::default, |rare| std::mem::take(field(rare)))
    }

    /// Bytes of the allocation behind it (0 while nothing is set), for cache weighers.
    pub fn boxed_len(&self) -> usize {
        self.0.as_ref().map_or(0, |_| std::mem::size_of::<Rare>())
    }
}

impl From<Rare> for More {
    fn from(rare: Rare) -> Self {
        More((rare != Rare::EMPTY).then(|| Box::new(rare)))
    }
}

impl Serialize for More {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for More {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Rare::deserialize(d).map(More::from)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Identity {
    /// Whether the IdP proved `what` (an authentication context, `mfa`) for this identity.
    pub fn is_assured(&self, what: &str) -> bool {
        self.more.assured.iter().any(|(w, _)| w == what)
    }

    /// Adds what `other` proved (a step-up) to what this identity already had, keeping the
    /// latest time of each.
    pub fn add_assured(&mut self, other: &[(String, u64)]) {
        if other.is_empty() {
            return;
        }
        for (what, at) in other {
            match self.more.assured.iter_mut().find(|(w, _)| w == what) {
                Some((_, t)) => *t = (*t).max(*at),
                None => self.more.assured.push((what.clone(), *at)),
            }
        }
    }

    /// The values of claim `name` kept for the rules.
    pub fn rule_claim(&self, name: &str) -> Option<&[String]> {
        self.more
            .rule_claims
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// One shared copy of a short string many identities carry (provider names, tenant IDs):
/// 100,000 sessions of one tenant hold one tenant ID, not 100,000. Bounded: a string the
/// table has dropped is simply copied again.
pub fn shared(text: &str) -> Arc<str> {
    static TABLE: std::sync::OnceLock<moka::sync::Cache<Arc<str>, (), ahash::RandomState>> =
        std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        moka::sync::Cache::builder()
            .max_capacity(10_000)
            .build_with_hasher(ahash::RandomState::new())
    });
    if text.len() > 256 {
        return text.into();
    }
    let fresh: Arc<str> = text.into();
    table.entry(fresh.clone()).or_insert(()).key().clone()
}

/// Identity headers ready to send, for the header plan whose id they carry: a session used
/// again pays neither validation nor joining of lists, only the inserts. After a reload
/// changes the plan, the next request rebuilds them once.
///
/// They are kept only for identities in recent use: every prepared set is also entered in
/// one process-wide cache bounded in bytes, and a set that cache evicts is dropped from its
/// identity (the next request prepares it again). Kept in every identity for good, 100,000
/// sessions that made one request each held ~80 MiB more. A hit touches only this slot,
/// never the cache: looking it up there instead cost ~0.9 µs per request.
pub struct Prepared(Arc<Slot>);

type Slot = arc_swap::ArcSwapOption<PreparedSet>;

/// The identity headers as HTTP/1 wire lines, appended to a request's head as one block.
pub type PreparedHeaders = pingora::http::EncodedHeaders;

/// A signed assertion (`crate::assertion`), kept with its identity's prepared headers.
pub struct Signed {
    /// The `Signer` (one per configuration) that made it: a reload that changes the issuer or
    /// the lifetime signs again.
    pub signer: u64,
    pub aud: Arc<str>,
    /// The key set it was signed under: a rotation signs again.
    pub generation: u64,
    /// Used until then (half its life), seconds since the epoch.
    pub renew_at: u64,
    pub value: http::HeaderValue,
}

impl Signed {
    /// Bytes of the JWT (for the prepared sets' memory bound).
    pub fn weight(&self) -> usize {
        self.value.len() + self.aud.len()
    }
}

/// An identity's headers for one header plan, and its signed assertions (kept and dropped
/// with them).
pub struct PreparedSet {
    pub plan: u64,
    pub headers: PreparedHeaders,
    pub signed: arc_swap::ArcSwapOption<Vec<Signed>>,
}

/// At most this much memory holds prepared identity headers: about 18,000 identities
/// without groups, 10,000 with 20 group IDs each.
const PREPARED_MAX_BYTES: u64 = 16 << 20;

/// And for at most this long: then the next request prepares them again. Without it, the sets
/// of identities whose sessions had ended stayed until the byte bound pushed them out, and a
/// gateway's memory grew for as long as it took to fill 16 MiB (half an hour of the soak run).
const PREPARED_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// The identities whose headers are prepared, by the address of their slot (unique while
/// the cache holds the slot), weighed in bytes; an evicted slot is emptied.
fn prepared_sets() -> &'static moka::sync::Cache<usize, Arc<Slot>, ahash::RandomState> {
    static SETS: std::sync::OnceLock<moka::sync::Cache<usize, Arc<Slot>, ahash::RandomState>> =
        std::sync::OnceLock::new();
    SETS.get_or_init(|| {
        moka::sync::Cache::builder()
            .max_capacity(PREPARED_MAX_BYTES)
            .weigher(|_, slot: &Arc<Slot>| {
                // ~768 bytes of list, Arc and cache bookkeeping (measured with the
                // session_memory benchmark), plus the values.
                let bytes: usize = slot.load().as_ref().map_or(0, |p| {
                    let signed: usize = p
                        .signed
                        .load()
                        .as_ref()
                        .map_or(0, |l| l.iter().map(|s| 96 + s.weight()).sum());
                    p.headers.len() + signed
                });
                u32::try_from(768 + bytes).unwrap_or(u32::MAX)
            })
            // A set not prepared again for this long goes (its identity may be long gone:
            // the cache holds the slot, not the identity); one still in use is prepared again
            // once per period.
            .time_to_live(PREPARED_TTL)
            .eviction_listener(|_, slot: Arc<Slot>, cause| {
                use moka::notification::RemovalCause;
                if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                    slot.store(None);
                }
            })
            .build_with_hasher(ahash::RandomState::new())
    })
}

impl Prepared {
    /// The headers for plan `plan`, built with `build` when none are kept for it.
    pub fn get_or_build(
        &self,
        plan: u64,
        build: impl FnOnce() -> PreparedHeaders,
    ) -> Arc<PreparedSet> {
        if let Some(kept) = self.0.load_full().filter(|k| k.plan == plan) {
            return kept;
        }
        let fresh = Arc::new(PreparedSet {
            plan,
            headers: build(),
            signed: arc_swap::ArcSwapOption::const_empty(),
        });
        self.0.store(Some(fresh.clone()));
        prepared_sets().insert(Arc::as_ptr(&self.0) as usize, self.0.clone());
        fresh
    }

    /// Weighs the kept set again (a signed assertion was added to it).
    pub fn reweigh(&self) {
        if self.0.load().is_some() {
            prepared_sets().insert(Arc::as_ptr(&self.0) as usize, self.0.clone());
        }
    }

    /// Whether headers are kept for this identity (for tests of the bound).
    pub fn is_kept(&self) -> bool {
        self.0.load().is_some()
    }

    /// Runs the bounded cache's pending evictions now (tests and benchmarks; in service they
    /// run as requests come).
    pub fn settle() {
        prepared_sets().run_pending_tasks();
    }
}

impl Default for Prepared {
    fn default() -> Self {
        Prepared(Arc::new(arc_swap::ArcSwapOption::const_empty()))
    }
}

impl Clone for Prepared {
    fn clone(&self) -> Self {
        Prepared::default()
    }
}

/// A cache, not part of who the user is.
impl PartialEq for Prepared {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Prepared {}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prepared")
    }
}

/// A DNS name with at least two labels (`contoso.com`), letters, digits and hyphens.
pub fn is_domain(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A GUID as Entra writes tenant and object IDs: `8-4-4-4-12` hex digits.
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_strings_are_one_copy() {
        let a = shared("72f988bf-86f1-41af-91ab-2d7cd011db47");
        let b = shared(&String::from("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(
            &a,
            &shared("f8cdef31-a31e-4b4a-93e4-5f571e91255a")
        ));
        let long = "x".repeat(300);
        assert_eq!(&*shared(&long), long.as_str());
    }

    #[test]
    fn rare_fields_cost_one_pointer_until_set_and_keep_the_flat_wire_form() {
        // The struct every session keeps (368 bytes with the rare fields in line and `String`s).
        assert!(
            std::mem::size_of::<Identity>() <= 200,
            "{} bytes",
            std::mem::size_of::<Identity>()
        );
        let plain = Identity {
            provider: "entra".into(),
            user: "u".into(),
            ..Default::default()
        };
        let json = serde_json::to_string(&plain).unwrap();
        assert_eq!(json, r#"{"p":"entra","u":"u"}"#);
        let back: Identity = serde_json::from_str(&json).unwrap();
        assert!(back.more.0.is_none(), "nothing rare, nothing allocated");
        assert_eq!(back, plain);

        let mut rich = plain.clone();
        rich.more.session_not_after = 7;
        rich.more.claims = vec![("dept".into(), "R&D".into())];
        rich.add_assured(&[("mfa".into(), 5)]);
        rich.more.rule_claims = vec![("jobTitle".into(), vec!["CEO".into()])];
        let json = serde_json::to_string(&rich).unwrap();
        assert_eq!(
            json,
            r#"{"p":"entra","u":"u","c":[["dept","R&D"]],"sn":7,"ax":[["mfa",5]],"rc":[["jobTitle",["CEO"]]]}"#
        );
        let back: Identity = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rich);
        // Read through the empty default, written through an allocation.
        assert!(!plain.is_assured("mfa") && rich.is_assured("mfa"));
        assert_eq!(rich.rule_claim("jobTitle"), Some(&["CEO".to_string()][..]));
        let mut untouched = plain.clone();
        untouched.add_assured(&[]);
        assert!(untouched.more.take(|r| &mut r.assured).is_empty());
        assert!(untouched.more.0.is_none());
        // A stored identity naming unknown and rare fields in any order (an older or newer
        // replica's) reads the same.
        let mixed: Identity = serde_json::from_str(
            r#"{"sn":7,"zz":[1,{"a":2}],"u":"u","ax":[["mfa",5]],"p":"entra","rc":[["jobTitle",["CEO"]]],"c":[["dept","R&D"]]}"#,
        )
        .unwrap();
        assert_eq!(mixed, rich);
    }
}
