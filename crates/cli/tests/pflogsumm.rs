//! `mailtrail stats` after importing a Postfix log reports the same received,
//! delivered, deferred, bounced and rejected counts as pflogsumm on the same
//! file. The log is a generated one with every kind of flow (deferrals,
//! bounces and their notifications, NOQUEUE rejects, expiries); pflogsumm is
//! installed by `.ci/run` — without it the test says it was skipped.

use std::path::Path;
use std::process::Command;

fn pflogsumm_totals(log: &Path) -> Option<[u64; 5]> {
    let out = Command::new("pflogsumm").arg(log).output().ok()?;
    assert!(out.status.success(), "pflogsumm failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let grand = text.split("Grand Totals").nth(1)?;
    let value = |label: &str| -> u64 {
        grand
            .lines()
            .find_map(|l| {
                let mut words = l.split_whitespace();
                let n = words.next()?.parse::<u64>().ok()?;
                (words.next()? == label).then_some(n)
            })
            .unwrap_or_else(|| panic!("no {label} in pflogsumm's totals"))
    };
    Some([
        value("received"),
        value("delivered"),
        value("deferred"),
        value("bounced"),
        value("rejected"),
    ])
}

#[test]
fn stats_equal_pflogsumm_grand_totals() {
    let work = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_mailtrail");
    let ok = Command::new(bin)
        .args(["--timezone", "Asia/Tokyo", "--org-domain", "example.co.jp"])
        .args([
            "generate",
            "--postfix-lines",
            "80000",
            "--employees",
            "300",
            "--seed",
            "7",
        ])
        .arg(work.path().join("gen"))
        .status()
        .unwrap();
    assert!(ok.success());
    let log = work.path().join("gen/maillog");
    let Some(expected) = pflogsumm_totals(&log) else {
        println!("skipped: pflogsumm is not installed (apt-get install pflogsumm)");
        return;
    };
    let data = work.path().join("data");
    let ok = Command::new(bin)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--timezone",
            "Asia/Tokyo",
            "--org-domain",
            "example.co.jp",
            "import",
            "-q",
        ])
        .arg(&log)
        .status()
        .unwrap();
    assert!(ok.success());
    let out = Command::new(bin)
        .arg("--data-dir")
        .arg(&data)
        .args(["stats", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["deliveries"];
    let ours = [
        d["received"].as_u64().unwrap(),
        d["delivered"].as_u64().unwrap(),
        d["deferred"].as_u64().unwrap(),
        d["bounced"].as_u64().unwrap(),
        d["rejected"].as_u64().unwrap(),
    ];
    assert!(
        expected.iter().all(|&n| n > 0),
        "a count is zero: {expected:?}"
    );
    assert_eq!(
        ours, expected,
        "[received, delivered, deferred, bounced, rejected]"
    );
}
