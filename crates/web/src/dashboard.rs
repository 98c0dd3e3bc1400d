//! The dashboard (`/dashboard?from=…&to=…`): a period's mail at a glance —
//! messages per day by direction, external and internal totals, the top
//! senders, recipients and external domains, the largest attachments and
//! the delivery failures.
//!
//! Why it is shaped this way:
//! - **Every figure is a search**: each bar, total and row links to the
//!   query (in the ordinary query language) that finds the messages it
//!   counts, so a number on the dashboard is one click from the mail behind
//!   it, and that click is an audited search like any other. The store
//!   counts with the same bounds the language uses
//!   ([`mailtrail_store::Store::dashboard`]): a day is `after:DAY
//!   before:NEXT-DAY` in the console's zone.
//! - **The chart is drawn on the server** as SVG built from plain numbers
//!   here ([`chart`]) and written by the template: no script, no charting
//!   library, nothing inline that the content policy would block (colours
//!   come from classes in the style sheet).
//! - Known approximations: a search for a recipient who failed lists every
//!   failed message that address was on, which is more than the count when
//!   another recipient of the same message failed; `from:@example.com`
//!   also matches subdomains (`mail.example.com`), which the per-domain
//!   counts keep apart.

use chrono::{Days, NaiveDate};
use mailtrail_model::Direction;
use mailtrail_store::FINAL_FAILURES;

use crate::pivots;

/// Rows in each "top" list.
pub const TOP: u32 = 10;
/// Days shown when no period is asked for (today included).
pub const DEFAULT_DAYS: u64 = 30;

/// The period asked for: `from`/`to` as `YYYY-MM-DD` or `YYYY/MM/DD`, each
/// defaulting to the last [`DEFAULT_DAYS`] days up to `today`; `None` when a
/// date cannot be read or the period runs backwards.
pub fn period(
    from: Option<&str>,
    to: Option<&str>,
    today: NaiveDate,
) -> Option<(NaiveDate, NaiveDate)> {
    let parse = |s: &str| {
        ["%Y-%m-%d", "%Y/%m/%d"]
            .iter()
            .find_map(|f| NaiveDate::parse_from_str(s.trim(), f).ok())
    };
    fn given(s: Option<&str>) -> Option<&str> {
        s.map(str::trim).filter(|s| !s.is_empty())
    }
    let to = match given(to) {
        Some(s) => parse(s)?,
        None => today,
    };
    let from = match given(from) {
        Some(s) => parse(s)?,
        None => to.checked_sub_days(Days::new(DEFAULT_DAYS - 1))?,
    };
    (from <= to).then_some((from, to))
}

/// `after:FROM before:TO+1`: the period in the query language.
pub fn period_query(from: NaiveDate, to: NaiveDate) -> String {
    let end = to.succ_opt().unwrap_or(to);
    format!("after:{from} before:{end}")
}

/// One day in the query language.
pub fn day_query(direction: Direction, day: NaiveDate) -> String {
    format!(
        "direction:{} {}",
        direction.as_str(),
        period_query(day, day)
    )
}

pub fn direction_query(direction: Direction, period: &str) -> String {
    format!("direction:{} {period}", direction.as_str())
}

/// Mail exchanged with the outside: inbound or outbound.
pub fn external_query(period: &str) -> String {
    format!("(direction:inbound OR direction:outbound) {period}")
}

pub fn sender_query(address: &str, period: &str) -> String {
    pivots::sent_query(address, period)
}

pub fn recipient_query(address: &str, period: &str) -> String {
    pivots::received_query(address, period)
}

pub fn domain_query(domain: &str, period: &str) -> String {
    format!("{} {period}", pivots::domain_query(domain))
}

pub fn status_query(status: &str, period: &str) -> String {
    format!("status:{status} {period}")
}

/// `status:(bounced OR rejected OR failed OR expired)`.
fn final_failure() -> String {
    let names: Vec<&str> = FINAL_FAILURES.iter().map(|s| s.as_str()).collect();
    format!("status:({})", names.join(" OR "))
}

pub fn failing_recipient_query(address: &str, period: &str) -> String {
    format!(
        "{} {}",
        final_failure(),
        pivots::received_query(address, period)
    )
}

pub fn failing_domain_query(domain: &str, period: &str) -> String {
    format!(
        "{} {}",
        final_failure(),
        pivots::received_query(&format!("@{domain}"), period)
    )
}

/// The order bars are stacked in, bottom up.
pub const STACK: [Direction; 4] = [
    Direction::Inbound,
    Direction::Outbound,
    Direction::Internal,
    Direction::Relayed,
];

/// Width and height of the chart's drawing (SVG user units).
pub const WIDTH: f64 = 760.0;
pub const HEIGHT: f64 = 220.0;
/// Height of the bars' area; the day labels go below it.
const PLOT: f64 = 190.0;
/// At most this many day labels under the bars.
const MAX_LABELS: usize = 12;

/// One stacked segment of one day's bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub day: NaiveDate,
    pub direction: Direction,
    pub count: u64,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

/// A day's label under the bars.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub day: NaiveDate,
    /// Centre of the label.
    pub x: f64,
}

/// The bars of the chart: one column per day, its directions stacked
/// (empty segments left out), scaled so the busiest day fills the height;
/// and which days get a label. Returns the busiest day's count too.
pub fn chart(days: &[(NaiveDate, Vec<(Direction, u64)>)]) -> (Vec<Segment>, Vec<Tick>, u64) {
    let max = days
        .iter()
        .map(|(_, c)| c.iter().map(|(_, n)| n).sum::<u64>())
        .max()
        .unwrap_or(0);
    let mut segments = Vec::new();
    let mut ticks = Vec::new();
    if days.is_empty() {
        return (segments, ticks, max);
    }
    let slot = WIDTH / days.len() as f64;
    let width = (slot * 0.7).max(1.0);
    let every = days.len().div_ceil(MAX_LABELS).max(1);
    for (i, (day, counts)) in days.iter().enumerate() {
        let x = i as f64 * slot + (slot - width) / 2.0;
        if i % every == 0 {
            ticks.push(Tick {
                day: *day,
                x: x + width / 2.0,
            });
        }
        let mut top = PLOT;
        for direction in STACK {
            let count = counts
                .iter()
                .find(|(d, _)| *d == direction)
                .map_or(0, |(_, n)| *n);
            if count == 0 || max == 0 {
                continue;
            }
            let height = (count as f64 / max as f64 * (PLOT - 10.0)).max(1.0);
            top -= height;
            segments.push(Segment {
                day: *day,
                direction,
                count,
                x,
                y: top,
                width,
                height,
            });
        }
    }
    (segments, ticks, max)
}

/// A number for an SVG attribute: one decimal, no exponent.
pub fn coord(v: f64) -> String {
    format!("{v:.1}")
}

/// The y of the day labels.
pub fn label_y() -> f64 {
    PLOT + 18.0
}

/// The baseline of the bars.
pub fn baseline() -> f64 {
    PLOT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn the_period_defaults_to_the_last_thirty_days() {
        assert_eq!(period(None, None, day(30)), Some((day(1), day(30))));
        assert_eq!(
            period(Some("2026-11-20"), Some("2026/11/22"), day(30)),
            Some((day(20), day(22)))
        );
        assert_eq!(
            period(Some(""), Some("2026-11-30"), day(5)),
            Some((day(1), day(30)))
        );
        assert_eq!(
            period(Some("2026-11-22"), Some("2026-11-20"), day(30)),
            None
        );
        assert_eq!(period(Some("yesterday"), None, day(30)), None);
    }

    #[test]
    fn queries_are_the_query_language() {
        assert_eq!(
            day_query(Direction::Outbound, day(20)),
            "direction:outbound after:2026-11-20 before:2026-11-21"
        );
        let p = period_query(day(20), day(22));
        assert_eq!(p, "after:2026-11-20 before:2026-11-23");
        assert_eq!(
            failing_domain_query("partner.example", &p),
            "status:(bounced OR rejected OR failed OR expired) \
             (to:@partner.example OR cc:@partner.example OR bcc:@partner.example) \
             after:2026-11-20 before:2026-11-23"
        );
        let ctx = mailtrail_store::query::QueryContext {
            now: chrono::Utc::now(),
            timezone: chrono_tz::Asia::Tokyo,
        };
        for q in [
            external_query(&p),
            sender_query("a@b.example", &p),
            recipient_query("a@b.example", &p),
            domain_query("b.example", &p),
            status_query("bounced", &p),
            failing_recipient_query("a@b.example", &p),
        ] {
            assert!(mailtrail_store::query::parse(&q, &ctx).is_ok(), "{q}");
        }
    }

    #[test]
    fn bars_stack_and_the_busiest_day_fills_the_height() {
        let days = vec![
            (
                day(20),
                vec![(Direction::Outbound, 2), (Direction::Inbound, 2)],
            ),
            (day(21), vec![]),
            (day(22), vec![(Direction::Internal, 1)]),
        ];
        let (segments, ticks, max) = chart(&days);
        assert_eq!(max, 4);
        assert_eq!(ticks.len(), 3);
        assert_eq!(segments.len(), 3);
        let (inbound, outbound) = (&segments[0], &segments[1]);
        assert_eq!(inbound.direction, Direction::Inbound);
        assert!((inbound.y + inbound.height - baseline()).abs() < 1e-9);
        assert!((outbound.y + outbound.height - inbound.y).abs() < 1e-9);
        assert!((outbound.y - 10.0).abs() < 1e-9, "the busiest day fills it");
        assert!(segments[2].x > WIDTH / 3.0 * 2.0);
        let many: Vec<_> = (0..366).map(|i| (day(1) + Days::new(i), vec![])).collect();
        assert!(chart(&many).1.len() <= MAX_LABELS);
    }
}
