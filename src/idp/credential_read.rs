//! Reading a provider's client credential: exactly one of `client_secret` (`_file`),
//! `client_certificate_file` + `client_key_file`, `client_assertion_file`, `client_auth: none`
//! (or, for `type: entra`, `workload_identity: true`).

use std::path::PathBuf;

use super::credential::{load_certificate, ClientCredential, Thumbprint};
use crate::read::{join, Obj, Reader};

/// AKS workload identity's projected token (the webhook sets this variable).
const FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";

impl Reader<'_> {
    /// The provider's credential; every mistake reported with its path.
    pub(crate) fn client_credential(
        &mut self,
        o: &mut Obj<'_>,
        path: &str,
        workload: bool,
    ) -> Option<ClientCredential> {
        let has = |k: &str| o.map.is_some_and(|m| m.contains_key(k));
        let secret = has("client_secret") || has("client_secret_file");
        let cert = has("client_certificate_file") || has("client_key_file");
        let file = has("client_assertion_file");
        let none = has("client_auth");
        let given = [secret, cert, file || workload, none]
            .iter()
            .filter(|b| **b)
            .count();
        if given > 1 {
            // Named in the error below, not reported as unknown keys besides.
            for k in [
                "client_secret",
                "client_secret_file",
                "client_certificate_file",
                "client_key_file",
                "client_assertion_file",
                "client_auth",
            ] {
                self.get(o, k);
            }
        }
        if given != 1 {
            self.err(
                path,
                if given == 0 {
                    "needs a client credential: client_secret (or client_secret_file), client_certificate_file with client_key_file, client_assertion_file (workload identity), or client_auth: none (a public client)"
                } else {
                    "has more than one client credential: keep exactly one of client_secret, client_certificate_file + client_key_file, client_assertion_file / workload_identity, client_auth: none"
                },
            );
        }
        let thumbprint = self.thumbprint(o, path);
        if secret {
            return self
                .secret(o, "client_secret")
                .map(ClientCredential::Secret);
        }
        if cert {
            let c = self.required_string(o, "client_certificate_file");
            let k = self.required_string(o, "client_key_file");
            let (c, k) = (PathBuf::from(c?), PathBuf::from(k?));
            if let Err(e) = load_certificate(&c, &k, thumbprint) {
                self.err(join(path, "client_certificate_file"), e.0);
            }
            return Some(ClientCredential::Certificate {
                cert_file: c,
                key_file: k,
                thumbprint,
            });
        }
        if file || workload {
            let f = match (file, workload) {
                (true, _) => self.required_string(o, "client_assertion_file"),
                (false, _) => {
                    self.workload_env(path, "client_assertion_file", FEDERATED_TOKEN_FILE)
                }
            };
            return f.map(|f| ClientCredential::AssertionFile(PathBuf::from(f)));
        }
        if none {
            match self.string(o, "client_auth").as_deref() {
                Some("none") => {
                    self.warnings.push(crate::read::ConfigError {
                        path: join(path, "client_auth"),
                        message: "a public client: anyone who learns the client ID can redeem a stolen code at the IdP (PKCE still binds it to the browser that started), and the IdP cannot tell the gateway from any other client; use a certificate or workload identity where the registration allows".into(),
                    });
                    return Some(ClientCredential::None);
                }
                Some(other) => self.err(
                    join(path, "client_auth"),
                    format!("{other:?}: only none is written here (the other credentials are keys of their own)"),
                ),
                None => {}
            }
        }
        None
    }

    /// `domain_hint`, `prompt` (`select_account`, `login`), `max_age`.
    pub(crate) fn static_hints(
        &mut self,
        o: &mut Obj<'_>,
        path: &str,
    ) -> crate::idp::settings::StaticHints {
        let domain_hint = self.string(o, "domain_hint");
        if let Some(d) = &domain_hint {
            if !crate::idp::hints::is_domain(d) {
                self.err(
                    join(path, "domain_hint"),
                    format!("{d:?} is not a domain name"),
                );
            }
        }
        let prompt = self.string(o, "prompt");
        if let Some(p) = prompt
            .as_deref()
            .filter(|p| !matches!(*p, "select_account" | "login"))
        {
            self.err(
                join(path, "prompt"),
                format!("{p:?} is not select_account or login"),
            );
        }
        let max_age = self.duration(o, "max_age").map(|d| d.as_secs());
        crate::idp::settings::StaticHints {
            domain_hint,
            prompt,
            max_age,
        }
    }

    /// `client_certificate_thumbprint`: `sha1` (x5t, RS256; default) or `sha256` (x5t#S256,
    /// PS256).
    fn thumbprint(&mut self, o: &mut Obj<'_>, path: &str) -> Thumbprint {
        match self.string(o, "client_certificate_thumbprint").as_deref() {
            None | Some("sha1") => Thumbprint::Sha1,
            Some("sha256") => Thumbprint::Sha256,
            Some(other) => {
                self.err(
                    join(path, "client_certificate_thumbprint"),
                    format!("{other:?} is not sha1 or sha256"),
                );
                Thumbprint::Sha1
            }
        }
    }

    /// A setting `workload_identity: true` takes from the environment AKS sets.
    pub(crate) fn workload_env(&mut self, path: &str, key: &str, var: &str) -> Option<String> {
        match (self.env)(var).filter(|v| !v.is_empty()) {
            Some(v) => Some(v),
            None => {
                self.err(
                    join(path, key),
                    format!("workload_identity: true takes it from ${var}, which is not set (is the pod labelled azure.workload.identity/use: \"true\"?); or write {key} here"),
                );
                None
            }
        }
    }
}
