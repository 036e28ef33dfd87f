//! A typed configuration builder: tests say what they configure (providers, routes with
//! their policy, the session store, forward-auth) instead of editing a YAML template with
//! `.replace()`. It writes `gateway.yaml` text, so the gateway's own reader validates every
//! configuration a test uses: `yaml()` for the real binary, `build()` for in-process tests.
//! `for_binary` is the binary suites' usual gateway; a suite changes it with the builder's
//! methods, and writes out whole only what the builder has no method for.

use std::fmt::Write as _;

use super::{CLIENT_ID, CLIENT_SECRET, SESSION_SECRET, TENANT};

/// A JSON string is a YAML scalar: quoting without surprises.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

#[derive(Clone, Debug)]
pub enum ProviderSpec {
    Oidc {
        name: String,
        issuer: String,
        api_audience: Option<String>,
        user_claim: Option<String>,
        /// More keys, written under the provider as given (indented four spaces).
        more: String,
    },
    /// The Entra preset against a local Entra-shaped instance (`instance`).
    Entra {
        name: String,
        instance: String,
        tenant: String,
        api_audience: Option<String>,
        group_names: Vec<(String, String)>,
        /// More keys, written under the provider as given (indented four spaces).
        more: String,
    },
    /// A SAML provider: its SP entity ID, and (`provider_lines`) how it names its IdP.
    Saml {
        name: String,
        entity_id: String,
        more: String,
    },
    /// A provider entry written out whole (keys the builder has no method for):
    /// its lines as they stand under `providers:`, starting with `  - name: ...`.
    Written(String),
}

#[derive(Clone, Debug, Default)]
pub struct Allow {
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub tenants: Vec<String>,
    pub users: Vec<String>,
    pub email_domains: Vec<String>,
    pub require_assignment: bool,
    pub provisioned: bool,
}

#[derive(Clone, Debug)]
pub struct RouteSpec {
    pub name: String,
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub upstream: String,
    pub public: bool,
    pub providers: Vec<String>,
    pub allow: Allow,
    /// More keys of the route, each a `key: value` line (indented under the route).
    pub more: Vec<String>,
}

impl RouteSpec {
    pub fn new(name: &str, upstream: &str) -> Self {
        Self {
            name: name.into(),
            host: None,
            path_prefix: None,
            upstream: upstream.into(),
            public: false,
            providers: Vec::new(),
            allow: Allow::default(),
            more: Vec::new(),
        }
    }
    /// A key the builder has no method for (`upstream_tls:`, `path_exceptions:`, ...): YAML
    /// lines as they stand under the route's other keys, without its indentation.
    pub fn with(mut self, lines: &str) -> Self {
        self.more.push(lines.to_string());
        self
    }
    pub fn email_domains(mut self, d: &[&str]) -> Self {
        self.allow.email_domains = d.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn tenants(mut self, t: &[&str]) -> Self {
        self.allow.tenants = t.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn require_assignment(mut self) -> Self {
        self.allow.require_assignment = true;
        self
    }
    pub fn provisioned(mut self) -> Self {
        self.allow.provisioned = true;
        self
    }
    pub fn roles(mut self, r: &[&str]) -> Self {
        self.allow.roles = r.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn prefix(mut self, p: &str) -> Self {
        self.path_prefix = Some(p.into());
        self
    }
    pub fn host(mut self, h: &str) -> Self {
        self.host = Some(h.into());
        self
    }
    pub fn public(mut self) -> Self {
        self.public = true;
        self
    }
    pub fn providers(mut self, names: &[&str]) -> Self {
        self.providers = names.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn groups(mut self, g: &[&str]) -> Self {
        self.allow.groups = g.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn users(mut self, u: &[&str]) -> Self {
        self.allow.users = u.iter().map(|s| s.to_string()).collect();
        self
    }
}

#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    pub listen: String,
    pub admin: String,
    pub public_url: String,
    pub providers: Vec<ProviderSpec>,
    pub routes: Vec<RouteSpec>,
    /// `session.store`; None: the default (not written).
    pub store: Option<String>,
    pub trusted_proxies: Vec<String>,
    /// `Some((dialect, trusted))`: forward-auth on (no dialect written: ingress-nginx's).
    pub forward_auth: Option<(Option<String>, Vec<String>)>,
    /// `server:` keys, in order.
    pub server: Vec<(String, String)>,
    /// `admin.api_token`.
    pub admin_token: Option<String>,
    /// Secrets as `${TEST_CLIENT_SECRET}` / `${TEST_SESSION_SECRET}`, which the harness puts
    /// in the gateway's environment (not inline in the file).
    pub secrets_from_env: bool,
    /// Text after the `session:` block: indented lines add session keys, unindented ones
    /// top-level sections (`tls:`, `scim:`, `headers:`, ...).
    pub tail: String,
}

impl ConfigBuilder {
    pub fn new(public_url: &str) -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            admin: "127.0.0.1:9090".into(),
            public_url: public_url.into(),
            providers: Vec::new(),
            routes: Vec::new(),
            store: Some("cookie".into()),
            trusted_proxies: Vec::new(),
            forward_auth: None,
            server: Vec::new(),
            admin_token: None,
            secrets_from_env: false,
            tail: String::new(),
        }
    }

    /// A gateway the binary suites start: listening on `port` (admin on `admin`), public at
    /// `public_url`, two threads, a 1 s shutdown, secrets from the environment; no
    /// providers or routes yet.
    pub fn binary(port: u16, public_url: &str, admin: u16) -> Self {
        let mut b = Self::new(public_url)
            .listen(port, admin)
            .server("threads", "2")
            .server("shutdown_grace", "1s");
        b.store = None;
        b.secrets_from_env = true;
        b
    }

    /// The binary suites' usual gateway (`binary`): one OpenID provider `test-idp` (user
    /// key `oid`), an `app` route and a public `/public` route to `upstream`.
    pub fn for_binary(
        port: u16,
        public_url: &str,
        admin: u16,
        issuer: &str,
        upstream: u16,
    ) -> Self {
        let up = format!("127.0.0.1:{upstream}");
        Self::binary(port, public_url, admin)
            .oidc("test-idp", issuer)
            .user_claim("oid")
            .route(RouteSpec::new("app", &up))
            .route(RouteSpec::new("public", &up).prefix("/public").public())
    }

    /// A SAML provider with SP entity ID `entity_id`; its IdP goes in `provider_lines`.
    pub fn saml(mut self, name: &str, entity_id: &str) -> Self {
        self.providers.push(ProviderSpec::Saml {
            name: name.into(),
            entity_id: entity_id.into(),
            more: String::new(),
        });
        self
    }
    /// The last provider added (Entra) is for `tenant` (a GUID, a domain, `organizations`).
    pub fn tenant(mut self, t: &str) -> Self {
        match self.providers.last_mut() {
            Some(ProviderSpec::Entra { tenant, .. }) => *tenant = t.into(),
            _ => panic!("tenant: the last provider is not an Entra provider"),
        }
        self
    }
    /// The last provider added (Entra) shows group `id` upstream as `name`.
    pub fn group_name(mut self, id: &str, name: &str) -> Self {
        match self.providers.last_mut() {
            Some(ProviderSpec::Entra { group_names, .. }) => {
                group_names.push((id.into(), name.into()))
            }
            _ => panic!("group_name: the last provider is not an Entra provider"),
        }
        self
    }
    /// More keys for the last provider added, YAML lines indented four spaces (as they
    /// stand under `providers:`), for settings the builder has no method for.
    pub fn provider_lines(mut self, lines: &str) -> Self {
        match self.providers.last_mut() {
            Some(
                ProviderSpec::Oidc { more, .. }
                | ProviderSpec::Entra { more, .. }
                | ProviderSpec::Saml { more, .. },
            ) => {
                if !lines.trim().is_empty() {
                    more.push_str(lines.trim_end_matches('\n'));
                    more.push('\n');
                }
            }
            _ => panic!("provider_lines: the last provider is written out whole"),
        }
        self
    }
    /// `trusted_proxies`: peers whose forwarding headers stand.
    pub fn trust_proxies(mut self, cidrs: &[&str]) -> Self {
        self.trusted_proxies = cidrs.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn server(mut self, key: &str, value: &str) -> Self {
        self.server.push((key.into(), value.into()));
        self
    }
    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(token.into());
        self
    }
    /// Appends `text` after the `session:` block (see `tail`).
    pub fn tail(mut self, text: &str) -> Self {
        self.tail.push_str(text);
        if !self.tail.ends_with('\n') {
            self.tail.push('\n');
        }
        self
    }
    /// The last provider added takes bearer tokens for `audience`.
    pub fn api_audience(mut self, audience: &str) -> Self {
        match self.providers.last_mut() {
            Some(
                ProviderSpec::Oidc { api_audience, .. } | ProviderSpec::Entra { api_audience, .. },
            ) => *api_audience = Some(audience.into()),
            _ => panic!("api_audience: the last provider is not an OpenID provider"),
        }
        self
    }
    /// The last provider added (OpenID) keys users by `claim`.
    pub fn user_claim(mut self, claim: &str) -> Self {
        match self.providers.last_mut() {
            Some(ProviderSpec::Oidc { user_claim, .. }) => *user_claim = Some(claim.into()),
            _ => panic!("user_claim: the last provider is not an OpenID provider"),
        }
        self
    }
    /// A provider written out whole (see `ProviderSpec::Written`).
    pub fn provider_written(mut self, lines: &str) -> Self {
        self.providers
            .push(ProviderSpec::Written(lines.trim_end().to_string()));
        self
    }
    /// Puts `routes` first, in their order: routes are matched in order, so they win over
    /// the ones already there.
    pub fn routes_first(mut self, routes: impl IntoIterator<Item = RouteSpec>) -> Self {
        let rest = std::mem::take(&mut self.routes);
        self.routes = routes.into_iter().chain(rest).collect();
        self
    }
    /// Changes the route named `name`.
    pub fn edit_route(mut self, name: &str, f: impl FnOnce(RouteSpec) -> RouteSpec) -> Self {
        let i = self
            .routes
            .iter()
            .position(|r| r.name == name)
            .unwrap_or_else(|| panic!("no route {name}"));
        let r = self.routes.remove(i);
        self.routes.insert(i, f(r));
        self
    }
    /// The first route's upstream (`for_binary`: the test upstream).
    pub fn upstream(&self) -> String {
        self.routes
            .first()
            .map(|r| r.upstream.clone())
            .unwrap_or_default()
    }
    pub fn listen(mut self, port: u16, admin: u16) -> Self {
        self.listen = format!("127.0.0.1:{port}");
        self.admin = format!("127.0.0.1:{admin}");
        self
    }
    pub fn oidc(mut self, name: &str, issuer: &str) -> Self {
        self.providers.push(ProviderSpec::Oidc {
            name: name.into(),
            issuer: issuer.into(),
            api_audience: None,
            user_claim: None,
            more: String::new(),
        });
        self
    }
    pub fn entra(mut self, name: &str, instance: &str, api_audience: Option<&str>) -> Self {
        self.providers.push(ProviderSpec::Entra {
            name: name.into(),
            instance: instance.into(),
            tenant: TENANT.into(),
            api_audience: api_audience.map(str::to_string),
            group_names: Vec::new(),
            more: String::new(),
        });
        self
    }
    pub fn route(mut self, r: RouteSpec) -> Self {
        self.routes.push(r);
        self
    }
    pub fn store(mut self, kind: &str) -> Self {
        self.store = Some(kind.into());
        self
    }
    pub fn forward_auth(mut self, dialect: &str, trusted: &[&str]) -> Self {
        self.forward_auth = Some((
            Some(dialect.into()),
            trusted.iter().map(|s| s.to_string()).collect(),
        ));
        self
    }
    /// Forward-auth on, in the default (ingress-nginx) dialect, from `trusted`.
    pub fn forward_auth_default(mut self, trusted: &[&str]) -> Self {
        self.forward_auth = Some((None, trusted.iter().map(|s| s.to_string()).collect()));
        self
    }

    /// The configuration as `gateway.yaml` text.
    pub fn yaml(&self) -> String {
        let mut y = String::new();
        let _ = writeln!(y, "listen: [{}]", q(&self.listen));
        let _ = writeln!(y, "public_url: {}", q(&self.public_url));
        let _ = writeln!(y, "admin:\n  listen: {}", q(&self.admin));
        if let Some(t) = &self.admin_token {
            let _ = writeln!(y, "  api_token: {}", q(t));
        }
        if !self.server.is_empty() {
            y.push_str("server:\n");
            for (k, v) in &self.server {
                let _ = writeln!(y, "  {k}: {v}");
            }
        }
        if !self.trusted_proxies.is_empty() {
            let _ = writeln!(y, "trusted_proxies: {}", list(&self.trusted_proxies));
        }
        if let Some((dialect, trusted)) = &self.forward_auth {
            y.push_str("forward_auth:\n  enabled: true\n");
            if let Some(d) = dialect {
                let _ = writeln!(y, "  dialect: {}", q(d));
            }
            let _ = writeln!(y, "  trusted_proxies: {}", list(trusted));
        }
        let (client_secret, session_secret) = if self.secrets_from_env {
            ("${TEST_CLIENT_SECRET}", "${TEST_SESSION_SECRET}")
        } else {
            (CLIENT_SECRET, SESSION_SECRET)
        };
        y.push_str("providers:\n");
        for p in &self.providers {
            match p {
                ProviderSpec::Oidc {
                    name,
                    issuer,
                    api_audience,
                    user_claim,
                    more,
                } => {
                    let _ = writeln!(
                        y,
                        "  - name: {}\n    type: oidc\n    issuer: {}\n    client_id: {}\n    client_secret: {}",
                        q(name),
                        q(issuer),
                        q(CLIENT_ID),
                        q(client_secret)
                    );
                    if let Some(c) = user_claim {
                        let _ = writeln!(y, "    user_claim: {}", q(c));
                    }
                    if let Some(a) = api_audience {
                        let _ = writeln!(y, "    api_audience: {}", q(a));
                    }
                    y.push_str(more);
                }
                ProviderSpec::Saml {
                    name,
                    entity_id,
                    more,
                } => {
                    let _ = writeln!(
                        y,
                        "  - name: {}\n    type: saml\n    entity_id: {}",
                        q(name),
                        q(entity_id)
                    );
                    y.push_str(more);
                }
                ProviderSpec::Written(lines) => {
                    let _ = writeln!(y, "{lines}");
                }
                ProviderSpec::Entra {
                    name,
                    instance,
                    tenant,
                    api_audience,
                    group_names,
                    more,
                } => {
                    let _ = writeln!(
                        y,
                        "  - name: {}\n    type: entra\n    instance: {}\n    tenant: {}\n    client_id: {}\n    client_secret: {}",
                        q(name),
                        q(instance),
                        q(tenant),
                        q(CLIENT_ID),
                        q(client_secret)
                    );
                    if let Some(a) = api_audience {
                        let _ = writeln!(y, "    api_audience: {}", q(a));
                    }
                    if !group_names.is_empty() {
                        y.push_str("    group_names:\n");
                        for (id, n) in group_names {
                            let _ = writeln!(y, "      {}: {}", q(id), q(n));
                        }
                    }
                    y.push_str(more);
                }
            }
        }
        y.push_str("routes:\n");
        for r in &self.routes {
            let _ = writeln!(
                y,
                "  - name: {}\n    upstream: {}",
                q(&r.name),
                q(&r.upstream)
            );
            if let Some(h) = &r.host {
                let _ = writeln!(y, "    host: {}", q(h));
            }
            if let Some(p) = &r.path_prefix {
                let _ = writeln!(y, "    path_prefix: {}", q(p));
            }
            if r.public {
                y.push_str("    public: true\n");
            }
            if !r.providers.is_empty() {
                let _ = writeln!(y, "    providers: {}", list(&r.providers));
            }
            let a = &r.allow;
            let lists = [
                ("groups", &a.groups),
                ("roles", &a.roles),
                ("tenants", &a.tenants),
                ("users", &a.users),
                ("email_domains", &a.email_domains),
            ];
            if lists.iter().any(|(_, l)| !l.is_empty()) || a.require_assignment || a.provisioned {
                y.push_str("    allow:\n");
                for (k, l) in lists {
                    if !l.is_empty() {
                        let _ = writeln!(y, "      {k}: {}", list(l));
                    }
                }
                if a.require_assignment {
                    y.push_str("      require_assignment: true\n");
                }
                if a.provisioned {
                    y.push_str("      provisioned: true\n");
                }
            }
            for more in &r.more {
                for line in more.lines() {
                    let _ = writeln!(y, "    {line}");
                }
            }
        }
        let _ = writeln!(y, "session:\n  secret: {}", q(session_secret));
        if let Some(store) = &self.store {
            let _ = writeln!(y, "  store: {}", q(store));
        }
        y.push_str(&self.tail);
        y
    }

    /// The validated configuration (panics with every error when the reader refuses it).
    pub fn build(&self) -> authgate::config::Config {
        let text = self.yaml();
        let env = |name: &str| match name {
            "TEST_CLIENT_SECRET" => Some(CLIENT_SECRET.to_string()),
            "TEST_SESSION_SECRET" => Some(SESSION_SECRET.to_string()),
            _ => None,
        };
        authgate::config::Config::parse(&text, &env)
            .unwrap_or_else(|e| panic!("the builder wrote an invalid config:\n{e}\n{text}"))
    }
}
