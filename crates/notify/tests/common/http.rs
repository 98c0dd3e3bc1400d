//! A small HTTP/1.1 receiver for the webhook tests (std sockets): records
//! each request and answers with the status the path's last segment asks
//! for (`/500`, `/400`, `/429`, `/301`), late (`/slow`: after 3 s), or 200.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

pub struct Receiver {
    pub port: u16,
    pub got: Arc<Mutex<Vec<Received>>>,
}

fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut b).ok()? == 0 {
            return None;
        }
        buf.push(b[0]);
    }
    let head = String::from_utf8(buf).ok()?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .expect("requests carry Content-Length");
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    Some(Received {
        method,
        path,
        headers,
        body,
    })
}

pub fn receiver() -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let g = g.clone();
            thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let Some(req) = read_request(&mut stream) else {
                    return;
                };
                let path = req.path.clone();
                g.lock().unwrap().push(req);
                let last = format!("/{}", path.rsplit('/').next().unwrap_or(""));
                let (status, extra, body) = match last.as_str() {
                    "/500" => ("500 Internal Server Error", "", "boom"),
                    "/400" => ("400 Bad Request", "", "invalid_payload"),
                    "/429" => ("429 Too Many Requests", "Retry-After: 7\r\n", "slow down"),
                    "/301" => ("301 Moved Permanently", "Location: /elsewhere\r\n", ""),
                    "/slow" => {
                        thread::sleep(Duration::from_secs(3));
                        ("200 OK", "", "ok")
                    }
                    _ => ("200 OK", "", "ok"),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.flush();
            });
        }
    });
    Receiver { port, got }
}
