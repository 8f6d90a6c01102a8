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
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let mut ca = vec!["req", "-x509"];
        ca.extend_from_slice(&ec);
        ca.extend_from_slice(&["-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=foobar lab CA"]);
        openssl(dir, &ca);
        let mut csr = vec!["req"];
        csr.extend_from_slice(&ec);
        csr.extend_from_slice(&["-keyout", "www.key", "-out", "www.csr", "-subj", "/CN=www.foobar.com"]);
        openssl(dir, &csr);
        std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:www.foobar.com\n").expect("san");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "www.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "www.crt",
                "-days",
                "1",
                "-extfile",
                "san.ext",
            ],
        );
        LabCa { ca_cert: dir.join("ca.crt"), server_cert: dir.join("www.crt"), server_key: dir.join("www.key") }
    }
}
