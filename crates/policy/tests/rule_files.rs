//! Rule files: what errors say, the shipped examples, round trips, and
//! arbitrary input never panicking.

mod common;

use mailtrail_policy::{parse_rule_file, Location, Policy, PolicyError, RuleFile, EXAMPLE_RULES};
use proptest::prelude::*;

fn error(text: &str) -> PolicyError {
    match Policy::compile(&[("rules/test.toml", text)]) {
        Ok(_) => panic!("compiled:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn an_unknown_key_in_a_condition_names_file_line_rule_and_key() {
    let text = "[[rule]]\nid = \"first\"\n[[rule.condition]]\ntype = \"bcc\"\n\n[[rule]]\nid = \"second\"\n[[rule.condition]]\ntype = \"keywords\"\nwords = [\"機密\"]\nfeilds = [\"body\"]\n";
    let e = error(text);
    let PolicyError::Syntax {
        line,
        rule,
        message,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(rule.as_deref(), Some("second"));
    assert!(message.contains("feilds"), "{message}");
    // The line of the misspelt key, not of its table.
    assert_eq!(*line, 11);
    let shown = e.to_string();
    assert!(shown.starts_with("rules/test.toml:"), "{shown}");
    assert!(shown.contains("rule `second`"), "{shown}");
}

#[test]
fn an_unknown_key_in_an_action_and_an_unknown_condition_type() {
    let e = error("[[rule]]\nid = \"r\"\n[[rule.condition]]\ntype = \"bcc\"\n[[rule.action]]\ntype = \"alert\"\nseverity = \"high\"\nsevrity = \"low\"\n");
    assert!(e.to_string().contains("sevrity"), "{e}");
    assert!(e.to_string().contains("rule `r`"), "{e}");
    let e = error("[[rule]]\nid = \"r\"\n[[rule.condition]]\ntype = \"keyword\"\n");
    assert!(e.to_string().contains("keyword"), "{e}");
    let e = error("[[rule]]\nid = \"r\"\ncolour = \"red\"\n[[rule.condition]]\ntype = \"bcc\"\n");
    assert!(e.to_string().contains("colour"), "{e}");
    let e = error("[[rule]]\nid = \"r\"\n[[rule.condition]]\ntype = \"bcc\"\n[[rule.action]]\ntype = \"alert\"\nseverity = \"urgent\"\n");
    assert!(e.to_string().contains("urgent"), "{e}");
}

#[test]
fn broken_toml_and_a_rule_without_id_are_located() {
    let e = error("[[rule]]\nname = \"no id\"\n[[rule.condition]]\ntype = \"bcc\"\n");
    assert!(e.to_string().contains("rule `#1`"), "{e}");
    assert!(e.to_string().contains("id"), "{e}");
    let e = error("[[rule]]\nid = \"r\"\nname = \"unterminated\n");
    let PolicyError::Syntax { line, .. } = e else {
        panic!("{e:?}")
    };
    assert_eq!(line, 3);
}

#[test]
fn invalid_values_name_the_rule_and_the_key_path() {
    let e = error("\n\n[[rule]]\nid = \"re\"\n[[rule.condition]]\ntype = \"bcc\"\n[[rule.condition]]\ntype = \"regex\"\npatterns = [\"ok\", \"(unclosed\"]\n");
    let PolicyError::Invalid {
        line, rule, field, ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (*line, rule.as_deref(), field.as_str()),
        (3, Some("re"), "condition[1].patterns[1]")
    );
    assert!(error(
        "[[rule]]\nid = \"re\"\n[[rule.condition]]\ntype = \"regex\"\npatterns = [\"a*\"]\n"
    )
    .to_string()
    .contains("empty text"));
    let e = error("[[rule]]\nid = \"l\"\n[[rule.condition]]\ntype = \"keywords\"\nlists = [\"confidential\", \"nosuch\"]\n");
    assert!(
        e.to_string()
            .contains("condition[0].lists[1]: no list named `nosuch`"),
        "{e}"
    );
    let e = error("[[rule]]\nid = \"w\"\n[rule.scope]\nwatch_lists = [\"vip\"]\n[[rule.condition]]\ntype = \"bcc\"\n");
    assert!(e.to_string().contains("scope.watch_lists[0]"), "{e}");
    let e = error("[[rule]]\nid = \"n\"\n");
    assert!(e.to_string().contains("at least one"), "{e}");
    let e = error("[[rule]]\nid = \"d\"\n[[rule.condition]]\ntype = \"bcc\"\n[[rule]]\nid = \"d\"\n[[rule.condition]]\ntype = \"bcc\"\n");
    assert!(e.to_string().contains("rules/test.toml:1"), "{e}");
    let e = error("[calendar]\nwork_start = \"9時\"\n");
    assert!(e.to_string().contains("calendar.work_start"), "{e}");
    let e = error("[calendar]\ntimezone = \"Mars/Olympus\"\n");
    assert!(e.to_string().contains("Mars/Olympus"), "{e}");
    let e = error("[watch_lists]\nleavers = []\n");
    assert!(e.to_string().contains("within_days"), "{e}");
}

#[test]
fn names_are_shared_across_files_and_clashes_are_reported() {
    let lists =
        "[lists]\nproject = [\"プロジェクトX\"]\n[watch_lists]\nvip = [\"ceo@example.co.jp\"]\n";
    let rule = "[[rule]]\nid = \"p\"\n[rule.scope]\nwatch_lists = [\"vip\"]\n[[rule.condition]]\ntype = \"keywords\"\nlists = [\"project\"]\n";
    let p = Policy::compile(&[("00-lists.toml", lists), ("10-rule.toml", rule)]).unwrap();
    assert_eq!(p.rule("p").unwrap().origin, "10-rule.toml:1");
    let e = Policy::compile(&[("a.toml", lists), ("b.toml", lists)]).unwrap_err();
    assert!(e.to_string().contains("already defined in a.toml"), "{e}");
    let e = Policy::compile(&[("a.toml", "[calendar]\n"), ("b.toml", "[calendar]\n")]).unwrap_err();
    assert!(e.to_string().contains("already set in a.toml"), "{e}");
    // A list named like a shipped one replaces it.
    let p = Policy::compile(&[("a.toml", "[lists]\nfreemail = [\"mail.example\"]\n")]).unwrap();
    assert_eq!(p.list("freemail").unwrap(), ["mail.example"]);
    assert!(Policy::compile(&[])
        .unwrap()
        .list("confidential")
        .unwrap()
        .contains(&"社外秘".to_string()));
}

#[test]
fn rule_files_round_trip_through_the_model() {
    for (name, text) in EXAMPLE_RULES {
        let parsed = parse_rule_file(name, text).unwrap();
        let written = toml::to_string(&parsed).unwrap();
        let again: RuleFile = parse_rule_file(name, &written).unwrap();
        assert_eq!(parsed, again, "{name}:\n{written}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_text_never_panics_the_rule_parser(text in "\\PC{0,300}") {
        let _ = Policy::compile(&[("fuzz.toml", &text)]);
    }

    #[test]
    fn rule_shaped_text_never_panics_the_rule_parser(
        parts in proptest::collection::vec(prop_oneof![
            Just("[[rule]]\n".to_string()),
            Just("id = \"x\"\n".to_string()),
            Just("[[rule.condition]]\n".to_string()),
            Just("type = \"keywords\"\n".to_string()),
            Just("type = \"regex\"\n".to_string()),
            Just("type = \"ppap\"\n".to_string()),
            Just("patterns = [\"(\"]\n".to_string()),
            Just("words = []\n".to_string()),
            Just("[rule.scope]\n".to_string()),
            Just("[calendar]\n".to_string()),
            Just("[lists]\n".to_string()),
            "[a-z_]{1,8} = \"[^\"\\\\]{0,8}\"\n",
            "\\PC{0,12}\n",
        ], 0..20)
    ) {
        let text: String = parts.concat();
        if let Err(e) = Policy::compile(&[("fuzz.toml", &text)]) {
            let _ = e.to_string();
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_sniffer(
        prefix in prop_oneof![
            Just(Vec::new()),
            Just(b"PK\x03\x04".to_vec()),
            Just(b"PK\x05\x06".to_vec()),
            Just(vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]),
            Just(b"MZ".to_vec()),
        ],
        body in proptest::collection::vec(any::<u8>(), 0..600),
        name in proptest::option::of("\\PC{0,20}"),
    ) {
        let mut bytes = prefix;
        bytes.extend(body);
        let _ = mailtrail_policy::sniff::sniff(name.as_deref(), Some(&bytes));
    }

    #[test]
    fn damaged_zips_never_panic_the_sniffer(cut in 0usize..400, flip in 0usize..400, value in any::<u8>()) {
        let mut z = common::zip_file(&[("a/社外秘.xlsx", b"data"), ("xl/vbaProject.bin", b"x")], true);
        if !z.is_empty() {
            let i = flip % z.len();
            z[i] = value;
            z.truncate(cut.min(z.len()).max(1));
        }
        let _ = mailtrail_policy::sniff::sniff(Some("a.zip"), Some(&z));
    }

    #[test]
    fn arbitrary_messages_never_panic_the_shipped_rules(
        subject in "\\PC{0,60}",
        body in "[0-9 \\-０-９社外秘パスワードｶﾞpw\\PC]{0,200}",
        to in proptest::collection::vec("[a-z0-9.]{0,8}@[a-zа-я0-9.\\-]{0,14}", 0..4),
        reply_to in proptest::option::of("[a-z]{0,4}@[a-z1.]{0,14}"),
        display in proptest::option::of("\\PC{0,10}"),
        minutes in 0i64..100_000,
    ) {
        let policy = Policy::examples().unwrap();
        let mut m = common::message(&[]);
        m.recipients = to
            .iter()
            .filter_map(|a| mailtrail_model::Recipient::new(a, None, mailtrail_model::RecipientKind::To))
            .collect();
        m.subject = Some(subject);
        m.body = Some(body);
        m.reply_to = reply_to;
        m.from_display_name = display;
        m.time += chrono::Duration::minutes(minutes);
        let history = common::FakeHistory::default();
        for r in policy.evaluate(&m, &common::directory(), &history) {
            for h in r.hits {
                if let (Some(span), Location::Body) = (h.span, &h.location) {
                    let body = m.body.as_deref().unwrap();
                    prop_assert_eq!(&body[span.byte_start..span.byte_end], h.text.as_str());
                }
            }
        }
    }

    #[test]
    fn spans_always_lie_on_character_boundaries(text in "\\PC{0,80}", kw in "\\PC{1,4}") {
        let t = mailtrail_policy::text::NormText::new(&text);
        if let Some(k) = mailtrail_policy::text::Keyword::new(&kw) {
            for (s, e) in k.find_in(t.normalized()) {
                let span = t.original_span(s, e);
                prop_assert!(text.is_char_boundary(span.byte_start));
                prop_assert!(text.is_char_boundary(span.byte_end));
                prop_assert!(span.byte_start <= span.byte_end);
                prop_assert_eq!(span.char_end - span.char_start, t.original_text(&span).chars().count());
            }
        }
    }
}
