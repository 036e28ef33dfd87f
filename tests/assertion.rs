//! The signed identity assertion through the real binary, the real `oidc-provider` and a real
//! upstream, judged by independent verifiers as an app would run them: Python PyJWT with its
//! JWKS client and npm `jose` (`createRemoteJWKSet` + `jwtVerify`), each fetching the
//! gateway's JWKS. They accept what the gateway sends and refuse another audience, a changed
//! byte, an expired assertion and one signed by a key no longer published; a key rotation on
//! three replicas keeps every assertion verifiable by every replica's JWKS in every phase.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::redis::start_standalone;
use common::replicas::*;
use common::*;
use serde_json::{json, Value};

/// A fresh P-256 key as PEM (SEC1).
fn p256_pem() -> Vec<u8> {
    let group =
        openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).expect("curve");
    openssl::ec::EcKey::generate(&group)
        .and_then(|k| k.private_key_to_pem())
        .expect("key")
}

/// Replaces `path` whole (as Kubernetes updates a mounted Secret), never half-written.
fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write key");
    std::fs::rename(&tmp, path).expect("rename key");
}

/// One verification to run: a token, the JWKS to fetch, the audience expected.
struct Check<'a> {
    token: &'a str,
    jwks: String,
    audience: &'a str,
}

/// Runs both verifiers on every check: (PyJWT's, jose's) result per check.
fn verify(issuer: &str, checks: &[Check]) -> Vec<(Value, Value)> {
    let input = json!({
        "issuer": issuer,
        "checks": checks.iter().map(|c| json!({
            "token": c.token, "jwks": c.jwks, "audience": c.audience,
        })).collect::<Vec<_>>(),
    })
    .to_string();
    let env = testenv();
    let run = |program: PathBuf, script: &str| -> Vec<Value> {
        let mut child = Command::new(&program)
            .arg(env.join(script))
            .current_dir(&env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", program.display()));
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("verifier input");
        let out = child.wait_with_output().expect("verifier");
        assert!(out.status.success(), "{script} failed");
        serde_json::from_slice(&out.stdout).expect("verifier output")
    };
    let py = run(env.join(".pyjwt/bin/python"), "verify-assertion.py");
    let node = run(PathBuf::from("node"), "verify-assertion.mjs");
    assert_eq!((py.len(), node.len()), (checks.len(), checks.len()));
    py.into_iter().zip(node).collect()
}

fn accepted(r: &(Value, Value)) -> bool {
    r.0["ok"] == true && r.1["ok"] == true
}

fn refused(r: &(Value, Value)) -> bool {
    r.0["ok"] == false && r.1["ok"] == false
}

/// The assertion the upstream received for a request with `cookie`.
fn assertion_at(url: &str, cookie: &str) -> String {
    let seen = echo(get_with_session(url, cookie));
    seen["headers"]["x-auth-assertion"]
        .as_str()
        .unwrap_or_else(|| panic!("no assertion upstream: {seen}"))
        .to_string()
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims")
}

/// Changes one character of the token's `part`-th segment (a valid base64url character
/// still, so only the signature can tell).
fn one_byte_changed(token: &str, part: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let p = &mut parts[part];
    let i = p.len() / 2;
    let c = p.as_bytes()[i];
    let swapped = if c == b'A' { 'B' } else { 'A' };
    p.replace_range(i..=i, &swapped.to_string());
    parts.join(".")
}

#[test]
fn verifiers_accept_the_assertion_and_refuse_what_they_should() {
    let keys = tempfile::tempdir().expect("tempdir");
    let key_file = keys.path().join("assertion.pem");
    write_atomically(&key_file, &p256_pem());
    let tail = format!(
        "assertion:\n  key_files: [{:?}]\n  lifetime: 30s\n",
        key_file.display().to_string()
    );
    let env = start_env_with(|b| {
        b.tail(&tail)
            .provider_lines(&format!("    group_names:\n      \"{ADMINS}\": Admins"))
            .edit_route("app", |r| r.with("assertion_audience: \"urn:example:app\""))
            .forward_auth_default(&["127.0.0.1/32"])
    });
    let gw = &env.gw;
    let jwks = format!("{}/_authgate/jwks.json", gw.url);
    let b = Browser::new();
    assert_eq!(b.sign_in(&format!("{}/x", gw.url), "alice").0.status(), 200);
    let cookie = b
        .cookie(&format!("{}/", gw.url), "authgate_session")
        .expect("session cookie");

    // The JWKS: public keys only, cacheable, at both addresses, unpadded base64url.
    let r = api().get(&jwks).send().expect("jwks");
    assert_eq!(
        r.headers()["cache-control"].to_str().ok(),
        Some("public, max-age=300")
    );
    let set: Value = r.json().expect("jwks json");
    let well_known: Value = api()
        .get(format!("{}/.well-known/authgate/jwks.json", gw.url))
        .send()
        .and_then(|r| r.json())
        .expect("well-known jwks");
    assert_eq!(set, well_known);
    let key = &set["keys"][0];
    assert_eq!(set["keys"].as_array().map(Vec::len), Some(1));
    for (k, v) in [
        ("kty", "EC"),
        ("crv", "P-256"),
        ("alg", "ES256"),
        ("use", "sig"),
    ] {
        assert_eq!(key[k], v, "{set}");
    }
    assert!(key.get("d").is_none(), "no private part: {set}");
    let post = api().post(&jwks).body("{}").send().expect("post");
    assert_eq!(post.status(), 405);
    assert!(!set.to_string().contains('='), "unpadded: {set}");

    // Clients' copies never reach the app, in any spelling: the app sees the gateway's one.
    let spoof = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJldmUifQ.";
    let seen = echo(
        api()
            .get(format!("{}/x", gw.url))
            .header("cookie", format!("authgate_session={cookie}"))
            .header("X-Auth-Assertion", spoof)
            .header("x_auth_assertion", spoof)
            .header("X-AUTH-ASSERTION", spoof)
            .send()
            .expect("spoofed"),
    );
    let token = seen["headers"]["x-auth-assertion"]
        .as_str()
        .expect("assertion")
        .to_string();
    assert!(!token.contains(spoof) && !token.contains(','), "{token}");
    assert!(seen["headers"].get("x_auth_assertion").is_none(), "{seen}");

    // Both verifiers accept it, and it says who, for whom and until when.
    let aud = "urn:example:app";
    let ok = verify(
        &gw.url,
        &[Check {
            token: &token,
            jwks: jwks.clone(),
            audience: aud,
        }],
    );
    assert!(accepted(&ok[0]), "{ok:?}");
    for claims in [&ok[0].0["claims"], &ok[0].1["claims"]] {
        assert_eq!(claims["sub"], ALICE_OID);
        assert_eq!(claims["email"], ALICE.email);
        assert_eq!(claims["name"], ALICE.name);
        assert_eq!(claims["tid"], TENANT);
        assert_eq!(claims["provider"], "test-idp");
        assert_eq!(
            claims["groups"],
            json!(["Admins", STAFF]),
            "names where known"
        );
        assert_eq!(claims["roles"], json!(["Reader", "Admin"]));
        assert_eq!(claims["iss"], gw.url.as_str());
        assert_eq!(claims["aud"], aud);
        let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
        assert_eq!(exp.zip(iat).map(|(e, i)| e - i), Some(30));
        assert_eq!(claims["nbf"], claims["iat"]);
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
        let sid = claims["sid"].as_str().expect("sid");
        assert!(!cookie.contains(sid) && sid.len() == 22, "{sid}");
    }
    let text = claims_of(&token).to_string();
    assert!(
        !text.contains("eyJ") && !text.contains(&cookie),
        "no token, no session: {text}"
    );

    // Refused: another audience, a changed byte in the claims or the signature.
    let tampered = [one_byte_changed(&token, 1), one_byte_changed(&token, 2)];
    let bad = verify(
        &gw.url,
        &[
            Check {
                token: &token,
                jwks: jwks.clone(),
                audience: "urn:example:other",
            },
            Check {
                token: &tampered[0],
                jwks: jwks.clone(),
                audience: aud,
            },
            Check {
                token: &tampered[1],
                jwks: jwks.clone(),
                audience: aud,
            },
        ],
    );
    for (i, r) in bad.iter().enumerate() {
        assert!(refused(r), "check {i}: {r:?}");
    }
    assert!(
        bad[0].0["error"]
            .as_str()
            .is_some_and(|e| e.contains("Audience")),
        "{:?}",
        bad[0]
    );

    // Signed once, used again within half its life: the next requests carry the same one.
    let again = assertion_at(&format!("{}/y", gw.url), &cookie);
    assert_eq!(again, token);
    assert_eq!(
        metric(&scrape(&gw.admin), "authgate_assertions_signed_total"),
        1.0
    );

    // Forward-auth answers carry it too, for the route the original URL names.
    let fa = api()
        .get(format!("{}/_authgate/auth", gw.url))
        .header("x-original-url", format!("{}/public/x", gw.url))
        .header("cookie", format!("authgate_session={cookie}"))
        .send()
        .expect("forward-auth");
    assert_eq!(fa.status(), 200);
    let public = fa.headers().get("x-auth-assertion");
    assert!(
        public.is_none(),
        "a public route: no identity, no assertion"
    );
    let fa = api()
        .get(format!("{}/_authgate/auth", gw.url))
        .header("x-original-url", format!("{}/x", gw.url))
        .header("cookie", format!("authgate_session={cookie}"))
        .send()
        .expect("forward-auth");
    let fa_token = fa.headers()["x-auth-assertion"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(claims_of(&fa_token)["aud"], aud);

    // A broken key file keeps the key in service, logged and counted.
    std::fs::write(
        &key_file,
        b"-----BEGIN EC PRIVATE KEY-----\nbroken\n-----END EC PRIVATE KEY-----\n",
    )
    .expect("break key");
    within(Duration::from_secs(10), "broken key file counted", || {
        metric(
            &scrape(&gw.admin),
            "authgate_assertion_key_reloads_total{result=\"error\"}",
        ) == 1.0
    });
    let after: Value = api()
        .get(&jwks)
        .send()
        .and_then(|r| r.json())
        .expect("jwks");
    assert_eq!(after, set, "the previous key stays published");
    assert!(gw
        .log_text()
        .contains("assertion key files changed but cannot be used"));

    // After `exp` both refuse it (lifetime 30 s).
    let exp = claims_of(&token)["exp"].as_u64().expect("exp");
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    while now() <= exp + 1 {
        std::thread::sleep(Duration::from_millis(250));
    }
    let late = verify(
        &gw.url,
        &[Check {
            token: &token,
            jwks: jwks.clone(),
            audience: aud,
        }],
    );
    assert!(refused(&late[0]), "{late:?}");
    assert!(
        late[0].0["error"]
            .as_str()
            .is_some_and(|e| e.contains("Expired")),
        "{late:?}"
    );
    assert!(
        late[0].1["error"]
            .as_str()
            .is_some_and(|e| e.contains("EXPIRED")),
        "{late:?}"
    );
    // ...and the upstream gets a fresh one.
    let fresh = assertion_at(&format!("{}/x", gw.url), &cookie);
    assert_ne!(fresh, token);
    let ok = verify(
        &gw.url,
        &[Check {
            token: &fresh,
            jwks,
            audience: aud,
        }],
    );
    assert!(accepted(&ok[0]), "{ok:?}");
}

/// The kids a replica's JWKS publishes, in order.
fn kids(gw: &Gateway) -> Vec<String> {
    let set: Value = api()
        .get(format!("{}/_authgate/jwks.json", gw.url))
        .send()
        .and_then(|r| r.json())
        .expect("jwks");
    set["keys"]
        .as_array()
        .map(|ks| {
            ks.iter()
                .filter_map(|k| k["kid"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn kid_of(token: &str) -> String {
    use base64::Engine;
    let head = token.split('.').next().expect("header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .expect("b64");
    let v: Value = serde_json::from_slice(&bytes).expect("json");
    v["kid"].as_str().expect("kid").to_string()
}

#[test]
fn a_key_rotation_on_three_replicas_never_breaks_verification() {
    let redis = start_standalone();
    let upstream = start_upstream();
    let port_a = free_port();
    let public = format!("http://127.0.0.1:{port_a}");
    let op = start_op(&public, 0);
    let keys = tempfile::tempdir().expect("tempdir");
    let key_file = keys.path().join("assertion.pem");
    let (old, new) = (p256_pem(), p256_pem());
    write_atomically(&key_file, &old);
    let session = redis_session(&redis, "rotation:", "");
    let tail = format!(
        "assertion:\n  key_files: [{:?}]\n",
        key_file.display().to_string()
    );
    let start = |port| {
        replica_with(port, &public, &op, upstream.port, &session, |b| {
            b.tail(&tail)
        })
    };
    let (a, b, c) = (start(port_a), start(free_port()), start(free_port()));
    let all = [&a, &b, &c];
    let (_alice, cookie) = signed_in(&a, "alice");
    let aud = "127.0.0.1";

    // Every replica's assertion verifies against every replica's JWKS.
    let every_way = |phase: &str| -> Vec<String> {
        let tokens: Vec<String> = all
            .iter()
            .map(|gw| assertion_at(&format!("{}/secret", gw.url), &cookie))
            .collect();
        let checks: Vec<Check> = tokens
            .iter()
            .flat_map(|t| {
                all.iter().map(move |gw| Check {
                    token: t,
                    jwks: format!("{}/_authgate/jwks.json", gw.url),
                    audience: aud,
                })
            })
            .collect();
        for (i, r) in verify(&public, &checks).iter().enumerate() {
            assert!(accepted(r), "{phase}: check {i}: {r:?}");
        }
        tokens
    };
    let converge = |want: &[String], phase: &str| {
        for gw in all {
            within(Duration::from_secs(10), phase, || kids(gw) == want);
        }
    };

    let k_old = kids(&a);
    assert_eq!(k_old.len(), 1);
    let before = every_way("one key");
    assert!(before.iter().all(|t| kid_of(t) == k_old[0]));

    // 1. The new key goes second: published everywhere, the old one still signs.
    write_atomically(&key_file, &[old.clone(), new.clone()].concat());
    let k_new = {
        within(Duration::from_secs(10), "two keys", || kids(&a).len() == 2);
        kids(&a)[1].clone()
    };
    converge(&[k_old[0].clone(), k_new.clone()], "new key published");
    let step1 = every_way("new key second");
    assert!(
        step1.iter().all(|t| kid_of(t) == k_old[0]),
        "the first key signs"
    );

    // 2. The new key moves first: it signs, the old one is still published (assertions
    //    signed before still verify).
    write_atomically(&key_file, &[new.clone(), old.clone()].concat());
    converge(&[k_new.clone(), k_old[0].clone()], "new key first");
    let step2 = every_way("new key first");
    assert!(
        step2.iter().all(|t| kid_of(t) == k_new),
        "re-signed under the new key"
    );
    let older = verify(
        &public,
        &[Check {
            token: &step1[0],
            jwks: format!("{}/_authgate/jwks.json", c.url),
            audience: aud,
        }],
    );
    assert!(accepted(&older[0]), "{older:?}");

    // 3. The old key goes: what it signed is refused, the new key's assertions verify.
    write_atomically(&key_file, &new);
    converge(std::slice::from_ref(&k_new), "old key removed");
    every_way("old key removed");
    let gone = verify(
        &public,
        &[Check {
            token: &step1[1],
            jwks: format!("{}/_authgate/jwks.json", b.url),
            audience: aud,
        }],
    );
    assert!(
        refused(&gone[0]),
        "signed by a key no longer published: {gone:?}"
    );
    for gw in all {
        let m = scrape(&gw.admin);
        assert_eq!(
            metric(
                &m,
                "authgate_assertion_key_reloads_total{result=\"success\"}"
            ),
            3.0
        );
    }
}

/// The README's verification snippets are the code the verifiers run.
#[test]
fn readme_snippets_are_the_verifiers_code() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    for (script, marker) in [
        ("verify-assertion.py", "# --- snippet: python ---"),
        ("verify-assertion.mjs", "// --- snippet: node ---"),
    ] {
        let code = std::fs::read_to_string(testenv().join(script)).expect("script");
        let start = code.find(marker).expect("snippet start") + marker.len();
        let end = code[start..]
            .find("--- end snippet ---")
            .expect("snippet end")
            + start;
        let body = code[start..end].trim_end_matches(|c| c != '\n').trim();
        assert!(body.len() > 200, "{script}: snippet too short");
        assert!(
            readme.contains(body),
            "README.md lacks {script}'s snippet:\n{body}"
        );
    }
}
