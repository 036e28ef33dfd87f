//! Real Redis for the tests (Debian's `redis-server` 7): standalone, a 3-master Cluster made
//! with `redis-cli --cluster create`, and a primary with a replica watched by 3 Sentinels.
//! Every server runs on loopback in its own directory, without persistence, and is stopped
//! on drop.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{free_port, wait_for_port, write_file, Proc};

pub struct RedisServer {
    pub port: u16,
    proc: Option<Proc>,
    args: Vec<String>,
    dir: std::path::PathBuf,
}

impl RedisServer {
    /// Starts `redis-server` on `port` with `extra` config lines (a config file in `dir`).
    pub fn start(dir: &Path, port: u16, extra: &str) -> RedisServer {
        Self::start_as(dir, port, extra, false)
    }

    /// As `start`; `sentinel`: as a Sentinel (`--sentinel`, which rewrites its config file).
    pub fn start_as(dir: &Path, port: u16, extra: &str, sentinel: bool) -> RedisServer {
        let here = dir.join(format!("r{port}"));
        std::fs::create_dir_all(&here).expect("redis dir");
        let conf = here.join("redis.conf");
        write_file(
            &conf,
            &format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\nsave \"\"\nappendonly no\ndir {}\nlogfile {}/redis.log\n{extra}\n",
                here.display(),
                here.display()
            ),
        );
        let mut args = vec![conf.display().to_string()];
        if sentinel {
            args.push("--sentinel".into());
        }
        let mut s = RedisServer {
            port,
            proc: None,
            args,
            dir: here,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server (apt install redis-server)");
        self.proc = Some(Proc::logging_to(
            child,
            "redis-server",
            self.dir.join("redis.log"),
        ));
        wait_for_port(self.port, "redis-server");
    }

    /// Stops it (as a crash would: SIGKILL, nothing saved).
    pub fn stop(&mut self) {
        self.proc = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "redis on {} did not stop",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again on the same port (empty: it saved nothing).
    pub fn restart(&mut self) {
        self.spawn();
    }

    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }
}

pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Redis deployment and the `session.redis` YAML (without `key_prefix`) that reaches it.
pub struct Redis {
    pub servers: Vec<RedisServer>,
    pub sentinels: Vec<RedisServer>,
    pub kind: &'static str,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// The `session.redis` mapping's body, indented for `session.redis:`.
    pub fn yaml(&self, prefix: &str) -> String {
        let nodes = |s: &[RedisServer]| {
            s.iter()
                .map(|s| format!("\"127.0.0.1:{}\"", s.port))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let topology = match self.kind {
            "standalone" => format!("url: redis://127.0.0.1:{}/0", self.servers[0].port),
            "cluster" => format!("cluster:\n      nodes: [{}]", nodes(&self.servers)),
            _ => format!(
                "sentinel:\n      service_name: authgate\n      nodes: [{}]",
                nodes(&self.sentinels)
            ),
        };
        format!("    {topology}\n    key_prefix: \"{prefix}\"\n    cache_ttl: 2s\n")
    }

    /// The same as a typed configuration, for the store conformance suite.
    pub fn config(&self, prefix: &str) -> authgate::session::RedisConfig {
        use authgate::session::{RedisConfig, Topology};
        let nodes = |s: &[RedisServer]| {
            s.iter()
                .map(|s| ("127.0.0.1".to_string(), s.port))
                .collect::<Vec<_>>()
        };
        RedisConfig {
            topology: match self.kind {
                "standalone" => Topology::Standalone {
                    host: "127.0.0.1".into(),
                    port: self.servers[0].port,
                },
                "cluster" => Topology::Cluster {
                    nodes: nodes(&self.servers),
                },
                _ => Topology::Sentinel {
                    service_name: "authgate".into(),
                    nodes: nodes(&self.sentinels),
                },
            },
            key_prefix: prefix.into(),
            pool_size: 2,
            cache_ttl: Duration::from_secs(2),
            cache_bytes: 8 * 1024 * 1024,
            unavailable_grace: Duration::from_secs(30),
            ..RedisConfig::standalone("127.0.0.1", 0)
        }
    }

    /// The port of the current primary (Sentinel: as the Sentinels say).
    pub fn primary_port(&self) -> u16 {
        if self.kind != "sentinel" {
            return self.servers[0].port;
        }
        let out = cli(
            self.sentinels[0].port,
            &["sentinel", "get-master-addr-by-name", "authgate"],
        );
        out.lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0)
    }
}

pub fn start_standalone() -> Redis {
    start_standalone_with("")
}

/// A standalone Redis with `extra` config lines (`appendonly yes` to survive a crash).
pub fn start_standalone_with(extra: &str) -> Redis {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = RedisServer::start(dir.path(), free_port(), extra);
    Redis {
        servers: vec![server],
        sentinels: Vec::new(),
        kind: "standalone",
        _dir: dir,
    }
}

/// A port for a Cluster node: free, and so is its cluster bus port (port + 10000), which
/// must also stay out of the kernel's ephemeral range (where the tests' own client sockets
/// could take it: a node whose bus port is taken exits, seen once as "did not listen").
fn cluster_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    // From free_port's own sequence (so no two servers of this process get one port), until
    // one has its bus port below `low`: at worst a walk over the upper ports, a few ms.
    for _ in 0..low {
        let port = free_port();
        let bus = u32::from(port) + 10_000;
        if bus < low
            && u16::try_from(bus)
                .is_ok_and(|b| std::net::TcpListener::bind(("127.0.0.1", b)).is_ok())
        {
            return port;
        }
    }
    panic!("no port whose cluster bus port (+10000) is free below {low}");
}

pub fn start_cluster() -> Redis {
    let dir = tempfile::tempdir().expect("tempdir");
    let servers: Vec<RedisServer> = (0..3)
        .map(|_| {
            RedisServer::start(
                dir.path(),
                cluster_port(),
                "cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout 2000",
            )
        })
        .collect();
    let addrs: Vec<String> = servers
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli --cluster create");
    assert!(
        out.status.success(),
        "cluster create: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    for s in &servers {
        while !s.cli(&["cluster", "info"]).contains("cluster_state:ok") {
            assert!(Instant::now() < deadline, "cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Redis {
        servers,
        sentinels: Vec::new(),
        kind: "cluster",
        _dir: dir,
    }
}

pub fn start_sentinel() -> Redis {
    let dir = tempfile::tempdir().expect("tempdir");
    let primary = RedisServer::start(dir.path(), free_port(), "");
    let replica = RedisServer::start(
        dir.path(),
        free_port(),
        &format!("replicaof 127.0.0.1 {}", primary.port),
    );
    let sentinels: Vec<RedisServer> = (0..3)
        .map(|_| {
            RedisServer::start_as(
                dir.path(),
                free_port(),
                &format!(
                    "sentinel monitor authgate 127.0.0.1 {} 2\nsentinel down-after-milliseconds authgate 1000\n\
                     sentinel failover-timeout authgate 5000\nsentinel parallel-syncs authgate 1",
                    primary.port
                ),
                true,
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !replica
        .cli(&["info", "replication"])
        .contains("master_link_status:up")
    {
        assert!(Instant::now() < deadline, "replica did not sync");
        std::thread::sleep(Duration::from_millis(50));
    }
    for s in &sentinels {
        while !cli(s.port, &["sentinel", "replicas", "authgate"])
            .contains(&replica.port.to_string())
        {
            assert!(
                Instant::now() < deadline,
                "sentinel did not see the replica"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Redis {
        servers: vec![primary, replica],
        sentinels,
        kind: "sentinel",
        _dir: dir,
    }
}
