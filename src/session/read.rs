//! Reading `session:`, every error with its path.

use std::time::Duration;

use url::Url;

use super::{
    Lifecycle, OnRecheckFailure, RedisConfig, RedisTls, SessionConfig, StoreKind, TimerOverrides,
    Topology, DEFAULT_RECHECK_GRACE,
};
use crate::read::{Obj, Reader, Secret};

/// The Sentinels' own username and password (`session.redis.sentinel`).
type SentinelAuth = (Option<String>, Option<Secret>);

impl Reader<'_> {
    pub(crate) fn session(
        &mut self,
        top: &mut Obj<'_>,
        public_url: Option<&Url>,
    ) -> Option<SessionConfig> {
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
        let timers = self.timer_overrides(&mut o, "session");
        let lifetime = timers.max_lifetime.unwrap_or(Duration::from_secs(8 * 3600));
        let idle_timeout = timers.idle_timeout.unwrap_or(Duration::from_secs(3600));
        let lifecycle = Lifecycle {
            recheck_every: timers.recheck_every.flatten(),
            on_recheck_failure: timers.on_recheck_failure.unwrap_or(OnRecheckFailure::Deny),
            recheck_grace: timers.recheck_grace.unwrap_or(DEFAULT_RECHECK_GRACE),
            providers: Vec::new(),
        };
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
        let (store, shared_revocation) = self.session_store(&mut o);
        let wants_redis = store == Some(StoreKind::Redis) || shared_revocation;
        let redis = self.session_redis(&mut o, wants_redis);
        let max_sessions = self.uint(&mut o, "max_sessions").unwrap_or(1_000_000);
        // Over https the session cookie is `__Host-` prefixed: a sibling subdomain cannot
        // plant or overwrite it (no Domain, Path=/, Secure are then enforced by browsers).
        // With a parent-domain cookie only `__Secure-` is possible.
        let host_prefix = self.bool(&mut o, "host_prefix").unwrap_or(true);
        let cookie_domain = self.cookie_domain(&mut o, public_url);
        let prefix = match cookie_domain {
            Some(_) => "__Secure-",
            None => "__Host-",
        };
        let cookie_name = if secure && host_prefix && !cookie_name.starts_with("__") {
            format!("{prefix}{cookie_name}")
        } else {
            cookie_name
        };
        self.finish(o);
        Some(SessionConfig {
            cookie_name,
            lifetime,
            idle_timeout,
            lifecycle,
            secure,
            secret: secret.filter(|s| s.0.len() >= 32)?,
            store: store?,
            max_sessions,
            cookie_domain,
            redis: if wants_redis { Some(redis?) } else { None },
        })
    }

    /// `session.cookie_domain: example.com`: a parent domain of `public_url`'s host that is
    /// not a public suffix; warned about, since every host under it receives the session.
    fn cookie_domain(&mut self, o: &mut Obj<'_>, public_url: Option<&Url>) -> Option<String> {
        let raw = self.string(o, "cookie_domain")?;
        let d = raw.trim_start_matches('.').to_ascii_lowercase();
        let at = "session.cookie_domain";
        if !crate::identity::is_domain(&d) {
            self.err(at, format!("{raw:?} is not a domain name"));
            return None;
        }
        if psl::suffix_str(&d) == Some(d.as_str()) {
            self.err(
                at,
                format!("{d} is a public suffix: every site under it would receive the session"),
            );
            return None;
        }
        let host = public_url.and_then(|u| u.host_str()).unwrap_or("");
        let under = host == d
            || host
                .strip_suffix(d.as_str())
                .is_some_and(|r| r.ends_with('.'));
        if !under {
            self.err(at, format!("must be public_url's host or a parent of it ({host}), or browsers drop the cookie"));
            return None;
        }
        self.warn(at, format!("every host under {d} receives the session cookie: any app there, and anyone who controls one, can use it; prefer hosts: with handoffs unless you trust them all"));
        Some(d)
    }

    /// A session's timers as `o` (at `path`: `session`, or a provider's `session`) sets
    /// them: `max_lifetime` (or its older name `lifetime`), `idle_timeout`, `recheck_every`
    /// (a duration or `off`), `on_recheck_failure` (`deny` or `keep`), `recheck_grace`.
    pub(crate) fn timer_overrides(&mut self, o: &mut Obj<'_>, path: &str) -> TimerOverrides {
        let older = self.duration(o, "lifetime");
        let max_lifetime = self.duration(o, "max_lifetime");
        if older.is_some() && max_lifetime.is_some() {
            self.err(
                format!("{path}.lifetime"),
                "is the older name of max_lifetime: set one of them",
            );
        }
        let max_lifetime = max_lifetime.or(older);
        let idle_timeout = self.duration(o, "idle_timeout");
        if max_lifetime.is_some_and(|d| d.as_secs() < 60) {
            self.err(format!("{path}.max_lifetime"), "must be at least 60s");
        }
        if idle_timeout.is_some_and(|d| d.as_secs() < 60) {
            self.err(format!("{path}.idle_timeout"), "must be at least 60s");
        }
        let recheck_every = match self.get(o, "recheck_every") {
            None => None,
            Some(v) if v.as_str() == Some("off") => Some(None),
            Some(_) => self.duration(o, "recheck_every").map(Some),
        };
        if recheck_every.flatten().is_some_and(|d| d.is_zero()) {
            self.err(
                format!("{path}.recheck_every"),
                "must be more than 0s (or off)",
            );
        }
        let on_recheck_failure = match self.string(o, "on_recheck_failure").as_deref() {
            None => None,
            Some("deny") => Some(OnRecheckFailure::Deny),
            Some("keep") => Some(OnRecheckFailure::Keep),
            Some(other) => {
                self.err(
                    format!("{path}.on_recheck_failure"),
                    format!("unknown value {other:?} (deny or keep)"),
                );
                None
            }
        };
        let recheck_grace = self.duration(o, "recheck_grace");
        TimerOverrides {
            max_lifetime,
            idle_timeout,
            recheck_every,
            on_recheck_failure,
            recheck_grace,
        }
    }

    /// `session.store` and `session.revocation`: the store, and whether the cookie store
    /// shares its revocations through Redis.
    fn session_store(&mut self, o: &mut Obj<'_>) -> (Option<StoreKind>, bool) {
        let store = match self.string(o, "store").as_deref() {
            None | Some("cookie") => Some(StoreKind::Cookie),
            Some("memory") => Some(StoreKind::Memory),
            Some("redis") => Some(StoreKind::Redis),
            Some(other) => {
                self.err(
                    "session.store",
                    format!("unknown store {other:?} (supported: cookie, memory, redis)"),
                );
                None
            }
        };
        let shared_revocation = match self.string(o, "revocation").as_deref() {
            None | Some("local") => false,
            Some("redis") => {
                if store.is_some_and(|s| s != StoreKind::Cookie) {
                    self.err(
                        "session.revocation",
                        "applies to store: cookie only (the memory store is one process; the redis store shares revocations already)",
                    );
                }
                true
            }
            Some(other) => {
                self.err(
                    "session.revocation",
                    format!("unknown value {other:?} (supported: local, redis)"),
                );
                false
            }
        };
        (store, shared_revocation)
    }

    /// `session.redis`, required exactly when `wanted`.
    fn session_redis(&mut self, o: &mut Obj<'_>, wanted: bool) -> Option<RedisConfig> {
        let v = self.get(o, "redis");
        let r = self.obj("session.redis", v);
        match (r.map.is_some(), wanted) {
            (true, true) => self.redis(r),
            (false, true) => {
                self.err(
                    "session.redis",
                    "is required with store: redis or revocation: redis",
                );
                None
            }
            (true, false) => {
                self.err(
                    "session.redis",
                    "is set but unused: set store: redis (or revocation: redis with the cookie store)",
                );
                None
            }
            (false, false) => None,
        }
    }

    /// `session.redis.sentinel`: the service name and the Sentinels, and the Sentinels' own
    /// credentials (`username`, `password`/`password_file`: Sentinel's `requirepass` or an
    /// ACL user of theirs), apart from the data nodes'.
    fn redis_sentinel(&mut self, mut s: Obj<'_>) -> Option<(Topology, SentinelAuth)> {
        let service_name = self.required_string(&mut s, "service_name");
        let nodes = self.redis_nodes(&mut s);
        let username = self.string(&mut s, "username");
        let has_password = s
            .map
            .is_some_and(|m| m.contains_key("password") || m.contains_key("password_file"));
        let password = if has_password {
            self.secret(&mut s, "password")
        } else {
            None
        };
        if username.is_some() && password.is_none() {
            self.err("session.redis.sentinel.username", "needs a password");
        }
        self.finish(s);
        let topology = Topology::Sentinel {
            service_name: service_name?,
            nodes: nodes?,
        };
        Some((topology, (username, password)))
    }

    /// `session.redis.cluster`: the seed nodes (database 0 only).
    fn redis_cluster(&mut self, mut c: Obj<'_>, database: Option<u8>) -> Option<Topology> {
        let nodes = self.redis_nodes(&mut c);
        self.finish(c);
        if database.is_some_and(|d| d != 0) {
            self.err(
                "session.redis.database",
                "Redis Cluster has database 0 only",
            );
        }
        Some(Topology::Cluster { nodes: nodes? })
    }

    /// `session.redis`: exactly one of `url` (standalone), `sentinel` or `cluster`.
    fn redis(&mut self, mut o: Obj<'_>) -> Option<RedisConfig> {
        let url = self.string(&mut o, "url");
        let sentinel = {
            let v = self.get(&mut o, "sentinel");
            self.obj("session.redis.sentinel", v)
        };
        let cluster = {
            let v = self.get(&mut o, "cluster");
            self.obj("session.redis.cluster", v)
        };
        let mut username = self.string(&mut o, "username");
        let has_password = o
            .map
            .is_some_and(|m| m.contains_key("password") || m.contains_key("password_file"));
        let mut password = if has_password {
            self.secret(&mut o, "password")
        } else {
            None
        };
        let mut database = self.uint(&mut o, "database").and_then(|d| {
            let ok = u8::try_from(d).ok().filter(|d| *d < 16);
            if ok.is_none() {
                self.err("session.redis.database", "must be 0 to 15");
            }
            ok
        });
        let mut tls = self.redis_tls(&mut o);
        let given = [url.is_some(), sentinel.map.is_some(), cluster.map.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            self.err(
                "session.redis",
                "give exactly one of url (standalone), sentinel or cluster",
            );
        }
        let mut sentinel_auth: SentinelAuth = (None, None);
        let topology = if let Some(u) = url {
            self.redis_url(&u, &mut username, &mut password, &mut database, &mut tls)
        } else if sentinel.map.is_some() {
            self.redis_sentinel(sentinel).map(|(t, auth)| {
                sentinel_auth = auth;
                t
            })
        } else if cluster.map.is_some() {
            self.redis_cluster(cluster, database)
        } else {
            None
        };
        let key_prefix = self
            .string(&mut o, "key_prefix")
            .unwrap_or_else(|| "authgate:".into());
        let timeout = self
            .duration(&mut o, "timeout")
            .unwrap_or(Duration::from_millis(500));
        if timeout.is_zero() || timeout > Duration::from_secs(10) {
            self.err("session.redis.timeout", "must be between 1ms and 10s");
        }
        let pool_size = self.uint(&mut o, "pool_size").unwrap_or(4);
        if !(1..=64).contains(&pool_size) {
            self.err("session.redis.pool_size", "must be 1 to 64");
        }
        let cache_ttl = self
            .duration(&mut o, "cache_ttl")
            .unwrap_or(Duration::from_secs(5));
        if cache_ttl > Duration::from_secs(300) {
            self.err(
                "session.redis.cache_ttl",
                "must be at most 5m (revocations are pushed, but a cached session is only re-read this often)",
            );
        }
        let cache_bytes = self
            .uint(&mut o, "cache_mib")
            .unwrap_or(32)
            .saturating_mul(1024 * 1024);
        let unavailable_grace = self
            .duration(&mut o, "unavailable_grace")
            .unwrap_or(Duration::from_secs(60));
        self.finish(o);
        Some(RedisConfig {
            topology: topology?,
            username,
            password,
            sentinel_username: sentinel_auth.0,
            sentinel_password: sentinel_auth.1,
            database,
            tls,
            key_prefix,
            timeout,
            pool_size: usize::try_from(pool_size).unwrap_or(4),
            cache_ttl,
            cache_bytes,
            unavailable_grace,
        })
    }

    /// `redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS.
    fn redis_url(
        &mut self,
        raw: &str,
        username: &mut Option<String>,
        password: &mut Option<Secret>,
        database: &mut Option<u8>,
        tls: &mut Option<RedisTls>,
    ) -> Option<Topology> {
        let path = "session.redis.url";
        let Ok(u) = Url::parse(raw) else {
            self.err(path, "is not a URL like redis://host:6379/0");
            return None;
        };
        match u.scheme() {
            "redis" => {}
            "rediss" => {
                tls.get_or_insert_with(RedisTls::default);
            }
            other => {
                self.err(path, format!("scheme {other:?}: use redis:// or rediss://"));
                return None;
            }
        }
        let Some(host) = u.host_str().filter(|h| !h.is_empty()) else {
            self.err(path, "names no host");
            return None;
        };
        if !u.username().is_empty() {
            *username = Some(u.username().to_string());
        }
        if let Some(p) = u.password() {
            if password.is_some() {
                self.err(
                    path,
                    "carries a password and session.redis.password is set too",
                );
            }
            let p = percent_encoding::percent_decode_str(p).decode_utf8_lossy();
            *password = Some(Secret(p.into_owned()));
        }
        match u.path().trim_start_matches('/') {
            "" => {}
            db => match db.parse::<u8>().ok().filter(|d| *d < 16) {
                Some(d) => *database = Some(d),
                None => self.err(path, format!("database {db:?} must be 0 to 15")),
            },
        }
        if u.query().is_some() {
            self.err(path, "takes no query; use the session.redis keys");
        }
        Some(Topology::Standalone {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: u.port().unwrap_or(6379),
        })
    }

    fn redis_nodes(&mut self, o: &mut Obj<'_>) -> Option<Vec<(String, u16)>> {
        let path = crate::read::join(&o.path, "nodes");
        let list = self.string_list(o, "nodes").unwrap_or_default();
        if list.is_empty() {
            self.err(&path, "is required: host:port of at least one node");
            return None;
        }
        let mut out = Vec::new();
        for (i, n) in list.iter().enumerate() {
            match n
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            {
                Some((h, p)) if !h.is_empty() && p > 0 => out.push((h.to_string(), p)),
                _ => self.err(format!("{path}[{i}]"), format!("{n:?} is not host:port")),
            }
        }
        (out.len() == list.len()).then_some(out)
    }

    /// `tls: true`, or `tls: {ca_file: ...}` (the CA bundle is read now: a missing or
    /// unreadable file is a configuration error, not a failure at first use).
    fn redis_tls(&mut self, o: &mut Obj<'_>) -> Option<RedisTls> {
        let path = "session.redis.tls";
        match self.get(o, "tls") {
            None | Some(serde_yaml::Value::Bool(false)) => None,
            Some(serde_yaml::Value::Bool(true)) => Some(RedisTls::default()),
            Some(v @ serde_yaml::Value::Mapping(_)) => {
                let mut t = self.obj(path, Some(v));
                let ca_file = self.string(&mut t, "ca_file");
                self.finish(t);
                let ca_pem = match &ca_file {
                    None => None,
                    Some(f) => match std::fs::read(f) {
                        Ok(pem)
                            if openssl::x509::X509::stack_from_pem(&pem)
                                .is_ok_and(|s| !s.is_empty()) =>
                        {
                            Some(pem)
                        }
                        Ok(_) => {
                            self.err(
                                format!("{path}.ca_file"),
                                format!("{f} holds no PEM certificate"),
                            );
                            None
                        }
                        Err(e) => {
                            self.err(format!("{path}.ca_file"), format!("cannot read {f}: {e}"));
                            None
                        }
                    },
                };
                Some(RedisTls {
                    ca_file: ca_file.map(Into::into),
                    ca_pem,
                })
            }
            Some(_) => {
                self.err(path, "expected true, false or a mapping with ca_file");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::session::{StoreKind, Topology};

    use crate::read::testing::BASE;

    fn env(name: &str) -> Option<String> {
        (name == "REDIS_PASSWORD").then(|| "pw from env".into())
    }

    fn parse(session: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}{session}"), &env).map_err(|e| e.to_string())
    }

    #[test]
    fn redis_topologies_and_their_options_read() {
        let c = parse("  store: redis\n  redis:\n    url: redis://:p%40ss@cache.internal:6380/3\n")
            .unwrap();
        let r = c.session.redis.expect("redis");
        assert_eq!(c.session.store, StoreKind::Redis);
        assert_eq!(
            r.topology,
            Topology::Standalone {
                host: "cache.internal".into(),
                port: 6380
            }
        );
        assert_eq!(r.database, Some(3));
        assert_eq!(r.password.map(|p| p.0), Some("p@ss".into()));
        assert!(r.tls.is_none());
        assert_eq!(
            (
                r.key_prefix.as_str(),
                r.cache_ttl.as_secs(),
                r.unavailable_grace.as_secs()
            ),
            ("authgate:", 5, 60)
        );
        let c = parse("  store: redis\n  redis:\n    url: rediss://cache:6379\n    password: ${REDIS_PASSWORD}\n").unwrap();
        let r = c.session.redis.unwrap();
        assert!(r.tls.is_some(), "rediss:// is TLS");
        assert_eq!(r.password.map(|p| p.0), Some("pw from env".into()));
        let c = parse("  store: redis\n  redis:\n    sentinel:\n      service_name: mymaster\n      nodes: [\"s1:26379\", \"s2:26379\"]\n    tls: true\n").unwrap();
        let r = c.session.redis.unwrap();
        assert_eq!(
            r.topology,
            Topology::Sentinel {
                service_name: "mymaster".into(),
                nodes: vec![("s1".into(), 26379), ("s2".into(), 26379)]
            }
        );
        let c = parse("  store: redis\n  redis:\n    cluster:\n      nodes: [\"c1:7000\"]\n    unavailable_grace: 0s\n").unwrap();
        let r = c.session.redis.unwrap();
        assert_eq!(
            r.topology,
            Topology::Cluster {
                nodes: vec![("c1".into(), 7000)]
            }
        );
        assert_eq!(r.unavailable_grace.as_secs(), 0);
        let c = parse("  revocation: redis\n  redis:\n    url: redis://r\n").unwrap();
        assert_eq!(c.session.store, StoreKind::Cookie);
        assert!(c.session.shared_revocation() && c.session.redis.is_some());
    }

    /// Every wrong `session.redis` is reported with its path, all at once.
    #[test]
    fn bad_redis_settings_are_reported_with_their_path() {
        let cases: &[(&str, &[&str])] = &[
            ("  store: redis\n", &["session.redis: is required with store: redis"]),
            ("  store: rediss\n", &["session.store: unknown store \"rediss\""]),
            ("  redis:\n    url: redis://r\n", &["session.redis: is set but unused"]),
            ("  store: memory\n  revocation: redis\n  redis:\n    url: redis://r\n", &["session.revocation: applies to store: cookie only"]),
            ("  revocation: everywhere\n", &["session.revocation: unknown value"]),
            ("  store: redis\n  redis:\n    url: http://r\n", &["session.redis.url: scheme \"http\""]),
            ("  store: redis\n  redis:\n    url: not a url\n", &["session.redis.url: is not a URL"]),
            ("  store: redis\n  redis:\n    url: redis://r/42\n", &["session.redis.url: database \"42\""]),
            ("  store: redis\n  redis:\n    url: redis://r?db=1\n", &["session.redis.url: takes no query"]),
            ("  store: redis\n  redis:\n    url: redis://:a@r\n    password: b\n", &["carries a password and session.redis.password is set too"]),
            ("  store: redis\n  redis: {}\n", &["session.redis: give exactly one of url"]),
            ("  store: redis\n  redis:\n    url: redis://r\n    cluster:\n      nodes: [\"c:1\"]\n", &["session.redis: give exactly one of url"]),
            ("  store: redis\n  redis:\n    sentinel:\n      nodes: [\"s:1\"]\n", &["session.redis.sentinel.service_name"]),
            ("  store: redis\n  redis:\n    cluster:\n      nodes: []\n", &["session.redis.cluster.nodes: is required"]),
            ("  store: redis\n  redis:\n    cluster:\n      nodes: [\"c1\", \"c2:x\", \"c3:7000\"]\n", &["session.redis.cluster.nodes[0]", "session.redis.cluster.nodes[1]"]),
            ("  store: redis\n  redis:\n    cluster:\n      nodes: [\"c:7000\"]\n    database: 2\n", &["Redis Cluster has database 0 only"]),
            ("  store: redis\n  redis:\n    url: redis://r\n    database: 16\n", &["session.redis.database: must be 0 to 15"]),
            ("  store: redis\n  redis:\n    url: redis://r\n    timeout: 0s\n    pool_size: 0\n    cache_ttl: 1h\n", &["session.redis.timeout", "session.redis.pool_size", "session.redis.cache_ttl"]),
            ("  store: redis\n  redis:\n    url: redis://r\n    tls:\n      ca_file: /nonexistent/ca.pem\n", &["session.redis.tls.ca_file: cannot read"]),
            ("  store: redis\n  redis:\n    url: redis://r\n    tls: sometimes\n", &["session.redis.tls: expected true"]),
            ("  store: redis\n  redis:\n    url: redis://r\n    passwrd: x\n", &["session.redis.passwrd"]),
            ("  store: redis\n  redis:\n    url: redis://r\n    password: ${UNSET_VAR}\n", &["UNSET_VAR"]),
        ];
        for (session, expected) in cases {
            let err = parse(session).expect_err(session);
            for e in *expected {
                assert!(err.contains(e), "{session:?}: expected {e:?} in:\n{err}");
            }
        }
    }
}
