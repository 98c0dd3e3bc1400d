//! The SMTP journal receiver: where mail systems deliver copies of every message.
//!
//! Split in two on purpose. [`Session`] is the protocol state machine — one
//! command line in, one reply out — with no I/O, so every rule (sequence,
//! limits, replies) is tested without sockets. [`serve_connection`] is the
//! thin tokio shell around it: it reads lines with a length bound and an idle
//! timeout, reads DATA with dot-unstuffing and a size bound, and hands the
//! finished message to the journal decoder and the [`StoreWriter`].
//!
//! Durability rule: `250` is sent only after the store committed the message
//! (fsync'ed). A crash before that means the client did not get `250` and
//! retries (MTAs do); after it, nothing is lost. A store that cannot keep up
//! answers `451` (try again later), never an unbounded queue.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use ipnet::IpNet;
use mailtrail_ingest::journal::{decode_journal, Envelope};
use mailtrail_ingest::DecodeOptions;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::metrics::Metrics;
use crate::tls::TlsFiles;
use crate::writer::{StoreWriter, WriteError};

/// The SMTP journal receiver: `[smtp]` in mailtrail.toml.
///
/// ```toml
/// [smtp]
/// listen = "0.0.0.0:2525"
/// allowed_networks = ["127.0.0.0/8", "10.0.0.0/8", "40.92.0.0/15"]
/// require_tls = true
///
/// [smtp.tls]
/// cert = "/etc/mailtrail/tls/fullchain.pem"
/// key = "/etc/mailtrail/tls/privkey.pem"
///
/// [[smtp.users]]     # only for senders that can authenticate (Postfix can)
/// name = "postfix-relay"
/// password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."   # from `mailtrail hash-password`
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Address to listen on. Default `127.0.0.1:2525`; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Name announced in the greeting and EHLO reply. Default `mailtrail`.
    pub hostname: String,
    /// Largest message accepted, in bytes (announced as SIZE; larger ones get
    /// `552`). Default 50 MiB.
    #[serde(rename = "max_message_size")]
    pub max_message_bytes: usize,
    /// Most recipients per message; more get `452` (the sender retries them
    /// in another transaction). Default 1000.
    pub max_recipients: usize,
    /// Longest command line, in bytes; longer ones get `500`. Default 4096
    /// (RFC 5321 asks for 512 at least).
    pub max_line_bytes: usize,
    /// Seconds before a silent client gets `421` and is disconnected. Default 300.
    #[serde(rename = "idle_timeout_secs", with = "crate::seconds")]
    pub idle_timeout: Duration,
    /// Connections served at once; more are answered `421` and closed. Default 200.
    pub max_connections: usize,
    /// Message bytes held in memory by all connections together (messages
    /// being received, decoded and stored). A message that would go over is
    /// read to its end, dropped and answered `451` (the sender retries), so
    /// memory stays bounded whatever the clients do. Default 512 MiB; never
    /// less than one message of `max_message_size`.
    pub max_buffered_bytes: usize,
    /// Client networks allowed to send; others are answered `554` and closed.
    /// Default: loopback and the private ranges (127.0.0.0/8, ::1, 10.0.0.0/8,
    /// 172.16.0.0/12, 192.168.0.0/16, fc00::/7). Add your cloud provider's
    /// sending ranges for Microsoft 365 or Google Workspace journaling.
    pub allowed_networks: Vec<IpNet>,
    /// Certificate and key for STARTTLS. Without it STARTTLS is not offered.
    pub tls: Option<TlsFiles>,
    /// Refuse mail (`530`) until the client has started TLS. Default false.
    pub require_tls: bool,
    /// Accounts for SMTP AUTH (PLAIN, LOGIN), offered only over TLS.
    pub users: Vec<SmtpUser>,
    /// Refuse mail (`530`) until the client has authenticated. Default false.
    pub require_auth: bool,
    /// Addresses of the journal mailbox itself: envelope recipients equal to
    /// one of these are not recipients of the journaled message. Set from
    /// the top-level `journal_addresses` of mailtrail.toml.
    #[serde(skip)]
    pub journal_addresses: Vec<String>,
}

/// One SMTP AUTH account.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpUser {
    /// The user name the client sends.
    pub name: String,
    /// argon2 hash of the password in PHC form (`$argon2id$...`), as printed
    /// by `mailtrail hash-password`. The password itself is never stored.
    pub password_hash: String,
}

impl std::fmt::Debug for SmtpUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The networks allowed by default: this host and the private ranges.
pub fn default_allowed_networks() -> Vec<IpNet> {
    [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
    ]
    .iter()
    .filter_map(|n| n.parse().ok())
    .collect()
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2525)),
            hostname: "mailtrail".into(),
            max_message_bytes: 50 * 1024 * 1024,
            max_recipients: 1000,
            max_line_bytes: 4096,
            idle_timeout: Duration::from_secs(300),
            max_connections: 200,
            max_buffered_bytes: 512 * 1024 * 1024,
            allowed_networks: default_allowed_networks(),
            tls: None,
            require_tls: false,
            users: Vec::new(),
            require_auth: false,
            journal_addresses: Vec::new(),
        }
    }
}

/// A configuration that cannot work, found before anything listens.
#[derive(Debug, thiserror::Error)]
pub enum SmtpConfigError {
    #[error("[smtp] {0} needs [smtp.tls] (a certificate and key): AUTH is only offered over TLS")]
    AuthWithoutTls(&'static str),
    #[error("[smtp] require_tls needs [smtp.tls] (a certificate and key)")]
    RequireTlsWithoutTls,
    #[error("[smtp] require_auth is set but no [[smtp.users]] are configured")]
    RequireAuthWithoutUsers,
    #[error("[smtp] user {name:?}: password_hash is not an argon2 PHC string ({reason}); make one with `mailtrail hash-password`")]
    BadPasswordHash { name: String, reason: String },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

impl SmtpConfig {
    /// The shared budget of buffered message bytes, in MiB permits.
    pub fn data_budget(&self) -> Arc<Semaphore> {
        let bytes = self
            .max_buffered_bytes
            .max(self.max_message_bytes.saturating_add(MIB));
        Arc::new(Semaphore::new((bytes / MIB).min(Semaphore::MAX_PERMITS)))
    }

    /// Check the settings and load the certificate, if any.
    pub fn prepare(&self) -> Result<Option<TlsAcceptor>, SmtpConfigError> {
        if self.tls.is_none() {
            if !self.users.is_empty() {
                return Err(SmtpConfigError::AuthWithoutTls("users"));
            }
            if self.require_auth {
                return Err(SmtpConfigError::AuthWithoutTls("require_auth"));
            }
            if self.require_tls {
                return Err(SmtpConfigError::RequireTlsWithoutTls);
            }
        }
        if self.require_auth && self.users.is_empty() {
            return Err(SmtpConfigError::RequireAuthWithoutUsers);
        }
        for user in &self.users {
            argon2::PasswordHash::new(&user.password_hash).map_err(|e| {
                SmtpConfigError::BadPasswordHash {
                    name: user.name.clone(),
                    reason: e.to_string(),
                }
            })?;
        }
        self.tls
            .as_ref()
            .map(TlsFiles::acceptor)
            .transpose()
            .map_err(Into::into)
    }

    /// Whether a client at this address may send.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allowed_networks.iter().any(|n| n.contains(&ip))
    }

    /// Check a user name and password (slow on purpose: argon2).
    pub fn verify(&self, name: &str, password: &str) -> bool {
        use argon2::PasswordVerifier as _;
        self.users.iter().any(|u| {
            u.name == name
                && argon2::PasswordHash::new(&u.password_hash).is_ok_and(|hash| {
                    argon2::Argon2::default()
                        .verify_password(password.as_bytes(), &hash)
                        .is_ok()
                })
        })
    }
}

/// Hash a password for `[[smtp.users]]` (argon2id, random salt, PHC string).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher as _, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// What the connection loop must do after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this reply (may be multi-line, CRLF-terminated) and read the next command.
    Reply(String),
    /// Send `354` and read the message.
    ReadData,
    /// Send this reply and close the connection.
    Close(String),
    /// Send `220` and start the TLS handshake.
    StartTls,
    /// Check these credentials, then call [`Session::authenticated`].
    Authenticate { user: String, password: String },
}

/// Where an AUTH exchange stands between client lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthStep {
    /// `AUTH PLAIN` without an initial response: waiting for it.
    Plain,
    /// `AUTH LOGIN`: waiting for the user name.
    LoginUser,
    /// `AUTH LOGIN`: waiting for the password of this user.
    LoginPassword,
}

#[derive(Debug, Default)]
pub struct Session {
    helo: Option<String>,
    mail_from: Option<Option<String>>,
    rcpt_to: Vec<String>,
    max_recipients: usize,
    max_message_bytes: usize,
    hostname: String,
    tls_offered: bool,
    tls_active: bool,
    require_tls: bool,
    auth_offered: bool,
    require_auth: bool,
    user: Option<String>,
    auth_step: Option<AuthStep>,
    login_user: String,
}

fn reply(text: &str) -> Action {
    Action::Reply(format!("{text}\r\n"))
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

impl Session {
    /// A session for a new connection. `tls_offered`: a certificate is
    /// configured, so STARTTLS may be announced.
    pub fn new(config: &SmtpConfig, tls_offered: bool) -> Session {
        Session {
            max_recipients: config.max_recipients,
            max_message_bytes: config.max_message_bytes,
            hostname: config.hostname.clone(),
            tls_offered,
            require_tls: config.require_tls,
            auth_offered: !config.users.is_empty(),
            require_auth: config.require_auth,
            ..Session::default()
        }
    }

    pub fn greeting(&self) -> String {
        format!("220 {} ESMTP mailtrail journal receiver\r\n", self.hostname)
    }

    /// The envelope of the transaction in progress.
    pub fn envelope(&self) -> (Option<String>, Vec<String>) {
        (self.mail_from.clone().flatten(), self.rcpt_to.clone())
    }

    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Forget the transaction (after a message, RSET, or a new EHLO).
    pub fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }

    /// TLS is up: everything learnt before it is forgotten (RFC 3207 4.2),
    /// the client must say EHLO again.
    pub fn tls_started(&mut self) {
        self.reset();
        self.helo = None;
        self.user = None;
        self.auth_step = None;
        self.tls_active = true;
    }

    /// The outcome of [`Action::Authenticate`].
    pub fn authenticated(&mut self, user: String, ok: bool) -> String {
        if ok {
            self.user = Some(user);
            "235 2.7.0 Authentication successful\r\n".into()
        } else {
            "535 5.7.8 Authentication credentials invalid\r\n".into()
        }
    }

    /// Handle one command line (without CRLF).
    pub fn command(&mut self, line: &str) -> Action {
        if let Some(step) = self.auth_step.take() {
            return self.auth_response(step, line);
        }
        let (verb, rest) = match line.find(' ') {
            Some(i) => (&line[..i], line[i + 1..].trim()),
            None => (line.trim(), ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if rest.is_empty() => reply("501 5.5.4 Syntax: EHLO hostname"),
            "EHLO" => {
                self.reset();
                self.helo = Some(rest.to_string());
                let mut text = format!(
                    "250-{host} greets {rest}\r\n250-SIZE {size}\r\n250-8BITMIME\r\n\
                     250-SMTPUTF8\r\n250-PIPELINING\r\n",
                    host = self.hostname,
                    size = self.max_message_bytes
                );
                if self.tls_offered && !self.tls_active {
                    text.push_str("250-STARTTLS\r\n");
                }
                if self.auth_offered && self.tls_active {
                    text.push_str("250-AUTH PLAIN LOGIN\r\n");
                }
                text.push_str("250 ENHANCEDSTATUSCODES\r\n");
                Action::Reply(text)
            }
            "HELO" => {
                self.reset();
                self.helo = Some(rest.to_string());
                reply(&format!("250 {}", self.hostname))
            }
            "STARTTLS" => {
                if !self.tls_offered {
                    reply("502 5.5.1 STARTTLS not available")
                } else if self.tls_active {
                    reply("503 5.5.1 TLS already active")
                } else if !rest.is_empty() {
                    reply("501 5.5.4 Syntax: STARTTLS")
                } else {
                    Action::StartTls
                }
            }
            "AUTH" => self.auth(rest),
            "MAIL" => {
                if self.helo.is_none() {
                    return reply("503 5.5.1 Send EHLO first");
                }
                if self.require_tls && !self.tls_active {
                    return reply("530 5.7.0 Must issue a STARTTLS command first");
                }
                if self.require_auth && self.user.is_none() {
                    return reply("530 5.7.0 Authentication required");
                }
                if self.mail_from.is_some() {
                    return reply("503 5.5.1 Sender already given");
                }
                let Some(arg) = strip_prefix_ci(rest, "FROM:") else {
                    return reply("501 5.5.4 Syntax: MAIL FROM:<address>");
                };
                let Some((path, params)) = parse_path(arg) else {
                    return reply("501 5.1.7 Bad sender address syntax");
                };
                for param in params.split_whitespace() {
                    if let Some(size) = strip_prefix_ci(param, "SIZE=") {
                        match size.parse::<usize>() {
                            Ok(n) if n > self.max_message_bytes => {
                                return reply(
                                    "552 5.3.4 Message size exceeds fixed maximum message size",
                                )
                            }
                            Ok(_) => {}
                            Err(_) => return reply("501 5.5.4 Bad SIZE parameter"),
                        }
                    }
                }
                self.mail_from = Some((!path.is_empty()).then(|| path.to_string()));
                reply("250 2.1.0 Ok")
            }
            "RCPT" => {
                if self.mail_from.is_none() {
                    return reply("503 5.5.1 Need MAIL before RCPT");
                }
                let Some(arg) = strip_prefix_ci(rest, "TO:") else {
                    return reply("501 5.5.4 Syntax: RCPT TO:<address>");
                };
                let Some((path, _)) = parse_path(arg).filter(|(p, _)| !p.is_empty()) else {
                    return reply("501 5.1.3 Bad recipient address syntax");
                };
                if self.rcpt_to.len() >= self.max_recipients {
                    return reply("452 4.5.3 Too many recipients");
                }
                self.rcpt_to.push(path.to_string());
                reply("250 2.1.5 Ok")
            }
            "DATA" => {
                if self.mail_from.is_none() {
                    return reply("503 5.5.1 Need MAIL command");
                }
                if self.rcpt_to.is_empty() {
                    return reply("554 5.5.1 No valid recipients");
                }
                Action::ReadData
            }
            "RSET" => {
                self.reset();
                reply("250 2.0.0 Ok")
            }
            "NOOP" => reply("250 2.0.0 Ok"),
            "VRFY" => reply("252 2.1.5 Cannot verify, send some mail"),
            "QUIT" => Action::Close("221 2.0.0 Bye\r\n".into()),
            "" => reply("500 5.5.2 Empty command"),
            _ => reply("502 5.5.2 Command not recognised"),
        }
    }

    /// `AUTH mechanism [initial-response]` (RFC 4954).
    fn auth(&mut self, rest: &str) -> Action {
        if !self.auth_offered {
            return reply("502 5.5.1 AUTH not available");
        }
        if !self.tls_active {
            return reply("538 5.7.11 Encryption required for requested authentication mechanism");
        }
        if self.helo.is_none() {
            return reply("503 5.5.1 Send EHLO first");
        }
        if self.user.is_some() {
            return reply("503 5.5.1 Already authenticated");
        }
        if self.mail_from.is_some() {
            return reply("503 5.5.1 AUTH not allowed during a mail transaction");
        }
        let mut words = rest.split_whitespace();
        let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
        let initial = words.next();
        match (mechanism.as_str(), initial) {
            ("PLAIN", None) => {
                self.auth_step = Some(AuthStep::Plain);
                reply("334 ")
            }
            ("PLAIN", Some(response)) => self.auth_response(AuthStep::Plain, response),
            ("LOGIN", None) => {
                self.auth_step = Some(AuthStep::LoginUser);
                reply("334 VXNlcm5hbWU6")
            }
            ("LOGIN", Some(response)) => self.auth_response(AuthStep::LoginUser, response),
            ("", _) => reply("501 5.5.4 Syntax: AUTH mechanism"),
            _ => reply("504 5.5.4 Unrecognized authentication type"),
        }
    }

    fn auth_response(&mut self, step: AuthStep, line: &str) -> Action {
        if line.trim() == "*" {
            return reply("501 5.7.0 Authentication cancelled");
        }
        let Some(bytes) = decode_base64(line) else {
            return reply("501 5.5.2 Cannot decode the response");
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match step {
            AuthStep::Plain => {
                // authzid NUL authcid NUL password; a different authzid is not supported.
                let mut parts = text.split('\0');
                let (Some(authz), Some(user), Some(password), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return reply("501 5.5.2 Malformed PLAIN response");
                };
                if !authz.is_empty() && authz != user {
                    return reply("535 5.7.8 Authentication credentials invalid");
                }
                Action::Authenticate {
                    user: user.to_string(),
                    password: password.to_string(),
                }
            }
            AuthStep::LoginUser => {
                self.login_user = text;
                self.auth_step = Some(AuthStep::LoginPassword);
                reply("334 UGFzc3dvcmQ6")
            }
            AuthStep::LoginPassword => Action::Authenticate {
                user: std::mem::take(&mut self.login_user),
                password: text,
            },
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s[prefix.len()..].trim_start())
}

/// `<path> params` → (path without brackets, params). `<>` gives an empty path.
fn parse_path(arg: &str) -> Option<(&str, &str)> {
    let arg = arg.trim_start();
    let rest = arg.strip_prefix('<')?;
    let end = rest.find('>')?;
    let path = &rest[..end];
    if path.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some((path, rest[end + 1..].trim()))
}

/// Why reading a line stopped.
enum ReadLine {
    Line(Vec<u8>),
    TooLong,
    Eof,
}

async fn read_line<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<ReadLine> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() && !too_long {
                ReadLine::Eof
            } else if too_long {
                ReadLine::TooLong
            } else {
                ReadLine::Line(std::mem::take(buf))
            });
        }
        let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if buf.len() + chunk.len() > max {
            too_long = true;
        } else {
            buf.extend_from_slice(chunk);
        }
        reader.consume(used);
        if done {
            if too_long {
                return Ok(ReadLine::TooLong);
            }
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(ReadLine::Line(std::mem::take(buf)));
        }
    }
}

/// Shared by every connection.
pub struct SmtpContext {
    pub config: SmtpConfig,
    pub writer: StoreWriter,
    pub decode: DecodeOptions,
    pub connections: Arc<Semaphore>,
    pub metrics: Arc<Metrics>,
    /// From [`SmtpConfig::prepare`]: STARTTLS is offered when set.
    pub tls: Option<TlsAcceptor>,
    /// What is left of [`SmtpConfig::max_buffered_bytes`], in MiB permits.
    pub data_budget: Arc<Semaphore>,
    /// Becomes true on SIGTERM: sessions waiting for a command are told
    /// `421` and closed; a message being received or stored is finished.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

const MIB: usize = 1024 * 1024;
/// How long a refusal (`554`, `421`) may take to write before the socket is dropped.
const REFUSAL_WRITE: Duration = Duration::from_secs(10);

/// Failed AUTH attempts before the connection is closed.
const MAX_AUTH_FAILURES: u32 = 3;
/// Pause after a failed AUTH: slows password guessing to a crawl.
const AUTH_FAILURE_DELAY: Duration = Duration::from_secs(1);

/// Accept connections until the task is dropped.
pub async fn serve(listener: TcpListener, ctx: Arc<SmtpContext>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            // Out of descriptors or similar: do not spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            if !ctx.config.allows(peer.ip()) {
                Metrics::add(&ctx.metrics.smtp_clients_refused, 1);
                let refusal = format!(
                    "554 5.7.1 Client {} is not in [smtp] allowed_networks\r\n",
                    peer.ip()
                );
                let _ = send(&mut stream, refusal.as_bytes(), REFUSAL_WRITE).await;
                return;
            }
            match ctx.connections.clone().try_acquire_owned() {
                Ok(_permit) => {
                    Metrics::add(&ctx.metrics.smtp_connections, 1);
                    let _ = serve_connection(stream, peer, &ctx).await;
                }
                Err(_) => {
                    let _ = send(
                        &mut stream,
                        b"421 4.7.0 Too many connections, try again later\r\n",
                        REFUSAL_WRITE,
                    )
                    .await;
                }
            }
        });
    }
}

/// Write a reply, giving up after `limit`: a client that stops reading its
/// replies (its receive window full) is disconnected like a silent one,
/// instead of holding a connection slot forever.
async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    match tokio::time::timeout(limit, async {
        w.write_all(bytes).await?;
        w.flush().await
    })
    .await
    {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client stopped reading replies",
        )),
    }
}

/// How a session over one transport ended.
enum Ended {
    /// QUIT, EOF, timeout or a fatal limit: close.
    Closed,
    /// The client asked for TLS and got `220`: hand the socket to rustls.
    StartTls,
}

/// Serve one client until QUIT, EOF, timeout or error, upgrading to TLS on
/// STARTTLS.
pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &SmtpContext,
) -> std::io::Result<()> {
    let mut session = Session::new(&ctx.config, ctx.tls.is_some());
    let mut plain = BufReader::with_capacity(64 * 1024, stream);
    send(
        &mut plain,
        session.greeting().as_bytes(),
        ctx.config.idle_timeout,
    )
    .await?;
    if let Ended::Closed = run_session(&mut plain, &mut session, peer, ctx).await? {
        return Ok(());
    }
    let Some(acceptor) = &ctx.tls else {
        return Ok(());
    };
    // Commands the client pipelined behind STARTTLS were sent in clear and
    // could have been injected by anyone on the path: they are discarded
    // with the plain-text buffer, never executed inside the TLS session.
    let stream = plain.into_inner();
    let tls = match tokio::time::timeout(ctx.config.idle_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(_)) | Err(_) => {
            Metrics::add(&ctx.metrics.smtp_tls_failures, 1);
            return Ok(());
        }
    };
    session.tls_started();
    let mut secure = BufReader::with_capacity(64 * 1024, tls);
    run_session(&mut secure, &mut session, peer, ctx).await?;
    let _ = secure.shutdown().await;
    Ok(())
}

/// The command loop over one transport (plain or TLS).
async fn run_session<S>(
    conn: &mut BufReader<S>,
    session: &mut Session,
    peer: SocketAddr,
    ctx: &SmtpContext,
) -> std::io::Result<Ended>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut line = Vec::new();
    let mut auth_failures = 0;
    let mut shutdown = ctx.shutdown.clone();
    let limit = ctx.config.idle_timeout;
    loop {
        if *shutdown.borrow() {
            send(
                conn,
                b"421 4.3.2 Service shutting down, try again later\r\n",
                limit,
            )
            .await?;
            return Ok(Ended::Closed);
        }
        let next = tokio::select! {
            next = tokio::time::timeout(
                ctx.config.idle_timeout,
                read_line(conn, ctx.config.max_line_bytes, &mut line),
            ) => next,
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return Ok(Ended::Closed);
                }
                continue;
            }
        };
        let text = match next {
            Err(_) => {
                send(
                    conn,
                    b"421 4.4.2 Idle timeout, closing connection\r\n",
                    limit,
                )
                .await?;
                return Ok(Ended::Closed);
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(ReadLine::Eof)) => return Ok(Ended::Closed),
            Ok(Ok(ReadLine::TooLong)) => {
                send(conn, b"500 5.5.6 Line too long\r\n", limit).await?;
                continue;
            }
            Ok(Ok(ReadLine::Line(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
        };
        match session.command(&text) {
            Action::Reply(r) => send(conn, r.as_bytes(), limit).await?,
            Action::Close(r) => {
                send(conn, r.as_bytes(), limit).await?;
                return Ok(Ended::Closed);
            }
            Action::StartTls => {
                send(conn, b"220 2.0.0 Ready to start TLS\r\n", limit).await?;
                conn.flush().await?;
                return Ok(Ended::StartTls);
            }
            Action::Authenticate { user, password } => {
                let config = ctx.config.clone();
                let name = user.clone();
                let ok = tokio::task::spawn_blocking(move || config.verify(&name, &password))
                    .await
                    .unwrap_or(false);
                if !ok {
                    auth_failures += 1;
                    Metrics::add(&ctx.metrics.smtp_auth_failures, 1);
                    tokio::time::sleep(AUTH_FAILURE_DELAY).await;
                }
                let answer = session.authenticated(user, ok);
                send(conn, answer.as_bytes(), limit).await?;
                if auth_failures >= MAX_AUTH_FAILURES {
                    send(
                        conn,
                        b"421 4.7.0 Too many failed authentications\r\n",
                        limit,
                    )
                    .await?;
                    return Ok(Ended::Closed);
                }
            }
            Action::ReadData => {
                send(conn, b"354 End data with <CR><LF>.<CR><LF>\r\n", limit).await?;
                let data = match read_data(conn, ctx).await? {
                    Ok(data) => data,
                    Err(Gone::Eof) => {
                        // Client vanished mid-DATA: nothing acknowledged, nothing kept.
                        return Ok(Ended::Closed);
                    }
                    Err(Gone::Silent) => {
                        send(
                            conn,
                            b"421 4.4.2 Idle timeout in DATA, closing connection\r\n",
                            limit,
                        )
                        .await?;
                        return Ok(Ended::Closed);
                    }
                };
                let answer = match data {
                    Data::TooLarge => {
                        "552 5.3.4 Message size exceeds fixed maximum message size\r\n".to_string()
                    }
                    Data::OverBudget => {
                        Metrics::add(&ctx.metrics.smtp_over_budget, 1);
                        "451 4.3.1 Insufficient system resources, try again later\r\n".to_string()
                    }
                    Data::Message(raw, _held) => store_message(raw, session, peer, ctx).await,
                };
                session.reset();
                if answer.starts_with('2') {
                    Metrics::add(&ctx.metrics.smtp_messages_stored, 1);
                } else {
                    Metrics::add(&ctx.metrics.smtp_messages_refused, 1);
                }
                send(conn, answer.as_bytes(), limit).await?;
            }
        }
    }
}

enum Data {
    /// The message, and the share of the memory budget it holds until stored.
    Message(Vec<u8>, Option<tokio::sync::OwnedSemaphorePermit>),
    TooLarge,
    OverBudget,
}

/// Why DATA ended without its final dot.
enum Gone {
    Eof,
    Silent,
}

/// Read DATA up to the lone dot, undoing dot-stuffing. Over the size limit
/// or the shared memory budget the rest is read and discarded so the
/// session stays in sync.
///
/// The end is `CRLF . CRLF` and nothing else: a dot line after a bare LF is
/// content, not the end, so a crafted message cannot end early and smuggle
/// a second, forged message into the archive. Memory is bounded by the size
/// limit even for a "line" without end.
async fn read_data<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    ctx: &SmtpContext,
) -> std::io::Result<Result<Data, Gone>> {
    let max = ctx.config.max_message_bytes;
    let mut message = Vec::new();
    let mut too_large = false;
    let mut over_budget = false;
    let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
    let mut held_mib = 0usize;
    let mut line = Vec::new();
    // Whether the previous line ended with CRLF (the start of DATA counts as one).
    let mut after_crlf = true;
    loop {
        line.clear();
        let read = tokio::time::timeout(
            ctx.config.idle_timeout,
            read_capped_line(reader, max + 3, &mut line),
        )
        .await;
        let (overflow, crlf) = match read {
            Err(_) => return Ok(Err(Gone::Silent)),
            Ok(Ok(None)) => return Ok(Err(Gone::Eof)),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Some(ending))) => ending,
        };
        if after_crlf && line.as_slice() == b".\r\n" {
            return Ok(Ok(if too_large {
                Data::TooLarge
            } else if over_budget {
                Data::OverBudget
            } else {
                Data::Message(message, held)
            }));
        }
        let content = if after_crlf {
            line.strip_prefix(b".").unwrap_or(&line)
        } else {
            &line[..]
        };
        if overflow || message.len() + content.len() > max {
            too_large = true;
        }
        if !too_large && !over_budget {
            let need = (message.len() + content.len()).div_ceil(MIB);
            if need > held_mib {
                let more = u32::try_from(need - held_mib).unwrap_or(u32::MAX);
                match ctx.data_budget.clone().try_acquire_many_owned(more) {
                    Ok(permit) => {
                        match held.as_mut() {
                            Some(h) => h.merge(permit),
                            None => held = Some(permit),
                        }
                        held_mib = need;
                    }
                    Err(_) => over_budget = true,
                }
            }
        }
        if too_large || over_budget {
            message = Vec::new();
            held = None;
            held_mib = 0;
        } else {
            message.extend_from_slice(content);
        }
        after_crlf = crlf;
    }
}

/// Read up to and including the next LF, keeping at most `cap` bytes (the
/// rest of a longer line is consumed and dropped). `None` at EOF before any
/// byte; else whether the line was longer than `cap`, and whether it ended
/// with CRLF (judged on the real bytes, not the kept ones).
async fn read_capped_line<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    cap: usize,
    out: &mut Vec<u8>,
) -> std::io::Result<Option<(bool, bool)>> {
    let mut overflow = false;
    let mut any = false;
    let mut last_two = [0u8; 2];
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if any { Some((overflow, false)) } else { None });
        }
        any = true;
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = cap.saturating_sub(out.len());
        if chunk.len() > room {
            overflow = true;
        }
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        for &b in chunk {
            last_two = [last_two[1], b];
        }
        let used = chunk.len();
        reader.consume(used);
        if done {
            return Ok(Some((overflow, last_two == *b"\r\n")));
        }
    }
}

async fn store_message(
    raw: Vec<u8>,
    session: &Session,
    peer: SocketAddr,
    ctx: &SmtpContext,
) -> String {
    let (mail_from, rcpt_to) = session.envelope();
    let envelope = Envelope {
        mail_from,
        rcpt_to,
        received_at: Utc::now(),
        client_ip: Some(peer.ip().to_string()),
        client_helo: session.helo().map(str::to_string),
    };
    // MIME decoding is CPU work: off the runtime's threads, so that a large
    // message never stalls other clients' sessions.
    let journal_addresses = ctx.config.journal_addresses.clone();
    let decode = ctx.decode.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        decode_journal(raw, &envelope, &journal_addresses, &decode)
    })
    .await;
    let record = match decoded {
        Ok(Ok(journal)) => journal.record,
        Ok(Err(e)) => return format!("554 5.6.0 Message could not be read: {e}\r\n"),
        Err(_) => return "451 4.3.0 Temporary failure reading the message\r\n".to_string(),
    };
    match ctx.writer.submit(record).await {
        Ok(()) => "250 2.0.0 Ok: stored\r\n".to_string(),
        Err(WriteError::Busy) => "451 4.3.2 Store busy, try again later\r\n".to_string(),
        Err(WriteError::Closed) => "421 4.3.2 Shutting down, try again later\r\n".to_string(),
        Err(WriteError::Store(_)) => {
            "451 4.3.0 Temporary storage failure, try again later\r\n".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session::new(
            &SmtpConfig {
                max_recipients: 2,
                max_message_bytes: 1000,
                ..SmtpConfig::default()
            },
            false,
        )
    }

    fn code(a: Action) -> String {
        match a {
            Action::Reply(r) | Action::Close(r) => {
                r.lines().last().unwrap_or("").chars().take(3).collect()
            }
            Action::ReadData => "354".into(),
            Action::StartTls => "220".into(),
            Action::Authenticate { .. } => "AUTH".into(),
        }
    }

    #[test]
    fn a_transaction_in_order() {
        let mut s = session();
        assert_eq!(code(s.command("MAIL FROM:<a@x>")), "503");
        assert_eq!(code(s.command("EHLO client.example")), "250");
        assert_eq!(code(s.command("RCPT TO:<b@y>")), "503");
        assert_eq!(
            code(s.command("MAIL FROM:<a@x> SIZE=500 BODY=8BITMIME")),
            "250"
        );
        assert_eq!(code(s.command("DATA")), "554");
        assert_eq!(code(s.command("rcpt to:<b@y>")), "250");
        assert_eq!(code(s.command("RCPT TO:<c@y>")), "250");
        assert_eq!(code(s.command("RCPT TO:<d@y>")), "452");
        assert_eq!(
            s.envelope(),
            (Some("a@x".into()), vec!["b@y".into(), "c@y".into()])
        );
        assert_eq!(code(s.command("DATA")), "354");
        assert_eq!(code(s.command("QUIT")), "221");
    }

    #[test]
    fn limits_and_syntax() {
        let mut s = session();
        s.command("EHLO c");
        assert_eq!(code(s.command("MAIL FROM:<a@x> SIZE=5000")), "552");
        assert_eq!(code(s.command("MAIL FROM:a@x")), "501");
        assert_eq!(code(s.command("MAIL FROM:<>")), "250");
        assert_eq!(s.envelope().0, None);
        assert_eq!(code(s.command("RCPT TO:<>")), "501");
        assert_eq!(code(s.command("RSET")), "250");
        assert_eq!(code(s.command("FOO")), "502");
        assert_eq!(code(s.command("EHLO")), "501");
    }

    #[test]
    fn ehlo_announces_size() {
        let mut s = session();
        match s.command("EHLO c") {
            Action::Reply(r) => {
                assert!(r.contains("250-SIZE 1000\r\n"), "{r}");
                assert!(r.ends_with("250 ENHANCEDSTATUSCODES\r\n"), "{r}");
            }
            other => panic!("{other:?}"),
        }
    }
}
