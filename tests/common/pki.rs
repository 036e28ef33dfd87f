//! A test PKI made with the openssl command line: CAs, intermediates and leaf certificates
//! (EC P-256, valid 2 days) in a directory, as `<name>.pem` / `<name>.key`.

use std::path::Path;
use std::process::Command;

/// A directory of test certificates and keys.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn empty() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    /// The path of file `f` in it, as a string for a config.
    pub fn path(&self, f: &str) -> String {
        self.dir.path().join(f).display().to_string()
    }
}

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
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A leaf certificate `<name>.pem`/`<name>.key` issued by `ca`, for `san`.
pub fn make_leaf(dir: &Path, ca: &str, name: &str, cn: &str, san: &str, usage: &str) {
    issue(
        dir,
        ca,
        name,
        cn,
        &format!("subjectAltName={san}\nextendedKeyUsage={usage}\n"),
    );
}

/// An intermediate CA `<name>` issued by `parent`.
pub fn make_intermediate(dir: &Path, parent: &str, name: &str) {
    issue(
        dir,
        parent,
        name,
        name,
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    );
}

/// A new key `<name>.key` and its certificate `<name>.pem` (subject CN `cn`, extensions
/// `ext`), signed by `ca`.
fn issue(dir: &Path, ca: &str, name: &str, cn: &str, ext: &str) {
    let (key, csr, pem, extfile) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    let subject = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ],
    );
    std::fs::write(dir.join(&extfile), ext).expect("ext file");
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &extfile,
        ],
    );
}
