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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mailtrail_ingest::journal::{decode_journal, Envelope};
use mailtrail_ingest::DecodeOptions;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::writer::{StoreWriter, WriteError};

/// Settings of the SMTP receiver (`[smtp]` in mailtrail.toml).
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Address to listen on. Default `127.0.0.1:2525`; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Name announced in the greeting and EHLO reply.
    pub hostname: String,
    /// Largest message accepted, in bytes (announced as SIZE). Default 50 MiB.
    pub max_message_bytes: usize,
    /// Most recipients per message. Default 1000.
    pub max_recipients: usize,
    /// Longest command line, in bytes. Default 4096 (RFC 5321 asks for 512 at least).
    pub max_line_bytes: usize,
    /// Idle time before a silent client is disconnected. Default 5 minutes.
    pub idle_timeout: Duration,
    /// Connections served at once; more are answered `421` and closed. Default 200.
    pub max_connections: usize,
    /// Addresses of the journal mailbox itself: envelope recipients equal to
    /// one of these are not recipients of the journaled message.
    pub journal_addresses: Vec<String>,
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
            journal_addresses: Vec::new(),
        }
    }
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
}

#[derive(Debug, Default)]
pub struct Session {
    helo: Option<String>,
    mail_from: Option<Option<String>>,
    rcpt_to: Vec<String>,
    max_recipients: usize,
    max_message_bytes: usize,
    hostname: String,
}

fn reply(text: &str) -> Action {
    Action::Reply(format!("{text}\r\n"))
}

impl Session {
    pub fn new(config: &SmtpConfig) -> Session {
        Session {
            max_recipients: config.max_recipients,
            max_message_bytes: config.max_message_bytes,
            hostname: config.hostname.clone(),
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

    /// Forget the transaction (after a message, RSET, or a new EHLO).
    pub fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }

    /// Handle one command line (without CRLF).
    pub fn command(&mut self, line: &str) -> Action {
        let (verb, rest) = match line.find(' ') {
            Some(i) => (&line[..i], line[i + 1..].trim()),
            None => (line.trim(), ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if rest.is_empty() => reply("501 5.5.4 Syntax: EHLO hostname"),
            "EHLO" => {
                self.reset();
                self.helo = Some(rest.to_string());
                Action::Reply(format!(
                    "250-{host} greets {rest}\r\n250-SIZE {size}\r\n250-8BITMIME\r\n\
                     250-SMTPUTF8\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n",
                    host = self.hostname,
                    size = self.max_message_bytes
                ))
            }
            "HELO" => {
                self.reset();
                self.helo = Some(rest.to_string());
                reply(&format!("250 {}", self.hostname))
            }
            "MAIL" => {
                if self.helo.is_none() {
                    return reply("503 5.5.1 Send EHLO first");
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
}

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
            match ctx.connections.clone().try_acquire_owned() {
                Ok(_permit) => {
                    Metrics::add(&ctx.metrics.smtp_connections, 1);
                    let _ = serve_connection(stream, peer, &ctx).await;
                }
                Err(_) => {
                    let mut stream = stream;
                    let _ = stream
                        .write_all(b"421 4.7.0 Too many connections, try again later\r\n")
                        .await;
                }
            }
        });
    }
}

/// Serve one client until QUIT, EOF, timeout or error.
pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &SmtpContext,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut session = Session::new(&ctx.config);
    write.write_all(session.greeting().as_bytes()).await?;
    let mut line = Vec::new();
    loop {
        let next = tokio::time::timeout(
            ctx.config.idle_timeout,
            read_line(&mut reader, ctx.config.max_line_bytes, &mut line),
        )
        .await;
        let text = match next {
            Err(_) => {
                write
                    .write_all(b"421 4.4.2 Idle timeout, closing connection\r\n")
                    .await?;
                return Ok(());
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(ReadLine::Eof)) => return Ok(()),
            Ok(Ok(ReadLine::TooLong)) => {
                write.write_all(b"500 5.5.6 Line too long\r\n").await?;
                continue;
            }
            Ok(Ok(ReadLine::Line(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
        };
        match session.command(&text) {
            Action::Reply(r) => write.write_all(r.as_bytes()).await?,
            Action::Close(r) => {
                write.write_all(r.as_bytes()).await?;
                return Ok(());
            }
            Action::ReadData => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let data = match read_data(&mut reader, ctx).await? {
                    Some(data) => data,
                    None => {
                        // Client vanished mid-DATA: nothing acknowledged, nothing kept.
                        return Ok(());
                    }
                };
                let answer = match data {
                    Data::TooLarge => {
                        "552 5.3.4 Message size exceeds fixed maximum message size\r\n".to_string()
                    }
                    Data::Message(raw) => store_message(raw, &session, peer, ctx).await,
                };
                session.reset();
                if answer.starts_with('2') {
                    Metrics::add(&ctx.metrics.smtp_messages_stored, 1);
                } else {
                    Metrics::add(&ctx.metrics.smtp_messages_refused, 1);
                }
                write.write_all(answer.as_bytes()).await?;
            }
        }
    }
}

enum Data {
    Message(Vec<u8>),
    TooLarge,
}

/// Read DATA up to the lone dot, undoing dot-stuffing. Over the size limit
/// the rest is read and discarded so the session stays in sync. `None` on EOF.
///
/// The end is `CRLF . CRLF` and nothing else: a dot line after a bare LF is
/// content, not the end, so a crafted message cannot end early and smuggle
/// a second, forged message into the archive. Memory is bounded by the size
/// limit even for a "line" without end.
async fn read_data<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    ctx: &SmtpContext,
) -> std::io::Result<Option<Data>> {
    let max = ctx.config.max_message_bytes;
    let mut message = Vec::new();
    let mut too_large = false;
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
            Err(_) | Ok(Ok(None)) => return Ok(None),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Some(ending))) => ending,
        };
        if after_crlf && line.as_slice() == b".\r\n" {
            return Ok(Some(if too_large {
                Data::TooLarge
            } else {
                Data::Message(message)
            }));
        }
        let content = if after_crlf {
            line.strip_prefix(b".").unwrap_or(&line)
        } else {
            &line[..]
        };
        if overflow || message.len() + content.len() > max {
            too_large = true;
            message = Vec::new();
        }
        if !too_large {
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
    let decoded = decode_journal(raw, &envelope, &ctx.config.journal_addresses, &ctx.decode);
    let record = match decoded {
        Ok(journal) => journal.record,
        Err(e) => return format!("554 5.6.0 Message could not be read: {e}\r\n"),
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
        Session::new(&SmtpConfig {
            max_recipients: 2,
            max_message_bytes: 1000,
            ..SmtpConfig::default()
        })
    }

    fn code(a: Action) -> String {
        match a {
            Action::Reply(r) | Action::Close(r) => {
                r.lines().last().unwrap_or("").chars().take(3).collect()
            }
            Action::ReadData => "354".into(),
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
