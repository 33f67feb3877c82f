//! The bidirectional byte pump behind a tunnel. A FIN in one direction is passed on as a
//! half-close and the other direction keeps flowing; an error in either direction ends both.
//! Ends early when nothing moved for `idle` (`read_timeout`) or when shutdown forces it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tokio::time::Instant;

const BUFFER: usize = 16 * 1024;

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
/// `idle`, or `shutdown` turns true.
pub async fn relay(
    client: TcpStream,
    server: TcpStream,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> RelayStats {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let activity = Arc::new(Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    });
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));

    let pumps = async {
        // try_join: an error on one side (a reset) ends the other side too.
        match tokio::try_join!(
            pump(client_read, server_write, &up, &activity),
            pump(server_read, client_write, &down, &activity)
        ) {
            Ok(_) => RelayEnd::Closed,
            Err(_) => RelayEnd::Error,
        }
    };
    let watchdog = async {
        loop {
            let deadline = activity.last() + idle;
            tokio::time::sleep_until(deadline).await;
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
    let end = tokio::select! {
        end = pumps => end,
        _ = watchdog => RelayEnd::Idle,
        _ = forced => RelayEnd::Shutdown,
    };
    RelayStats {
        client_to_server: up.load(Ordering::Relaxed),
        server_to_client: down.load(Ordering::Relaxed),
        end,
    }
}

/// Copies one direction until EOF, then half-closes the writer.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    count: &AtomicU64,
    activity: &Activity,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // Pass the FIN on; the other direction keeps going.
            let _ = to.shutdown().await;
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        activity.touch();
    }
}
