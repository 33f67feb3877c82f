//! One token bucket: fills at `rate` bytes per second up to `size` bytes.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::BucketSpec;

pub(super) struct Bucket {
    spec: BucketSpec,
    level: f64,
    refilled: Instant,
}

impl Bucket {
    /// A bucket `initial_percent` full (`delay_initial_bucket_level`).
    pub(super) fn new(spec: BucketSpec, initial_percent: u8, now: Instant) -> Bucket {
        Bucket {
            spec,
            level: spec.max as f64 * f64::from(initial_percent) / 100.0,
            refilled: now,
        }
    }

    pub(super) fn size(&self) -> u64 {
        self.spec.max
    }

    /// Adds what the time since the last refill earned; the whole bytes now in the bucket,
    /// or `None` for an unlimited (`-1/-1`) bucket.
    pub(super) fn refill(&mut self, now: Instant) -> Option<u64> {
        let rate = self.spec.rate?;
        let earned = now.saturating_duration_since(self.refilled).as_secs_f64() * rate as f64;
        self.level = (self.level + earned).min(self.spec.max as f64);
        self.refilled = now;
        Some(self.level.max(0.0) as u64)
    }

    pub(super) fn spend(&mut self, bytes: u64) {
        if self.spec.rate.is_some() {
            self.level -= bytes as f64;
        }
    }

    /// How long until the bucket holds `bytes`; `None` when it is unlimited or already
    /// does, and a day when it never refills (rate 0).
    pub(super) fn time_to(&self, bytes: u64) -> Option<Duration> {
        let rate = self.spec.rate?;
        let missing = bytes as f64 - self.level;
        if missing <= 0.0 {
            return None;
        }
        if rate == 0 {
            return Some(Duration::from_secs(86_400));
        }
        Some(Duration::from_secs_f64(missing / rate as f64))
    }
}
