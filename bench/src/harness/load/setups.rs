//! Tunnel set-up rate and latency: each worker loops connect → CONNECT → 64-byte echo → close.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{join_all, percentile};
use crate::harness::client::{self, Route};

#[derive(Debug, Clone, Default)]
pub struct SetupResult {
    /// Set-ups completed inside the measured window.
    pub count: u64,
    /// All set-ups completed, warm-up included: what the proxies' CPU time paid for.
    pub total: u64,
    pub per_sec: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

struct WorkerOut {
    latencies_us: Vec<u32>,
    total: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Runs `workers` loops for `warmup + duration`; only set-ups that start after the warm-up
/// and finish before the end count.
pub async fn run(
    route: &Route,
    echo: SocketAddr,
    workers: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<SetupResult, String> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let tasks = (0..workers)
        .map(|_| tokio::spawn(worker(route.clone(), echo, measure_from, end)))
        .collect();
    let outs = join_all(tasks).await?;
    let mut lat: Vec<u32> = outs.iter().flat_map(|o| o.latencies_us.iter().copied()).collect();
    lat.sort_unstable();
    let errors = outs.iter().map(|o| o.errors).sum();
    let first_error = outs.iter().find_map(|o| o.first_error.clone());
    let ms = |v: Option<u32>| v.map(|us| us as f64 / 1000.0);
    Ok(SetupResult {
        count: lat.len() as u64,
        total: outs.iter().map(|o| o.total).sum(),
        per_sec: lat.len() as f64 / duration.as_secs_f64(),
        p50_ms: ms(percentile(&lat, 50.0)),
        p99_ms: ms(percentile(&lat, 99.0)),
        errors,
        first_error,
    })
}

async fn worker(route: Route, echo: SocketAddr, measure_from: Instant, end: Instant) -> WorkerOut {
    let mut out = WorkerOut {
        latencies_us: Vec::new(),
        total: 0,
        errors: 0,
        first_error: None,
    };
    while Instant::now() < end {
        let t0 = Instant::now();
        match tokio::time::timeout(client::IO_TIMEOUT, one(&route, echo)).await {
            Ok(Ok(())) => {
                let t1 = Instant::now();
                out.total += 1;
                if t0 >= measure_from && t1 <= end {
                    out.latencies_us
                        .push((t1 - t0).as_micros().min(u32::MAX as u128) as u32);
                }
            }
            failed => {
                out.errors += 1;
                if out.first_error.is_none() {
                    out.first_error = Some(match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "set-up timed out".into(),
                    });
                }
                // A failing proxy answers fast; do not turn the test into a busy loop.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    out
}

async fn one(route: &Route, echo: SocketAddr) -> std::io::Result<()> {
    let mut t = client::open(route, echo).await?;
    let msg = [b'e'; 64];
    t.stream.write_all(&msg).await?;
    let mut back = [0u8; 64];
    t.stream.read_exact(&mut back).await?;
    if back != msg {
        return Err(std::io::Error::other("echo returned different bytes"));
    }
    Ok(())
}
