//! The assertion's signing keys: P-256 private keys read from PEM files, the first signing and
//! all published, re-read when the files change (as the listener's certificates are).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use base64::Engine;
use bytes::Bytes;
use openssl::bn::BigNumContext;
use openssl::ec::{EcKey, PointConversionForm};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::Private;

use crate::metrics::Metrics;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// One signing key and what verifiers know it by.
pub struct Key {
    /// The RFC 7638 thumbprint of the public key: stable for the key, whatever file holds it.
    pub kid: String,
    ec: EcKey<Private>,
    /// The public half as a JWK (`kty`, `crv`, `x`, `y`, `kid`, `alg`, `use`).
    jwk: serde_json::Value,
}

impl Key {
    /// Reads one PEM private key (SEC1 `EC PRIVATE KEY` or PKCS#8 `PRIVATE KEY`) on P-256.
    pub fn from_pem(pem: &[u8]) -> Result<Key, String> {
        let pkey = openssl::pkey::PKey::private_key_from_pem(pem)
            .map_err(|_| "not a PEM private key".to_string())?;
        let ec = pkey
            .ec_key()
            .map_err(|_| "not an EC key (ES256 needs a P-256 key)".to_string())?;
        if ec.group().curve_name() != Some(Nid::X9_62_PRIME256V1) {
            return Err("not on curve P-256 (ES256 needs prime256v1)".into());
        }
        ec.check_key()
            .map_err(|_| "the key does not check out".to_string())?;
        Self::of(ec)
    }

    /// A fresh key, for one process that was given none.
    pub fn generate() -> Result<Key, String> {
        let group = openssl::ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)
            .map_err(|e| e.to_string())?;
        Self::of(EcKey::generate(&group).map_err(|e| e.to_string())?)
    }

    fn of(ec: EcKey<Private>) -> Result<Key, String> {
        let mut ctx = BigNumContext::new().map_err(|e| e.to_string())?;
        let point = ec
            .public_key()
            .to_bytes(ec.group(), PointConversionForm::UNCOMPRESSED, &mut ctx)
            .map_err(|e| e.to_string())?;
        // 0x04 || x (32 bytes) || y (32 bytes).
        if point.len() != 65 {
            return Err("unexpected public key encoding".into());
        }
        let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..65]));
        // RFC 7638: the required members, lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = B64.encode(openssl::sha::sha256(canonical.as_bytes()));
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "kid": kid, "alg": "ES256", "use": "sig",
        });
        Ok(Key { kid, ec, jwk })
    }

    /// The JWS signature of `input`: SHA-256, ECDSA, `r || s` (32 bytes each), base64url.
    pub fn sign(&self, input: &[u8]) -> Option<String> {
        let digest = openssl::sha::sha256(input);
        let sig = EcdsaSig::sign(&digest, &self.ec).ok()?;
        let mut raw = sig.r().to_vec_padded(32).ok()?;
        raw.extend(sig.s().to_vec_padded(32).ok()?);
        Some(B64.encode(raw))
    }
}

/// The keys in service: the first signs, all are in the JWKS.
pub struct KeySet {
    pub keys: Vec<Arc<Key>>,
    /// `{"keys":[…]}`, built once per set.
    pub jwks: Bytes,
    /// Changes with every set: an assertion signed under another set is signed again.
    pub generation: u64,
}

impl KeySet {
    fn new(keys: Vec<Arc<Key>>) -> KeySet {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let jwks = serde_json::json!({
            "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()
        });
        KeySet {
            jwks: Bytes::from(jwks.to_string()),
            keys,
            generation: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    pub fn signing(&self) -> Option<&Arc<Key>> {
        self.keys.first()
    }
}

/// The key files and the set last read from them.
pub struct KeyRing {
    files: Vec<PathBuf>,
    pub current: ArcSwap<KeySet>,
    /// The files' bytes when last read (loaded, or found broken), to notice changes.
    seen: Mutex<Vec<Vec<u8>>>,
    metrics: Arc<Metrics>,
}

fn read_all(files: &[PathBuf]) -> Vec<Vec<u8>> {
    files
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_default())
        .collect()
}

/// The PEM blocks of a file, in order (`-----BEGIN …-----` to `-----END …-----`).
fn pem_blocks(text: &[u8]) -> Vec<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"-----END ";
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = find(rest, BEGIN) {
        let from = &rest[b..];
        let Some(e) = find(from, END) else { break };
        // The END line's closing dashes.
        let tail = &from[e + END.len()..];
        let Some(close) = find(tail, b"-----") else {
            break;
        };
        let len = e + END.len() + close + 5;
        out.push(&from[..len]);
        rest = &from[len..];
    }
    out
}

/// Every file's keys in order (a file may hold several: a rotation edits one file), or the
/// first file that cannot be used and why. The same key twice is published once.
pub(crate) fn load(files: &[PathBuf], bytes: &[Vec<u8>]) -> Result<Vec<Arc<Key>>, String> {
    let mut keys: Vec<Arc<Key>> = Vec::new();
    for (f, b) in files.iter().zip(bytes) {
        let blocks = pem_blocks(b);
        if blocks.is_empty() {
            return Err(format!(
                "{}: cannot be read, or holds no PEM private key",
                f.display()
            ));
        }
        for (i, block) in blocks.iter().enumerate() {
            let key = Key::from_pem(block)
                .map_err(|e| format!("{} (key {}): {e}", f.display(), i + 1))?;
            if !keys.iter().any(|k| k.kid == key.kid) {
                keys.push(Arc::new(key));
            }
        }
    }
    Ok(keys)
}

impl KeyRing {
    /// Reads the files (no files: one key generated for this process).
    pub fn new(files: Vec<PathBuf>, metrics: Arc<Metrics>) -> Result<KeyRing, String> {
        let seen = read_all(&files);
        let keys = if files.is_empty() {
            vec![Arc::new(Key::generate()?)]
        } else {
            load(&files, &seen)?
        };
        Ok(KeyRing {
            files,
            current: ArcSwap::from_pointee(KeySet::new(keys)),
            seen: Mutex::new(seen),
            metrics,
        })
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Reads the files again; swaps in the new set if they changed and every one loads. A
    /// broken set keeps the previous keys in service, logged and counted once per change.
    pub fn refresh(&self) {
        if self.files.is_empty() {
            return;
        }
        let now = read_all(&self.files);
        {
            let Ok(mut seen) = self.seen.lock() else {
                return;
            };
            if *seen == now {
                return;
            }
            seen.clone_from(&now);
        }
        let counter = |result: &str| {
            self.metrics
                .assertion_key_reloads
                .with_label_values(&[result])
                .inc()
        };
        match load(&self.files, &now) {
            Err(e) => {
                log::error!(
                    "assertion key files changed but cannot be used ({e}); the previous keys stay in service"
                );
                counter("error");
            }
            Ok(keys) => {
                let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
                log::info!(
                    "assertion keys reloaded from their files: {} (the first signs)",
                    kids.join(", ")
                );
                self.current.store(Arc::new(KeySet::new(keys)));
                counter("success");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_with_a_verifiable_raw_signature() {
        let k = Key::generate().unwrap();
        let sig = k.sign(b"a.b").unwrap();
        let raw = B64.decode(&sig).unwrap();
        assert_eq!(raw.len(), 64);
        let r = openssl::bn::BigNum::from_slice(&raw[..32]).unwrap();
        let s = openssl::bn::BigNum::from_slice(&raw[32..]).unwrap();
        let parsed = EcdsaSig::from_private_components(r, s).unwrap();
        let public = EcKey::from_public_key(k.ec.group(), k.ec.public_key()).unwrap();
        assert!(parsed
            .verify(&openssl::sha::sha256(b"a.b"), &public)
            .unwrap());
        assert!(!parsed
            .verify(&openssl::sha::sha256(b"a.c"), &public)
            .unwrap());
    }

    #[test]
    fn kid_is_the_thumbprint_whatever_the_pem_form() {
        let k = Key::generate().unwrap();
        let sec1 = k.ec.private_key_to_pem().unwrap();
        let pkcs8 = openssl::pkey::PKey::from_ec_key(k.ec.clone())
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        assert_eq!(Key::from_pem(&sec1).unwrap().kid, k.kid);
        assert_eq!(Key::from_pem(&pkcs8).unwrap().kid, k.kid);
        assert_eq!(k.kid.len(), 43, "base64url SHA-256, unpadded");
    }

    #[test]
    fn a_file_may_hold_several_keys_in_order() {
        let (a, b) = (Key::generate().unwrap(), Key::generate().unwrap());
        let mut bundle = a.ec.private_key_to_pem().unwrap();
        bundle.extend(b"\n# the next key\n");
        bundle.extend(b.ec.private_key_to_pem().unwrap());
        bundle.extend(a.ec.private_key_to_pem().unwrap());
        let f = PathBuf::from("keys.pem");
        let keys = load(std::slice::from_ref(&f), &[bundle.clone()]).unwrap();
        let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, [a.kid.as_str(), b.kid.as_str()]);
        // One broken block spoils the file: a half-read rotation must not go into service.
        let mut broken = bundle;
        broken.extend(b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n");
        let e = load(std::slice::from_ref(&f), &[broken]).err().unwrap();
        assert!(e.contains("key 4"), "{e}");
        let e = load(std::slice::from_ref(&f), &[b"no pem here".to_vec()])
            .err()
            .unwrap();
        assert!(e.contains("holds no PEM private key"), "{e}");
    }

    #[test]
    fn refuses_what_is_not_a_p256_private_key() {
        let p384 = EcKey::generate(&openssl::ec::EcGroup::from_curve_name(Nid::SECP384R1).unwrap())
            .unwrap()
            .private_key_to_pem()
            .unwrap();
        let rsa = openssl::rsa::Rsa::generate(2048)
            .unwrap()
            .private_key_to_pem()
            .unwrap();
        for (pem, why) in [
            (&b"garbage"[..], "not a PEM"),
            (&rsa[..], "not an EC key"),
            (&p384[..], "P-256"),
            (&b""[..], "not a PEM"),
        ] {
            let e = Key::from_pem(pem).err().unwrap();
            assert!(e.contains(why), "{e}");
        }
    }
}
