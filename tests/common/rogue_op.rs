//! A malicious OpenID provider: a real HTTP server on loopback whose every answer (discovery,
//! key set, token endpoint) the test sets, and RSA keys to sign whatever tokens the test
//! wants (other tenants' issuers, consumer-tenant keys, duplicate kids, `alg: none`, HS256
//! keyed with a public key). Answers can be sent chunked without a length, or never end.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use serde_json::{json, Value};

/// How a path is answered.
#[derive(Clone)]
pub enum Answer {
    /// 200 with a JSON body and its Content-Length.
    Json(Value),
    /// This status with this body (JSON or not) and its Content-Length.
    Status(u16, String),
    /// 200 with this body, chunked, no Content-Length.
    Chunked(Vec<u8>),
    /// 200, chunked, `{"keys":[` and then filler for as long as the client reads.
    Endless,
}

pub struct RogueOp {
    pub base: String,
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    /// Paths requested, in order (the token endpoint's form bodies too).
    pub log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for RogueOp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.base.trim_start_matches("http://"));
    }
}

impl RogueOp {
    pub fn start() -> RogueOp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let answers: Arc<Mutex<HashMap<String, Answer>>> = Default::default();
        let log: Arc<Mutex<Vec<String>>> = Default::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (a, l, s) = (answers.clone(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (a, l, s) = (a.clone(), l.clone(), s.clone());
                std::thread::spawn(move || serve(conn, &a, &l, &s));
            }
        });
        RogueOp {
            base,
            answers,
            log,
            stop,
        }
    }

    pub fn set(&self, path: &str, answer: Answer) {
        self.answers
            .lock()
            .expect("answers")
            .insert(path.to_string(), answer);
    }

    /// An OpenID discovery document for `issuer` at `<path_base>/.well-known/...`, keys at
    /// `<path_base>/keys`, tokens at `/token`; `extra` members merged in.
    pub fn discovery(&self, path_base: &str, issuer: &str, extra: Value) {
        let mut doc = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{}/authorize", self.base),
            "token_endpoint": format!("{}/token", self.base),
            "jwks_uri": format!("{}{path_base}/keys", self.base),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                d.insert(k.clone(), v.clone());
            }
        }
        self.set(
            &format!("{path_base}/.well-known/openid-configuration"),
            Answer::Json(doc),
        );
    }

    /// The token endpoint answers with this ID token.
    pub fn token_response(&self, id_token: &str) {
        self.set(
            "/token",
            Answer::Json(json!({"access_token": "opaque", "token_type": "Bearer",
                "expires_in": 3600, "id_token": id_token})),
        );
    }
}

fn serve(
    mut conn: TcpStream,
    answers: &Mutex<HashMap<String, Answer>>,
    log: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    let _ = reader.read_exact(&mut body);
    log.lock()
        .expect("log")
        .push(format!("{path} {}", String::from_utf8_lossy(&body)));
    let answer = answers.lock().expect("answers").get(&path).cloned();
    let _ = match answer {
        None => conn
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
        Some(Answer::Json(v)) => {
            let b = v.to_string();
            conn.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                    b.len()
                )
                .as_bytes(),
            )
        }
        Some(Answer::Status(code, b)) => conn.write_all(
            format!(
                "HTTP/1.1 {code} Status\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                b.len()
            )
            .as_bytes(),
        ),
        Some(Answer::Chunked(b)) => {
            let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
            for c in b.chunks(64 * 1024) {
                out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                out.extend_from_slice(c);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            conn.write_all(&out)
        }
        Some(Answer::Endless) => {
            let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n9\r\n{\"keys\":[\r\n";
            if conn.write_all(head).is_err() {
                return;
            }
            let filler = vec![b' '; 64 * 1024];
            let chunk = [
                format!("{:x}\r\n", filler.len()).into_bytes(),
                filler,
                b"\r\n".to_vec(),
            ]
            .concat();
            // Until the gateway hangs up (its byte cap) or 2 GiB, whichever comes first.
            for _ in 0..32 * 1024 {
                if stop.load(Ordering::SeqCst) || conn.write_all(&chunk).is_err() {
                    break;
                }
            }
            Ok(())
        }
    };
}

/// An RSA signing key with a kid.
pub struct Key {
    pub kid: String,
    pkey: PKey<Private>,
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Key {
    pub fn new(kid: &str) -> Key {
        let rsa = Rsa::generate(2048).expect("rsa");
        Key {
            kid: kid.into(),
            pkey: PKey::from_rsa(rsa).expect("pkey"),
        }
    }

    /// The public JWK, with an Entra-style `issuer` member when given.
    pub fn jwk(&self, issuer: Option<&str>) -> Value {
        let rsa = self.pkey.rsa().expect("rsa");
        let mut k = json!({"kty": "RSA", "use": "sig", "kid": self.kid,
            "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec())});
        if let Some(i) = issuer {
            k["issuer"] = json!(i);
        }
        k
    }

    pub fn public_pem(&self) -> Vec<u8> {
        self.pkey.public_key_to_pem().expect("pem")
    }

    /// An RS256 JWT with this key's kid (`header` members merged over the defaults).
    pub fn sign(&self, header: Value, claims: &Value) -> String {
        let mut h = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        if let (Some(h), Some(extra)) = (h.as_object_mut(), header.as_object()) {
            for (k, v) in extra {
                h.insert(k.clone(), v.clone());
            }
        }
        let input = format!(
            "{}.{}",
            b64(h.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut s = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &self.pkey)
            .expect("signer");
        s.update(input.as_bytes()).expect("sign");
        format!("{input}.{}", b64(&s.sign_to_vec().expect("sign")))
    }
}

/// A JWT with `alg: none` and no signature.
pub fn unsigned(kid: &str, claims: &Value) -> String {
    let h = json!({"alg": "none", "typ": "JWT", "kid": kid});
    format!(
        "{}.{}.",
        b64(h.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// An HS256 JWT keyed with `secret` (say, a public key's PEM: the key-confusion attack).
pub fn hs256(kid: &str, secret: &[u8], claims: &Value) -> String {
    let h = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        b64(h.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = PKey::hmac(secret).expect("hmac key");
    let mut s =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).expect("signer");
    s.update(input.as_bytes()).expect("sign");
    format!("{input}.{}", b64(&s.sign_to_vec().expect("sign")))
}
