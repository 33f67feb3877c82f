//! The bidirectional byte pump behind a tunnel. A FIN in one direction is passed on as a
//! half-close and the other direction keeps flowing; an error in either direction ends both.
//! Ends early when nothing moved for `idle` (`read_timeout`) or when shutdown forces it.
//!
//! Bytes move with `splice(2)` through a pipe per direction where the kernel supports it, so
//! tunnel payload never enters user space; otherwise they are copied through a per-thread
//! buffer. Either way a tunnel owns no buffer while idle: the pipe is created at the first
//! byte and holds no pages when empty, and the copy path keeps a heap backlog only while the
//! receiving side is congested. `splice` comes from rustix's safe wrapper, so this module
//! needs no `unsafe` either.
//!
//! A tunnel with a TLS end cannot splice: its bytes are copied through user space, and a
//! direction waiting for its next bytes holds a 1 KiB buffer, not a full chunk.

use std::cell::RefCell;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use rustix::pipe::{PipeFlags, SpliceFlags, pipe_with, splice};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::tls::Stream;

/// Bytes moved per read on the copy path; a read that fills it means bulk data is flowing.
const CHUNK: usize = 64 * 1024;
/// Pipe size asked for on the splice path (Linux's default `pipe-max-size` allows 1 MiB).
const SPLICE_PIPE_SIZE: usize = 256 * 1024;
/// Buffer of a stream (TLS) direction while it waits for its next bytes.
const QUIET_READ: usize = 1024;
/// Buffer of a stream direction while bulk data flows: one TLS record's payload.
const STREAM_CHUNK: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both sides closed their sending direction.
    Closed,
    /// One side failed (reset, broken pipe).
    Error,
    Idle,
    Shutdown,
}

#[derive(Debug, Clone, Copy)]
pub struct RelayStats {
    pub client_to_server: u64,
    pub server_to_client: u64,
    pub end: RelayEnd,
}

/// How bytes are moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `splice(2)` where it works, falling back to copying.
    Auto,
    /// Always copy through user space.
    Copy,
}

/// Whether splice works here: learnt at the first tunnel, so a kernel or socket type without
/// it costs one failed call, not one per tunnel.
static SPLICE_SUPPORT: AtomicU8 = AtomicU8::new(SPLICE_UNKNOWN);
const SPLICE_UNKNOWN: u8 = 0;
const SPLICE_WORKS: u8 = 1;
const SPLICE_UNSUPPORTED: u8 = 2;

/// The mode for new tunnels: `HOPPROXY_RELAY=copy` forces copying (for comparisons).
pub fn default_mode() -> Mode {
    static MODE: std::sync::OnceLock<Mode> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("HOPPROXY_RELAY").as_deref() {
        Ok("copy") => Mode::Copy,
        _ => Mode::Auto,
    })
}

struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Pumps bytes both ways until both directions are closed, one fails, the tunnel is idle for
/// `idle`, or `shutdown` turns true. Two plain TCP ends are spliced; a TLS end (an
/// `https_port` client, a `cache_peer … tls` parent) is copied through rustls.
pub async fn relay(client: Stream, server: Stream, idle: Duration, shutdown: watch::Receiver<bool>) -> RelayStats {
    match (client, server) {
        (Stream::Tcp(client), Stream::Tcp(server)) => relay_with(default_mode(), client, server, idle, shutdown).await,
        (client, server) => relay_streams(client, server, idle, shutdown).await,
    }
}

/// What both relay paths keep: when bytes last moved (for the idle watchdog) and how many
/// moved each way.
struct Tally {
    activity: Activity,
    up: AtomicU64,
    down: AtomicU64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            activity: Activity {
                start: Instant::now(),
                last_ms: AtomicU64::new(0),
            },
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
        }
    }

    fn stats(self, end: RelayEnd) -> RelayStats {
        RelayStats {
            client_to_server: self.up.into_inner(),
            server_to_client: self.down.into_inner(),
            end,
        }
    }
}

pub async fn relay_with(
    mode: Mode,
    client: TcpStream,
    server: TcpStream,
    idle: Duration,
    shutdown: watch::Receiver<bool>,
) -> RelayStats {
    let tally = Tally::new();

    let pumps = async {
        // try_join: an error on one side (a reset) ends the other side too.
        match tokio::try_join!(
            pump(mode, &client, &server, &tally.up, &tally.activity),
            pump(mode, &server, &client, &tally.down, &tally.activity)
        ) {
            Ok(_) => RelayEnd::Closed,
            Err(_) => RelayEnd::Error,
        }
    };
    let end = supervise(pumps, &tally.activity, idle, shutdown).await;
    tally.stats(end)
}

/// The relay for ends that are not both plain TCP: a copy through user space per direction.
async fn relay_streams(client: Stream, server: Stream, idle: Duration, shutdown: watch::Receiver<bool>) -> RelayStats {
    let (client_read, client_write) = tokio::io::split(client);
    relay_copying(client_read, client_write, server, idle, shutdown).await
}

/// The copy path with the client's two directions given apart, so the bytes for the client
/// can go through a writer that paces them (delay pools). Never splices.
pub async fn relay_copying(
    mut client_read: impl AsyncRead + Unpin,
    mut client_write: impl AsyncWrite + Unpin,
    server: Stream,
    idle: Duration,
    shutdown: watch::Receiver<bool>,
) -> RelayStats {
    let tally = Tally::new();
    let (mut server_read, mut server_write) = tokio::io::split(server);
    let pumps = async {
        match tokio::try_join!(
            stream_pump(&mut client_read, &mut server_write, &tally.up, &tally.activity),
            stream_pump(&mut server_read, &mut client_write, &tally.down, &tally.activity)
        ) {
            Ok(_) => RelayEnd::Closed,
            Err(_) => RelayEnd::Error,
        }
    };
    let end = supervise(pumps, &tally.activity, idle, shutdown).await;
    tally.stats(end)
}

/// One direction through user space; EOF (or a peer that closed without TLS close_notify,
/// which ends a tunnel just as well) half-closes the receiver.
///
/// A direction waiting for its next byte holds only a small buffer: most tunnels sit idle
/// most of the time, and a full chunk per direction would be most of an idle TLS tunnel's
/// memory. A read that fills the small buffer means bulk data is flowing; the full chunk is
/// then kept for as long as reads complete without waiting.
async fn stream_pump(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    count: &AtomicU64,
    activity: &Activity,
) -> std::io::Result<()> {
    // On the heap: an array here would grow every connection task's future (tunnel or not),
    // which tokio copies when it spawns and stores the task.
    let mut quiet = vec![0u8; QUIET_READ];
    let mut bulk: Vec<u8> = Vec::new();
    loop {
        let ready = if bulk.is_empty() {
            None
        } else {
            read_without_waiting(from, &mut bulk).await
        };
        let (read, from_bulk) = match ready {
            Some(read) => (read, true),
            None => {
                // Nothing to read right now: give the chunk back before waiting.
                bulk = Vec::new();
                (from.read(&mut quiet).await, false)
            }
        };
        let n = match read {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        to.write_all(if from_bulk { &bulk[..n] } else { &quiet[..n] }).await?;
        to.flush().await?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        activity.touch();
        if !from_bulk && n == QUIET_READ {
            bulk = vec![0u8; STREAM_CHUNK];
        }
    }
}

/// One read into `buf` if it completes without waiting; `None` when it would wait.
async fn read_without_waiting(from: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> Option<std::io::Result<usize>> {
    std::future::poll_fn(|cx| {
        let mut read_buf = ReadBuf::new(buf);
        Poll::Ready(match Pin::new(&mut *from).poll_read(cx, &mut read_buf) {
            Poll::Ready(Ok(())) => Some(Ok(read_buf.filled().len())),
            Poll::Ready(Err(e)) => Some(Err(e)),
            Poll::Pending => None,
        })
    })
    .await
}

/// Runs `pumps` until they end, the tunnel is idle for `idle`, or shutdown is forced.
async fn supervise(
    pumps: impl std::future::Future<Output = RelayEnd>,
    activity: &Activity,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> RelayEnd {
    let watchdog = async {
        loop {
            tokio::time::sleep_until(activity.last() + idle).await;
            if activity.last() + idle <= Instant::now() {
                return;
            }
        }
    };
    let forced = async {
        loop {
            if *shutdown.borrow_and_update() {
                return;
            }
            if shutdown.changed().await.is_err() {
                // The sender is gone: no forced shutdown can come any more.
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        end = pumps => end,
        _ = watchdog => RelayEnd::Idle,
        _ = forced => RelayEnd::Shutdown,
    }
}

/// Moves one direction until EOF, then half-closes the receiver. Starts by copying, which is
/// cheapest for the small exchanges most tunnels carry; switches to splice once a read fills
/// the whole buffer, i.e. when bulk data is flowing and the pipe pays for itself.
async fn pump(
    mode: Mode,
    from: &TcpStream,
    to: &TcpStream,
    count: &AtomicU64,
    activity: &Activity,
) -> std::io::Result<()> {
    let may_splice = mode == Mode::Auto && SPLICE_SUPPORT.load(Ordering::Relaxed) != SPLICE_UNSUPPORTED;
    if copy_pump(from, to, count, activity, may_splice).await? == CopyEnd::Eof {
        return Ok(());
    }
    match splice_pump(from, to, count, activity).await {
        Err(e) if is_unsupported(&e) => {
            SPLICE_SUPPORT.store(SPLICE_UNSUPPORTED, Ordering::Relaxed);
            tracing::info!("splice(2) unavailable ({e}); tunnels copy through user space");
            copy_pump(from, to, count, activity, false).await.map(|_| ())
        }
        done => done,
    }
}

fn is_unsupported(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::INVAL.raw_os_error() || code == rustix::io::Errno::NOSYS.raw_os_error())
}

fn half_close(to: &TcpStream) {
    let _ = rustix::net::shutdown(to, rustix::net::Shutdown::Write);
}

async fn splice_pump(from: &TcpStream, to: &TcpStream, count: &AtomicU64, activity: &Activity) -> std::io::Result<()> {
    // Created at the first byte: idle tunnels hold no pipe at all.
    let mut pipe: Option<(OwnedFd, OwnedFd)> = None;
    loop {
        from.readable().await?;
        let (pipe_read, pipe_write) = match &pipe {
            Some(p) => p,
            None => {
                let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
                // A bigger pipe moves more per splice; the kernel may refuse (pipe-max-size).
                let _ = rustix::pipe::fcntl_setpipe_size(&write, SPLICE_PIPE_SIZE);
                pipe.insert((read, write))
            }
        };
        let read = from.try_io(Interest::READABLE, || {
            Ok(splice(
                from,
                None,
                &*pipe_write,
                None,
                SPLICE_PIPE_SIZE,
                SpliceFlags::NONBLOCK | SpliceFlags::MOVE,
            )?)
        });
        let mut pending = match read {
            Ok(0) => {
                half_close(to);
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        SPLICE_SUPPORT.store(SPLICE_WORKS, Ordering::Relaxed);
        while pending > 0 {
            to.writable().await?;
            let written = to.try_io(Interest::WRITABLE, || {
                Ok(splice(
                    &*pipe_read,
                    None,
                    to,
                    None,
                    pending,
                    SpliceFlags::NONBLOCK | SpliceFlags::MOVE,
                )?)
            });
            match written {
                Ok(n) => {
                    pending -= n;
                    count.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        activity.touch();
    }
}

thread_local! {
    /// One copy buffer per runtime thread, used only between awaits, so no tunnel owns one.
    static COPY_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; CHUNK]);
}

enum Step {
    Eof,
    NotReady,
    Moved(usize),
}

/// Reads what is there and writes what the receiver takes now; the rest goes to `backlog`.
fn transfer_once(from: &TcpStream, to: &TcpStream, backlog: &mut Vec<u8>) -> std::io::Result<Step> {
    COPY_BUFFER.with_borrow_mut(|buf| {
        let n = match from.try_read(buf) {
            Ok(0) => return Ok(Step::Eof),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Step::NotReady),
            Err(e) => return Err(e),
        };
        let mut written = 0;
        while written < n {
            match to.try_write(&buf[written..n]) {
                Ok(m) => written += m,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    backlog.extend_from_slice(&buf[written..n]);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Step::Moved(n))
    })
}

#[derive(Debug, PartialEq, Eq)]
enum CopyEnd {
    Eof,
    /// Bulk data detected and splice allowed: continue on the splice path.
    SwitchToSplice,
}

async fn copy_pump(
    from: &TcpStream,
    to: &TcpStream,
    count: &AtomicU64,
    activity: &Activity,
    may_splice: bool,
) -> std::io::Result<CopyEnd> {
    let mut backlog: Vec<u8> = Vec::new();
    loop {
        while !backlog.is_empty() {
            to.writable().await?;
            match to.try_write(&backlog) {
                Ok(n) => {
                    backlog.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        // Give the memory back once the receiver caught up.
        backlog = Vec::new();
        from.readable().await?;
        match transfer_once(from, to, &mut backlog)? {
            Step::Eof => {
                half_close(to);
                return Ok(CopyEnd::Eof);
            }
            Step::NotReady => {}
            Step::Moved(n) => {
                count.fetch_add(n as u64, Ordering::Relaxed);
                activity.touch();
                if may_splice && n == CHUNK && backlog.is_empty() {
                    return Ok(CopyEnd::SwitchToSplice);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// client ⇄ [relay] ⇄ server over real loopback sockets; returns both outer ends.
    async fn rig(mode: Mode) -> (TcpStream, TcpStream, tokio::task::JoinHandle<RelayStats>) {
        rig_with_idle(mode, Duration::from_secs(10)).await
    }

    /// Two connected loopback pairs: the client's end and the relay's, the relay's and the
    /// server's.
    async fn socket_pairs() -> [TcpStream; 4] {
        let a = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client_outer = TcpStream::connect(a.local_addr().unwrap()).await.unwrap();
        let (client_inner, _) = a.accept().await.unwrap();
        let server_inner = TcpStream::connect(b.local_addr().unwrap()).await.unwrap();
        let (server_outer, _) = b.accept().await.unwrap();
        [client_outer, client_inner, server_inner, server_outer]
    }

    async fn rig_with_idle(mode: Mode, idle: Duration) -> (TcpStream, TcpStream, tokio::task::JoinHandle<RelayStats>) {
        let [client_outer, client_inner, server_inner, server_outer] = socket_pairs().await;
        let (_tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let _keep_sender = _tx;
            relay_with(mode, client_inner, server_inner, idle, rx).await
        });
        (client_outer, server_outer, task)
    }

    /// Closes `stream` with a reset (RST) instead of a FIN.
    fn reset(stream: TcpStream) {
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(stream);
    }

    /// How the relay in `task` ended; panics with `stuck` if it runs on for 30 s.
    async fn end_of(task: tokio::task::JoinHandle<RelayStats>, stuck: &str) -> RelayEnd {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect(stuck)
            .unwrap()
            .end
    }

    /// The same rig through the stream path (the one TLS ends take), with plain TCP ends.
    async fn rig_streams() -> (TcpStream, TcpStream, tokio::task::JoinHandle<RelayStats>) {
        let [client_outer, client_inner, server_inner, server_outer] = socket_pairs().await;
        let (_tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let _keep_sender = _tx;
            let (client_read, client_write) = tokio::io::split(client_inner);
            relay_copying(
                client_read,
                client_write,
                Stream::Tcp(server_inner),
                Duration::from_secs(10),
                rx,
            )
            .await
        });
        (client_outer, server_outer, task)
    }

    async fn bulk_and_half_close(mode: Mode) {
        let (client, server, task) = rig(mode).await;
        bulk_and_half_close_over(client, server, task, 0).await;
    }

    /// 3 MB up, a half-close, a reply down; `earlier` bytes already went up on this tunnel.
    async fn bulk_and_half_close_over(
        mut client: TcpStream,
        mut server: TcpStream,
        task: tokio::task::JoinHandle<RelayStats>,
        earlier: u64,
    ) {
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let expected = payload.clone();
        let upload = tokio::spawn(async move {
            client.write_all(&payload).await.unwrap();
            client.shutdown().await.unwrap();
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            answer
        });
        let mut received = Vec::new();
        server.read_to_end(&mut received).await.unwrap();
        assert!(
            received == expected,
            "upload arrives whole and in order ({} bytes)",
            received.len()
        );
        // The client's FIN did not cut the other direction.
        server.write_all(b"reply after half-close").await.unwrap();
        server.shutdown().await.unwrap();
        assert_eq!(upload.await.unwrap(), b"reply after half-close");
        let stats = task.await.unwrap();
        assert_eq!(
            (stats.client_to_server, stats.server_to_client, stats.end),
            (earlier + 3_000_000, 22, RelayEnd::Closed)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn splice_path_moves_bulk_and_keeps_half_close() {
        let _one_at_a_time = SPLICE_STATE.lock().await;
        bulk_and_half_close(Mode::Auto).await;
        assert_eq!(
            SPLICE_SUPPORT.load(Ordering::Relaxed),
            SPLICE_WORKS,
            "splice was used on Linux"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn copy_path_moves_bulk_and_keeps_half_close() {
        let _one_at_a_time = SPLICE_STATE.lock().await;
        SPLICE_SUPPORT.store(SPLICE_UNKNOWN, Ordering::Relaxed);
        bulk_and_half_close(Mode::Copy).await;
        assert_eq!(
            SPLICE_SUPPORT.load(Ordering::Relaxed),
            SPLICE_UNKNOWN,
            "the copy mode never splices"
        );
    }

    /// A reset on the side a spliced direction writes to ends the tunnel, even when the
    /// other direction already ended cleanly (a half-close), so no error there ends it.
    #[test]
    fn a_reset_after_a_half_close_ends_the_spliced_tunnel() {
        within_a_minute(|| a_reset_after_a_half_close_ends_the_tunnel(Mode::Auto));
    }

    /// The same on the copy path, where the bytes the receiver has not taken wait in a backlog.
    #[test]
    fn a_reset_after_a_half_close_ends_the_copying_tunnel() {
        within_a_minute(|| a_reset_after_a_half_close_ends_the_tunnel(Mode::Copy));
    }

    async fn a_reset_after_a_half_close_ends_the_tunnel(mode: Mode) {
        let _one_at_a_time = SPLICE_STATE.lock().await;
        let (mut client, mut server, task) = rig(mode).await;
        let upload = tokio::spawn(async move {
            let _ = client.write_all(&vec![7u8; 8_000_000]).await;
            client
        });
        let mut part = vec![0u8; 500_000];
        server.read_exact(&mut part).await.unwrap();
        server.shutdown().await.unwrap();
        reset(server);
        assert_eq!(end_of(task, "the tunnel outlived the reset").await, RelayEnd::Error);
        drop(upload.await.unwrap());
    }

    /// Bulk takes the full chunk and gives it back when the direction goes quiet; a message
    /// smaller than the quiet buffer, one the size of it and one a byte over all arrive whole,
    /// then bulk and a half-close.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stream_path_moves_bulk_and_keeps_half_close() {
        let (mut client, mut server, task) = rig_streams().await;
        let sizes = [1, QUIET_READ, QUIET_READ + 1, STREAM_CHUNK + 1];
        for size in sizes {
            let message: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
            client.write_all(&message).await.unwrap();
            let mut received = vec![0u8; size];
            server.read_exact(&mut received).await.unwrap();
            assert!(received == message, "a {size}-byte message arrives whole");
        }
        let messages = sizes.iter().sum::<usize>() as u64;
        bulk_and_half_close_over(client, server, task, messages).await;
    }

    /// Runs `test` on a runtime of its own and fails if it has not finished within a minute.
    /// A relay that spins (a regression) holds its runtime's threads forever, so a timeout
    /// inside that runtime could never fire; this turns such a hang into a failure.
    fn within_a_minute<F: std::future::Future<Output = ()> + Send + 'static>(
        test: impl FnOnce() -> F + Send + 'static,
    ) {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(test());
            let _ = done_tx.send(());
        });
        match done_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("the tunnel never ended"),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("the test failed (its panic is above)"),
        }
    }

    /// Tests that depend on this process's splice state run one at a time.
    static SPLICE_STATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// The pipes this process holds open, with their `open(2)` flags.
    fn open_pipes() -> Vec<(String, u32)> {
        let mut pipes = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            let is_pipe = std::fs::read_link(entry.path())
                .map(|target| target.to_string_lossy().starts_with("pipe:"))
                .unwrap_or(false);
            let fd = entry.file_name().to_string_lossy().into_owned();
            let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) else {
                continue;
            };
            if let Some(flags) = info.lines().find_map(|l| l.strip_prefix("flags:"))
                && is_pipe
            {
                pipes.push((fd, u32::from_str_radix(flags.trim(), 8).unwrap()));
            }
        }
        pipes
    }

    /// A tunnel's splice pipe is close-on-exec: helper processes started while it is open
    /// must not inherit it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn splice_pipes_are_close_on_exec() {
        let _one_at_a_time = SPLICE_STATE.lock().await;
        // Pipes open before (stdout is one, inherited on purpose) are not the tunnel's.
        let before = open_pipes();
        let (mut client, mut server, task) = rig(Mode::Auto).await;
        let upload = tokio::spawn(async move {
            client.write_all(&vec![7u8; 4_000_000]).await.unwrap();
            client
        });
        // Part of the bulk: the tunnel now splices and holds its pipe until the end.
        let mut part = vec![0u8; 1_000_000];
        server.read_exact(&mut part).await.unwrap();
        assert_eq!(SPLICE_SUPPORT.load(Ordering::Relaxed), SPLICE_WORKS);
        let pipes: Vec<(String, u32)> = open_pipes().into_iter().filter(|p| !before.contains(p)).collect();
        assert!(!pipes.is_empty(), "a splicing tunnel holds a pipe");
        for (fd, flags) in &pipes {
            assert!(
                flags & rustix::fs::OFlags::CLOEXEC.bits() != 0,
                "pipe {fd} is inherited by children (flags {flags:o})"
            );
        }
        let mut client = upload.await.unwrap();
        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert_eq!(part.len() + rest.len(), 4_000_000);
        drop(server);
        assert_eq!(task.await.unwrap().client_to_server, 4_000_000);
    }

    /// A client that resets its connection mid-splice ends the tunnel as an error and leaves
    /// splicing on for the next tunnels: only EINVAL/ENOSYS mean the kernel cannot splice.
    #[test]
    fn a_reset_mid_splice_leaves_splicing_on() {
        within_a_minute(|| async {
            let _one_at_a_time = SPLICE_STATE.lock().await;
            SPLICE_SUPPORT.store(SPLICE_UNKNOWN, Ordering::Relaxed);
            let (mut client, mut server, task) = rig(Mode::Auto).await;
            client.write_all(&vec![7u8; 1_000_000]).await.unwrap();
            let mut part = vec![0u8; 500_000];
            server.read_exact(&mut part).await.unwrap();
            assert_eq!(
                SPLICE_SUPPORT.load(Ordering::Relaxed),
                SPLICE_WORKS,
                "this tunnel spliced"
            );
            reset(client);
            assert_eq!(end_of(task, "the tunnel outlived the reset").await, RelayEnd::Error);
            assert_eq!(
                SPLICE_SUPPORT.load(Ordering::Relaxed),
                SPLICE_WORKS,
                "a reset is no reason to stop splicing"
            );
        });
    }

    /// A TLS client that ends its sending side with a bare TCP FIN (no close_notify, as many
    /// clients do) half-closes the tunnel like a FIN on plain TCP: the reply still reaches it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tls_end_closed_without_close_notify_half_closes() {
        let pki = crate::lab::certs::Pki::generate("relay.test.invalid", "relay test CA").unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config(&[]).unwrap());
        let connector = tokio_rustls::TlsConnector::from(pki.client_config(&[]).unwrap());
        let a = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client_tcp = TcpStream::connect(a.local_addr().unwrap()).await.unwrap();
        let (client_inner, _) = a.accept().await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("relay.test.invalid").unwrap();
        let (client, inner) = tokio::join!(connector.connect(name, client_tcp), acceptor.accept(client_inner));
        let (mut client, inner) = (client.unwrap(), inner.unwrap());
        let server_inner = TcpStream::connect(b.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = b.accept().await.unwrap();
        let (_tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let _keep_sender = _tx;
            let client_end = Stream::TlsServer(Box::new(inner));
            relay(client_end, Stream::Tcp(server_inner), Duration::from_secs(10), rx).await
        });
        client.write_all(b"request").await.unwrap();
        client.flush().await.unwrap();
        // A bare FIN under the TLS session.
        client.get_mut().0.shutdown().await.unwrap();
        let mut received = Vec::new();
        server.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, b"request");
        server.write_all(b"reply after half-close").await.unwrap();
        server.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"reply after half-close");
        let stats = task.await.unwrap();
        assert_eq!(
            (stats.client_to_server, stats.server_to_client, stats.end),
            (7, 22, RelayEnd::Closed)
        );
    }

    /// The idle watchdog sleeps until the idle limit instead of polling. Under paused time
    /// the clock moves only while every task sleeps, so a polling watchdog would never see
    /// the limit pass; the real-time bound turns that into a failure, not a hang.
    #[test]
    fn the_idle_watchdog_sleeps_rather_than_polls() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            let end = runtime.block_on(async {
                let tally = Tally::new();
                let (_tx, rx) = watch::channel(false);
                supervise(std::future::pending(), &tally.activity, Duration::from_secs(600), rx).await
            });
            let _ = done_tx.send(end);
        });
        let end = done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the watchdog never saw the idle limit pass");
        assert_eq!(end, RelayEnd::Idle);
    }

    /// On the stream path a reset is an error that ends both directions, not a half-close:
    /// the tunnel ends while the client still holds its side open (else it would wait for
    /// the 10 s idle limit and end `Idle`).
    #[test]
    fn stream_path_ends_both_ways_on_a_reset() {
        within_a_minute(|| async {
            let (mut client, mut server, task) = rig_streams().await;
            client.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            server.read_exact(&mut byte).await.unwrap();
            reset(server);
            assert_eq!(
                end_of(task, "the tunnel outlived its idle limit").await,
                RelayEnd::Error
            );
            drop(client);
        });
    }

    /// A client reset while the tunnel is still copying (before any bulk) ends it as an error.
    #[test]
    fn a_reset_on_the_copy_path_ends_the_tunnel() {
        within_a_minute(|| async {
            let (mut client, mut server, task) = rig(Mode::Auto).await;
            client.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            server.read_exact(&mut byte).await.unwrap();
            reset(client);
            assert_eq!(task.await.unwrap().end, RelayEnd::Error);
        });
    }

    /// A receiver that does not read for a while fills every buffer on the way (32 MB is
    /// more than loopback sockets hold): the relay waits for it, on either path, and the
    /// bytes arrive whole once it reads.
    async fn a_congested_receiver_is_waited_for(mode: Mode) {
        let _one_at_a_time = SPLICE_STATE.lock().await;
        let (mut client, mut server, task) = rig(mode).await;
        let payload: Vec<u8> = (0..32_000_000u32).map(|i| (i % 241) as u8).collect();
        let expected = payload.clone();
        let upload = tokio::spawn(async move {
            client.write_all(&payload).await.unwrap();
            client.shutdown().await.unwrap();
            client
        });
        // Not a timing claim: the pause only lets the buffers fill; any length passes.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut received = Vec::new();
        server.read_to_end(&mut received).await.unwrap();
        assert!(
            received == expected,
            "{} of {} bytes arrived",
            received.len(),
            expected.len()
        );
        drop(upload.await.unwrap());
        drop(server);
        assert_eq!(task.await.unwrap().client_to_server, 32_000_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_congested_receiver_is_waited_for_on_the_copy_path() {
        a_congested_receiver_is_waited_for(Mode::Copy).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_congested_receiver_is_waited_for_on_the_splice_path() {
        a_congested_receiver_is_waited_for(Mode::Auto).await;
    }

    /// Traffic resets the idle clock: a tunnel that moves a byte every 50 ms is still open
    /// after twice its 2 s idle limit (the limit counts from the last byte, not the start).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn traffic_keeps_a_tunnel_past_the_idle_limit() {
        let (mut client, mut server, task) = rig_with_idle(Mode::Auto, Duration::from_secs(2)).await;
        let mut byte = [0u8; 1];
        // Bounded: 80 round trips of at least 50 ms, 4 s or more in all.
        for i in 0..80u8 {
            client.write_all(&[i]).await.unwrap();
            server.read_exact(&mut byte).await.unwrap();
            assert_eq!(byte[0], i);
            assert!(!task.is_finished(), "ended after {i} bytes while traffic flowed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop((client, server));
        assert_eq!(task.await.unwrap().end, RelayEnd::Closed);
    }

    #[tokio::test]
    async fn idle_tunnels_end_after_the_idle_limit() {
        let a = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client_outer = TcpStream::connect(a.local_addr().unwrap()).await.unwrap();
        let (client_inner, _) = a.accept().await.unwrap();
        let server_inner = TcpStream::connect(a.local_addr().unwrap()).await.unwrap();
        let (_server_outer, _) = a.accept().await.unwrap();
        let (_tx, rx) = watch::channel(false);
        let stats = relay_with(Mode::Auto, client_inner, server_inner, Duration::from_millis(200), rx).await;
        assert_eq!(stats.end, RelayEnd::Idle);
        drop(client_outer);
    }
}
