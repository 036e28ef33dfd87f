use super::*;

fn id(auth_time: u64, assured: &[&str]) -> Identity {
    Identity {
        auth_time,
        more: crate::identity::Rare {
            assured: assured.iter().map(|a| (a.to_string(), 100)).collect(),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    }
}

#[test]
fn requirements_are_checked_in_order() {
    let r = Require {
        auth_context: Some("c1".into()),
        max_age: Some(3600),
        mfa: true,
    };
    assert_eq!(r.unmet(&id(0, &[]), 5000, 0), Some(Unmet::AuthContext));
    assert_eq!(r.unmet(&id(0, &["c1"]), 5000, 0), Some(Unmet::Mfa));
    assert_eq!(
        r.unmet(&id(0, &["c1", "mfa"]), 5000, 0),
        Some(Unmet::MaxAge)
    );
    assert_eq!(
        r.unmet(&id(1000, &["c1", "mfa"]), 5000, 0),
        Some(Unmet::MaxAge)
    );
    assert_eq!(r.unmet(&id(1400, &["c1", "mfa"]), 5000, 0), None);
    assert_eq!(r.unmet(&id(1390, &["c1", "mfa"]), 5000, 10), None);
    assert_eq!(
        r.unmet(&id(1389, &["c1", "mfa"]), 5000, 10),
        Some(Unmet::MaxAge)
    );
    assert_eq!(Require::default().unmet(&id(0, &[]), 5000, 0), None);
    // Another context is not this one.
    let c2 = Require {
        auth_context: Some("c2".into()),
        ..Default::default()
    };
    assert_eq!(c2.unmet(&id(0, &["c1"]), 0, 0), Some(Unmet::AuthContext));
}

#[test]
fn a_sign_in_must_prove_what_it_was_asked() {
    let ask = Require {
        auth_context: Some("c1".into()),
        max_age: Some(60),
        mfa: false,
    }
    .ask(None);
    assert_eq!(ask.verify(&id(1000, &["c1"]), 1000, 0), Ok(()));
    assert_eq!(
        ask.verify(&id(1000, &[]), 1000, 0).unwrap_err().label,
        "auth_context_missing"
    );
    assert_eq!(
        ask.verify(&id(0, &["c1"]), 1000, 0).unwrap_err().label,
        "stale_auth_time"
    );
    // Older than max_age when the browser was sent: the IdP did not sign the user in again.
    assert_eq!(
        ask.verify(&id(900, &["c1"]), 1000, 0).unwrap_err().label,
        "stale_auth_time"
    );
    assert_eq!(ask.verify(&id(940, &["c1"]), 1000, 0), Ok(()));
    let mfa = Require {
        mfa: true,
        ..Default::default()
    }
    .ask(None);
    assert_eq!(
        mfa.verify(&id(0, &[]), 0, 0).unwrap_err().label,
        "mfa_missing"
    );
    assert_eq!(mfa.verify(&id(0, &["mfa"]), 0, 0), Ok(()));
}

#[test]
fn tokens_prove_contexts_and_factors() {
    let claims = serde_json::json!({"auth_time": 1234, "acrs": ["c1", "x", "c01", "c25"], "amr": ["pwd", "mfa"]});
    let (at, assured) = from_claims(&claims, &[], 99);
    assert_eq!(at, 1234);
    let names: Vec<&str> = assured.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(names, ["c1", "c25", "mfa"]);
    let acr = serde_json::json!({"acr": "urn:mfa", "amr": "pwd"});
    assert_eq!(
        from_claims(&acr, &["urn:mfa".into()], 1).1,
        [("mfa".to_string(), 1)]
    );
    assert!(from_claims(&acr, &[], 1).1.is_empty());
    assert!(from_claims(&serde_json::json!({"acrs": "c3"}), &[], 1).1 == [("c3".to_string(), 1)]);
    let saml = from_saml(Some(5), Some(&[SAML_MFA.to_string()]), 7);
    assert_eq!(saml, (5, vec![("mfa".to_string(), 7)]));
    assert!(from_saml(
        None,
        Some(&[
            "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password"
                .to_string()
        ]),
        7
    )
    .1
    .is_empty());
}

#[test]
fn api_callers_are_told_what_to_ask_for() {
    let ask = Require {
        auth_context: Some("c1".into()),
        ..Default::default()
    }
    .ask(None);
    let h = ask.challenge("access_token", &[]);
    let b64 = h.split("claims=\"").nth(1).unwrap().trim_end_matches('"');
    let json = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let v: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"access_token": {"acrs": {"essential": true, "value": "c1"}}})
    );
    assert!(h.contains(r#"error="insufficient_claims""#));
    let fresh = Require {
        max_age: Some(600),
        mfa: true,
        ..Default::default()
    }
    .ask(None);
    let h = fresh.challenge("id_token", &["urn:mfa".into()]);
    assert!(
        h.contains(r#"error="insufficient_user_authentication""#),
        "{h}"
    );
    assert!(
        h.contains(r#"acr_values="urn:mfa""#) && h.ends_with("max_age=600"),
        "{h}"
    );
}

#[test]
fn rule_claims_keep_scalars_and_array_elements() {
    let claims = serde_json::json!({"department": "Finance", "level": 7, "manager": true,
        "tags": ["a", 2, {"x": 1}, null], "address": {"city": "x"}});
    let names: Vec<String> = [
        "department",
        "level",
        "manager",
        "tags",
        "address",
        "missing",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let got = rule_claims(&claims, &names);
    let want: Vec<(String, Vec<String>)> = vec![
        ("department".into(), vec!["Finance".into()]),
        ("level".into(), vec!["7".into()]),
        ("manager".into(), vec!["true".into()]),
        ("tags".into(), vec!["a".into(), "2".into()]),
    ];
    assert_eq!(got, want);
}
