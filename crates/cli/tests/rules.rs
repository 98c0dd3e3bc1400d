//! `mailtrail rules check` and `mailtrail rules test`: rule files are
//! checked with errors that point at the line, and a dry run over the
//! stored mail finds exactly the messages the same words find in search,
//! saying what matched and where, and writes nothing.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use support::mailtrail_ok;

const RULE: &str = r#"
[[rule]]
id = "confidential"
name = "社外秘を含むメール"
[[rule.condition]]
type = "keywords"
words = ["社外秘"]
[[rule.action]]
type = "alert"
severity = "high"
"#;

#[test]
fn rules_are_checked_and_dry_run_over_stored_mail() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    mailtrail_ok(
        &data,
        &[
            "--org-domain",
            "example.co.jp",
            "import",
            &format!("{fixtures}/search"),
            &format!("{fixtures}/console"),
        ],
    );
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("confidential.toml"), RULE).unwrap();
    let rules_arg = rules.to_str().unwrap();

    // The shipped examples and our folder are valid.
    let shipped = mailtrail_ok(&data, &["rules", "check"]);
    assert!(shipped.contains("confidential-to-freemail"), "{shipped}");
    let ours = mailtrail_ok(&data, &["rules", "check", "--rules", rules_arg]);
    assert!(
        ours.contains("confidential") && ours.contains("1 rule(s), valid"),
        "{ours}"
    );

    // A misspelt key is refused with the file, line and rule.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, RULE.replace("words =", "wrods =")).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .args(["rules", "check", "--rules"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains("broken.toml:") && error.contains("wrods"),
        "{error}"
    );

    // The dry run finds what search finds for the word, and says where.
    let searched: BTreeSet<i64> = mailtrail_ok(
        &data,
        &["search", "--format", "json", "--limit", "1000", "社外秘"],
    )
    .lines()
    .map(|l| {
        serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
            .as_i64()
            .unwrap()
    })
    .collect();
    assert!(!searched.is_empty());
    let lines = mailtrail_ok(
        &data,
        &[
            "rules",
            "test",
            "confidential",
            "--rules",
            rules_arg,
            "--since",
            "36500d",
            "--format",
            "json",
        ],
    );
    let mut matched = BTreeSet::new();
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["match"]["rule_id"], "confidential");
        let hit = &v["match"]["hits"][0];
        assert_eq!(hit["condition_type"], "keywords");
        assert_eq!(hit["text"], "社外秘", "{v}");
        matched.insert(v["message"]["id"].as_i64().unwrap());
    }
    assert_eq!(matched, searched);
    let table = mailtrail_ok(
        &data,
        &[
            "rules",
            "test",
            "confidential",
            "--rules",
            rules_arg,
            "--since",
            "36500d",
        ],
    );
    assert!(
        table.contains(&format!(
            "rule confidential: {} message(s) since 36500d would match",
            matched.len()
        )),
        "{table}"
    );
    // An unknown rule names the ones there are.
    let unknown = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(&data)
        .args(["rules", "test", "nope", "--rules", rules_arg])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("confidential"));
}
