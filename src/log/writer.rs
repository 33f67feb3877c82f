//! The access-log writer: a dedicated thread that receives finished lines and appends them in
//! batches, so slow or full disks never stall a relaying task. Lines are whole strings and a
//! record cut by a full disk is cut back off the file, so a record is never cut or glued to the
//! next (Squid 5.7 cuts records at 8 KB: docs/squid-behaviour.md M12). Lost records are counted
//! ([`LogWriter::dropped_counter`], the metric `hopproxy_log_records_dropped_total`) and
//! reported on stderr once per episode.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::output::{Output, RETRY_EVERY};

/// Longest extra delay before a line reaches the file.
const BATCH_PAUSE: Duration = Duration::from_millis(2);

/// Records that may wait for the writer (about 10 MB of lines). When the disk stalls for good,
/// further records are dropped and counted instead of growing memory or blocking a request.
const QUEUE_RECORDS: usize = 65_536;

enum Message {
    Line(String),
    /// Only wakes the thread (a reopen was asked for).
    Wake,
}

#[derive(Default)]
struct Shared {
    /// Records lost for any reason, ever.
    dropped: Arc<AtomicU64>,
    /// Records refused because the queue was full, not yet seen by the writer thread.
    overflowed: AtomicU64,
    reopen: AtomicBool,
}

/// Cheap to clone; dropping every clone and calling [`LogWriter::finish`] flushes and stops.
#[derive(Clone)]
pub struct LogSender {
    tx: Option<SyncSender<Message>>,
    shared: Arc<Shared>,
}

impl LogSender {
    /// A sender that discards everything (`access_log none`).
    pub fn disabled() -> LogSender {
        LogSender {
            tx: None,
            shared: Arc::default(),
        }
    }

    /// Queues one line; never blocks. A line that finds the queue full is dropped and counted.
    pub fn send(&self, line: String) {
        let Some(tx) = &self.tx else { return };
        // Disconnected cannot happen: the writer only stops after every sender is gone.
        if let Err(TrySendError::Full(_)) = tx.try_send(Message::Line(line)) {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            self.shared.overflowed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reopens the files (after logrotate moved them). If the path cannot be opened, the old
    /// file is kept and the open retried every second.
    pub fn reopen(&self) {
        if let Some(tx) = &self.tx {
            self.shared.reopen.store(true, Ordering::Relaxed);
            // A full queue wakes the thread anyway.
            let _ = tx.try_send(Message::Wake);
        }
    }
}

pub struct LogWriter {
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl LogWriter {
    /// Opens every path now (so a bad path fails at start-up, not at the first request) and
    /// starts the writer thread. With several paths, a record lost in two files counts twice.
    pub fn start(paths: Vec<PathBuf>) -> std::io::Result<(LogWriter, LogSender)> {
        let shared = Arc::new(Shared::default());
        if paths.is_empty() {
            let sender = LogSender {
                tx: None,
                shared: Arc::clone(&shared),
            };
            return Ok((LogWriter { thread: None, shared }, sender));
        }
        let outputs = paths
            .into_iter()
            .map(|path| Output::open(path, Arc::clone(&shared.dropped)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let (tx, rx) = mpsc::sync_channel(QUEUE_RECORDS);
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_loop(rx, outputs, &thread_shared))?;
        let sender = LogSender {
            tx: Some(tx),
            shared: Arc::clone(&shared),
        };
        Ok((
            LogWriter {
                thread: Some(thread),
                shared,
            },
            sender,
        ))
    }

    /// The live count of records lost so far (full disk, failing file, full queue; never
    /// decreases), for a metrics registry that outlives this writer.
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.shared.dropped)
    }

    /// Waits until every queued line is written. Call after all senders are dropped.
    pub fn finish(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_loop(rx: Receiver<Message>, mut outputs: Vec<Output>, shared: &Shared) {
    let mut batch = String::new();
    loop {
        // Sleep until a record comes, but wake to retry and settle while something is wrong.
        let first = if outputs.iter().any(Output::needs_timer) {
            rx.recv_timeout(RETRY_EVERY)
        } else {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        let stopping = match first {
            Ok(message) => {
                push(&mut batch, message);
                // Drain what else is queued (at most one queue's worth) so one write() carries
                // many lines.
                for message in rx.try_iter().take(QUEUE_RECORDS) {
                    push(&mut batch, message);
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let reopen = shared.reopen.swap(false, Ordering::Relaxed);
        let overflowed = shared.overflowed.swap(0, Ordering::Relaxed);
        let now = Instant::now();
        for output in &mut outputs {
            if reopen {
                output.request_reopen();
            }
            output.write(batch.as_bytes(), overflowed, now);
            output.tick(now);
        }
        batch.clear();
        if stopping {
            break;
        }
        // A sender wakes this thread only while it waits in recv(); pausing here lets lines
        // pile up without costing the relaying threads a wake-up each (≤ 500 writes/s).
        std::thread::sleep(BATCH_PAUSE);
    }
    for output in outputs {
        output.close();
    }
}

fn push(batch: &mut String, message: Message) {
    if let Message::Line(line) = message {
        batch.push_str(&line);
        // Records are whole lines; the partial-write repair relies on it.
        if !line.ends_with('\n') {
            batch.push('\n');
        }
    }
}
