//! The JSON API against a schema-driven test client: schemathesis (from
//! PyPI) reads the OpenAPI document that `mailtrail serve` publishes at
//! `/api/v1/openapi.json` and sends hundreds of generated requests — valid,
//! boundary and malformed — to every operation, with an API token. The run
//! fails on any server error (5xx), any answer that does not match the
//! document (status, content type, schema, headers), a malformed request
//! the server accepts, and an operation that answers without
//! authentication (`--checks all`, less one check explained below).
//!
//! The server is the real binary over imported fixtures (the search
//! corpus and the console's mails with attachments), so that messages,
//! trails and attachments exist for the generated ids to find.
//!
//! schemathesis is found as `$MAILTRAIL_SCHEMATHESIS` or `schemathesis` on
//! the `PATH`; CI installs a pinned version into a virtual environment
//! (`.ci/run`). Without it the test says it was skipped.

mod support;

use std::path::PathBuf;
use std::process::Command;

fn schemathesis() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MAILTRAIL_SCHEMATHESIS") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("schemathesis"))
            .find(|candidate| candidate.is_file())
    })
}

#[test]
fn a_schema_driven_client_finds_no_server_errors_and_no_deviation_from_the_document() {
    let Some(schemathesis) = schemathesis() else {
        eprintln!("skipped: schemathesis is not installed (pip install schemathesis; see .ci/run)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    support::mailtrail_ok(
        &data,
        &[
            "import",
            &format!("{fixtures}/search"),
            &format!("{fixtures}/console"),
        ],
    );
    // Alerts to read and change: a rule over the imported mail (the alert
    // endpoints would otherwise only ever answer 404).
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nid = \"shagaihi\"\n[[rule.condition]]\ntype = \"keywords\"\n\
         words = [\"社外秘\"]\n[[rule.action]]\ntype = \"alert\"\nseverity = \"high\"\n",
    )
    .unwrap();
    let raised =
        support::mailtrail_ok(&data, &["rules", "run", "--rules", rules.to_str().unwrap()]);
    assert!(!raised.contains(" 0 alert(s) raised"), "{raised}");
    let token = support::mailtrail_ok(&data, &["token", "create", "schemathesis"])
        .trim()
        .to_string();
    let seed = std::env::var("MAILTRAIL_SCHEMATHESIS_SEED")
        .unwrap_or_else(|_| "38130647762410380407598667358194354766".to_string());
    let (server, http_addr) = support::serve(&data);
    let run = Command::new(&schemathesis)
        .arg("run")
        .arg(format!("http://{http_addr}/api/v1/openapi.json"))
        .args(["--checks", "all", "--max-examples", "100"])
        // The one check left out: "a request the schema allows is accepted".
        // `q` is a query in the console's language, a grammar a JSON schema
        // cannot express: `after:notadate` or a lone symbol is a string
        // like any other to the schema and a 400 with the parser's reason
        // to the server, as it should be.
        .args(["--exclude-checks", "positive_data_acceptance"])
        // A fixed seed: the same cases on every run, so a failure is
        // reproducible and CI does not pass or fail by chance. Another seed
        // explores further: MAILTRAIL_SCHEMATHESIS_SEED=N.
        .args(["--seed", &seed])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    drop(server);
    let report = String::from_utf8_lossy(&run.stdout);
    println!("{report}");
    assert!(
        run.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // It really tested every operation (nine: search, message, raw,
    // attachment, trail, stats, alerts, alert, alert update).
    assert!(report.contains("Selected: 9/9"), "{report}");
    assert!(report.contains("Tested: 9"), "{report}");
}
