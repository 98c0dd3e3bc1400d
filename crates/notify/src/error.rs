//! Why a delivery failed, and whether trying again can help.
//!
//! The outbox acts on one bit — retry later or dead-letter now — so every
//! failure is classified here, where the protocol is known, instead of by
//! the caller guessing from text. The rule: what the peer or the network
//! may fix by itself (refused or dropped connections, timeouts, SMTP 4xx,
//! HTTP 5xx / 429 / 408) is retryable; what only an administrator can fix
//! (bad configuration, rejected credentials, SMTP 5xx, other HTTP 4xx, a
//! certificate that does not verify) is permanent.
//!
//! Messages name the channel and the peer (`host:port`, or a webhook's
//! `scheme://host` only: Slack and Teams webhook URLs are themselves
//! credentials) and never contain a password, secret or full URL.

use std::time::Duration;

/// The kind of channel that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Mail,
    Webhook,
    Syslog,
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChannelKind::Mail => "mail",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Syslog => "syslog",
        })
    }
}

/// What went wrong, coarsely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The channel's settings cannot work (a missing password file, an
    /// unparsable address, a CA file without certificates).
    Config,
    /// No connection: refused, unreachable, name not resolved, reset.
    Connect,
    /// The peer did not answer in time.
    Timeout,
    /// The TLS handshake failed (certificate not trusted, wrong name,
    /// STARTTLS required but not offered).
    Tls,
    /// The relay rejected the credentials (SMTP 535 and the like).
    Auth,
    /// The peer answered with a refusal (SMTP reply or HTTP status).
    Rejected,
    /// The peer spoke something unexpected.
    Protocol,
}

/// A failed delivery of one notice to one channel.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind} channel {channel:?}: {reason}{}", if *.retryable { " (will retry)" } else { " (permanent)" })]
pub struct DeliveryError {
    /// The channel's configured `name`.
    pub channel: String,
    pub kind: ChannelKind,
    pub failure: FailureKind,
    /// What happened, naming the peer; never a secret.
    pub reason: String,
    /// Whether a later attempt may succeed.
    pub retryable: bool,
    /// The peer asked to wait this long (HTTP `Retry-After`).
    pub retry_after: Option<Duration>,
    /// The SMTP reply code or HTTP status, when the peer answered.
    pub status: Option<u16>,
}

impl DeliveryError {
    pub(crate) fn new(
        channel: &str,
        kind: ChannelKind,
        failure: FailureKind,
        retryable: bool,
        reason: impl Into<String>,
    ) -> DeliveryError {
        DeliveryError {
            channel: channel.to_string(),
            kind,
            failure,
            reason: reason.into(),
            retryable,
            retry_after: None,
            status: None,
        }
    }

    pub(crate) fn config(channel: &str, kind: ChannelKind, reason: impl Into<String>) -> Self {
        DeliveryError::new(channel, kind, FailureKind::Config, false, reason)
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Whether a later attempt may succeed (the outbox retries), or the
    /// notice goes to the dead letters now.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// How an I/O error of a connection is classified: refused, reset,
/// unreachable and timed out are retryable; anything else is a protocol
/// problem and retryable too (the network is the usual cause).
pub(crate) fn io_failure(e: &std::io::Error) -> (FailureKind, &'static str) {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::TimedOut | K::WouldBlock => (FailureKind::Timeout, "timed out"),
        K::ConnectionRefused => (FailureKind::Connect, "connection refused"),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            (FailureKind::Connect, "connection closed by the peer")
        }
        K::NotConnected | K::AddrNotAvailable => (FailureKind::Connect, "not connected"),
        _ => (FailureKind::Connect, "network error"),
    }
}
