//! What the channel tests share: a Japanese alert notice, a private CA and
//! server certificate made by Debian's `openssl` (as an administrator
//! would make them), a rustls server configuration for the local peers
//! (SMTP sink, syslog over TLS), a port nobody listens on, `[notify]`
//! parsed from TOML, and received mail parsed.

#![allow(dead_code)]

pub mod http;
pub mod smtp;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use mailtrail_model::Direction;
use mailtrail_notify::{AlertNotice, MessageSummary, NotifyConfig, Severity};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

/// A high-severity alert about an outbound message with Japanese text.
pub fn notice() -> AlertNotice {
    AlertNotice {
        alert_id: 42,
        rule_id: "confidential-to-external".into(),
        rule_name: "社外秘の社外送信".into(),
        severity: Severity::High,
        condition: "keywords in attachment name".into(),
        matched_text: "社外秘_顧客リスト.xlsx".into(),
        message: MessageSummary {
            id: 1234,
            message_id: Some("20261127050500.abc@example.co.jp".into()),
            time: Utc.with_ymd_and_hms(2026, 11, 27, 5, 5, 0).unwrap(),
            subject: "11月分 顧客リスト送付".into(),
            from: "山田 太郎 <yamada@example.co.jp>".into(),
            recipients: vec![
                "partner@example.com".into(),
                "yamada.private@gmail.com".into(),
            ],
            direction: Direction::Outbound,
        },
        console_url: Some("https://mailtrail.example.co.jp/alerts/42".into()),
        raised_at: Utc.with_ymd_and_hms(2026, 11, 27, 5, 5, 3).unwrap(),
    }
}

/// A private CA and a server certificate it signed for localhost and
/// 127.0.0.1: (CA certificate, server certificate, server key).
pub fn make_certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = dir.join("ca.pem");
    let ca_key = dir.join("ca-key.pem");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let csr = dir.join("cert.csr");
    let ext = dir.join("ext.cnf");
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("the openssl command (Debian: openssl) makes the test certificates");
        assert!(status.success(), "openssl {args:?} failed");
    };
    let p = |p: &PathBuf| p.to_str().unwrap().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let (ca_s, ca_key_s) = (p(&ca), p(&ca_key));
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend(["-days", "2", "-subj", "/CN=mailtrail notify test CA"]);
    args.extend(["-keyout", &ca_key_s, "-out", &ca_s]);
    openssl(&args);
    let (key_s, csr_s, cert_s, ext_s) = (p(&key), p(&csr), p(&cert), p(&ext));
    let mut args = vec!["req", "-new"];
    args.extend(ec);
    args.extend(["-subj", "/CN=localhost", "-keyout", &key_s, "-out", &csr_s]);
    openssl(&args);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr_s,
        "-CA",
        &ca_s,
        "-CAkey",
        &ca_key_s,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext_s,
        "-out",
        &cert_s,
    ]);
    (ca, cert, key)
}

/// A private CA and a server certificate it signed, in a temporary folder
/// that lives as long as this.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// A rustls server configuration with the certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        server_config(&self.cert, &self.key)
    }
}

/// A new private CA and server certificate (see [`make_certificate`]).
pub fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certificate(dir.path());
    Pki { dir, ca, cert, key }
}

/// A port on 127.0.0.1 that nothing listens on (it was free a moment ago).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `[notify]` from a mailtrail.toml text.
pub fn parse(text: &str) -> Result<NotifyConfig, String> {
    #[derive(serde::Deserialize)]
    struct File {
        notify: NotifyConfig,
    }
    toml::from_str::<File>(text)
        .map(|f| f.notify)
        .map_err(|e| e.to_string())
}

/// A received message, parsed.
pub fn parse_mail(data: &[u8]) -> mail_parser::Message<'_> {
    mail_parser::MessageParser::default()
        .parse(data)
        .expect("the mail parses")
}

/// A rustls server configuration with the ring provider.
pub fn server_config(cert: &Path, key: &Path) -> Arc<rustls::ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    Arc::new(config)
}
