//! TLS for the receivers: STARTTLS on the SMTP journal receiver and syslog
//! over TLS (RFC 5425).
//!
//! Administrators already have a certificate and key as PEM files (from their
//! CA, or Let's Encrypt); mailtrail reads those and nothing else, once at
//! start-up, so that a wrong path or a key that does not match fails the start
//! with a message naming the file — not the first client's handshake hours
//! later. rustls with the ring provider: no OpenSSL to keep patched, and no C
//! toolchain beyond what the build already needs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// A certificate and its private key, as PEM files.
///
/// ```toml
/// [smtp.tls]
/// cert = "/etc/mailtrail/tls/fullchain.pem"   # the certificate, then its intermediates
/// key = "/etc/mailtrail/tls/privkey.pem"      # PKCS#8, PKCS#1 (RSA) or SEC1 (EC) key
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM file with the server certificate first, then any intermediate certificates.
    pub cert: PathBuf,
    /// PEM file with the certificate's private key.
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("cannot read the TLS private key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the TLS certificate {cert} and key {key} do not fit together: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

impl TlsFiles {
    /// Read both files and build an acceptor (TLS 1.2 and 1.3).
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let certs = read_certificates(&self.cert)?;
        let key = read_key(&self.key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Mismatch {
                cert: self.cert.clone(),
                key: self.key.clone(),
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Mismatch {
                cert: self.cert.clone(),
                key: self.key.clone(),
                reason: e.to_string(),
            })?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |reason: String| TlsError::Certificate {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no CERTIFICATE block in the file".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a pem\n").unwrap();
        let files = TlsFiles {
            cert: dir.path().join("missing.pem"),
            key: empty.clone(),
        };
        let err = files.acceptor().err().unwrap().to_string();
        assert!(err.contains("missing.pem"), "{err}");
        let files = TlsFiles {
            cert: empty.clone(),
            key: empty,
        };
        let err = files.acceptor().err().unwrap().to_string();
        assert!(
            err.contains("empty.pem") && err.contains("no CERTIFICATE"),
            "{err}"
        );
    }
}
