//! Every identity is vouched for by the provider and the keys allowed to vouch for it. The
//! real gateway binary against a malicious OpenID provider (tests/common/rogue_op.rs) that
//! serves whatever discovery, keys and tokens a case asks for, and a real upstream.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::rogue_op::{self, Answer, Key, RogueOp};
use common::*;
use serde_json::{json, Value};

const MSA: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
const API: &str = "api://authgate";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The rogue provider playing three parts: `org` (an Entra `organizations` authority whose key
/// set, like Microsoft's real `common` one, also holds consumer-tenant keys and, here, two
/// keys under one kid), `plain` (a generic OpenID provider) and `strict` (one that
/// advertises RFC 9207).
struct World {
    op: RogueOp,
    good: Key,
    msa: Key,
    dup_a: Key,
    dup_b: Key,
    upstream: Upstream,
}

fn world() -> World {
    watchdog();
    let op = RogueOp::start();
    let (good, msa) = (Key::new("good"), Key::new("msa"));
    let (dup_a, dup_b) = (Key::new("dup"), Key::new("dup"));
    let base = op.base.clone();
    let tpl = format!("{base}/{{tenantid}}/v2.0");
    op.discovery(
        "/organizations/v2.0",
        &tpl,
        json!({"authorization_endpoint": format!("{base}/org/authorize")}),
    );
    op.set(
        "/organizations/v2.0/keys",
        Answer::Json(json!({"keys": [
            good.jwk(Some(&tpl)),
            msa.jwk(Some(&format!("{base}/{MSA}/v2.0"))),
            dup_a.jwk(Some(&tpl)),
            dup_b.jwk(Some(&tpl)),
        ]})),
    );
    for name in ["plain", "strict"] {
        let extra = if name == "strict" {
            json!({"authorization_response_iss_parameter_supported": true})
        } else {
            // Tempting the gateway: HS256 advertised, keyed (per the library) with the secret.
            json!({"id_token_signing_alg_values_supported": ["RS256", "HS256"]})
        };
        op.discovery(&format!("/{name}"), &format!("{base}/{name}"), extra);
        op.set(
            &format!("/{name}/keys"),
            Answer::Json(json!({"keys": [good.jwk(None)]})),
        );
    }
    World {
        op,
        good,
        msa,
        dup_a,
        dup_b,
        upstream: start_upstream(),
    }
}

fn gateway(w: &World, org_extra: &str) -> Gateway {
    gateway_with(w, org_extra, "")
}

/// As `gateway`, with top-level sections `tail` after `session:`.
fn gateway_with(w: &World, org_extra: &str, tail: &str) -> Gateway {
    let (port, admin) = (free_port(), free_port());
    let base = &w.op.base;
    let up = format!("127.0.0.1:{}", w.upstream.port);
    let cfg = ConfigBuilder::binary(port, &format!("http://127.0.0.1:{port}"), admin)
        .entra("org", base, Some(API))
        .tenant("organizations")
        .provider_lines(&format!("    allowed_tenants: [\"{TENANT}\"]"))
        .provider_lines(org_extra)
        .oidc("plain", &format!("{base}/plain"))
        .user_claim("oid")
        .oidc("strict", &format!("{base}/strict"))
        .route(
            RouteSpec::new("org-app", &up)
                .prefix("/org")
                .providers(&["org"])
                .tenants(&[TENANT])
                .groups(&[STAFF]),
        )
        .route(
            RouteSpec::new("plain-app", &up)
                .prefix("/plain")
                .providers(&["plain"]),
        )
        .route(
            RouteSpec::new("strict-app", &up)
                .prefix("/strict")
                .providers(&["strict"]),
        )
        .route(
            RouteSpec::new("both", &up)
                .prefix("/both")
                .providers(&["plain", "org"]),
        )
        .tail(tail);
    start_built(&cfg)
}

/// A bearer token's claims as Entra issues them for the API, v2.0 or v1.0 form.
fn access_claims(base: &str, v1: bool) -> Value {
    let t = now();
    let iss = if v1 {
        format!("https://sts.windows.net/{TENANT}/")
    } else {
        format!("{base}/{TENANT}/v2.0")
    };
    json!({"iss": iss, "ver": if v1 { "1.0" } else { "2.0" }, "aud": API, "tid": TENANT,
        "oid": ALICE_OID, "sub": "alice-sub", "scp": "access_as_user", "roles": ["Admin"],
        "groups": [STAFF], "iat": t - 10, "nbf": t - 10, "exp": t + 600})
}

fn bearer(gw: &Gateway, path: &str, token: &str) -> reqwest::blocking::Response {
    api()
        .get(format!("{}{path}", gw.url))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .expect("bearer request")
}

/// Refused with 401, a `WWW-Authenticate: Bearer error="invalid_token"` naming the check,
/// and a message about access tokens.
fn assert_refused(r: reqwest::blocking::Response, case: &str, says: &str) {
    let status = r.status();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = r.json().unwrap_or(Value::Null);
    assert_eq!(status, 401, "{case}: {body}");
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "{case}: {challenge}"
    );
    let message = body["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("access token rejected: ") && message.contains(says),
        "{case}: expected {says:?} in {message:?}"
    );
    assert!(
        challenge.contains("error_description=") && challenge.contains(says),
        "{case}: {challenge}"
    );
}

#[test]
fn entra_key_rules_hold_for_every_token_form() {
    let w = world();
    let both = gateway(&w, "    api_token_versions: [1, 2]");
    let v2_only = gateway(&w, "");
    let b = &w.op.base;
    // The controls: what a legitimate token looks like passes, in each accepted form.
    for (gw, v1) in [(&both, false), (&both, true), (&v2_only, false)] {
        let r = bearer(gw, "/org/x", &w.good.sign(json!({}), &access_claims(b, v1)));
        assert_eq!(r.status(), 200, "legitimate v1={v1} token");
        let seen = echo(r);
        assert_eq!(seen["headers"]["x-auth-user"], ALICE_OID);
        assert_eq!(seen["headers"]["x-auth-provider"], "org");
    }
    let v1 = access_claims(b, true);
    let v2 = access_claims(b, false);
    let t = now();
    let cases: Vec<(&str, &Gateway, String, &str)> = vec![
        (
            "consumer-tenant key, v1 issuer of a work tenant (Storm-0558)",
            &both,
            w.msa.sign(json!({}), &v1),
            "may only sign for",
        ),
        (
            "consumer-tenant key, v2 issuer of a work tenant",
            &both,
            w.msa.sign(json!({}), &v2),
            "may only sign for",
        ),
        (
            "v1 token where the API accepts v2 only",
            &v2_only,
            w.good.sign(json!({}), &v1),
            "accessTokenAcceptedVersion: 2",
        ),
        (
            "v1 issuer claiming ver 2.0",
            &both,
            w.good
                .sign(json!({}), &merged(v1.clone(), json!({"ver": "2.0"}))),
            "ver",
        ),
        (
            "duplicate kid, first key",
            &both,
            w.dup_a.sign(json!({}), &v2),
            "more than once",
        ),
        (
            "duplicate kid, second key",
            &both,
            w.dup_b.sign(json!({}), &v2),
            "more than once",
        ),
        (
            "alg none",
            &both,
            rogue_op::unsigned("good", &v2),
            "not accepted",
        ),
        (
            "HS256 keyed with the provider's RSA public key",
            &both,
            rogue_op::hs256("good", &w.good.public_pem(), &v2),
            "not accepted",
        ),
        (
            "HS256 keyed with the client secret",
            &both,
            rogue_op::hs256("good", CLIENT_SECRET.as_bytes(), &v2),
            "not accepted",
        ),
        (
            "no kid",
            &both,
            w.good.sign(json!({"kid": null}), &v2),
            "kid",
        ),
        (
            "issued ten years ahead",
            &both,
            w.good.sign(
                json!({}),
                &merged(v2.clone(), json!({"iat": t + 315_360_000})),
            ),
            "issued in the future",
        ),
        (
            "not valid for another day",
            &both,
            w.good
                .sign(json!({}), &merged(v2.clone(), json!({"nbf": t + 86_400}))),
            "not valid before",
        ),
        (
            "expired",
            &both,
            w.good
                .sign(json!({}), &merged(v2.clone(), json!({"exp": t - 3600}))),
            "expired",
        ),
        (
            "another tenant's issuer for the allowed tid",
            &both,
            w.good.sign(
                json!({}),
                &merged(
                    v2.clone(),
                    json!({"iss": format!("{b}/f8cdef31-a31e-4b4a-93e4-5f571e91255a/v2.0")}),
                ),
            ),
            "is not the issuer of its tenant",
        ),
        (
            "an ID token presented as an access token",
            &both,
            w.good
                .sign(json!({}), &merged(v2.clone(), json!({"nonce": "n"}))),
            "not an access token",
        ),
        (
            "another API's audience",
            &both,
            w.good.sign(
                json!({}),
                &merged(v2.clone(), json!({"aud": "api://other"})),
            ),
            "audience",
        ),
    ];
    for (case, gw, token, says) in &cases {
        assert_refused(bearer(gw, "/org/x", token), case, says);
    }
    let log = both.log_text();
    assert!(
        log.contains("more than one key under kid dup"),
        "ambiguous kid named in the log"
    );
    assert!(log.contains("bearer token on route org-app refused: access token rejected"));
    let m = scrape(&both.admin);
    assert!(metric(&m, "authgate_denials_total{reason=\"invalid_token\"}") >= 12.0);
}

/// Starts a sign-in on `path` and returns the state and nonce the gateway sent the provider,
/// and the authorization URL.
fn begin(browser: &Browser, gw: &Gateway, path: &str) -> (String, String, String) {
    let r = browser.get(&format!("{}{path}", gw.url));
    assert_eq!(r.status(), 302, "sign-in starts for {path}");
    let loc = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let url = reqwest::Url::parse(&loc).expect("authorize URL");
    let q = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| panic!("no {k} in {loc}"))
    };
    (q("state"), q("nonce"), loc)
}

fn id_claims(w: &World, provider: &str, nonce: &str) -> Value {
    let t = now();
    json!({"iss": format!("{}/{provider}", w.op.base), "aud": CLIENT_ID, "sub": "mallory",
        "oid": "mallory-oid", "nonce": nonce, "iat": t - 5, "exp": t + 600})
}

/// Completes a sign-in with `id_token` from the provider; returns the callback's answer.
fn finish(
    browser: &Browser,
    gw: &Gateway,
    w: &World,
    provider: &str,
    state: &str,
    iss: Option<&str>,
    id_token: &str,
) -> reqwest::blocking::Response {
    w.op.token_response(id_token);
    let mut url = format!(
        "{}/_authgate/callback/{provider}?code=c0de&state={state}",
        gw.url
    );
    if let Some(iss) = iss {
        url.push_str(&format!("&iss={}", urlencode(iss)));
    }
    browser.get(&url)
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[test]
fn id_token_checks_beyond_the_signature() {
    let w = world();
    let gw = gateway(&w, "");
    let t = now();
    type Edit = fn(Value, u64) -> Value;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "azp of another app",
            |c, _| merged(c, json!({"azp": "other-app"})),
            "azp",
        ),
        (
            "several audiences, no azp",
            |c, _| merged(c, json!({"aud": [CLIENT_ID, "other-app"]})),
            "audience",
        ),
        (
            "iat ten years ahead",
            |c, t| merged(c, json!({"iat": t + 315_360_000})),
            "iat",
        ),
        (
            "nbf a day ahead",
            |c, t| merged(c, json!({"nbf": t + 86_400})),
            "not valid before",
        ),
    ];
    for (case, edit, says) in &cases {
        let b = Browser::new();
        let (state, nonce, _) = begin(&b, &gw, "/plain/");
        let token = w
            .good
            .sign(json!({}), &edit(id_claims(&w, "plain", &nonce), t));
        let r = finish(&b, &gw, &w, "plain", &state, None, &token);
        assert_eq!(r.status(), 400, "{case}");
        let page = r.text().unwrap_or_default();
        assert!(page.contains(says), "{case}: {page}");
        assert!(
            b.get(&format!("{}/plain/", gw.url)).status() == 302,
            "{case}: no session"
        );
    }
    // Signatures the provider's metadata tempts the gateway to accept.
    type Forge = fn(&World, &Value) -> String;
    let forged: Vec<(&str, Forge)> = vec![
        ("alg none", |_, c| rogue_op::unsigned("good", c)),
        ("HS256 keyed with the RSA public key", |w, c| {
            rogue_op::hs256("good", &w.good.public_pem(), c)
        }),
        ("HS256 keyed with the client secret", |_, c| {
            rogue_op::hs256("good", CLIENT_SECRET.as_bytes(), c)
        }),
    ];
    for (case, forge) in &forged {
        let b = Browser::new();
        let (state, nonce, _) = begin(&b, &gw, "/plain/");
        let r = finish(
            &b,
            &gw,
            &w,
            "plain",
            &state,
            None,
            &forge(&w, &id_claims(&w, "plain", &nonce)),
        );
        assert_eq!(r.status(), 400, "{case}");
        assert!(
            b.get(&format!("{}/plain/", gw.url)).status() == 302,
            "{case}: no session"
        );
    }
    // RFC 9207: the provider advertises the iss parameter, so a callback without it is a
    // possible mix-up; with it, the same sign-in completes.
    let b = Browser::new();
    let (state, nonce, _) = begin(&b, &gw, "/strict/");
    let token = w.good.sign(json!({}), &id_claims(&w, "strict", &nonce));
    let r = finish(&b, &gw, &w, "strict", &state, None, &token);
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap_or_default().contains("RFC 9207"));
    let b = Browser::new();
    let (state, nonce, _) = begin(&b, &gw, "/strict/");
    let token = w.good.sign(json!({}), &id_claims(&w, "strict", &nonce));
    let iss = format!("{}/strict", w.op.base);
    let r = finish(&b, &gw, &w, "strict", &state, Some(&iss), &token);
    assert_eq!(r.status(), 302, "{}", r.text().unwrap_or_default());
    assert_eq!(b.get(&format!("{}/strict/x", gw.url)).status(), 200);
    let log = gw.log_text();
    assert!(log.contains("azp"), "refusals are logged with their reason");
}

/// A user of the weakest provider, whose ID token copies an Entra user's oid, tid and groups,
/// is no session on the Entra provider's routes; a route listing both accepts both.
#[test]
fn sessions_are_bound_to_their_provider() {
    let w = world();
    let gw = gateway(&w, "");
    let b = Browser::new();
    let (state, nonce, _) = begin(&b, &gw, "/plain/");
    let claims = merged(
        id_claims(&w, "plain", &nonce),
        json!({"oid": ALICE_OID, "tid": TENANT, "groups": [STAFF], "roles": ["Admin"]}),
    );
    let r = finish(
        &b,
        &gw,
        &w,
        "plain",
        &state,
        None,
        &w.good.sign(json!({}), &claims),
    );
    assert_eq!(r.status(), 302, "{}", r.text().unwrap_or_default());
    let mine = echo(b.api_get(&format!("{}/plain/x", gw.url)));
    assert_eq!(mine["headers"]["x-auth-provider"], "plain");
    assert_eq!(mine["headers"]["x-auth-user"], ALICE_OID);
    // The Entra route: a browser is sent to sign in with the route's own provider...
    let r = b.get(&format!("{}/org/panel", gw.url));
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap_or("").to_string();
    assert!(
        loc.starts_with(&format!("{}/org/authorize", w.op.base)),
        "{loc}"
    );
    // ...and an API caller with the same cookie gets a 401.
    let cookie = b
        .cookie(&gw.url, "authgate_session")
        .expect("session cookie");
    let r = get_with_session(&format!("{}/org/panel", gw.url), &cookie);
    assert_eq!(r.status(), 401);
    let body: Value = r.json().expect("JSON 401");
    assert!(
        body["sign_in"]
            .as_str()
            .is_some_and(|s| s.ends_with("&provider=org")),
        "the sign-in link names the route's provider: {body}"
    );
    // A route that lists both providers takes it, and says which provider vouched.
    let both = echo(get_with_session(&format!("{}/both/x", gw.url), &cookie));
    assert_eq!(both["headers"]["x-auth-provider"], "plain");
    // The session of plain still works where plain is accepted.
    assert_eq!(
        get_with_session(&format!("{}/plain/x", gw.url), &cookie).status(),
        200
    );
    // An Entra bearer token passes the route listing both, judged by Entra's rules.
    let token = w.good.sign(json!({}), &access_claims(&w.op.base, false));
    let r = bearer(&gw, "/both/x", &token);
    assert_eq!(r.status(), 200);
    assert_eq!(echo(r)["headers"]["x-auth-provider"], "org");
    let m = scrape(&gw.admin);
    assert!(
        metric(
            &m,
            "authgate_session_rejections_total{reason=\"wrong_provider\"}"
        ) >= 2.0
    );
}

/// Key sets and discovery documents are read with a byte cap while they stream: an endless
/// chunked answer is cut off, memory stays bounded, the last good keys stay in use.
#[test]
fn endless_and_oversized_key_sets_are_cut_off() {
    let w = world();
    let gw = gateway(&w, "");
    let hwm = || -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", gw.proc.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let token = w.good.sign(json!({}), &access_claims(&w.op.base, false));
    assert_eq!(bearer(&gw, "/org/x", &token).status(), 200);
    let before = hwm();
    for answer in [Answer::Endless, Answer::Chunked(vec![b' '; 48 << 20])] {
        w.op.set("/organizations/v2.0/keys", answer);
        // An unknown kid makes the gateway refresh the key set (at most every 5 s).
        let stranger = Key::new(&format!("new-{}", now()));
        std::thread::sleep(std::time::Duration::from_millis(5100));
        let r = bearer(
            &gw,
            "/org/x",
            &stranger.sign(json!({}), &access_claims(&w.op.base, false)),
        );
        assert_eq!(r.status(), 401);
        // The keys loaded before still verify.
        assert_eq!(bearer(&gw, "/org/x", &token).status(), 200);
    }
    let growth_kib = hwm().saturating_sub(before);
    assert!(
        growth_kib < 16 * 1024,
        "peak memory grew by {growth_kib} KiB reading hostile key sets"
    );
    let log = gw.log_text();
    assert!(log.contains("refused: answer is larger than"), "{log}");
}

#[test]
fn a_deprovisioned_users_bearer_tokens_stop_passing() {
    let w = world();
    let token = "scim-token-for-the-bearer-test-0123456789";
    let gw = gateway_with(&w, "", &format!("scim:\n  token: \"{token}\"\n"));
    let access = w.good.sign(json!({}), &access_claims(&w.op.base, false));
    assert_eq!(
        bearer(&gw, "/org/x", &access).status(),
        200,
        "not provisioned: SCIM has no say"
    );
    let scim = |method: &str, path: &str, body: Value| {
        api()
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/_authgate/scim/v2{path}", gw.url),
            )
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    let created: Value = scim(
        "POST",
        "/Users",
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "alice@contoso.example", "externalId": ALICE_OID, "active": true
        }),
    )
    .json()
    .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        bearer(&gw, "/org/x", &access).status(),
        200,
        "provisioned and active"
    );
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    assert_eq!(scim("PATCH", &format!("/Users/{id}"), off).status(), 200);
    let r = bearer(&gw, "/org/x", &access);
    assert_eq!(
        r.status(),
        403,
        "the same, still unexpired token after deprovisioning"
    );
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"], "deprovisioned", "{body}");
}
