//! How the gateway proves who it is at a token endpoint: a client secret, a certificate
//! (`private_key_jwt`: a JWT signed with the certificate's key), a client assertion read from a
//! file (workload identity federation: the pod's projected service-account token), or nothing
//! (a public client, PKCE only). Used for code redemption, refresh, access tokens and Graph's
//! client-credentials token alike.
//!
//! `openidconnect` and `oauth2` build no client assertions: the client is built without a
//! secret (so `client_id` goes in the body) and the assertion is added as two form fields.

use std::path::PathBuf;
use std::sync::Mutex;

use base64::Engine;

use crate::read::Secret;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// RFC 7523 §2.2.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The largest client assertion file read.
const MAX_ASSERTION_FILE: u64 = 16 * 1024;

/// A certificate credential's assertion lives this long (Entra: "5-10 minutes at most").
const ASSERTION_LIFETIME: u64 = 300;

/// The configured credential (`client_secret`, `client_certificate_file` + `client_key_file`,
/// `client_assertion_file`, or `client_auth: none`): exactly one.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientCredential {
    Secret(Secret),
    Certificate {
        cert_file: PathBuf,
        key_file: PathBuf,
        thumbprint: Thumbprint,
    },
    AssertionFile(PathBuf),
    None,
}

/// How a certificate assertion names its certificate (Entra's documentation and behaviour
/// disagree: docs/entra.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thumbprint {
    /// `x5t` (SHA-1 of the DER), signed RS256: what Entra accepts today.
    Sha1,
    /// `x5t#S256` (SHA-256), signed PS256: the current documentation's form.
    Sha256,
}

/// Why a token request could not be authenticated (the file is gone, empty, broken).
#[derive(Debug, Clone, thiserror::Error)]
#[error("client credential: {0}")]
pub struct CredentialError(pub String);

/// A loaded certificate credential: the key and the header naming the certificate.
struct Loaded {
    /// The files' bytes it was loaded from (a change loads them again).
    from: Vec<u8>,
    key: openssl::pkey::PKey<openssl::pkey::Private>,
    header: String,
}

/// The credential of one provider, with its certificate loaded (re-read when the files change;
/// a broken change keeps the last good one, logged).
pub struct Credential {
    pub kind: ClientCredential,
    client_id: String,
    loaded: Mutex<Option<std::sync::Arc<Loaded>>>,
}

/// The form fields a token request carries for this credential (none for a secret, which
/// goes in HTTP Basic).
pub type Fields = Vec<(&'static str, String)>;

impl Credential {
    pub fn new(kind: ClientCredential, client_id: &str) -> Self {
        Self {
            kind,
            client_id: client_id.to_string(),
            loaded: Mutex::new(None),
        }
    }

    /// The client secret, for HTTP Basic.
    pub fn secret(&self) -> Option<&str> {
        match &self.kind {
            ClientCredential::Secret(s) => Some(&s.0),
            _ => None,
        }
    }

    /// What a request to `token_endpoint` adds to its form: `client_assertion_type` and
    /// `client_assertion` (a certificate's fresh JWT, or the assertion file as it is now), or
    /// nothing (a secret goes in HTTP Basic; a public client sends only `client_id`).
    pub fn fields(&self, token_endpoint: &str) -> Result<Fields, CredentialError> {
        let assertion = match &self.kind {
            ClientCredential::Secret(_) | ClientCredential::None => return Ok(Vec::new()),
            ClientCredential::AssertionFile(path) => read_assertion_file(path)?,
            ClientCredential::Certificate { .. } => self.certificate_assertion(token_endpoint)?,
        };
        Ok(vec![
            ("client_assertion_type", JWT_BEARER.to_string()),
            ("client_assertion", assertion),
        ])
    }

    fn certificate_assertion(&self, aud: &str) -> Result<String, CredentialError> {
        let loaded = self.certificate()?;
        let now = crate::session::now_secs();
        let claims = serde_json::json!({
            "aud": aud, "iss": self.client_id, "sub": self.client_id,
            "jti": crate::session::random_token(16),
            "iat": now, "nbf": now, "exp": now + ASSERTION_LIFETIME,
        });
        let input = format!("{}.{}", loaded.header, B64.encode(claims.to_string()));
        let sha1 = matches!(
            self.kind,
            ClientCredential::Certificate {
                thumbprint: Thumbprint::Sha1,
                ..
            }
        );
        let signature = sign_rsa(&loaded.key, input.as_bytes(), sha1)
            .map_err(|e| CredentialError(format!("signing the client assertion: {e}")))?;
        Ok(format!("{input}.{}", B64.encode(signature)))
    }

    /// The certificate and key as the files hold them now; a broken change keeps the last good.
    fn certificate(&self) -> Result<std::sync::Arc<Loaded>, CredentialError> {
        let ClientCredential::Certificate {
            cert_file,
            key_file,
            thumbprint,
        } = &self.kind
        else {
            return Err(CredentialError("not a certificate credential".into()));
        };
        let mut bytes = std::fs::read(cert_file).unwrap_or_default();
        bytes.extend(std::fs::read(key_file).unwrap_or_default());
        let mut slot = self
            .loaded
            .lock()
            .map_err(|_| CredentialError("poisoned".into()))?;
        if let Some(l) = slot.as_ref().filter(|l| l.from == bytes) {
            return Ok(l.clone());
        }
        match load_certificate(cert_file, key_file, *thumbprint) {
            Ok((key, header)) => {
                let fresh = std::sync::Arc::new(Loaded {
                    from: bytes,
                    key,
                    header,
                });
                *slot = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e) => match slot.as_ref() {
                Some(last) => {
                    log::error!("{e}; the previous certificate stays in use");
                    Ok(last.clone())
                }
                None => Err(e),
            },
        }
    }
}

/// Reads a client assertion file (workload identity): at every use, never cached, since the
/// kubelet replaces the token at 80% of its life and a cached one ends in AADSTS700024.
fn read_assertion_file(path: &std::path::Path) -> Result<String, CredentialError> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| CredentialError(format!("{}: {e}", path.display())))?;
    // A token is a few KB: never read more than this, whatever the file has become.
    let mut text = String::new();
    file.take(MAX_ASSERTION_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| CredentialError(format!("{}: {e}", path.display())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CredentialError(format!("{} is empty", path.display())));
    }
    if token.len() > MAX_ASSERTION_FILE as usize
        || token.split('.').count() != 3
        || token.contains(char::is_whitespace)
    {
        return Err(CredentialError(format!(
            "{} does not hold one JWT",
            path.display()
        )));
    }
    Ok(token.to_string())
}

/// The key and the JWT header (`alg`, `typ`, the thumbprint) of a certificate credential.
pub fn load_certificate(
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
    thumbprint: Thumbprint,
) -> Result<(openssl::pkey::PKey<openssl::pkey::Private>, String), CredentialError> {
    let err = |f: &std::path::Path, why: &str| CredentialError(format!("{}: {why}", f.display()));
    let cert_pem = std::fs::read(cert_file).map_err(|e| err(cert_file, &e.to_string()))?;
    let cert = openssl::x509::X509::from_pem(&cert_pem)
        .map_err(|_| err(cert_file, "not a PEM certificate"))?;
    let key_pem = std::fs::read(key_file).map_err(|e| err(key_file, &e.to_string()))?;
    let key = openssl::pkey::PKey::private_key_from_pem(&key_pem)
        .map_err(|_| err(key_file, "not a PEM private key"))?;
    if key.rsa().is_err() {
        return Err(err(
            key_file,
            "not an RSA key (Entra certificate credentials are RSA)",
        ));
    }
    let matches = cert
        .public_key()
        .map(|p| p.public_eq(&key))
        .unwrap_or(false);
    if !matches {
        return Err(err(key_file, "is not the key of the certificate"));
    }
    let der = cert
        .to_der()
        .map_err(|_| err(cert_file, "cannot be encoded"))?;
    let header = match thumbprint {
        Thumbprint::Sha1 => {
            let d = openssl::hash::hash(openssl::hash::MessageDigest::sha1(), &der)
                .map_err(|e| err(cert_file, &e.to_string()))?;
            serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": B64.encode(d)})
        }
        Thumbprint::Sha256 => serde_json::json!({
            "alg": "PS256", "typ": "JWT", "x5t#S256": B64.encode(openssl::sha::sha256(&der)),
        }),
    };
    Ok((key, B64.encode(header.to_string())))
}

/// RS256 (PKCS#1 v1.5) or PS256 (PSS, salt = digest length) over `input`.
fn sign_rsa(
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
    input: &[u8],
    pkcs1: bool,
) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), key)?;
    if !pkcs1 {
        signer.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS)?;
        signer.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)?;
    }
    signer.update(input)?;
    signer.sign_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed RSA certificate and its key, written to `dir`.
    fn cert_pair(dir: &std::path::Path) -> (PathBuf, PathBuf, openssl::x509::X509) {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let key = openssl::pkey::PKey::from_rsa(rsa).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "authgate-client").unwrap();
        let name = name.build();
        let mut b = openssl::x509::X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        let cert = b.build();
        let (c, k) = (dir.join("client.crt"), dir.join("client.key"));
        std::fs::write(&c, cert.to_pem().unwrap()).unwrap();
        std::fs::write(&k, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        (c, k, cert)
    }

    fn part(jwt: &str, i: usize) -> serde_json::Value {
        serde_json::from_slice(&B64.decode(jwt.split('.').nth(i).unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn certificate_assertions_verify_and_name_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k, cert) = cert_pair(dir.path());
        for (thumb, alg, member) in [
            (Thumbprint::Sha1, "RS256", "x5t"),
            (Thumbprint::Sha256, "PS256", "x5t#S256"),
        ] {
            let cred = Credential::new(
                ClientCredential::Certificate {
                    cert_file: c.clone(),
                    key_file: k.clone(),
                    thumbprint: thumb,
                },
                "app-id",
            );
            let f = cred.fields("https://idp.example/token").unwrap();
            assert_eq!(f[0], ("client_assertion_type", JWT_BEARER.to_string()));
            let jwt = &f[1].1;
            let (h, claims) = (part(jwt, 0), part(jwt, 1));
            assert_eq!(h["alg"], alg);
            let der = cert.to_der().unwrap();
            let want = match thumb {
                Thumbprint::Sha1 => B64.encode(
                    openssl::hash::hash(openssl::hash::MessageDigest::sha1(), &der).unwrap(),
                ),
                Thumbprint::Sha256 => B64.encode(openssl::sha::sha256(&der)),
            };
            assert_eq!(h[member], want.as_str());
            assert_eq!(claims["aud"], "https://idp.example/token");
            assert_eq!(
                (&claims["iss"], &claims["sub"]),
                (&"app-id".into(), &"app-id".into())
            );
            let (iat, exp) = (
                claims["iat"].as_u64().unwrap(),
                claims["exp"].as_u64().unwrap(),
            );
            assert!(exp - iat <= 600);
            // The signature verifies under the certificate's public key.
            let (input, sig) = jwt.rsplit_once('.').unwrap();
            let pk = cert.public_key().unwrap();
            let mut v =
                openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &pk).unwrap();
            if thumb == Thumbprint::Sha256 {
                v.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS).unwrap();
                v.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)
                    .unwrap();
            }
            v.update(input.as_bytes()).unwrap();
            assert!(v.verify(&B64.decode(sig).unwrap()).unwrap(), "{alg}");
            // Two requests, two assertions (a unique jti each).
            let again = cred.fields("https://idp.example/token").unwrap();
            assert_ne!(part(&again[1].1, 1)["jti"], claims["jti"]);
        }
    }

    #[test]
    fn assertion_files_are_read_at_every_use_and_refused_when_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        let cred = Credential::new(ClientCredential::AssertionFile(f.clone()), "app");
        assert!(
            cred.fields("aud").unwrap_err().0.contains("token"),
            "missing"
        );
        for (text, why) in [
            ("", "is empty"),
            ("  \n", "is empty"),
            ("not-a-jwt", "does not hold one JWT"),
            ("a.b.c d.e.f", "does not hold one JWT"),
            (
                &format!("{}.b.c", "a".repeat(20_000)),
                "does not hold one JWT",
            ),
        ] {
            std::fs::write(&f, text).unwrap();
            let e = cred.fields("aud").unwrap_err().0;
            assert!(e.contains(why), "{text:?}: {e}");
        }
        std::fs::write(&f, "aaa.bbb.ccc\n").unwrap();
        assert_eq!(cred.fields("aud").unwrap()[1].1, "aaa.bbb.ccc");
        std::fs::write(&f, "ddd.eee.fff").unwrap();
        assert_eq!(cred.fields("aud").unwrap()[1].1, "ddd.eee.fff", "re-read");
    }

    #[test]
    fn mismatched_and_non_rsa_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _, _) = cert_pair(dir.path());
        let other = dir.path().join("other.key");
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        std::fs::write(&other, rsa.private_key_to_pem().unwrap()).unwrap();
        let e = load_certificate(&c, &other, Thumbprint::Sha1)
            .err()
            .unwrap();
        assert!(e.0.contains("is not the key of the certificate"), "{e}");
        let ec = dir.path().join("ec.key");
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let k = openssl::ec::EcKey::generate(&group).unwrap();
        std::fs::write(&ec, k.private_key_to_pem().unwrap()).unwrap();
        let e = load_certificate(&c, &ec, Thumbprint::Sha1).err().unwrap();
        assert!(e.0.contains("not an RSA key"), "{e}");
    }
}
