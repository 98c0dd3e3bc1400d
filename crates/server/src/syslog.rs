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
//! Back-pressure: the queue is bounded. A TCP reader waits for room (the
//! sender's socket buffer fills, and rsyslog queues on its side); a UDP
//! datagram that finds the queue full is dropped and counted — UDP offers no
//! other way, which is why TCP is the recommended transport.

use std::net::SocketAddr;
use std::sync::Arc;

use mailtrail_ingest::syslog::Dispatcher;
use mailtrail_ingest::{DecodeOptions, VecSink};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::writer::StoreWriter;

/// Settings of the syslog receiver (`[syslog]` in mailtrail.toml).
#[derive(Debug, Clone)]
pub struct SyslogConfig {
    /// UDP address to listen on (RFC 5426), if any.
    pub udp: Option<SocketAddr>,
    /// TCP address to listen on (RFC 6587 framing), if any.
    pub tcp: Option<SocketAddr>,
    /// Longest syslog message kept; longer ones are cut and reported.
    pub max_line_bytes: usize,
    /// Lines waiting for the decoder before receivers slow down (TCP) or drop (UDP).
    pub queue: usize,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            udp: None,
            tcp: None,
            max_line_bytes: 64 * 1024,
            queue: 65_536,
        }
    }
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
            // A failed write here has no client to tell; the error is the
            // store's, and the writer reports it in its own result.
            let _ = writer.submit_blocking(records, rejects, Vec::new());
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

/// Accept TCP connections until the task is dropped.
pub async fn serve_tcp(
    listener: TcpListener,
    lines: mpsc::Sender<Line>,
    metrics: Arc<Metrics>,
    max: usize,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let lines = lines.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = tcp_connection(stream, peer, lines, metrics, max).await;
        });
    }
}

async fn tcp_connection(
    stream: TcpStream,
    peer: SocketAddr,
    lines: mpsc::Sender<Line>,
    metrics: Arc<Metrics>,
    max: usize,
) -> std::io::Result<()> {
    let source = format!("syslog-tcp:{}", peer.ip());
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    loop {
        let first = match reader.fill_buf().await? {
            [] => return Ok(()),
            buf => buf[0],
        };
        let message = if first.is_ascii_digit() {
            // Octet counting: LEN SP MSG.
            let mut len_text = Vec::new();
            reader.read_until(b' ', &mut len_text).await?;
            let len: usize = std::str::from_utf8(&len_text)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "bad octet count")
                })?;
            let mut message = vec![0u8; len.min(max)];
            reader.read_exact(&mut message).await?;
            if len > max {
                // Skip what does not fit; the kept head is decoded (and
                // rejected if it cannot be read).
                let mut rest = (&mut reader).take((len - max) as u64);
                tokio::io::copy(&mut rest, &mut tokio::io::sink()).await?;
            }
            while message.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                message.pop();
            }
            message
        } else {
            let mut message = Vec::new();
            let n = (&mut reader)
                .take(max as u64 + 1)
                .read_until(b'\n', &mut message)
                .await?;
            if n == 0 {
                return Ok(());
            }
            if message.last() != Some(&b'\n') && message.len() > max {
                // An over-long line: drop the rest of it.
                let mut skipped = Vec::new();
                reader.read_until(b'\n', &mut skipped).await?;
                message.truncate(max);
            }
            while message.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                message.pop();
            }
            message
        };
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
