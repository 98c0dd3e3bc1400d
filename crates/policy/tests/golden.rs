//! The shipped example rules against a handful of typical messages: the
//! rendered results must equal `tests/golden/examples.txt`. Run with
//! `UPDATE_GOLDEN=1` to rewrite the file after an intended change, then
//! review the diff.

mod common;

use common::*;
use mailtrail_model::{AuthResults, Recipient, RecipientKind};
use mailtrail_policy::{MessageFacts, Policy, PriorMessage};

fn cases() -> Vec<(&'static str, MessageFacts)> {
    let mut out = Vec::new();

    let mut leak = message(&["taro.y.private@gmail.com", "buyer@partner.co.jp"]);
    leak.subject = Some("【社外秘】顧客リスト送付".into());
    leak.body = Some("マイナンバー 1234-5678-9018 を含みます。".into());
    leak.attachments = vec![attachment("顧客リスト.xlsx", 48_000)];
    out.push(("confidential list to gmail", leak));

    let mut zip = message(&["buyer@partner.co.jp"]);
    zip.subject = Some("資料送付".into());
    let mut z = attachment("資料.zip", 30_000);
    z.content = Some(zip_file(&[("見積書.pdf", b"%PDF-1.7")], true));
    zip.attachments = vec![z];
    out.push(("encrypted zip to a known partner", zip));

    let mut password = message(&["buyer@partner.co.jp"]);
    password.time = jst(2026, 11, 27, 10, 4);
    password.subject = Some("パスワードのお知らせ".into());
    password.body = Some("Password: k8#Qz".into());
    out.push(("password mail four minutes later", password));

    let mut spoof = inbound("ceo@examp1e.co.jp", Some("山田 太郎"));
    spoof.reply_to = Some("ceo.office@gmail.com".into());
    spoof.auth = AuthResults {
        spf: Some("fail".into()),
        dkim: Some("none".into()),
        dmarc: Some("fail".into()),
    };
    spoof.subject = Some("至急：振込先変更のお願い".into());
    out.push(("CEO fraud from a look-alike domain", spoof));

    let mut macro_in = inbound("invoice@vendor.example", None);
    let mut xls = attachment("請求書.xls", 20_000);
    let mut ole = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    ole.extend("_VBA_PROJECT".encode_utf16().flat_map(u16::to_le_bytes));
    xls.content = Some(ole);
    macro_in.attachments = vec![xls];
    out.push(("macro workbook from a vendor", macro_in));

    let mut leaver = message(&["me@newjob.example"]);
    leaver.sender = Some("jiro.sato@example.co.jp".into());
    leaver.attachments = vec![attachment("設計書.pdf", 2_000_000)];
    out.push(("leaver mails a file to a new domain", leaver));

    let mut bcc = message(&["info@example.co.jp"]);
    bcc.time = jst(2026, 11, 28, 22, 15);
    for i in 0..12 {
        bcc.recipients.push(
            Recipient::new(
                &format!("c{i}@customer{i}.example"),
                None,
                RecipientKind::Bcc,
            )
            .unwrap(),
        );
    }
    out.push(("Saturday-night Bcc to twelve customers", bcc));

    let mut plain = message(&["buyer@partner.co.jp"]);
    plain.body = Some("来週の打ち合わせの件、承知しました。".into());
    out.push(("ordinary mail", plain));

    out
}

fn render(policy: &Policy) -> String {
    let history = FakeHistory {
        known_domains: vec!["partner.co.jp".into()],
        messages: vec![(
            "taro.yamada@example.co.jp".into(),
            PriorMessage {
                id: "zip-mail".into(),
                time: jst(2026, 11, 27, 10, 0),
                recipients: vec!["buyer@partner.co.jp".into()],
                encrypted_archive: true,
            },
        )],
    };
    let dir = directory();
    let mut out = String::new();
    for (name, facts) in cases() {
        out.push_str(&format!("## {name}\n"));
        for m in policy.evaluate(&facts, &dir, &history) {
            out.push_str(&format!("{}\n", m.rule_id));
            for h in m.hits {
                let span = h
                    .span
                    .map(|s| format!(" [{}..{}]", s.char_start, s.char_end))
                    .unwrap_or_default();
                let detail = h.detail.map(|d| format!(" — {d}")).unwrap_or_default();
                let related = h
                    .related_message
                    .map(|r| format!(" (after {r})"))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "  {}#{} {:?}: {}{span}{detail}{related}\n",
                    h.condition_type, h.condition, h.location, h.text
                ));
            }
        }
    }
    out
}

#[test]
fn example_rules_against_typical_messages() {
    let policy = Policy::examples().expect("the shipped examples compile");
    let actual = render(&policy);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/examples.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &actual).expect("write golden file");
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(
        actual, expected,
        "run with UPDATE_GOLDEN=1 and review the diff"
    );
}
