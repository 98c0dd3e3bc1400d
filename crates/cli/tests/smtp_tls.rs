//! Securing the receivers, end to end through the binary: STARTTLS with a
//! configured certificate, AUTH PLAIN / LOGIN only inside TLS, `require_tls`
//! and `require_auth`, allowed client networks, syslog over TLS (RFC 5425),
//! and start-up errors for settings that cannot work.
//!
//! The certificate is made by `openssl req` (Debian's openssl, as an
//! administrator would) and the client is rustls trusting exactly that
//! certificate, so the test proves a real handshake with the configured
//! files. Without the openssl command the TLS tests say they were skipped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

struct Server {
    child: Child,
    /// `listening NAME ADDR` lines printed at start-up.
    addrs: Vec<(String, String)>,
}

impl Server {
    fn addr(&self, name: &str) -> &str {
        self.addrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.as_str())
            .unwrap_or_else(|| panic!("no {name} listener in {:?}", self.addrs))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mailtrail(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mailtrail"));
    c.arg("--data-dir")
        .arg(data)
        .args(["--org-domain", "example.co.jp", "--timezone", "UTC"]);
    c
}

/// Start `serve` with these arguments and wait for `listeners` lines.
fn start(data: &Path, args: &[&str], listeners: usize) -> Server {
    let mut child = mailtrail(data)
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mailtrail serve");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut addrs = Vec::new();
    while addrs.len() < listeners {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("serve ended before listening: {err}");
        }
        if let Some(rest) = line.trim().strip_prefix("listening ") {
            let (name, addr) = rest.split_once(' ').expect("NAME ADDR");
            addrs.push((name.to_string(), addr.to_string()));
        }
    }
    Server { child, addrs }
}

/// A private CA and a server certificate it signed for localhost and
/// 127.0.0.1: (CA certificate, server certificate, server key). `None`
/// without the openssl command.
fn make_certificate(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let ca = dir.join("ca.pem");
    let ca_key = dir.join("ca-key.pem");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let csr = dir.join("cert.csr");
    let ext = dir.join("ext.cnf");
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .ok()?;
    let openssl = |args: &[&str]| -> Option<()> {
        let status = Command::new("openssl")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(())
    };
    let p = |p: &PathBuf| p.to_str().unwrap().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca_args = vec!["req", "-x509"];
    ca_args.extend(ec);
    let (ca_s, ca_key_s) = (p(&ca), p(&ca_key));
    ca_args.extend(["-days", "2", "-subj", "/CN=mailtrail test CA"]);
    ca_args.extend(["-keyout", &ca_key_s, "-out", &ca_s]);
    openssl(&ca_args)?;
    let mut req_args = vec!["req", "-new"];
    req_args.extend(ec);
    let (key_s, csr_s, cert_s, ext_s) = (p(&key), p(&csr), p(&cert), p(&ext));
    req_args.extend(["-subj", "/CN=localhost", "-keyout", &key_s, "-out", &csr_s]);
    openssl(&req_args)?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr_s,
        "-CA",
        &ca_s,
        "-CAkey",
        &ca_key_s,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext_s,
        "-out",
        &cert_s,
    ])?;
    Some((ca, cert, key))
}

fn client_config(cert: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A line-oriented client over any stream (plain or TLS).
struct Client<S: Read + Write> {
    stream: BufReader<S>,
}

impl<S: Read + Write> Client<S> {
    /// The whole reply, lines joined.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).unwrap();
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    fn send(&mut self, command: &str) -> String {
        self.stream
            .get_mut()
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        self.stream.get_mut().flush().unwrap();
        self.reply()
    }
}

fn plain(addr: &str) -> Client<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    Client {
        stream: BufReader::new(stream),
    }
}

/// STARTTLS on a plain client; returns the TLS client.
fn upgrade(
    mut client: Client<TcpStream>,
    cert: &Path,
) -> Client<StreamOwned<ClientConnection, TcpStream>> {
    assert!(client.send("STARTTLS").starts_with("220"));
    assert!(
        client.stream.buffer().is_empty(),
        "nothing may follow the 220"
    );
    let tcp = client.stream.into_inner();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(client_config(cert), name).unwrap();
    Client {
        stream: BufReader::new(StreamOwned::new(conn, tcp)),
    }
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn count(data: &Path, query: &str) -> u64 {
    let out = mailtrail(data)
        .args(["search", "--count", query])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn hash_password(password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(password));
    hash
}

/// mailtrail.toml with STARTTLS and one user `relay` with this password.
fn tls_config(dir: &Path, cert: &Path, key: &Path, extra: &str, password: &str) -> PathBuf {
    let config = dir.join("mailtrail.toml");
    std::fs::write(
        &config,
        format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\n{extra}[smtp.tls]\ncert = \"{}\"\nkey = \"{}\"\n\
             [[smtp.users]]\nname = \"relay\"\npassword_hash = \"{}\"\n",
            cert.display(),
            key.display(),
            hash_password(password)
        ),
    )
    .unwrap();
    config
}

#[test]
fn starttls_then_auth_then_mail() {
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, cert, key)) = make_certificate(dir.path()) else {
        println!("skipped: the openssl command is not installed (apt-get install openssl)");
        return;
    };
    let config = tls_config(
        dir.path(),
        &cert,
        &key,
        "require_tls = true\nrequire_auth = true\n",
        "s3cret-パスワード",
    );
    let data = dir.path().join("data");
    let server = start(&data, &["--config", config.to_str().unwrap()], 1);
    let addr = server.addr("smtp");

    let mut c = plain(addr);
    assert!(c.reply().starts_with("220"));
    let ehlo = c.send("EHLO relay.example.co.jp");
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(
        !ehlo.contains("AUTH"),
        "AUTH must not be offered in clear: {ehlo}"
    );
    assert!(
        c.send("AUTH PLAIN AHJlbGF5AHMzY3JldA==").starts_with("538"),
        "AUTH in clear must be refused"
    );
    assert!(c.send("MAIL FROM:<a@example.co.jp>").starts_with("530"));

    let mut c = upgrade(c, &ca);
    // RFC 3207: after the handshake the client starts again with EHLO.
    assert!(c.send("MAIL FROM:<a@example.co.jp>").starts_with("503"));
    let ehlo = c.send("EHLO relay.example.co.jp");
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(c.send("STARTTLS").starts_with("503"));
    assert!(
        c.send("MAIL FROM:<a@example.co.jp>").starts_with("530"),
        "require_auth"
    );
    let wrong = b64("\0relay\0wrong");
    assert!(c.send(&format!("AUTH PLAIN {wrong}")).starts_with("535"));
    assert!(c.send("AUTH LOGIN").starts_with("334"));
    assert!(c.send(&b64("relay")).starts_with("334"));
    assert!(c.send(&b64("s3cret-パスワード")).starts_with("235"));
    assert!(
        c.send("AUTH LOGIN").starts_with("503"),
        "already authenticated"
    );
    assert!(c.send("MAIL FROM:<taro@example.co.jp>").starts_with("250"));
    assert!(c
        .send("RCPT TO:<hanako@partner.example>")
        .starts_with("250"));
    assert!(c.send("DATA").starts_with("354"));
    let stored = c.send(
        "From: taro@example.co.jp\r\nTo: hanako@partner.example\r\n\
         Message-ID: <tls-1@example.co.jp>\r\nSubject: over TLS zebrafish\r\n\r\nbody\r\n.",
    );
    assert!(stored.starts_with("250"), "{stored}");
    assert!(c.send("QUIT").starts_with("221"));
    assert_eq!(count(&data, "zebrafish"), 1);
}

#[test]
fn three_wrong_passwords_close_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, cert, key)) = make_certificate(dir.path()) else {
        println!("skipped: the openssl command is not installed (apt-get install openssl)");
        return;
    };
    let config = tls_config(dir.path(), &cert, &key, "", "right");
    let data = dir.path().join("data");
    let server = start(&data, &["--config", config.to_str().unwrap()], 1);
    let mut c = plain(server.addr("smtp"));
    c.reply();
    c.send("EHLO x");
    let mut c = upgrade(c, &ca);
    c.send("EHLO x");
    let wrong = format!("AUTH PLAIN {}", b64("\0relay\0wrong"));
    assert!(c.send(&wrong).starts_with("535"));
    assert!(c.send(&wrong).starts_with("535"));
    let last = c.send(&wrong);
    assert!(last.starts_with("535"), "{last}");
    let mut closing = String::new();
    c.stream.read_line(&mut closing).unwrap();
    assert!(closing.starts_with("421"), "{closing}");
}

#[test]
fn clients_outside_the_allowed_networks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(
        &data,
        &["--smtp", "127.0.0.1:0", "--allow-network", "10.0.0.0/8"],
        1,
    );
    let mut c = plain(server.addr("smtp"));
    let greeting = c.reply();
    assert!(greeting.starts_with("554"), "{greeting}");
    assert!(greeting.contains("127.0.0.1"), "{greeting}");
    drop(server);

    // The default lets this host in.
    let server = start(&data, &["--smtp", "127.0.0.1:0"], 1);
    let mut c = plain(server.addr("smtp"));
    assert!(c.reply().starts_with("220"));
}

#[test]
fn syslog_over_tls_becomes_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, cert, key)) = make_certificate(dir.path()) else {
        println!("skipped: the openssl command is not installed (apt-get install openssl)");
        return;
    };
    let data = dir.path().join("data");
    let server = start(
        &data,
        &[
            "--syslog-tls",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        1,
    );
    let tcp = TcpStream::connect(server.addr("syslog-tls")).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(client_config(&ca), name).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    let stamp = chrono::Utc::now().format("%b %e %H:%M:%S").to_string();
    let lines = [
        format!("<22>{stamp} mx1 postfix/smtpd[10]: 7TLS1: client=pc-7.example.co.jp[10.1.0.7]"),
        format!("<22>{stamp} mx1 postfix/cleanup[11]: 7TLS1: message-id=<tls-syslog@example.co.jp>"),
        format!("<22>{stamp} mx1 postfix/qmgr[12]: 7TLS1: from=<taro@example.co.jp>, size=2048, nrcpt=1 (queue active)"),
        format!("<22>{stamp} mx1 postfix/smtp[13]: 7TLS1: to=<kestrel@partner.example>, relay=mx.partner.example[192.0.2.25]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 ok)"),
        format!("<22>{stamp} mx1 postfix/qmgr[12]: 7TLS1: removed"),
    ];
    for line in &lines {
        // RFC 5425: octet counting inside TLS.
        tls.write_all(format!("{} {line}", line.len()).as_bytes())
            .unwrap();
    }
    tls.flush().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while count(&data, "to:kestrel@partner.example") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the TLS syslog flow was not stored within 15 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(tls);

    // A client that does not speak TLS is dropped; the listener keeps serving.
    let mut bad = TcpStream::connect(server.addr("syslog-tls")).unwrap();
    let _ = bad.write_all(b"12 hello world\n");
    drop(bad);
    let tcp = TcpStream::connect(server.addr("syslog-tls")).unwrap();
    let conn = ClientConnection::new(
        client_config(&ca),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut again = StreamOwned::new(conn, tcp);
    again.write_all(b"3 <1>").unwrap();
    again.flush().unwrap();
}

#[test]
fn settings_that_cannot_work_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("mailtrail.toml");
    let failure = |toml: &str| -> String {
        std::fs::write(&config, toml).unwrap();
        let out = mailtrail(&data)
            .args(["--config", config.to_str().unwrap(), "serve"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{toml} must not start");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = failure("[smtp]\nlisten = \"127.0.0.1:0\"\nrequire_tls = true\n");
    assert!(err.contains("require_tls needs [smtp.tls]"), "{err}");
    let err = failure(
        "[smtp]\nlisten = \"127.0.0.1:0\"\n[smtp.tls]\ncert = \"nowhere/cert.pem\"\nkey = \"k.pem\"\n",
    );
    assert!(
        err.contains("nowhere/cert.pem") && err.contains("certificate"),
        "{err}"
    );
    let err = failure(
        "[smtp]\nlisten = \"127.0.0.1:0\"\nrequire_auth = true\n[smtp.tls]\ncert = \"c\"\nkey = \"k\"\n",
    );
    assert!(err.contains("no [[smtp.users]]"), "{err}");
    let err = failure("[smtp]\nlisten = \"127.0.0.1:0\"\nmax_recipients = \"many\"\n");
    assert!(err.contains("max_recipients"), "{err}");
    let err = failure("[smtp]\nlisten = \"127.0.0.1:0\"\nallowed_networks = [\"10.0.0/8\"]\n");
    assert!(
        err.contains("allowed_networks") || err.contains("10.0.0/8"),
        "{err}"
    );
    let err = failure("[syslog]\ntls = \"127.0.0.1:0\"\n");
    assert!(err.contains("[syslog.tls_files]"), "{err}");
}
