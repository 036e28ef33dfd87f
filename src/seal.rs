//! Sealing values for cookies: AES-256-GCM (cookie's `PrivateJar`, key derived by HKDF from
//! `session.secret`), with the cookie's *name* as associated data, so a value sealed for one
//! cookie cannot be replayed as another.

use cookie::{Cookie, CookieJar, Key};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Browsers drop cookies over ~4 KB; stay clear of that with name and attributes.
pub const MAX_COOKIE_VALUE: usize = 3800;
/// Seals and opens cookie values.
#[derive(Clone)]
pub struct Sealer {
    key: Key,
}

impl Sealer {
    /// `secret` must be at least 32 bytes (the config check enforces it).
    pub fn new(secret: &[u8]) -> Option<Self> {
        (secret.len() >= 32).then(|| Self {
            key: Key::derive_from(secret),
        })
    }

    pub fn seal<T: Serialize>(&self, name: &str, value: &T) -> Option<String> {
        let json = serde_json::to_string(value).ok()?;
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key)
            .add(Cookie::new(name.to_string(), json));
        jar.get(name).map(|c| c.value().to_string())
    }

    pub fn open<T: DeserializeOwned>(&self, name: &str, sealed: &str) -> Option<T> {
        if sealed.len() > MAX_COOKIE_VALUE * 2 {
            return None;
        }
        self.open_any(name, sealed)
    }

    /// Opens a value of any size: for values kept server-side, whose size the caller bounds.
    pub fn open_any<T: DeserializeOwned>(&self, name: &str, sealed: &str) -> Option<T> {
        let jar = CookieJar::new();
        let c = jar
            .private(&self.key)
            .decrypt(Cookie::new(name.to_string(), sealed.to_string()))?;
        serde_json::from_str(c.value()).ok()
    }
}
