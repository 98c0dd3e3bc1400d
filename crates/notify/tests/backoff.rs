//! The retry schedule: exact nominal waits, jitter within its bounds,
//! giving up after `max_attempts`, and a schedule configured in TOML.

use std::time::Duration;

use mailtrail_notify::{next_attempt, Backoff};

const S: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn default_schedule() {
    let b = Backoff::default();
    let nominal: Vec<Option<Duration>> = (0..=11).map(|a| b.nominal(a)).collect();
    assert_eq!(
        nominal,
        vec![
            Some(S(0)),
            Some(S(10)),
            Some(S(30)),
            Some(S(120)),
            Some(S(600)),
            Some(S(1800)),
            Some(S(3600)),
            Some(S(3600)),
            Some(S(3600)),
            Some(S(3600)),
            None,
            None,
        ]
    );
    assert_eq!(b.bounds(1), Some((S(8), S(12))));
    assert_eq!(b.bounds(6), Some((S(2880), S(4320))));
    assert_eq!(b.at(1, 0.0), Some(S(8)));
    assert_eq!(b.at(1, 0.5), Some(S(10)));
    assert_eq!(b.at(1, 1.0), Some(S(12)));
    assert_eq!(b.at(1, 7.0), Some(S(12)), "clamped");
    assert_eq!(b.at(10, 0.5), None);
}

#[test]
fn jitter_stays_within_bounds_and_spreads() {
    let b = Backoff::default();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let d = b.next_attempt(3).unwrap();
        assert!(d >= S(96) && d <= S(144), "{d:?}");
        seen.insert(d);
    }
    assert!(seen.len() > 20, "the waits spread: {} distinct", seen.len());
    let d = next_attempt(2).unwrap();
    assert!(d >= S(24) && d <= S(36), "{d:?}");
    assert_eq!(next_attempt(10), None, "dead letter after 10 attempts");
}

#[test]
fn configured_schedule() {
    #[derive(serde::Deserialize)]
    struct Retry {
        retry: Backoff,
    }
    let b = toml::from_str::<Retry>(
        "[retry]\nmax_attempts = 3\nschedule_secs = [5]\njitter_percent = 0\n",
    )
    .unwrap()
    .retry;
    assert_eq!(b.next_attempt(1), Some(S(5)));
    assert_eq!(b.next_attempt(2), Some(S(5)));
    assert_eq!(b.next_attempt(3), None);
    let partial = toml::from_str::<Retry>("[retry]\nmax_attempts = 4\n")
        .unwrap()
        .retry;
    assert_eq!(partial.schedule_secs, Backoff::default().schedule_secs);
    assert!(toml::from_str::<Retry>("[retry]\nmax_attempt = 4\n").is_err());
}
