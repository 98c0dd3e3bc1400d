//! The `[notify]` section as an administrator writes it: the shipped
//! example parses and validates, unknown keys and unsafe or broken
//! settings are refused with a message that names the problem, and
//! secrets never show in debug output.

mod common;

use mailtrail_notify::{Channel, Severity, SyslogFormat, WebhookFormat};

use common::parse;

const EXAMPLE: &str = include_str!("../notify.example.toml");

#[test]
fn the_example_parses_and_validates() {
    let pki = common::pki();
    let dir = pki.dir.path();
    std::fs::write(dir.join("smtp-password"), "pw\n").unwrap();
    std::fs::write(dir.join("webhook-secret"), "s\n").unwrap();
    let ca = pki.ca.display().to_string();
    let text = EXAMPLE
        .replace("/etc/mailtrail/", &format!("{}/", dir.display()))
        .replace(
            "# ca_file = \"/etc/mailtrail/relay-ca.pem\"",
            &format!("ca_file = {ca:?}"),
        )
        .replace(
            "transport = \"tls\"",
            &format!("transport = \"tls\"\nca_file = {ca:?}"),
        );
    let config = parse(&text).unwrap();
    config.validate().expect("the example is valid");
    let names: Vec<String> = config
        .channels()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(names, ["security-team", "soc-teams", "ticketing", "siem"]);
    assert_eq!(config.retry.max_attempts, 10);
    assert_eq!(config.webhook[0].format, WebhookFormat::Teams);
    assert_eq!(config.syslog[0].format, SyslogFormat::Cef);
    assert!(config.mail[0].daily_digest);

    // min_severity = "high" on soc-teams.
    let teams = config.channel("soc-teams").unwrap();
    let mut n = common::notice();
    assert!(teams.accepts(&n));
    n.severity = Severity::Medium;
    assert!(!teams.accepts(&n));
    assert!(config.channel("siem").unwrap().accepts(&n));
    assert!(matches!(config.channel("siem"), Some(Channel::Syslog(_))));
}

#[test]
fn an_empty_section_is_no_channels() {
    let config = parse("[notify]\n").unwrap();
    assert!(config.channels().is_empty());
    config.validate().unwrap();
}

#[test]
fn unknown_keys_are_refused() {
    let e = parse(
        r#"
[[notify.mail]]
name = "m"
host = "localhost"
from = "a@example.jp"
to = ["b@example.jp"]
tls = true
"#,
    )
    .unwrap_err();
    assert!(e.contains("unknown field `tls`"), "{e}");
    let e = parse("[notify]\nchannels = []\n").unwrap_err();
    assert!(e.contains("unknown field `channels`"), "{e}");
    let e = parse("[[notify.syslog]]\nname = \"s\"\naddress = \"x:514\"\nformat = \"leef\"\n")
        .unwrap_err();
    assert!(e.contains("unknown variant `leef`"), "{e}");
}

fn invalid(text: &str) -> String {
    parse(text).unwrap().validate().unwrap_err().to_string()
}

#[test]
fn unsafe_or_broken_settings_are_refused() {
    let e = invalid(
        r#"
[[notify.mail]]
name = "m"
host = "smtp.example.jp"
starttls = "none"
user = "u"
password = "very-secret-pw"
from = "a@example.jp"
to = ["b@example.jp"]
"#,
    );
    assert!(e.contains("password must not travel in clear"), "{e}");
    assert!(!e.contains("very-secret-pw"), "{e}");

    let e = invalid(
        r#"
[[notify.mail]]
name = "m"
host = "smtp.example.jp"
starttls = "opportunistic"
user = "u"
password = "pw"
from = "a@example.jp"
to = ["b@example.jp"]
"#,
    );
    assert!(e.contains("starttls = \"required\""), "{e}");

    let e = invalid(
        r#"
[[notify.mail]]
name = "m"
host = "smtp.example.jp"
implicit_tls = true
starttls = "required"
from = "a@example.jp"
to = ["b@example.jp"]
"#,
    );
    assert!(e.contains("implicit_tls"), "{e}");

    let e = invalid(
        r#"
[[notify.mail]]
name = "m"
host = "localhost"
starttls = "none"
from = "not an address"
to = ["b@example.jp"]
"#,
    );
    assert!(e.contains("from = \"not an address\""), "{e}");

    let e = invalid(
        r#"
[[notify.mail]]
name = "m"
host = "localhost"
starttls = "none"
from = "a@example.jp"
to = ["b@example.jp"]
timezone = "Tokyo"
"#,
    );
    assert!(e.contains("IANA time zone"), "{e}");

    let e = invalid(
        r#"
[[notify.webhook]]
name = "w"
url = "http://hooks.example.jp/path-token-123"
"#,
    );
    assert!(e.contains("use https://"), "{e}");
    assert!(!e.contains("path-token-123"), "{e}");

    let e = invalid(
        r#"
[[notify.webhook]]
name = "w"
url = "http://127.0.0.1:9/x"
secret = "a"
secret_file = "/nonexistent"
"#,
    );
    assert!(e.contains("not both"), "{e}");

    let e = invalid(
        r#"
[[notify.syslog]]
name = "s"
address = "127.0.0.1:514"
facility = "local9"
"#,
    );
    assert!(e.contains("facility = \"local9\""), "{e}");

    let e = invalid(
        r#"
[[notify.syslog]]
name = "same"
address = "127.0.0.1:514"

[[notify.webhook]]
name = "same"
url = "http://127.0.0.1:9/x"
"#,
    );
    assert!(e.contains("two channels are named \"same\""), "{e}");

    let e = invalid("[notify.retry]\njitter_percent = 80\n");
    assert!(e.contains("jitter_percent"), "{e}");
}

#[test]
fn secrets_do_not_show_in_debug_output() {
    let config = parse(
        r#"
[[notify.mail]]
name = "m"
host = "localhost"
user = "u"
password = "pw-do-not-print"
from = "a@example.jp"
to = ["b@example.jp"]

[[notify.webhook]]
name = "w"
url = "https://hooks.example.jp/T0/B0/token-do-not-print"
secret = "secret-do-not-print"
"#,
    )
    .unwrap();
    let text = format!("{config:?}");
    assert!(!text.contains("do-not-print"), "{text}");
    assert!(text.contains("<redacted>"));
}
