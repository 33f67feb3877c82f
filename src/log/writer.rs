//! The access-log writer: a dedicated thread that receives finished lines and appends them in
//! batches, so slow disks never stall a relaying task. Lines are whole strings, so a record is
//! never cut or glued to the next (Squid 5.7 cuts records at 8 KB: reference M12).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

/// Longest extra delay before a line reaches the file.
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

enum Message {
    Line(String),
    Reopen,
}

/// Cheap to clone; dropping every clone and calling [`LogWriter::finish`] flushes and stops.
#[derive(Clone)]
pub struct LogSender {
    tx: Option<Sender<Message>>,
}

impl LogSender {
    /// A sender that discards everything (`access_log none`).
    pub fn disabled() -> LogSender {
        LogSender { tx: None }
    }

    pub fn send(&self, line: String) {
        if let Some(tx) = &self.tx {
            // The writer only stops after every sender is gone, so this cannot fail in practice.
            let _ = tx.send(Message::Line(line));
        }
    }

    /// Reopens the files (after logrotate moved them); lines already queued go to the old file.
    pub fn reopen(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Message::Reopen);
        }
    }
}

pub struct LogWriter {
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    /// Opens every path now (so a bad path fails at start-up, not at the first request) and
    /// starts the writer thread.
    pub fn start(paths: Vec<PathBuf>) -> std::io::Result<(LogWriter, LogSender)> {
        if paths.is_empty() {
            return Ok((LogWriter { thread: None }, LogSender::disabled()));
        }
        let files = open_all(&paths)?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_loop(rx, paths, files))?;
        Ok((LogWriter { thread: Some(thread) }, LogSender { tx: Some(tx) }))
    }

    /// Waits until every queued line is written. Call after all senders are dropped.
    pub fn finish(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn open_all(paths: &[PathBuf]) -> std::io::Result<Vec<File>> {
    paths
        .iter()
        .map(|p| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot open access log {}: {e}", p.display())))
        })
        .collect()
}

fn write_loop(rx: Receiver<Message>, paths: Vec<PathBuf>, mut files: Vec<File>) {
    let mut batch = String::new();
    while let Ok(first) = rx.recv() {
        let mut reopen = false;
        let mut next = Some(first);
        // Drain whatever else is queued so one write() carries many lines.
        while let Some(message) = next {
            match message {
                Message::Line(line) => batch.push_str(&line),
                Message::Reopen => {
                    reopen = true;
                    break;
                }
            }
            next = rx.try_recv().ok();
        }
        write_batch(&mut files, &paths, &batch);
        batch.clear();
        // A sender wakes this thread only while it waits in recv(); pausing here lets lines
        // pile up without costing the relaying threads a wake-up each (≤ 500 writes/s).
        std::thread::sleep(BATCH_PAUSE);
        if reopen {
            match open_all(&paths) {
                Ok(new_files) => files = new_files,
                Err(e) => tracing::error!("reopening access logs failed, keeping the old files: {e}"),
            }
        }
    }
}

fn write_batch(files: &mut [File], paths: &[PathBuf], batch: &str) {
    if batch.is_empty() {
        return;
    }
    for (file, path) in files.iter_mut().zip(paths) {
        if let Err(e) = file.write_all(batch.as_bytes()) {
            tracing::error!("writing access log {} failed: {e}", path.display());
        }
    }
}
