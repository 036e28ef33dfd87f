//! SAML sign-in cost: verifying a real Entra response (signature reduction with xmlsec, then
//! every condition) — the CPU an ACS POST costs, excluding the IdP's own time.
//! Run: cargo bench --bench saml_verify

use std::hint::black_box;
use std::time::Duration;

use authgate::idp::saml_verify::{decode_post, verify, Expect, Trust};
use base64::Engine;
use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use samael::crypto::CertificateDer;

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/saml/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn bench(c: &mut Criterion) {
    let pem = fixture("entra/entra2024_accesscontrol_cert.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let cert = CertificateDer::from(
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap(),
    );
    let trust = Trust {
        idp_entity_id: "https://sts.windows.net/603e9946-79fd-42bc-bae2-2abda19cb695/".into(),
        certs: vec![cert],
    };
    let expect = Expect {
        sp_entity_id: "spn:95210223-1471-47de-8f76-c0f420c1738f",
        acs_url: "http://localhost:8080/saml/SSO",
        request_id: Some("ARQe02d7b7-ac3d-4b0d-bb17-6c54ef3b08f1"),
        allow_idp_initiated: false,
        clock_skew: Duration::from_secs(300),
    };
    let now: DateTime<Utc> = "2024-03-21T12:58:00Z".parse().unwrap();
    let b64 = fixture("entra/entra2024_spring_demo_response.b64");
    assert!(verify(&decode_post(b64.trim()).unwrap(), &trust, &expect, now).is_ok());
    c.bench_function("saml_acs_verify_entra_response", |b| {
        b.iter(|| {
            let xml = decode_post(black_box(b64.trim())).unwrap();
            verify(&xml, &trust, &expect, now).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
