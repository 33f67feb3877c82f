//! Squid's helper processes: a pool of children speaking the line protocol of
//! `auth_param … program` and `external_acl_type` helpers. One request is one line on the
//! child's stdin, one reply is one line on its stdout; with `concurrency=N` (N > 0) each line
//! starts with a channel ID and a child holds up to N requests at once, replies matched by ID.
//! The child's stderr is hopproxy's own (Squid sends it to cache.log).
//!
//! Robustness, where Squid has sharp edges:
//! * The queue is bounded (`queue-size`, default twice `children`). When it is full a request is
//!   refused at once with [`HelperError::Overloaded`] — the caller answers 503 — rather than
//!   queued without end (Squid 5 keeps queueing and, with its default
//!   `on-persistent-overload=die`, exits after three minutes of overload).
//! * A child that dies is restarted, and the request it was working on is given to the new
//!   child once. More than [`RESTART_BURST`] exits within [`RESTART_WINDOW`] is a restart storm:
//!   the pool logs an error, answers [`HelperError::Unavailable`] for [`STORM_PAUSE`], then
//!   tries again (Squid stops with "helpers are crashing too rapidly").
//! * A child that does not answer within [`REPLY_TIMEOUT`] is killed and restarted; its
//!   requests get [`HelperError::Timeout`]. No request waits without bound.
//! * Request lines are never logged: for authentication they carry the password.
//!
//! Children are started with the first request (the `startup` number of them), so a config
//! that is only checked, or a generation replaced before serving, starts none. Dropping the
//! [`Pool`] (a reload replaced the generation) ends its children once their requests are done.

pub mod external;
pub mod reply;

mod child;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

pub use reply::{Reply, Verdict};

/// Exits within [`RESTART_WINDOW`] that make a restart storm.
pub const RESTART_BURST: usize = 10;
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// How long a pool in a restart storm refuses requests before starting children again.
pub const STORM_PAUSE: Duration = Duration::from_secs(10);
/// The longest a child may take to answer one request.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest accepted reply line.
pub const MAX_REPLY: usize = 64 * 1024;

/// How to run one kind of helper (`children N startup=S idle=I concurrency=C queue-size=Q`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperSpec {
    /// For log lines: `auth_param basic` or `external_acl_type NAME`.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// `children`/`children-max`: at most this many processes.
    pub children_max: usize,
    /// Started with the first request.
    pub startup: usize,
    /// Another child is started when fewer than this many are idle (and below the max).
    pub idle: usize,
    /// 0: one request at a time, no channel ID. N: up to N at once, with IDs.
    pub concurrency: usize,
    /// Requests waiting for a child, at most.
    pub queue_size: usize,
}

impl HelperSpec {
    /// Squid's defaults for a program with `children_max` children.
    pub fn new(name: impl Into<String>, program: PathBuf, args: Vec<String>, children_max: usize) -> HelperSpec {
        HelperSpec {
            name: name.into(),
            program,
            args,
            children_max,
            startup: 0,
            idle: 1,
            concurrency: 0,
            queue_size: 2 * children_max,
        }
    }

    /// The command as an operator would type it (no secrets: arguments come from the config).
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.display().to_string())
            .chain(self.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Why a request got no reply from a helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelperError {
    #[error("the helper queue is full")]
    Overloaded,
    #[error("the helper cannot be started or is restarting too often")]
    Unavailable,
    #[error("the helper did not answer in time")]
    Timeout,
    #[error("the helper died while answering")]
    Died,
}

/// One request waiting for a child.
struct Job {
    line: String,
    reply: oneshot::Sender<Result<Reply, HelperError>>,
    /// Times a child died while holding this request.
    retries: u8,
}

/// What children share with the pool: the queue and the counters. Children hold no sender,
/// so dropping the [`Pool`] closes the queue and ends them.
struct Shared {
    spec: HelperSpec,
    queue: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    /// Children running (processes or restarting ones).
    children: AtomicUsize,
    /// Children with nothing in flight, waiting for work.
    idle: AtomicUsize,
    /// Recent exits, for restart-storm detection.
    exits: Mutex<Vec<Instant>>,
    /// Requests answered, for tests and status lines.
    answered: AtomicUsize,
}

/// A pool of helper children. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    sender: mpsc::Sender<Job>,
    shared: Arc<Shared>,
    started: Arc<std::sync::Once>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("spec", &self.shared.spec)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub fn new(spec: HelperSpec) -> Pool {
        let (sender, receiver) = mpsc::channel(spec.queue_size.max(1));
        Pool {
            sender,
            shared: Arc::new(Shared {
                spec,
                queue: tokio::sync::Mutex::new(receiver),
                children: AtomicUsize::new(0),
                idle: AtomicUsize::new(0),
                exits: Mutex::new(Vec::new()),
                answered: AtomicUsize::new(0),
            }),
            started: Arc::new(std::sync::Once::new()),
        }
    }

    pub fn spec(&self) -> &HelperSpec {
        &self.shared.spec
    }

    /// Children running now.
    pub fn children(&self) -> usize {
        self.shared.children.load(Ordering::Relaxed)
    }

    /// Sends one request line (without newline or channel ID; the caller escapes its words)
    /// and waits for the reply. Never waits without bound.
    pub async fn ask(&self, line: String) -> Result<Reply, HelperError> {
        debug_assert!(!line.contains('\n'));
        self.started.call_once(|| {
            for _ in 0..self
                .shared
                .spec
                .startup
                .max(1)
                .min(self.shared.spec.children_max.max(1))
            {
                self.start_child();
            }
        });
        let (reply, answer) = oneshot::channel();
        let job = Job {
            line,
            reply,
            retries: 0,
        };
        match self.sender.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(helper = %self.shared.spec.name, "helper queue full ({} waiting): request refused", self.shared.spec.queue_size);
                return Err(HelperError::Overloaded);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(HelperError::Unavailable),
        }
        self.grow();
        // A job waits in the queue at most queue_size / children replies, each bounded by
        // REPLY_TIMEOUT; this outer bound only guards against a bug.
        let bound = REPLY_TIMEOUT * (self.shared.spec.queue_size as u32 + 2);
        match tokio::time::timeout(bound, answer).await {
            Ok(Ok(result)) => {
                self.shared.answered.fetch_add(1, Ordering::Relaxed);
                result
            }
            Ok(Err(_)) => Err(HelperError::Died),
            Err(_) => Err(HelperError::Timeout),
        }
    }

    /// Starts one more child when work waits or too few are idle, below the maximum.
    fn grow(&self) {
        let shared = &self.shared;
        let waiting = self.sender.max_capacity() - self.sender.capacity();
        let idle = shared.idle.load(Ordering::Relaxed);
        if (waiting > 0 || idle < shared.spec.idle)
            && shared.children.load(Ordering::Relaxed) < shared.spec.children_max
        {
            self.start_child();
        }
    }

    fn start_child(&self) {
        let shared = &self.shared;
        let number = shared.children.fetch_add(1, Ordering::Relaxed) + 1;
        if number > shared.spec.children_max.max(1) {
            shared.children.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        tokio::spawn(child::run(Arc::clone(&self.shared), number));
    }
}

impl Shared {
    /// Records a child's exit; true when the exits in the window make a restart storm.
    fn record_exit(&self) -> bool {
        let now = Instant::now();
        let mut exits = self.exits.lock().unwrap_or_else(|p| p.into_inner());
        exits.retain(|at| now.duration_since(*at) < RESTART_WINDOW);
        exits.push(now);
        let storm = exits.len() > RESTART_BURST;
        if storm {
            exits.clear();
        }
        storm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, children: usize) -> Pool {
        let spec = HelperSpec::new(
            "test",
            PathBuf::from("/bin/sh"),
            vec!["-c".into(), script.into()],
            children,
        );
        Pool::new(spec)
    }

    #[tokio::test]
    async fn answers_in_order_and_by_channel() {
        let pool = sh("while read -r a b; do echo \"OK user=$a\"; done", 1);
        let reply = pool.ask("alice pw".into()).await.unwrap();
        assert_eq!(reply.get("user"), Some("alice"));
        let mut spec = HelperSpec::new(
            "test",
            PathBuf::from("/bin/sh"),
            vec![
                "-c".into(),
                "while read -r id a; do echo \"$id ERR message=$a\"; done".into(),
            ],
            1,
        );
        spec.concurrency = 4;
        let pool = Pool::new(spec);
        let (a, b) = tokio::join!(pool.ask("one".into()), pool.ask("two".into()));
        assert_eq!(a.unwrap().message(), Some("one"));
        assert_eq!(b.unwrap().message(), Some("two"));
    }

    /// A helper that exits at once: each request is tried twice, then refused; after a
    /// burst of exits the pool refuses at once instead of restarting in a loop.
    #[tokio::test]
    async fn a_crashing_helper_is_a_bounded_refusal() {
        let pool = sh("read -r line; exit 1", 1);
        let mut errors = Vec::new();
        for _ in 0..(RESTART_BURST + 2) {
            errors.push(pool.ask("x".into()).await.unwrap_err());
        }
        assert!(errors.contains(&HelperError::Died), "{errors:?}");
        assert_eq!(errors.last(), Some(&HelperError::Unavailable), "{errors:?}");
    }

    #[tokio::test]
    async fn a_missing_program_is_unavailable() {
        let pool = Pool::new(HelperSpec::new(
            "test",
            PathBuf::from("/nonexistent/helper"),
            Vec::new(),
            1,
        ));
        assert!(pool.ask("x".into()).await.is_err());
    }
}
