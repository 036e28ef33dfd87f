//! A test PKI made with the openssl command line: CAs, intermediates and leaf certificates
//! (EC P-256, valid 2 days) in a directory, as `<name>.pem` / `<name>.key`.

use std::path::Path;
use std::process::Command;

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (apt install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`<name>.pem`, `<name>.key`).
pub fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", &format!("{name}.key"), "-out", &format!("{name}.pem"),
            "-days", "2", "-subj", &format!("/CN={name}"),
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A leaf certificate `<name>.pem`/`<name>.key` issued by `ca`, for `san`.
pub fn make_leaf(dir: &Path, ca: &str, name: &str, cn: &str, san: &str, usage: &str) {
    openssl(
        dir,
        &[
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", &format!("{name}.key"), "-out", &format!("{name}.csr"),
            "-subj", &format!("/CN={cn}"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName={san}\nextendedKeyUsage={usage}\n"),
    )
    .expect("ext file");
    openssl(
        dir,
        &[
            "x509", "-req", "-in", &format!("{name}.csr"), "-CA", &format!("{ca}.pem"),
            "-CAkey", &format!("{ca}.key"), "-CAcreateserial", "-out", &format!("{name}.pem"),
            "-days", "2", "-extfile", &format!("{name}.ext"),
        ],
    );
}

/// An intermediate CA `<name>` issued by `parent`.
pub fn make_intermediate(dir: &Path, parent: &str, name: &str) {
    openssl(
        dir,
        &[
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", &format!("{name}.key"), "-out", &format!("{name}.csr"),
            "-subj", &format!("/CN={name}"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .expect("ext file");
    openssl(
        dir,
        &[
            "x509", "-req", "-in", &format!("{name}.csr"), "-CA", &format!("{parent}.pem"),
            "-CAkey", &format!("{parent}.key"), "-CAcreateserial", "-out", &format!("{name}.pem"),
            "-days", "2", "-extfile", &format!("{name}.ext"),
        ],
    );
}
