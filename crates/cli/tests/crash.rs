//! `kill -9` during a large import, then the same import again: nothing lost,
//! nothing duplicated — the store ends exactly as after one clean import.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn mailtrail(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mailtrail"));
    c.env("MAILTRAIL_TIMEZONE", "Asia/Tokyo")
        .arg("--data-dir")
        .arg(data)
        .args(["--org-domain", "example.co.jp"]);
    c
}

fn stats(data: &Path) -> serde_json::Value {
    let out = mailtrail(data)
        .args(["stats", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Blob files are shared by content: equal content gives equal counts too.
    v.as_object_mut().unwrap().remove("blobs");
    v
}

#[test]
fn killed_imports_resume_without_loss_or_duplicates() {
    let input = tempfile::tempdir().unwrap();
    let status = mailtrail(input.path())
        .args([
            "generate",
            "--postfix-lines",
            "60000",
            "--maildir-messages",
            "1500",
        ])
        .arg(input.path().join("gen"))
        .status()
        .unwrap();
    assert!(status.success());
    let sources = [
        input.path().join("gen/maillog"),
        input.path().join("gen/Maildir"),
    ];

    let reference = tempfile::tempdir().unwrap();
    let ok = mailtrail(reference.path())
        .args(["import", "--quiet"])
        .args(&sources)
        .status()
        .unwrap();
    assert!(ok.success());
    let expected = stats(reference.path());
    assert!(expected["messages"].as_u64().unwrap() > 1000);

    let crashed = tempfile::tempdir().unwrap();
    for delay_ms in [300u64, 900, 1700, 2600] {
        let mut child = mailtrail(crashed.path())
            .args(["import", "--quiet"])
            .args(&sources)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL; it may already have finished
        let _ = child.wait();
    }
    let ok = mailtrail(crashed.path())
        .args(["import", "--quiet"])
        .args(&sources)
        .status()
        .unwrap();
    assert!(ok.success());
    assert_eq!(stats(crashed.path()), expected);
}
