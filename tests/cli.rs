//! The `authgate check` command on real files: every error listed with its path, non-zero exit.

mod common;

use std::process::Command;

use common::assert_config_errors;

fn check(yaml: &str, envs: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    common::write_file(&path, yaml);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authgate"));
    cmd.arg("check")
        .arg("-c")
        .arg(&path)
        .env_remove("AUTHGATE_SESSION_SECRET");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn broken_config_lists_every_error_with_its_path() {
    let (ok, out) = check(
        r#"
listen: ["0.0.0.0:99999"]
public_url: "http://gw.example/app"
providers:
  - name: "bad name"
    type: oidc
    issuer: "not a url"
    client_id: x
    client_secret: "${NOPE_NOT_SET}"
  - name: saml-one
    type: samlx
routes:
  - upstream: "127.0.0.1:3000"
    provider: missing
  - path_prefix: "/_authgate/x"
    upstream: "127.0.0.1:3000/path"
    provider: saml-one
    publik: true
session:
  secret: tooshort
  idle_timeout: 5
  store: redis-maybe
headers:
  user: "X Auth User"
"#,
        &[],
    );
    assert!(!ok, "check must fail:\n{out}");
    for path in [
        "listen[0]",
        "public_url",
        "providers[0].name",
        "providers[0].issuer",
        "providers[0].client_secret",
        "providers[1].type",
        "routes[0].provider",
        "routes[1].path_prefix",
        "routes[1].upstream",
        "routes[1].publik",
        "session.secret",
        "session.idle_timeout",
        "session.store",
        "headers.user",
    ] {
        assert!(
            out.contains(&format!("  - {path}: ")),
            "no error for {path} in:\n{out}"
        );
    }
    assert!(out.contains("NOPE_NOT_SET is not set"), "{out}");
}

#[test]
fn shipped_gateway_yaml_is_valid() {
    let yaml =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.yaml")).unwrap();
    let (ok, out) = check(
        &yaml,
        &[
            ("DEMO_CLIENT_SECRET", "x"),
            (
                "AUTHGATE_SESSION_SECRET",
                "0123456789abcdef0123456789abcdef0123",
            ),
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("OK (3 route(s), 1 provider(s), 0 warning(s))"),
        "{out}"
    );
    // Without the session secret in the environment, it says which variable is missing.
    let (ok, out) = check(&yaml, &[("DEMO_CLIENT_SECRET", "x")]);
    assert!(!ok);
    assert!(
        out.contains("session.secret: environment variable AUTHGATE_SESSION_SECRET is not set"),
        "{out}"
    );
}

#[test]
fn yaml_syntax_error_names_the_line() {
    let (ok, out) = check("listen: [\n  - oops: : :\n", &[]);
    assert!(!ok);
    assert!(out.contains("line "), "{out}");
}

#[test]
fn request_reading_settings_are_checked_all_at_once() {
    let (ok, out) = check(
        r#"
listen: ["127.0.0.1:8080"]
public_url: "http://gw.example"
trusted_proxies: ["10.0.0.0/8", "not-a-range"]
server:
  request_header_timeout: 0s
forward_auth:
  enabled: true
  dialect: istio
providers:
  - name: idp
    type: oidc
    issuer: "https://idp.example"
    client_id: x
    client_secret: "s"
routes:
  - upstream: "127.0.0.1:3000"
    path_prefix: "/app;x"
  - upstream: "127.0.0.1:3000"
    path_prefix: "/_AUTHGATE/x"
  - upstream: "127.0.0.1:3000"
    path_prefix: "/legacy"
    path_exceptions: [path_parameters, double_decoding]
session:
  secret: "0123456789abcdef0123456789abcdef"
headers:
  strip: ["X-Good", "X-Prefix-*", "bad name"]
"#,
        &[],
    );
    assert!(!ok, "check must fail:\n{out}");
    assert_config_errors(
        &out,
        &[
            ("trusted_proxies[1]", "not an address or range"),
            ("server.request_header_timeout", "more than 0s"),
            ("forward_auth.dialect", "not nginx, traefik, caddy or envoy"),
            ("routes[0].path_prefix", "no %, ;"),
            ("routes[1].path_prefix", "reserved"),
            (
                "routes[2].path_exceptions",
                "unknown exception \"double_decoding\"",
            ),
            ("headers.strip", "\"bad name\""),
        ],
    );
    // forward_auth.trusted_proxies falls back to the top-level list: no error about it.
    assert!(!out.contains("forward_auth.trusted_proxies"), "{out}");
}

/// Over https the session cookie is `__Host-` prefixed (a sibling subdomain cannot plant or
/// shadow it); pending sign-ins keep the unprefixed base (they are scoped to /_authgate/).
#[test]
fn session_cookie_is_host_prefixed_over_https() {
    let yaml = |url: &str, extra: &str| {
        format!(
            "listen: [\"127.0.0.1:8080\"]\npublic_url: \"{url}\"\nproviders:\n  - name: idp\n    type: oidc\n    issuer: \"https://idp.example\"\n    client_id: x\n    client_secret: s\nroutes:\n  - upstream: \"127.0.0.1:3000\"\nsession:\n  secret: \"0123456789abcdef0123456789abcdef\"\n{extra}"
        )
    };
    let env = |_: &str| None;
    let https = authgate::config::Config::parse(&yaml("https://gw.example", ""), &env).unwrap();
    assert_eq!(https.session.cookie_name, "__Host-authgate_session");
    assert_eq!(https.session.base_name(), "authgate_session");
    let off = authgate::config::Config::parse(
        &yaml("https://gw.example", "  host_prefix: false\n"),
        &env,
    )
    .unwrap();
    assert_eq!(off.session.cookie_name, "authgate_session");
    let http = authgate::config::Config::parse(&yaml("http://gw.example", ""), &env).unwrap();
    assert_eq!(http.session.cookie_name, "authgate_session");
}

/// Which providers a route believes, which token versions and algorithms a provider takes:
/// every mistake reported at once with its path.
#[test]
fn provider_trust_settings_are_checked_all_at_once() {
    let (ok, out) = check(
        r#"
listen: ["127.0.0.1:8080"]
public_url: "http://gw.example"
providers:
  - name: org
    type: entra
    tenant: organizations
    allowed_tenants: any
    client_id: x
    client_secret: "s"
    api_audience: "api://x"
    api_token_versions: [1, 3]
    signing_algs: [RS256, none]
  - name: plain
    type: oidc
    issuer: "https://idp.example"
    client_id: x
    client_secret: "s"
    api_token_versions: [1]
routes:
  - upstream: "127.0.0.1:3000"
    providers: [org, nope]
  - upstream: "127.0.0.1:3000"
    provider: org
    providers: [plain]
  - upstream: "127.0.0.1:3000"
    providers: []
  - upstream: "127.0.0.1:3000"
    providers: [plain, plain]
  - upstream: "127.0.0.1:3000"
session:
  secret: "0123456789abcdef0123456789abcdef"
"#,
        &[],
    );
    assert!(!ok, "check must fail:\n{out}");
    assert_config_errors(
        &out,
        &[
            ("providers[0].api_token_versions[1]", "expected 1 or 2"),
            ("providers[0].signing_algs[1]", "\"none\" is not one of"),
            ("providers[1].api_token_versions", "only for type: entra"),
            ("routes[0].providers[1]", "no provider named \"nope\""),
            ("routes[1].providers", "not both"),
            ("routes[2].providers", "at least one"),
            ("routes[3].providers[1]", "listed twice"),
            ("routes[4].provider", "required when more than one provider"),
        ],
    );
}

/// The session's timers and re-checks: every mistake reported at once with its path, and the
/// store a re-check needs named in the sentence.
#[test]
fn session_timers_are_checked_all_at_once() {
    let (ok, out) = check(
        r#"
listen: ["127.0.0.1:8080"]
public_url: "http://gw.example"
providers:
  - name: long
    type: oidc
    issuer: "https://idp.example"
    client_id: x
    client_secret: "s"
    session:
      recheck_every: 9h
      recheck_evry: 5m
  - name: plain
    type: oidc
    issuer: "https://idp.example"
    client_id: x
    client_secret: "s"
  - name: saml
    type: saml
    entity_id: "https://gw.example/saml"
    idp_metadata_url: "https://idp.example/metadata"
    session:
      recheck_every: 9h
      idle_timeout: 10s
routes:
  - upstream: "127.0.0.1:3000"
    providers: [long, plain, saml]
session:
  secret: "0123456789abcdef0123456789abcdef"
  lifetime: 8h
  max_lifetime: 8h
  recheck_every: 10m
  recheck_grace: soon
  on_recheck_failure: maybe
"#,
        &[],
    );
    assert!(!ok, "check must fail:\n{out}");
    assert_config_errors(
        &out,
        &[
            ("session.lifetime", "older name of max_lifetime"),
            ("session.recheck_grace", "expected a duration"),
            ("session.on_recheck_failure", "deny or keep"),
            (
                "session.recheck_every",
                "set session.store: redis (several replicas) or memory (one replica)",
            ),
            (
                "providers[0].session.recheck_every",
                "shorter than the session's max_lifetime",
            ),
            ("providers[0].session.recheck_evry", "unknown key"),
            (
                "providers[2].session.recheck_every",
                "shorter than the session's max_lifetime",
            ),
            ("providers[2].session.idle_timeout", "at least 60s"),
        ],
    );
    // With a store that keeps refresh tokens, the same re-checks are fine (and a SAML
    // provider's, a passive re-authentication, with any store).
    let (ok, out) = check(
        r#"
listen: ["127.0.0.1:8080"]
public_url: "http://gw.example"
providers:
  - name: plain
    type: oidc
    issuer: "https://idp.example"
    client_id: x
    client_secret: "s"
    session:
      max_lifetime: 12h
      recheck_every: 15m
      on_recheck_failure: keep
  - name: saml
    type: saml
    entity_id: "https://gw.example/saml"
    idp_metadata_url: "https://idp.example/metadata"
routes:
  - upstream: "127.0.0.1:3000"
    providers: [plain, saml]
session:
  secret: "0123456789abcdef0123456789abcdef"
  store: memory
  recheck_every: 10m
"#,
        &[],
    );
    assert!(ok, "check must pass:\n{out}");
}

/// Client credentials: exactly one per provider, each checked now, with its path; workload
/// identity takes what AKS sets, and says which variable is missing.
#[test]
fn client_credentials_are_checked_all_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, other) = (
        dir.path().join("c.crt"),
        dir.path().join("c.key"),
        dir.path().join("other.key"),
    );
    let (c, k, _) = common::pki::self_signed_rsa(dir.path(), "c");
    assert_eq!((c, k), (cert.clone(), key.clone()));
    let stranger = openssl::rsa::Rsa::generate(2048).unwrap();
    std::fs::write(&other, stranger.private_key_to_pem().unwrap()).unwrap();
    let provider = |name: &str, lines: &str| {
        format!("  - name: {name}\n    type: oidc\n    issuer: \"https://idp.example\"\n    client_id: x\n{lines}\n")
    };
    let yaml = format!(
        "listen: [\"127.0.0.1:8080\"]\npublic_url: \"http://gw.example\"\nproviders:\n{}{}{}{}{}{}{}{}  - name: wi\n    type: entra\n    workload_identity: true\nroutes:\n  - upstream: \"127.0.0.1:3000\"\n    provider: ok-cert\nsession:\n  secret: \"0123456789abcdef0123456789abcdef\"\n",
        provider("two", "    client_secret: s\n    client_assertion_file: /tmp/t"),
        provider("none-at-all", ""),
        provider("missing", "    client_certificate_file: /nonexistent/c.crt\n    client_key_file: /nonexistent/c.key"),
        provider("mismatch", &format!("    client_certificate_file: \"{}\"\n    client_key_file: \"{}\"", cert.display(), other.display())),
        provider("thumb", &format!("    client_certificate_file: \"{}\"\n    client_key_file: \"{}\"\n    client_certificate_thumbprint: md5", cert.display(), key.display())),
        provider("basic", "    client_auth: basic"),
        provider("half", &format!("    client_certificate_file: \"{}\"", cert.display())),
        provider("ok-cert", &format!("    client_certificate_file: \"{}\"\n    client_key_file: \"{}\"\n    client_certificate_thumbprint: sha256", cert.display(), key.display())),
    );
    let (ok, out) = check(&yaml, &[]);
    assert!(!ok, "check must fail:\n{out}");
    assert_config_errors(
        &out,
        &[
            ("providers[0]", "more than one client credential"),
            ("providers[1]", "needs a client credential"),
            ("providers[2].client_certificate_file", "/nonexistent/c.crt"),
            (
                "providers[3].client_certificate_file",
                "is not the key of the certificate",
            ),
            (
                "providers[4].client_certificate_thumbprint",
                "is not sha1 or sha256",
            ),
            ("providers[5].client_auth", "only none is written here"),
            ("providers[6].client_key_file", "is required"),
            (
                "providers[8].client_id",
                "$AZURE_CLIENT_ID, which is not set",
            ),
            ("providers[8].tenant", "$AZURE_TENANT_ID, which is not set"),
            (
                "providers[8].client_assertion_file",
                "$AZURE_FEDERATED_TOKEN_FILE",
            ),
        ],
    );
    assert!(!out.contains("providers[7]"), "the good one: {out}");

    // With AKS's variables, workload identity needs nothing more; a public client passes
    // with a warning that says what it trades away.
    let yaml = "listen: [\"127.0.0.1:8080\"]\npublic_url: \"http://gw.example\"\nproviders:\n  - name: wi\n    type: entra\n    workload_identity: true\n  - name: public\n    type: oidc\n    issuer: \"https://idp.example\"\n    client_id: spa\n    client_auth: none\nroutes:\n  - upstream: \"127.0.0.1:3000\"\n    provider: wi\nsession:\n  secret: \"0123456789abcdef0123456789abcdef\"\n";
    let envs = [
        ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
        ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            "/var/run/secrets/azure/tokens/azure-identity-token",
        ),
    ];
    let (ok, out) = check(yaml, &envs);
    assert!(ok, "{out}");
    assert!(
        out.contains("providers[1].client_auth") && out.contains("a public client"),
        "{out}"
    );
}

/// Every home-realm mistake at once, with its path: bad patterns, a domain on two providers,
/// tenant maps where no tenant choice exists or outside `allowed_tenants`, an unknown default.
#[test]
fn home_realm_mistakes_are_checked_all_at_once() {
    const A: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const B: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";
    let yaml = format!(
        "listen: [\"127.0.0.1:8080\"]\npublic_url: \"http://gw.example\"\nproviders:
  - name: org
    type: entra
    tenant: organizations
    client_id: x
    client_secret: s
    allowed_tenants: [\"{A}\"]
    domains:
      contoso.com: \"{A}\"
      fabrikam.com: \"{B}\"
      northwind.com: not-a-guid
      \"*.com\": \"{A}\"
  - name: single
    type: entra
    tenant: \"{A}\"
    client_id: x
    client_secret: s
    domains: {{contoso.net: \"{A}\"}}
  - name: plain
    type: oidc
    issuer: \"https://idp.example\"
    client_id: x
    client_secret: s
    domains: [contoso.com, \"*.contoso.com\", \"*\", \"contoso .org\", \"*.contoso.com\", 7]
  - name: listed
    type: saml
    sp_entity_id: \"https://gw.example/sp\"
    idp_metadata_url: \"https://idp.example/md\"
    domains: example.edu
routes:
  - upstream: \"127.0.0.1:3000\"
    providers: [org, plain, listed]
home_realm:
  default_provider: nobody
  remember: 0s
  colour: blue
session:
  secret: \"0123456789abcdef0123456789abcdef\"
"
    );
    let (ok, out) = check(&yaml, &[]);
    assert!(!ok, "check must fail:\n{out}");
    assert_config_errors(
        &out,
        &[
            (
                "providers[0].domains.fabrikam.com",
                "is not in this provider's allowed_tenants",
            ),
            (
                "providers[0].domains.northwind.com",
                "is not a tenant ID (GUID)",
            ),
            ("providers[0].domains.*.com", "is not a domain name"),
            (
                "providers[1].domains.contoso.net",
                "tenant: organizations or common",
            ),
            ("providers[2].domains[2]", "is not a domain name"),
            ("providers[2].domains[3]", "is not a domain name"),
            ("providers[2].domains[5]", "expected a domain name"),
            ("providers[2].domains", "*.contoso.com is listed twice"),
            (
                "providers[2].domains",
                "contoso.com is already listed by provider \"org\"",
            ),
            ("providers[3].domains", "expected a list of domains"),
            (
                "home_realm.default_provider",
                "no provider named \"nobody\"",
            ),
            ("home_realm.remember", "must be between 1s and 400d"),
            ("home_realm.colour", "unknown key"),
        ],
    );

    // Domains no route can use pass, with a warning that says what would use them.
    let yaml = "listen: [\"127.0.0.1:8080\"]\npublic_url: \"http://gw.example\"\nproviders:\n  - name: plain\n    type: oidc\n    issuer: \"https://idp.example\"\n    client_id: x\n    client_secret: s\n    domains: [contoso.com]\nroutes:\n  - upstream: \"127.0.0.1:3000\"\nhome_realm:\n  remember: 30d\nsession:\n  secret: \"0123456789abcdef0123456789abcdef\"\n";
    let (ok, out) = check(yaml, &[]);
    assert!(ok, "{out}");
    assert_config_errors(&out, &[("providers", "no route asks for an address")]);
}
