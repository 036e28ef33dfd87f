//! Wiring only: arguments → Config → pingora Server → services → run.

use std::path::PathBuf;
use std::process::ExitCode;

use authgate::config::Config;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

const USAGE: &str = "usage: authgate [run|check|version] [-c gateway.yaml]
  run     serve (default)
  check   validate the configuration, list every error, exit non-zero if any
  version print the version";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut command = "run".to_string();
    let mut path = PathBuf::from("gateway.yaml");
    while let Some(a) = args.next() {
        match a.as_str() {
            "-c" | "--config" => match args.next() {
                Some(p) => path = PathBuf::from(p),
                None => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "run" | "check" | "version" => command = a,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("unknown argument {a:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if command == "version" {
        println!("authgate {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{}: {errors}", path.display());
            return ExitCode::from(1);
        }
    };
    authgate::logging::init(cfg.log_format);
    for w in &cfg.warnings {
        log::warn!("{}: warning: {w}", path.display());
    }
    if command == "check" {
        println!(
            "{}: OK ({} route(s), {} provider(s), {} warning(s))",
            path.display(),
            cfg.routes.len(),
            cfg.providers.len(),
            cfg.warnings.len()
        );
        return ExitCode::SUCCESS;
    }
    let app = match authgate::build(cfg.clone(), path.clone()) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };

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

    // Every connection's request heads must arrive within server.request_header_timeout.
    let mut proxy = Service::new(
        "authgate proxy".to_string(),
        authgate::head_deadline::HeadDeadline {
            inner: std::sync::Arc::new(pingora::proxy::http_proxy(
                &server.configuration,
                app.gateway,
            )),
            limit: cfg.request_header_timeout,
            metrics: app.metrics.clone(),
        },
    );
    let certs = match &cfg.tls {
        Some(tls) => match authgate::tls::CertStore::new(tls, app.metrics.clone()) {
            Ok(store) => Some((tls, store)),
            Err(e) => {
                eprintln!("cannot start: tls: {e}");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    for addr in &cfg.listen {
        match &certs {
            Some((tls, store)) => match store.settings(tls) {
                Ok(settings) => proxy.add_tls_with_settings(&addr.to_string(), None, settings),
                Err(e) => {
                    eprintln!("cannot start: tls: {e}");
                    return ExitCode::from(1);
                }
            },
            None => proxy.add_tcp(&addr.to_string()),
        }
    }
    let mut admin = Service::new("authgate admin".to_string(), app.admin);
    admin.add_tcp(&cfg.admin_listen.to_string());
    let refresher = background_service("idp metadata", app.refresher);
    let reloader = background_service("config reload", app.reloader);

    server.add_service(proxy);
    server.add_service(admin);
    if let Some((tls, store)) = certs {
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
    server.add_service(refresher);
    server.add_service(reloader);
    log::info!(
        "authgate {} listening on {:?} (admin {}), public URL {}",
        env!("CARGO_PKG_VERSION"),
        cfg.listen,
        cfg.admin_listen,
        cfg.public_url
    );
    server.run_forever()
}
