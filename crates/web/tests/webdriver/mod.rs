//! A small WebDriver client for the console's browser tests: ChromeDriver
//! on a free loopback port, one headless Chromium session driven over the
//! W3C protocol with plain HTTP (ureq), waits that poll with a deadline,
//! and a PNG decoder to check that screenshots are real pictures.
//!
//! Shared by `crates/web/tests/browser.rs` (an in-process console) and
//! `crates/cli/tests/browser_serve.rs` (the `mailtrail serve` binary), which
//! includes this file by path; each uses only some of it, hence the
//! `dead_code` allowance.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long any one wait may last before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// Chromium and ChromeDriver from `PATH` (Debian's `chromium` and
/// `chromium-driver`); without them, `None` after saying the test is skipped.
pub fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    match (find_program("chromium"), find_program("chromedriver")) {
        (Some(chromium), Some(chromedriver)) => Some((chromium, chromedriver)),
        _ => {
            println!(
                "skipped: chromium or chromedriver is not installed \
                 (apt-get install chromium chromium-driver)"
            );
            None
        }
    }
}

pub fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // Loopback only: never through a proxy from the environment.
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// ChromeDriver on a free loopback port, stopped on drop.
pub struct Driver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Driver {
    /// Start ChromeDriver on a free port and wait until it says it is
    /// ready. The port is free when chosen; should another process take it
    /// first, ChromeDriver exits and the next attempt picks another.
    pub fn start(program: &Path, dir: &Path) -> Driver {
        let agent = agent();
        for attempt in 1..=3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log = dir.join(format!("chromedriver-{attempt}.log"));
            let child = Command::new(program)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut driver = Driver {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log,
            };
            let ready = wait_until("ChromeDriver to be ready", WAIT, || {
                if let Ok(Some(status)) = driver.child.try_wait() {
                    return Some(Err(status));
                }
                let mut answer = agent.get(format!("{}/status", driver.url)).call().ok()?;
                let body: Value =
                    serde_json::from_str(&answer.body_mut().read_to_string().ok()?).ok()?;
                body["value"]["ready"]
                    .as_bool()
                    .filter(|ready| *ready)
                    .map(Ok)
            });
            match ready {
                Ok(_) => return driver,
                Err(status) if attempt < 3 => {
                    eprintln!("chromedriver exited with {status}, trying another port");
                }
                Err(status) => panic!(
                    "chromedriver exited with {status}; its log:\n{}",
                    driver.log_tail()
                ),
            }
        }
        unreachable!()
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct WebDriverError {
    status: u16,
    error: String,
    message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}: {}", self.status, self.error, self.message)
    }
}

/// The W3C key of an element reference.
pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// The Enter key, as WebDriver's key actions spell it.
pub const ENTER: &str = "\u{E007}";

/// One browser session; quits Chromium on drop.
pub struct Browser {
    agent: ureq::Agent,
    session: String,
    /// The profile folder, to find Chromium's processes if the session
    /// could not be ended cleanly.
    profile: PathBuf,
}

pub enum Method {
    Get,
    Post(Value),
    Delete,
}

impl Browser {
    /// A new session: Chromium headless, with a new profile in `profile`,
    /// set to Japanese (`--lang`, and `Accept-Language: ja`), plus the
    /// test's own `args` and preferences (`prefs`, merged over the language).
    pub fn start(
        driver: &Driver,
        chromium: &Path,
        profile: PathBuf,
        args: &[String],
        prefs: Value,
    ) -> Browser {
        let mut all_args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--hide-scrollbars".into(),
            format!("--user-data-dir={}", profile.display()),
            "--window-size=1280,800".into(),
            "--lang=ja".into(),
        ];
        all_args.extend_from_slice(args);
        // What the browser sends as Accept-Language.
        let mut all_prefs = json!({ "intl.accept_languages": "ja" });
        if let (Some(all), Value::Object(more)) = (all_prefs.as_object_mut(), prefs) {
            all.extend(more);
        }
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": all_args,
                        "prefs": all_prefs,
                    },
                },
            },
        });
        let agent = agent();
        let mut answer = agent
            .post(format!("{}/session", driver.url))
            .header("Content-Type", "application/json")
            .send(capabilities.to_string())
            .unwrap();
        let status = answer.status().as_u16();
        let body: Value =
            serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(
            status,
            200,
            "new session: {body}\nchromedriver log:\n{}",
            driver.log_tail()
        );
        let id = body["value"]["sessionId"].as_str().unwrap();
        let browser = Browser {
            agent,
            session: format!("{}/session/{id}", driver.url),
            profile,
        };
        browser
            .call(
                "/timeouts",
                Method::Post(json!({"implicit": 0, "pageLoad": 20_000, "script": 10_000})),
            )
            .unwrap();
        browser
    }

    pub fn call(&self, path: &str, method: Method) -> Result<Value, WebDriverError> {
        let url = format!("{}{path}", self.session);
        let answer = match method {
            Method::Get => self.agent.get(&url).call(),
            Method::Delete => self.agent.delete(&url).call(),
            Method::Post(body) => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        };
        let mut answer = answer.map_err(|e| WebDriverError {
            status: 0,
            error: "transport".into(),
            message: e.to_string(),
        })?;
        let status = answer.status().as_u16();
        let text = answer
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| WebDriverError {
                status,
                error: "transport".into(),
                message: e.to_string(),
            })?;
        let mut body: Value = serde_json::from_str(&text).map_err(|e| WebDriverError {
            status,
            error: "not JSON".into(),
            message: format!("{e}: {text}"),
        })?;
        let value = body["value"].take();
        if status == 200 {
            Ok(value)
        } else {
            Err(WebDriverError {
                status,
                error: value["error"].as_str().unwrap_or_default().to_string(),
                message: value["message"].as_str().unwrap_or_default().to_string(),
            })
        }
    }

    pub fn must(&self, what: &str, path: &str, method: Method) -> Value {
        self.call(path, method)
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    pub fn goto(&self, url: &str) {
        self.must("navigate", "/url", Method::Post(json!({ "url": url })));
    }

    pub fn back(&self) {
        self.must("back", "/back", Method::Post(json!({})));
    }

    pub fn url(&self) -> String {
        self.must("url", "/url", Method::Get)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The page's path and query.
    pub fn path(&self) -> String {
        let url = self.url();
        let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        after_scheme
            .find('/')
            .map_or("/".to_string(), |i| after_scheme[i..].to_string())
    }

    pub fn title(&self) -> String {
        self.must("title", "/title", Method::Get)
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn locate(&self, using: &str, value: &str) -> Option<String> {
        match self.call(
            "/element",
            Method::Post(json!({ "using": using, "value": value })),
        ) {
            Ok(element) => Some(element[ELEMENT].as_str().unwrap().to_string()),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("find {value}: {e}"),
        }
    }

    pub fn find(&self, css: &str) -> Option<String> {
        self.locate("css selector", css)
    }

    pub fn find_all(&self, css: &str) -> Vec<String> {
        self.must(
            &format!("find all {css}"),
            "/elements",
            Method::Post(json!({ "using": "css selector", "value": css })),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[ELEMENT].as_str().unwrap().to_string())
        .collect()
    }

    /// The element, once the page has it.
    pub fn wait_for(&self, css: &str) -> String {
        wait_until(&format!("an element {css} on {}", self.url()), WAIT, || {
            self.find(css)
        })
    }

    pub fn link(&self, text: &str) -> String {
        wait_until(&format!("a link \"{text}\""), WAIT, || {
            self.locate("link text", text)
        })
    }

    pub fn type_text(&self, element: &str, text: &str) {
        self.must(
            "send keys",
            &format!("/element/{element}/value"),
            Method::Post(json!({ "text": text })),
        );
    }

    pub fn clear(&self, element: &str) {
        self.must(
            "clear",
            &format!("/element/{element}/clear"),
            Method::Post(json!({})),
        );
    }

    pub fn click(&self, element: &str) {
        self.must(
            "click",
            &format!("/element/{element}/click"),
            Method::Post(json!({})),
        );
    }

    pub fn text(&self, element: &str) -> String {
        self.must("text", &format!("/element/{element}/text"), Method::Get)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// An element's text, or `None` when the element is gone (the page was
    /// replaced between finding it and reading it): for waits across a
    /// navigation.
    pub fn text_if_present(&self, element: &str) -> Option<String> {
        self.call(&format!("/element/{element}/text"), Method::Get)
            .ok()
            .map(|v| v.as_str().unwrap_or_default().to_string())
    }

    pub fn property(&self, element: &str, name: &str) -> Value {
        self.must(
            "property",
            &format!("/element/{element}/property/{name}"),
            Method::Get,
        )
    }

    /// Run a function body in the page (`return …` gives the answer).
    pub fn js(&self, script: &str, args: Value) -> Value {
        self.must(
            script,
            "/execute/sync",
            Method::Post(json!({ "script": script, "args": args })),
        )
    }

    /// Wait until the page's path satisfies `want` and the page has loaded.
    pub fn wait_path(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        wait_until(what, WAIT, || {
            let path = self.path();
            (want(&path) && self.js("return document.readyState", json!([])) == "complete")
                .then_some(path)
        })
    }

    /// Size the window so that the page's viewport is `width`×`height`.
    pub fn set_viewport(&self, width: i64, height: i64) {
        let mut window = (width, height);
        for _ in 0..3 {
            self.must(
                "window rect",
                "/window/rect",
                Method::Post(json!({ "width": window.0, "height": window.1 })),
            );
            let inner = self.js("return [innerWidth, innerHeight]", json!([]));
            let inner = (inner[0].as_i64().unwrap(), inner[1].as_i64().unwrap());
            if inner == (width, height) {
                return;
            }
            // The window's frame, if any, comes on top of the viewport.
            window = (window.0 + width - inner.0, window.1 + height - inner.1);
        }
        panic!("could not size the viewport to {width}×{height}");
    }

    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let data = self.must("screenshot", "/screenshot", Method::Get);
        base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap()
    }

    pub fn cookies(&self) -> Vec<(String, String)> {
        self.must("cookies", "/cookie", Method::Get)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["value"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

/// Steps in the console's own pages.
impl Browser {
    /// Press the header's sign-out button: back to the sign-in page, and
    /// the session cookie is gone.
    pub fn sign_out(&self) {
        self.click(&self.wait_for("form[action='/logout'] button[type=submit]"));
        self.wait_path("the sign-in page after signing out", |p| p == "/login");
        assert!(
            !self.cookies().iter().any(|(name, _)| name == "mt_session"),
            "the session cookie is cleared"
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Quits Chromium. If that fails, end the processes that run on this
        // test's own profile folder (and no others) by their ids.
        if self.call("", Method::Delete).is_ok() {
            return;
        }
        let marker = format!("--user-data-dir={}", self.profile.display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == marker.as_bytes())
            {
                let _ = Command::new("kill").arg("-9").arg(&name).status();
            }
        }
    }
}

/// A form field as the browser sends it in a query string.
pub fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Poll `f` every 50 ms until it gives an answer; fail after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(answer) = f() {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------- PNG

/// Decode a PNG as far as its pixels: signature, chunk checksums, the
/// image header, the zlib stream and every row's filter. Returns the
/// width, the height and how many distinct colours the image has.
pub fn decode_png(data: &[u8]) -> (u32, u32, usize) {
    assert!(
        data.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG signature"
    );
    let mut at = 8;
    let mut header = None;
    let mut idat = Vec::new();
    let mut ended = false;
    while at + 12 <= data.len() {
        let len = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let kind = &data[at + 4..at + 8];
        let body = &data[at + 8..at + 8 + len];
        let crc = u32::from_be_bytes(data[at + 8 + len..at + 12 + len].try_into().unwrap());
        let mut check = flate2::Crc::new();
        check.update(&data[at + 4..at + 8 + len]);
        assert_eq!(
            check.sum(),
            crc,
            "bad CRC in chunk {}",
            String::from_utf8_lossy(kind)
        );
        match kind {
            b"IHDR" => header = Some(body.to_vec()),
            b"IDAT" => idat.extend_from_slice(body),
            b"IEND" => {
                ended = true;
                break;
            }
            _ => {}
        }
        at += 12 + len;
    }
    assert!(ended, "no IEND chunk");
    let header = header.expect("no IHDR chunk");
    let width = u32::from_be_bytes(header[0..4].try_into().unwrap());
    let height = u32::from_be_bytes(header[4..8].try_into().unwrap());
    let (depth, colour, interlace) = (header[8], header[9], header[12]);
    assert_eq!(depth, 8, "bit depth");
    assert_eq!(interlace, 0, "interlaced");
    let bpp = match colour {
        2 => 3,
        6 => 4,
        other => panic!("unexpected colour type {other}"),
    };
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = width as usize * bpp;
    assert_eq!(raw.len(), height as usize * (stride + 1), "pixel data size");
    let mut previous = vec![0u8; stride];
    let mut colours = std::collections::HashSet::new();
    for row in raw.chunks(stride + 1) {
        let (filter, line) = (row[0], &row[1..]);
        let mut current = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= bpp { current[i - bpp] } else { 0 };
            let b = previous[i];
            let c = if i >= bpp { previous[i - bpp] } else { 0 };
            let predicted = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(b)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                other => panic!("unknown row filter {other}"),
            };
            current[i] = line[i].wrapping_add(predicted);
        }
        for pixel in current.chunks(bpp) {
            colours.insert(pixel[..3].to_vec());
        }
        previous = current;
    }
    (width, height, colours.len())
}
