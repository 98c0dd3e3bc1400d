//! A small SMTP sink for the tests: EHLO, STARTTLS or implicit TLS
//! (rustls), AUTH PLAIN (offered only inside TLS), MAIL, RCPT, DATA; it
//! records each session, including whether AUTH came inside TLS.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use tokio_rustls::rustls;

#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    /// STARTTLS offered; AUTH offered only inside TLS.
    StartTls,
    /// TLS from the first byte.
    Implicit,
    /// No TLS at all (AUTH never offered).
    Plain,
    /// No TLS, and MAIL FROM is answered 451 (try again later).
    Defer,
}

#[derive(Default, Debug, Clone)]
pub struct Session {
    pub tls: bool,
    pub auth_in_tls: Option<bool>,
    pub auth_user: Option<String>,
    pub auth_password: Option<String>,
    pub mail_from: Option<String>,
    pub rcpt_to: Vec<String>,
    pub data: Option<Vec<u8>>,
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
    Gone,
}

impl Conn {
    fn read_line(&mut self) -> Option<String> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        loop {
            let n = match self {
                Conn::Plain(s) => s.read(&mut b).ok()?,
                Conn::Tls(s) => s.read(&mut b).ok()?,
                Conn::Gone => return None,
            };
            if n == 0 {
                return None;
            }
            line.push(b[0]);
            if line.ends_with(b"\r\n") {
                line.truncate(line.len() - 2);
                return Some(String::from_utf8_lossy(&line).into_owned());
            }
        }
    }

    fn send(&mut self, text: &str) {
        let _ = match self {
            Conn::Plain(s) => s.write_all(text.as_bytes()).and_then(|_| s.flush()),
            Conn::Tls(s) => s.write_all(text.as_bytes()).and_then(|_| s.flush()),
            Conn::Gone => Ok(()),
        };
    }
}

pub struct Sink {
    pub port: u16,
    pub sessions: Arc<Mutex<Vec<Session>>>,
}

/// Start a sink accepting `user` / `password`.
pub fn sink(mode: Mode, tls: Arc<rustls::ServerConfig>, user: &str, password: &str) -> Sink {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sessions = Arc::new(Mutex::new(Vec::new()));
    let (s2, user, password) = (sessions.clone(), user.to_string(), password.to_string());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let session = serve(mode, stream, tls.clone(), &user, &password);
            s2.lock().unwrap().push(session);
        }
    });
    Sink { port, sessions }
}

fn serve(
    mode: Mode,
    stream: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    user: &str,
    password: &str,
) -> Session {
    let mut s = Session::default();
    let mut conn = if mode == Mode::Implicit {
        s.tls = true;
        let c = rustls::ServerConnection::new(tls.clone()).unwrap();
        Conn::Tls(Box::new(rustls::StreamOwned::new(c, stream)))
    } else {
        Conn::Plain(stream)
    };
    conn.send("220 sink.test ESMTP mailtrail test sink\r\n");
    while let Some(line) = conn.read_line() {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            let mut reply = String::from("250-sink.test\r\n");
            if mode == Mode::StartTls && !s.tls {
                reply.push_str("250-STARTTLS\r\n");
            }
            if s.tls {
                reply.push_str("250-AUTH PLAIN LOGIN\r\n");
            }
            reply.push_str("250 8BITMIME\r\n");
            conn.send(&reply);
        } else if upper == "STARTTLS" && mode == Mode::StartTls && !s.tls {
            conn.send("220 2.0.0 ready to start TLS\r\n");
            let Conn::Plain(stream) = std::mem::replace(&mut conn, Conn::Gone) else {
                unreachable!()
            };
            let c = rustls::ServerConnection::new(tls.clone()).unwrap();
            conn = Conn::Tls(Box::new(rustls::StreamOwned::new(c, stream)));
            s.tls = true;
        } else if let Some(rest) = upper.strip_prefix("AUTH PLAIN") {
            let arg = line[line.len() - rest.len()..].trim().to_string();
            let arg = if arg.is_empty() {
                conn.send("334 \r\n");
                conn.read_line().unwrap_or_default()
            } else {
                arg
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(arg.trim())
                .unwrap_or_default();
            let parts: Vec<String> = decoded
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            s.auth_in_tls = Some(s.tls);
            s.auth_user = parts.get(1).cloned();
            s.auth_password = parts.get(2).cloned();
            if parts.get(1).map(String::as_str) == Some(user)
                && parts.get(2).map(String::as_str) == Some(password)
            {
                conn.send("235 2.7.0 Authentication successful\r\n");
            } else {
                conn.send("535 5.7.8 Authentication credentials invalid\r\n");
            }
        } else if upper.starts_with("MAIL FROM:") {
            s.mail_from = Some(line[10..].trim().to_string());
            if mode == Mode::Defer {
                conn.send("451 4.3.0 Mail server temporarily rejected message\r\n");
            } else {
                conn.send("250 2.1.0 Ok\r\n");
            }
        } else if upper.starts_with("RCPT TO:") {
            s.rcpt_to.push(line[8..].trim().to_string());
            conn.send("250 2.1.5 Ok\r\n");
        } else if upper == "DATA" {
            conn.send("354 End data with <CR><LF>.<CR><LF>\r\n");
            let mut data = Vec::new();
            while let Some(l) = conn.read_line() {
                if l == "." {
                    break;
                }
                let l = l.strip_prefix('.').map(str::to_string).unwrap_or(l);
                data.extend_from_slice(l.as_bytes());
                data.extend_from_slice(b"\r\n");
            }
            s.data = Some(data);
            conn.send("250 2.0.0 Ok: queued\r\n");
        } else if upper == "QUIT" {
            conn.send("221 2.0.0 Bye\r\n");
            break;
        } else if upper == "RSET" || upper == "NOOP" {
            conn.send("250 2.0.0 Ok\r\n");
        } else {
            conn.send("502 5.5.2 Error: command not recognized\r\n");
        }
    }
    s
}

/// The sessions once the sink has recorded `n` of them.
pub fn wait_sessions(sink: &Sink, n: usize) -> Vec<Session> {
    for _ in 0..100 {
        let s = sink.sessions.lock().unwrap().clone();
        if s.len() >= n {
            return s;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("the sink did not record {n} sessions");
}
