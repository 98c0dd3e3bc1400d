//! The directory CSV decoder against files as Excel in Japan saves them:
//! the same list saved as "CSV (コンマ区切り)" (CP932), "CSV UTF-8" (BOM) and
//! "Unicode テキスト" (UTF-16LE, tabs) must give one and the same snapshot,
//! which is kept beside the files as JSON (golden).

use std::collections::BTreeMap;
use std::path::PathBuf;

use mailtrail_ingest::directory_csv::{decode, CsvError, CsvOptions, Field, RowError};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/directory")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn golden(name: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

#[test]
fn excel_cp932_utf8_and_utf16_exports_give_the_same_people() {
    let expected = golden("employees.expected.json");
    for (file, encoding) in [
        ("employees-cp932.csv", "Shift_JIS (CP932)"),
        ("employees-utf8-bom.csv", "UTF-8 (BOM)"),
        ("employees-utf16.txt", "UTF-16LE (BOM)"),
    ] {
        let csv = decode(&fixture(file), &CsvOptions::default()).unwrap();
        assert_eq!(csv.encoding, encoding, "{file}");
        assert_eq!(csv.rows, 4, "{file}");
        assert_eq!(csv.ignored, vec!["内線"], "{file}");
        assert_eq!(
            serde_json::to_value(&csv.snapshot).unwrap(),
            expected,
            "{file}"
        );
    }
}

#[test]
fn device_rows_of_one_host_become_its_address_periods() {
    let csv = decode(&fixture("devices-cp932.csv"), &CsvOptions::default()).unwrap();
    assert_eq!(
        serde_json::to_value(&csv.snapshot).unwrap(),
        golden("devices.expected.json")
    );
}

#[test]
fn a_column_can_be_named_for_a_field() {
    let text = "番号,漢字氏名,E-mail\n77,山田 太郎,taro@example.co.jp\n";
    // Without naming it, 番号 is not an id column and 漢字氏名 is ignored.
    let plain = decode(text.as_bytes(), &CsvOptions::default()).unwrap();
    assert_eq!(plain.snapshot.people[0].id, "taro@example.co.jp");
    assert_eq!(plain.snapshot.people[0].name, None);
    assert_eq!(plain.ignored, vec!["番号", "漢字氏名"]);

    let options = CsvOptions {
        columns: BTreeMap::from([
            (Field::Id, "番号".to_string()),
            (Field::Name, "漢字氏名".to_string()),
        ]),
        ..CsvOptions::default()
    };
    let named = decode(text.as_bytes(), &options).unwrap();
    assert_eq!(named.snapshot.people[0].id, "77");
    assert_eq!(named.snapshot.people[0].name.as_deref(), Some("山田 太郎"));
    assert!(named.ignored.is_empty());
}

#[test]
fn every_bad_row_is_reported_with_its_line_and_nothing_is_returned() {
    let text = "社員番号,メールアドレス,在籍区分,退職日\n\
                1,a@example.co.jp,在籍,\n\
                2,not-an-address,在籍,\n\
                3,c@example.co.jp,たぶん,\n\
                \"4\",\"d@example.co.jp\",退職,2026/13/40\n";
    let err = decode(text.as_bytes(), &CsvOptions::default()).unwrap_err();
    let CsvError::Rows(rows) = &err else {
        panic!("{err:?}")
    };
    let lines: Vec<u64> = rows.iter().map(|r: &RowError| r.line).collect();
    assert_eq!(lines, vec![3, 4, 5]);
    assert!(rows[0].reason.contains("not-an-address"), "{rows:?}");
    assert!(rows[1].reason.contains("たぶん"), "{rows:?}");
    assert!(rows[2].reason.contains("2026/13/40"), "{rows:?}");
    assert!(err.to_string().contains("nothing was applied"));
}

#[test]
fn bytes_that_are_no_known_encoding_are_an_error_with_their_line() {
    let mut bytes = "社員番号,メールアドレス\r\n1,a@example.co.jp\r\n"
        .as_bytes()
        .to_vec();
    // A lone Shift_JIS lead byte at the end of line 3: neither UTF-8 nor CP932.
    bytes.extend_from_slice(b"2,b@example.co.jp\x81\r\n");
    assert_eq!(
        decode(&bytes, &CsvOptions::default()),
        Err(CsvError::Encoding { line: 3 })
    );
}

#[test]
fn files_without_an_id_or_address_column_are_refused() {
    let err = decode(
        "氏名,部署\n山田,営業部\n".as_bytes(),
        &CsvOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("--column id=HEADER"), "{err}");
    assert_eq!(decode(b"", &CsvOptions::default()), Err(CsvError::Empty));
}

#[test]
fn arbitrary_bytes_never_panic() {
    use proptest::prelude::*;
    proptest!(|(bytes in proptest::collection::vec(any::<u8>(), 0..400))| {
        let mut input = b"id,mail,status,leave_date,hostname\n".to_vec();
        input.extend(bytes);
        let _ = decode(&input, &CsvOptions::default());
    });
}
