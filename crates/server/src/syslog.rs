//! The syslog receiver: Postfix, Sendmail and Exim lines over UDP and TCP.
//!
//! Mail servers already ship their logs with syslog; receiving them makes
//! every message searchable seconds after the MTA handled it, without a
//! file to follow. Listeners only frame messages — UDP: one datagram, one
//! line; TCP: RFC 6587 octet counting (`LEN SP MSG`) or newline framing,
//! chosen per message by its first byte — and queue the lines to one decoder
//! thread, which runs the same [`Dispatcher`] as `mailtrail import` (a
//! message's lines arrive over minutes, interleaved with thousands of others,
//! so one correlator must see them all in order).
//!
//! Syslog over TLS (RFC 5425) is the TCP receiver behind a TLS handshake:
//! the same octet-counted frames, read by the same code.
//!
//! Back-pressure: the queue is bounded. A TCP reader waits for room (the
//! sender's socket buffer fills, and rsyslog queues on its side); a UDP
//! datagram that finds the queue full is dropped and counted — UDP offers no
//! other way, which is why TCP is the recommended transport.

use std::net::SocketAddr;
use std::sync::Arc;

use mailtrail_ingest::syslog::Dispatcher;
use mailtrail_ingest::{DecodeOptions, VecSink};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::tls::TlsFiles;

use crate::metrics::Metrics;
use crate::writer::StoreWriter;

/// The syslog receiver: `[syslog]` in mailtrail.toml.
///
/// ```toml
/// [syslog]
/// udp = "0.0.0.0:514"       # RFC 5426; drops are counted in /metrics
/// tcp = "0.0.0.0:601"       # RFC 6587, octet counting or newline framing
/// tls = "0.0.0.0:6514"      # RFC 5425
///
/// [syslog.tls_files]
/// cert = "/etc/mailtrail/tls/fullchain.pem"
/// key = "/etc/mailtrail/tls/privkey.pem"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogConfig {
    /// UDP address to listen on (RFC 5426), if any.
    pub udp: Option<SocketAddr>,
    /// TCP address to listen on (RFC 6587 framing), if any.
    pub tcp: Option<SocketAddr>,
    /// TLS address to listen on (RFC 5425), if any; needs `tls_files`.
    pub tls: Option<SocketAddr>,
    /// Certificate and key for the TLS listener.
    pub tls_files: Option<TlsFiles>,
    /// Longest syslog message kept, in bytes; longer ones are cut. Default 64 KiB.
    pub max_line_bytes: usize,
    /// Lines waiting for the decoder before receivers slow down (TCP, TLS)
    /// or drop (UDP). Default 65536.
    pub queue: usize,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            udp: None,
            tcp: None,
            tls: None,
            tls_files: None,
            max_line_bytes: 64 * 1024,
            queue: 65_536,
        }
    }
}

impl SyslogConfig {
    /// Whether any listener is configured.
    pub fn enabled(&self) -> bool {
        self.udp.is_some() || self.tcp.is_some() || self.tls.is_some()
    }

    /// Load the certificate of the TLS listener, if one is configured.
    pub fn prepare(&self) -> Result<Option<TlsAcceptor>, SyslogConfigError> {
        match (&self.tls, &self.tls_files) {
            (Some(_), None) => Err(SyslogConfigError::TlsWithoutFiles),
            (Some(_), Some(files)) => Ok(Some(files.acceptor()?)),
            (None, _) => Ok(None),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyslogConfigError {
    #[error("[syslog] tls needs [syslog.tls_files] (a certificate and key)")]
    TlsWithoutFiles,
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// One framed syslog message and where it came from.
pub struct Line {
    pub source: String,
    pub bytes: Vec<u8>,
}

/// The decoder thread: lines in, records to the store. Ends when every
/// sender is gone, after emitting the messages still open.
pub fn decode_lines(
    mut lines: mpsc::Receiver<Line>,
    writer: StoreWriter,
    opts: DecodeOptions,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut dispatcher = Dispatcher::new(&opts);
        let mut pending = VecSink::default();
        let mut number: u64 = 0;
        let flush = |pending: &mut VecSink| {
            if pending.records.is_empty() && pending.rejects.is_empty() {
                return;
            }
            let records = std::mem::take(&mut pending.records);
            let rejects = std::mem::take(&mut pending.rejects);
            // No client to tell: retry until the store takes them (the line
            // queue fills meanwhile, and TCP senders are slowed down).
            writer.submit_until_stored(records, rejects, Vec::new(), &|| false);
        };
        while let Some(line) = lines.blocking_recv() {
            number += 1;
            let _ = dispatcher.line(&line.bytes, &line.source, number, &mut pending);
            // Write when the queue is drained (low latency when idle) or
            // when enough has gathered (throughput under load).
            if lines.is_empty() || pending.records.len() >= 512 {
                flush(&mut pending);
            }
        }
        let _ = dispatcher.finish(&mut pending);
        flush(&mut pending);
    })
}

/// Receive datagrams until the task is dropped.
pub async fn serve_udp(
    socket: UdpSocket,
    lines: mpsc::Sender<Line>,
    metrics: Arc<Metrics>,
    max: usize,
) {
    let mut buf = vec![0u8; max.max(1024)];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        for part in buf[..n].split(|&b| b == b'\n') {
            let part = part.strip_suffix(b"\r").unwrap_or(part);
            if part.is_empty() {
                continue;
            }
            let line = Line {
                source: format!("syslog-udp:{}", peer.ip()),
                bytes: part.to_vec(),
            };
            Metrics::add(&metrics.syslog_udp_lines, 1);
            if lines.try_send(line).is_err() {
                Metrics::add(&metrics.syslog_udp_dropped, 1);
            }
        }
    }
}

/// Accept TCP connections until the task is dropped. At most
/// `MAX_TCP_CONNECTIONS` at once; more are closed at once.
pub async fn serve_tcp(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    lines: mpsc::Sender<Line>,
    metrics: Arc<Metrics>,
    max: usize,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of descriptors or similar: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let lines = lines.clone();
        let metrics = metrics.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => {
                    let source = format!("syslog-tcp:{}", peer.ip());
                    let _ = tcp_connection(stream, source, lines, metrics, max).await;
                }
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream));
                    let Ok(Ok(stream)) = handshake.await else {
                        Metrics::add(&metrics.syslog_tls_failures, 1);
                        return;
                    };
                    let source = format!("syslog-tls:{}", peer.ip());
                    let _ = tcp_connection(stream, source, lines, metrics, max).await;
                }
            }
        });
    }
}

/// A TLS client must finish its handshake within this time.
const TLS_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(30);
/// Syslog TCP connections served at once.
pub const MAX_TCP_CONNECTIONS: usize = 1000;
/// A sender silent this long is disconnected (it reconnects when it has more).
const TCP_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

/// Octet counting (RFC 6587 3.4.1) is `[1-9][0-9]{0,9} SP MSG`; anything
/// else — an ISO timestamp, a BSD stamp, `<PRI>` — is newline framing.
fn octet_count(head: &[u8]) -> Option<usize> {
    let digits = head.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 10 || head.first() == Some(&b'0') {
        return None;
    }
    if head.get(digits) != Some(&b' ') {
        return None;
    }
    std::str::from_utf8(&head[..digits]).ok()?.parse().ok()
}

async fn tcp_connection<S: AsyncRead + Unpin>(
    stream: S,
    source: String,
    lines: mpsc::Sender<Line>,
    metrics: Arc<Metrics>,
    max: usize,
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    loop {
        let message = match tokio::time::timeout(TCP_IDLE, next_frame(&mut reader, max)).await {
            Err(_) => return Ok(()),
            Ok(frame) => match frame? {
                Some(message) => message,
                None => return Ok(()),
            },
        };
        let mut message = message;
        while message.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            message.pop();
        }
        Metrics::add(&metrics.syslog_tcp_lines, 1);
        if message.is_empty() {
            continue;
        }
        let line = Line {
            source: source.clone(),
            bytes: message,
        };
        // Waits when the decoder is behind: the connection stops being read.
        if lines.send(line).await.is_err() {
            return Ok(());
        }
    }
}

/// The next syslog message of a TCP stream (RFC 6587), `None` at its end.
///
/// The framing is told per message from its first bytes, read one at a time
/// from the buffer: `[1-9][0-9]{0,9} SP` is an octet count and exactly that
/// many bytes follow; anything else (digits followed by something other than
/// a space, as in an ISO timestamp) is the start of a newline-framed message,
/// and the bytes already read belong to it. Deciding on whatever happens to
/// be buffered would misread a length prefix split across two reads.
async fn next_frame<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let first = match reader.read_u8().await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut head = vec![first];
    if (b'1'..=b'9').contains(&first) {
        loop {
            let b = match reader.read_u8().await {
                Ok(b) => b,
                // A stream that ends in digits: a last message without LF.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Some(head)),
                Err(e) => return Err(e),
            };
            if b == b' ' {
                if let Some(len) = octet_count(&[head.as_slice(), b" "].concat()) {
                    let mut message = vec![0u8; len.min(max)];
                    reader.read_exact(&mut message).await?;
                    if len > max {
                        // Skip what does not fit; the kept head is decoded.
                        let mut rest = (&mut *reader).take((len - max) as u64);
                        tokio::io::copy(&mut rest, &mut tokio::io::sink()).await?;
                    }
                    return Ok(Some(message));
                }
            }
            if b == b'\n' {
                return Ok(Some(head));
            }
            head.push(b);
            if !b.is_ascii_digit() || head.len() > 11 {
                break;
            }
        }
    } else if first == b'\n' {
        return Ok(Some(Vec::new()));
    }
    read_line_bounded(reader, max, &mut head).await?;
    Ok(Some(head))
}

/// Read through the next LF keeping at most `max` bytes; the rest of a
/// longer line is consumed chunk by chunk, never buffered. Returns whether
/// an LF was found (false at EOF).
async fn read_line_bounded<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    max: usize,
    out: &mut Vec<u8>,
) -> std::io::Result<bool> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(false);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        let room = max.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len() + usize::from(done);
        reader.consume(used);
        if done {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames read from a stream that arrives in the given pieces.
    fn frames(pieces: &[&[u8]]) -> Vec<Vec<u8>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut builder = tokio_test_stream(pieces);
            let mut reader = BufReader::with_capacity(16, &mut builder);
            let mut out = Vec::new();
            while let Some(frame) = next_frame(&mut reader, 1024).await.unwrap() {
                out.push(frame);
            }
            out
        })
    }

    /// A reader that returns the pieces one read at a time, as TCP segments.
    fn tokio_test_stream(pieces: &[&[u8]]) -> impl AsyncRead + Unpin {
        struct Pieces(std::collections::VecDeque<Vec<u8>>);
        impl AsyncRead for Pieces {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                if let Some(mut piece) = self.0.pop_front() {
                    let n = piece.len().min(buf.remaining());
                    buf.put_slice(&piece[..n]);
                    if n < piece.len() {
                        self.0.push_front(piece.split_off(n));
                    }
                }
                std::task::Poll::Ready(Ok(()))
            }
        }
        Pieces(pieces.iter().map(|p| p.to_vec()).collect())
    }

    #[test]
    fn a_length_prefix_split_across_reads_is_still_a_length() {
        let got = frames(&[b"5 hello1", b"2 <13>second!!", b"3 abc"]);
        assert_eq!(
            got,
            [b"hello".to_vec(), b"<13>second!!".to_vec(), b"abc".to_vec()]
        );
        // Split right after the digits, and inside a long prefix.
        let got = frames(&[b"10", b" 0123456789", b"1", b"1 hello world"]);
        assert_eq!(got, [b"0123456789".to_vec(), b"hello world".to_vec()]);
    }

    #[test]
    fn digits_without_a_space_start_a_newline_framed_message() {
        let got = frames(&[b"2026-11-27T10:00:00Z mx1 postfix: x\n", b"<13>Nov 27 y\n"]);
        assert_eq!(
            got,
            [
                b"2026-11-27T10:00:00Z mx1 postfix: x".to_vec(),
                b"<13>Nov 27 y".to_vec()
            ]
        );
        let got = frames(&[b"12345678901 too long for a length\n"]);
        assert_eq!(got, [b"12345678901 too long for a length".to_vec()]);
        let got = frames(&[b"42\n", b"7 abcdefg"]);
        assert_eq!(got, [b"42".to_vec(), b"abcdefg".to_vec()]);
    }

    #[test]
    fn framing_is_told_by_a_length_and_a_space() {
        assert_eq!(octet_count(b"123 <13>1 2026"), Some(123));
        assert_eq!(octet_count(b"87 Nov 27 10:"), Some(87));
        assert_eq!(octet_count(b"2026-11-27T10:"), None);
        assert_eq!(octet_count(b"<13>Nov 27 10"), None);
        assert_eq!(octet_count(b"0 x"), None);
        assert_eq!(octet_count(b"12345678901 x"), None);
        assert_eq!(octet_count(b"Nov 27 10:00"), None);
    }
}
