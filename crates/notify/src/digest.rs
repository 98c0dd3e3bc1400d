//! The daily digest: one mail that sums up a day's alerts.
//!
//! Administrators who do not want a mail per alert (or who want a record
//! besides the chat channel) read one mail each morning: how many alerts,
//! of which severities, from which rules, and then each alert on a few
//! lines. It is plain text, like the alert mail, grouped by severity
//! (highest first) and rule, so the worst news is at the top. The caller
//! picks the notices of the day (in the channel's time zone); this module
//! only writes the text, so it is a pure function with golden tests.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use chrono_tz::Tz;

use crate::config::Lang;
use crate::notice::{one_line, shorten, AlertNotice, Severity};
use crate::text::{rule, time, words};

/// Recipients shown per alert in the list.
const LISTED_RECIPIENTS: usize = 5;
/// Alerts listed one by one before "and N more".
pub const MAX_LISTED: usize = 100;

/// The subject and plain-text body of the digest of `day`'s notices, in
/// `lang`, with times shown in `tz`.
pub fn digest(notices: &[AlertNotice], day: NaiveDate, lang: Lang, tz: Tz) -> (String, String) {
    let w = words(lang);
    let n = notices.len();
    let date = match lang {
        Lang::Ja => day.format("%Y/%m/%d").to_string(),
        Lang::En => day.format("%Y-%m-%d").to_string(),
    };
    let subject = match lang {
        Lang::Ja => format!("[mailtrail] 日次ダイジェスト {date}（アラート {n} 件）"),
        Lang::En => format!(
            "[mailtrail] Daily digest {date} ({n} alert{})",
            if n == 1 { "" } else { "s" }
        ),
    };

    let mut body = String::new();
    match lang {
        Lang::Ja => body.push_str(&format!(
            "mailtrail 日次ダイジェスト: {date}（{}）\n\n",
            tz.name()
        )),
        Lang::En => body.push_str(&format!(
            "mailtrail daily digest: {date} ({})\n\n",
            tz.name()
        )),
    }
    if notices.is_empty() {
        body.push_str(match lang {
            Lang::Ja => "この日のアラートはありません。\n",
            Lang::En => "There were no alerts on this day.\n",
        });
        push_footer(&mut body, lang);
        return (subject, body);
    }

    let count = |s: Severity| notices.iter().filter(|x| x.severity == s).count();
    let per_severity = Severity::ALL
        .iter()
        .rev()
        .map(|s| format!("{} {}", s.label(lang), count(*s)))
        .collect::<Vec<_>>()
        .join(" / ");
    match lang {
        Lang::Ja => body.push_str(&format!("{}: {n} 件（{per_severity}）\n\n", w.alert)),
        Lang::En => body.push_str(&format!("Alerts: {n} ({per_severity})\n\n")),
    }

    // (severity, rule) → count; highest severity first, then most frequent.
    let mut groups: BTreeMap<(Severity, String), usize> = BTreeMap::new();
    for x in notices {
        *groups.entry((x.severity, rule(x))).or_default() += 1;
    }
    let mut groups: Vec<((Severity, String), usize)> = groups.into_iter().collect();
    groups.sort_by(|((sa, ra), ca), ((sb, rb), cb)| sb.cmp(sa).then(cb.cmp(ca)).then(ra.cmp(rb)));
    body.push_str(match lang {
        Lang::Ja => "■ 重要度・ルール別\n",
        Lang::En => "■ By severity and rule\n",
    });
    for ((severity, rule), c) in &groups {
        let count = match lang {
            Lang::Ja => format!("{c} 件"),
            Lang::En => c.to_string(),
        };
        body.push_str(&format!("[{}] {rule}: {count}\n", severity.label(lang)));
    }

    let mut listed: Vec<&AlertNotice> = notices.iter().collect();
    listed.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.raised_at.cmp(&b.raised_at))
            .then(a.alert_id.cmp(&b.alert_id))
    });
    body.push_str(match lang {
        Lang::Ja => "\n■ アラート一覧\n",
        Lang::En => "\n■ Alerts\n",
    });
    for x in listed.iter().take(MAX_LISTED) {
        let m = &x.message;
        body.push_str(&format!(
            "[{}] {} {}\n",
            x.severity.label(lang),
            time(x.raised_at, tz),
            rule(x)
        ));
        body.push_str(&format!(
            "    {}: {}\n",
            w.subject,
            crate::text::subject(x, lang, 100)
        ));
        body.push_str(&format!(
            "    {}: {} → {}: {}\n",
            w.from,
            one_line(&m.from),
            w.to,
            crate::text::recipients(x, lang, LISTED_RECIPIENTS)
        ));
        body.push_str(&format!(
            "    {}: {}\n",
            w.matched,
            shorten(&one_line(&x.matched_text), 100)
        ));
        match &x.console_url {
            Some(url) => body.push_str(&format!(
                "    {}: {}  {}\n",
                w.alert_id,
                x.alert_id,
                one_line(url)
            )),
            None => body.push_str(&format!("    {}: {}\n", w.alert_id, x.alert_id)),
        }
    }
    if n > MAX_LISTED {
        let more = n - MAX_LISTED;
        body.push_str(&match lang {
            Lang::Ja => format!("ほか {more} 件はコンソールで確認してください。\n"),
            Lang::En => format!("{more} more: see the console.\n"),
        });
    }
    push_footer(&mut body, lang);
    (subject, body)
}

fn push_footer(body: &mut String, lang: Lang) {
    body.push_str("\n-- \n");
    body.push_str(words(lang).footer);
    body.push('\n');
}
