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

pub use builder::*;
pub use gateway::*;
pub use http::*;
pub use peers::*;
pub use process::*;

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT_ID: &str = "authgate-test";
pub const CLIENT_SECRET: &str = "test-client-secret-9f8e7d";
pub const SESSION_SECRET: &str = "test-session-secret-0123456789abcdef0123456789";
