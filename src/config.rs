//! The configuration file (`gateway.yaml`) and the validated `Config` the rest of the gateway
//! sees. This module is the firewall between syntax and logic: it reads YAML (the only place
//! that touches serde_yaml), expands `${ENV}` references and `*_file` secrets, rejects
//! unknown keys, and reports *every* error at once with its path (`routes[2].upstream: ...`).
//! The validated `Config` is the one internal shape every part of the gateway reads; each
//! section's type and reader live beside the code it configures (see `read.rs`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_yaml::Value;
use url::Url;

use crate::forward_auth::ForwardAuth;
use crate::headers::HeaderNames;
use crate::idp::settings::ProviderConfig;
use crate::logging::LogFormat;
use crate::read::{Cidr, ConfigError, ConfigErrors, Obj, Reader, Secret};
use crate::route::RouteConfig;
use crate::session::SessionConfig;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    /// Scheme, host and port the browser uses to reach the gateway (no trailing slash).
    pub public_url: Url,
    pub admin_listen: SocketAddr,
    /// The admin API's bearer secret (`admin.api_token`); no token, no API.
    pub admin_api_token: Option<crate::read::Secret>,
    pub threads: usize,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_grace: Duration,
    pub routes: Vec<RouteConfig>,
    pub providers: Vec<ProviderConfig>,
    pub session: SessionConfig,
    pub headers: HeaderNames,
    pub forward_auth: ForwardAuth,
    /// SCIM provisioning (`scim:`); None: off.
    pub scim: Option<crate::scim::ScimConfig>,
    /// Peers whose `Forwarded` / `X-Forwarded-*` headers are kept (and appended to); from
    /// anyone else the gateway removes them and sets its own.
    pub trusted_proxies: Vec<Cidr>,
    /// The whole request head must arrive within this time (slow-header clients).
    pub request_header_timeout: Duration,
    pub log_format: LogFormat,
    /// `logging:` the access log.
    pub access_log: crate::logging::AccessLog,
    /// Reload when the file changes (besides SIGHUP).
    pub watch_config: bool,
    /// The signed identity assertion (`assertion:`); None: off.
    pub assertion: Option<crate::assertion::AssertionConfig>,
    /// TLS on the listener (`tls:`); None: plain HTTP.
    pub tls: Option<crate::tls::ListenerTls>,
    /// `hosts:` (with the routes' hosts) and `allowed_redirect_hosts:`.
    pub hosts: crate::hosts::Hosts,
    /// `home_realm:` discovery's default provider and remembering.
    pub home_realm: crate::idp::settings::HomeRealmConfig,
    /// Non-fatal findings (inline secrets and the like), shown by `authgate check` and logged.
    pub warnings: Vec<ConfigError>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: format!("cannot read {}: {e}", path.display()),
            }])
        })?;
        Self::parse(&text, &|name| std::env::var(name).ok())
    }

    /// Parse and validate. `env` resolves `${NAME}` references (injected so tests need not
    /// touch the process environment).
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
        let root: Value = serde_yaml::from_str(text).map_err(|e| {
            let path = e
                .location()
                .map(|l| format!("line {}, column {}", l.line(), l.column()))
                .unwrap_or_default();
            ConfigErrors(vec![ConfigError {
                path,
                message: format!("not valid YAML: {e}"),
            }])
        })?;
        let mut r = Reader {
            errors: Vec::new(),
            warnings: Vec::new(),
            env,
        };
        let cfg = r.config(&root);
        if r.errors.is_empty() {
            let mut cfg = cfg.ok_or_else(|| ConfigErrors(vec![]))?;
            cfg.warnings = r.warnings;
            Ok(cfg)
        } else {
            Err(ConfigErrors(r.errors))
        }
    }
}

/// Every provider keeps, at sign-in, the claims the routes' rules name.
fn rule_claims_wanted(routes: &[RouteConfig], providers: &mut [Option<ProviderConfig>]) {
    use crate::idp::settings::ProviderKind;
    let mut wanted: Vec<String> = Vec::new();
    for name in routes.iter().flat_map(|r| r.policy.claim_names()) {
        if !wanted.iter().any(|w| w == name) {
            wanted.push(name.to_string());
        }
    }
    for p in providers.iter_mut().flatten() {
        match &mut p.kind {
            ProviderKind::Oidc(o) => o.rule_claims.clone_from(&wanted),
            ProviderKind::Saml(s) => s.rule_claims.clone_from(&wanted),
        }
    }
}

/// Every provider keeps, at sign-in, the claims `headers.claims` sends and the claims the
/// routes' rules name.
fn claims_wanted(
    h: Option<&HeaderNames>,
    routes: &[RouteConfig],
    providers: &mut [Option<ProviderConfig>],
) {
    rule_claims_wanted(routes, providers);
    let Some(h) = h else { return };
    use crate::idp::settings::ProviderKind;
    let wanted: Vec<String> = h.claims.iter().map(|(_, c)| c.clone()).collect();
    for p in providers.iter_mut().flatten() {
        match &mut p.kind {
            ProviderKind::Oidc(o) => o.header_claims.clone_from(&wanted),
            ProviderKind::Saml(s) => s.header_claims.clone_from(&wanted),
        }
    }
}

/// What `server:` holds (copied into `Config`'s fields).
struct ServerSettings {
    threads: usize,
    shutdown_grace: Duration,
    log_format: LogFormat,
    watch_config: bool,
    request_header_timeout: Duration,
}

impl Reader<'_> {
    pub(crate) fn config(&mut self, root: &Value) -> Option<Config> {
        let mut top = self.obj("", Some(root));
        if top.map.is_none() {
            self.err("", "the configuration must be a mapping at the top level");
            return None;
        }

        let listen = self.listen(&mut top);
        let public_url = self
            .required_string(&mut top, "public_url")
            .and_then(|s| self.public_url("public_url", &s));
        let (admin_listen, admin_api_token) = self.admin(&mut top);
        let server = self.server(&mut top);
        let tls = {
            let v = self.get(&mut top, "tls");
            let mut taken = listen.clone();
            taken.extend(admin_listen);
            self.listener_tls(v, &taken)
        };
        if let (Some(_), Some(u)) = (&tls, &public_url) {
            if u.scheme() != "https" {
                self.err(
                    "public_url",
                    "must be https:// when the gateway serves TLS (tls:)",
                );
            }
        }
        let trusted_proxies = self.cidrs(&mut top, "trusted_proxies");
        let forward_auth = self.forward_auth(&mut top, &trusted_proxies);

        let mut providers = self.providers(&mut top);
        let routes = self.routes(&mut top, &providers);
        let signed_in: Vec<&[String]> = routes
            .iter()
            .filter(|r| !r.public)
            .map(|r| r.accepts.as_slice())
            .collect();
        let home_realm = self.home_realm(&mut top, &providers, &signed_in);
        let hosts = self.hosts(&mut top, &routes);
        let mut session = self.session(&mut top, public_url.as_ref());
        if let Some(session) = &mut session {
            self.session_needs(&routes, &mut providers, session);
        }
        let access_log = self.access_log(&mut top);
        let headers = self.headers(&mut top);
        claims_wanted(headers.as_ref(), &routes, &mut providers);
        let assertion = self.assertion(&mut top);
        if let Some(h) = &headers {
            let mut taken: Vec<&str> = h.all().to_vec();
            taken.extend(h.claims.iter().map(|(n, _)| n.as_str()));
            if let (Some(a), Some(s)) = (&assertion, &session) {
                self.check_assertion(a, s.store, &taken);
                taken.push(&a.header);
            }
            self.token_headers(&routes, &taken);
        }
        let names: Vec<String> = providers.iter().flatten().map(|p| p.name.clone()).collect();
        let has_scim = top.map.is_some_and(|m| m.contains_key("scim"));
        let scim = self.scim(&mut top, &names);
        if let (Some(h), Some(sc)) = (&headers, &scim) {
            self.scim_header_names(h, assertion.as_ref(), sc);
        }
        self.finish(top);
        if !has_scim {
            self.provisioned_needs_scim(&routes);
        }

        if let (Some(admin), false) = (admin_listen, listen.is_empty()) {
            if listen.contains(&admin) {
                self.err("admin.listen", "must differ from every address in listen");
            }
        }

        Some(Config {
            listen,
            public_url: public_url?,
            admin_listen: admin_listen?,
            admin_api_token,
            threads: server.threads,
            shutdown_grace: server.shutdown_grace,
            routes,
            providers: providers.into_iter().flatten().collect(),
            session: session?,
            headers: headers?,
            forward_auth,
            scim,
            trusted_proxies,
            request_header_timeout: server.request_header_timeout,
            log_format: server.log_format,
            access_log,
            watch_config: server.watch_config,
            tls,
            assertion,
            home_realm,
            hosts,
            warnings: Vec::new(),
        })
    }

    /// `allow.provisioned` without `scim:`: nobody could ever pass.
    fn provisioned_needs_scim(&mut self, routes: &[RouteConfig]) {
        for (i, r) in routes.iter().enumerate() {
            if r.policy.provisioned {
                self.err(
                    format!("routes[{i}].allow.provisioned"),
                    "needs SCIM provisioning (configure scim:)",
                );
            }
        }
    }

    /// What routes and providers ask of the session: re-check timers, a server-side store
    /// for kept forms and tokens.
    fn session_needs(
        &mut self,
        routes: &[RouteConfig],
        providers: &mut [Option<ProviderConfig>],
        session: &mut SessionConfig,
    ) {
        self.provider_timers(providers, session);
        self.token_routes(routes, providers, session.store);
        if session.store == crate::session::StoreKind::Cookie {
            for (i, r) in routes.iter().enumerate() {
                if r.preserve_post.is_some() {
                    self.err(
                        format!("routes[{i}].preserve_post"),
                        "keeps the form server-side: set session.store: redis (several replicas) or memory (one replica)",
                    );
                }
            }
        }
    }

    /// Routes that pass tokens upstream: a server-side store keeps them, an OpenID provider
    /// issues them, and `pass_access_token` needs its refresh token (`offline_access`).
    fn token_routes(
        &mut self,
        routes: &[RouteConfig],
        providers: &mut [Option<ProviderConfig>],
        store: crate::session::StoreKind,
    ) {
        use crate::idp::settings::ProviderKind;
        for (i, r) in routes.iter().enumerate() {
            if !r.tokens.any() {
                continue;
            }
            let at = format!("routes[{i}]");
            if store == crate::session::StoreKind::Cookie {
                self.err(&at, "pass_id_token and pass_access_token keep the tokens server-side: set session.store: redis (several replicas) or memory (one replica)");
            }
            let Some(Some(p)) = providers.get_mut(r.provider) else {
                continue;
            };
            match &mut p.kind {
                ProviderKind::Saml(_) => self.err(
                    &at,
                    format!(
                        "provider {:?} speaks SAML: it issues no ID or access tokens",
                        p.name
                    ),
                ),
                ProviderKind::Oidc(o) => {
                    if r.tokens.access_token.is_some()
                        && !o.scopes.iter().any(|s| s == "offline_access")
                    {
                        o.scopes.push("offline_access".into());
                    }
                }
            }
        }
    }

    /// Provisioned attributes' headers (`scim.headers`) are their own: not an identity,
    /// claim or assertion header.
    fn scim_header_names(
        &mut self,
        h: &HeaderNames,
        assertion: Option<&crate::assertion::AssertionConfig>,
        scim: &crate::scim::ScimConfig,
    ) {
        let taken: Vec<String> = h
            .all()
            .iter()
            .map(|n| n.to_string())
            .chain(h.claims.iter().map(|(n, _)| n.clone()))
            .chain(assertion.map(|a| a.header.clone()))
            .map(|n| crate::headers::normalize(&n))
            .collect();
        for (attr, name) in &scim.headers {
            if taken.contains(&crate::headers::normalize(name)) {
                self.err(
                    format!("scim.headers.{}", attr.key()),
                    format!("{name:?} is already an identity, claim or assertion header"),
                );
            }
        }
    }

    /// A route's token headers are its own: not an identity, claim or assertion header, not
    /// a forwarding or request header.
    fn token_headers(&mut self, routes: &[RouteConfig], taken: &[&str]) {
        for (i, r) in routes.iter().enumerate() {
            for (key, name) in [
                ("pass_id_token", r.tokens.id_token.as_deref()),
                (
                    "pass_access_token",
                    r.tokens.access_token.as_ref().map(|a| a.header.as_str()),
                ),
            ] {
                let Some(name) = name else { continue };
                let at = format!("routes[{i}].{key}.header");
                let n = crate::headers::normalize(name);
                if taken.iter().any(|t| crate::headers::normalize(t) == n) {
                    self.err(
                        &at,
                        format!("{name:?} is already an identity, claim or assertion header"),
                    );
                } else if let Some(why) = crate::headers::refused_claim_header(name) {
                    self.err(&at, why);
                }
            }
        }
    }

    /// `listen:`, required: the proxy's addresses.
    fn listen(&mut self, top: &mut Obj) -> Vec<SocketAddr> {
        if top.map.and_then(|m| m.get("listen")).is_none() {
            self.err(
                "listen",
                "is required (a list of addresses like 0.0.0.0:8080)",
            );
        }
        let mut listen = Vec::new();
        for (path, v) in self.list(top, "listen") {
            match v.as_str().and_then(|s| self.expand(&path, s)) {
                Some(s) => listen.extend(self.socket_addr(&path, &s)),
                None if !v.is_string() => self.err(path, "expected an address string"),
                None => {}
            }
        }
        listen
    }

    /// `admin:`: the admin listener's address and the admin API's token (at least 24 bytes).
    fn admin(&mut self, top: &mut Obj) -> (Option<SocketAddr>, Option<Secret>) {
        let mut admin = {
            let v = self.get(top, "admin");
            self.obj("admin", v)
        };
        let listen = match self.string(&mut admin, "listen") {
            Some(s) => self.socket_addr("admin.listen", &s),
            None => "127.0.0.1:9090".parse().ok(),
        };
        let has_token = admin
            .map
            .is_some_and(|m| m.contains_key("api_token") || m.contains_key("api_token_file"));
        let token = if has_token {
            self.secret(&mut admin, "api_token")
        } else {
            None
        };
        if token.as_ref().is_some_and(|t| t.0.len() < 24) {
            self.err(
                "admin.api_token",
                "must be at least 24 bytes (generate one with: openssl rand -base64 32)",
            );
        }
        self.finish(admin);
        (listen, token.filter(|t| t.0.len() >= 24))
    }

    /// `server:`: threads, shutdown, logging, reloads and the request-head deadline.
    fn server(&mut self, top: &mut Obj) -> ServerSettings {
        let mut server = {
            let v = self.get(top, "server");
            self.obj("server", v)
        };
        let threads = match self.uint(&mut server, "threads") {
            Some(0) | None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            Some(n) => n as usize,
        };
        let shutdown_grace = self
            .duration(&mut server, "shutdown_grace")
            .unwrap_or(Duration::from_secs(5));
        let log_format = match self.string(&mut server, "log_format").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                self.err(
                    "server.log_format",
                    format!("{other:?} is not text or json"),
                );
                LogFormat::Text
            }
        };
        let watch_config = self.bool(&mut server, "watch_config").unwrap_or(false);
        let request_header_timeout = self
            .duration(&mut server, "request_header_timeout")
            .unwrap_or(Duration::from_secs(15));
        if request_header_timeout.is_zero() {
            self.err("server.request_header_timeout", "must be more than 0s");
        }
        self.finish(server);
        ServerSettings {
            threads,
            shutdown_grace,
            log_format,
            watch_config,
            request_header_timeout,
        }
    }

    pub(crate) fn public_url(&mut self, path: &str, s: &str) -> Option<Url> {
        let url = match Url::parse(s) {
            Ok(u) => u,
            Err(e) => {
                self.err(path, format!("{s:?} is not a URL: {e}"));
                return None;
            }
        };
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            self.err(path, "must be an http(s) URL with a host");
            return None;
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            self.err(
                path,
                "must be only scheme, host and port (the gateway serves from the root)",
            );
            return None;
        }
        Some(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idp::settings::{ProviderKind, SamlIdp};
    use crate::read::parse_duration;

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("0123456789abcdef0123456789abcdef-long".into()),
            "CLIENT_SECRET" => Some("s3cret".into()),
            _ => None,
        }
    }

    const GOOD: &str = r#"
listen: ["127.0.0.1:8080"]
public_url: "http://127.0.0.1:8080"
providers:
  - name: demo
    type: oidc
    issuer: "http://127.0.0.1:4000/tid/v2.0"
    client_id: app
    client_secret: "${CLIENT_SECRET}"
routes:
  - name: app
    upstream: "127.0.0.1:3000"
  - name: health
    path_prefix: /health
    upstream: "http://127.0.0.1:3000"
    public: true
session:
  secret: "${SECRET}"
"#;

    #[test]
    fn good_config_parses_with_defaults() {
        let c = Config::parse(GOOD, &env).expect("valid");
        assert_eq!(c.routes.len(), 2);
        assert!(c.routes[1].public);
        assert_eq!(c.session.cookie_name, "authgate_session");
        assert!(
            !c.session.secure,
            "http public_url defaults secure to false"
        );
        assert_eq!(c.headers.user, "X-Auth-User");
        let ProviderKind::Oidc(o) = &c.providers[0].kind else {
            panic!("expected an OIDC provider");
        };
        assert_eq!(
            o.discovery_url.as_str(),
            "http://127.0.0.1:4000/tid/v2.0/.well-known/openid-configuration"
        );
        assert_eq!(
            o.credential,
            crate::idp::credential::ClientCredential::Secret(Secret("s3cret".into()))
        );
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let bad = r#"
listen: ["nonsense"]
public_url: "ftp://x"
providers:
  - name: demo
    type: oidc
    issuer: "http://127.0.0.1:4000"
    client_id: app
    client_secret: "${MISSING}"
    scopes: [profile]
routes:
  - name: app
    upstream: "127.0.0.1:3000"
    provider: nope
  - name: two
    upstream: "127.0.0.1:notaport"
    pubic: true
session:
  secret: short
  lifetime: forever
colour: blue
"#;
        let errs = Config::parse(bad, &env).expect_err("invalid").0;
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "listen[0]",
            "public_url",
            "providers[0].client_secret",
            "providers[0].scopes",
            "routes[0].provider",
            "routes[1].upstream",
            "routes[1].pubic",
            "session.secret",
            "session.lifetime",
            "colour",
        ] {
            assert!(paths.contains(&want), "missing error for {want}: {errs:?}");
        }
    }

    #[test]
    fn inline_secret_warns_and_both_forms_error() {
        let text = GOOD.replace("\"${CLIENT_SECRET}\"", "plain-inline");
        let c = Config::parse(&text, &env).expect("valid");
        assert_eq!(c.warnings.len(), 1);
        assert_eq!(c.warnings[0].path, "providers[0].client_secret");

        let text = GOOD.replace(
            "client_secret: \"${CLIENT_SECRET}\"",
            "client_secret: x\n    client_secret_file: /nonexistent",
        );
        let errs = Config::parse(&text, &env).expect_err("both").0;
        assert!(
            errs.iter().any(|e| e.message.contains("not both")),
            "{errs:?}"
        );
    }

    #[test]
    fn reserved_prefix_and_secure_mismatch_rejected() {
        let text = GOOD
            .replace("path_prefix: /health", "path_prefix: /_authgate/x")
            .replace("session:\n", "session:\n  secure: true\n");
        let errs = Config::parse(&text, &env).expect_err("invalid").0;
        assert!(errs.iter().any(|e| e.path == "routes[1].path_prefix"));
        assert!(errs.iter().any(|e| e.path == "session.secure"));
    }

    #[test]
    fn saml_provider_section() {
        let text = GOOD.replace(
            "routes:",
            "  - name: entra-saml\n    type: saml\n    entity_id: \"spn:app\"\n    idp_entity_id: \"https://sts.windows.net/t/\"\n    idp_sso_url: \"https://login.microsoftonline.com/t/saml2\"\n    idp_cert_fingerprints: [\"5D1BE4A3C3FB03751A5929D4EDB33D9D3D0C8E10\"]\n    name_id_format: persistent\nroutes:",
        )
        .replace("    upstream: \"127.0.0.1:3000\"\n  - name: health", "    upstream: \"127.0.0.1:3000\"\n    provider: demo\n  - name: health")
        .replace("    public: true\n", "    public: true\n    provider: entra-saml\n");
        let c = Config::parse(&text, &env).expect("valid");
        let ProviderKind::Saml(s) = &c.providers[1].kind else {
            panic!("expected a SAML provider");
        };
        assert_eq!(
            s.name_id_format,
            "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
        );
        assert!(
            matches!(&s.idp, SamlIdp::Fingerprint { fingerprints, .. } if fingerprints[0].len() == 20)
        );
        assert_eq!(
            s.attributes.tenant,
            "http://schemas.microsoft.com/identity/claims/tenantid"
        );
        // Two ways to name the IdP at once, a bad fingerprint, half a signing pair: all reported.
        let bad = text
            .replace("    name_id_format: persistent\n", "    name_id_format: persistent\n    idp_metadata_url: \"https://x/md\"\n    sp_key_file: /nonexistent\n")
            .replace("5D1BE4A3C3FB03751A5929D4EDB33D9D3D0C8E10", "zz");
        let errs = Config::parse(&bad, &env).expect_err("invalid").0;
        assert!(
            errs.iter().any(|e| e.message.contains("exactly one way")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.message.contains("go together")),
            "{errs:?}"
        );
    }

    const ENTRA: &str = r#"
listen: ["127.0.0.1:8080"]
public_url: "https://app.example"
providers:
  - name: entra
    type: entra
    tenant: organizations
    client_id: "11111111-2222-3333-4444-555555555555"
    client_secret: "${CLIENT_SECRET}"
    allowed_tenants: ["72F988BF-86F1-41AF-91AB-2D7CD011DB47"]
    api_audience: "api://authgate"
    group_names:
      6E6A3C0C-1D87-4D39-9B9A-9D54A0F0A1B1: Admins
routes:
  - name: admin
    path_prefix: /admin
    upstream: "127.0.0.1:3000"
    allow:
      groups: [Admins]
      roles: [Admin]
      email_domains: ["@Contoso.example"]
      require_assignment: true
  - name: app
    upstream: "127.0.0.1:3000"
session:
  secret: "${SECRET}"
"#;

    #[test]
    fn entra_preset_derives_urls_and_resolves_policy() {
        let c = Config::parse(ENTRA, &env).expect("valid");
        let ProviderKind::Oidc(o) = &c.providers[0].kind else {
            panic!("entra is an OpenID provider");
        };
        assert_eq!(
            o.discovery_url.as_str(),
            "https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration"
        );
        assert_eq!(o.user_claim, "oid");
        let e = o.entra.as_ref().expect("entra settings");
        assert!(e
            .allowed_tenants
            .allows("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(!e
            .allowed_tenants
            .allows("f8cdef31-a31e-4b4a-93e4-5f571e91255a"));
        assert_eq!(
            e.graph.as_ref().map(Url::as_str),
            Some("https://graph.microsoft.com/")
        );
        let admin = &c.routes[0].policy;
        assert_eq!(admin.groups, vec!["6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1b1"]);
        assert_eq!(admin.email_domains, vec!["contoso.example"]);
        assert!(admin.require_assignment);
        assert!(c.routes[1].policy.is_empty());
    }

    #[test]
    fn entra_saml_derives_the_federation_metadata_url() {
        let text = ENTRA.replace(
            "    allowed_tenants: [\"72F988BF-86F1-41AF-91AB-2D7CD011DB47\"]\n    api_audience: \"api://authgate\"\n",
            "    protocol: saml\n    entity_id: \"https://app.example/saml\"\n",
        ).replace("tenant: organizations", "tenant: 72f988bf-86f1-41af-91ab-2d7cd011db47");
        let c = Config::parse(&text, &env).expect("valid");
        let ProviderKind::Saml(s) = &c.providers[0].kind else {
            panic!("protocol: saml is a SAML provider");
        };
        assert_eq!(
            s.idp,
            SamlIdp::MetadataUrl(Url::parse("https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/federationmetadata/2007-06/federationmetadata.xml?appid=11111111-2222-3333-4444-555555555555").unwrap())
        );
        let g = s
            .graph
            .as_ref()
            .expect("client_secret enables Graph for overage");
        assert_eq!(
            g.token_url.as_ref().map(Url::as_str),
            Some("https://login.microsoftonline.com/organizations/oauth2/v2.0/token")
        );
        // Multi-tenant SAML and OIDC-only keys are refused, with their paths.
        let bad = text
            .replace(
                "tenant: 72f988bf-86f1-41af-91ab-2d7cd011db47",
                "tenant: common",
            )
            .replace(
                "    protocol: saml\n",
                "    protocol: saml\n    api_audience: x\n",
            );
        let errs = Config::parse(&bad, &env).expect_err("invalid").0;
        for path in ["providers[0].tenant", "providers[0].api_audience"] {
            assert!(
                errs.iter().any(|e| e.path == path),
                "{path} missing in {errs:?}"
            );
        }
    }

    #[test]
    fn multi_tenant_without_a_choice_is_an_error() {
        let text = ENTRA.replace(
            "    allowed_tenants: [\"72F988BF-86F1-41AF-91AB-2D7CD011DB47\"]\n",
            "",
        );
        let errs = Config::parse(&text, &env).expect_err("must choose").0;
        assert!(
            errs.iter().any(|e| e.path == "providers[0].allowed_tenants"
                && e.message.contains("allowed_tenants: any")),
            "{errs:?}"
        );
        let any = ENTRA.replace("[\"72F988BF-86F1-41AF-91AB-2D7CD011DB47\"]", "any");
        assert!(Config::parse(&any, &env).is_ok());
        // Every mistake at once, with its path.
        let bad = ENTRA
            .replace("tenant: organizations", "tenant: consumers")
            .replace(
                "require_assignment: true",
                "require_assignment: true\n      tenants: [contoso]\n      rolez: [x]",
            )
            .replace(
                "    path_prefix: /admin\n",
                "    path_prefix: /admin\n    public: true\n",
            );
        let errs = Config::parse(&bad, &env).expect_err("invalid").0;
        for path in [
            "providers[0].tenant",
            "routes[0].allow.tenants",
            "routes[0].allow.rolez",
            "routes[0].allow",
        ] {
            assert!(
                errs.iter().any(|e| e.path == path),
                "{path} missing in {errs:?}"
            );
        }
    }

    #[test]
    fn a_preset_that_cannot_derive_still_checks_the_rest_of_its_section() {
        // An invalid `instance` (or tenant) is the one error: the section's other keys are
        // still read, so they are neither reported unknown nor left unchecked.
        let saml = ENTRA
            .replace(
                "    allowed_tenants: [\"72F988BF-86F1-41AF-91AB-2D7CD011DB47\"]\n    api_audience: \"api://authgate\"\n",
                "    protocol: saml\n    entity_id: \"https://app.example/saml\"\n",
            )
            .replace("tenant: organizations", "tenant: 72f988bf-86f1-41af-91ab-2d7cd011db47");
        let cases = [
            (
                ENTRA.to_string(),
                "instance: \"ftp://login.example\"",
                "providers[0].instance",
            ),
            (
                ENTRA.to_string(),
                "instance: \"not a url\"",
                "providers[0].instance",
            ),
            (
                saml.clone(),
                "instance: \"ftp://login.example\"",
                "providers[0].instance",
            ),
            (
                ENTRA.replace("tenant: organizations", "tenant: \"no such/tenant\""),
                "",
                "providers[0].tenant",
            ),
            (
                saml.replace(
                    "tenant: 72f988bf-86f1-41af-91ab-2d7cd011db47",
                    "tenant: common",
                ),
                "",
                "providers[0].tenant",
            ),
        ];
        for (base, extra, expected) in cases {
            let text = base.replace(
                "    client_id: \"11111111",
                &format!("    {extra}\n    client_id: \"11111111"),
            );
            let errs = Config::parse(&text, &env).expect_err("invalid").0;
            let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(paths, [expected], "{extra:?}: {errs:?}");
        }
        // A real mistake elsewhere in the section is still reported beside it.
        let text = ENTRA.replace(
            "    client_id: \"11111111",
            "    instance: \"ftp://x\"\n    scopez: [x]\n    client_id: \"11111111",
        );
        let errs = Config::parse(&text, &env).expect_err("invalid").0;
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["providers[0].instance", "providers[0].scopez"],
            "{errs:?}"
        );
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("127.0.0.1")
            .unwrap()
            .contains("127.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nonsense").is_none());
        let errs = Config::parse(&format!("{GOOD}forward_auth:\n  enabled: true\n"), &env)
            .expect_err("x")
            .0;
        assert!(
            errs.iter()
                .any(|e| e.path == "forward_auth.trusted_proxies"),
            "{errs:?}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("8h"), Some(Duration::from_secs(28800)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172800)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("1y"), None);
        assert_eq!(parse_duration("h"), None);
    }
}
