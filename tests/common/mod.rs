//! Test harness: starts the real gateway binary, the real OpenID provider (npm
//! `oidc-provider`, testenv/oidc-provider.mjs) and a real upstream (testenv/upstream.mjs) on
//! ephemeral loopback ports, and stops them when dropped. No fixed ports, no sleeps as
//! synchronization: readiness is a line on stdout or a 200 from /readyz.
#![allow(dead_code, unused_imports)]

pub mod builder;
pub mod gateway;
pub mod http;
pub mod peers;
pub mod pki;
pub mod process;
pub mod redis;
pub mod replicas;
pub mod rogue_op;
pub mod ws;

pub use builder::*;
pub use gateway::*;
pub use http::*;
pub use peers::*;
pub use process::*;
pub use ws::*;

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT_ID: &str = "authgate-test";
pub const CLIENT_SECRET: &str = "test-client-secret-9f8e7d";
pub const SESSION_SECRET: &str = "test-session-secret-0123456789abcdef0123456789";

/// The test OpenID provider's users (testenv/oidc-provider.mjs), as a standard provider
/// (`user_claim: oid`) hands them upstream.
pub const ALICE_OID: &str = "00000000-0000-0000-66f3-3332eca7ea81";
pub const BOB_OID: &str = "00000000-0000-0000-a1c4-7f3e2b1d9c55";
pub const ADMINS: &str = "6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1b1";
pub const STAFF: &str = "c3d2a8f1-3e48-4a0f-8d53-7d0a7b6b2f11";

/// Who a test user is, header by header.
pub struct TestUser {
    pub oid: &'static str,
    pub email: &'static str,
    pub name: &'static str,
    /// `X-Auth-Groups` (group IDs, in the token's order).
    pub groups: &'static str,
    /// `X-Auth-Roles`; None: the header is absent (no app role).
    pub roles: Option<&'static str>,
}

pub const ALICE: TestUser = TestUser {
    oid: ALICE_OID,
    email: "alice@contoso.example",
    name: "Alice Example",
    groups: "6e6a3c0c-1d87-4d39-9b9a-9d54a0f0a1b1,c3d2a8f1-3e48-4a0f-8d53-7d0a7b6b2f11",
    roles: Some("Reader,Admin"),
};

pub const BOB: TestUser = TestUser {
    oid: BOB_OID,
    email: "bob@contoso.example",
    name: "Bob Example",
    groups: "c3d2a8f1-3e48-4a0f-8d53-7d0a7b6b2f11",
    roles: None,
};

/// The identity headers an upstream received (the echo upstream's `headers`) are exactly
/// `who`'s, signed in with `provider` in the test tenant.
pub fn assert_identity(headers: &serde_json::Value, who: &TestUser, provider: &str) {
    let h = headers;
    assert_eq!(h["x-auth-user"], who.oid, "user: {h}");
    assert_eq!(h["x-auth-email"], who.email, "email: {h}");
    assert_eq!(h["x-auth-name"], who.name, "name: {h}");
    assert_eq!(h["x-auth-tenant"], TENANT, "tenant: {h}");
    assert_eq!(h["x-auth-groups"], who.groups, "groups: {h}");
    match who.roles {
        Some(r) => assert_eq!(h["x-auth-roles"], r, "roles: {h}"),
        None => assert!(h.get("x-auth-roles").is_none(), "no roles header: {h}"),
    }
    assert_eq!(h["x-auth-provider"], provider, "provider: {h}");
}

/// `base` (a JSON object: claims, a body) with the members of `over` set; a null in `over`
/// removes that member.
pub fn merged(mut base: serde_json::Value, over: serde_json::Value) -> serde_json::Value {
    if let (Some(b), Some(o)) = (base.as_object_mut(), over.as_object()) {
        for (k, v) in o {
            if v.is_null() {
                b.remove(k);
            } else {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    base
}
