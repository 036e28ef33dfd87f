//! OIDC sign-in cost on the gateway's side of a callback, excluding the IdP's own time (the
//! code exchange round trip): parse and verify an RS256 ID token (signature, iss, aud, exp,
//! nonce) the way the callback does, map its Entra claims to the identity, and seal the
//! session cookie. Run: cargo bench --bench oidc_callback

use std::hint::black_box;
use std::time::Duration;

use authgate::idp::claims::identity_from_claims;
use authgate::read::Secret;
use authgate::session::{now_secs, Sessions};
use authgate::session::{SessionConfig, StoreKind};
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet};
use openidconnect::{ClientId, IssuerUrl, Nonce};
use serde_json::json;

const ISSUER: &str = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn bench(c: &mut Criterion) {
    let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
    let jwks: CoreJsonWebKeySet = serde_json::from_value(json!({"keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "bench",
        "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec()),
    }]}))
    .expect("jwks");
    let now = now_secs();
    let claims = json!({
        "iss": ISSUER, "aud": "app", "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "iat": now, "nbf": now, "exp": now + 3600, "nonce": "n0nce",
        "oid": "00000000-0000-0000-66f3-3332eca7ea81", "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "name": "Alice Example", "preferred_username": "alice@contoso.example",
        "email": "alice@contoso.example", "xms_edov": true, "roles": ["Reader", "Admin"],
        "groups": (0..20).map(|i| format!("6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1{i:02}")).collect::<Vec<_>>(),
    });
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"RS256","kid":"bench","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let key = openssl::pkey::PKey::from_rsa(rsa).expect("pkey");
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).expect("signer");
    signer.update(input.as_bytes()).expect("sign");
    let jwt = format!("{input}.{}", b64(&signer.sign_to_vec().expect("sign")));
    let verifier = CoreIdTokenVerifier::new_confidential_client(
        ClientId::new("app".into()),
        openidconnect::ClientSecret::new("unused".into()),
        IssuerUrl::new(ISSUER.into()).expect("issuer"),
        jwks,
    );
    let nonce = Nonce::new("n0nce".into());
    let sessions = Sessions::new(SessionConfig {
        cookie_name: "authgate_session".into(),
        lifetime: Duration::from_secs(8 * 3600),
        idle_timeout: Duration::from_secs(3600),
        lifecycle: Default::default(),
        secure: true,
        secret: Secret("s".repeat(48)),
        store: StoreKind::Cookie,
        max_sessions: 1000,
        cookie_domain: None,
        redis: None,
    })
    .expect("sessions");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    c.bench_function("oidc_callback_verify_map_seal", |b| {
        b.iter(|| {
            let token: CoreIdToken = black_box(&jwt).parse().expect("token");
            token.claims(&verifier, &nonce).expect("valid");
            let payload = jwt.split('.').nth(1).expect("payload");
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .expect("b64");
            let claims: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
            let identity = identity_from_claims("entra", "oid", &claims).expect("identity");
            rt.block_on(sessions.create(identity)).expect("session")
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
