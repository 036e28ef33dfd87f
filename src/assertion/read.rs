//! Reading `assertion:`: the header, the lifetime and the key files (each checked now).

use std::path::PathBuf;
use std::time::Duration;

use super::{AssertionConfig, DEFAULT_HEADER, DEFAULT_LIFETIME, MAX_LIFETIME};
use crate::read::{join, Obj, Reader};

const MIN_LIFETIME: Duration = Duration::from_secs(30);

impl Reader<'_> {
    /// `assertion:` (absent, or `enabled: false`: no assertion).
    pub(crate) fn assertion(&mut self, top: &mut Obj<'_>) -> Option<AssertionConfig> {
        let v = self.get(top, "assertion")?;
        let mut o = self.obj("assertion", Some(v));
        let enabled = self.bool(&mut o, "enabled").unwrap_or(true);
        let header = self
            .string(&mut o, "header")
            .unwrap_or_else(|| DEFAULT_HEADER.to_string());
        if header.is_empty()
            || !header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            self.err(
                "assertion.header",
                format!("{header:?} is not a valid header name"),
            );
        }
        let lifetime = self
            .duration(&mut o, "lifetime")
            .unwrap_or(DEFAULT_LIFETIME);
        if !(MIN_LIFETIME..=MAX_LIFETIME).contains(&lifetime) {
            self.err(
                "assertion.lifetime",
                "must be between 30s and 10m (a verifier needs time to run; a stolen assertion should not)",
            );
        }
        let key_files: Vec<PathBuf> = self
            .string_list(&mut o, "key_files")
            .unwrap_or_default()
            .into_iter()
            .map(PathBuf::from)
            .collect();
        for (i, f) in key_files.iter().enumerate() {
            let bytes = std::fs::read(f).unwrap_or_default();
            if let Err(e) = super::keys::load(std::slice::from_ref(f), &[bytes]) {
                self.err(format!("assertion.key_files[{i}]"), e);
            }
        }
        self.finish(o);
        enabled.then_some(AssertionConfig {
            header,
            lifetime,
            key_files,
        })
    }

    /// What the assertion needs from the rest: keys when more than one process signs, and a
    /// header name of its own.
    pub(crate) fn check_assertion(
        &mut self,
        a: &AssertionConfig,
        store: crate::session::StoreKind,
        identity_headers: &[&str],
    ) {
        if a.key_files.is_empty() && store == crate::session::StoreKind::Memory {
            self.warnings.push(crate::read::ConfigError {
                path: "assertion.key_files".into(),
                message: "none: this process signs with a key generated at start, which changes on every restart (apps that cached the JWKS then refuse new assertions until they fetch it again)".into(),
            });
        } else if a.key_files.is_empty() {
            self.err(
                "assertion.key_files",
                "list at least one P-256 key (openssl ecparam -name prime256v1 -genkey -noout -out assertion.pem): with this session store, replicas would each sign with a key of their own that the others' JWKS does not publish. Only session.store: memory (one process) may do without",
            );
        }
        let mine = crate::headers::normalize(&a.header);
        if identity_headers
            .iter()
            .any(|h| crate::headers::normalize(h) == mine)
        {
            self.err(
                join("assertion", "header"),
                format!("{:?} is already an identity header", a.header),
            );
        }
    }
}
