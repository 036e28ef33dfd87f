//! Reading `routes:`, every error with its path.

use std::collections::HashSet;

use super::{PassTokens, PreservePost, RouteConfig, Upstream};
use crate::canonical::RESERVED_PREFIX;
use crate::idp::settings::ProviderConfig;
use crate::policy::GroupNames;
use crate::read::{join, valid_name, Obj, Reader};

impl Reader<'_> {
    pub(crate) fn routes(
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
            let path_prefix = self.path_prefix(&mut o, &path);
            if !seen_keys.insert((host.clone(), path_prefix.clone())) {
                self.err(
                    &path,
                    "another route already has the same host and path_prefix",
                );
            }
            let upstream = self.upstream_settings(&mut o, &path);
            let public = self.bool(&mut o, "public").unwrap_or(false);
            let exceptions = self.path_exceptions(&mut o, &path);
            let mut policy = self.policy(&mut o, &path);
            if public && !policy.is_empty() {
                self.err(
                    join(&path, "allow"),
                    "a public route lets everyone in: drop public or allow",
                );
            }
            let accepts = self.route_providers(&mut o, &path, providers);
            let provider = accepts.first().copied();
            let preserve_post = self.preserve_post(&mut o, &path, public);
            let cors = self.cors(&mut o, &path);
            let open = self.open(&mut o, &path, public);
            let assertion_audience = self.assertion_audience(&mut o, &path);
            let tokens = self.pass_tokens(&mut o, &path, public);
            let accepted: Vec<&ProviderConfig> = accepts
                .iter()
                .filter_map(|i| providers.get(*i).and_then(Option::as_ref))
                .collect();
            let require = self.require(&mut o, &path, public, &accepted);
            self.finish(o);
            if let (Some(upstream), Some(provider)) = (upstream, provider) {
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
                    require,
                    exceptions,
                    preserve_post,
                    cors,
                    open,
                    assertion_audience,
                    tokens,
                });
            }
        }
        out
    }

    /// `upstream` with its `upstream_tls`, `upstream_host` and `upstream_read_timeout`.
    fn upstream_settings(&mut self, o: &mut Obj<'_>, path: &str) -> Option<Upstream> {
        let mut upstream = self.upstream(o, path);
        let upstream_tls = self.upstream_tls(o, path, upstream.as_ref().is_some_and(|u| u.tls));
        let upstream_host = self.upstream_host(o, path);
        let read_timeout = self.duration(o, "upstream_read_timeout");
        if read_timeout.is_some_and(|d| d.is_zero()) {
            self.err(
                join(path, "upstream_read_timeout"),
                "must be more than 0s (leave it out for no limit)",
            );
        }
        if let Some(u) = upstream.as_mut() {
            u.tls_options = upstream_tls;
            u.host_header = upstream_host;
            u.read_timeout = read_timeout;
        }
        upstream
    }

    /// `routes[i].assertion_audience`: a short name or URL.
    fn assertion_audience(&mut self, o: &mut Obj<'_>, path: &str) -> Option<String> {
        let aud = self.string(o, "assertion_audience");
        if aud
            .as_deref()
            .is_some_and(|a| a.is_empty() || a.len() > 512 || a.chars().any(char::is_control))
        {
            self.err(
                join(path, "assertion_audience"),
                "expected a short name or URL (1 to 512 printable characters)",
            );
        }
        aud
    }

    /// `routes[i].pass_id_token` (`true` or `{header}`) and `pass_access_token` (`{scope,
    /// header}`): never on a public route.
    fn pass_tokens(&mut self, o: &mut Obj<'_>, path: &str, public: bool) -> PassTokens {
        use super::{AccessTokenPass, ACCESS_TOKEN_HEADER, ID_TOKEN_HEADER};
        let header = |r: &mut Self, o: &mut Obj<'_>, at: &str, default: &str| {
            let h = r.string(o, "header").unwrap_or_else(|| default.to_string());
            if h.is_empty()
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                r.err(
                    join(at, "header"),
                    format!("{h:?} is not a valid header name"),
                );
            }
            h
        };
        let id_at = join(path, "pass_id_token");
        let id_token = match self.get(o, "pass_id_token") {
            None | Some(serde_yaml::Value::Bool(false)) => None,
            Some(serde_yaml::Value::Bool(true)) => Some(ID_TOKEN_HEADER.to_string()),
            Some(v @ serde_yaml::Value::Mapping(_)) => {
                let mut m = self.obj(&id_at, Some(v));
                let h = header(self, &mut m, &id_at, ID_TOKEN_HEADER);
                self.finish(m);
                Some(h)
            }
            Some(_) => {
                self.err(&id_at, "expected true, false or {header: <name>}");
                None
            }
        };
        let at_at = join(path, "pass_access_token");
        let access_token = self.get(o, "pass_access_token").and_then(|v| {
            let mut m = self.obj(&at_at, Some(v));
            let scope = self.required_string(&mut m, "scope");
            let h = header(self, &mut m, &at_at, ACCESS_TOKEN_HEADER);
            self.finish(m);
            Some(AccessTokenPass {
                scope: scope?,
                header: h,
            })
        });
        let tokens = PassTokens {
            id_token,
            access_token,
        };
        if public && tokens.any() {
            self.err(
                path,
                "a public route has no session to take a token from: drop pass_id_token and pass_access_token",
            );
        }
        tokens
    }

    /// `routes[i].preserve_post`: `true`, or `{max_bytes, ttl}` (1 MiB and 10 minutes by
    /// default, at most 16 MiB and 1 hour).
    fn preserve_post(&mut self, o: &mut Obj<'_>, path: &str, public: bool) -> Option<PreservePost> {
        let at = join(path, "preserve_post");
        let v = self.get(o, "preserve_post")?;
        if public && v.as_bool() != Some(false) {
            self.err(
                &at,
                "a public route never asks anyone to sign in: drop preserve_post",
            );
        }
        match v {
            serde_yaml::Value::Bool(false) => None,
            serde_yaml::Value::Bool(true) => Some(PreservePost::default()),
            serde_yaml::Value::Mapping(_) => {
                let mut m = self.obj(&at, Some(v));
                let d = PreservePost::default();
                let max_bytes = self
                    .uint(&mut m, "max_bytes")
                    .map_or(d.max_bytes, |n| n as usize);
                let ttl = self.duration(&mut m, "ttl").unwrap_or(d.ttl);
                self.finish(m);
                if max_bytes == 0 || max_bytes > 16 * 1024 * 1024 {
                    self.err(join(&at, "max_bytes"), "must be between 1 and 16777216");
                }
                if ttl.is_zero() || ttl.as_secs() > 3600 {
                    self.err(join(&at, "ttl"), "must be more than 0s and at most 1h");
                }
                Some(PreservePost { max_bytes, ttl })
            }
            _ => {
                self.err(at, "expected true, false or {max_bytes, ttl}");
                None
            }
        }
    }

    /// `routes[i].path_prefix`: `/` by default; a plain path, not under the reserved prefix.
    fn path_prefix(&mut self, o: &mut Obj<'_>, path: &str) -> String {
        let path_prefix = self
            .string(o, "path_prefix")
            .unwrap_or_else(|| "/".to_string());
        if !path_prefix.starts_with('/') {
            self.err(join(path, "path_prefix"), "must start with /");
        } else if !path_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,=@".contains(&b))
        {
            self.err(
                join(path, "path_prefix"),
                "use letters, digits and -._~!$&'()*+,=@ only (no %, ;, spaces or non-ASCII: requests are compared after normalization)",
            );
        } else if crate::canonical::has_prefix_ci(&path_prefix, RESERVED_PREFIX) {
            self.err(
                join(path, "path_prefix"),
                format!("{RESERVED_PREFIX} is reserved for the gateway's own endpoints"),
            );
        }
        path_prefix
    }

    /// `routes[i].path_exceptions`: the request forms this route lets through.
    fn path_exceptions(&mut self, o: &mut Obj<'_>, path: &str) -> crate::canonical::Exceptions {
        let mut exceptions = crate::canonical::Exceptions::default();
        for e in self.string_list(o, "path_exceptions").unwrap_or_default() {
            match e.as_str() {
                "path_parameters" => exceptions.path_parameters = true,
                "encoded_slash" => exceptions.encoded_slash = true,
                other => self.err(
                    join(path, "path_exceptions"),
                    format!(
                        "unknown exception {other:?} (known: {})",
                        crate::canonical::Exceptions::ALL.join(", ")
                    ),
                ),
            }
        }
        exceptions
    }

    /// A route's `provider: name` or `providers: [a, b]`: the providers whose identities it
    /// accepts, the first being the one browsers sign in with. Indices into `providers`.
    pub(crate) fn route_providers(
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

    pub(crate) fn upstream(&mut self, o: &mut Obj<'_>, path: &str) -> Option<Upstream> {
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
                tls_options: None,
                host_header: None,
                read_timeout: None,
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

    /// `upstream_host:` the `Host` the upstream receives instead of the request's (apps that
    /// know only their own name); `X-Forwarded-Host` still carries the request's.
    pub(crate) fn upstream_host(&mut self, o: &mut Obj<'_>, path: &str) -> Option<String> {
        let h = self.string(o, "upstream_host")?;
        let (name, port) = match h.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (h.as_str(), None),
        };
        let name_ok = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
        if name_ok && port_ok {
            Some(h.to_ascii_lowercase())
        } else {
            self.err(
                join(path, "upstream_host"),
                format!("{h:?} is not host or host:port"),
            );
            None
        }
    }
}
