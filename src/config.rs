//! The configuration file (`gateway.yaml`) and the validated `Config` the rest of the gateway
//! sees. This module is the firewall between syntax and logic: it reads YAML (the only place
//! that touches serde_yaml), expands `${ENV}` references and `*_file` secrets, rejects
//! unknown keys, and reports *every* error at once with its path (`routes[2].upstream: ...`).

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_yaml::{Mapping, Value};
use url::Url;

use crate::idp::entra::{self, Tenant, TenantRule};
use crate::policy::{GroupNames, Policy};

/// One problem in the configuration, with the path of the value it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// All problems found in one file; never just the first.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} error(s) in the configuration:", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    /// Scheme, host and port the browser uses to reach the gateway (no trailing slash).
    pub public_url: Url,
    pub admin_listen: SocketAddr,
    pub threads: usize,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_grace: Duration,
    pub routes: Vec<RouteConfig>,
    pub providers: Vec<ProviderConfig>,
    pub session: SessionConfig,
    pub headers: HeaderNames,
    pub forward_auth: ForwardAuth,
    /// Peers whose `Forwarded` / `X-Forwarded-*` headers are kept (and appended to); from
    /// anyone else the gateway removes them and sets its own.
    pub trusted_proxies: Vec<Cidr>,
    /// The whole request head must arrive within this time (slow-header clients).
    pub request_header_timeout: Duration,
    pub log_format: LogFormat,
    /// Reload when the file changes (besides SIGHUP).
    pub watch_config: bool,
    /// Non-fatal findings (inline secrets and the like), shown by `authgate check` and logged.
    pub warnings: Vec<ConfigError>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    /// Lower-case host to match, without port; `None` matches any host.
    pub host: Option<String>,
    pub path_prefix: String,
    pub upstream: Upstream,
    pub public: bool,
    /// Index into `Config::providers`: the provider browsers are sent to sign in with.
    pub provider: usize,
    /// Names of the providers whose sessions and tokens this route accepts (`provider` first).
    /// An identity from any other provider is no session here.
    pub accepts: Vec<String>,
    /// Who may pass, beyond being signed in (`allow:`); group names already resolved to IDs.
    pub policy: Policy,
    /// Path forms this route accepts although some upstreams read them differently.
    pub exceptions: crate::canonical::Exceptions,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub addr: String,
    pub tls: bool,
    /// SNI / Host for TLS upstreams.
    pub sni: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    /// Group ID → readable name: policies may name groups, upstreams receive the names.
    pub group_names: GroupNames,
}

// Built once per (re)load, never on the request path: boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderKind {
    Oidc(OidcConfig),
    Saml(SamlConfig),
}

/// A SAML 2.0 identity provider, as this gateway (the service provider) sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SamlConfig {
    /// The SP entity ID (Entra: "Identifier (Entity ID)"); the audience assertions must carry.
    pub entity_id: String,
    pub idp: SamlIdp,
    /// Full NameID format URN requested in the AuthnRequest.
    pub name_id_format: String,
    pub clock_skew: Duration,
    pub allow_idp_initiated: bool,
    /// Attribute (claim URI) whose value is the user key; `None` = the NameID.
    pub user_attribute: Option<String>,
    pub attributes: SamlAttributes,
    /// PEM key and certificate to sign AuthnRequests (RSA-SHA256), if the IdP requires it.
    pub sp_signing: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Entra groups overage (`groups.link`): Graph credentials of the app behind the
    /// enterprise app; `None` = such users are refused.
    pub graph: Option<SamlGraph>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SamlGraph {
    pub client_id: String,
    pub client_secret: Secret,
    pub url: Url,
    /// `None`: `<IdP sign-on URL origin>/organizations/oauth2/v2.0/token`, in the user's tenant.
    pub token_url: Option<Url>,
    pub cache_ttl: Duration,
}

/// How the IdP is known: the three options Entra admins are given.
#[derive(Debug, Clone, PartialEq)]
pub enum SamlIdp {
    MetadataUrl(Url),
    MetadataFile(std::path::PathBuf),
    /// Entity ID, sign-on URL and the signing certificate's thumbprint(s) (SHA-1 as Entra shows
    /// it, or SHA-256), hex.
    Fingerprint {
        entity_id: String,
        sso_url: Url,
        slo_url: Option<Url>,
        fingerprints: Vec<Vec<u8>>,
    },
}

/// Claim URIs mapped to identity fields; Entra's by default.
#[derive(Debug, Clone, PartialEq)]
pub struct SamlAttributes {
    pub email: String,
    pub name: String,
    pub groups: String,
    pub roles: String,
    pub tenant: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    pub issuer: Url,
    pub discovery_url: Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    /// The claim whose value goes into the user header (the stable user key).
    pub user_claim: String,
    /// Tolerance for `exp`/`iat`/`nbf` against this machine's clock.
    pub clock_skew: Duration,
    /// `Authorization: Bearer` access tokens for this audience are accepted on its routes.
    pub api_audience: Option<String>,
    /// Which Entra access token versions `api_audience` accepts (`api_token_versions`).
    pub api_versions: crate::idp::entra::Versions,
    /// JWS algorithms accepted for ID and access tokens (`signing_algs`); symmetric ones only
    /// when listed, and never for access tokens.
    pub signing_algs: Vec<String>,
    /// Set by `type: entra`: Entra's issuer template, tenant rules, nOAuth and overage.
    pub entra: Option<EntraSettings>,
}

/// What `type: entra` adds to an OpenID provider.
#[derive(Debug, Clone, PartialEq)]
pub struct EntraSettings {
    pub instance: Url,
    pub tenant: Tenant,
    pub allowed_tenants: TenantRule,
    /// Microsoft Graph base URL for groups overage; `None` = deny overage users.
    pub graph: Option<Url>,
    pub groups_cache_ttl: Duration,
}

/// A secret value; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The whole identity lives in the sealed cookie: no shared state between replicas.
    Cookie,
    /// The cookie holds a sealed session id; the identity lives in this process (moka).
    Memory,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    pub cookie_name: String,
    pub lifetime: Duration,
    pub idle_timeout: Duration,
    pub secure: bool,
    pub secret: Secret,
    pub store: StoreKind,
    /// Upper bound for the in-memory store.
    pub max_sessions: u64,
}

impl SessionConfig {
    /// The name pending sign-ins and other path-scoped cookies derive theirs from: the
    /// session cookie's without the `__Host-` prefix (which requires `Path=/`).
    pub fn base_name(&self) -> &str {
        self.cookie_name
            .strip_prefix("__Host-")
            .unwrap_or(&self.cookie_name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderNames {
    pub user: String,
    pub email: String,
    pub name: String,
    pub groups: String,
    pub roles: String,
    pub tenant: String,
    pub provider: String,
    /// More client headers to remove (`headers.strip`): exact names, or prefixes ending `*`.
    pub strip: Vec<String>,
}

/// The documented defaults: `X-Auth-User`, `X-Auth-Email`, ...
impl Default for HeaderNames {
    fn default() -> Self {
        HeaderNames {
            user: "X-Auth-User".into(),
            email: "X-Auth-Email".into(),
            name: "X-Auth-Name".into(),
            groups: "X-Auth-Groups".into(),
            roles: "X-Auth-Roles".into(),
            tenant: "X-Auth-Tenant".into(),
            provider: "X-Auth-Provider".into(),
            strip: Vec::new(),
        }
    }
}

impl HeaderNames {
    pub fn all(&self) -> [&str; 7] {
        [
            &self.user,
            &self.email,
            &self.name,
            &self.groups,
            &self.roles,
            &self.tenant,
            &self.provider,
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Forward-auth mode (ingress-nginx `auth-url`, Traefik ForwardAuth): the original request's
/// URL comes from the controller's headers, trusted only from these addresses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ForwardAuth {
    pub enabled: bool,
    pub trusted_proxies: Vec<Cidr>,
    /// Which headers describe the original request: never guessed from what arrived.
    pub dialect: Dialect,
}

/// How an ingress controller describes the request it asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// ingress-nginx `auth-url`: `X-Original-URL` only.
    #[default]
    Nginx,
    /// Traefik ForwardAuth: `X-Forwarded-Proto`, `-Host`, `-Uri` only.
    Traefik,
}

/// An address range such as `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip.parse::<std::net::IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let ip = s.parse::<std::net::IpAddr>().ok()?;
                (ip, if ip.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { net: ip, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map(V4).unwrap_or(V6(v6)),
            v4 => v4,
        };
        match (self.net, ip) {
            (V4(n), V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (V6(n), V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The path prefix the gateway keeps for itself on every host (callback, sign-out, ...).
pub const RESERVED_PREFIX: &str = "/_authgate";

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

/// Walks the YAML tree, collecting errors instead of stopping at the first.
struct Reader<'e> {
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
    env: &'e dyn Fn(&str) -> Option<String>,
}

/// A YAML mapping being read; remembers which keys were used so the rest can be reported.
struct Obj<'a> {
    path: String,
    map: Option<&'a Mapping>,
    used: HashSet<String>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'e> Reader<'e> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn obj<'a>(&mut self, path: &str, v: Option<&'a Value>) -> Obj<'a> {
        let map = match v {
            None | Some(Value::Null) => None,
            Some(Value::Mapping(m)) => Some(m),
            Some(_) => {
                self.err(path, "expected a mapping (key: value)");
                None
            }
        };
        Obj {
            path: path.to_string(),
            map,
            used: HashSet::new(),
        }
    }

    fn get<'a>(&mut self, o: &mut Obj<'a>, key: &str) -> Option<&'a Value> {
        o.used.insert(key.to_string());
        match o.map?.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// Reports keys of `o` that nothing read: a typo in an auth product is dangerous.
    fn finish(&mut self, o: Obj<'_>) {
        let Some(map) = o.map else { return };
        for k in map.keys() {
            let name = match k {
                Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            };
            if !o.used.contains(&name) {
                let mut known: Vec<&str> = o.used.iter().map(String::as_str).collect();
                known.sort_unstable();
                self.err(
                    join(&o.path, &name),
                    format!("unknown key (known keys here: {})", known.join(", ")),
                );
            }
        }
    }

    /// Expands `${NAME}` from the environment; a missing variable is an error at `path`.
    fn expand(&mut self, path: &str, s: &str) -> Option<String> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                self.err(path, "unterminated ${...} reference");
                return None;
            };
            let name = &after[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                self.err(path, format!("invalid environment variable name {name:?}"));
                return None;
            }
            match (self.env)(name) {
                Some(v) => out.push_str(&v),
                None => {
                    self.err(path, format!("environment variable {name} is not set"));
                    return None;
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    fn string(&mut self, o: &mut Obj<'_>, key: &str) -> Option<String> {
        let path = join(&o.path, key);
        match self.get(o, key)? {
            Value::String(s) => self.expand(&path, s),
            Value::Number(n) => Some(n.to_string()),
            _ => {
                self.err(path, "expected a string");
                None
            }
        }
    }

    fn required_string(&mut self, o: &mut Obj<'_>, key: &str) -> Option<String> {
        let v = self.string(o, key);
        if v.is_none() && !self.errors.iter().any(|e| e.path == join(&o.path, key)) {
            self.err(join(&o.path, key), "is required");
        }
        v
    }

    fn bool(&mut self, o: &mut Obj<'_>, key: &str) -> Option<bool> {
        let path = join(&o.path, key);
        match self.get(o, key)? {
            Value::Bool(b) => Some(*b),
            _ => {
                self.err(path, "expected true or false");
                None
            }
        }
    }

    fn uint(&mut self, o: &mut Obj<'_>, key: &str) -> Option<u64> {
        let path = join(&o.path, key);
        match self.get(o, key)? {
            Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
            _ => {
                self.err(path, "expected a whole number");
                None
            }
        }
    }

    fn duration(&mut self, o: &mut Obj<'_>, key: &str) -> Option<Duration> {
        let path = join(&o.path, key);
        let v = self.get(o, key)?;
        let parsed = match v {
            Value::Number(n) => n.as_u64().map(Duration::from_secs),
            Value::String(s) => parse_duration(s),
            _ => None,
        };
        if parsed.is_none() {
            self.err(path, "expected a duration such as 90s, 15m, 8h or 1d");
        }
        parsed
    }

    fn list<'a>(&mut self, o: &mut Obj<'a>, key: &str) -> Vec<(String, &'a Value)> {
        let path = join(&o.path, key);
        match self.get(o, key) {
            None => Vec::new(),
            Some(Value::Sequence(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{path}[{i}]"), v))
                .collect(),
            Some(_) => {
                self.err(path, "expected a list");
                Vec::new()
            }
        }
    }

    fn string_list(&mut self, o: &mut Obj<'_>, key: &str) -> Option<Vec<String>> {
        let present = o.map.and_then(|m| m.get(key)).is_some();
        let items = self.list(o, key);
        if !present {
            return None;
        }
        let mut out = Vec::new();
        for (path, v) in items {
            match v {
                Value::String(s) => {
                    if let Some(s) = self.expand(&path, s) {
                        out.push(s);
                    }
                }
                _ => self.err(path, "expected a string"),
            }
        }
        Some(out)
    }

    /// A secret given as `key` (usually `${ENV}`) or `key_file` (a path), exactly one of them.
    fn secret(&mut self, o: &mut Obj<'_>, key: &str) -> Option<Secret> {
        let file_key = format!("{key}_file");
        let raw_inline = o
            .map
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_string);
        let inline = self.string(o, key);
        let file = self.string(o, &file_key);
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.err(
                    join(&o.path, key),
                    format!("give either {key} or {file_key}, not both"),
                );
                None
            }
            (Some(v), None) => {
                if raw_inline.is_some_and(|raw| !raw.contains("${")) {
                    self.warnings.push(ConfigError {
                        path: join(&o.path, key),
                        message: format!(
                            "secret written inline in the file; prefer ${{ENV_VAR}} or {file_key}"
                        ),
                    });
                }
                Some(Secret(v))
            }
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(s) => Some(Secret(s.trim_end_matches(['\r', '\n']).to_string())),
                Err(e) => {
                    self.err(join(&o.path, &file_key), format!("cannot read {path}: {e}"));
                    None
                }
            },
            (None, None) => {
                let path = join(&o.path, key);
                if !self.errors.iter().any(|e| e.path.starts_with(&path)) {
                    self.err(path, format!("is required (or {file_key})"));
                }
                None
            }
        }
    }

    fn socket_addr(&mut self, path: &str, s: &str) -> Option<SocketAddr> {
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(path, format!("{s:?} is not an address like 0.0.0.0:8080"));
                None
            }
        }
    }

    fn config(&mut self, root: &Value) -> Option<Config> {
        let mut top = self.obj("", Some(root));
        if top.map.is_none() {
            self.err("", "the configuration must be a mapping at the top level");
            return None;
        }

        let listen_items = {
            let present = top.map.and_then(|m| m.get("listen")).is_some();
            if !present {
                self.err(
                    "listen",
                    "is required (a list of addresses like 0.0.0.0:8080)",
                );
            }
            self.list(&mut top, "listen")
        };
        let mut listen = Vec::new();
        for (path, v) in listen_items {
            match v.as_str().and_then(|s| self.expand(&path, s)) {
                Some(s) => listen.extend(self.socket_addr(&path, &s)),
                None if !v.is_string() => self.err(path, "expected an address string"),
                None => {}
            }
        }

        let public_url = self
            .required_string(&mut top, "public_url")
            .and_then(|s| self.public_url("public_url", &s));

        let mut admin = {
            let v = self.get(&mut top, "admin");
            self.obj("admin", v)
        };
        let admin_listen = match self.string(&mut admin, "listen") {
            Some(s) => self.socket_addr("admin.listen", &s),
            None => "127.0.0.1:9090".parse().ok(),
        };
        self.finish(admin);

        let mut server = {
            let v = self.get(&mut top, "server");
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
        let trusted_proxies = self.cidrs(&mut top, "trusted_proxies");
        let forward_auth = self.forward_auth(&mut top, &trusted_proxies);

        let providers = self.providers(&mut top);
        let routes = self.routes(&mut top, &providers);
        let session = self.session(&mut top, public_url.as_ref());
        let headers = self.headers(&mut top);
        self.finish(top);

        if let (Some(admin), false) = (admin_listen, listen.is_empty()) {
            if listen.contains(&admin) {
                self.err("admin.listen", "must differ from every address in listen");
            }
        }

        Some(Config {
            listen,
            public_url: public_url?,
            admin_listen: admin_listen?,
            threads,
            shutdown_grace,
            routes,
            providers: providers.into_iter().flatten().collect(),
            session: session?,
            headers: headers?,
            forward_auth,
            trusted_proxies,
            request_header_timeout,
            log_format,
            watch_config,
            warnings: Vec::new(),
        })
    }

    /// A list of address ranges at `key` of `o`.
    fn cidrs(&mut self, o: &mut Obj<'_>, key: &str) -> Vec<Cidr> {
        let mut out = Vec::new();
        for (path, v) in self.list(o, key) {
            match v.as_str().map(|s| (s, Cidr::parse(s))) {
                Some((_, Some(c))) => out.push(c),
                Some((s, None)) => self.err(
                    path,
                    format!("{s:?} is not an address or range like 10.0.0.0/8"),
                ),
                None => self.err(path, "expected an address range string"),
            }
        }
        out
    }

    fn forward_auth(&mut self, top: &mut Obj<'_>, trusted: &[Cidr]) -> ForwardAuth {
        let mut o = {
            let v = self.get(top, "forward_auth");
            self.obj("forward_auth", v)
        };
        let enabled = self.bool(&mut o, "enabled").unwrap_or(false);
        let own = o.map.is_some_and(|m| m.contains_key("trusted_proxies"));
        let mut trusted_proxies = self.cidrs(&mut o, "trusted_proxies");
        if !own {
            trusted_proxies = trusted.to_vec();
        }
        let dialect = match self.string(&mut o, "dialect").as_deref() {
            None | Some("nginx") => Dialect::Nginx,
            Some("traefik") => Dialect::Traefik,
            Some(other) => {
                self.err(
                    "forward_auth.dialect",
                    format!("{other:?} is not nginx or traefik"),
                );
                Dialect::Nginx
            }
        };
        if enabled
            && trusted_proxies.is_empty()
            && !self.errors.iter().any(|e| {
                e.path.starts_with("forward_auth") || e.path.starts_with("trusted_proxies")
            })
        {
            self.err(
                "forward_auth.trusted_proxies",
                "required when forward_auth is enabled (or set the top-level trusted_proxies): the addresses of the ingress controllers whose X-Original-URL / X-Forwarded-* headers may be believed",
            );
        }
        self.finish(o);
        ForwardAuth {
            enabled,
            trusted_proxies,
            dialect,
        }
    }

    fn public_url(&mut self, path: &str, s: &str) -> Option<Url> {
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

    /// Returns one entry per list item (None where the item was broken) so indices match.
    fn providers(&mut self, top: &mut Obj<'_>) -> Vec<Option<ProviderConfig>> {
        let items = self.list(top, "providers");
        if items.is_empty() && !self.errors.iter().any(|e| e.path == "providers") {
            self.err("providers", "at least one identity provider is required");
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (path, v) in items {
            let mut o = self.obj(&path, Some(v));
            let name = self.required_string(&mut o, "name");
            if let Some(n) = &name {
                if !valid_name(n) {
                    self.err(
                        join(&path, "name"),
                        "use letters, digits, '-' and '_' only (it appears in URLs)",
                    );
                } else if !seen.insert(n.clone()) {
                    self.err(
                        join(&path, "name"),
                        format!("duplicate provider name {n:?}"),
                    );
                }
            }
            let kind = self.required_string(&mut o, "type");
            let parsed = match kind.as_deref() {
                Some("oidc") => self.oidc(&mut o, &path, None).map(ProviderKind::Oidc),
                Some("entra") => self.entra(&mut o, &path),
                Some("saml") => self.saml(&mut o, &path, None).map(ProviderKind::Saml),
                Some(other) => {
                    self.err(
                        join(&path, "type"),
                        format!("unknown provider type {other:?} (supported: oidc, entra, saml)"),
                    );
                    // Its other keys belong to that type: one error, not one per key.
                    if let Some(map) = o.map {
                        o.used
                            .extend(map.keys().filter_map(|k| k.as_str().map(str::to_string)));
                    }
                    None
                }
                None => None,
            };
            let group_names = self.group_names(&mut o, &path);
            self.finish(o);
            out.push(match (name, parsed) {
                (Some(name), Some(kind)) => Some(ProviderConfig {
                    name,
                    kind,
                    group_names,
                }),
                _ => None,
            });
        }
        out
    }

    /// `group_names: {<group id>: <name>}`.
    fn group_names(&mut self, o: &mut Obj<'_>, path: &str) -> GroupNames {
        let mut out = GroupNames::new();
        let gpath = join(path, "group_names");
        let g = self.get(o, "group_names");
        let mut obj = self.obj(&gpath, g);
        let keys: Vec<String> = obj
            .map
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for k in keys {
            if let Some(name) = self.string(&mut obj, &k) {
                if name.is_empty() || name.contains(',') {
                    self.err(join(&gpath, &k), "a group name must be non-empty and have no comma (header values are comma-joined)");
                } else {
                    out.insert(k.to_ascii_lowercase(), name);
                }
            }
        }
        self.finish(obj);
        out
    }

    /// `type: entra`: an OpenID provider whose URLs, issuer rules and claim handling come from
    /// the tenant and app ID (ENTRA.md §1–3).
    fn entra(&mut self, o: &mut Obj<'_>, path: &str) -> Option<ProviderKind> {
        match self.string(o, "protocol").as_deref() {
            None | Some("oidc") => self.entra_oidc(o, path).map(ProviderKind::Oidc),
            Some("saml") => self.entra_saml(o, path).map(ProviderKind::Saml),
            Some(other) => {
                self.err(
                    join(path, "protocol"),
                    format!("{other:?}: expected oidc or saml"),
                );
                None
            }
        }
    }

    fn entra_instance(&mut self, o: &mut Obj<'_>, path: &str) -> Option<Url> {
        match self.string(o, "instance") {
            Some(s) => match Url::parse(&s) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
                _ => {
                    self.err(
                        join(path, "instance"),
                        format!("{s:?} is not an http(s) URL"),
                    );
                    None
                }
            },
            None => Url::parse(entra::DEFAULT_INSTANCE).ok(),
        }
    }

    /// `type: entra` + `protocol: saml`: an enterprise app's SAML sign-on, its federation
    /// metadata URL derived from tenant and app ID; with `client_secret`, groups overage is
    /// looked up in Graph with the app's credentials.
    fn entra_saml(&mut self, o: &mut Obj<'_>, path: &str) -> Option<SamlConfig> {
        let instance = self.entra_instance(o, path);
        let tenant = self
            .required_string(o, "tenant")
            .and_then(|t| match Tenant::parse(&t) {
                Ok(t) if t.is_multi() => {
                    self.err(
                        join(path, "tenant"),
                        "SAML apps live in one tenant: give its ID or domain",
                    );
                    None
                }
                Ok(t) => Some(t),
                Err(e) => {
                    self.err(join(path, "tenant"), e);
                    None
                }
            });
        let client_id = self.required_string(o, "client_id");
        let has_secret = o.map.is_some_and(|m| {
            m.contains_key("client_secret") || m.contains_key("client_secret_file")
        });
        let client_secret = if has_secret {
            self.secret(o, "client_secret")
        } else {
            None
        };
        let graph_url = self.string(o, "graph_url");
        let cache_ttl = self
            .duration(o, "groups_cache_ttl")
            .unwrap_or(Duration::from_secs(600));
        let (instance, tenant, client_id) = (instance?, tenant?, client_id?);
        let metadata = entra::federation_metadata_url(&instance, &tenant, &client_id).ok()?;
        let graph = match client_secret {
            Some(client_secret) => Some(SamlGraph {
                client_id,
                client_secret,
                url: Url::parse(graph_url.as_deref().unwrap_or(entra::DEFAULT_GRAPH)).ok()?,
                token_url: instance.join("/organizations/oauth2/v2.0/token").ok(),
                cache_ttl,
            }),
            None => None,
        };
        self.saml(o, path, Some((SamlIdp::MetadataUrl(metadata), graph)))
    }

    fn entra_oidc(&mut self, o: &mut Obj<'_>, path: &str) -> Option<OidcConfig> {
        let instance = self.entra_instance(o, path);
        let tenant = self
            .required_string(o, "tenant")
            .and_then(|t| match Tenant::parse(&t) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.err(join(path, "tenant"), e);
                    None
                }
            });
        let tpath = join(path, "allowed_tenants");
        let allowed = match o.map.and_then(|m| m.get("allowed_tenants")) {
            Some(Value::String(s)) if s == "any" => {
                self.get(o, "allowed_tenants");
                Some(TenantRule::Any)
            }
            Some(Value::String(_)) => {
                self.get(o, "allowed_tenants");
                self.err(&tpath, "expected a list of tenant IDs, or the word any");
                None
            }
            _ => self.string_list(o, "allowed_tenants").map(|l| {
                for t in &l {
                    if !entra::is_guid(t) {
                        self.err(&tpath, format!("{t:?} is not a tenant ID (GUID)"));
                    }
                }
                TenantRule::Only(l.iter().map(|t| t.to_ascii_lowercase()).collect())
            }),
        };
        let allowed_tenants = match (&tenant, allowed) {
            (Some(Tenant::Id(id)), None) => Some(TenantRule::Only(vec![id.clone()])),
            (Some(Tenant::Id(id)), Some(TenantRule::Only(l))) if !l.contains(id) => {
                self.err(&tpath, format!("a single-tenant app only ever sees tenant {id}; list it or leave allowed_tenants out"));
                None
            }
            (Some(t), None) if t.is_multi() => {
                self.err(&tpath, format!("tenant {} lets any organization sign in: list the tenant IDs to accept, or write allowed_tenants: any to accept every tenant on purpose", t.segment()));
                None
            }
            (Some(Tenant::Domain(_)), None) => Some(TenantRule::Any),
            (_, a) => a,
        };
        let overage = self.string(o, "groups_overage");
        let graph_url = self.string(o, "graph_url");
        let graph = match overage.as_deref() {
            None | Some("graph") => {
                let u = graph_url.unwrap_or_else(|| entra::DEFAULT_GRAPH.into());
                match Url::parse(&u) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => Some(Some(u)),
                    _ => {
                        self.err(
                            join(path, "graph_url"),
                            format!("{u:?} is not an http(s) URL"),
                        );
                        None
                    }
                }
            }
            Some("deny") => Some(None),
            Some(other) => {
                self.err(
                    join(path, "groups_overage"),
                    format!("{other:?}: expected graph (look the groups up) or deny"),
                );
                None
            }
        };
        let groups_cache_ttl = self
            .duration(o, "groups_cache_ttl")
            .unwrap_or(Duration::from_secs(600));
        let (issuer, discovery) = match (&instance, &tenant) {
            (Some(i), Some(t)) => (
                Url::parse(&entra::authority(i, t)).ok(),
                entra::discovery_url(i, t).ok(),
            ),
            _ => (None, None),
        };
        let settings = EntraSettings {
            instance: instance?,
            tenant: tenant?,
            allowed_tenants: allowed_tenants?,
            graph: graph?,
            groups_cache_ttl,
        };
        self.oidc(o, path, Some((issuer?, discovery?, settings)))
    }

    fn oidc(
        &mut self,
        o: &mut Obj<'_>,
        path: &str,
        entra: Option<(Url, Url, EntraSettings)>,
    ) -> Option<OidcConfig> {
        let (issuer, derived_discovery, entra) = match entra {
            Some((i, d, e)) => (Some(i), Some(d), Some(e)),
            None => {
                let issuer = self
                    .required_string(o, "issuer")
                    .and_then(|s| match Url::parse(&s) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
                        _ => {
                            self.err(join(path, "issuer"), format!("{s:?} is not an http(s) URL"));
                            None
                        }
                    });
                (issuer, None, None)
            }
        };
        let discovery_url = match derived_discovery {
            Some(d) => Some(d),
            None => match self.string(o, "discovery_url") {
                Some(s) => match Url::parse(&s) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
                    _ => {
                        self.err(
                            join(path, "discovery_url"),
                            format!("{s:?} is not an http(s) URL"),
                        );
                        None
                    }
                },
                None => issuer.as_ref().and_then(|i| {
                    Url::parse(&format!(
                        "{}/.well-known/openid-configuration",
                        i.as_str().trim_end_matches('/')
                    ))
                    .ok()
                }),
            },
        };
        let client_id = self.required_string(o, "client_id");
        let client_secret = self.secret(o, "client_secret");
        let scopes = self
            .string_list(o, "scopes")
            .unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
        if !scopes.iter().any(|s| s == "openid") {
            self.err(join(path, "scopes"), "must include openid");
        }
        // Entra: the stable key is oid (unique within tid, the same for every app).
        let default_claim = if entra.is_some() { "oid" } else { "sub" };
        let user_claim = self
            .string(o, "user_claim")
            .unwrap_or_else(|| default_claim.into());
        let clock_skew = self
            .duration(o, "clock_skew")
            .unwrap_or(Duration::from_secs(60));
        let api_audience = self.string(o, "api_audience");
        let api_versions = self.token_versions(o, path, entra.is_some());
        let signing_algs = self.signing_algs(o, path);
        Some(OidcConfig {
            api_versions,
            signing_algs,
            issuer: issuer?,
            discovery_url: discovery_url?,
            client_id: client_id?,
            client_secret: client_secret?,
            scopes,
            user_claim,
            clock_skew,
            api_audience,
            entra,
        })
    }

    /// `api_token_versions: [2]` (default), `[1]` or `[1, 2]`: Entra only, whose APIs get v1.0
    /// access tokens unless their manifest sets `accessTokenAcceptedVersion: 2`.
    fn token_versions(
        &mut self,
        o: &mut Obj<'_>,
        path: &str,
        entra: bool,
    ) -> crate::idp::entra::Versions {
        let key = join(path, "api_token_versions");
        let v = self.get(o, "api_token_versions");
        let Some(v) = v else {
            return crate::idp::entra::Versions::V2;
        };
        if !entra {
            self.err(key, "only for type: entra (the v1.0 issuer is Entra's)");
            return crate::idp::entra::Versions::V2;
        }
        let mut out = crate::idp::entra::Versions {
            v1: false,
            v2: false,
        };
        match v.as_sequence() {
            Some(items) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_u64() {
                        Some(1) => out.v1 = true,
                        Some(2) => out.v2 = true,
                        _ => self.err(format!("{key}[{i}]"), "expected 1 or 2"),
                    }
                }
            }
            _ => self.err(key, "expected a list of versions: [2], [1] or [1, 2]"),
        }
        out
    }

    /// `signing_algs`: the JWS algorithms tokens may be signed with. Default RS256, PS256 and
    /// ES256; HS256/384/512 (keyed with the client secret, ID tokens only) only when listed.
    fn signing_algs(&mut self, o: &mut Obj<'_>, path: &str) -> Vec<String> {
        const KNOWN: [&str; 11] = [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "HS256",
            "HS384", "HS512",
        ];
        let Some(list) = self.string_list(o, "signing_algs") else {
            return vec!["RS256".into(), "PS256".into(), "ES256".into()];
        };
        if list.is_empty() {
            self.err(
                join(path, "signing_algs"),
                "must name at least one algorithm",
            );
        }
        for (i, a) in list.iter().enumerate() {
            if !KNOWN.contains(&a.as_str()) {
                self.err(
                    format!("{}[{i}]", join(path, "signing_algs")),
                    format!("{a:?} is not one of {}", KNOWN.join(", ")),
                );
            }
        }
        list
    }

    /// `preset`: the IdP and Graph settings the Entra preset derived (its own keys for them
    /// are then not read, so giving them is an error).
    fn saml(
        &mut self,
        o: &mut Obj<'_>,
        path: &str,
        preset: Option<(SamlIdp, Option<SamlGraph>)>,
    ) -> Option<SamlConfig> {
        let entity_id = self.required_string(o, "entity_id");
        if let Some((idp, graph)) = preset {
            return self.saml_rest(o, path, entity_id, Some(idp), graph);
        }
        let url = |r: &mut Self, key: &str, v: Option<String>| -> Option<Url> {
            let v = v?;
            match Url::parse(&v) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
                _ => {
                    r.err(join(path, key), format!("{v:?} is not an http(s) URL"));
                    None
                }
            }
        };
        let md_url = self.string(o, "idp_metadata_url");
        let md_url = url(self, "idp_metadata_url", md_url);
        let md_file = self.string(o, "idp_metadata_file");
        let idp_entity = self.string(o, "idp_entity_id");
        let sso = self.string(o, "idp_sso_url");
        let sso = url(self, "idp_sso_url", sso);
        let slo = self.string(o, "idp_slo_url");
        let slo = url(self, "idp_slo_url", slo);
        let fps = self.string_list(o, "idp_cert_fingerprints");
        let given = [md_url.is_some(), md_file.is_some(), fps.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        let idp = if given != 1 {
            self.err(
                path,
                "name the IdP exactly one way: idp_metadata_url, idp_metadata_file, or idp_cert_fingerprints with idp_entity_id and idp_sso_url",
            );
            None
        } else if let Some(u) = md_url {
            Some(SamlIdp::MetadataUrl(u))
        } else if let Some(f) = md_file {
            if std::fs::metadata(&f).is_err() {
                self.err(join(path, "idp_metadata_file"), format!("cannot read {f}"));
            }
            Some(SamlIdp::MetadataFile(f.into()))
        } else {
            let mut fingerprints = Vec::new();
            for (i, f) in fps.unwrap_or_default().iter().enumerate() {
                let hex: String = f.chars().filter(|c| c.is_ascii_hexdigit()).collect();
                let bytes: Option<Vec<u8>> = (0..hex.len())
                    .step_by(2)
                    .map(|j| {
                        hex.get(j..j + 2)
                            .and_then(|b| u8::from_str_radix(b, 16).ok())
                    })
                    .collect();
                match bytes.filter(|b| b.len() == 20 || b.len() == 32) {
                    Some(b) => fingerprints.push(b),
                    None => self.err(
                        format!("{path}.idp_cert_fingerprints[{i}]"),
                        "expected a SHA-1 (40 hex digits, Entra's thumbprint) or SHA-256 (64) fingerprint",
                    ),
                }
            }
            if idp_entity.is_none() {
                self.err(join(path, "idp_entity_id"), "required with idp_cert_fingerprints (Entra: https://sts.windows.net/<tenant id>/)");
            }
            if sso.is_none() {
                self.err(
                    join(path, "idp_sso_url"),
                    "required with idp_cert_fingerprints (Entra: Login URL)",
                );
            }
            match (idp_entity, sso) {
                (Some(entity_id), Some(sso_url)) => Some(SamlIdp::Fingerprint {
                    entity_id,
                    sso_url,
                    slo_url: slo,
                    fingerprints,
                }),
                _ => None,
            }
        };
        let graph = match self.string(o, "graph_client_id") {
            Some(client_id) => {
                let client_secret = self.secret(o, "graph_client_secret");
                let gurl = self.string(o, "graph_url");
                let gurl =
                    url(self, "graph_url", gurl).or_else(|| Url::parse(entra::DEFAULT_GRAPH).ok());
                let turl = self.string(o, "graph_token_url");
                let token_url = url(self, "graph_token_url", turl);
                let cache_ttl = self
                    .duration(o, "groups_cache_ttl")
                    .unwrap_or(Duration::from_secs(600));
                match (client_secret, gurl) {
                    (Some(client_secret), Some(url)) => Some(SamlGraph {
                        client_id,
                        client_secret,
                        url,
                        token_url,
                        cache_ttl,
                    }),
                    _ => None,
                }
            }
            None => {
                for key in [
                    "graph_client_secret",
                    "graph_client_secret_file",
                    "graph_url",
                    "graph_token_url",
                    "groups_cache_ttl",
                ] {
                    if self.get(o, key).is_some() {
                        self.err(join(path, key), "needs graph_client_id");
                    }
                }
                None
            }
        };
        self.saml_rest(o, path, entity_id, idp, graph)
    }

    /// The SAML settings that do not name the IdP.
    fn saml_rest(
        &mut self,
        o: &mut Obj<'_>,
        path: &str,
        entity_id: Option<String>,
        idp: Option<SamlIdp>,
        graph: Option<SamlGraph>,
    ) -> Option<SamlConfig> {
        let name_id_format = match self.string(o, "name_id_format").as_deref() {
            None | Some("emailAddress") => {
                "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".to_string()
            }
            Some("persistent") => {
                "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".to_string()
            }
            Some("unspecified") => {
                "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified".to_string()
            }
            Some("transient") => "urn:oasis:names:tc:SAML:2.0:nameid-format:transient".to_string(),
            Some(other) => {
                self.err(
                    join(path, "name_id_format"),
                    format!("{other:?} is not emailAddress, persistent, unspecified or transient"),
                );
                String::new()
            }
        };
        let clock_skew = self
            .duration(o, "clock_skew")
            .unwrap_or(Duration::from_secs(300));
        let allow_idp_initiated = self.bool(o, "allow_idp_initiated").unwrap_or(false);
        let user_attribute = match self.string(o, "user_attribute") {
            Some(a) if a == "nameid" => None,
            Some(a) => Some(a),
            None => {
                Some("http://schemas.microsoft.com/identity/claims/objectidentifier".to_string())
            }
        };
        let mut m = {
            let v = self.get(o, "attributes");
            self.obj(&join(path, "attributes"), v)
        };
        let c = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/";
        let attributes = SamlAttributes {
            email: self
                .string(&mut m, "email")
                .unwrap_or_else(|| format!("{c}emailaddress")),
            name: self.string(&mut m, "name").unwrap_or_else(|| {
                "http://schemas.microsoft.com/identity/claims/displayname".into()
            }),
            groups: self.string(&mut m, "groups").unwrap_or_else(|| {
                "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups".into()
            }),
            roles: self.string(&mut m, "roles").unwrap_or_else(|| {
                "http://schemas.microsoft.com/ws/2008/06/identity/claims/role".into()
            }),
            tenant: self
                .string(&mut m, "tenant")
                .unwrap_or_else(|| "http://schemas.microsoft.com/identity/claims/tenantid".into()),
        };
        self.finish(m);
        let sp_key = self.string(o, "sp_key_file");
        let sp_cert = self.string(o, "sp_cert_file");
        let sp_signing = match (sp_key, sp_cert) {
            (Some(k), Some(c)) => {
                for (key, file) in [("sp_key_file", &k), ("sp_cert_file", &c)] {
                    if std::fs::metadata(file).is_err() {
                        self.err(join(path, key), format!("cannot read {file}"));
                    }
                }
                Some((k.into(), c.into()))
            }
            (None, None) => None,
            _ => {
                self.err(
                    path,
                    "sp_key_file and sp_cert_file go together (AuthnRequest signing)",
                );
                None
            }
        };
        Some(SamlConfig {
            graph,
            sp_signing,
            entity_id: entity_id?,
            idp: idp?,
            name_id_format,
            clock_skew,
            allow_idp_initiated,
            user_attribute,
            attributes,
        })
    }

    fn routes(
        &mut self,
        top: &mut Obj<'_>,
        providers: &[Option<ProviderConfig>],
    ) -> Vec<RouteConfig> {
        let items = self.list(top, "routes");
        if items.is_empty() && !self.errors.iter().any(|e| e.path == "routes") {
            self.err("routes", "at least one route is required");
        }
        let mut out = Vec::new();
        let mut seen_names = HashSet::new();
        let mut seen_keys = HashSet::new();
        for (i, (path, v)) in items.into_iter().enumerate() {
            let mut o = self.obj(&path, Some(v));
            let name = self
                .string(&mut o, "name")
                .unwrap_or_else(|| format!("route{i}"));
            if !valid_name(&name) {
                self.err(join(&path, "name"), "use letters, digits, '-' and '_' only");
            } else if !seen_names.insert(name.clone()) {
                self.err(
                    join(&path, "name"),
                    format!("duplicate route name {name:?}"),
                );
            }
            let host = self.string(&mut o, "host").map(|h| h.to_ascii_lowercase());
            if let Some(h) = &host {
                if h.is_empty() || h.contains(['/', ':', ' ']) {
                    self.err(
                        join(&path, "host"),
                        "expected a bare host name, without port",
                    );
                }
            }
            let path_prefix = self
                .string(&mut o, "path_prefix")
                .unwrap_or_else(|| "/".to_string());
            if !path_prefix.starts_with('/') {
                self.err(join(&path, "path_prefix"), "must start with /");
            } else if !path_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,=@".contains(&b))
            {
                self.err(
                    join(&path, "path_prefix"),
                    "use letters, digits and -._~!$&'()*+,=@ only (no %, ;, spaces or non-ASCII: requests are compared after normalization)",
                );
            } else if crate::canonical::has_prefix_ci(&path_prefix, RESERVED_PREFIX) {
                self.err(
                    join(&path, "path_prefix"),
                    format!("{RESERVED_PREFIX} is reserved for the gateway's own endpoints"),
                );
            }
            if !seen_keys.insert((host.clone(), path_prefix.clone())) {
                self.err(
                    &path,
                    "another route already has the same host and path_prefix",
                );
            }
            let upstream = self.upstream(&mut o, &path);
            let public = self.bool(&mut o, "public").unwrap_or(false);
            let mut exceptions = crate::canonical::Exceptions::default();
            for e in self
                .string_list(&mut o, "path_exceptions")
                .unwrap_or_default()
            {
                match e.as_str() {
                    "path_parameters" => exceptions.path_parameters = true,
                    "encoded_slash" => exceptions.encoded_slash = true,
                    other => self.err(
                        join(&path, "path_exceptions"),
                        format!(
                            "unknown exception {other:?} (known: {})",
                            crate::canonical::Exceptions::ALL.join(", ")
                        ),
                    ),
                }
            }
            let mut policy = self.policy(&mut o, &path);
            if public && !policy.is_empty() {
                self.err(
                    join(&path, "allow"),
                    "a public route lets everyone in: drop public or allow",
                );
            }
            let accepts = self.route_providers(&mut o, &path, providers);
            let provider = accepts.first().copied();
            self.finish(o);
            if let (Some(upstream), Some(provider)) = (upstream, provider) {
                let accepted: Vec<&ProviderConfig> = accepts
                    .iter()
                    .filter_map(|i| providers.get(*i).and_then(Option::as_ref))
                    .collect();
                let names: GroupNames = accepted
                    .iter()
                    .flat_map(|p| p.group_names.iter())
                    .map(|(id, n)| (id.clone(), n.clone()))
                    .collect();
                policy.resolve_groups(&names);
                out.push(RouteConfig {
                    name,
                    host,
                    path_prefix,
                    upstream,
                    public,
                    provider,
                    accepts: accepted.iter().map(|p| p.name.clone()).collect(),
                    policy,
                    exceptions,
                });
            }
        }
        out
    }

    /// A route's `provider: name` or `providers: [a, b]`: the providers whose identities it
    /// accepts, the first being the one browsers sign in with. Indices into `providers`.
    fn route_providers(
        &mut self,
        o: &mut Obj<'_>,
        path: &str,
        providers: &[Option<ProviderConfig>],
    ) -> Vec<usize> {
        let one = self.string(o, "provider");
        let list = self.string_list(o, "providers");
        let names = match (one, list) {
            (Some(_), Some(_)) => {
                self.err(
                    join(path, "providers"),
                    "give provider (one) or providers (a list), not both",
                );
                return Vec::new();
            }
            (Some(p), None) => vec![(join(path, "provider"), p)],
            (None, Some(list)) if list.is_empty() => {
                self.err(join(path, "providers"), "must name at least one provider");
                return Vec::new();
            }
            (None, Some(list)) => list
                .into_iter()
                .enumerate()
                .map(|(i, p)| (format!("{}[{i}]", join(path, "providers")), p))
                .collect(),
            (None, None) if providers.len() > 1 => {
                self.err(
                    join(path, "provider"),
                    "required when more than one provider is configured",
                );
                return Vec::new();
            }
            (None, None) => return vec![0],
        };
        let mut out = Vec::new();
        for (at, name) in names {
            match providers
                .iter()
                .position(|c| c.as_ref().is_some_and(|c| c.name == name))
            {
                Some(i) if out.contains(&i) => {
                    self.err(at, format!("provider {name:?} is listed twice"))
                }
                Some(i) => out.push(i),
                None => self.err(at, format!("no provider named {name:?} in providers")),
            }
        }
        out
    }

    /// A route's `allow:` block.
    fn policy(&mut self, o: &mut Obj<'_>, path: &str) -> Policy {
        let apath = join(path, "allow");
        let v = self.get(o, "allow");
        let mut a = self.obj(&apath, v);
        let mut list = |r: &mut Self, key: &str| r.string_list(&mut a, key).unwrap_or_default();
        let tenants = list(self, "tenants");
        let groups = list(self, "groups");
        let roles = list(self, "roles");
        let email_domains = list(self, "email_domains");
        let users = list(self, "users");
        let require_assignment = self.bool(&mut a, "require_assignment").unwrap_or(false);
        self.finish(a);
        for t in &tenants {
            if !entra::is_guid(t) {
                self.err(
                    join(&apath, "tenants"),
                    format!("{t:?} is not a tenant ID (GUID)"),
                );
            }
        }
        Policy {
            tenants: tenants.iter().map(|t| t.to_ascii_lowercase()).collect(),
            groups,
            roles,
            email_domains: email_domains
                .iter()
                .map(|d| d.trim_start_matches('@').to_ascii_lowercase())
                .collect(),
            users,
            require_assignment,
        }
    }

    fn upstream(&mut self, o: &mut Obj<'_>, path: &str) -> Option<Upstream> {
        let raw = self.required_string(o, "upstream")?;
        let upath = join(path, "upstream");
        let (tls, rest) = if let Some(r) = raw.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = raw.strip_prefix("http://") {
            (false, r)
        } else {
            (false, raw.as_str())
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            self.err(upath, "give scheme, host and port only (no path)");
            return None;
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().ok()),
            None => (rest, Some(if tls { 443 } else { 80 })),
        };
        match port {
            Some(port) if !host.is_empty() => Some(Upstream {
                addr: format!("{host}:{port}"),
                tls,
                sni: host.trim_matches(['[', ']']).to_string(),
            }),
            _ => {
                self.err(
                    upath,
                    format!("{raw:?} is not host:port, http://host:port or https://host:port"),
                );
                None
            }
        }
    }

    fn session(&mut self, top: &mut Obj<'_>, public_url: Option<&Url>) -> Option<SessionConfig> {
        let mut o = {
            let v = self.get(top, "session");
            self.obj("session", v)
        };
        if o.map.is_none() {
            self.err("session", "is required (at least session.secret)");
        }
        let cookie_name = self
            .string(&mut o, "cookie_name")
            .unwrap_or_else(|| "authgate_session".into());
        if !cookie_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            || cookie_name.is_empty()
        {
            self.err(
                "session.cookie_name",
                "use letters, digits, '-' and '_' only",
            );
        }
        let lifetime = self
            .duration(&mut o, "lifetime")
            .unwrap_or(Duration::from_secs(8 * 3600));
        let idle_timeout = self
            .duration(&mut o, "idle_timeout")
            .unwrap_or(Duration::from_secs(3600));
        if lifetime.as_secs() < 60 {
            self.err("session.lifetime", "must be at least 60s");
        }
        if idle_timeout.as_secs() < 60 {
            self.err("session.idle_timeout", "must be at least 60s");
        }
        let https = public_url.is_some_and(|u| u.scheme() == "https");
        let secure = self.bool(&mut o, "secure").unwrap_or(https);
        if secure && public_url.is_some() && !https {
            self.err(
                "session.secure",
                "is true but public_url is http: browsers would drop the cookie",
            );
        }
        let secret = o
            .map
            .is_some()
            .then(|| self.secret(&mut o, "secret"))
            .flatten();
        if let Some(s) = &secret {
            if s.0.len() < 32 {
                self.err(
                    "session.secret",
                    format!(
                        "must be at least 32 bytes (got {}); generate one with: openssl rand -base64 48",
                        s.0.len()
                    ),
                );
            }
        }
        let store = match self.string(&mut o, "store").as_deref() {
            None | Some("cookie") => Some(StoreKind::Cookie),
            Some("memory") => Some(StoreKind::Memory),
            Some(other) => {
                self.err(
                    "session.store",
                    format!("unknown store {other:?} (supported: cookie, memory)"),
                );
                None
            }
        };
        let max_sessions = self.uint(&mut o, "max_sessions").unwrap_or(1_000_000);
        // Over https the session cookie is `__Host-` prefixed: a sibling subdomain cannot
        // plant or overwrite it (no Domain, Path=/, Secure are then enforced by browsers).
        let host_prefix = self.bool(&mut o, "host_prefix").unwrap_or(true);
        let cookie_name = if secure && host_prefix && !cookie_name.starts_with("__") {
            format!("__Host-{cookie_name}")
        } else {
            cookie_name
        };
        self.finish(o);
        Some(SessionConfig {
            cookie_name,
            lifetime,
            idle_timeout,
            secure,
            secret: secret.filter(|s| s.0.len() >= 32)?,
            store: store?,
            max_sessions,
        })
    }

    fn headers(&mut self, top: &mut Obj<'_>) -> Option<HeaderNames> {
        let mut o = {
            let v = self.get(top, "headers");
            self.obj("headers", v)
        };
        let mut take = |r: &mut Self, key: &str, default: &str| {
            let v = r.string(&mut o, key).unwrap_or_else(|| default.to_string());
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                r.err(
                    join("headers", key),
                    format!("{v:?} is not a valid header name"),
                );
            }
            v
        };
        let d = HeaderNames::default();
        let h = HeaderNames {
            user: take(self, "user", &d.user),
            email: take(self, "email", &d.email),
            name: take(self, "name", &d.name),
            groups: take(self, "groups", &d.groups),
            roles: take(self, "roles", &d.roles),
            tenant: take(self, "tenant", &d.tenant),
            provider: take(self, "provider", &d.provider),
            strip: self.string_list(&mut o, "strip").unwrap_or_default(),
        };
        for n in &h.strip {
            let name = n.strip_suffix('*').unwrap_or(n);
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                self.err(
                    "headers.strip",
                    format!("{n:?} is not a header name (or a prefix ending in *)"),
                );
            }
        }
        self.finish(o);
        let mut seen = HashSet::new();
        for n in h.all() {
            if !seen.insert(crate::headers::normalize(n)) {
                self.err("headers", format!("header name {n:?} is used twice"));
            }
        }
        Some(h)
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `90s`, `15m`, `8h`, `1d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(o.client_secret.0, "s3cret");
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
