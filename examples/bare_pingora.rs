//! The physical limit of authgate's architecture, for the load benchmark: a pingora
//! pass-through whose filters do nothing, with the same pingora version and the same server
//! options as `authgate run` (threads, no work stealing).
//!
//! Usage: bare_pingora <listen addr> <upstream addr> [threads, 0 = one per core]
//!
//! It has authgate's allocator too (feature `jemalloc`): the comparison is of the gateway's
//! work, not of two allocators.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Bare {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: bare_pingora <listen addr> <upstream addr> [threads]");
        std::process::exit(2);
    };
    let threads = args
        .get(3)
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|t| *t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let conf = ServerConf {
        threads,
        work_stealing: false,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = Service::new(
        "bare pingora".to_string(),
        pingora::proxy::http_proxy(
            &server.configuration,
            Bare {
                upstream: upstream.clone(),
            },
        ),
    );
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever()
}
