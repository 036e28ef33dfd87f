//! The signed identity assertion (`assertion:`): a short-lived ES256 JWT beside the identity
//! headers, so an upstream that can be reached around the gateway need not believe plain
//! headers. It carries who the user is, for which audience (the route), until when, and
//! nothing of the session's tokens or secrets.
//!
//! Signing costs tens of microseconds, several times the rest of a request, so a signed
//! assertion is kept with the identity's prepared headers (one per audience, a few at most)
//! and used again until half its life is gone; then the next request signs a fresh one. A
//! verifier therefore always receives at least half of `lifetime` to run.
//!
//! Keys: `keys.rs`. Configuration: `read.rs`. The JWKS is served by `endpoints::jwks`.

pub(crate) mod keys;
mod read;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::HeaderValue;
use pingora::http::RequestHeader;

use crate::headers::HeaderPlan;
use crate::identity::{Identity, PreparedSet, Signed};
use crate::metrics::Metrics;
pub use keys::{Key, KeyRing, KeySet};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `assertion:` as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct AssertionConfig {
    /// The header that carries it (default `X-Auth-Assertion`).
    pub header: String,
    /// `exp - iat` (default 2 minutes, at most 10).
    pub lifetime: Duration,
    /// PEM files of P-256 private keys: the first signs, all are published.
    pub key_files: Vec<PathBuf>,
}

pub const DEFAULT_HEADER: &str = "X-Auth-Assertion";
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(120);
pub const MAX_LIFETIME: Duration = Duration::from_secs(600);

/// Signed assertions kept per identity, one per audience.
const KEPT_AUDIENCES: usize = 4;

/// Signs and attaches assertions; one per configuration, sharing a `KeyRing` across reloads
/// that keep the same key files.
pub struct Signer {
    /// Tells this configuration's assertions from a previous one's.
    id: u64,
    header: http::HeaderName,
    /// `public_url` without the trailing slash.
    issuer: String,
    lifetime: u64,
    /// The audience of routes that name none: `public_url`'s host.
    default_audience: Arc<str>,
    pub ring: Arc<KeyRing>,
    metrics: Arc<Metrics>,
}

impl Signer {
    pub fn new(
        cfg: &AssertionConfig,
        public_url: &url::Url,
        previous: Option<&Signer>,
        metrics: &Arc<Metrics>,
    ) -> Result<Signer, String> {
        let ring = match previous {
            Some(p) if p.ring.files() == cfg.key_files.as_slice() => p.ring.clone(),
            _ => Arc::new(KeyRing::new(cfg.key_files.clone(), metrics.clone())?),
        };
        if cfg.key_files.is_empty() {
            log::warn!("assertion: no key_files, so this process signs with a key of its own, generated now: another replica's upstreams cannot verify it, and it changes on every restart");
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(Signer {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            header: http::HeaderName::from_bytes(cfg.header.as_bytes())
                .map_err(|e| format!("assertion.header: {e}"))?,
            issuer: public_url.as_str().trim_end_matches('/').to_string(),
            lifetime: cfg.lifetime.as_secs(),
            default_audience: public_url.host_str().unwrap_or_default().into(),
            ring,
            metrics: metrics.clone(),
        })
    }

    /// The audience of a route's assertions: its `assertion_audience`, else its host, else
    /// `public_url`'s host.
    pub fn audience<'a>(&'a self, configured: Option<&'a Arc<str>>) -> &'a Arc<str> {
        configured.unwrap_or(&self.default_audience)
    }

    pub fn header(&self) -> &http::HeaderName {
        &self.header
    }

    /// The JWKS document (`{"keys":[…]}`).
    pub fn jwks(&self) -> Bytes {
        self.ring.current.load().jwks.clone()
    }

    /// Sets the assertion on a request to the upstream.
    pub fn attach(&self, req: &mut RequestHeader, about: About<'_>) {
        if let Some(v) = self.assertion(about) {
            let _ = req.insert_parsed_header(self.header.clone(), v);
        }
    }

    /// The assertion for an identity and audience: the one kept if it is still fresh and
    /// signed under the keys in service, else a new one.
    pub fn assertion(&self, a: About<'_>) -> Option<HeaderValue> {
        let keys = self.ring.current.load();
        if let Some(kept) = &*a.prepared.signed.load() {
            let fresh = kept.iter().find(|s| {
                (Arc::ptr_eq(&s.aud, a.aud) || s.aud == *a.aud)
                    && s.generation == keys.generation
                    && s.signer == self.id
                    && a.now < s.renew_at
            });
            if let Some(s) = fresh {
                return Some(s.value.clone());
            }
        }
        let value = self.sign(&keys, &a)?;
        let signed = Signed {
            signer: self.id,
            aud: a.aud.clone(),
            generation: keys.generation,
            renew_at: a.now + (self.lifetime / 2).max(1),
            value: value.clone(),
        };
        let mut list: Vec<Signed> = Vec::with_capacity(KEPT_AUDIENCES);
        if let Some(kept) = &*a.prepared.signed.load() {
            for s in kept.iter().filter(|s| {
                s.aud != *a.aud
                    && s.generation == keys.generation
                    && s.signer == self.id
                    && a.now < s.renew_at
            }) {
                if list.len() + 1 < KEPT_AUDIENCES {
                    list.push(Signed {
                        signer: s.signer,
                        aud: s.aud.clone(),
                        generation: s.generation,
                        renew_at: s.renew_at,
                        value: s.value.clone(),
                    });
                }
            }
        }
        list.push(signed);
        a.prepared.signed.store(Some(Arc::new(list)));
        a.identity.prepared.reweigh();
        Some(value)
    }

    /// A new JWT: header, claims, ES256 signature.
    fn sign(&self, keys: &KeySet, a: &About<'_>) -> Option<HeaderValue> {
        let key = keys.signing()?;
        let header = serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": key.kid });
        let claims = self.claims(a);
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let Some(signature) = key.sign(input.as_bytes()) else {
            log::error!("assertion: signing failed; the request goes upstream without one");
            return None;
        };
        self.metrics.assertions_signed.inc();
        HeaderValue::from_maybe_shared(Bytes::from(format!("{input}.{signature}"))).ok()
    }

    /// The claims: who, for whom, until when. Lists are arrays (empty, never null); absent
    /// single values are left out.
    pub fn claims(&self, a: &About<'_>) -> serde_json::Value {
        let id = a.identity;
        let mut c = serde_json::json!({
            "iss": self.issuer,
            "aud": &**a.aud,
            "sub": id.user,
            "provider": &*id.provider,
            "groups": a.plan.groups_seen(id).iter().collect::<Vec<_>>(),
            "roles": id.roles.iter().collect::<Vec<_>>(),
            "iat": a.now,
            "nbf": a.now,
            "exp": a.now + self.lifetime,
            "jti": crate::session::random_token(16),
        });
        let put = |c: &mut serde_json::Value, k: &str, v: Option<&str>| {
            if let (Some(v), Some(m)) = (v, c.as_object_mut()) {
                m.insert(k.into(), v.into());
            }
        };
        put(&mut c, "email", id.email.as_deref());
        put(&mut c, "name", id.name.as_deref());
        put(&mut c, "tid", id.tenant.as_deref());
        put(&mut c, "sid", a.sid.map(session_digest).as_deref());
        c
    }
}

/// What an assertion is about: the identity (with its prepared headers, where the signed
/// assertion is kept), the route's audience, the session, and the time.
pub struct About<'a> {
    pub identity: &'a Identity,
    pub prepared: &'a PreparedSet,
    pub plan: &'a HeaderPlan,
    pub aud: &'a Arc<str>,
    /// The session's id (none for a bearer token): only its digest goes out.
    pub sid: Option<&'a str>,
    pub now: u64,
}

/// Names the session without revealing its id: the first 128 bits of SHA-256, base64url.
pub fn session_digest(sid: &str) -> String {
    let d = openssl::sha::sha256(format!("authgate.sid.{sid}").as_bytes());
    B64.encode(&d[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::HeaderNames;
    use crate::identity::List;

    fn signer(lifetime: u64) -> Signer {
        let cfg = AssertionConfig {
            header: DEFAULT_HEADER.into(),
            lifetime: Duration::from_secs(lifetime),
            key_files: Vec::new(),
        };
        let url = url::Url::parse("https://gw.example.com/").unwrap();
        Signer::new(&cfg, &url, None, &Arc::new(Metrics::new().unwrap())).unwrap()
    }

    fn decode(token: &HeaderValue) -> (serde_json::Value, serde_json::Value) {
        let parts: Vec<&str> = token.to_str().unwrap().split('.').collect();
        assert_eq!(parts.len(), 3);
        let json = |p: &str| serde_json::from_slice(&B64.decode(p).unwrap()).unwrap();
        (json(parts[0]), json(parts[1]))
    }

    #[test]
    fn claims_and_header_are_as_documented() {
        let s = signer(120);
        let plan = HeaderPlan::new(&HeaderNames::default()).unwrap();
        let id = Identity {
            provider: "entra".into(),
            user: "u1".into(),
            email: Some("a@example.com".into()),
            roles: List::from(["admin"]),
            ..Default::default()
        };
        let prepared = plan.prepared(&id);
        let aud: Arc<str> = "app.example.com".into();
        let about = About {
            identity: &id,
            prepared: &prepared,
            plan: &plan,
            aud: &aud,
            sid: Some("secret-session-id"),
            now: 1_000_000,
        };
        let token = s.assertion(about).unwrap();
        let (h, c) = decode(&token);
        assert_eq!(h["alg"], "ES256");
        assert_eq!(h["kid"], s.ring.current.load().keys[0].kid.as_str());
        assert_eq!(c["iss"], "https://gw.example.com");
        assert_eq!(c["aud"], "app.example.com");
        assert_eq!(c["groups"], serde_json::json!([]), "never null");
        assert_eq!(c["roles"], serde_json::json!(["admin"]));
        assert_eq!(c["exp"], 1_000_120);
        assert!(c.get("name").is_none() && c.get("tid").is_none());
        assert_eq!(c["sid"], session_digest("secret-session-id"));
        assert!(!token.to_str().unwrap().contains("secret-session-id"));
        assert!(!token.to_str().unwrap().contains('='), "unpadded");
    }

    #[test]
    fn kept_until_half_life_then_signed_again() {
        let s = signer(120);
        let plan = HeaderPlan::new(&HeaderNames::default()).unwrap();
        let id = Identity {
            provider: "p".into(),
            user: "u".into(),
            ..Default::default()
        };
        let prepared = plan.prepared(&id);
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let at = |aud: &Arc<str>, now| {
            s.assertion(About {
                identity: &id,
                prepared: &prepared,
                plan: &plan,
                aud,
                sid: None,
                now,
            })
            .unwrap()
        };
        let first = at(&a, 1000);
        assert_eq!(at(&a, 1059), first, "kept within half its life");
        let other = at(&b, 1059);
        assert_ne!(other, first, "another audience, another assertion");
        assert_eq!(decode(&other).1["aud"], "b");
        assert_eq!(at(&a, 1059), first, "both audiences kept");
        assert_ne!(at(&a, 1060), first, "renewed at half its life");
        // A reload (another signer, the same keys) does not reuse what the previous made.
        let cfg = AssertionConfig {
            header: DEFAULT_HEADER.into(),
            lifetime: Duration::from_secs(300),
            key_files: Vec::new(),
        };
        let url = url::Url::parse("https://other.example.com/").unwrap();
        let metrics = Arc::new(Metrics::new().unwrap());
        let reloaded = Signer::new(&cfg, &url, Some(&s), &metrics).unwrap();
        assert!(
            Arc::ptr_eq(&reloaded.ring, &s.ring),
            "same key files, same keys"
        );
        let mine = at(&a, 1061);
        let after = reloaded
            .assertion(About {
                identity: &id,
                prepared: &prepared,
                plan: &plan,
                aud: &a,
                sid: None,
                now: 1061,
            })
            .unwrap();
        assert_ne!(after, mine);
        assert_eq!(decode(&after).1["iss"], "https://other.example.com");
        assert_eq!(decode(&after).1["exp"], 1361);
    }
}
