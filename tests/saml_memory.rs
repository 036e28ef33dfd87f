//! A verified SAML response leaves nothing behind. Found by the `saml_response` fuzz target
//! under AddressSanitizer: samael 0.0.22, when the signed element is not the document's root
//! (Entra signs the assertion inside the response), moved it to the root and never freed the
//! old root (the response around it), nor the namespace array libxml's `get_namespaces`
//! returns; about 2.4 KB per verified response, which anyone holding one signed response could
//! repeat at the ACS. Patched in vendor/samael (PATCHES.md). Measured with glibc's allocator
//! statistics, alone in this test binary (no other test allocates meanwhile).

use std::time::Duration;

use authgate::idp::saml_verify::{decode_post, verify, Expect, Trust};
use base64::Engine;
use chrono::{DateTime, Utc};
use samael::crypto::CertificateDer;

fn fixture(path: &str) -> String {
    let p = format!("{}/tests/fixtures/saml/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Bytes the process holds from malloc now.
fn allocated() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    unsafe { libc::mallinfo2() }.uordblks
}

#[test]
fn verifying_a_real_entra_response_again_and_again_holds_no_more_memory() {
    let pem = fixture("entra/entra2024_accesscontrol_cert.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("certificate");
    let trust = Trust {
        idp_entity_id: "https://sts.windows.net/603e9946-79fd-42bc-bae2-2abda19cb695/".into(),
        certs: vec![CertificateDer::from(der)],
    };
    let expect = Expect {
        sp_entity_id: "spn:95210223-1471-47de-8f76-c0f420c1738f",
        acs_url: "http://localhost:8080/saml/SSO",
        request_id: Some("ARQe02d7b7-ac3d-4b0d-bb17-6c54ef3b08f1"),
        allow_idp_initiated: false,
        clock_skew: Duration::from_secs(300),
    };
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339("2024-03-21T12:58:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let xml = decode_post(fixture("entra/entra2024_spring_demo_response.b64").trim())
        .expect("the fixture decodes");
    let once = || {
        let v = verify(&xml, &trust, &expect, at).expect("the genuine response verifies");
        assert_eq!(v.name_id, "V6nCP3nUyEPB-MjBnY5I8hucjll7hJ9IYhsJ5zNdkcs");
    };
    // Warm: one-time allocations (xmlsec's and libxml2's globals, thread caches).
    for _ in 0..50 {
        once();
    }
    // Two rounds: a leak grows in each; what only warms up (a cache filling to its bound)
    // grows in the first at most.
    const N: usize = 1000;
    let mut grown = [0usize; 2];
    for g in &mut grown {
        let before = allocated();
        for _ in 0..N {
            once();
        }
        *g = allocated().saturating_sub(before);
    }
    eprintln!("{N} verifications, twice: {grown:?} bytes more held");
    // Unpatched: ~2.9 MB for each 1,000. Allowed: a few pages of allocator noise.
    assert!(
        grown[1] < 32 * 1024,
        "{} bytes more held after {N} more verifications ({} per verification)",
        grown[1],
        grown[1] / N
    );
}
