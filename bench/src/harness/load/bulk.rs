//! Bulk throughput through N tunnels at once: down (sink → client), up (client → sink, timed
//! until the sink's tokens confirm arrival), and echo (both ways at once through one tunnel).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{join_all, left};
use crate::harness::client::{self, ClientStream, Route, timeout_err};
use crate::harness::sink::{Sink, UP_TOKEN_BYTES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Down,
    Up,
    Echo,
}

#[derive(Debug, Clone, Default)]
pub struct BulkResult {
    /// Payload bytes moved (for echo: bytes that made the round trip).
    pub bytes: u64,
    pub mib_per_sec: f64,
}

const CHUNK: usize = 256 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

/// Opens `tunnels` tunnels, then moves bytes through all of them for `duration`.
pub async fn run(
    route: &Route,
    sink: &Sink,
    dir: Direction,
    tunnels: usize,
    duration: Duration,
) -> Result<BulkResult, String> {
    let target = match dir {
        Direction::Down => sink.down,
        Direction::Up => sink.up,
        Direction::Echo => sink.echo,
    };
    let mut opened = Vec::with_capacity(tunnels);
    for _ in 0..tunnels {
        opened.push(
            client::open(route, target)
                .await
                .map_err(|e| format!("bulk {dir:?}: open tunnel: {e}"))?,
        );
    }
    let start = Instant::now();
    let end = start + duration;
    let tasks = opened
        .into_iter()
        .map(|t| {
            tokio::spawn(async move {
                match dir {
                    Direction::Down => down(t, end).await,
                    Direction::Up => up(t, end).await,
                    Direction::Echo => echo(t, end).await,
                }
            })
        })
        .collect();
    let mut bytes = 0;
    let mut finished = start;
    for r in join_all(tasks).await? {
        let (b, done) = r.map_err(|e| format!("bulk {dir:?}: {e}"))?;
        bytes += b;
        finished = finished.max(done);
    }
    let secs = (finished - start).as_secs_f64().max(1e-6);
    Ok(BulkResult {
        bytes,
        mib_per_sec: bytes as f64 / MIB / secs,
    })
}

/// Reads until the deadline; the count is exact because it is what arrived.
async fn down(mut t: client::Tunnel, end: Instant) -> std::io::Result<(u64, Instant)> {
    let mut total = t.early.len() as u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let wait = left(end);
        if wait.is_zero() {
            return Ok((total, Instant::now()));
        }
        match tokio::time::timeout(wait, t.stream.read(&mut buf)).await {
            Err(_) => return Ok((total, Instant::now())),
            Ok(Ok(0)) => return Err(std::io::Error::other("tunnel closed during bulk down")),
            Ok(Ok(n)) => total += n as u64,
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// Writes whole MiB until the deadline, then waits for one token per MiB: the time counted
/// ends when the last byte has reached the sink, not when it left the client's buffer.
async fn up(mut t: client::Tunnel, end: Instant) -> std::io::Result<(u64, Instant)> {
    let chunk = vec![b'u'; UP_TOKEN_BYTES as usize];
    let mut sent_mib = 0u64;
    while Instant::now() < end {
        tokio::time::timeout(client::IO_TIMEOUT, t.stream.write_all(&chunk))
            .await
            .map_err(|_| timeout_err("bulk up write"))??;
        sent_mib += 1;
    }
    let mut tokens = 0u64;
    let mut buf = [0u8; 4096];
    let confirm_by = Instant::now() + client::IO_TIMEOUT;
    while tokens < sent_mib {
        match tokio::time::timeout(left(confirm_by), t.stream.read(&mut buf)).await {
            Err(_) => return Err(timeout_err("bulk up confirmation")),
            Ok(Ok(0)) => return Err(std::io::Error::other("tunnel closed during bulk up")),
            Ok(Ok(n)) => tokens += n as u64,
            Ok(Err(e)) => return Err(e),
        }
    }
    Ok((sent_mib * UP_TOKEN_BYTES, Instant::now()))
}

/// Writes until the deadline while a reader counts the echo; done when all came back.
async fn echo(t: client::Tunnel, end: Instant) -> std::io::Result<(u64, Instant)> {
    match t.stream {
        // TCP's own halves need no lock between reader and writer; TLS shares one session.
        ClientStream::Plain(s) => {
            let (rd, wr) = s.into_split();
            echo_halves(rd, wr, end).await
        }
        tls @ ClientStream::Tls(_) => {
            let (rd, wr) = tokio::io::split(tls);
            echo_halves(rd, wr, end).await
        }
    }
}

async fn echo_halves<R, W>(mut rd: R, mut wr: W, end: Instant) -> std::io::Result<(u64, Instant)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let written = Arc::new(AtomicU64::new(0));
    let writer_done = Arc::new(AtomicBool::new(false));
    let (w, d) = (written.clone(), writer_done.clone());
    let writer = tokio::spawn(async move {
        let chunk = vec![b'e'; 64 * 1024];
        while Instant::now() < end {
            wr.write_all(&chunk).await?;
            w.fetch_add(chunk.len() as u64, Ordering::Release);
        }
        d.store(true, Ordering::Release);
        // Keep the write half open until the reader is done: dropping it would half-close.
        Ok::<_, std::io::Error>(wr)
    });
    let mut got = 0u64;
    let mut buf = vec![0u8; CHUNK];
    let give_up = end + client::IO_TIMEOUT;
    loop {
        if writer_done.load(Ordering::Acquire) && got >= written.load(Ordering::Acquire) {
            break;
        }
        if writer.is_finished() && !writer_done.load(Ordering::Acquire) {
            // The writer failed: surface its error instead of waiting for bytes that never come.
            writer.await.map_err(std::io::Error::other)??;
            return Err(std::io::Error::other("bulk echo writer stopped early"));
        }
        if Instant::now() >= give_up {
            writer.abort();
            return Err(timeout_err("bulk echo"));
        }
        // Short waits so the check above runs again once the writer has finished.
        match tokio::time::timeout(Duration::from_millis(50), rd.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0)) => return Err(std::io::Error::other("tunnel closed during bulk echo")),
            Ok(Ok(n)) => got += n as u64,
            Ok(Err(e)) => return Err(e),
        }
    }
    let done = Instant::now();
    let _wr = writer.await.map_err(std::io::Error::other)??;
    Ok((got, done))
}
