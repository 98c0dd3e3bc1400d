//! mailtrail-notify: delivers one alert notice to one channel — mail
//! through an SMTP relay, a webhook (generic JSON, Slack, Teams), or syslog
//! / CEF to a SIEM — and says, when it fails, whether trying again can help.
//!
//! Why it is shaped this way:
//!
//! - **No storage, no queue, no threads of its own.** The store keeps the
//!   outbox, the attempt counts and the dead letters, so that a notice
//!   survives a restart and the console can show what was sent where. This
//!   crate is what the outbox calls for one (notice, channel) pair:
//!   [`deliver`] blocks until the peer accepted the notice or failed, with
//!   a timeout on every step, and [`Backoff`] says when to call again.
//! - **One value per alert** ([`AlertNotice`]) that every channel renders,
//!   so the channels never disagree about the facts, and the outbox can
//!   keep it as JSON.
//! - **Failures are classified where the protocol is known**
//!   ([`DeliveryError::retryable`]); texts never carry a password, a
//!   signing secret or a webhook URL (which is itself a credential).
//! - **Japanese first**: texts for people come in Japanese (default) or
//!   English with the words administrators use; all encodings (RFC 2047
//!   headers, JSON, syslog UTF-8 with BOM, CEF) carry Japanese intact.
//! - **Blocking I/O**: the server runs deliveries on a thread; blocking
//!   clients (lettre's SMTP transport, ureq, std sockets with rustls) keep
//!   this crate free of the async runtime and simple to test.

pub mod backoff;
pub mod config;
pub mod digest;
pub mod error;
pub mod mail;
pub mod notice;
pub mod syslog;
mod text;
mod tls;
pub mod webhook;

pub use backoff::{next_attempt, Backoff};
pub use config::{
    Channel, ConfigError, Lang, MailChannel, NotifyConfig, Secret, StartTls, SyslogChannel,
    SyslogFormat, SyslogTransport, WebhookChannel, WebhookFormat,
};
pub use digest::digest;
pub use error::{ChannelKind, DeliveryError, FailureKind};
pub use notice::{AlertNotice, MessageSummary, Severity};
pub use webhook::{sign, verify_signature};

/// Deliver one notice to one channel. Blocks until the peer accepted it or
/// the attempt failed (every step has a timeout). The channel's
/// `min_severity` is not applied here: see [`Channel::accepts`].
pub fn deliver(channel: &Channel, notice: &AlertNotice) -> Result<(), DeliveryError> {
    match channel {
        Channel::Mail(c) => mail::deliver(c, notice),
        Channel::Webhook(c) => webhook::deliver(c, notice),
        Channel::Syslog(c) => syslog::deliver(c, notice),
    }
}

/// Send the digest of `day`'s notices to a mail channel (in its `lang` and
/// `timezone`). The caller chooses the notices of that day.
pub fn deliver_digest(
    channel: &MailChannel,
    notices: &[AlertNotice],
    day: chrono::NaiveDate,
) -> Result<(), DeliveryError> {
    let tz = config::time_zone(
        &channel.name,
        ChannelKind::Mail,
        channel.timezone.as_deref(),
    )?;
    let (subject, body) = digest(notices, day, channel.lang, tz);
    mail::send(
        channel,
        &subject,
        body,
        &format!("digest.{}", day.format("%Y%m%d")),
    )
}
