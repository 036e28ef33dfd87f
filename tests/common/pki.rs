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

/// A 2048-bit RSA key and a self-signed certificate for it (CN `name`, 30 days), written to
/// `dir` as `<name>.crt` and `<name>.key` (PKCS#8): an app registration's certificate
/// credential.
pub fn self_signed_rsa(
    dir: &Path,
    name: &str,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    openssl::pkey::PKey<openssl::pkey::Private>,
) {
    let pkey = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).expect("rsa"))
        .expect("key");
    let mut n = openssl::x509::X509NameBuilder::new().expect("name");
    n.append_entry_by_text("CN", name).expect("cn");
    let n = n.build();
    let mut b = openssl::x509::X509Builder::new().expect("builder");
    b.set_version(2).expect("v3");
    b.set_subject_name(&n).expect("subject");
    b.set_issuer_name(&n).expect("issuer");
    b.set_pubkey(&pkey).expect("pubkey");
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).expect("time"))
        .expect("nbf");
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).expect("time"))
        .expect("naf");
    b.sign(&pkey, openssl::hash::MessageDigest::sha256())
        .expect("sign");
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, b.build().to_pem().expect("pem")).expect("cert");
    std::fs::write(&key, pkey.private_key_to_pem_pkcs8().expect("pem")).expect("key");
    (cert, key, pkey)
}
