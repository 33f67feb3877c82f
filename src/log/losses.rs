//! Counting lost access-log records, and telling the operator once per episode.
//!
//! An episode starts with the first lost record and ends once writes have worked for
//! [`QUIET`] with no loss, so a disk hovering at full gives two stderr lines, not thousands.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long writes must work, loss-free, before an episode counts as over.
pub const QUIET: Duration = Duration::from_secs(1);

pub struct Losses {
    /// Every record ever lost by this writer; read by whoever exports metrics.
    total: Arc<AtomicU64>,
    episode: Option<Episode>,
}

struct Episode {
    lost: u64,
    last_loss: Instant,
    written_since_last_loss: bool,
}

impl Losses {
    pub fn new(total: Arc<AtomicU64>) -> Losses {
        Losses { total, episode: None }
    }

    /// `count` records lost now (and not yet in the total). True when this starts an episode,
    /// which the caller reports.
    pub fn lost(&mut self, count: u64, now: Instant) -> bool {
        self.total.fetch_add(count, Ordering::Relaxed);
        self.lost_counted(count, now)
    }

    /// Like [`Losses::lost`] for records already added to the total elsewhere.
    pub fn lost_counted(&mut self, count: u64, now: Instant) -> bool {
        if count == 0 {
            return false;
        }
        let starts = self.episode.is_none();
        let episode = self.episode.get_or_insert(Episode {
            lost: 0,
            last_loss: now,
            written_since_last_loss: false,
        });
        episode.lost += count;
        episode.last_loss = now;
        episode.written_since_last_loss = false;
        starts
    }

    /// Records reached the file.
    pub fn written(&mut self) {
        if let Some(episode) = &mut self.episode {
            episode.written_since_last_loss = true;
        }
    }

    pub fn in_episode(&self) -> bool {
        self.episode.is_some()
    }

    /// Ends the episode when writes have worked since the last loss and that loss is at least
    /// [`QUIET`] old; returns how many records it lost, for the caller to report.
    pub fn settle(&mut self, now: Instant) -> Option<u64> {
        let episode = self.episode.as_ref()?;
        if episode.written_since_last_loss && now.duration_since(episode.last_loss) >= QUIET {
            return self.episode.take().map(|e| e.lost);
        }
        None
    }

    /// Ends the episode whatever its state (the writer stops); returns what it lost.
    pub fn close(&mut self) -> Option<u64> {
        self.episode.take().map(|e| e.lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_episode_reports_its_start_once_and_its_count_at_the_end() {
        let total = Arc::new(AtomicU64::new(0));
        let mut losses = Losses::new(Arc::clone(&total));
        let t0 = Instant::now();
        assert!(losses.lost(2, t0));
        assert!(!losses.lost(3, t0 + Duration::from_millis(10)));
        assert_eq!(total.load(Ordering::Relaxed), 5);
        // No write has worked yet: the episode goes on however long it lasts.
        assert_eq!(losses.settle(t0 + QUIET * 5), None);
        losses.written();
        assert_eq!(losses.settle(t0 + Duration::from_millis(20)), None, "too soon");
        assert_eq!(losses.settle(t0 + Duration::from_millis(10) + QUIET), Some(5));
        assert!(!losses.in_episode());
        assert!(losses.lost(1, t0 + QUIET * 3), "a later loss is a new episode");
        assert_eq!(total.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn a_loss_after_a_good_write_keeps_the_episode_open() {
        let mut losses = Losses::new(Arc::new(AtomicU64::new(0)));
        let t0 = Instant::now();
        losses.lost(1, t0);
        losses.written();
        assert!(!losses.lost(1, t0 + QUIET / 2));
        assert_eq!(losses.settle(t0 + QUIET), None);
        losses.written();
        assert_eq!(losses.settle(t0 + QUIET * 2), Some(2));
    }

    #[test]
    fn records_counted_elsewhere_join_the_episode_but_not_the_total_again() {
        let total = Arc::new(AtomicU64::new(4));
        let mut losses = Losses::new(Arc::clone(&total));
        assert!(losses.lost_counted(4, Instant::now()));
        assert_eq!(total.load(Ordering::Relaxed), 4);
        assert_eq!(losses.close(), Some(4));
    }
}
