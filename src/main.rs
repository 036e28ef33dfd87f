//! Wiring only: arguments → Config → pingora Server → services → run.

use std::path::PathBuf;
use std::process::ExitCode;

use authgate::config::Config;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

/// The binary's allocator (feature `jemalloc`, on by default): under load glibc's malloc cost
/// the gateway ~10% of its requests a second (BENCHMARKS.md, thirteenth round).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Named by `authgate version`.
const ALLOCATOR_NAME: &str = if cfg!(feature = "jemalloc") {
    "jemalloc"
} else {
    "system malloc"
};

const USAGE: &str = "usage: authgate [run|check|version] [-c gateway.yaml]
       authgate explain [-c gateway.yaml] [--provider NAME] [--at RFC3339-TIME] [INPUT | -]
  run     serve (default)
  check   validate the configuration, list every error, exit non-zero if any
  explain show every check the gateway makes on INPUT (a base64 SAMLResponse, an ID or
          access token, or the URL the IdP redirected to with error=...), passed or
          failed, with the Entra setting to change; INPUT - (or none) reads stdin;
          exit 0 if the gateway would accept it, 1 if not
  version print the version";

/// What the command line asks for.
struct Args {
    command: String,
    path: PathBuf,
    provider: Option<String>,
    at: Option<String>,
    input: Option<String>,
}

/// Reads the arguments, or the exit code to leave with (help printed, or a usage error).
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, ExitCode> {
    let mut out = Args {
        command: "run".to_string(),
        path: PathBuf::from("gateway.yaml"),
        provider: None,
        at: None,
        input: None,
    };
    while let Some(a) = args.next() {
        let explain = out.command == "explain";
        match a.as_str() {
            "--provider" | "--at" if explain => match args.next() {
                Some(v) if a == "--provider" => out.provider = Some(v),
                Some(v) => out.at = Some(v),
                None => {
                    eprintln!("{a} needs a value\n{USAGE}");
                    return Err(ExitCode::from(2));
                }
            },
            "-c" | "--config" => match args.next() {
                Some(p) => out.path = PathBuf::from(p),
                None => {
                    eprintln!("{USAGE}");
                    return Err(ExitCode::from(2));
                }
            },
            "run" | "check" | "version" | "explain" => out.command = a,
            _ if explain && out.input.is_none() => out.input = Some(a),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Err(ExitCode::SUCCESS);
            }
            _ => {
                eprintln!("unknown argument {a:?}\n{USAGE}");
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(code) => return code,
    };
    if args.command == "version" {
        println!(
            "authgate {} (allocator: {ALLOCATOR_NAME})",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    let path = args.path;
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{}: {errors}", path.display());
            return ExitCode::from(1);
        }
    };
    if args.command == "explain" {
        return explain(
            &cfg,
            args.provider.as_deref(),
            args.at.as_deref(),
            args.input.as_deref(),
        );
    }
    authgate::logging::init(cfg.log_format);
    for w in &cfg.warnings {
        log::warn!("{}: warning: {w}", path.display());
    }
    if args.command == "check" {
        println!(
            "{}: OK ({} route(s), {} provider(s), {} warning(s))",
            path.display(),
            cfg.routes.len(),
            cfg.providers.len(),
            cfg.warnings.len()
        );
        return ExitCode::SUCCESS;
    }
    match serve(cfg, path) {
        Ok(never) => match never {},
        Err(why) => {
            eprintln!("cannot start: {why}");
            ExitCode::from(1)
        }
    }
}

/// Builds the gateway and its services, then serves until the process is stopped.
fn serve(cfg: Config, path: PathBuf) -> Result<std::convert::Infallible, String> {
    let app = authgate::build(cfg.clone(), path).map_err(|e| e.to_string())?;
    let conf = ServerConf {
        threads: cfg.threads,
        // Each worker thread keeps its own connections: no cross-thread wake-ups per request.
        work_stealing: false,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(cfg.shutdown_grace.as_secs()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut http = pingora::proxy::http_proxy(&server.configuration, app.gateway);
    let mut options = pingora::apps::HttpServerOptions::default();
    // Header names reach the upstream in lower case (as over HTTP/2), so the request is read
    // without a case map to fill and keep in step (vendor/pingora-core/PATCHES.md).
    options.discard_request_header_case = true;
    if let Some(tls) = &cfg.tls {
        options.h2_idle_timeout = Some(tls.http2_idle_timeout);
    }
    http.server_options = Some(options);
    // Every connection's request heads must arrive within server.request_header_timeout.
    let mut proxy = Service::new(
        "authgate proxy".to_string(),
        authgate::head_deadline::HeadDeadline {
            inner: std::sync::Arc::new(http),
            limit: cfg.request_header_timeout,
            metrics: app.metrics.clone(),
        },
    );
    let certs = match &cfg.tls {
        Some(tls) => Some(
            authgate::tls::CertStore::new(tls, app.metrics.clone())
                .map_err(|e| format!("tls: {e}"))?,
        ),
        None => None,
    };
    for addr in &cfg.listen {
        match &certs {
            Some(store) => {
                let settings = store.settings().map_err(|e| format!("tls: {e}"))?;
                proxy.add_tls_with_settings(&addr.to_string(), None, settings)
            }
            None => proxy.add_tcp(&addr.to_string()),
        }
    }
    let mut admin = Service::new("authgate admin".to_string(), app.admin);
    admin.add_tcp(&cfg.admin_listen.to_string());
    server.add_service(proxy);
    server.add_service(admin);
    if let (Some(tls), Some(store)) = (&cfg.tls, certs) {
        server.add_service(background_service(
            "tls certificates",
            authgate::tls::CertWatcher(store),
        ));
        if !tls.redirect_listen.is_empty() {
            let mut redirect = Service::new(
                "authgate https redirect".to_string(),
                pingora::apps::http_app::HttpServer::new_app(
                    authgate::https_redirect::HttpsRedirect::new(&cfg.public_url),
                ),
            );
            for addr in &tls.redirect_listen {
                redirect.add_tcp(&addr.to_string());
            }
            server.add_service(redirect);
        }
    }
    server.add_service(background_service("idp metadata", app.refresher));
    server.add_service(background_service("assertion keys", app.key_watcher));
    server.add_service(background_service("config reload", app.reloader));
    log::info!(
        "authgate {} listening on {:?} (admin {}), public URL {}",
        env!("CARGO_PKG_VERSION"),
        cfg.listen,
        cfg.admin_listen,
        cfg.public_url
    );
    server.run_forever()
}

/// `authgate explain`: reads the input, runs the checks on a small runtime of its own.
fn explain(
    cfg: &Config,
    provider: Option<&str>,
    at: Option<&str>,
    input: Option<&str>,
) -> ExitCode {
    let at = match at.map(chrono::DateTime::parse_from_rfc3339) {
        None => None,
        Some(Ok(t)) => Some(t.with_timezone(&chrono::Utc)),
        Some(Err(e)) => {
            eprintln!("--at: not an RFC 3339 time (2024-03-21T12:58:00Z): {e}");
            return ExitCode::from(2);
        }
    };
    let raw = match input {
        Some(s) if s != "-" => s.to_string(),
        _ => {
            let mut s = String::new();
            // The largest input worth reading is a SAML response (256 KiB, base64).
            let limit = 512 * 1024;
            use std::io::Read;
            if let Err(e) = std::io::stdin().take(limit).read_to_string(&mut s) {
                eprintln!("cannot read the input: {e}");
                return ExitCode::from(2);
            }
            s
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(authgate::explain::explain(cfg, provider, &raw, at)) {
        Ok(report) => {
            print!("{report}");
            if report.accepted() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("explain: {e}");
            ExitCode::from(2)
        }
    }
}
