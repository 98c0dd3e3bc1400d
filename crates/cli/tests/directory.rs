//! The directory through the binary: `mailtrail directory import` of
//! Excel-made CSV files (idempotent, with a change report), and mail
//! attributed to people, departments and PCs by `employee:`, `dept:` and
//! `device:` — also when the directory changes after the mail was stored.

use std::path::{Path, PathBuf};
use std::process::Command;

fn directory_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ingest/tests/fixtures/directory")
        .join(name)
}

/// Five messages through a Postfix relay: Yamada (PC-0123's address in
/// May) to a partner, Yamada from his alias t-yamada@, Suzuki (a leaver)
/// to his private address from the address PC-0123 has since October, a
/// partner to Sato, and Yamada from taro@, an alias the first directory
/// does not list.
const LOG: &str = "\
2026-05-10T10:00:00+09:00 relay postfix/smtpd[1]: A0000000A1: client=pc.example.co.jp[192.0.2.10]
2026-05-10T10:00:00+09:00 relay postfix/cleanup[2]: A0000000A1: message-id=<a@example.co.jp>
2026-05-10T10:00:01+09:00 relay postfix/qmgr[3]: A0000000A1: from=<taro.yamada@example.co.jp>, size=900, nrcpt=1 (queue active)
2026-05-10T10:00:02+09:00 relay postfix/smtp[4]: A0000000A1: to=<buyer@partner.example>, relay=mx.partner.example[198.51.100.5]:25, delay=2, delays=0.1/0/1/0.9, dsn=2.0.0, status=sent (250 ok)
2026-05-10T10:00:02+09:00 relay postfix/qmgr[3]: A0000000A1: removed
2026-11-10T10:00:00+09:00 relay postfix/smtpd[1]: B0000000B2: client=pc.example.co.jp[192.0.2.10]
2026-11-10T10:00:00+09:00 relay postfix/cleanup[2]: B0000000B2: message-id=<b@example.co.jp>
2026-11-10T10:00:01+09:00 relay postfix/qmgr[3]: B0000000B2: from=<t-yamada@example.co.jp>, size=900, nrcpt=1 (queue active)
2026-11-10T10:00:02+09:00 relay postfix/local[4]: B0000000B2: to=<hanako.sato@example.co.jp>, relay=local, delay=2, delays=0.1/0/1/0.9, dsn=2.0.0, status=sent (delivered to mailbox)
2026-11-10T10:00:02+09:00 relay postfix/qmgr[3]: B0000000B2: removed
2026-11-11T21:00:00+09:00 relay postfix/smtpd[1]: C0000000C3: client=pc.example.co.jp[192.0.2.23]
2026-11-11T21:00:00+09:00 relay postfix/cleanup[2]: C0000000C3: message-id=<c@example.co.jp>
2026-11-11T21:00:01+09:00 relay postfix/qmgr[3]: C0000000C3: from=<ichiro.suzuki@example.co.jp>, size=900, nrcpt=1 (queue active)
2026-11-11T21:00:02+09:00 relay postfix/smtp[4]: C0000000C3: to=<ichiro.suzuki.1990@gmail.com>, relay=gmail-smtp-in.l.google.com[192.0.2.99]:25, delay=2, delays=0.1/0/1/0.9, dsn=2.0.0, status=sent (250 ok)
2026-11-11T21:00:02+09:00 relay postfix/qmgr[3]: C0000000C3: removed
2026-11-12T09:00:00+09:00 relay postfix/smtpd[1]: D0000000D4: client=mx.partner.example[198.51.100.7]
2026-11-12T09:00:00+09:00 relay postfix/cleanup[2]: D0000000D4: message-id=<d@partner.example>
2026-11-12T09:00:01+09:00 relay postfix/qmgr[3]: D0000000D4: from=<buyer@partner.example>, size=900, nrcpt=1 (queue active)
2026-11-12T09:00:02+09:00 relay postfix/local[4]: D0000000D4: to=<hanako.sato@example.co.jp>, relay=local, delay=2, delays=0.1/0/1/0.9, dsn=2.0.0, status=sent (delivered to mailbox)
2026-11-12T09:00:02+09:00 relay postfix/qmgr[3]: D0000000D4: removed
2026-11-13T09:00:00+09:00 relay postfix/smtpd[1]: E0000000E5: client=pc.example.co.jp[192.0.2.23]
2026-11-13T09:00:00+09:00 relay postfix/cleanup[2]: E0000000E5: message-id=<e@example.co.jp>
2026-11-13T09:00:01+09:00 relay postfix/qmgr[3]: E0000000E5: from=<taro@example.co.jp>, size=900, nrcpt=1 (queue active)
2026-11-13T09:00:02+09:00 relay postfix/smtp[4]: E0000000E5: to=<buyer@partner.example>, relay=mx.partner.example[198.51.100.5]:25, delay=2, delays=0.1/0/1/0.9, dsn=2.0.0, status=sent (250 ok)
2026-11-13T09:00:02+09:00 relay postfix/qmgr[3]: E0000000E5: removed
";

fn mailtrail(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .args(["--org-domain", "example.co.jp", "--timezone", "Asia/Tokyo"])
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

fn ok(data: &Path, args: &[&str]) -> String {
    let out = mailtrail(data, args);
    assert!(
        out.status.success(),
        "mailtrail {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The Message-IDs a search finds, sorted.
fn found(data: &Path, query: &str) -> Vec<String> {
    let out = ok(
        data,
        &["search", "--format", "json", "--limit", "100", query],
    );
    let mut ids: Vec<String> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["message_id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    ids
}

fn import_mail(data: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("maillog");
    std::fs::write(&log, LOG).unwrap();
    ok(data, &["import", "--quiet", log.to_str().unwrap()]);
}

#[test]
fn an_excel_list_is_imported_once_and_a_second_import_changes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let file = directory_fixture("employees-cp932.csv");
    let first = mailtrail(
        data.path(),
        &["directory", "import", file.to_str().unwrap()],
    );
    assert!(first.status.success());
    let stdout = String::from_utf8(first.stdout).unwrap();
    let stderr = String::from_utf8(first.stderr).unwrap();
    assert!(stderr.contains("Shift_JIS (CP932), 4 row(s)"), "{stderr}");
    assert!(stderr.contains("not used: 内線"), "{stderr}");
    assert!(
        stdout.contains("people in \"csv\": 4 added, 0 changed, 0 unchanged, 0 no longer listed"),
        "{stdout}"
    );
    assert!(stdout.contains("added     1001 山田 太郎"), "{stdout}");

    // The same people saved as CSV UTF-8: the same list, nothing changes.
    let again = ok(
        data.path(),
        &[
            "directory",
            "import",
            directory_fixture("employees-utf8-bom.csv")
                .to_str()
                .unwrap(),
        ],
    );
    assert!(
        again.contains("0 added, 0 changed, 4 unchanged, 0 no longer listed"),
        "{again}"
    );
    assert!(again.contains("nothing changed"), "{again}");

    // Next month's list: Yamada has a new alias and moved, Takahashi is gone.
    let next = tempfile::tempdir().unwrap();
    let next_file = next.path().join("employees.csv");
    std::fs::write(
        &next_file,
        "\u{feff}社員番号,氏名,メールアドレス,別名,部署,在籍区分\n\
         1001,山田 太郎,taro.yamada@example.co.jp,t-yamada@example.co.jp;yamada@example.co.jp;taro@example.co.jp,本社/営業部/第二課,在籍\n\
         1000,佐藤 花子,hanako.sato@example.co.jp,,本社/営業部,在籍\n\
         1002,鈴木 一郎,ichiro.suzuki@example.co.jp,,本社/開発部,退職\n",
    )
    .unwrap();
    let dry = ok(
        data.path(),
        &[
            "directory",
            "import",
            "--dry-run",
            next_file.to_str().unwrap(),
        ],
    );
    assert!(dry.contains("(dry run: nothing was written)"), "{dry}");
    let json = ok(
        data.path(),
        &[
            "directory",
            "import",
            "--format",
            "json",
            next_file.to_str().unwrap(),
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    // The dry run wrote nothing: the real import reports the same changes.
    let changed: Vec<(String, Vec<String>)> = report["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_string(),
                serde_json::from_value(c["fields"].clone()).unwrap(),
            )
        })
        .collect();
    // The list has no kana, romaji, manager or dates any more: those changed too.
    assert_eq!(changed[0].0, "1001");
    assert!(
        changed[0].1.contains(&"addresses".to_string()),
        "{changed:?}"
    );
    assert!(
        changed[0].1.contains(&"department".to_string()),
        "{changed:?}"
    );
    assert_eq!(report["removed"][0]["key"], "1003");
    assert_eq!(report["added"].as_array().unwrap().len(), 0);

    let listed = ok(data.path(), &["directory", "list"]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    let all = ok(data.path(), &["directory", "list", "--all"]);
    assert!(all.contains("(no longer listed by csv)"), "{all}");
}

#[test]
fn mail_is_found_by_employee_department_and_pc_and_follows_directory_changes() {
    let data = tempfile::tempdir().unwrap();
    import_mail(data.path());
    // No directory yet: the operators are valid and find nothing.
    assert!(found(data.path(), "employee:山田").is_empty());

    ok(
        data.path(),
        &[
            "directory",
            "import",
            directory_fixture("employees-cp932.csv").to_str().unwrap(),
        ],
    );
    ok(
        data.path(),
        &[
            "directory",
            "import",
            directory_fixture("devices-cp932.csv").to_str().unwrap(),
        ],
    );
    let ab = vec!["a@example.co.jp", "b@example.co.jp"];
    // By name (spaces and widths do not matter), kana, id, address.
    assert_eq!(found(data.path(), "employee:山田太郎"), ab);
    assert_eq!(found(data.path(), "employee:\"山田 太郎\""), ab);
    assert_eq!(found(data.path(), "employee:ﾔﾏﾀﾞ"), ab);
    assert_eq!(found(data.path(), "employee:yamada"), ab);
    assert_eq!(found(data.path(), "employee:1001"), ab);
    assert_eq!(found(data.path(), "employee:Taro.Yamada@example.co.jp"), ab);
    // Received mail counts too: Sato got b and d.
    assert_eq!(
        found(data.path(), "employee:佐藤"),
        vec!["b@example.co.jp", "d@partner.example"]
    );
    // A department includes the ones below it.
    assert_eq!(
        found(data.path(), "dept:営業部"),
        vec!["a@example.co.jp", "b@example.co.jp", "d@partner.example"]
    );
    assert_eq!(found(data.path(), "dept:第一課"), ab);
    assert_eq!(
        found(data.path(), "dept:本社/開発部"),
        vec!["c@example.co.jp"]
    );
    assert!(
        found(data.path(), "dept:業部").is_empty(),
        "a part of a name is not a department"
    );
    // A PC by the address it had at the time: 192.0.2.10 until October,
    // 192.0.2.23 since.
    assert_eq!(
        found(data.path(), "device:PC-0123"),
        vec!["a@example.co.jp", "c@example.co.jp", "e@example.co.jp"]
    );
    assert!(found(data.path(), "device:pc-0456").is_empty());
    // Combined with the rest of the language.
    assert_eq!(
        found(data.path(), "dept:営業部 direction:outbound"),
        vec!["a@example.co.jp"]
    );
    assert_eq!(
        found(data.path(), "-employee:山田 dept:営業部"),
        vec!["d@partner.example"]
    );

    // The directory learns the alias taro@: mail stored before is Yamada's now.
    let next = tempfile::tempdir().unwrap();
    let next_file = next.path().join("employees.csv");
    std::fs::write(
        &next_file,
        "社員番号,氏名,メールアドレス,別名,部署\n\
         1001,山田 太郎,taro.yamada@example.co.jp,t-yamada@example.co.jp taro@example.co.jp,本社/営業部/第一課\n",
    )
    .unwrap();
    ok(
        data.path(),
        &["directory", "import", next_file.to_str().unwrap()],
    );
    assert_eq!(
        found(data.path(), "employee:山田"),
        vec!["a@example.co.jp", "b@example.co.jp", "e@example.co.jp"]
    );
    // People no longer listed keep their mail.
    assert_eq!(found(data.path(), "employee:鈴木"), vec!["c@example.co.jp"]);
}

#[test]
fn a_bad_file_is_refused_whole_with_every_bad_line() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.csv");
    std::fs::write(
        &file,
        "社員番号,メールアドレス,退職日\n1,a@example.co.jp,\n2,b@example.co.jp,2026/02/30\n3,nope,\n",
    )
    .unwrap();
    let out = mailtrail(
        data.path(),
        &["directory", "import", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("line 3: leave_date"), "{err}");
    assert!(err.contains("line 4: address"), "{err}");
    assert!(err.contains("nothing was applied"), "{err}");
    // Nothing was written: the file was refused before the store was opened.
    assert!(!data.path().join("mailtrail.db").exists());
}
