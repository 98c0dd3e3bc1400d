//! One test (or a few) per condition: each asserts what its name says.

mod common;

use chrono::{Duration, NaiveDate};
use common::*;
use mailtrail_model::{AuthResults, Recipient, RecipientKind};
use mailtrail_policy::{local_part_matches_name, Calendar, Location, PriorMessage};

fn none() -> FakeHistory {
    FakeHistory::default()
}

#[test]
fn keywords_find_full_width_latin_and_report_the_original_text_and_offsets() {
    let p = policy_with(&["type = \"keywords\"\nlists = [\"confidential\"]"]);
    let mut m = message(&["a@partner.co.jp"]);
    m.subject = Some("【ＣＯＮＦＩＤＥＮＴＩＡＬ】見積書".into());
    let result = p.evaluate(&m, &directory(), &none());
    let hit = &result[0].hits[0];
    assert_eq!(hit.text, "ＣＯＮＦＩＤＥＮＴＩＡＬ");
    assert_eq!(hit.location, Location::Subject);
    assert_eq!(hit.detail.as_deref(), Some("confidential"));
    let span = hit.span.unwrap();
    assert_eq!((span.char_start, span.char_end), (1, 13));
    assert_eq!(
        &m.subject.as_deref().unwrap()[span.byte_start..span.byte_end],
        hit.text
    );
}

#[test]
fn keywords_find_japanese_in_body_attachment_names_and_archive_names() {
    let p = policy_with(&["type = \"keywords\"\nwords = [\"社外秘\", \"顧客リスト\"]"]);
    let mut m = message(&["a@partner.co.jp"]);
    m.body = Some("添付は極秘社外秘資料です".into());
    let mut zip = attachment("資料.zip", 10);
    zip.inner_names = vec!["2026年度顧客リスト.xlsx".into()];
    m.attachments = vec![attachment("【社外秘】見積.pdf", 10), zip];
    let result = p.evaluate(&m, &directory(), &none());
    let locations: Vec<(Location, String)> = result[0]
        .hits
        .iter()
        .map(|h| (h.location.clone(), h.text.clone()))
        .collect();
    assert_eq!(
        locations,
        vec![
            (Location::Body, "社外秘".into()),
            (Location::AttachmentName { attachment: 0 }, "社外秘".into()),
            (
                Location::InnerName {
                    attachment: 1,
                    index: 0
                },
                "顧客リスト".into()
            ),
        ]
    );
}

#[test]
fn keywords_match_half_width_kana_through_nfkc() {
    let p = policy_with(&["type = \"keywords\"\nwords = [\"パスワード\"]"]);
    let mut m = message(&["a@partner.co.jp"]);
    m.body = Some("ﾊﾟｽﾜｰﾄﾞは別送します".into());
    assert_eq!(hits(&p, &m, &none()), vec!["ﾊﾟｽﾜｰﾄﾞ"]);
}

#[test]
fn keywords_respect_whole_latin_words_fields_and_min_count() {
    let p = policy_with(&["type = \"keywords\"\nwords = [\"confidential\"]"]);
    let mut m = message(&["a@partner.co.jp"]);
    m.body = Some("Confidentiality agreement attached".into());
    assert!(hits(&p, &m, &none()).is_empty());

    let subject_only =
        policy_with(&["type = \"keywords\"\nwords = [\"機密\"]\nfields = [\"subject\"]"]);
    m.body = Some("機密".into());
    assert!(hits(&subject_only, &m, &none()).is_empty());
    m.subject = Some("機密".into());
    assert_eq!(hits(&subject_only, &m, &none()), vec!["機密"]);

    let twice = policy_with(&["type = \"keywords\"\nwords = [\"機密\"]\nmin_count = 2"]);
    m.body = None;
    assert!(hits(&twice, &m, &none()).is_empty());
    m.body = Some("機密情報".into());
    assert_eq!(hits(&twice, &m, &none()).len(), 2);
}

#[test]
fn regex_runs_on_normalised_text() {
    let p = policy_with(&["type = \"regex\"\npatterns = ['project\\s*x', '案件[0-9]{3}']"]);
    let mut m = message(&["a@partner.co.jp"]);
    m.subject = Some("Ｐｒｏｊｅｃｔ Ｘ の件（案件１２３）".into());
    assert_eq!(
        hits(&p, &m, &none()),
        vec!["Ｐｒｏｊｅｃｔ Ｘ", "案件１２３"]
    );
}

#[test]
fn credit_card_numbers_need_a_valid_luhn_digit() {
    let p = policy_with(&["type = \"credit_card\""]);
    let mut m = message(&["a@partner.co.jp"]);
    m.body = Some("カード番号：4111-1111-1111-1111、有効期限 12/28".into());
    assert_eq!(hits(&p, &m, &none()), vec!["4111-1111-1111-1111"]);
    m.body = Some("全角：４１１１　１１１１　１１１１　１１１１".into());
    assert_eq!(
        hits(&p, &m, &none()),
        vec!["４１１１　１１１１　１１１１　１１１１"]
    );
    m.body = Some("注文番号 4111-1111-1111-1112".into());
    assert!(hits(&p, &m, &none()).is_empty());
    // Part of a longer identifier is not a card number.
    m.body = Some("ref4111111111111111".into());
    assert!(hits(&p, &m, &none()).is_empty());
    m.body = Some("1 4111 1111 1111 1111 12 28".into());
    assert_eq!(hits(&p, &m, &none()), vec!["4111 1111 1111 1111"]);
}

#[test]
fn my_numbers_need_a_valid_check_digit_and_twelve_digits_exactly() {
    let p = policy_with(&["type = \"my_number\""]);
    let mut m = message(&["a@partner.co.jp"]);
    m.body = Some("マイナンバー：1234 5678 9018 です".into());
    assert_eq!(hits(&p, &m, &none()), vec!["1234 5678 9018"]);
    m.body = Some("個人番号 123456789012".into());
    assert!(hits(&p, &m, &none()).is_empty(), "wrong check digit");
    m.body = Some("口座 0123456789018".into());
    assert!(hits(&p, &m, &none()).is_empty(), "13 digits");
    // A number in a table row next to other numbers.
    m.body = Some("No. 3 1234-5678-9018 2026-11-27".into());
    assert_eq!(hits(&p, &m, &none()), vec!["1234-5678-9018"]);
}

#[test]
fn recipient_domains_from_shipped_lists_subdomains_and_kinds() {
    let p = policy_with(&["type = \"recipient_domain\"\nlists = [\"freemail\", \"carrier\"]"]);
    let m = message(&[
        "friend@gmail.com",
        "x@docomo.ne.jp",
        "a@partner.co.jp",
        "b@notgmail.com",
    ]);
    assert_eq!(
        hits(&p, &m, &none()),
        vec!["friend@gmail.com", "x@docomo.ne.jp"]
    );
    let sub = message(&["me@mail.yahoo.co.jp"]);
    assert_eq!(hits(&p, &sub, &none()), vec!["me@mail.yahoo.co.jp"]);

    let bcc_only = policy_with(&[
        "type = \"recipient_domain\"\ndomains = [\"rival.co.jp\"]\nkinds = [\"bcc\"]",
    ]);
    let mut m = message(&["a@rival.co.jp"]);
    assert!(hits(&bcc_only, &m, &none()).is_empty());
    m.recipients
        .push(Recipient::new("b@rival.co.jp", None, RecipientKind::Bcc).unwrap());
    assert_eq!(hits(&bcc_only, &m, &none()), vec!["b@rival.co.jp"]);
}

#[test]
fn private_addresses_by_name_or_by_the_directory() {
    let p = policy_with(&["type = \"private_address\""]);
    let m = message(&[
        "yamada.taro1985@gmail.com",
        "t.yamada@yahoo.co.jp",
        "hanako.home@icloud.com",
        "suzuki@gmail.com",
    ]);
    assert_eq!(
        hits(&p, &m, &none()),
        vec![
            "yamada.taro1985@gmail.com",
            "t.yamada@yahoo.co.jp",
            "hanako.home@icloud.com"
        ]
    );
    let freemail_only = policy_with(&["type = \"private_address\"\nlists = [\"freemail\"]"]);
    assert!(hits(
        &freemail_only,
        &message(&["taro.yamada@partner.co.jp"]),
        &none()
    )
    .is_empty());
    assert_eq!(
        hits(&p, &message(&["taro.yamada@partner.co.jp"]), &none()).len(),
        1
    );
}

#[test]
fn romaji_names_in_local_parts() {
    for local in [
        "taro.yamada",
        "yamada_taro",
        "tyamada1985",
        "yamadat",
        "t-yamada",
        "yamada.t",
    ] {
        assert!(local_part_matches_name(local, "Taro Yamada"), "{local}");
        assert!(local_part_matches_name(local, "Yamada Taro"), "{local}");
    }
    for local in ["tanaka", "yamamoto.t", "taro", "info", "tyama"] {
        assert!(!local_part_matches_name(local, "Taro Yamada"), "{local}");
    }
    assert!(!local_part_matches_name("anything", "Madonna"));
}

#[test]
fn first_contact_with_an_outside_domain() {
    let p = policy_with(&["type = \"first_contact\""]);
    let history = FakeHistory {
        known_domains: vec!["partner.co.jp".into()],
        ..Default::default()
    };
    let m = message(&[
        "a@partner.co.jp",
        "b@new.co.jp",
        "c@new.co.jp",
        "d@example.co.jp",
    ]);
    assert_eq!(hits(&p, &m, &history), vec!["b@new.co.jp"]);
    assert!(
        hits(&p, &inbound("x@new.co.jp", None), &history).is_empty(),
        "only our senders"
    );
}

#[test]
fn external_recipient_count() {
    let p = policy_with(&["type = \"external_recipients\"\nmin = 3"]);
    assert!(hits(
        &p,
        &message(&["a@x.jp", "b@x.jp", "c@example.co.jp"]),
        &none()
    )
    .is_empty());
    assert_eq!(
        hits(&p, &message(&["a@x.jp", "b@x.jp", "c@y.jp"]), &none()),
        vec!["3"]
    );
}

#[test]
fn bcc_use_counted_and_optionally_only_outside() {
    let any = policy_with(&["type = \"bcc\""]);
    let outside = policy_with(&["type = \"bcc\"\nexternal_only = true"]);
    let mut m = message(&["a@partner.co.jp"]);
    assert!(hits(&any, &m, &none()).is_empty());
    m.recipients
        .push(Recipient::new("boss@example.co.jp", None, RecipientKind::Bcc).unwrap());
    assert_eq!(hits(&any, &m, &none()), vec!["boss@example.co.jp"]);
    assert!(hits(&outside, &m, &none()).is_empty());
}

#[test]
fn named_watch_lists_and_the_automatic_leavers_list() {
    let head = "[watch_lists]\naudit = [\"Taro.Yamada@example.co.jp\"]\n";
    let audit = policy_with_extra(head, &["type = \"watch_list\"\nlists = [\"audit\"]"]);
    assert_eq!(
        hits(&audit, &message(&["a@x.jp"]), &none()),
        vec!["taro.yamada@example.co.jp"]
    );

    let leavers = policy_with(&["type = \"watch_list\"\nlists = [\"leavers\"]"]);
    let mut m = message(&["a@x.jp"]);
    m.sender = Some("jiro.sato@example.co.jp".into()); // leaves 2026-12-15, 18 days after
    assert_eq!(hits(&leavers, &m, &none()), vec!["jiro.sato@example.co.jp"]);
    m.sender = Some("hana.kato@example.co.jp".into()); // leaves in 2027
    assert!(hits(&leavers, &m, &none()).is_empty());
    m.sender = Some("ichiro.suzuki@example.co.jp".into()); // resigned
    assert_eq!(
        hits(&leavers, &m, &none()),
        vec!["ichiro.suzuki@example.co.jp"]
    );

    let ten_days = policy_with_extra(
        "[leavers]\nwithin_days = 10\n",
        &["type = \"watch_list\"\nlists = [\"leavers\"]"],
    );
    m.sender = Some("jiro.sato@example.co.jp".into());
    assert!(hits(&ten_days, &m, &none()).is_empty());
    m.time += Duration::days(8);
    assert_eq!(hits(&ten_days, &m, &none()).len(), 1);

    let recipients = policy_with_extra(
        head,
        &["type = \"watch_list\"\nlists = [\"audit\"]\nparty = \"recipient\""],
    );
    assert!(hits(&recipients, &message(&["a@x.jp"]), &none()).is_empty());
    assert_eq!(
        hits(&recipients, &inbound("a@x.jp", None), &none()),
        vec!["taro.yamada@example.co.jp"]
    );
}

#[test]
fn executable_attachments_by_content_by_name_and_inside_archives() {
    let p = policy_with(&["type = \"executable_attachment\""]);
    let mut m = message(&["a@x.jp"]);
    let mut disguised = attachment("請求書.pdf", 4);
    disguised.content = Some(b"MZ\x90\x00".to_vec());
    let mut zipped = attachment("資料.zip", 10);
    zipped.inner_names = vec!["資料/setup.exe".into()];
    m.attachments = vec![
        attachment("見積.pdf", 10),
        disguised,
        zipped,
        attachment("run.vbs", 3),
    ];
    let result = p.evaluate(&m, &directory(), &none());
    let found: Vec<(String, String)> = result[0]
        .hits
        .iter()
        .map(|h| (h.text.clone(), h.detail.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        found,
        vec![
            ("請求書.pdf".into(), "Windows executable (MZ)".into()),
            ("資料.zip".into(), "archive contains 資料/setup.exe".into()),
            ("run.vbs".into(), "file name run.vbs".into()),
        ]
    );
}

#[test]
fn macro_enabled_office_files() {
    let p = policy_with(&["type = \"macro_attachment\""]);
    let mut m = message(&["a@x.jp"]);
    let mut renamed = attachment("集計.xlsx", 10);
    renamed.content = Some(zip_file(
        &[("xl/workbook.xml", b"<w/>"), ("xl/vbaProject.bin", b"x")],
        false,
    ));
    let mut clean = attachment("報告.docx", 10);
    clean.content = Some(zip_file(&[("word/document.xml", b"<d/>")], false));
    m.attachments = vec![clean, renamed, attachment("売上.xlsm", 1)];
    assert_eq!(hits(&p, &m, &none()), vec!["集計.xlsx", "売上.xlsm"]);
}

#[test]
fn encrypted_archives_by_ingest_flag_or_by_content() {
    let p = policy_with(&["type = \"encrypted_archive\""]);
    let mut m = message(&["a@x.jp"]);
    let mut flagged = attachment("見積.zip", 10);
    flagged.encrypted = true;
    let mut sniffed = attachment("図面.zip", 10);
    sniffed.content = Some(zip_file(&[("図面.dwg", b"data")], true));
    let mut plain = attachment("写真.zip", 10);
    plain.content = Some(zip_file(&[("a.jpg", b"data")], false));
    m.attachments = vec![flagged, plain, sniffed];
    assert_eq!(hits(&p, &m, &none()), vec!["見積.zip", "図面.zip"]);
}

fn ppap_history(zip_time: chrono::DateTime<chrono::Utc>) -> FakeHistory {
    FakeHistory {
        messages: vec![(
            "taro.yamada@example.co.jp".into(),
            PriorMessage {
                id: "zip-1".into(),
                time: zip_time,
                recipients: vec!["a@partner.co.jp".into(), "b@partner.co.jp".into()],
                encrypted_archive: true,
            },
        )],
        ..Default::default()
    }
}

#[test]
fn ppap_sequence_of_archive_then_password_mail() {
    let p = policy_with(&["type = \"ppap\"\nwithin_minutes = 10"]);
    let history = ppap_history(jst(2026, 11, 27, 9, 55));
    let mut password = message(&["a@partner.co.jp", "b@partner.co.jp"]);
    password.subject = Some("Re: 資料送付（パスワードのお知らせ）".into());
    password.body = Some("先ほどのファイルのPWは abc123 です。".into());
    let result = p.evaluate(&password, &directory(), &history);
    assert_eq!(result.len(), 1);
    let hits: Vec<(&Location, &str, Option<&str>)> = result[0]
        .hits
        .iter()
        .map(|h| (&h.location, h.text.as_str(), h.related_message.as_deref()))
        .collect();
    assert_eq!(
        hits,
        vec![
            (&Location::Subject, "パスワード", Some("zip-1")),
            (&Location::Body, "PW", Some("zip-1")),
        ]
    );

    // One of the archive's recipients only: still the same conversation.
    let mut subset = password.clone();
    subset.recipients.truncate(1);
    assert_eq!(p.evaluate(&subset, &directory(), &history).len(), 1);
    // Too late.
    let mut late = password.clone();
    late.time = jst(2026, 11, 27, 10, 6);
    assert!(p.evaluate(&late, &directory(), &history).is_empty());
    // Someone who did not get the archive.
    let other = message(&["c@partner.co.jp"]);
    let mut other = MessageFactsExt::with_text(other, "パスワード: x");
    other.time = password.time;
    assert!(p.evaluate(&other, &directory(), &history).is_empty());
    // A mail with an attachment is not the password mail.
    let mut with_file = password.clone();
    with_file.attachments = vec![attachment("a.pdf", 1)];
    assert!(p.evaluate(&with_file, &directory(), &history).is_empty());
    // Without a password word only when the rule says so.
    let mut plain = password.clone();
    plain.subject = Some("Re: 資料送付".into());
    plain.body = Some("よろしくお願いします".into());
    assert!(p.evaluate(&plain, &directory(), &history).is_empty());
    let lenient = policy_with(&["type = \"ppap\"\nrequire_password_word = false"]);
    let r = lenient.evaluate(&plain, &directory(), &history);
    assert_eq!(r[0].hits[0].related_message.as_deref(), Some("zip-1"));
    assert_eq!(r[0].hits[0].location, Location::Message);
}

trait MessageFactsExt {
    fn with_text(self, body: &str) -> Self;
}

impl MessageFactsExt for mailtrail_policy::MessageFacts {
    fn with_text(mut self, body: &str) -> Self {
        self.body = Some(body.into());
        self
    }
}

#[test]
fn attachment_size_single_or_total() {
    let single = policy_with(&["type = \"attachment_size\"\nmin_bytes = 1000"]);
    let total = policy_with(&["type = \"attachment_size\"\nmin_bytes = 1000\ntotal = true"]);
    let mut m = message(&["a@x.jp"]);
    m.attachments = vec![attachment("a.pdf", 600), attachment("b.pdf", 600)];
    assert!(hits(&single, &m, &none()).is_empty());
    assert_eq!(hits(&total, &m, &none()), vec!["1200"]);
    m.attachments.push(attachment("c.pdf", 5000));
    assert_eq!(hits(&single, &m, &none()), vec!["c.pdf"]);
}

#[test]
fn off_hours_weekends_and_japanese_holidays() {
    let p = policy_with(&["type = \"off_hours\""]);
    let at = |t| {
        let mut m = message(&["a@x.jp"]);
        m.time = t;
        p.evaluate(&m, &directory(), &none())
            .into_iter()
            .flat_map(|r| r.hits)
            .map(|h| h.detail.unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert!(at(jst(2026, 11, 27, 10, 0)).is_empty(), "Friday morning");
    assert!(at(jst(2026, 11, 27, 9, 0)).is_empty(), "start is inclusive");
    assert_eq!(
        at(jst(2026, 11, 27, 18, 0)),
        vec!["outside working hours 09:00–18:00"]
    );
    assert_eq!(
        at(jst(2026, 11, 27, 7, 59)),
        vec!["outside working hours 09:00–18:00"]
    );
    assert_eq!(at(jst(2026, 11, 28, 10, 0)), vec!["not a working day"]);
    assert_eq!(at(jst(2026, 1, 1, 10, 0)), vec!["holiday: 元日"]);
    assert_eq!(at(jst(2026, 9, 22, 10, 0)), vec!["holiday: 国民の休日"]);
    assert_eq!(at(jst(2027, 3, 22, 10, 0)), vec!["holiday: 振替休日"]);
    // 2026-11-23 00:30 JST is still 2026-11-22 in UTC: the calendar's zone decides.
    assert_eq!(at(jst(2026, 11, 23, 0, 30)), vec!["holiday: 勤労感謝の日"]);

    let custom = policy_with_extra(
        "[calendar]\ntimezone = \"UTC\"\nwork_start = \"08:00\"\nwork_end = \"20:00\"\nworkdays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\"]\njapanese_holidays = false\nextra_holidays = [2026-12-29, \"2026-12-30\"]\n",
        &["type = \"off_hours\"\noutside_hours = false"],
    );
    let at = |t| {
        let mut m = message(&["a@x.jp"]);
        m.time = t;
        !custom.evaluate(&m, &directory(), &none()).is_empty()
    };
    assert!(!at(jst(2026, 11, 28, 20, 0)), "Saturday is a working day");
    assert!(at(jst(2026, 11, 29, 20, 0)), "Sunday");
    assert!(!at(jst(2026, 1, 1, 20, 0)), "no Japanese holidays");
    assert!(at(jst(2026, 12, 29, 12, 0)) && at(jst(2026, 12, 30, 12, 0)));
    assert!(!at(jst(2026, 11, 27, 23, 0)), "hours not asked for");
}

#[test]
fn shipped_holidays_cover_2025_to_2027() {
    let h = Calendar::japanese_holidays();
    for year in 2025..=2027 {
        let n = h
            .keys()
            .filter(|d| d.format("%Y").to_string() == year.to_string())
            .count();
        assert!((16..=19).contains(&n), "{year}: {n}");
    }
    let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    assert_eq!(h.get(&d(2025, 2, 24)).map(String::as_str), Some("振替休日"));
    assert_eq!(h.get(&d(2026, 5, 6)).map(String::as_str), Some("振替休日"));
    assert_eq!(
        h.get(&d(2027, 10, 11)).map(String::as_str),
        Some("スポーツの日")
    );
    assert!(!h.contains_key(&d(2026, 11, 27)));
    // Every substitute holiday follows a holiday that fell on a Sunday.
    use chrono::Datelike;
    for (date, name) in &h {
        if name == "振替休日" {
            let mut prev = *date - Duration::days(1);
            while h.contains_key(&prev) && prev.weekday() != chrono::Weekday::Sun {
                prev -= Duration::days(1);
            }
            assert_eq!(prev.weekday(), chrono::Weekday::Sun, "{date}");
        }
    }
}

#[test]
fn authentication_failures() {
    let p = policy_with(&["type = \"auth_failure\""]);
    let dmarc_only = policy_with(&["type = \"auth_failure\"\nchecks = [\"dmarc\"]"]);
    let mut m = inbound("billing@vendor.example", None);
    m.auth = AuthResults {
        spf: Some("SoftFail".into()),
        dkim: Some("pass".into()),
        dmarc: Some("none".into()),
    };
    assert_eq!(hits(&p, &m, &none()), vec!["spf=softfail"]);
    assert!(hits(&dmarc_only, &m, &none()).is_empty());
    m.auth.dmarc = Some("fail".into());
    assert_eq!(hits(&dmarc_only, &m, &none()), vec!["dmarc=fail"]);
}

#[test]
fn display_name_of_an_employee_from_outside() {
    let p = policy_with(&["type = \"display_name_impersonation\""]);
    let spoof = inbound("yamada.taro@gmail.com", Some("山田　太郎"));
    let result = p.evaluate(&spoof, &directory(), &none());
    assert_eq!(result[0].hits[0].location, Location::FromDisplayName);
    assert_eq!(result[0].hits[0].text, "山田　太郎");
    assert!(hits(&p, &inbound("x@gmail.com", Some("田中 一")), &none()).is_empty());
    assert!(
        hits(&p, &message(&["a@x.jp"]), &none()).is_empty(),
        "the real one"
    );
}

#[test]
fn look_alike_domains_digit_and_cyrillic() {
    let p = policy_with(&["type = \"lookalike_domain\""]);
    let digit = inbound("ceo@examp1e.co.jp", None);
    assert_eq!(hits(&p, &digit, &none()), vec!["ceo@examp1e.co.jp"]);
    let cyrillic = inbound("ceo@exаmple.co.jp", None); // U+0430
    let r = p.evaluate(&cyrillic, &directory(), &none());
    assert!(r[0].hits[0]
        .detail
        .as_deref()
        .unwrap()
        .contains("confusable"));
    // A reply-to look-alike on an otherwise plain message.
    let mut reply = inbound("news@vendor.example", None);
    reply.reply_to = Some("support@exmaple.co.jp".into());
    assert!(hits(&p, &reply, &none()).is_empty(), "a swap is 2 edits");
    reply.reply_to = Some("support@example-co.jp".into());
    assert_eq!(hits(&p, &reply, &none()), vec!["support@example-co.jp"]);
    // Our own mail and unrelated domains are fine.
    assert!(hits(&p, &message(&["a@partner.co.jp"]), &none()).is_empty());
}

#[test]
fn reply_to_at_another_domain() {
    let p = policy_with(&["type = \"reply_to_differs\""]);
    let mut m = inbound("info@bank.example", None);
    assert!(hits(&p, &m, &none()).is_empty());
    m.reply_to = Some("support@bank.example".into());
    assert!(hits(&p, &m, &none()).is_empty());
    m.reply_to = Some("bank-support@gmail.com".into());
    assert_eq!(hits(&p, &m, &none()), vec!["bank-support@gmail.com"]);
}

#[test]
fn scope_by_direction_department_people_and_exclusions() {
    let cond = "[[rule.condition]]\ntype = \"external_recipients\"\nmin = 1\n";
    let rule = |scope: &str| {
        let text = format!("[[rule]]\nid = \"t\"\n[rule.scope]\n{scope}\n{cond}");
        mailtrail_policy::Policy::compile(&[("s.toml", &text)]).unwrap()
    };
    let m = message(&["a@partner.co.jp"]); // Taro, 本社/営業部/第一課, outbound
    let fires = |p: &mailtrail_policy::Policy, m| !p.evaluate(m, &directory(), &none()).is_empty();
    assert!(fires(&rule("directions = [\"outbound\"]"), &m));
    assert!(!fires(&rule("directions = [\"inbound\"]"), &m));
    assert!(fires(&rule("departments = [\"営業部\"]"), &m));
    assert!(fires(&rule("departments = [\"本社/営業部\"]"), &m));
    assert!(!fires(&rule("departments = [\"本社/営\"]"), &m));
    assert!(!fires(&rule("departments = [\"開発部\"]"), &m));
    assert!(fires(&rule("people = [\"taro.yamada@example.co.jp\"]"), &m));
    assert!(!fires(
        &rule("exclude_people = [\"taro.yamada@example.co.jp\"]"),
        &m
    ));
    assert!(!fires(&rule("watch_lists = [\"leavers\"]"), &m));
    // Inbound mail is about our recipients.
    let mut i = inbound("x@partner.co.jp", None);
    i.recipients
        .push(Recipient::new("b@partner.co.jp", None, RecipientKind::Cc).unwrap());
    assert!(fires(&rule("departments = [\"営業部\"]"), &i));
}

#[test]
fn any_needs_one_condition_all_needs_every_one() {
    let conds = "[[rule.condition]]\ntype = \"bcc\"\n[[rule.condition]]\ntype = \"external_recipients\"\nmin = 1\n";
    let all =
        mailtrail_policy::Policy::compile(&[("a.toml", &format!("[[rule]]\nid = \"t\"\n{conds}"))])
            .unwrap();
    let any = mailtrail_policy::Policy::compile(&[(
        "a.toml",
        &format!("[[rule]]\nid = \"t\"\nmatch = \"any\"\n{conds}"),
    )])
    .unwrap();
    let m = message(&["a@partner.co.jp"]);
    assert!(all.evaluate(&m, &directory(), &none()).is_empty());
    let r = any.evaluate(&m, &directory(), &none());
    assert_eq!(r[0].hits.len(), 1);
    assert_eq!(r[0].hits[0].condition, 1);
    assert_eq!(r[0].hits[0].condition_type, "external_recipients");
}

#[test]
fn disabled_rules_only_run_when_asked_by_id() {
    let p = mailtrail_policy::Policy::compile(&[(
        "d.toml",
        "[[rule]]\nid = \"off\"\nenabled = false\n[[rule.condition]]\ntype = \"external_recipients\"\nmin = 1\n",
    )])
    .unwrap();
    let m = message(&["a@partner.co.jp"]);
    assert!(p.evaluate(&m, &directory(), &none()).is_empty());
    assert!(p.evaluate_rule("off", &m, &directory(), &none()).is_some());
    assert!(p.evaluate_rule("nope", &m, &directory(), &none()).is_none());
}

#[test]
fn facts_from_a_model_record() {
    use mailtrail_model::{Attachment, Mailbox, MessageRecord, OrgDomains};
    let record = MessageRecord {
        message_id: Some("m1@example.co.jp".into()),
        first_seen: Some(jst(2026, 11, 27, 10, 0)),
        envelope_from: Some("bounce@example.co.jp".into()),
        from: Mailbox::new("Taro.Yamada@example.co.jp", Some("山田 太郎")),
        reply_to: Mailbox::new("other@example.co.jp", None),
        recipients: vec![
            Recipient::new("a@gmail.com", None, RecipientKind::To).unwrap(),
            Recipient::new("b@example.co.jp", None, RecipientKind::Bcc).unwrap(),
        ],
        subject: Some("件名".into()),
        body_text: Some("本文".into()),
        attachments: vec![Attachment {
            filename: Some("a.zip".into()),
            content_type: "application/zip".into(),
            size: 3,
            blake3: "ab".into(),
            encrypted: true,
            inner_names: vec!["x.pdf".into()],
            raw_range: None,
        }],
        ..Default::default()
    };
    let facts =
        mailtrail_policy::MessageFacts::from_record(&record, &OrgDomains::new(["example.co.jp"]));
    assert_eq!(facts.sender.as_deref(), Some("taro.yamada@example.co.jp"));
    assert_eq!(facts.from_display_name.as_deref(), Some("山田 太郎"));
    assert_eq!(facts.reply_to.as_deref(), Some("other@example.co.jp"));
    assert_eq!(facts.direction, mailtrail_model::Direction::Outbound);
    assert_eq!(facts.time, jst(2026, 11, 27, 10, 0));
    assert_eq!(facts.bcc().count(), 1);
    assert_eq!(facts.external_recipients(&directory()), vec!["a@gmail.com"]);
    assert!(facts.attachments[0].encrypted);
    assert_eq!(facts.attachments[0].inner_names, vec!["x.pdf".to_string()]);
    assert_eq!(facts.body.as_deref(), Some("本文"));
}

#[test]
fn a_match_serialises_for_the_console() {
    let p = policy_with(&["type = \"keywords\"\nwords = [\"機密\"]"]);
    let mut m = message(&["a@x.jp"]);
    m.subject = Some("機密".into());
    let r = p.evaluate(&m, &directory(), &none());
    let json = serde_json::to_value(&r[0]).unwrap();
    assert_eq!(json["hits"][0]["location"]["at"], "subject");
    assert_eq!(json["hits"][0]["span"]["char_end"], 2);
    assert_eq!(json["rule_id"], "t");
}
