//! The connection to Redis: a pool of clients for commands and one subscriber for the
//! revocation channel, on a runtime of their own; whether Redis answers (`/readyz`); and how
//! many commands failed (a metric).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use fred::types::config::{Server, TlsConnector};

use super::{Keys, RedisConfig, Topology};
use crate::session::StoreError;

pub(crate) struct Link {
    rt: Background,
    pool: Pool,
    pub(crate) keys: Keys,
    timeout: Duration,
    state: Arc<State>,
}

/// What the background tasks and the callers share.
struct State {
    /// Redis answered the last command or ping.
    healthy: AtomicBool,
    /// The subscription is in place (pushes arrive).
    subscribed: AtomicBool,
    /// Bumped at every (re)subscription: pushes sent while it was down may be lost, so what
    /// was read before must be read again.
    epoch: AtomicU64,
    errors: AtomicU64,
}

/// The runtime Redis I/O runs on. Dropped without blocking, wherever the last reference goes
/// (a reload may drop it on a proxy thread).
struct Background(Option<tokio::runtime::Runtime>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Background {
    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(|rt| rt.handle())
    }
}

fn server(host: &str, port: u16) -> Server {
    Server::new(host, port)
}

fn fred_config(cfg: &RedisConfig) -> Result<Config, String> {
    let server = match &cfg.topology {
        Topology::Standalone { host, port } => ServerConfig::Centralized {
            server: server(host, *port),
        },
        Topology::Sentinel {
            service_name,
            nodes,
        } => ServerConfig::Sentinel {
            hosts: nodes.iter().map(|(h, p)| server(h, *p)).collect(),
            service_name: service_name.clone(),
            username: cfg.sentinel_username.clone(),
            password: cfg.sentinel_password.as_ref().map(|s| s.0.clone()),
        },
        Topology::Cluster { nodes } => ServerConfig::Clustered {
            hosts: nodes.iter().map(|(h, p)| server(h, *p)).collect(),
            policy: Default::default(),
        },
    };
    Ok(Config {
        // Start even while Redis is down (requests that need it get 503 until it is back).
        fail_fast: false,
        username: cfg.username.clone(),
        password: cfg.password.as_ref().map(|s| s.0.clone()),
        database: cfg.database,
        server,
        tls: tls_config(cfg)?,
        ..Default::default()
    })
}

/// TLS toward Redis (and the Sentinels), with the configured CA bundle.
fn tls_config(cfg: &RedisConfig) -> Result<Option<fred::types::config::TlsConfig>, String> {
    Ok(match &cfg.tls {
        None => None,
        Some(t) => {
            let mut b = native_tls::TlsConnector::builder();
            b.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
            if let Some(pem) = &t.ca_pem {
                for cert in openssl::x509::X509::stack_from_pem(pem)
                    .map_err(|e| format!("session.redis.tls.ca_file: {e}"))?
                {
                    let der = cert.to_der().map_err(|e| e.to_string())?;
                    let c = native_tls::Certificate::from_der(&der).map_err(|e| e.to_string())?;
                    b.add_root_certificate(c);
                }
            }
            let connector = TlsConnector::try_from(b).map_err(|e| e.to_string())?;
            Some(connector.into())
        }
    })
}

/// With Sentinel: asks the Sentinels where the primary is, and moves the connections there
/// when it changed. A demoted primary does not always close its clients' connections, and
/// until a Sentinel reconfigures it, it still accepts writes: following the Sentinels'
/// answer is what keeps every replica writing to the same primary after a failover.
struct SentinelWatch {
    service: String,
    sentinels: Vec<Client>,
    timeout: Duration,
    /// The primary a reconnection was last forced for, and when: not forced again for the
    /// same address within `REFORCE_AFTER`, but again after it if the connections are still
    /// elsewhere (a reconnection that raced the Sentinels' switch can land on the old primary,
    /// which keeps accepting writes until it is demoted, and then drops them).
    /// At most `REFORCE_TIMES` times for one address, should the connections' addresses never
    /// read the same as the Sentinels' (a name against an IP).
    forced: std::sync::Mutex<Option<(String, u16, std::time::Instant, u32)>>,
}

impl SentinelWatch {
    /// Clients of the Sentinels `nodes` (with their own credentials, and TLS as the data
    /// nodes have it).
    fn new(service: &str, nodes: &[(String, u16)], cfg: &RedisConfig) -> Result<Self, String> {
        let timeout = cfg.timeout;
        let mut sentinels = Vec::new();
        for (host, port) in nodes {
            let config = Config {
                fail_fast: false,
                server: ServerConfig::Centralized {
                    server: server(host, *port),
                },
                username: cfg.sentinel_username.clone(),
                password: cfg.sentinel_password.as_ref().map(|s| s.0.clone()),
                tls: tls_config(cfg)?,
                ..Default::default()
            };
            let mut b = Builder::from_config(config);
            b.with_performance_config(|p| p.default_command_timeout = timeout)
                .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
            sentinels.push(
                b.build()
                    .map_err(|e| format!("session.redis.sentinel: {e}"))?,
            );
        }
        Ok(Self {
            service: service.to_string(),
            sentinels,
            timeout,
            forced: std::sync::Mutex::new(None),
        })
    }

    fn connect(&self) {
        for s in &self.sentinels {
            drop(s.connect());
        }
    }

    /// Where the first Sentinel that answers says the primary is.
    async fn primary(&self) -> Option<(String, u16)> {
        for s in &self.sentinels {
            let asked = s.custom::<Vec<String>, _>(
                fred::types::CustomCommand::new_static(
                    "SENTINEL",
                    fred::types::ClusterHash::FirstKey,
                    false,
                ),
                vec!["get-master-addr-by-name".to_string(), self.service.clone()],
            );
            if let Ok(Ok(addr)) = tokio::time::timeout(self.timeout, asked).await {
                if let [host, port] = addr.as_slice() {
                    if let Ok(port) = port.parse() {
                        return Some((host.clone(), port));
                    }
                }
            }
        }
        None
    }

    async fn follow(&self, pool: &Pool, subscriber: &fred::clients::SubscriberClient) {
        let Some((host, port)) = self.primary().await else {
            return;
        };
        let connected = pool.active_connections();
        let elsewhere = connected
            .iter()
            .any(|c| c.port != port || &*c.host != host.as_str());
        let times = {
            let forced = self.forced.lock().unwrap_or_else(|p| p.into_inner());
            match forced.as_ref() {
                Some((h, p, at, n)) if *h == host && *p == port => {
                    if at.elapsed() < REFORCE_AFTER || *n >= REFORCE_TIMES {
                        return;
                    }
                    n + 1
                }
                _ => 1,
            }
        };
        if !elsewhere || connected.is_empty() {
            return;
        }
        log::warn!(
            "session store: the Sentinels name {host}:{port} as primary of {}; moving the connections there",
            self.service
        );
        *self.forced.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((host, port, std::time::Instant::now(), times));
        let _ = pool.force_reconnection().await;
        let _ = subscriber.force_reconnection().await;
    }
}

/// How long a forced move to one primary is given before it is forced again, and how many
/// times at most.
const REFORCE_AFTER: Duration = Duration::from_secs(2);
const REFORCE_TIMES: u32 = 5;

impl Link {
    /// Connects in the background; `on_push` receives every message on the revocation
    /// channel. Fails only on a configuration the client refuses.
    pub(crate) fn connect(
        cfg: &RedisConfig,
        on_push: Arc<dyn Fn(&str) + Send + Sync>,
    ) -> Result<Arc<Link>, String> {
        let config = fred_config(cfg)?;
        let mut builder = Builder::from_config(config);
        builder
            .with_performance_config(|p| {
                p.default_command_timeout = cfg.timeout;
            })
            .with_connection_config(|c| {
                c.connection_timeout = cfg.timeout.max(Duration::from_millis(500));
                c.internal_command_timeout = cfg.timeout.max(Duration::from_secs(1));
                c.max_command_attempts = 2;
                c.tcp.nodelay = Some(true);
            })
            // Reconnect for ever, quickly at first: Redis coming back is recovery, with no
            // gateway restart.
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
        let pool = builder
            .build_pool(cfg.pool_size.max(1))
            .map_err(|e| format!("session.redis: {e}"))?;
        let subscriber = builder
            .build_subscriber_client()
            .map_err(|e| format!("session.redis: {e}"))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("authgate-redis")
            .enable_all()
            .build()
            .map_err(|e| format!("session.redis: cannot start its runtime: {e}"))?;
        let state = Arc::new(State {
            healthy: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        });
        let keys = Keys::new(&cfg.key_prefix);
        let channel = keys.channel();
        let timeout = cfg.timeout;
        let watch = match &cfg.topology {
            Topology::Sentinel {
                service_name,
                nodes,
            } => Some(SentinelWatch::new(service_name, nodes, cfg)?),
            _ => None,
        };
        {
            let (pool, state) = (pool.clone(), state.clone());
            rt.spawn(async move {
                let _ = pool.connect_pool();
                drop(subscriber.connect());
                // Pushes: applied as they come.
                let mut messages = subscriber.message_rx();
                tokio::spawn(async move {
                    while let Ok(m) = messages.recv().await {
                        if let Some(text) = m.value.as_str() {
                            on_push(&text);
                        }
                    }
                });
                // A reconnected subscriber must subscribe again (below), and what was read
                // before it did is read again (the epoch).
                let mut reconnects = subscriber.reconnect_rx();
                let s = state.clone();
                tokio::spawn(async move {
                    while reconnects.recv().await.is_ok() {
                        s.subscribed.store(false, Ordering::Release);
                    }
                });
                if let Some(w) = &watch {
                    w.connect();
                }
                watch_health(pool, subscriber, state, watch, channel, timeout).await;
            });
        }
        Ok(Arc::new(Link {
            rt: Background(Some(rt)),
            pool,
            keys,
            timeout,
            state,
        }))
    }

    /// Runs `op` on the Redis runtime, waiting at most the configured timeout.
    pub(crate) async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Pool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, fred::error::Error>> + Send + 'static,
        T: Send + 'static,
    {
        let Some(rt) = self.rt.handle() else {
            return Err(StoreError::Unavailable("Redis runtime stopped".into()));
        };
        let pool = self.pool.clone();
        let task = rt.spawn(async move { op(pool).await });
        let failure = match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(Ok(v))) => return Ok(v),
            Ok(Ok(Err(e))) => e.to_string(),
            Ok(Err(e)) => format!("task failed: {e}"),
            Err(_) => format!("no answer within {:?}", self.timeout),
        };
        self.state.errors.fetch_add(1, Ordering::Relaxed);
        self.state.healthy.store(false, Ordering::Release);
        log::warn!("session store: Redis {what} failed: {failure}");
        Err(StoreError::Unavailable(format!("Redis {what}: {failure}")))
    }

    pub(crate) fn healthy(&self) -> bool {
        self.state.healthy.load(Ordering::Acquire)
    }

    /// Changes whenever pushes may have been missed (see `State::epoch`); 0 until the first
    /// subscription.
    pub(crate) fn epoch(&self) -> u64 {
        self.state.epoch.load(Ordering::Acquire)
    }

    /// Pushes arrive: a revocation elsewhere reaches this process within moments.
    pub(crate) fn subscribed(&self) -> bool {
        self.state.subscribed.load(Ordering::Acquire)
    }

    pub(crate) fn errors(&self) -> u64 {
        self.state.errors.load(Ordering::Relaxed)
    }
}

/// Health, subscription and (Sentinel) the primary's address, twice a second, for ever.
async fn watch_health(
    pool: Pool,
    subscriber: fred::clients::SubscriberClient,
    state: Arc<State>,
    watch: Option<SentinelWatch>,
    channel: String,
    timeout: Duration,
) {
    // Health, subscription and (Sentinel) the primary's address, twice a second.
    loop {
        if let Some(w) = &watch {
            w.follow(&pool, &subscriber).await;
        }
        let ok = matches!(
            tokio::time::timeout(timeout, pool.next().ping::<String>(None)).await,
            Ok(Ok(_))
        );
        let was = state.healthy.swap(ok, Ordering::AcqRel);
        if was != ok {
            if ok {
                log::info!("session store: Redis answers again");
            } else {
                log::warn!("session store: Redis does not answer");
            }
        }
        if !ok {
            state.subscribed.store(false, Ordering::Release);
        } else if !state.subscribed.load(Ordering::Acquire) {
            let sub = tokio::time::timeout(timeout, subscriber.subscribe(channel.clone())).await;
            if matches!(sub, Ok(Ok(()))) {
                state.epoch.fetch_add(1, Ordering::AcqRel);
                state.subscribed.store(true, Ordering::Release);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
