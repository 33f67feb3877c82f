//! Rounds × setups, interleaved: every round starts each setup's chain fresh, runs every test
//! with the chain's CPU time read around it, and stops the chain before the next setup.

use std::time::{Duration, Instant};

use super::chain::{self, Chain, Env};
use super::load::{bulk, http, idle, setups};
use super::options::Plan;
use super::procfs;
use super::report::{Meta, Report, Round, SetupReport, median_of};
use super::sink::Sink;

/// Pause between tests so one test's closing connections do not land in the next one's CPU.
const SETTLE: Duration = Duration::from_millis(150);

pub async fn run(plan: &Plan) -> Result<Report, String> {
    let started = Instant::now();
    let before = super::report::Before::now();
    let sink = Sink::start(chain::SINK_IP.into())
        .await
        .map_err(|e| format!("sink: {e}"))?;
    let base = tempfile::Builder::new()
        .prefix("hopbench-")
        .tempdir()
        .map_err(|e| format!("run directory: {e}"))?;
    chain::make_shared_dir(base.path())?;
    let env = Env {
        hopproxy: plan.hopproxy.clone(),
        squid: plan.squid.clone(),
        base: base.path().to_path_buf(),
        delay_pool: plan.delay_pool,
    };
    let idle = sized_idle(plan);

    let mut reports: Vec<SetupReport> = plan.setups.iter().map(|&s| SetupReport::new(s)).collect();
    for round in 1..=plan.rounds {
        for rep in reports.iter_mut() {
            let setup = rep.setup;
            eprintln!("round {round}/{}: {}", plan.rounds, setup.label());
            let tag = format!("r{round}-{}", setup.key());
            match Chain::start(setup, &env, &tag).await {
                Ok(chain) => {
                    if !chain.pids().is_empty() {
                        // For `perf record -p` and friends while the tests run.
                        let pids: Vec<String> = chain.pids().iter().map(u32::to_string).collect();
                        eprintln!("  pids {}", pids.join(","));
                    }
                    let r = measure(&chain, &sink, plan, idle).await;
                    chain.stop().await;
                    for n in &r.notes {
                        eprintln!("  note: {n}");
                    }
                    rep.rounds.push(r);
                }
                Err(e) => {
                    eprintln!("  n/a: {e}");
                    rep.unavailable.get_or_insert(e);
                }
            }
        }
    }
    for rep in reports.iter_mut() {
        rep.median = median_of(&rep.rounds);
    }
    let kept = if plan.keep_dirs {
        let p = base.keep();
        eprintln!("run directories kept in {}", p.display());
        Some(p)
    } else {
        None
    };
    Ok(Report {
        meta: Meta::collect(plan, idle, started.elapsed(), kept, &before),
        setups: reports,
    })
}

/// 1,000 idle tunnels need about 2,000 descriptors here (client and sink ends): shrink the
/// count rather than fail when the limit is lower.
fn sized_idle(plan: &Plan) -> usize {
    let limit = procfs::nofile_limit().unwrap_or(1024) as usize;
    let fit = limit.saturating_sub(256) / 2;
    if fit < plan.idle {
        eprintln!("open-file limit {limit}: idle test uses {fit} tunnels (raise with `ulimit -n`)");
    }
    plan.idle.min(fit)
}

/// Runs every test against one chain. A failing test becomes a note; the others still run.
async fn measure(chain: &Chain, sink: &Sink, plan: &Plan, idle_count: usize) -> Round {
    let route = chain.route();
    let proxied = !chain.pids().is_empty();
    let mut r = Round::default();
    let cpu_s = |t0: u64, t1: u64| {
        let ticks = t1.saturating_sub(t0);
        (proxied && ticks > 0).then(|| ticks as f64 / procfs::clk_tck() as f64)
    };

    let t0 = chain.cpu_ticks();
    match setups::run(&route, sink.echo, plan.workers, plan.warmup, plan.duration).await {
        Ok(s) => {
            let cpu = cpu_s(t0, chain.cpu_ticks());
            r.put("setup_per_s", Some(s.per_sec));
            r.put("setup_count", Some(s.count as f64));
            r.put("setup_p50_ms", s.p50_ms);
            r.put("setup_p99_ms", s.p99_ms);
            r.put("setups_per_cpu_s", cpu.map(|c| s.total as f64 / c));
            r.put("setup_cpu_us", cpu.map(|c| c * 1e6 / s.total.max(1) as f64));
            if s.errors > 0 {
                r.note(format!(
                    "set-up: {} errors, first: {}",
                    s.errors,
                    s.first_error.unwrap_or_default()
                ));
            }
        }
        Err(e) => r.note(format!("set-up: {e}")),
    }
    tokio::time::sleep(SETTLE).await;

    if proxied && idle_count > 0 {
        match idle::run(&route, sink.echo, idle_count, &chain.pids()).await {
            Ok(i) => {
                r.put("rss_base_mib", Some(i.rss_before_kib as f64 / 1024.0));
                r.put("rss_idle_mib", Some(i.rss_after_kib as f64 / 1024.0));
                r.put("idle_opened", Some(i.opened as f64));
                r.put("idle_kib_per_tunnel", i.kib_per_tunnel);
                for (hop, kib) in i.kib_per_tunnel_by_hop.iter().enumerate() {
                    r.put_owned(format!("idle_kib_per_tunnel_hop{}", hop + 1), Some(*kib));
                }
                if i.errors > 0 {
                    let first = i.first_error.unwrap_or_default();
                    r.note(format!("idle: {} of {idle_count} failed, first: {first}", i.errors));
                }
            }
            Err(e) => r.note(format!("idle: {e}")),
        }
        tokio::time::sleep(SETTLE).await;
    }

    let bulk_tests = [
        (bulk::Direction::Down, 1, "bulk_down_1"),
        (bulk::Direction::Up, 1, "bulk_up_1"),
        (bulk::Direction::Echo, 1, "bulk_echo_1"),
        (bulk::Direction::Down, plan.parallel, "bulk_down_n"),
        (bulk::Direction::Up, plan.parallel, "bulk_up_n"),
        (bulk::Direction::Echo, plan.parallel, "bulk_echo_n"),
    ];
    for (dir, tunnels, key) in bulk_tests {
        let t0 = chain.cpu_ticks();
        match bulk::run(&route, sink, dir, tunnels, plan.duration).await {
            Ok(b) => {
                let cpu = cpu_s(t0, chain.cpu_ticks());
                r.put_owned(format!("{key}_mib_s"), Some(b.mib_per_sec));
                r.put_owned(
                    format!("{key}_mib_per_cpu_s"),
                    cpu.map(|c| b.bytes as f64 / (1024.0 * 1024.0) / c),
                );
            }
            Err(e) => r.note(e),
        }
        tokio::time::sleep(SETTLE).await;
    }

    let t0 = chain.cpu_ticks();
    match http::run(&route, sink.http, plan.http_conns, plan.warmup, plan.duration).await {
        Ok(h) => {
            let cpu = cpu_s(t0, chain.cpu_ticks());
            r.put("http_req_s", Some(h.per_sec));
            r.put("http_requests", Some(h.requests as f64));
            r.put("http_cpu_us_per_req", cpu.map(|c| c * 1e6 / h.total.max(1) as f64));
            r.put("http_req_per_cpu_s", cpu.map(|c| h.total as f64 / c));
            if h.errors > 0 || h.reconnects > 0 {
                let first = h.first_error.unwrap_or_default();
                r.note(format!(
                    "plain HTTP: {} errors, {} reconnects, first: {first}",
                    h.errors, h.reconnects
                ));
            }
        }
        Err(e) => r.note(format!("plain HTTP: {e}")),
    }
    r
}

impl Round {
    fn put(&mut self, key: &str, v: Option<f64>) {
        self.put_owned(key.to_string(), v);
    }

    fn put_owned(&mut self, key: String, v: Option<f64>) {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            self.figures.insert(key, v);
        }
    }

    fn note(&mut self, n: String) {
        self.notes.push(n);
    }
}
