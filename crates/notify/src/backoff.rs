//! When a failed delivery is tried again, and when it is given up.
//!
//! A table rather than a formula: administrators reason in "10 seconds, then
//! half a minute, then two minutes …", and a table says exactly that. The
//! default grows roughly ×3–×5 per step (10 s, 30 s, 2 min, 10 min, 30 min,
//! 1 h) and then repeats its last step, so a relay that is down for an hour
//! costs a handful of attempts, and a notice is still delivered after a
//! night-long outage up to `max_attempts`. After `max_attempts` failed
//! attempts the notice is a dead letter, shown in the console for an
//! administrator to resend.
//!
//! Each wait is spread by ±`jitter_percent` so that notices queued during
//! one outage do not all hit the recovering peer in the same second. The
//! outbox (in the store) keeps the attempt count; this module only answers
//! "how long until the next try".

use std::time::Duration;

use serde::Deserialize;

/// `[notify.retry]`: the retry schedule of failed deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// Seconds to wait after the 1st, 2nd, … failed attempt; the last entry
    /// repeats. Default `[10, 30, 120, 600, 1800, 3600]`.
    #[serde(default = "default_schedule")]
    pub schedule_secs: Vec<u64>,
    /// Attempts in all, the first included. After this many failures the
    /// notice becomes a dead letter. Default 10 (about 5 hours of retrying).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Each wait is drawn uniformly within ± this percentage of the table's
    /// value (0–50). Default 20.
    #[serde(default = "default_jitter")]
    pub jitter_percent: u8,
}

fn default_schedule() -> Vec<u64> {
    vec![10, 30, 120, 600, 1800, 3600]
}
fn default_max_attempts() -> u32 {
    10
}
fn default_jitter() -> u8 {
    20
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            schedule_secs: default_schedule(),
            max_attempts: default_max_attempts(),
            jitter_percent: default_jitter(),
        }
    }
}

impl Backoff {
    /// The table's wait after `attempts` failed attempts: zero before the
    /// first attempt, `None` once `max_attempts` have failed (dead letter).
    pub fn nominal(&self, attempts: u32) -> Option<Duration> {
        if attempts >= self.max_attempts.max(1) {
            return None;
        }
        if attempts == 0 {
            return Some(Duration::ZERO);
        }
        let i = (attempts as usize - 1).min(self.schedule_secs.len().saturating_sub(1));
        let secs = self.schedule_secs.get(i).copied().unwrap_or(60);
        Some(Duration::from_secs(secs))
    }

    /// The shortest and longest wait the jitter may give after `attempts`
    /// failed attempts; `None` when the notice is to be given up.
    pub fn bounds(&self, attempts: u32) -> Option<(Duration, Duration)> {
        let d = self.nominal(attempts)?;
        let j = f64::from(self.jitter_percent.min(50)) / 100.0;
        Some((d.mul_f64(1.0 - j), d.mul_f64(1.0 + j)))
    }

    /// The wait after `attempts` failed attempts at a given point of the
    /// jitter range: `unit` 0.0 is the shortest, 1.0 the longest.
    pub fn at(&self, attempts: u32, unit: f64) -> Option<Duration> {
        let (lo, hi) = self.bounds(attempts)?;
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        Some(lo + (hi - lo).mul_f64(unit))
    }

    /// The wait after `attempts` failed attempts, jittered; `None` means
    /// give up and keep the notice as a dead letter.
    pub fn next_attempt(&self, attempts: u32) -> Option<Duration> {
        self.at(attempts, random_unit())
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.schedule_secs.is_empty() {
            return Err("retry.schedule_secs needs at least one entry".into());
        }
        if self.max_attempts == 0 {
            return Err("retry.max_attempts must be at least 1".into());
        }
        if self.jitter_percent > 50 {
            return Err("retry.jitter_percent must be between 0 and 50".into());
        }
        Ok(())
    }
}

/// [`Backoff::next_attempt`] with the default schedule.
pub fn next_attempt(attempts: u32) -> Option<Duration> {
    Backoff::default().next_attempt(attempts)
}

/// A number in [0, 1) that differs between calls and processes: the
/// standard library's randomly keyed hasher over the clock. Jitter needs
/// spread, not unpredictability.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}
