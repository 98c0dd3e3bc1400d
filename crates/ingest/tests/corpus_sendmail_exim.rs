//! Conformance over the public samples in `../shared/corpus` (DESIGN.md §7):
//! Exim main logs (the Exim test-suite's, CrowdSec's, fail2ban's), Exim and
//! Sendmail lines via syslog. The expectations come from the samples
//! themselves: CrowdSec `*.parser.assert` values, fail2ban `# failJSON:`
//! lines (where they concern fields we extract: time and client address of
//! rejections), the flag counts of the test-suite logs, and the MSP→MTA flows
//! that must end up as one message each.
//!
//! Skipped (with a printed line) when the corpus folder is absent; point
//! `MAILTRAIL_CORPUS` at it to run elsewhere.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use mailtrail_ingest::exim;
use mailtrail_ingest::sendmail;
use mailtrail_ingest::syslog::{import_syslog, LineRef, SyslogParser};
use mailtrail_ingest::{DecodeOptions, Sink, SinkError};
use mailtrail_model::{Delivery, DeliveryStatus, MessageRecord, Reject};

#[derive(Default)]
struct VecSink {
    records: Vec<MessageRecord>,
    rejects: Vec<Reject>,
}

impl Sink for VecSink {
    fn record(&mut self, record: MessageRecord) -> Result<(), SinkError> {
        self.records.push(record);
        Ok(())
    }
    fn reject(&mut self, reject: Reject) -> Result<(), SinkError> {
        self.rejects.push(reject);
        Ok(())
    }
}

impl VecSink {
    fn deliveries(&self) -> impl Iterator<Item = (&MessageRecord, &Delivery)> {
        self.records
            .iter()
            .flat_map(|r| r.deliveries.iter().map(move |d| (r, d)))
    }
}

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("MAILTRAIL_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"));
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("corpus folder {} absent: skipping", dir.display());
        None
    }
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn utc_opts(year: Option<i32>) -> DecodeOptions {
    DecodeOptions {
        timezone: chrono_tz::UTC,
        year,
        reference_time: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
        ..Default::default()
    }
}

fn naive_utc(s: &str) -> DateTime<Utc> {
    let s = s.replace('T', " ");
    NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .and_utc()
}

fn same_day_and_time(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    a.format("%m-%d %H:%M:%S%.f").to_string() == b.format("%m-%d %H:%M:%S%.f").to_string()
}

fn mainlog(path: &Path, text: &str) -> VecSink {
    let mut sink = VecSink::default();
    let name = path.file_name().unwrap().to_string_lossy();
    let s = exim::import_mainlog(text.as_bytes(), &name, &utc_opts(None), &mut sink).unwrap();
    assert_eq!(s.rejected as usize, sink.rejects.len());
    assert_eq!(s.records as usize, sink.records.len());
    sink
}

fn syslog(path: &Path, text: &str, year: Option<i32>) -> VecSink {
    let mut sink = VecSink::default();
    let name = path.file_name().unwrap().to_string_lossy();
    import_syslog(text.as_bytes(), &name, &utc_opts(year), &mut sink).unwrap();
    sink
}

/// Sendmail lines through the syslog header parser straight into the
/// Sendmail correlator (independent of the dispatcher's routing). Lines whose
/// header does not parse, or whose program is not read as Sendmail's (e.g.
/// `Jun 17 14:37:39 <mail.notice> host sm-mta[1]:`), are returned as rejects
/// so the caller can report them.
fn sendmail_syslog(path: &Path, text: &str, year: Option<i32>) -> VecSink {
    let mut sink = VecSink::default();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let opts = utc_opts(year);
    let mut parser = SyslogParser::new(&opts);
    let mut c = sendmail::Correlator::new(&opts);
    for (i, line) in text.lines().enumerate() {
        match parser.parse(line) {
            Ok(parsed) if sendmail::is_sendmail_program(parsed.program) => {
                let at = LineRef {
                    source: &name,
                    line: i as u64 + 1,
                    raw: line.as_bytes(),
                };
                c.feed(&parsed, at, &mut sink).unwrap();
            }
            Ok(parsed) => sink.rejects.push(Reject {
                source: name.clone(),
                position: mailtrail_model::Position::Line(i as u64 + 1),
                code: "test.not_sendmail".to_string(),
                reason: format!(
                    "header read program `{}` host `{}`",
                    parsed.program, parsed.host
                ),
                input: line.as_bytes().to_vec(),
            }),
            Err(e) => sink.rejects.push(Reject {
                source: name.clone(),
                position: mailtrail_model::Position::Line(i as u64 + 1),
                code: e.code().to_string(),
                reason: e.to_string(),
                input: line.as_bytes().to_vec(),
            }),
        }
    }
    c.finish(&mut sink).unwrap();
    sink
}

/// `# failJSON: {...}` expectations paired with the log line that follows,
/// plus the file's log lines with comments and blank lines removed.
fn fail2ban(text: &str) -> (Vec<(serde_json::Value, String)>, String) {
    let mut pairs = Vec::new();
    let mut pending: Option<serde_json::Value> = None;
    let mut clean = String::new();
    for line in text.lines() {
        if let Some(j) = line.strip_prefix("# failJSON:") {
            pending = serde_json::from_str(j.trim()).ok();
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        clean.push_str(line);
        clean.push('\n');
        if let Some(j) = pending.take() {
            pairs.push((j, line.to_string()));
        }
    }
    (pairs, clean)
}

fn count_flag(text: &str, flag: &str) -> usize {
    text.lines()
        .filter(|l| l.split(' ').nth(2) == Some(flag) || l.split(' ').nth(3) == Some(flag))
        .count()
}

#[test]
fn exim_testsuite_mainlogs_match_their_flag_counts() {
    let Some(dir) = corpus() else { return };
    let paths = files(&dir.join("syslog_exim"), ".mainlog");
    assert!(!paths.is_empty());
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let sink = mainlog(&path, &text);
        let name = path.display();
        // Only the test-suite's banner lines are not main-log lines; munged
        // sizes (S=sss) are accepted with an unknown size.
        for r in &sink.rejects {
            assert_eq!(r.code, "exim.line", "{name}: {r:?}");
            assert!(r.input.starts_with(b"****"), "{name}: {r:?}");
        }
        assert!(sink.records.iter().all(|r| r.size.is_none()), "{name}");
        let status_count =
            |s: DeliveryStatus| sink.deliveries().filter(|(_, d)| d.status == s).count();
        assert_eq!(
            status_count(DeliveryStatus::Received),
            count_flag(&text, "<="),
            "{name}"
        );
        assert_eq!(
            status_count(DeliveryStatus::Delivered),
            count_flag(&text, "=>") + count_flag(&text, "->"),
            "{name}"
        );
        assert_eq!(
            status_count(DeliveryStatus::Bounced),
            count_flag(&text, "**"),
            "{name}"
        );
        assert_eq!(
            status_count(DeliveryStatus::Deferred),
            count_flag(&text, "=="),
            "{name}"
        );
        // Bounces name their parent message.
        for line in text.lines().filter(|l| l.contains(" <= <> R=")) {
            let parent = line.split("R=").nth(1).unwrap().split(' ').next().unwrap();
            assert!(
                sink.deliveries()
                    .any(|(_, d)| d.status == DeliveryStatus::Received
                        && d.detail
                            .as_deref()
                            .is_some_and(|x| x.contains(&format!("R={parent}")))),
                "{name}: bounce of {parent}"
            );
        }
        println!(
            "{name}: {} records, {} rejects",
            sink.records.len(),
            sink.rejects.len()
        );
    }
}

#[test]
fn exim_testsuite_0137_subjects_and_retries() {
    let Some(dir) = corpus() else { return };
    let path = dir.join("syslog_exim/exim-testsuite_0137.mainlog");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let sink = mainlog(&path, &text);
    let subjects: Vec<&str> = sink
        .records
        .iter()
        .filter_map(|r| r.subject.as_deref())
        .collect();
    assert_eq!(subjects, ["First", "Second", "Third", "Fourth"]);
    for r in sink
        .records
        .iter()
        .filter(|r| r.subject.as_deref() != Some("First"))
    {
        let s: Vec<DeliveryStatus> = r
            .deliveries
            .iter()
            .filter(|d| d.recipient == "userx@test.ex")
            .map(|d| d.status)
            .collect();
        assert_eq!(
            s,
            [DeliveryStatus::Deferred, DeliveryStatus::Delivered],
            "{:?}",
            r.keys
        );
    }
}

/// `Evt.Parsed` fields of the s01-parse stage, per event index.
fn crowdsec_parsed(assert_text: &str) -> BTreeMap<usize, HashMap<String, String>> {
    let mut out: BTreeMap<usize, HashMap<String, String>> = BTreeMap::new();
    for line in assert_text.lines() {
        let Some(rest) = line.strip_prefix("results[\"s01-parse\"][\"crowdsecurity/exim-logs\"][")
        else {
            continue;
        };
        let Some((idx, rest)) = rest.split_once("].Evt.Parsed[\"") else {
            continue;
        };
        let Some((key, value)) = rest.split_once("\"] == \"") else {
            continue;
        };
        let Ok(idx) = idx.parse() else { continue };
        let value = value
            .strip_suffix('"')
            .unwrap_or(value)
            .replace("\\\"", "\"");
        out.entry(idx).or_default().insert(key.to_string(), value);
    }
    out
}

fn check_crowdsec_rejects(
    sink: &VecSink,
    parsed: &BTreeMap<usize, HashMap<String, String>>,
    with_date: bool,
) -> usize {
    let mut checked = 0;
    for fields in parsed.values() {
        let (Some(target), Some(source), Some(ip)) = (
            fields.get("target_user"),
            fields.get("source_user"),
            fields.get("source_ip"),
        ) else {
            continue;
        };
        if fields
            .get("message")
            .is_some_and(|m| !m.contains("rejected RCPT"))
        {
            continue;
        }
        let found = sink.deliveries().any(|(r, d)| {
            d.status == DeliveryStatus::Rejected
                && d.recipient == *target
                && r.envelope_from.as_deref() == Some(source.as_str())
                && d.client_ip.as_deref() == Some(ip.as_str())
                && (!with_date || fields.get("date").is_none_or(|t| d.time == naive_utc(t)))
        });
        assert!(found, "no rejected delivery for {fields:?}");
        checked += 1;
    }
    checked
}

#[test]
fn crowdsec_exim_mainlog_matches_parser_assert() {
    let Some(dir) = corpus() else { return };
    let path = dir.join("syslog_exim/crowdsec_exim-mainlog.log");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let sink = mainlog(&path, &text);
    // Every line is a valid main-log line (milliseconds included).
    assert!(sink.rejects.is_empty(), "{:?}", sink.rejects);
    let parsed = crowdsec_parsed(
        &std::fs::read_to_string(dir.join("syslog_exim/crowdsec_exim-mainlog.parser.assert"))
            .unwrap(),
    );
    assert_eq!(check_crowdsec_rejects(&sink, &parsed, true), 4);
    assert_eq!(sink.records.len(), 4);
}

#[test]
fn crowdsec_exim_syslog_matches_parser_assert() {
    let Some(dir) = corpus() else { return };
    let path = dir.join("syslog_exim/crowdsec_exim-syslog.log");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let sink = syslog(&path, &text, Some(2022));
    assert!(sink.rejects.is_empty(), "{:?}", sink.rejects);
    let parsed = crowdsec_parsed(
        &std::fs::read_to_string(dir.join("syslog_exim/crowdsec_exim-syslog.parser.assert"))
            .unwrap(),
    );
    assert_eq!(check_crowdsec_rejects(&sink, &parsed, false), 4);
    assert!(sink.records.iter().all(|r| r.systems == ["exim@server"]));
}

/// failJSON lines about message rejections: a Rejected delivery at that time
/// from that client.
fn check_fail2ban_rejections(
    sink: &VecSink,
    pairs: &[(serde_json::Value, String)],
    is_rejection: impl Fn(&str) -> bool,
) -> usize {
    let mut checked = 0;
    for (j, line) in pairs {
        if j["match"] != serde_json::Value::Bool(true) || !is_rejection(line) {
            continue;
        }
        let (Some(time), Some(host)) = (j["time"].as_str(), j["host"].as_str()) else {
            continue;
        };
        let time = naive_utc(time);
        let found = sink.deliveries().any(|(_, d)| {
            d.status == DeliveryStatus::Rejected
                && d.time == time
                && d.client_ip
                    .as_deref()
                    .is_some_and(|ip| ip.eq_ignore_ascii_case(host))
        });
        assert!(found, "no rejected delivery at {time} from {host}: {line}");
        checked += 1;
    }
    checked
}

#[test]
fn fail2ban_exim_rejections_carry_time_and_client() {
    let Some(dir) = corpus() else { return };
    let mut total = 0;
    for name in ["fail2ban_exim.log", "fail2ban_exim-spam.log"] {
        let path = dir.join("syslog_exim").join(name);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let (pairs, clean) = fail2ban(&text);
        let sink = mainlog(&path, &clean);
        // Only lines without a leading main-log stamp (journal excerpts) are rejected.
        for r in &sink.rejects {
            assert!(
                !r.input.first().is_some_and(u8::is_ascii_digit) || r.input.get(4) != Some(&b'-'),
                "{r:?}"
            );
        }
        total += check_fail2ban_rejections(&sink, &pairs, |l| {
            l.contains("rejected RCPT")
                || l.contains("rejected after DATA")
                || l.contains("rejected by local_scan")
        });
    }
    assert!(total >= 10, "only {total} rejections checked");
}

#[test]
fn fail2ban_sendmail_rejections_carry_time_and_client() {
    let Some(dir) = corpus() else { return };
    let path = dir.join("syslog_sendmail/fail2ban_sendmail-reject.log");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let (pairs, clean) = fail2ban(&text);
    let sink = sendmail_syslog(&path, &clean, Some(2005));
    let rejected_lines: Vec<&str> = sink
        .rejects
        .iter()
        .map(|r| std::str::from_utf8(&r.input).unwrap_or(""))
        .collect();
    for l in &rejected_lines {
        println!("header not read as Sendmail (not checked here): {l}");
    }
    let usable: Vec<(serde_json::Value, String)> = pairs
        .into_iter()
        .filter(|(_, l)| !rejected_lines.contains(&l.as_str()))
        .collect();
    let n = check_fail2ban_rejections(&sink, &usable, |l| {
        l.contains("ruleset=check_") && l.contains("reject=")
    });
    assert!(n >= 19, "only {n} rejections checked");
    // `from=... nrcpts=0` arrivals (everything refused) are complete messages
    // with the client of the failJSON.
    for (j, line) in &usable {
        if j["match"] == serde_json::Value::Bool(true) && line.contains(": from=") {
            let host = j["host"].as_str().unwrap();
            assert!(
                sink.deliveries()
                    .any(|(_, d)| d.status == DeliveryStatus::Received
                        && d.client_ip.as_deref() == Some(host)
                        // fail2ban assumes a year for each sample line; this file
                        // is a collection of unrelated samples (Feb before Nov), so
                        // the year a chronological reading infers may differ.
                        && same_day_and_time(d.time, naive_utc(j["time"].as_str().unwrap()))),
                "{line}"
            );
        }
    }
    // Noise (lost input channel, did not issue MAIL, AUTH failures, attacks)
    // makes no records; the auth file carries no message at all.
    let auth = dir.join("syslog_sendmail/fail2ban_sendmail-auth.log");
    if let Ok(text) = std::fs::read_to_string(&auth) {
        let (_, clean) = fail2ban(&text);
        let sink = sendmail_syslog(&auth, &clean, Some(2005));
        assert!(sink.records.is_empty(), "{:?}", sink.records);
    }
}

#[test]
fn sendmail_msp_to_mta_flows_become_one_message_each() {
    let Some(dir) = corpus() else { return };
    let path = dir.join("syslog_sendmail/searchidx_sendmail_msp-to-mta_flows.log");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let sink = sendmail_syslog(&path, &text, Some(2013));
    assert!(sink.rejects.is_empty(), "{:?}", sink.rejects);
    // Union records the store would merge: shared Message-ID or shared key.
    let n = sink.records.len();
    let mut group: Vec<usize> = (0..n).collect();
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..n {
            for j in 0..n {
                let (a, b) = (&sink.records[i], &sink.records[j]);
                let linked = (a.message_id.is_some() && a.message_id == b.message_id)
                    || a.keys.iter().any(|k| b.keys.contains(k));
                if linked && group[i] != group[j] {
                    let g = group[i].min(group[j]);
                    group[i] = g;
                    group[j] = g;
                    changed = true;
                }
            }
        }
    }
    let group_of = |qid: &str| {
        let i = sink
            .records
            .iter()
            .position(|r| r.keys[0].ends_with(qid))
            .unwrap_or_else(|| panic!("no record for {qid}"));
        group[i]
    };
    assert_eq!(group_of("r9M124QG023796"), group_of("r9M124TR023797"));
    assert_eq!(group_of("r5I9YcUV004201"), group_of("r5I9YcOE004202"));
    assert_ne!(group_of("r9M124QG023796"), group_of("r5I9YcUV004201"));
    // The MSP record of the first flow has no arrival line of its own: it
    // gets the Message-ID from the MTA side.
    let msp = sink
        .records
        .iter()
        .find(|r| r.keys[0].ends_with("r9M124QG023796"))
        .unwrap();
    assert_eq!(
        msp.message_id.as_deref(),
        Some("201310220102.r9M124QG023796@server.home")
    );
    let deferred = sink
        .records
        .iter()
        .find(|r| r.keys[0].ends_with("s1H8ZKsI024804"))
        .unwrap();
    assert_eq!(deferred.deliveries[0].status, DeliveryStatus::Deferred);
    assert_eq!(deferred.deliveries[0].recipient, "bdahiya2007@gmail.com");
    let local = sink
        .records
        .iter()
        .find(|r| r.keys[0].ends_with("f27FYJh17986"))
        .unwrap();
    assert_eq!(
        local.message_id.as_deref(),
        Some("200103071529.f27FTjO26978@aslan.scsiguy.com")
    );
    assert!(
        local
            .deliveries
            .iter()
            .any(|d| d.status == DeliveryStatus::Delivered
                && d.recipient == "root@chaos.analogic.com")
    );
}
