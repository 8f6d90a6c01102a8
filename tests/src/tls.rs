//! A throwaway certificate authority for the lab, made with openssl at start-up, and a server
//! certificate for www.foobar.com signed by it: HTTPS end to end through the VIP, which foobar
//! passes untouched (the seeds' "no HTTPS" weak point).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The lab CA's certificate (for `curl --cacert`) and the web servers' key pair.
pub struct LabCa {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl LabCa {
    /// Makes a CA and a certificate for `www.foobar.com` in `dir` (valid one day).
    pub fn create(dir: &Path) -> LabCa {
        std::fs::create_dir_all(dir).expect("tls dir");
        let mut ca = vec!["req", "-x509"];
        ca.extend_from_slice(&EC);
        ca.extend_from_slice(&["-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=foobar lab CA"]);
        openssl(dir, &ca);
        let (server_cert, server_key) = issue(dir, "www", "/CN=www.foobar.com", "DNS:www.foobar.com");
        LabCa { ca_cert: dir.join("ca.crt"), server_cert, server_key }
    }

    /// A certificate and key signed by this CA for `name`, with `san` (e.g. `IP:198.51.100.31`).
    pub fn issue(&self, name: &str, san: &str) -> (PathBuf, PathBuf) {
        let dir = self.ca_cert.parent().expect("the CA's directory");
        issue(dir, name, &format!("/CN={name}"), san)
    }
}

/// An elliptic-curve key, unencrypted.
const EC: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

fn issue(dir: &Path, name: &str, subject: &str, san: &str) -> (PathBuf, PathBuf) {
    let (key, csr, crt, ext) =
        (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
    let mut req = vec!["req"];
    req.extend_from_slice(&EC);
    req.extend_from_slice(&["-keyout", &key, "-out", &csr, "-subj", subject]);
    openssl(dir, &req);
    std::fs::write(dir.join(&ext), format!("subjectAltName={san}\n")).expect("san");
    let sign = [
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        &crt,
        "-days",
        "1",
        "-extfile",
        &ext,
    ];
    openssl(dir, &sign);
    (dir.join(crt), dir.join(key))
}
