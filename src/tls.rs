//! TLS on the gateway's own listener (`tls:`): certificates and keys from PEM files (chains
//! allowed), several chosen by SNI, re-read when the files change (cert-manager rotates a
//! Secret in place) without a restart, TLS 1.2 minimum, ALPN with HTTP/2; and an optional
//! plain-HTTP listener that only redirects to the `https://` public URL.
//!
//! The files are read and checked when the configuration is read, so `authgate check`
//! reports a bad certificate with its path. While serving, a watcher compares the files'
//! bytes every 2 s: a complete, matching pair replaces the old one for new handshakes; a half
//! written or mismatched pair is logged and counted, and the old one keeps serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::TlsAccept;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::tls::ext;
use pingora::tls::ssl::{NameType, SslRef, SslVersion};
use serde_yaml::Value;

use crate::metrics::Metrics;
use crate::read::{join, Reader};

/// `tls:` as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerTls {
    /// The first is served when the client's SNI names none of them (or sends none).
    pub certificates: Vec<CertFiles>,
    /// Offer HTTP/2 by ALPN (default on); HTTP/1.1 is always offered.
    pub http2: bool,
    /// TLS 1.3 only, instead of 1.2 and 1.3.
    pub tls13_only: bool,
    /// An HTTP/2 connection with no request in flight for this long is closed (the
    /// request-head deadline reads HTTP/1 only).
    pub http2_idle_timeout: Duration,
    /// Plain-HTTP addresses that answer every request with a redirect to the public URL.
    pub redirect_listen: Vec<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CertFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// One certificate chain and its key, as loaded.
pub struct Loaded {
    /// DNS names it is for (subjectAltName, or the CN when it has none), lower case.
    pub names: Vec<String>,
    chain: Vec<X509>,
    key: PKey<Private>,
    /// Seconds since the epoch when the leaf expires.
    pub not_after: i64,
}

impl CertFiles {
    /// Reads and checks the pair; the error names the file at fault (`cert_file`/`key_file`).
    pub fn load(&self) -> Result<Loaded, (&'static str, String)> {
        let cert_pem = std::fs::read(&self.cert_file).map_err(|e| {
            (
                "cert_file",
                format!("cannot read {}: {e}", self.cert_file.display()),
            )
        })?;
        let key_pem = std::fs::read(&self.key_file).map_err(|e| {
            (
                "key_file",
                format!("cannot read {}: {e}", self.key_file.display()),
            )
        })?;
        let chain = X509::stack_from_pem(&cert_pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                let f = self.cert_file.display();
                ("cert_file", format!("{f} holds no PEM certificate"))
            })?;
        let key = PKey::private_key_from_pem(&key_pem).map_err(|e| {
            let f = self.key_file.display();
            ("key_file", format!("{f} is not a PEM private key: {e}"))
        })?;
        let leaf = &chain[0];
        if !leaf.public_key().is_ok_and(|p| p.public_eq(&key)) {
            let c = self.cert_file.display();
            return Err((
                "key_file",
                format!("is not the key of the first certificate in {c}"),
            ));
        }
        let mut names: Vec<String> = leaf
            .subject_alt_names()
            .map(|sans| {
                sans.iter()
                    .filter_map(|n| n.dnsname().map(str::to_ascii_lowercase))
                    .collect()
            })
            .unwrap_or_default();
        if names.is_empty() {
            names.extend(
                leaf.subject_name()
                    .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                    .filter_map(|e| {
                        std::str::from_utf8(e.data().as_slice())
                            .ok()
                            .map(str::to_ascii_lowercase)
                    }),
            );
        }
        let not_after = openssl::asn1::Asn1Time::from_unix(0)
            .and_then(|epoch| epoch.diff(leaf.not_after()))
            .map(|d| i64::from(d.days) * 86_400 + i64::from(d.secs))
            .unwrap_or(0);
        Ok(Loaded {
            names,
            chain,
            key,
            not_after,
        })
    }

    /// The pair's bytes as they are now (an unreadable file reads as nothing): what the
    /// watcher compares to notice a change.
    fn fingerprint(&self) -> Vec<u8> {
        let mut bytes = std::fs::read(&self.cert_file).unwrap_or_default();
        bytes.extend(std::fs::read(&self.key_file).unwrap_or_default());
        bytes
    }
}

/// Whether certificate name `pattern` (possibly `*.example.com`) covers `host`.
fn covers(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(base) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == base),
        None => pattern == host,
    }
}

/// The certificates in service, swapped whole when the files change.
pub struct CertStore {
    cfg: ListenerTls,
    loaded: ArcSwap<Vec<Loaded>>,
    /// The files' bytes when last read (loaded, or found broken), to notice changes.
    seen: Mutex<Vec<Vec<u8>>>,
    metrics: Arc<Metrics>,
}

impl CertStore {
    /// Loads every pair; the configuration reader has checked them, so an error here means a
    /// file changed since, and is returned for `main` to report.
    pub fn new(cfg: &ListenerTls, metrics: Arc<Metrics>) -> Result<Arc<Self>, String> {
        let seen = cfg
            .certificates
            .iter()
            .map(CertFiles::fingerprint)
            .collect();
        let loaded = cfg
            .certificates
            .iter()
            .map(|f| f.load().map_err(|(_, e)| e))
            .collect::<Result<Vec<_>, _>>()?;
        let store = Arc::new(Self {
            cfg: cfg.clone(),
            loaded: ArcSwap::from_pointee(loaded),
            seen: Mutex::new(seen),
            metrics,
        });
        store.publish();
        Ok(store)
    }

    /// The certificate for a handshake naming `sni`.
    fn pick<'a>(all: &'a [Loaded], sni: Option<&str>) -> Option<&'a Loaded> {
        if let Some(host) = sni {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            let exact = all.iter().find(|l| l.names.contains(&host));
            let wild = || {
                all.iter()
                    .find(|l| l.names.iter().any(|n| covers(n, &host)))
            };
            if let Some(l) = exact.or_else(wild) {
                return Some(l);
            }
        }
        all.first()
    }

    /// Reads the files again; swaps in the new set if they changed and all load.
    pub fn refresh(&self) {
        let now: Vec<Vec<u8>> = self
            .cfg
            .certificates
            .iter()
            .map(CertFiles::fingerprint)
            .collect();
        {
            let Ok(mut seen) = self.seen.lock() else {
                return;
            };
            // Unchanged, or the same broken state already reported once.
            if *seen == now {
                return;
            }
            *seen = now;
        }
        let fresh: Result<Vec<Loaded>, String> = self
            .cfg
            .certificates
            .iter()
            .map(|f| f.load().map_err(|(which, e)| format!("{which}: {e}")))
            .collect();
        match fresh {
            Err(e) => {
                log::error!("TLS certificate files changed but cannot be used ({e}); the previous certificates stay in service");
                self.metrics.tls_reloads.with_label_values(&["error"]).inc();
            }
            Ok(fresh) => {
                let names: Vec<&str> = fresh
                    .iter()
                    .flat_map(|l| l.names.first().map(String::as_str))
                    .collect();
                log::info!(
                    "TLS certificates reloaded from their files ({})",
                    names.join(", ")
                );
                self.loaded.store(Arc::new(fresh));
                self.metrics
                    .tls_reloads
                    .with_label_values(&["success"])
                    .inc();
                self.publish();
            }
        }
    }

    /// `authgate_tls_certificate_expiry_seconds{name}`: when each certificate expires.
    fn publish(&self) {
        let loaded = self.loaded.load();
        self.metrics.tls_expiry.reset();
        for l in loaded.iter() {
            let name = l.names.first().map_or("", String::as_str);
            self.metrics
                .tls_expiry
                .with_label_values(&[name])
                .set(l.not_after);
        }
    }

    /// The settings for one TLS listener, sharing this store.
    pub fn settings(self: &Arc<Self>) -> pingora::Result<TlsSettings> {
        let cfg = &self.cfg;
        let mut s = TlsSettings::with_callbacks(Box::new(Handshake(self.clone())))?;
        // Mozilla "intermediate" already starts at TLS 1.2; 1.3-only on request.
        let min = if cfg.tls13_only {
            SslVersion::TLS1_3
        } else {
            SslVersion::TLS1_2
        };
        s.set_min_proto_version(Some(min)).map_err(|e| {
            pingora::Error::explain(
                pingora::ErrorType::InternalError,
                format!("TLS version: {e}"),
            )
        })?;
        if cfg.http2 {
            s.enable_h2();
        }
        Ok(s)
    }
}

/// Gives each handshake the certificate its SNI asks for, from the current set.
struct Handshake(Arc<CertStore>);

#[async_trait]
impl TlsAccept for Handshake {
    async fn certificate_callback(&self, ssl: &mut SslRef) {
        let all = self.0.loaded.load();
        let sni = ssl.servername(NameType::HOST_NAME).map(str::to_string);
        let Some(c) = CertStore::pick(&all, sni.as_deref()) else {
            return;
        };
        let mut ok = ext::ssl_use_certificate(ssl, &c.chain[0]).is_ok()
            && ext::ssl_use_private_key(ssl, &c.key).is_ok();
        for extra in &c.chain[1..] {
            ok &= ext::ssl_add_chain_cert(ssl, extra).is_ok();
        }
        if !ok {
            log::warn!("TLS handshake: the certificate for {sni:?} could not be set");
        }
    }
}

const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Re-reads the certificate files every 2 s.
pub struct CertWatcher(pub Arc<CertStore>);

#[async_trait]
impl BackgroundService for CertWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(WATCH_EVERY) => self.0.refresh(),
            }
        }
    }
}

impl Reader<'_> {
    /// `tls:` at the top level; `taken` are the addresses already in use (listen, admin).
    pub(crate) fn listener_tls(
        &mut self,
        v: Option<&Value>,
        taken: &[SocketAddr],
    ) -> Option<ListenerTls> {
        let v = v?;
        let mut t = self.obj("tls", Some(v));
        t.map?;
        let mut certificates = Vec::new();
        let first = (
            self.string(&mut t, "cert_file"),
            self.string(&mut t, "key_file"),
        );
        let mut pairs = Vec::new();
        match first {
            (Some(c), Some(k)) => pairs.push(("tls".to_string(), c, k)),
            (None, None) => {}
            _ => self.err("tls", "cert_file and key_file go together"),
        }
        for (path, item) in self.list(&mut t, "certificates") {
            let mut o = self.obj(&path, Some(item));
            let c = self.required_string(&mut o, "cert_file");
            let k = self.required_string(&mut o, "key_file");
            self.finish(o);
            if let (Some(c), Some(k)) = (c, k) {
                pairs.push((path, c, k));
            }
        }
        if pairs.is_empty() && !self.errors.iter().any(|e| e.path.starts_with("tls")) {
            self.err(
                "tls",
                "needs cert_file and key_file (or a list under certificates)",
            );
        }
        for (path, c, k) in pairs {
            let files = CertFiles {
                cert_file: PathBuf::from(c),
                key_file: PathBuf::from(k),
            };
            match files.load() {
                Ok(l) => {
                    let now = chrono::Utc::now().timestamp();
                    if l.not_after < now {
                        self.warnings.push(crate::read::ConfigError {
                            path: join(&path, "cert_file"),
                            message: "the certificate has expired".into(),
                        });
                    }
                    certificates.push(files);
                }
                Err((which, e)) => self.err(join(&path, which), e),
            }
        }
        let http2 = self.bool(&mut t, "http2").unwrap_or(true);
        let http2_idle_timeout = self
            .duration(&mut t, "http2_idle_timeout")
            .unwrap_or(Duration::from_secs(60));
        if http2_idle_timeout.is_zero() {
            self.err("tls.http2_idle_timeout", "must be more than 0s");
        }
        let tls13_only = match self.string(&mut t, "min_version").as_deref() {
            None | Some("1.2") => false,
            Some("1.3") => true,
            Some(other) => {
                self.err(
                    "tls.min_version",
                    format!("{other:?} is not \"1.2\" or \"1.3\""),
                );
                false
            }
        };
        let mut redirect_listen = Vec::new();
        for (path, v) in self.list(&mut t, "redirect_listen") {
            match v.as_str().and_then(|s| self.socket_addr(&path, s)) {
                Some(a) if taken.contains(&a) || redirect_listen.contains(&a) => {
                    self.err(path, "is already used by listen or admin.listen")
                }
                Some(a) => redirect_listen.push(a),
                None if !v.is_string() => self.err(path, "expected an address string"),
                None => {}
            }
        }
        self.finish(t);
        Some(ListenerTls {
            certificates,
            http2,
            tls13_only,
            http2_idle_timeout,
            redirect_listen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn wildcards_cover_one_label_only() {
        let cases = [
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.b.example.com", false),
            ("*.example.com", ".example.com", false),
            ("*.example.com", "a.example.com.evil", false),
            ("app.example.com", "app.example.com", true),
            ("app.example.com", "APP.example.com", false), // callers lower-case first
            ("app.example.com", "xapp.example.com", false),
        ];
        for (pattern, host, want) in cases {
            assert_eq!(covers(pattern, host), want, "{pattern} vs {host}");
        }
    }
}
