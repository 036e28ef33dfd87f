//! TLS to an `https://` upstream (`routes[].upstream_tls`): the CA bundle its certificate must
//! chain to (an internal CA; default: the system's), a client certificate for mTLS, the name
//! sent as SNI and verified (default: the upstream's host), and an explicit, loudly logged
//! `insecure_skip_verify` for labs.
//!
//! Files are read and checked when the configuration is read (so `authgate check` and a
//! reload report a bad bundle with its path); a reload reads them again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::CertKey;

use crate::read::{join, Obj, Reader};

/// What one route's upstream connections are made with.
#[derive(Clone)]
pub struct UpstreamTls {
    /// SNI and the name the certificate must carry; `None`: the upstream's host.
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    ca: Option<Arc<Box<[X509]>>>,
    client: Option<Arc<CertKey>>,
    /// The files as read: two settings are the same when these are.
    files: Vec<(PathBuf, Vec<u8>)>,
    /// Connections made with these settings are pooled apart from every other setting's.
    /// pingora's pool key covers the address, SNI, client certificate and verification flags
    /// but not the CA: without this, a connection verified against one route's CA would be
    /// reused by a route trusting another CA (found by the wrong-CA test).
    group: u64,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field(
                "files",
                &self.files.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.server_name == other.server_name
            && self.insecure_skip_verify == other.insecure_skip_verify
            && self.files == other.files
    }
}

impl UpstreamTls {
    /// Sets up a peer's TLS as configured.
    pub fn apply(&self, peer: &mut HttpPeer) {
        if let Some(name) = &self.server_name {
            peer.sni = name.clone();
        }
        if let Some(ca) = &self.ca {
            peer.options.ca = Some(ca.clone());
        }
        if let Some(ck) = &self.client {
            peer.client_cert_key = Some(ck.clone());
        }
        if self.insecure_skip_verify {
            peer.options.verify_cert = false;
            peer.options.verify_hostname = false;
        }
        peer.group_key = self.group;
    }
}

/// PEM certificates in a file (a bundle or a chain, leaf first).
fn certificates(path: &Path) -> Result<(Vec<X509>, Vec<u8>), String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = X509::stack_from_pem(&pem)
        .map_err(|e| format!("{} is not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok((certs, pem))
}

fn private_key(path: &Path) -> Result<(PKey<Private>, Vec<u8>), String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let key = PKey::private_key_from_pem(&pem)
        .map_err(|e| format!("{} is not a PEM private key: {e}", path.display()))?;
    Ok((key, pem))
}

impl Reader<'_> {
    /// `client_cert_file` + `client_key_file` (mTLS): both or neither, the key the
    /// certificate's. Read files are added to `files`; `Err`: reported, unusable.
    fn client_cert(
        &mut self,
        t: &mut Obj<'_>,
        at: &str,
        files: &mut Vec<(PathBuf, Vec<u8>)>,
    ) -> Result<Option<Arc<CertKey>>, ()> {
        let cert = self.string(t, "client_cert_file");
        let key = self.string(t, "client_key_file");
        match (cert, key) {
            (None, None) => Ok(None),
            (Some(c), Some(k)) => match (certificates(Path::new(&c)), private_key(Path::new(&k))) {
                (Ok((chain, cpem)), Ok((key, kpem))) => {
                    let matches = chain[0]
                        .public_key()
                        .map(|p| p.public_eq(&key))
                        .unwrap_or(false);
                    if matches {
                        files.push((PathBuf::from(&c), cpem));
                        files.push((PathBuf::from(&k), kpem));
                        Ok(Some(Arc::new(CertKey::new(chain, key))))
                    } else {
                        self.err(
                            join(at, "client_key_file"),
                            format!("is not the key of the certificate in {c}"),
                        );
                        Err(())
                    }
                }
                (c, k) => {
                    if let Err(e) = c {
                        self.err(join(at, "client_cert_file"), e);
                    }
                    if let Err(e) = k {
                        self.err(join(at, "client_key_file"), e);
                    }
                    Err(())
                }
            },
            (Some(_), None) | (None, Some(_)) => {
                self.err(
                    at,
                    "client_cert_file and client_key_file go together (mTLS needs both)",
                );
                Err(())
            }
        }
    }

    /// `upstream_tls:` of the route at `path`; `tls` is whether its upstream is `https://`.
    pub(crate) fn upstream_tls(
        &mut self,
        o: &mut Obj<'_>,
        path: &str,
        tls: bool,
    ) -> Option<Arc<UpstreamTls>> {
        let v = self.get(o, "upstream_tls")?;
        let at = join(path, "upstream_tls");
        let mut t = self.obj(&at, Some(v));
        t.map?;
        if !tls {
            self.err(
                &at,
                "applies to https:// upstreams only (this upstream is plain HTTP)",
            );
        }
        let mut files = Vec::new();
        let mut ok = true;
        let ca = match self.string(&mut t, "ca_file") {
            Some(f) => match certificates(Path::new(&f)) {
                Ok((certs, pem)) => {
                    files.push((PathBuf::from(&f), pem));
                    Some(Arc::new(certs.into_boxed_slice()))
                }
                Err(e) => {
                    self.err(join(&at, "ca_file"), e);
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let client = match self.client_cert(&mut t, &at, &mut files) {
            Ok(c) => c,
            Err(()) => {
                ok = false;
                None
            }
        };
        let server_name = self.string(&mut t, "server_name");
        if let Some(n) = &server_name {
            let valid = !n.is_empty()
                && n.len() <= 253
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
            if !valid {
                self.err(join(&at, "server_name"), format!("{n:?} is not a DNS name"));
                ok = false;
            }
        }
        let insecure = self.bool(&mut t, "insecure_skip_verify").unwrap_or(false);
        if insecure && ca.is_some() {
            self.err(
                join(&at, "insecure_skip_verify"),
                "contradicts ca_file: verify against the CA, or (labs only) not at all",
            );
            ok = false;
        }
        if insecure {
            self.warnings.push(crate::read::ConfigError {
                path: join(&at, "insecure_skip_verify"),
                message: "the upstream's certificate is NOT verified: anyone on the path can read and change this route's traffic, identity headers included (labs only)".into(),
            });
        }
        self.finish(t);
        let group = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&files, &server_name, insecure).hash(&mut h);
            // 0 is the key of routes without upstream_tls.
            h.finish().max(1)
        };
        ok.then(|| {
            Arc::new(UpstreamTls {
                group,
                server_name: server_name.map(|n| n.to_ascii_lowercase()),
                insecure_skip_verify: insecure,
                ca,
                client,
                files,
            })
        })
    }
}
