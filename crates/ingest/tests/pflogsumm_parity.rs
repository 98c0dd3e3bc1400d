//! `mailtrail stats` counts deliveries by status; it must agree with
//! pflogsumm's "Grand Totals" on the same log. This runs `pflogsumm` (when it
//! is on PATH; otherwise the test says it was skipped and passes) over our
//! Postfix fixture and compares its received / delivered / deferred / bounced
//! / rejected numbers with the deliveries the decoder emits, deduplicated by
//! `Delivery::identity` as the store does.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use mailtrail_ingest::syslog::import_syslog;
use mailtrail_ingest::{DecodeOptions, Sink, SinkError};
use mailtrail_model::{DeliveryStatus, MessageRecord, Reject};

#[derive(Default)]
struct VecSink {
    records: Vec<MessageRecord>,
}

impl Sink for VecSink {
    fn record(&mut self, record: MessageRecord) -> Result<(), SinkError> {
        self.records.push(record);
        Ok(())
    }
    fn reject(&mut self, _reject: Reject) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The "Grand Totals" number in front of `label` (e.g. `received`).
fn grand_total(report: &str, label: &str) -> Option<u64> {
    let section = &report[report.find("Grand Totals")?..];
    section.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        let n = words.next()?;
        (words.next()? == label).then(|| n.parse().ok()).flatten()
    })
}

fn our_counts(path: &Path) -> Vec<(DeliveryStatus, u64)> {
    let bytes = std::fs::read(path).unwrap();
    let opts = DecodeOptions {
        reference_time: "2025-01-05T00:00:00Z".parse().unwrap(),
        ..DecodeOptions::default()
    };
    let mut sink = VecSink::default();
    import_syslog(&bytes[..], "flows.log", &opts, &mut sink).unwrap();
    let mut seen = HashSet::new();
    let mut counts = Vec::new();
    for status in [
        DeliveryStatus::Received,
        DeliveryStatus::Delivered,
        DeliveryStatus::Deferred,
        DeliveryStatus::Bounced,
        DeliveryStatus::Rejected,
    ] {
        let n = sink
            .records
            .iter()
            .flat_map(|r| r.deliveries.iter())
            .filter(|d| d.status == status)
            .filter(|d| {
                let (t, r, s, sys, id) = d.identity();
                seen.insert((t, r.to_string(), s, sys.to_string(), id.map(str::to_string)))
            })
            .count() as u64;
        counts.push((status, n));
    }
    counts
}

#[test]
fn grand_totals_match_pflogsumm() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/postfix/flows.log");
    let output = match Command::new("pflogsumm").arg(&path).output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => panic!("pflogsumm failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(_) => {
            eprintln!("skipped: pflogsumm is not on PATH (apt-get install pflogsumm)");
            return;
        }
    };
    let report = String::from_utf8_lossy(&output.stdout);
    let ours = our_counts(&path);
    for (status, label) in [
        (DeliveryStatus::Received, "received"),
        (DeliveryStatus::Delivered, "delivered"),
        (DeliveryStatus::Deferred, "deferred"),
        (DeliveryStatus::Bounced, "bounced"),
        (DeliveryStatus::Rejected, "rejected"),
    ] {
        let theirs =
            grand_total(&report, label).unwrap_or_else(|| panic!("no `{label}` in:\n{report}"));
        let mine = ours
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, n)| *n)
            .unwrap();
        assert_eq!(
            mine, theirs,
            "{label}: ours {mine}, pflogsumm {theirs}\n{report}"
        );
    }
    // The fixture exercises every counter (a 0 = 0 comparison proves nothing).
    assert!(ours.iter().all(|(_, n)| *n > 0), "{ours:?}");
}

#[test]
fn grand_total_parsing() {
    let report = "Grand Totals\n------------\nmessages\n\n     12   received\n      2   deferred  (4  deferrals)\n      7   rejected (36%)\n";
    assert_eq!(grand_total(report, "received"), Some(12));
    assert_eq!(grand_total(report, "deferred"), Some(2));
    assert_eq!(grand_total(report, "rejected"), Some(7));
    assert_eq!(grand_total(report, "bounced"), None);
}
