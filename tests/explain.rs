//! `authgate explain` on the real Entra captures in tests/fixtures: the 2024 SAML response
//! (in its validity window and long after, with a wrong certificate, a wrong Identifier, and
//! altered), the AADSTS50105 error redirect, and a real v1.0 access token whose signature is
//! verified against its real key served by a fake Entra instance. Each verdict is checked
//! check by check, with the setting to change.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::json;

use common::rogue_op::{b64, Answer, RogueOp};
use common::{ConfigBuilder, RouteSpec};

fn fixture(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const ENTRA_TID: &str = "603e9946-79fd-42bc-bae2-2abda19cb695";
const ENTRA_SP: &str = "spn:95210223-1471-47de-8f76-c0f420c1738f";
/// SHA-1 thumbprint of the certificate that signed the 2024 response (as Entra shows it).
const ENTRA_CERT_SHA1: &str = "5D:1B:E4:A3:C3:FB:03:75:1A:59:29:D4:ED:B3:3D:9D:3D:0C:8E:10";
const IN_WINDOW: &str = "2024-03-21T12:58:00Z";

/// SHA-1 thumbprint of another real Entra signing certificate (2017).
fn other_sha1() -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/saml/entra/aad_accesscontrol_2017_cert.pem"),
        )
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .rsplit('=')
        .next()
        .expect("fingerprint")
        .to_string()
}

fn saml_config(dir: &Path, sp: &str, fingerprint: &str) -> PathBuf {
    let yaml = ConfigBuilder::new("https://files.example.com")
        .saml("entra-saml", sp)
        .provider_lines(&format!(
            "    idp_entity_id: \"https://sts.windows.net/{ENTRA_TID}/\"\n    idp_sso_url: \"https://login.microsoftonline.com/{ENTRA_TID}/saml2\"\n    idp_cert_fingerprints: [\"{fingerprint}\"]"
        ))
        .route(RouteSpec::new("app", "127.0.0.1:3000"))
        .yaml();
    // One file per setting: a test compares several.
    let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let path = dir.join(format!("gateway-{n}.yaml"));
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// Runs `authgate explain -c <config> [args]` with `input` on stdin: (exit code, output).
fn explain(config: &Path, args: &[&str], input: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("explain")
        .arg("-c")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("authgate explain");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .ok(); // an input refused early is not read to its end
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The line of check `name`, which must carry `mark`.
fn line<'a>(out: &'a str, mark: &str, name: &str) -> &'a str {
    let prefix = format!("[{mark}] {name}:");
    out.lines()
        .find(|l| l.trim_start().starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} line in:\n{out}"))
}

/// The `fix:` line right after check `name`.
fn fix_of<'a>(out: &'a str, name: &str) -> &'a str {
    let mut lines = out.lines();
    while let Some(l) = lines.next() {
        if l.trim_start().starts_with(&format!("[FAIL] {name}:")) {
            return lines
                .next()
                .filter(|f| f.trim_start().starts_with("fix:"))
                .unwrap_or_else(|| panic!("no fix for {name}:\n{out}"));
        }
    }
    panic!("no failed {name} in:\n{out}");
}

fn count(out: &str, mark: &str) -> usize {
    out.lines()
        .filter(|l| l.trim_start().starts_with(&format!("[{mark}]")))
        .count()
}

#[test]
fn the_real_entra_saml_response_is_explained_check_by_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let response = fixture("saml/entra/entra2024_spring_demo_response.b64");
    let acs = "https://files.example.com/_authgate/saml/entra-saml/acs";

    // In its validity window: every check passes except the Reply URL (the capture was posted
    // to another app's ACS), and the fix names this gateway's ACS exactly.
    let good = saml_config(dir.path(), ENTRA_SP, ENTRA_CERT_SHA1);
    let (code, out) = explain(&good, &["--at", IN_WINDOW], &response);
    assert_eq!(code, 1, "{out}");
    assert_eq!(count(&out, "FAIL"), 1, "{out}");
    assert!(
        line(&out, "FAIL", "subject confirmation")
            .contains("got \"http://localhost:8080/saml/SSO\""),
        "{out}"
    );
    assert!(
        fix_of(&out, "subject confirmation").contains(&format!(
            "Reply URL (Assertion Consumer Service URL): exactly {acs}"
        )),
        "{out}"
    );
    for pass in [
        "structure",
        "IdP status",
        "signature",
        "issuer",
        "InResponseTo",
        "time window",
        "audience",
        "NameID",
        "user key",
    ] {
        line(&out, "PASS", pass);
    }
    assert!(
        line(&out, "INFO", "identity").contains(&format!("tenant \"{ENTRA_TID}\"")),
        "{out}"
    );
    assert!(
        line(&out, "INFO", "groups").contains("Add a group claim"),
        "{out}"
    );
    assert!(
        out.contains("verdict: the gateway would refuse this (1 check(s) failed)"),
        "{out}"
    );

    // The same response today: expired as well, and both said at once.
    let (code, out) = explain(&good, &[], &response);
    assert_eq!(code, 1);
    assert_eq!(count(&out, "FAIL"), 2, "{out}");
    assert!(
        line(&out, "FAIL", "time window").contains("expired: NotOnOrAfter 2024-03-21T13:57:27Z"),
        "{out}"
    );
    assert!(fix_of(&out, "time window").contains("clock"), "{out}");

    // Trusting another certificate: the signature fails, the certificate that did sign is
    // named by the thumbprint Entra shows, and the other checks still run.
    let other = saml_config(dir.path(), ENTRA_SP, &other_sha1());
    let (_, out) = explain(&other, &["--at", IN_WINDOW], &response);
    let sig = line(&out, "FAIL", "signature");
    assert!(sig.contains(&ENTRA_CERT_SHA1.replace(':', "")), "{out}");
    assert!(
        fix_of(&out, "signature").contains("SAML Certificates"),
        "{out}"
    );
    line(&out, "PASS", "audience");

    // A wrong Identifier: the audience fails with the exact value to enter (and a trailing
    // slash matters).
    let slash = saml_config(dir.path(), &format!("{ENTRA_SP}/"), ENTRA_CERT_SHA1);
    let (_, out) = explain(&slash, &["--at", IN_WINDOW], &response);
    assert!(
        line(&out, "FAIL", "audience").contains(&format!("got [\"{ENTRA_SP}\"]")),
        "{out}"
    );
    assert!(
        fix_of(&out, "audience")
            .contains(&format!("Identifier (Entity ID): add exactly {ENTRA_SP}/")),
        "{out}"
    );
    assert_eq!(count(&out, "FAIL"), 2, "audience and Reply URL: {out}");

    // Altered (the NameID changed): no trusted signature, nothing after it is believed.
    let xml = fixture("saml/entra/entra2024_spring_demo_response.xml");
    let altered = xml.replace(
        "V6nCP3nUyEPB-MjBnY5I8hucjll7hJ9IYhsJ5zNdkcs",
        "V6nCP3nUyEPB-MjBnY5I8hucjll7hJ9IYhsJ5zNdkcX",
    );
    assert_ne!(altered, xml);
    let b64 = base64::engine::general_purpose::STANDARD.encode(altered);
    let (code, out) = explain(&good, &["--at", IN_WINDOW], &b64);
    assert_eq!(code, 1);
    assert!(line(&out, "FAIL", "signature").contains("altered"), "{out}");
    line(&out, "SKIP", "audience");
    assert!(!out.contains("[INFO] identity"), "{out}");

    // The XML itself, and the form value still URL-encoded, are read too.
    let (_, out) = explain(&good, &["--at", IN_WINDOW], &xml);
    line(&out, "PASS", "signature");
    let encoded = response
        .trim()
        .replace('+', "%2B")
        .replace('=', "%3D")
        .replace('/', "%2F");
    let (_, out) = explain(&good, &["--at", IN_WINDOW], &encoded);
    line(&out, "PASS", "signature");
}

#[test]
fn an_aadsts_redirect_names_the_portal_setting_and_the_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = saml_config(dir.path(), ENTRA_SP, ENTRA_CERT_SHA1);
    let url = fixture("oidc/errors/nais_device_AADSTS50105_redirect.url.txt");
    // As an argument, not stdin.
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["explain", "-c"])
        .arg(&config)
        .arg(url.trim())
        .output()
        .expect("explain");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        line(&text, "FAIL", "sign-in").contains("AADSTS50105: The signed in user"),
        "{text}"
    );
    assert!(
        fix_of(&text, "sign-in").contains("Users and groups"),
        "{text}"
    );
    assert!(
        line(&text, "INFO", "what the user sees").contains("403"),
        "{text}"
    );
    assert!(
        line(&text, "INFO", "Correlation ID").contains("ba8b945c-1cd8-4344-b355-b40c63174248"),
        "{text}"
    );
}

/// The JWKS of a fake Entra instance: the real key of the v1 token's kid.
fn v1_jwks() -> serde_json::Value {
    let pem = fixture("oidc/aad_v1_YbRAQRYcE_motWVJKHrwLBbd_9s.spki.pem");
    let rsa = openssl::rsa::Rsa::public_key_from_pem(pem.as_bytes()).expect("rsa");
    json!({"keys": [{
        "kty": "RSA", "use": "sig", "kid": "YbRAQRYcE_motWVJKHrwLBbd_9s",
        "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec()),
    }]})
}

/// A pasted token is checked against each route's `require:` and claim rules: which ones a
/// browser with it would need a step-up for, or be refused on, and why.
#[test]
fn explain_names_the_routes_a_token_would_need_a_step_up_for() {
    const TID: &str = "268da1a1-9db4-48b9-b1fe-683250ba90cc";
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gateway.yaml");
    let provider = format!(
        "  - name: entra\n    type: entra\n    tenant: {TID}\n    instance: \"http://127.0.0.1:9\"\n    client_id: bebfad57-efd7-419b-b74b-4b9dab7bd470\n    client_secret: x\n    api_audience: \"spn:6514a8ca-d9e4-4155-b292-65258398f3aa\""
    );
    let yaml = ConfigBuilder::new("https://api.example.com")
        .provider_written(&provider)
        .route(
            RouteSpec::new("payroll", "127.0.0.1:3000")
                .prefix("/payroll")
                .with("require:\n  auth_context: c1"),
        )
        .route(
            RouteSpec::new("fresh", "127.0.0.1:3000")
                .prefix("/fresh")
                .with("require:\n  max_age: 1h"),
        )
        .route(
            RouteSpec::new("office", "127.0.0.1:3000")
                .prefix("/office")
                .with("allow:\n  claims:\n    ipaddr: [\"131.107.*\"]"),
        )
        .route(
            RouteSpec::new("home", "127.0.0.1:3000")
                .prefix("/home")
                .with("deny:\n  claims:\n    ipaddr: [\"131.107.*\"]"),
        )
        .route(RouteSpec::new("api", "127.0.0.1:3000"))
        .yaml();
    std::fs::write(&config, yaml).expect("config");
    let token = fixture("oidc/bearer_flow__access_token.jwt");
    let (_, out) = explain(&config, &["--at", "2016-06-30T19:00:00Z"], &token);
    let payroll = line(&out, "INFO", "route payroll require");
    assert!(
        payroll.contains("fails (auth_context_required)") && payroll.contains("acrs is absent"),
        "{out}"
    );
    assert!(
        payroll.contains(r#"claims={"id_token":{"acrs":{"essential":true,"value":"c1"}}}"#),
        "{out}"
    );
    // Issued 2016-06-30T18:27:28Z: within the hour at 19:00, without auth_time it is not.
    assert!(
        line(&out, "INFO", "route fresh require").contains("no auth_time"),
        "{out}"
    );
    assert!(
        line(&out, "INFO", "route office policy").contains("allows this user"),
        "{out}"
    );
    assert!(
        line(&out, "INFO", "route home policy").contains("refuses this user: deny.claims.ipaddr"),
        "{out}"
    );
    assert!(!out.contains("route api "), "{out}");
}

#[test]
fn a_real_v1_access_token_is_explained_with_its_real_signature() {
    const TID: &str = "268da1a1-9db4-48b9-b1fe-683250ba90cc";
    let op = RogueOp::start();
    let base = format!("/{TID}/v2.0");
    op.discovery(&base, &format!("{}{base}", op.base), json!({}));
    op.set(&format!("{base}/keys"), Answer::Json(v1_jwks()));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gateway.yaml");
    // The app registration: its client ID, and its tenant lines (`tenant:` and what goes with it).
    const API_APP: &str = "bebfad57-efd7-419b-b74b-4b9dab7bd470";
    const AUDIENCE: &str = "spn:6514a8ca-d9e4-4155-b292-65258398f3aa";
    let single = format!("tenant: {TID}");
    let single = [single.as_str()];
    let yaml_for = |client_id: &str, tenant: &[&str], audience: &str| {
        let provider = format!(
            "  - name: entra\n    type: entra\n    {}\n    instance: \"{}\"\n    client_id: {client_id}\n    client_secret: x\n    api_audience: \"{audience}\"",
            tenant.join("\n    "),
            op.base
        );
        ConfigBuilder::new("https://api.example.com")
            .provider_written(&provider)
            .route(RouteSpec::new("api", "127.0.0.1:3000"))
            .yaml()
    };
    let yaml = |client_id: &str, tenant: &[&str]| yaml_for(client_id, tenant, AUDIENCE);
    std::fs::write(&config, yaml(API_APP, &single)).expect("config");
    let token = fixture("oidc/bearer_flow__access_token.jwt");

    // In its hour: audience, time and the real signature pass; the v1.0 issuer is refused
    // with the manifest setting that fixes it.
    let (code, out) = explain(&config, &["--at", "2016-06-30T19:00:00Z"], &token);
    assert_eq!(code, 1, "{out}");
    line(&out, "PASS", "audience");
    line(&out, "PASS", "time window");
    line(&out, "PASS", "signature");
    assert!(
        line(&out, "FAIL", "issuer and version").contains("v1.0 access token"),
        "{out}"
    );
    assert!(
        fix_of(&out, "issuer and version").contains("accessTokenAcceptedVersion 2"),
        "{out}"
    );
    assert!(line(&out, "INFO", "token").contains("ver 1.0"), "{out}");
    assert!(
        line(&out, "PASS", "tenant").contains("268da1a1-9db4-48b9-b1fe-683250ba90cc"),
        "{out}"
    );
    assert!(
        line(&out, "INFO", "groups").contains("no groups claim"),
        "{out}"
    );
    assert!(
        line(&out, "INFO", "roles").contains("no app roles"),
        "{out}"
    );

    // Today: expired too.
    let (_, out) = explain(&config, &[], &token);
    assert!(
        line(&out, "FAIL", "time window").contains("expired"),
        "{out}"
    );

    // One byte of the signature changed: the real key refuses it.
    let mut forged = token.trim().to_string();
    let last = forged.pop().expect("char");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let (_, out) = explain(&config, &["--at", "2016-06-30T19:00:00Z"], &forged);
    assert!(
        line(&out, "FAIL", "signature").contains("bad signature"),
        "{out}"
    );

    // A real v1.0 ID token of the same tenant, for the app it was issued to: audience (the
    // client ID), time and signature pass; a v1.0 issuer is not what a v2.0 sign-in returns.
    let id_token = fixture("oidc/oidc_implicit_flow__id_token.jwt");
    let id_config = dir.path().join("id.yaml");
    std::fs::write(
        &id_config,
        yaml("2abf3a52-7d86-460b-a1ef-77dc43de8aad", &single),
    )
    .expect("config");
    let (code, out) = explain(&id_config, &["--at", "2016-08-16T02:30:00Z"], &id_token);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("ID token"), "{out}");
    assert!(
        line(&out, "PASS", "audience").contains("2abf3a52-7d86-460b-a1ef-77dc43de8aad"),
        "{out}"
    );
    line(&out, "PASS", "time window");
    line(&out, "PASS", "signature");
    line(&out, "FAIL", "issuer and version");
    // The same ID token against the API's configuration: issued to another app.
    let (_, out) = explain(&config, &["--at", "2016-08-16T02:30:00Z"], &id_token);
    assert!(
        fix_of(&out, "audience").contains("issued to another app"),
        "{out}"
    );

    // A multi-tenant app that lets in another tenant only: the token's tenant is refused,
    // with the setting named.
    let multi = dir.path().join("multi.yaml");
    std::fs::write(
        &multi,
        yaml(
            API_APP,
            &[
                "tenant: organizations",
                "allowed_tenants: [\"72f988bf-86f1-41af-91ab-2d7cd011db47\"]",
            ],
        ),
    )
    .expect("config");
    let (code, out) = explain(&multi, &["--at", "2016-06-30T19:00:00Z"], &token);
    assert_eq!(code, 1, "{out}");
    assert!(line(&out, "FAIL", "tenant").contains(TID), "{out}");
    assert!(fix_of(&out, "tenant").contains("allowed_tenants"), "{out}");

    // Another API's audience: the scope to request and the Application ID URI are named.
    std::fs::write(&config, yaml_for(API_APP, &single, "api://other-api")).expect("config");
    let (_, out) = explain(&config, &["--at", "2016-06-30T19:00:00Z"], &token);
    assert!(
        fix_of(&out, "audience").contains("api://other-api/.default"),
        "{out}"
    );
}

#[test]
fn input_that_is_none_of_these_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = saml_config(dir.path(), ENTRA_SP, ENTRA_CERT_SHA1);
    let cases = [
        ("", "nothing to explain"),
        (
            "hello world",
            "not a SAMLResponse, a token or a redirect URL",
        ),
        (
            "https://app.example.com/?code=abc&state=x",
            "no error= parameter",
        ),
        (&"A".repeat(600_000), "not a SAMLResponse"),
    ];
    for (input, expect) in cases {
        let (code, out) = explain(&config, &[], input);
        assert_eq!(code, 2, "{input:.40}: {out}");
        assert!(out.contains(expect), "{input:.40}: {out}");
    }
    let (code, out) = explain(&config, &["--at", "yesterday"], "x");
    assert_eq!(code, 2);
    assert!(out.contains("--at"), "{out}");
    let (code, out) = explain(
        &config,
        &["--provider", "nope"],
        &fixture("saml/entra/entra2024_spring_demo_response.b64"),
    );
    assert_eq!(code, 2);
    assert!(out.contains("no provider named \"nope\""), "{out}");
}

#[test]
fn attack_vectors_are_refused_and_never_called_acceptable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = saml_config(dir.path(), ENTRA_SP, ENTRA_CERT_SHA1);
    // (fixture, the check that must fail)
    let cases = [
        ("saml/attacks/ruby-saml/attackxee.xml", "structure"),
        (
            "saml/attacks/ruby-saml/response_assertion_wrapped.xml",
            "structure",
        ),
        (
            "saml/attacks/ruby-saml/encrypted_new_attack.xml",
            "structure",
        ),
        (
            "saml/attacks/python3-saml/signature_wrapping_attack.xml",
            "structure",
        ),
        (
            "saml/attacks/python3-saml/signature_wrapping_attack2.xml",
            "structure",
        ),
        // (This one starts with a byte-order mark.)
        (
            "saml/attacks/python3-saml/wrapped_response_2.xml",
            "signature",
        ),
        (
            "saml/attacks/python3-saml/unsigned_assertion.xml",
            "signature",
        ),
        ("saml/attacks/python3-saml/no_signature.xml", "signature"),
        (
            "saml/attacks/python3-saml/multiple_assertions.xml",
            "structure",
        ),
        ("saml/attacks/python3-saml/bad_reference.xml", "signature"),
    ];
    for (file, check) in cases {
        let xml = fixture(file);
        let (code, out) = explain(&config, &["--at", IN_WINDOW], &xml);
        assert_eq!(code, 1, "{file}: {out}");
        line(&out, "FAIL", check);
        assert!(
            out.contains("verdict: the gateway would refuse this"),
            "{file}: {out}"
        );
    }
}
