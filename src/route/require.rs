//! Reading `routes[].require` (`crate::assurance::Require`), checked against the providers
//! the route accepts.

use crate::assurance::{is_context_id, Require};
use crate::idp::settings::{ProviderConfig, ProviderKind};
use crate::read::{join, Obj, Reader};

impl Reader<'_> {
    /// A route's `require:` block; `accepted`: the providers the route accepts.
    pub(crate) fn require(
        &mut self,
        o: &mut Obj<'_>,
        path: &str,
        public: bool,
        accepted: &[&ProviderConfig],
    ) -> Require {
        let rpath = join(path, "require");
        let v = self.get(o, "require");
        let mut r = self.obj(&rpath, v);
        let auth_context = self.string(&mut r, "auth_context");
        let max_age = self.duration(&mut r, "max_age");
        let mfa = self.bool(&mut r, "mfa").unwrap_or(false);
        self.finish(r);
        let require = Require {
            auth_context,
            max_age: max_age.map(|d| d.as_secs()),
            mfa,
        };
        if require.is_empty() {
            return require;
        }
        if public {
            self.err(
                &rpath,
                "a public route signs nobody in: drop public or require",
            );
        }
        if let Some(c) = &require.auth_context {
            if !is_context_id(c) {
                self.err(
                    join(&rpath, "auth_context"),
                    format!(
                        "{c:?} is not an authentication context ID (c1 … c25, as Entra names them)"
                    ),
                );
            }
        }
        if let Some(m) = max_age {
            if m.as_secs() == 0 || m.as_secs() > 400 * 86_400 {
                self.err(join(&rpath, "max_age"), "between 1s and 400d");
            }
        }
        for p in accepted {
            self.require_fits(&rpath, &require, p);
        }
        require
    }

    /// Whether provider `p` can prove what `require` asks.
    fn require_fits(&mut self, rpath: &str, require: &Require, p: &ProviderConfig) {
        let name = &p.name;
        match &p.kind {
            ProviderKind::Saml(_) if require.auth_context.is_some() => self.err(
                join(rpath, "auth_context"),
                format!("provider {name:?} is SAML, which has no way to ask for an authentication context: use mfa (ForceAuthn, then Entra's authnmethodsreferences) or max_age, or an OpenID Connect provider"),
            ),
            ProviderKind::Oidc(o) if require.mfa && o.entra.is_some() => self.err(
                join(rpath, "mfa"),
                format!("provider {name:?} is Entra ID, whose v2 ID tokens carry no amr claim, so MFA cannot be verified from them: use auth_context with a Conditional Access policy that requires multifactor authentication"),
            ),
            ProviderKind::Oidc(o) if require.mfa && o.mfa_acr_values.is_empty() => self.warn(
                join(rpath, "mfa"),
                format!("provider {name:?} has no mfa_acr_values: the sign-in does not ask for a second factor, and only an ID token whose amr lists mfa passes"),
            ),
            _ => {}
        }
    }
}
