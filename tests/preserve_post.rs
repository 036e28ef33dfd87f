//! `preserve_post`: a form POST whose session has expired reaches the upstream once after the
//! sign-in, with its body intact (urlencoded and multipart, byte for byte) and the new
//! identity, through the real binary and the real `oidc-provider`. A table is refused, each
//! with its page or its 401: cross-site, XHR, a foreign `Origin`, not a form, over the cap, the
//! kept form sent again, asked for by another browser, and after its TTL.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const URLENCODED: &str = "application/x-www-form-urlencoded";

/// A form POST as a browser sends it from the app's own page.
fn post(
    b: &Browser,
    url: &str,
    content_type: &str,
    body: &[u8],
    site: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let mut r = b
        .client
        .post(url)
        .header("content-type", content_type)
        .body(body.to_vec());
    for (k, v) in site {
        r = r.header(*k, *v);
    }
    r.send().unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

fn navigation(origin: &str) -> Vec<(&'static str, String)> {
    vec![
        ("sec-fetch-site", "same-origin".into()),
        ("sec-fetch-mode", "navigate".into()),
        ("origin", origin.into()),
    ]
}

fn headers<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Keeps a form (the POST finds no session), signs in as `user`; returns the replay page's
/// URL the sign-in lands on.
fn keep_and_sign_in(
    b: &Browser,
    gw: &Gateway,
    path: &str,
    ct: &str,
    body: &[u8],
    user: &str,
) -> String {
    let nav = navigation(&gw.url);
    let r = post(b, &format!("{}{path}", gw.url), ct, body, &headers(&nav));
    assert_eq!(
        r.status(),
        302,
        "kept, sent to sign in: {}",
        r.text().unwrap_or_default()
    );
    let callback = b.login_until_callback(&location(&r), user);
    let r = b.get(&callback);
    assert_eq!(r.status(), 302);
    let back = location(&r);
    assert!(back.contains("/_authgate/post_replay?id="), "{back}");
    back
}

/// The replay page: its form's action and the kept form's id.
fn offer(b: &Browser, url: &str) -> (String, String) {
    let r = b.get(url);
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap_or("")
        .to_string();
    assert!(
        csp.contains("script-src 'nonce-") && csp.contains("form-action 'self'"),
        "{csp}"
    );
    let html = r.text().unwrap_or_default();
    let action = html_unescape(&form_action(&html).expect("form"));
    let id = input_value(&html, "authgate_post").expect("field");
    (action, id)
}

/// What the browser does with the replay page: POSTs its one field to the action.
fn send_back(b: &Browser, gw: &Gateway, action: &str, id: &str) -> reqwest::blocking::Response {
    let nav = navigation(&gw.url);
    let mut h = headers(&nav);
    h.push(("accept", "application/json"));
    post(
        b,
        &format!("{}{action}", gw.url),
        URLENCODED,
        format!("authgate_post={id}").as_bytes(),
        &h,
    )
}

#[test]
fn a_kept_form_reaches_the_upstream_once_with_its_body_and_the_new_identity() {
    let env = start_env_with(|b| {
        b.store("memory").edit_route("app", |r| {
            r.with("preserve_post: {max_bytes: 2048, ttl: 4s}")
        })
    });
    let gw = &env.gw;

    // urlencoded, and multipart with a file part: byte for byte.
    let multipart_ct = "multipart/form-data; boundary=----authgate7MA4YWxkTrZu0gW";
    let multipart = b"------authgate7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\ncaf\xc3\xa9 & more\r\n------authgate7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nline 1\r\n--not a boundary\r\nline 3\r\n------authgate7MA4YWxkTrZu0gW--\r\n".to_vec();
    let forms: Vec<(&str, &[u8])> = vec![
        (URLENCODED, b"title=Hello&text=caf%C3%A9+%26+more&n=1"),
        (multipart_ct, &multipart),
    ];
    for (ct, body) in forms {
        let b = Browser::new();
        let back = keep_and_sign_in(&b, gw, "/form/save?draft=1", ct, body, "alice");
        let (action, id) = offer(&b, &back);
        assert_eq!(action, "/form/save?draft=1", "back to where it was sent");
        let replay_cookie = b
            .cookie(&gw.url, "authgate_session_replay")
            .expect("replay cookie");
        // Another form sent meanwhile is not mistaken for the replay.
        let nav = navigation(&gw.url);
        let mut h = headers(&nav);
        h.push(("accept", "application/json"));
        let other: Value = post(&b, &format!("{}{action}", gw.url), URLENCODED, b"x=2", &h)
            .json()
            .expect("echo");
        assert_eq!(other["body"], "x=2");
        let r = send_back(&b, gw, &action, &id);
        assert_eq!(r.status(), 200);
        let seen: Value = r.json().expect("echo");
        assert_eq!(seen["method"], "POST");
        assert_eq!(seen["url"], "/form/save?draft=1");
        assert_eq!(
            seen["body"].as_str().map(str::as_bytes),
            Some(body),
            "{ct}: the body, intact"
        );
        assert_eq!(seen["headers"]["content-type"], ct);
        assert_eq!(seen["headers"]["content-length"], body.len().to_string());
        assert_eq!(
            seen["headers"]["x-auth-user"], ALICE_OID,
            "with the new identity"
        );
        assert!(seen["headers"]["cookie"]
            .as_str()
            .is_none_or(|c| !c.contains("authgate_session")));
        // Sent again (the replay cookie kept by hand): refused, and the upstream not reached.
        let session = b.cookie(&gw.url, "authgate_session").expect("session");
        let r = api()
            .post(format!("{}{action}", gw.url))
            .header(
                "cookie",
                format!("authgate_session={session}; authgate_session_replay={replay_cookie}"),
            )
            .header("content-type", URLENCODED)
            .body(format!("authgate_post={id}"))
            .send()
            .expect("again");
        assert_eq!(r.status(), 410);
        assert!(r
            .text()
            .unwrap_or_default()
            .contains("Reason: post_expired"));
    }

    // Asked for by another (signed-in) browser: refused.
    let b = Browser::new();
    let back = keep_and_sign_in(&b, gw, "/form/x", URLENCODED, b"a=1", "alice");
    let other = Browser::new();
    assert_eq!(
        other.sign_in(&format!("{}/x", gw.url), "bob").0.status(),
        200
    );
    let r = other.get(&back);
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .unwrap_or_default()
        .contains("Reason: post_other_browser"));

    // At most three kept per browser: a fourth forgets the oldest.
    let b = Browser::new();
    let nav = navigation(&gw.url);
    let starts: Vec<String> = (0..4)
        .map(|i| {
            let r = post(
                &b,
                &format!("{}/form/n{i}", gw.url),
                URLENCODED,
                b"a=1",
                &headers(&nav),
            );
            assert_eq!(r.status(), 302);
            location(&r)
        })
        .collect();
    let land = |start: &str| location(&b.get(&b.login_until_callback(start, "alice")));
    let r = b.get(&land(&starts[0]));
    assert_eq!(r.status(), 410, "the oldest was forgotten");
    let (action, _) = offer(&b, &land(&starts[3]));
    assert_eq!(action, "/form/n3");

    // After its TTL: gone, said so.
    let b = Browser::new();
    let nav = navigation(&gw.url);
    let r = post(
        &b,
        &format!("{}/form/late", gw.url),
        URLENCODED,
        b"a=1",
        &headers(&nav),
    );
    assert_eq!(r.status(), 302);
    std::thread::sleep(Duration::from_millis(4500));
    let callback = b.login_until_callback(&location(&r), "alice");
    let back = location(&b.get(&callback));
    let r = b.get(&back);
    assert_eq!(r.status(), 410);
    assert!(r
        .text()
        .unwrap_or_default()
        .contains("Reason: post_expired"));
}

/// A row of the refusal table: what it is, the content type, the request's headers.
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);

#[test]
fn posts_that_may_not_be_kept_get_a_401_or_a_page_never_a_silent_get() {
    let env = start_env_with(|b| {
        let up = b.upstream();
        b.store("memory")
            .edit_route("app", |r| {
                r.with("preserve_post: {max_bytes: 2048, ttl: 1m}")
            })
            .routes_first([RouteSpec::new("big", &up)
                .prefix("/big")
                .with("preserve_post: true")])
    });
    let gw = &env.gw;
    let url = format!("{}/form/save", gw.url);
    let foreign = "https://evil.example";
    let cases: Vec<Case> = vec![
        (
            "cross-site",
            URLENCODED,
            vec![
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "navigate"),
            ],
        ),
        (
            "same-site",
            URLENCODED,
            vec![
                ("sec-fetch-site", "same-site"),
                ("sec-fetch-mode", "navigate"),
            ],
        ),
        (
            "fetch / XHR",
            URLENCODED,
            vec![
                ("sec-fetch-site", "same-origin"),
                ("sec-fetch-mode", "cors"),
            ],
        ),
        (
            "X-Requested-With",
            URLENCODED,
            vec![("x-requested-with", "XMLHttpRequest"), ("origin", &gw.url)],
        ),
        ("foreign Origin", URLENCODED, vec![("origin", foreign)]),
        (
            "same-origin fetch metadata, foreign Origin",
            URLENCODED,
            vec![
                ("sec-fetch-site", "same-origin"),
                ("sec-fetch-mode", "navigate"),
                ("origin", foreign),
            ],
        ),
        ("no Origin, no fetch metadata", URLENCODED, vec![]),
        (
            "not a form",
            "application/json",
            vec![
                ("sec-fetch-site", "same-origin"),
                ("sec-fetch-mode", "navigate"),
            ],
        ),
    ];
    for (case, ct, h) in cases {
        let b = Browser::new();
        let r = post(&b, &url, ct, b"a=1", &h);
        assert_eq!(r.status(), 401, "{case}: not kept, not redirected");
        assert!(
            b.cookie(&gw.url, "authgate_session_post").is_none(),
            "{case}: nothing kept"
        );
    }
    // Over the cap: a page saying so.
    let b = Browser::new();
    let nav = navigation(&gw.url);
    let r = post(&b, &url, URLENCODED, &vec![b'a'; 3000], &headers(&nav));
    assert_eq!(r.status(), 413);
    assert!(r
        .text()
        .unwrap_or_default()
        .contains("Reason: post_too_large"));
    // A plain navigation without fetch metadata but with the gateway's Origin is kept.
    let b = Browser::new();
    let r = post(&b, &url, URLENCODED, b"a=1", &[("origin", gw.url.as_str())]);
    assert_eq!(r.status(), 302);
    assert!(b.cookie(&gw.url, "authgate_session_post").is_some());
    // Clients that drop their cookies are not held by the per-browser cap: a replica keeps at
    // most 64 MiB of forms at a time, then says so.
    let big = vec![b'a'; 1_000_000];
    let full = (1..=80).find(|_| {
        let r = post(
            &Browser::new(),
            &format!("{}/big/upload", gw.url),
            URLENCODED,
            &big,
            &headers(&nav),
        );
        match r.status().as_u16() {
            302 => false,
            503 => {
                assert!(r
                    .text()
                    .unwrap_or_default()
                    .contains("Reason: post_store_full"));
                true
            }
            other => panic!("{other}"),
        }
    });
    assert!(
        matches!(full, Some(n) if (60..=68).contains(&n)),
        "refused at {full:?}"
    );

    // preserve_post needs a store that keeps the form.
    let cfg = ConfigBuilder::new("http://127.0.0.1:1")
        .oidc("p", "https://idp.example")
        .route(RouteSpec::new("app", "127.0.0.1:2").with("preserve_post: true"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["check", "-c"])
        .arg({
            let p = env.gw.dir.path().join("pp.yaml");
            write_file(&p, &cfg.yaml());
            p
        })
        .output()
        .expect("check");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("routes[0].preserve_post: keeps the form server-side"),
        "{text}"
    );
}
