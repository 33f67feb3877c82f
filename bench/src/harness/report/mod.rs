//! Results: per-round figures, medians across rounds, ratios, and the run's metadata.

pub mod figures;
pub mod json;
pub mod table;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::chain::Setup;
use super::options::Plan;
use super::procfs;

/// One setup's figures from one round (missing key = not measured or failed; see notes).
#[derive(Debug, Clone, Default)]
pub struct Round {
    pub figures: BTreeMap<String, f64>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SetupReport {
    pub setup: Setup,
    pub rounds: Vec<Round>,
    /// Why the chain could not start (first failure), e.g. no `hopproxy run` yet.
    pub unavailable: Option<String>,
    pub median: BTreeMap<String, f64>,
}

impl SetupReport {
    pub fn new(setup: Setup) -> Self {
        SetupReport {
            setup,
            rounds: Vec::new(),
            unavailable: None,
            median: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Meta {
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub clk_tck: u64,
    pub rounds: u32,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub workers: usize,
    pub idle: usize,
    pub http_conns: usize,
    pub parallel: usize,
    pub quick: bool,
    pub squid_version: String,
    pub hopproxy: String,
    pub git_rev: String,
    pub unix_time: u64,
    pub wall_s: f64,
    /// 1-minute load average before and after the run: how busy the machine was besides us.
    pub loadavg: (f64, f64),
    /// Share of all CPUs used by processes other than this harness and its proxies during
    /// the run (0.0–1.0): the noise the figures suffered.
    pub others_cpu_share: f64,
    pub kept_dir: Option<PathBuf>,
}

pub struct Report {
    pub meta: Meta,
    pub setups: Vec<SetupReport>,
}

impl Report {
    pub fn median(&self, setup: Setup, key: &str) -> Option<f64> {
        self.setups.iter().find(|s| s.setup == setup)?.median.get(key).copied()
    }

    /// `a / b` of the medians, when both exist and `b` is not zero.
    pub fn ratio(&self, a: Setup, b: Setup, key: &str) -> Option<f64> {
        let (x, y) = (self.median(a, key)?, self.median(b, key)?);
        (y != 0.0).then(|| x / y)
    }
}

/// Per-figure median over the rounds that produced it.
pub fn median_of(rounds: &[Round]) -> BTreeMap<String, f64> {
    let mut all: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in rounds {
        for (k, v) in &r.figures {
            all.entry(k).or_default().push(*v);
        }
    }
    all.into_iter()
        .filter_map(|(k, mut v)| Some((k.to_string(), median(&mut v)?)))
        .collect()
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

impl Meta {
    pub fn collect(plan: &Plan, idle: usize, wall: Duration, kept_dir: Option<PathBuf>, before: &Before) -> Meta {
        let busy = procfs::machine_busy_ticks().saturating_sub(before.machine_busy);
        let own = procfs::own_ticks().saturating_sub(before.own);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let capacity = wall.as_secs_f64() * cores as f64 * procfs::clk_tck() as f64;
        let first_line = |prog: &std::path::Path, args: &[&str]| {
            std::process::Command::new(prog)
                .args(args)
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(|s| s.lines().next().map(str::to_owned))
                .unwrap_or_else(|| "unavailable".into())
        };
        Meta {
            cores,
            cpu_model: std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|s| {
                    s.lines().find_map(|l| {
                        l.strip_prefix("model name")?
                            .split(':')
                            .nth(1)
                            .map(|m| m.trim().to_owned())
                    })
                })
                .unwrap_or_default(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            clk_tck: procfs::clk_tck(),
            rounds: plan.rounds,
            duration_s: plan.duration.as_secs_f64(),
            warmup_s: plan.warmup.as_secs_f64(),
            workers: plan.workers,
            idle,
            http_conns: plan.http_conns,
            parallel: plan.parallel,
            quick: plan.quick,
            squid_version: first_line(&plan.squid, &["-v"]),
            hopproxy: format!(
                "{} ({})",
                plan.hopproxy.display(),
                first_line(&plan.hopproxy, &["--version"])
            ),
            git_rev: first_line(std::path::Path::new("git"), &["rev-parse", "--short", "HEAD"]),
            unix_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            wall_s: wall.as_secs_f64(),
            loadavg: (before.loadavg, loadavg()),
            others_cpu_share: if capacity > 0.0 {
                busy.saturating_sub(own) as f64 / capacity
            } else {
                0.0
            },
            kept_dir,
        }
    }
}

/// Machine counters read when the run starts.
pub struct Before {
    pub loadavg: f64,
    pub machine_busy: u64,
    pub own: u64,
}

impl Before {
    pub fn now() -> Before {
        Before {
            loadavg: loadavg(),
            machine_busy: procfs::machine_busy_ticks(),
            own: procfs::own_ticks(),
        }
    }
}

/// The 1-minute load average from /proc/loadavg (0 if unreadable).
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_skip_missing_rounds() {
        let mk = |v: &[(&str, f64)]| Round {
            figures: v.iter().map(|(k, x)| (k.to_string(), *x)).collect(),
            notes: vec![],
        };
        let m = median_of(&[
            mk(&[("a", 3.0), ("b", 1.0)]),
            mk(&[("a", 1.0)]),
            mk(&[("a", 2.0), ("b", 4.0)]),
        ]);
        assert_eq!(m["a"], 2.0);
        assert_eq!(m["b"], 2.5);
    }
}
