//! One child slot of a pool: starts the process, feeds it requests from the pool's queue,
//! hands replies back, and restarts the process when it dies.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use super::reply::{parse, split_channel};
use super::{HelperError, Job, MAX_REPLY, REPLY_TIMEOUT, STORM_PAUSE, Shared};

struct Process {
    child: Child,
    stdin: ChildStdin,
    lines: LineReader,
}

/// Why a process stopped serving.
enum End {
    /// The pool is gone: stop for good.
    QueueClosed,
    /// The process died or misbehaved (the text says how); restart it.
    Died(String),
}

/// Runs child slot `number` until the pool is dropped.
pub(super) async fn run(shared: Arc<Shared>, number: usize) {
    let name = shared.spec.name.clone();
    // Requests the previous process held when it died, to be given to the next one.
    let mut carried: Vec<Job> = Vec::new();
    loop {
        let end = match spawn(&shared) {
            Ok(mut process) => {
                let pid = process.child.id().unwrap_or(0);
                tracing::debug!(helper = %name, child = number, pid, "helper started");
                let end = if shared.spec.concurrency == 0 {
                    serve_one_at_a_time(&shared, &mut process, &mut carried).await
                } else {
                    serve_concurrently(&shared, &mut process, &mut carried).await
                };
                if let End::Died(reason) = &end {
                    // Reap it (or kill a stuck one) so no zombie or runaway stays behind.
                    let _ = process.child.start_kill();
                    let status = tokio::time::timeout(Duration::from_secs(5), process.child.wait()).await;
                    let status = match status {
                        Ok(Ok(s)) => s.to_string(),
                        _ => "unknown status".into(),
                    };
                    tracing::error!("helper {name} #{number} (pid {pid}) {reason} ({status}); restarting it");
                }
                end
            }
            Err(e) => {
                let reason = format!("cannot be started ({}): {e}", shared.spec.command_line());
                tracing::error!("helper {name} #{number} {reason}");
                End::Died(reason)
            }
        };
        if matches!(end, End::QueueClosed) {
            break;
        }
        if shared.record_exit() {
            tracing::error!(
                "helper {name} is crashing too rapidly (more than {} exits within {} s): its requests are refused for {} s",
                super::RESTART_BURST,
                super::RESTART_WINDOW.as_secs(),
                STORM_PAUSE.as_secs()
            );
            for job in carried.drain(..) {
                let _ = job.reply.send(Err(HelperError::Unavailable));
            }
            if refuse_until(&shared, Instant::now() + STORM_PAUSE).await {
                break;
            }
        }
    }
    shared.children.fetch_sub(1, Ordering::Relaxed);
}

fn spawn(shared: &Shared) -> std::io::Result<Process> {
    let mut child = Command::new(&shared.spec.program)
        .args(&shared.spec.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(std::io::Error::other("no pipes to the helper"));
    };
    Ok(Process {
        child,
        stdin,
        lines: LineReader::new(stdout),
    })
}

/// Answers every queued request with "unavailable" until `until`; true when the pool is gone.
async fn refuse_until(shared: &Shared, until: Instant) -> bool {
    loop {
        let next = tokio::time::timeout_at(until, async { shared.queue.lock().await.recv().await }).await;
        match next {
            Err(_) => return false,
            Ok(None) => return true,
            Ok(Some(job)) => {
                let _ = job.reply.send(Err(HelperError::Unavailable));
            }
        }
    }
}

/// A child died holding `job`: give it to the next process once, then give up.
fn carry(carried: &mut Vec<Job>, mut job: Job) {
    if job.retries >= 1 {
        let _ = job.reply.send(Err(HelperError::Died));
    } else {
        job.retries += 1;
        carried.push(job);
    }
}

/// `concurrency=0`: one request, one reply, no channel ID.
async fn serve_one_at_a_time(shared: &Shared, process: &mut Process, carried: &mut Vec<Job>) -> End {
    loop {
        let job = match carried.pop() {
            Some(job) => job,
            None => {
                shared.idle.fetch_add(1, Ordering::Relaxed);
                let next = tokio::select! {
                    job = async { shared.queue.lock().await.recv().await } => Ok(job),
                    status = process.child.wait() => Err(status),
                };
                shared.idle.fetch_sub(1, Ordering::Relaxed);
                match next {
                    Ok(Some(job)) => job,
                    Ok(None) => return End::QueueClosed,
                    Err(_) => return End::Died("exited while idle".into()),
                }
            }
        };
        if job.reply.is_closed() {
            continue; // the client gave up waiting
        }
        if let Err(e) = write_line(&mut process.stdin, &job.line).await {
            carry(carried, job);
            return End::Died(format!("stopped reading requests: {e}"));
        }
        match tokio::time::timeout(REPLY_TIMEOUT, process.lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                let _ = job.reply.send(Ok(parse(&line)));
            }
            Ok(Ok(None)) => {
                carry(carried, job);
                return End::Died("exited before answering".into());
            }
            Ok(Err(e)) => {
                let _ = job.reply.send(Err(HelperError::Died));
                return End::Died(format!("sent an unusable reply: {e}"));
            }
            Err(_) => {
                let _ = job.reply.send(Err(HelperError::Timeout));
                return End::Died(format!(
                    "did not answer within {} s and was killed",
                    REPLY_TIMEOUT.as_secs()
                ));
            }
        }
    }
}

/// `concurrency=N`: up to N requests in flight, each line prefixed with a channel ID.
async fn serve_concurrently(shared: &Shared, process: &mut Process, carried: &mut Vec<Job>) -> End {
    let limit = shared.spec.concurrency;
    let mut in_flight: HashMap<u64, Job> = HashMap::new();
    let mut next_id: u64 = 0;
    let mut deadline = Instant::now() + REPLY_TIMEOUT;
    let mut idle = false;
    let set_idle = |now_idle: bool, idle: &mut bool| {
        if now_idle != *idle {
            if now_idle {
                shared.idle.fetch_add(1, Ordering::Relaxed);
            } else {
                shared.idle.fetch_sub(1, Ordering::Relaxed);
            }
            *idle = now_idle;
        }
    };
    let mut pending: Vec<Job> = std::mem::take(carried);
    // False once the pool is gone: replies still owed are read, no new work is taken.
    let mut queue_open = true;
    let end = 'serve: loop {
        while let Some(job) = pending.pop() {
            if job.reply.is_closed() {
                continue;
            }
            let id = next_id;
            next_id = next_id.wrapping_add(1);
            if in_flight.is_empty() {
                deadline = Instant::now() + REPLY_TIMEOUT;
            }
            let written = write_line(&mut process.stdin, &format!("{id} {}", job.line)).await;
            in_flight.insert(id, job);
            if let Err(e) = written {
                break 'serve End::Died(format!("stopped reading requests: {e}"));
            }
        }
        if !queue_open && in_flight.is_empty() {
            break End::QueueClosed;
        }
        set_idle(in_flight.is_empty(), &mut idle);
        let accepting = queue_open && in_flight.len() < limit;
        tokio::select! {
            job = async { shared.queue.lock().await.recv().await }, if accepting => match job {
                Some(job) => pending.push(job),
                None => queue_open = false,
            },
            line = process.lines.next_line() => match line {
                Ok(Some(line)) => {
                    deadline = Instant::now() + REPLY_TIMEOUT;
                    match split_channel(&line).and_then(|(id, rest)| in_flight.remove(&id).map(|job| (job, rest))) {
                        Some((job, rest)) => {
                            let _ = job.reply.send(Ok(parse(rest)));
                        }
                        None => tracing::warn!(helper = %shared.spec.name, "reply with an unknown or missing channel ID ignored"),
                    }
                }
                Ok(None) if in_flight.is_empty() => break End::Died("exited while idle".into()),
                Ok(None) => break End::Died("exited before answering".into()),
                Err(e) => break End::Died(format!("sent an unusable reply: {e}")),
            },
            _ = tokio::time::sleep_until(deadline), if !in_flight.is_empty() => {
                for (_, job) in in_flight.drain() {
                    let _ = job.reply.send(Err(HelperError::Timeout));
                }
                break End::Died(format!("did not answer within {} s and was killed", REPLY_TIMEOUT.as_secs()));
            }
        }
    };
    set_idle(false, &mut idle);
    for (_, job) in in_flight.drain() {
        carry(carried, job);
    }
    for job in pending {
        carried.push(job);
    }
    end
}

async fn write_line(stdin: &mut ChildStdin, line: &str) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    stdin.write_all(&bytes).await?;
    stdin.flush().await
}

/// Reads lines of at most [`MAX_REPLY`] bytes. Cancel-safe: bytes read before a `select!`
/// dropped the future stay in `pending` for the next call.
struct LineReader {
    reader: BufReader<ChildStdout>,
    pending: Vec<u8>,
}

impl LineReader {
    fn new(stdout: ChildStdout) -> LineReader {
        LineReader {
            reader: BufReader::new(stdout),
            pending: Vec::new(),
        }
    }

    async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        loop {
            if let Some(at) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=at).collect();
                let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                return Ok(Some(text.trim_end_matches('\r').to_string()));
            }
            if self.pending.len() > MAX_REPLY {
                return Err(std::io::Error::other(format!(
                    "a reply line longer than {MAX_REPLY} bytes"
                )));
            }
            let data = self.reader.fill_buf().await?;
            if data.is_empty() {
                return Ok(None);
            }
            let taken = data.len();
            self.pending.extend_from_slice(data);
            self.reader.consume(taken);
        }
    }
}
