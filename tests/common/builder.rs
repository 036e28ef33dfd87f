//! A typed configuration builder: tests say what they configure (providers, routes with
//! their policy, the session store, forward-auth) instead of editing a YAML template with
//! `.replace()`. It writes `gateway.yaml` text, so the gateway's own reader validates every
//! configuration a test uses: `yaml()` for the real binary, `build()` for in-process tests.

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
    },
    /// The Entra preset against a local Entra-shaped instance (`instance`).
    Entra {
        name: String,
        instance: String,
        api_audience: Option<String>,
        group_names: Vec<(String, String)>,
    },
}

#[derive(Clone, Debug, Default)]
pub struct Allow {
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub tenants: Vec<String>,
    pub users: Vec<String>,
    pub email_domains: Vec<String>,
    pub require_assignment: bool,
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
        }
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
    pub store: String,
    pub trusted_proxies: Vec<String>,
    /// `Some((dialect, trusted))`: forward-auth on.
    pub forward_auth: Option<(String, Vec<String>)>,
}

impl ConfigBuilder {
    pub fn new(public_url: &str) -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            admin: "127.0.0.1:9090".into(),
            public_url: public_url.into(),
            providers: Vec::new(),
            routes: Vec::new(),
            store: "cookie".into(),
            trusted_proxies: Vec::new(),
            forward_auth: None,
        }
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
        });
        self
    }
    pub fn entra(mut self, name: &str, instance: &str, api_audience: Option<&str>) -> Self {
        self.providers.push(ProviderSpec::Entra {
            name: name.into(),
            instance: instance.into(),
            api_audience: api_audience.map(str::to_string),
            group_names: Vec::new(),
        });
        self
    }
    pub fn route(mut self, r: RouteSpec) -> Self {
        self.routes.push(r);
        self
    }
    pub fn store(mut self, kind: &str) -> Self {
        self.store = kind.into();
        self
    }
    pub fn forward_auth(mut self, dialect: &str, trusted: &[&str]) -> Self {
        self.forward_auth = Some((
            dialect.into(),
            trusted.iter().map(|s| s.to_string()).collect(),
        ));
        self
    }

    /// The configuration as `gateway.yaml` text.
    pub fn yaml(&self) -> String {
        let mut y = String::new();
        let _ = writeln!(y, "listen: [{}]", q(&self.listen));
        let _ = writeln!(y, "public_url: {}", q(&self.public_url));
        let _ = writeln!(y, "admin:\n  listen: {}", q(&self.admin));
        if !self.trusted_proxies.is_empty() {
            let _ = writeln!(y, "trusted_proxies: {}", list(&self.trusted_proxies));
        }
        if let Some((dialect, trusted)) = &self.forward_auth {
            let _ = writeln!(
                y,
                "forward_auth:\n  enabled: true\n  dialect: {}\n  trusted_proxies: {}",
                q(dialect),
                list(trusted)
            );
        }
        y.push_str("providers:\n");
        for p in &self.providers {
            match p {
                ProviderSpec::Oidc {
                    name,
                    issuer,
                    api_audience,
                } => {
                    let _ = writeln!(
                        y,
                        "  - name: {}\n    type: oidc\n    issuer: {}\n    client_id: {}\n    client_secret: {}",
                        q(name),
                        q(issuer),
                        q(CLIENT_ID),
                        q(CLIENT_SECRET)
                    );
                    if let Some(a) = api_audience {
                        let _ = writeln!(y, "    api_audience: {}", q(a));
                    }
                }
                ProviderSpec::Entra {
                    name,
                    instance,
                    api_audience,
                    group_names,
                } => {
                    let _ = writeln!(
                        y,
                        "  - name: {}\n    type: entra\n    instance: {}\n    tenant: {}\n    client_id: {}\n    client_secret: {}",
                        q(name),
                        q(instance),
                        q(TENANT),
                        q(CLIENT_ID),
                        q(CLIENT_SECRET)
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
            if lists.iter().any(|(_, l)| !l.is_empty()) || a.require_assignment {
                y.push_str("    allow:\n");
                for (k, l) in lists {
                    if !l.is_empty() {
                        let _ = writeln!(y, "      {k}: {}", list(l));
                    }
                }
                if a.require_assignment {
                    y.push_str("      require_assignment: true\n");
                }
            }
        }
        let _ = writeln!(
            y,
            "session:\n  secret: {}\n  store: {}",
            q(SESSION_SECRET),
            q(&self.store)
        );
        y
    }

    /// The validated configuration (panics with every error when the reader refuses it).
    pub fn build(&self) -> authgate::config::Config {
        let text = self.yaml();
        authgate::config::Config::parse(&text, &|_| None)
            .unwrap_or_else(|e| panic!("the builder wrote an invalid config:\n{e}\n{text}"))
    }
}
