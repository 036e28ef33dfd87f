//! The real peers: the upstream and OpenID provider (node), nginx, SimpleSAMLphp.
#![allow(unused_imports)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::redirect::Policy;
use serde_json::Value;

use super::*;

/// Spawns a node script and waits for its one JSON line on stdout.
///
/// A peer that prints nothing within 30 s is stopped and started again, loudly, up to three
/// starts in all: in CI an oidc-provider has loaded its modules and then never reached its
/// listen callback (once; and once twice in a row, its main thread waiting on a futex), and
/// the test would wait for it until CI's own limit. What the stuck process was doing (each
/// thread's kernel wait channel, and its native stacks from gdb) is printed, so a repeat can
/// be told apart from a gateway bug. A third failure fails the test.
pub fn spawn_node(script: &str, envs: &[(&str, String)], name: &'static str) -> (Proc, Value) {
    let mut why = String::new();
    for attempt in 1..=3 {
        match try_spawn_node(script, envs, name) {
            Ok(started) => return started,
            Err(e) => {
                eprintln!("harness: {e}; start {attempt} of 3 of {script}");
                why = e;
            }
        }
    }
    panic!("{why}")
}

pub fn try_spawn_node(
    script: &str,
    envs: &[(&str, String)],
    name: &'static str,
) -> Result<(Proc, Value), String> {
    let mut cmd = Command::new("node");
    cmd.arg(testenv().join(script))
        .current_dir(testenv())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn node {script}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc::new(child, name);
    // The first line says it is listening. Read it on a thread, so that a peer that never
    // starts is a failure with a reason, not a hang; then keep draining what it prints
    // later (a closed pipe would kill it on its next write).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let first = reader.read_line(&mut line).map(|_| line);
        if tx.send(first).is_err() {
            return;
        }
        let mut sink = String::new();
        while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            eprint!("[{name}] {sink}");
            sink.clear();
        }
    });
    let line = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => return Err(format!("{script} output: {e}")),
        Err(_) => {
            let state = process_state(proc.pid());
            print_native_stacks(proc.pid());
            return Err(format!(
                "{script} (pid {}) printed nothing within 30 s; {state}",
                proc.pid()
            ));
        }
    };
    let info: Value = serde_json::from_str(line.trim())
        .map_err(|e| format!("{script} did not start (printed {line:?}): {e}"))?;
    Ok((proc, info))
}

pub struct Upstream {
    pub proc: Proc,
    pub port: u16,
}

pub fn start_upstream() -> Upstream {
    let (proc, info) = spawn_node("upstream.mjs", &[("PORT", "0".into())], "upstream");
    let port = info["port"].as_u64().expect("port") as u16;
    Upstream { proc, port }
}

pub struct OpenIdProvider {
    pub proc: Proc,
    pub issuer: String,
    pub port: u16,
}

impl OpenIdProvider {
    /// Entra's "instance" for this provider: tenants live under it.
    /// `browser` signs out at the provider itself, not through a gateway: its confirmation
    /// page, then the form it renders (the provider then sends its back-channel logout tokens).
    pub fn sign_out(&self, browser: &Browser) {
        let page = browser.get(&format!("{}/session/end", self.issuer));
        assert_eq!(page.status(), 200);
        let html = page.text().unwrap_or_default();
        let action = form_action(&html).expect("the provider's logout form");
        let action = if action.starts_with("http") {
            action
        } else {
            format!("http://127.0.0.1:{}{action}", self.port)
        };
        let xsrf = input_value(&html, "xsrf").expect("xsrf");
        let done = browser
            .client
            .post(&action)
            .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
            .send()
            .expect("confirm logout");
        assert!(
            done.status().is_redirection() || done.status().is_success(),
            "{}",
            done.status()
        );
    }

    pub fn instance(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An app-only access token from the client-credentials grant in `tenant`, Entra style
    /// (`scope=<resource>/.default`).
    pub fn app_token(&self, tenant: &str, client: &str, resource: &str) -> String {
        let r = api()
            .post(format!("{}/{tenant}/v2.0/token", self.instance()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client),
                ("client_secret", "daemon-secret"),
                ("scope", &format!("{resource}/.default")),
            ])
            .send()
            .expect("token request");
        access_token(r, "client credentials")
    }
}

impl OpenIdProvider {
    /// POSTs `body` to one of the provider's test hooks (`/test/users/<name>`,
    /// `/test/policies`, ...), which must answer 200.
    pub fn hook(&self, path: &str, body: serde_json::Value) {
        let r = api()
            .post(format!("http://127.0.0.1:{}{path}", self.port))
            .json(&body)
            .send()
            .expect("test hook");
        assert_eq!(r.status(), 200, "{path}");
    }
}

impl OpenIdProvider {
    /// A delegated access token for `resource`, as an app gets one for a signed-in user: the
    /// authorization code flow (with PKCE and `resource=`) as `user`, through the provider's
    /// login form, redeemed by the gateway's client at the token endpoint. `redirect_uri` is a
    /// registered one (a gateway callback); the code is taken from it, not followed.
    pub fn user_token(
        &self,
        tenant: &str,
        user: &str,
        redirect_uri: &str,
        resource: &str,
    ) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let verifier = b64.encode(rand_bytes());
        let challenge = b64.encode(openssl::sha::sha256(verifier.as_bytes()));
        let base = format!("{}/{tenant}/v2.0", self.instance());
        let discovery: Value = api()
            .get(format!("{base}/.well-known/openid-configuration"))
            .send()
            .and_then(|r| r.json())
            .expect("discovery");
        let mut auth = reqwest::Url::parse(
            discovery["authorization_endpoint"]
                .as_str()
                .expect("authorization_endpoint"),
        )
        .expect("authorization endpoint");
        auth.query_pairs_mut()
            .append_pair("client_id", CLIENT_ID)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &format!("openid {resource}/access_as_user"))
            .append_pair("resource", resource)
            .append_pair("state", "delegated")
            .append_pair("nonce", "delegated")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let callback = Browser::new().login_until_callback(auth.as_str(), user);
        let callback = reqwest::Url::parse(&callback).expect("callback URL");
        let code = callback
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| panic!("no code in {callback}"));
        let r = api()
            .post(
                discovery["token_endpoint"]
                    .as_str()
                    .expect("token_endpoint"),
            )
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", &verifier),
                ("resource", resource),
            ])
            .send()
            .expect("token request");
        access_token(r, "code redemption")
    }
}

/// The access token of a token endpoint's answer, which must be a 200.
pub fn access_token(r: Response, grant: &str) -> String {
    let status = r.status();
    let body: Value = r.json().expect("token response");
    assert_eq!(status, 200, "{grant} refused: {body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

pub fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    openssl::rand::rand_bytes(&mut b).expect("random bytes");
    b
}

/// Starts the OpenID provider; `port` 0 = ephemeral. Each start has a new signing key.
pub fn start_op(gateway_url: &str, port: u16) -> OpenIdProvider {
    start_op_for(&[gateway_url], "test-idp", port, &[])
}

/// As `start_op`, registering the callback of provider `provider` on each gateway, with
/// extra environment (`GRAPH_DOWN`, ...).
/// The test provider for one gateway at `public`, with its back-channel logout URI
/// registered: the provider then puts `sid` in its ID tokens (as Entra does) and POSTs logout
/// tokens to the gateway.
pub fn start_op_with_sid(public: &str) -> OpenIdProvider {
    start_op_for(
        &[public],
        "test-idp",
        0,
        &[(
            "BACKCHANNEL_LOGOUT_URI",
            format!("{public}/_authgate/backchannel_logout/test-idp"),
        )],
    )
}

pub fn start_op_for(
    gateways: &[&str],
    provider: &str,
    port: u16,
    extra_env: &[(&str, String)],
) -> OpenIdProvider {
    let join = |path: &str| {
        gateways
            .iter()
            .map(|g| format!("{g}{path}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut env = vec![
        ("PORT", port.to_string()),
        ("TENANT_ID", TENANT.into()),
        ("CLIENT_ID", CLIENT_ID.into()),
        ("CLIENT_SECRET", CLIENT_SECRET.into()),
        (
            "REDIRECT_URIS",
            join(&format!("/_authgate/callback/{provider}")),
        ),
        ("POST_LOGOUT_REDIRECT_URIS", join("/_authgate/signed_out")),
    ];
    env.extend(extra_env.iter().cloned());
    let (proc, info) = spawn_node("oidc-provider.mjs", &env, "oidc-provider");
    OpenIdProvider {
        proc,
        issuer: info["issuer"].as_str().expect("issuer").to_string(),
        port: info["port"].as_u64().expect("port") as u16,
    }
}

/// Starts Debian's nginx with `http_body` inside `http { }`, in its own prefix directory.
pub fn start_nginx(port: u16, http_body: &str) -> (Proc, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().display().to_string();
    let conf = format!(
        "worker_processes 1;\nerror_log {p}/error.log info;\npid {p}/nginx.pid;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log {p}/access.log;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n\
         fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n{http_body}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
    let child = Command::new("nginx")
        .args([
            "-p",
            &p,
            "-c",
            &format!("{p}/nginx.conf"),
            "-g",
            "daemon off;",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nginx (apt install nginx)");
    let proc = Proc::logging_to(child, "nginx", dir.path().join("error.log"));
    wait_for_port(port, "nginx");
    (proc, dir)
}

/// Debian's SimpleSAMLphp as a SAML IdP (testenv/simplesamlphp/make-config.sh), served by
/// `php -S` in its own process group (it forks workers), stopped by group on drop.
pub struct SimpleSaml {
    pub port: u16,
    pub base: String,
    pub dir: tempfile::TempDir,
    pgid: u32,
    _proc: Proc,
}

impl Drop for SimpleSaml {
    fn drop(&mut self) {
        // The php server and its forked workers share a process group of their own.
        // (Shelling out `kill -KILL -<pgid>` was parsed as kill(-1): every process.)
        signal_group(self.pgid, libc::SIGKILL);
    }
}

impl SimpleSaml {
    pub fn metadata_url(&self) -> String {
        format!("{}/saml2/idp/metadata.php", self.base)
    }
    /// SHA-1 thumbprint of the IdP's signing certificate, as Entra shows it.
    pub fn cert_sha1(&self) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
            .arg(self.dir.path().join("cert/idp.crt"))
            .output()
            .expect("openssl");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split('=')
            .nth(1)
            .expect("fingerprint")
            .trim()
            .replace(':', "")
    }
}

/// `sp_base`: SP entity IDs are `<sp_base>-<mode>`; `acs_base`: ACS `<acs_base>-<mode>/acs`.
pub fn start_simplesamlphp(sp_base: &str, acs_base: &str) -> SimpleSaml {
    use std::os::unix::process::CommandExt;
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = Command::new(testenv().join("simplesamlphp/make-config.sh"))
        .arg(dir.path())
        .arg(port.to_string())
        .arg(sp_base)
        .arg(acs_base)
        .env("TENANT_ID", TENANT)
        .status()
        .expect("make-config.sh")
        .success();
    assert!(ok, "SimpleSAMLphp config failed");
    let child = Command::new("php")
        .args([
            "-S",
            &format!("127.0.0.1:{port}"),
            "-t",
            "/usr/share/simplesamlphp/www",
        ])
        .env("SIMPLESAMLPHP_CONFIG_DIR", dir.path())
        .env("PHP_CLI_SERVER_WORKERS", "4")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("php (apt install simplesamlphp php-cli php-xml php-mbstring)");
    let pgid = child.id();
    let _proc = Proc::group_leader(child, "simplesamlphp");
    wait_for_port(port, "SimpleSAMLphp");
    SimpleSaml {
        port,
        base: format!("http://127.0.0.1:{port}"),
        dir,
        pgid,
        _proc,
    }
}

/// nginx configured the way ingress-nginx renders the `auth-url`, `auth-signin` and
/// `auth-response-headers` annotations, listening on `front_port`, in front of the app on
/// `app_port`.
pub fn nginx_like_ingress(front_port: u16, gw_port: u16, app_port: u16) -> String {
    let headers = [
        "X-Auth-User",
        "X-Auth-Email",
        "X-Auth-Name",
        "X-Auth-Groups",
        "X-Auth-Roles",
        "X-Auth-Tenant",
        "X-Auth-Provider",
    ];
    let copy: String = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let var = h.to_ascii_lowercase().replace('-', "_");
            format!("      auth_request_set $authHeader{i} $upstream_http_{var};\n      proxy_set_header '{h}' $authHeader{i};\n")
        })
        .collect();
    format!(
        r#"
  server {{
    listen 127.0.0.1:{front_port};
    # nginx.ingress.kubernetes.io/auth-url: http://authgate/_authgate/auth
    location = /_external-auth-Lw {{
      internal;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Forwarded-Proto "";
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Sent-From "nginx-ingress-controller";
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Auth-Request-Redirect $request_uri;
      proxy_pass_request_headers on;
      proxy_pass http://127.0.0.1:{gw_port}/_authgate/auth;
    }}
    # nginx.ingress.kubernetes.io/auth-signin: https://$host/_authgate/sign_in?rd=...
    location @authgate-signin {{
      internal;
      add_header Set-Cookie $auth_cookie;
      return 302 $scheme://$http_host/_authgate/sign_in?rd=$scheme://$http_host$request_uri;
    }}
    # The gateway's own endpoints (callback, sign-in, sign-out) on the app's host.
    location /_authgate/ {{
      proxy_set_header Host $http_host;
      proxy_pass http://127.0.0.1:{gw_port};
    }}
    location / {{
      auth_request /_external-auth-Lw;
      auth_request_set $auth_cookie $upstream_http_set_cookie;
      add_header Set-Cookie $auth_cookie;
      # nginx.ingress.kubernetes.io/auth-response-headers: X-Auth-User, ...
{copy}      error_page 401 = @authgate-signin;
      proxy_set_header Host $http_host;
      proxy_pass http://127.0.0.1:{app_port};
    }}
  }}
"#
    )
}
