//! Command-line options and the resolved plan the runner follows.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::chain::Setup;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "bench",
    about = "hopproxy beside Squid: tunnels, bulk, idle memory, plain HTTP"
)]
pub struct Options {
    /// Smoke run of about a minute: one round, short tests.
    #[arg(long)]
    pub quick: bool,
    /// Rounds; every round runs every setup once, interleaved, and the table shows medians.
    #[arg(long)]
    pub rounds: Option<u32>,
    /// Seconds each timed test runs (set-up rate, each bulk test, plain HTTP).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Concurrent workers of the tunnel set-up test.
    #[arg(long, default_value_t = 64)]
    pub workers: usize,
    /// Idle tunnels held open for the memory figure.
    #[arg(long, default_value_t = 1000)]
    pub idle: usize,
    /// Keep-alive connections of the plain-HTTP test.
    #[arg(long, default_value_t = 8)]
    pub http_conns: usize,
    /// Parallel tunnels of the multi-tunnel bulk tests.
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// Setups to run, comma-separated: direct,hop1,hop2,hop1tls,hop2tls,squid1,squid2 (default: all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Setup>,
    /// The JSON result file; `-` writes none. Default: bench/results/latest.json
    /// (bench/results/quick.json with --quick, so a smoke run never replaces a real one).
    #[arg(long)]
    pub out: Option<String>,
    /// The hopproxy binary (default: `hopproxy` next to this harness's target directory).
    #[arg(long)]
    pub hopproxy: Option<PathBuf>,
    /// The squid binary.
    #[arg(long, default_value = "squid")]
    pub squid: PathBuf,
    /// Only serve the sink for this many seconds and print its ports (for wrk, perf, manual tests).
    #[arg(long, value_name = "SECONDS")]
    pub sink_only: Option<u64>,
    /// Keep the proxies' run directories (configs, access and cache logs) and print where.
    #[arg(long)]
    pub keep_dirs: bool,
    /// Put every client of the client-facing proxy (hopproxy and Squid alike) into one
    /// class 1 delay pool of this many bytes per second (bucket of the same size): the
    /// bulk figures then show the shaped rate each proxy holds.
    #[arg(long, value_name = "BYTES_PER_SECOND")]
    pub delay_pool: Option<u64>,
}

/// What to run, with every default resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    pub setups: Vec<Setup>,
    pub rounds: u32,
    pub duration: Duration,
    pub warmup: Duration,
    pub workers: usize,
    pub idle: usize,
    pub http_conns: usize,
    pub parallel: usize,
    pub out: Option<PathBuf>,
    pub hopproxy: PathBuf,
    pub squid: PathBuf,
    pub keep_dirs: bool,
    pub quick: bool,
    pub delay_pool: Option<u64>,
}

impl Options {
    pub fn plan(&self) -> Result<Plan, String> {
        let rounds = self.rounds.unwrap_or(if self.quick { 1 } else { 5 });
        let secs = self.duration.unwrap_or(if self.quick { 0.5 } else { 1.5 });
        if rounds == 0 || rounds > 50 {
            return Err(format!("--rounds {rounds}: expected 1..=50"));
        }
        if !(0.1..=60.0).contains(&secs) {
            return Err(format!("--duration {secs}: expected 0.1..=60 seconds"));
        }
        if self.workers == 0 || self.workers > 4096 || self.http_conns == 0 || self.parallel == 0 {
            return Err("--workers, --http-conns and --parallel must be positive (workers ≤ 4096)".into());
        }
        if self.idle > 20_000 {
            return Err("--idle: at most 20000".into());
        }
        let setups = if self.only.is_empty() {
            Setup::ALL.to_vec()
        } else {
            dedup(&self.only)
        };
        let hopproxy = match &self.hopproxy {
            Some(p) => p.clone(),
            None => default_hopproxy(),
        };
        Ok(Plan {
            setups,
            rounds,
            duration: Duration::from_secs_f64(secs),
            warmup: Duration::from_secs_f64((secs / 5.0).min(0.3)),
            workers: self.workers,
            idle: self.idle,
            http_conns: self.http_conns,
            parallel: self.parallel,
            out: match self.out.as_deref() {
                Some("-") => None,
                Some(p) => Some(PathBuf::from(p)),
                None if self.quick => Some(PathBuf::from("bench/results/quick.json")),
                None => Some(PathBuf::from("bench/results/latest.json")),
            },
            hopproxy,
            squid: self.squid.clone(),
            keep_dirs: self.keep_dirs,
            quick: self.quick,
            delay_pool: self.delay_pool,
        })
    }
}

fn dedup(setups: &[Setup]) -> Vec<Setup> {
    // Keep the canonical column order whatever order the user typed.
    Setup::ALL.iter().copied().filter(|s| setups.contains(s)).collect()
}

/// `target/<profile>/hopproxy` when the harness runs as `target/<profile>/examples/bench`.
fn default_hopproxy() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|dir| dir.join("hopproxy")))
        .unwrap_or_else(|| PathBuf::from("target/release/hopproxy"))
}
