//! One access-log file as the writer thread keeps it: whole records only, losses counted and
//! reported once per episode, and reopened (after SIGUSR1, or when the file was removed)
//! with retries, so logging comes back by itself once the disk or the directory is usable.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use super::append::{Outcome, RecordFile};
use super::losses::Losses;

/// How often a failed reopen is retried and the file checked for removal.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

pub struct Output {
    path: PathBuf,
    file: RecordFile<File>,
    losses: Losses,
    reopen: Option<Reopen>,
    /// The open file has no name any more and no new one could be made: records written to
    /// it would be unreadable and hold disk space until exit, so they are dropped and counted.
    orphaned: bool,
    next_removal_check: Instant,
}

struct Reopen {
    next_try: Instant,
    failures: u32,
}

pub fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open access log {}: {e}", path.display())))
}

impl Output {
    pub fn open(path: PathBuf, dropped: Arc<AtomicU64>) -> io::Result<Output> {
        let file = open(&path)?;
        Ok(Output {
            path,
            file: RecordFile::new(file),
            losses: Losses::new(dropped),
            reopen: None,
            orphaned: false,
            next_removal_check: Instant::now() + RETRY_EVERY,
        })
    }

    /// Opens the path again at the next chance (logrotate moved the file).
    pub fn request_reopen(&mut self) {
        self.reopen = Some(Reopen {
            next_try: Instant::now(),
            failures: 0,
        });
    }

    /// True while something must be retried or settled even if no record arrives.
    pub fn needs_timer(&self) -> bool {
        self.losses.in_episode() || self.reopen.is_some() || self.file.owes()
    }

    /// Appends `batch` (whole lines). `overflowed` records never reached this thread (the
    /// queue was full); they are already in the total and join the episode here.
    pub fn write(&mut self, batch: &[u8], overflowed: u64, now: Instant) {
        if self.losses.lost_counted(overflowed, now) {
            self.report_start(&format!(
                "the writer fell behind and its queue was full ({overflowed} records)"
            ));
        }
        self.check_removed(now);
        self.retry_reopen(now);
        if batch.is_empty() {
            return;
        }
        if self.orphaned {
            let lost = super::append::count_records(batch);
            if self.losses.lost(lost, now) {
                self.report_start("the file was removed and cannot be created again");
            }
            return;
        }
        let outcome = self.file.append(batch);
        self.account(outcome, now);
    }

    /// Retries what is due and ends a loss episode once writing works again.
    pub fn tick(&mut self, now: Instant) {
        self.retry_reopen(now);
        if self.file.owes() {
            // Complete a cut record as soon as the disk has room, even if no record comes.
            let outcome = self.file.append(b"");
            self.account(outcome, now);
        }
        if let Some(lost) = self.losses.settle(now) {
            tracing::warn!(
                "access log {}: writing again after losing {lost} records",
                self.path.display()
            );
        }
    }

    /// The writer stops: a last try to complete a cut record, and the final count.
    pub fn close(self) {
        let Output {
            path, file, mut losses, ..
        } = self;
        let outcome = file.close();
        losses.lost(outcome.lost, Instant::now());
        if let Some(lost) = losses.close() {
            tracing::error!("access log {}: stopping; {lost} records were lost", path.display());
        }
    }

    fn account(&mut self, outcome: Outcome, now: Instant) {
        if outcome.written > 0 {
            self.losses.written();
        }
        let started = self.losses.lost(outcome.lost, now);
        if started {
            let cause = outcome.error.map_or_else(|| "unknown error".into(), |e| e.to_string());
            self.report_start(&cause);
        }
    }

    fn report_start(&self, cause: &str) {
        tracing::error!(
            "access log {}: cannot write ({cause}); losing records until it works again \
             (each one counted)",
            self.path.display()
        );
    }

    /// A removed file keeps taking writes that nobody can read; notice it and make a new one.
    fn check_removed(&mut self, now: Instant) {
        if now < self.next_removal_check || self.reopen.is_some() {
            return;
        }
        self.next_removal_check = now + RETRY_EVERY;
        if self.file.get_ref().metadata().is_ok_and(|m| m.nlink() == 0) {
            tracing::warn!("access log {} was removed; creating it again", self.path.display());
            self.request_reopen();
        }
    }

    fn retry_reopen(&mut self, now: Instant) {
        let Some(reopen) = &mut self.reopen else { return };
        if now < reopen.next_try {
            return;
        }
        match open(&self.path) {
            Ok(new) => {
                let failures = reopen.failures;
                self.reopen = None;
                self.orphaned = false;
                let old = std::mem::replace(&mut self.file, RecordFile::new(new));
                let outcome = old.close();
                self.account(outcome, now);
                if failures > 0 {
                    tracing::warn!(
                        "access log {}: reopened after {failures} failed tries",
                        self.path.display()
                    );
                }
            }
            Err(e) => {
                if reopen.failures == 0 {
                    let removed = self.file.get_ref().metadata().is_ok_and(|m| m.nlink() == 0);
                    self.orphaned = removed;
                    let keep = if removed {
                        "the open file was removed, so records are lost (and counted) until then"
                    } else {
                        "records still go to the file opened before"
                    };
                    tracing::error!("{e}; retrying every second; {keep}");
                }
                reopen.failures = reopen.failures.saturating_add(1);
                reopen.next_try = now + RETRY_EVERY;
            }
        }
    }
}
