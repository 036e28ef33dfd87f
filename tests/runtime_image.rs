//! The container image's runtime stage, checked without a container engine: a Debian root
//! filesystem is built with `mmdebstrap` from exactly the packages the Dockerfile's runtime
//! stage installs (read from the Dockerfile, so the two cannot drift apart), the gateway binary
//! is copied in, and it is started inside that root (chroot, as the image's user 65532) with a
//! configuration, and a whole sign-in runs through it against the real OpenID provider and
//! upstream on the host. Removing one of the packages afterwards makes the binary fail to
//! start: the check can fail.
//!
//! Needs root (chroot, and mmdebstrap's root mode) and a Debian mirror (apt's), as
//! `scripts/setup.sh` does.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const DOCKERFILE: &str = include_str!("../Dockerfile");

/// The runtime stage: its base image's Debian suite and the packages its `apt-get install`
/// names.
fn runtime_stage() -> (String, Vec<String>) {
    let stages: Vec<&str> = DOCKERFILE.split("\nFROM ").collect();
    let last = stages.last().expect("a FROM");
    let base = last.lines().next().expect("base image").trim();
    let suite = base
        .strip_prefix("debian:")
        .and_then(|t| t.split('-').next())
        .unwrap_or_else(|| panic!("the runtime stage is not a Debian image: {base}"))
        .to_string();
    // The RUN instruction, with its line continuations joined.
    let joined = last.replace("\\\n", " ");
    let install = joined
        .split("&&")
        .find(|c| c.contains("apt-get install"))
        .expect("an apt-get install in the runtime stage");
    let packages: Vec<String> = install
        .split_whitespace()
        .skip_while(|w| *w != "install")
        .skip(1)
        .filter(|w| !w.starts_with('-'))
        .map(str::to_string)
        .collect();
    (suite, packages)
}

#[test]
fn the_dockerfile_runtime_stage_is_read_as_written() {
    let (suite, packages) = runtime_stage();
    assert_eq!(suite, "bookworm");
    assert_eq!(
        packages,
        [
            "libssl3",
            "libxml2",
            "libxmlsec1",
            "libxmlsec1-openssl",
            "ca-certificates"
        ]
    );
}

fn mmdebstrap(root: &Path, suite: &str, packages: &[String]) {
    let out = Command::new("mmdebstrap")
        .args(["--variant=minbase", "--quiet"])
        .arg(format!("--include={}", packages.join(",")))
        .arg(suite)
        .arg(root)
        .output()
        .expect("mmdebstrap (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "mmdebstrap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `args` inside `root` as the image's user; (success, output).
fn in_root(root: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("chroot")
        .arg("--userspec=65532:65532")
        .arg(root)
        .args(args)
        .output()
        .expect("chroot");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_binary_signs_a_user_in_from_the_runtime_stages_packages_alone() {
    // chroot and mmdebstrap's root mode need root.
    let uid = Command::new("id").arg("-u").output().expect("id");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "this test builds a root filesystem and chroots into it: run the suite as root (CI does)"
    );
    let (suite, packages) = runtime_stage();
    let work = tempfile::tempdir().expect("tempdir");
    let root = work.path().join("root");
    mmdebstrap(&root, &suite, &packages);
    let bin = root.join("usr/local/bin/authgate");
    std::fs::copy(env!("CARGO_BIN_EXE_authgate"), &bin).expect("copy the binary in");

    // Every library the binary needs is in the root.
    let (ok, ldd) = in_root(&root, &["/usr/bin/ldd", "/usr/local/bin/authgate"]);
    assert!(ok && !ldd.contains("not found"), "{ldd}");
    let (ok, version) = in_root(&root, &["/usr/local/bin/authgate", "version"]);
    assert!(ok && version.starts_with("authgate "), "{version}");
    // The default build's allocator (feature `jemalloc`, linked statically): nothing for the
    // runtime stage to install, and the image's build is the one benchmarked.
    assert!(version.contains("allocator: jemalloc"), "{version}");

    // Serve from inside the root, with a configuration there, as user 65532.
    let port = free_port();
    let admin = free_port();
    let upstream = start_upstream();
    let op = start_op(&format!("http://127.0.0.1:{port}"), 0);
    let yaml = config(port, admin, &op.issuer, upstream.port, "");
    std::fs::create_dir_all(root.join("etc/authgate")).expect("etc/authgate");
    std::fs::write(root.join("etc/authgate/gateway.yaml"), &yaml).expect("config");
    let (ok, check) = in_root(
        &root,
        &[
            "/usr/local/bin/authgate",
            "check",
            "-c",
            "/etc/authgate/gateway.yaml",
        ],
    );
    // The secrets come from the environment at run time; check sees none and says so.
    assert!(!ok && check.contains("TEST_SESSION_SECRET"), "{check}");
    let mut cmd = Command::new("chroot");
    cmd.arg("--userspec=65532:65532").arg(&root).args([
        "/usr/local/bin/authgate",
        "run",
        "-c",
        "/etc/authgate/gateway.yaml",
    ]);
    let log_dir = tempfile::tempdir().expect("tempdir");
    let gw = start_gateway_with(cmd, port, admin, log_dir);

    let b = Browser::new();
    let (r, _) = b.sign_in(&format!("{}/hello", gw.url), "alice");
    assert_eq!(r.status(), 200, "log:\n{}", gw.log_text());
    let seen = echo(b.api_get(&format!("{}/hello", gw.url)));
    assert_eq!(seen["url"], "/hello");
    assert!(
        seen["headers"]["x-auth-user"]
            .as_str()
            .is_some_and(|u| !u.is_empty()),
        "{seen}"
    );
    drop(gw);

    // Without one of the stage's packages, the binary does not start: the check above could
    // have failed.
    let out = Command::new("chroot")
        .arg(&root)
        .args(["dpkg", "--purge", "--force-depends", "libxmlsec1-openssl"])
        .output()
        .expect("dpkg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, text) = in_root(&root, &["/usr/local/bin/authgate", "version"]);
    assert!(!ok && text.contains("libxmlsec1-openssl"), "{text}");
}

/// The build stage: its `rust:` image's toolchain version and the paths its `COPY`
/// instructions bring into the build context.
fn build_stage() -> (String, Vec<String>) {
    let first = DOCKERFILE
        .split("\nFROM ")
        .find(|s| s.trim_start().starts_with("rust:"))
        .expect("a build stage FROM rust:");
    let image = first.lines().next().expect("base image").trim();
    let toolchain = image
        .strip_prefix("rust:")
        .and_then(|t| t.split('-').next())
        .expect("rust:<version>-<suite>")
        .to_string();
    let copied = first
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            // Every word but the destination.
            words[..words.len().saturating_sub(1)]
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    (toolchain, copied)
}

fn version(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// `cargo metadata` of the manifest in `dir`: locked, offline (what the lock file resolves to,
/// from the registry cache the build already filled), and for Linux only: a build on this
/// host fetched Linux's packages alone, and `--offline` without the platform filter wants
/// every platform's crates (Android's, Windows'), which a fresh machine has never fetched.
fn metadata(dir: &Path) -> Result<serde_json::Value, String> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .output()
        .expect("cargo metadata");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// The image is built with `cargo build --locked` in a context holding only what the build
/// stage copies: that context must resolve (a path dependency left out, such as the
/// vendored pingora crates `[patch.crates-io]` names, fails the image build). Checked the
/// way cargo would first fail: the manifest and lock file loaded from a copy of exactly
/// those paths. Leaving `vendor` out of the Dockerfile makes this fail (checked).
#[test]
fn the_build_stage_copies_everything_the_build_resolves() {
    let (_, copied) = build_stage();
    assert!(copied.iter().any(|c| c == "Cargo.lock"), "{copied:?}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    for path in &copied {
        let out = Command::new("cp")
            .arg("-r")
            .arg(root.join(path))
            .arg(dir.path())
            .output()
            .expect("cp");
        assert!(out.status.success(), "COPY {path}: not in the repository");
    }
    if let Err(e) = metadata(dir.path()) {
        panic!("the Dockerfile's build context does not resolve (a COPY missing?): {e}");
    }
    // And the same check does fail without the vendored crates.
    std::fs::remove_dir_all(dir.path().join("vendor")).expect("vendor copied");
    let without = metadata(dir.path()).expect_err("resolves without vendor/");
    assert!(
        without.contains("vendor"),
        "fails for another reason: {without}"
    );
}

/// The build stage's toolchain builds what the lock file pins: it is at least the
/// `rust-version` of every locked package (an update that needs a newer compiler makes this
/// fail) and the one `Cargo.toml` declares, which in turn is what the README tells users.
#[test]
fn the_build_stage_toolchain_is_new_enough_for_the_lock_file() {
    let (toolchain, _) = build_stage();
    let meta = metadata(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("cargo metadata");
    let packages = meta["packages"].as_array().expect("packages");
    let needs = packages
        .iter()
        .filter_map(|p| Some((p["rust_version"].as_str()?, p["name"].as_str()?)))
        .max_by_key(|(v, _)| version(v))
        .expect("some package declares a rust-version");
    assert!(
        version(&toolchain) >= version(needs.0),
        "FROM rust:{toolchain} is older than {} needs ({})",
        needs.1,
        needs.0
    );
    let ours = packages
        .iter()
        .find(|p| p["name"] == "authgate")
        .and_then(|p| p["rust_version"].as_str())
        .expect("Cargo.toml declares rust-version");
    assert!(
        version(ours) >= version(needs.0),
        "Cargo.toml's rust-version {ours} is older than {} needs ({})",
        needs.1,
        needs.0
    );
    assert_eq!(
        version(&toolchain),
        version(ours),
        "FROM rust: and rust-version"
    );
    let readme = include_str!("../README.md")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        readme.contains(&format!("Rust {ours}+ must be installed")),
        "the README names the Rust version users need ({ours})"
    );
}
