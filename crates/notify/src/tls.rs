//! Trust for every TLS client of this crate: the system's CA store plus a
//! channel's `ca_file`, with rustls and the ring provider.
//!
//! The same trust for SMTP, HTTPS and syslog over TLS, so that one
//! `ca_file` line means the same thing on every channel: the system store
//! (which administrators extend with their private CA or a TLS-inspecting
//! proxy's) and, in addition, the certificates in that file. No bundled
//! roots; no certificate checks can be turned off.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio_rustls::rustls;

use crate::error::{ChannelKind, DeliveryError};

/// The certificates of a `ca_file` (PEM); an error when it holds none.
pub(crate) fn ca_file_certs(
    channel: &str,
    kind: ChannelKind,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, DeliveryError> {
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| {
        DeliveryError::config(
            channel,
            kind,
            format!("cannot read ca_file {}: {e}", path.display()),
        )
    })?;
    let mut certs = Vec::new();
    for cert in iter {
        certs.push(cert.map_err(|e| {
            DeliveryError::config(
                channel,
                kind,
                format!("ca_file {} is not PEM certificates: {e}", path.display()),
            )
        })?);
    }
    if certs.is_empty() {
        return Err(DeliveryError::config(
            channel,
            kind,
            format!("ca_file {} holds no certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// The system's CA certificates and those of `ca_file`.
pub(crate) fn roots(
    channel: &str,
    kind: ChannelKind,
    ca_file: Option<&Path>,
) -> Result<Vec<CertificateDer<'static>>, DeliveryError> {
    // Unreadable entries of the system store are skipped, as every TLS
    // client does.
    let mut certs = rustls_native_certs::load_native_certs().certs;
    if let Some(path) = ca_file {
        certs.extend(ca_file_certs(channel, kind, path)?);
    }
    if certs.is_empty() {
        return Err(DeliveryError::config(
            channel,
            kind,
            "no CA certificates found: install the system's CA bundle (Debian: ca-certificates) or name one with ca_file",
        ));
    }
    Ok(certs)
}

/// The ring provider, as the rest of mailtrail uses.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client configuration trusting [`roots`].
pub(crate) fn client_config(
    channel: &str,
    kind: ChannelKind,
    ca_file: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, DeliveryError> {
    let mut store = rustls::RootCertStore::empty();
    let (_added, _ignored) = store.add_parsable_certificates(roots(channel, kind, ca_file)?);
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| DeliveryError::config(channel, kind, format!("TLS set-up: {e}")))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
