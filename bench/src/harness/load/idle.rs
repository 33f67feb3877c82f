//! Memory per idle tunnel: hold many established tunnels and compare the proxies' RSS with
//! the RSS just before.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::harness::client::{self, Route};
use crate::harness::procfs;

#[derive(Debug, Clone, Default)]
pub struct IdleResult {
    pub opened: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub kib_per_tunnel: Option<f64>,
    /// The same per hop, client-facing first (where the memory sits in a chain).
    pub kib_per_tunnel_by_hop: Vec<f64>,
}

/// Concurrent openers: enough to be quick, few enough not to overflow a listen backlog.
const OPENERS: usize = 64;
/// Time for the proxies to finish their own set-up work before RSS is read.
const SETTLE: Duration = Duration::from_millis(500);

/// Opens `count` tunnels to the echo port (each proven end to end by a one-byte echo),
/// reads the summed RSS of `pids`, then closes them all.
pub async fn run(route: &Route, echo: SocketAddr, count: usize, pids: &[u32]) -> Result<IdleResult, String> {
    let before: Vec<u64> = pids.iter().map(|&p| procfs::rss_kib(&[p])).collect();
    let gate = Arc::new(Semaphore::new(OPENERS));
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let gate = gate.clone();
            let route = route.clone();
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
                tokio::time::timeout(client::IO_TIMEOUT, open_idle(&route, echo))
                    .await
                    .map_err(|_| "idle tunnel: timed out".to_string())?
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    let mut held = Vec::with_capacity(count);
    let (mut errors, mut first_error) = (0, None);
    for r in super::join_all(tasks).await? {
        match r {
            Ok(s) => held.push(s),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    tokio::time::sleep(SETTLE).await;
    let after: Vec<u64> = pids.iter().map(|&p| procfs::rss_kib(&[p])).collect();
    let opened = held.len();
    drop(held);
    let per = |b: u64, a: u64| (a as f64 - b as f64) / opened.max(1) as f64;
    let (rss_before_kib, rss_after_kib) = (before.iter().sum(), after.iter().sum());
    let kib_per_tunnel = (opened > 0 && !pids.is_empty()).then(|| per(rss_before_kib, rss_after_kib));
    let kib_per_tunnel_by_hop = before.iter().zip(&after).map(|(&b, &a)| per(b, a)).collect();
    Ok(IdleResult {
        opened,
        errors,
        first_error,
        rss_before_kib,
        rss_after_kib,
        kib_per_tunnel,
        kib_per_tunnel_by_hop,
    })
}

async fn open_idle(route: &Route, echo: SocketAddr) -> std::io::Result<client::ClientStream> {
    let mut t = client::open(route, echo).await?;
    t.stream.write_all(b"i").await?;
    let mut b = [0u8; 1];
    t.stream.read_exact(&mut b).await?;
    Ok(t.stream)
}
