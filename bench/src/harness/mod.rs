//! The harness as a library, so `tests/bench_smoke.rs` can run its quick path in-process.
//!
//! Flow: options → sink endpoint → for each round, for each setup: start the chain, run every
//! test with the proxies' CPU time read around it, stop the chain → medians → table + JSON.

pub mod chain;
pub mod client;
pub mod load;
pub mod options;
pub mod procfs;
pub mod report;
pub mod runner;
pub mod sink;

use std::process::ExitCode;

use clap::Parser;

pub use options::Options;

/// Entry point of the `bench` example: parse arguments, run, map the outcome to an exit code.
pub fn main() -> ExitCode {
    let opts = Options::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot build the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(run_until_signal(opts));
    // Sink tasks and stray client tasks die with the runtime; proxies were stopped by their guards.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark, but gives up on SIGINT/SIGTERM: dropping the run future drops every
/// chain guard, which kills the proxy processes it started.
pub async fn run_until_signal(opts: Options) -> Result<report::Report, String> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    tokio::select! {
        r = run(opts) => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted (SIGINT); proxies stopped".into()),
        _ = term.recv() => Err("terminated (SIGTERM); proxies stopped".into()),
    }
}

/// Runs the whole benchmark, prints the table and writes the JSON file.
pub async fn run(opts: Options) -> Result<report::Report, String> {
    let plan = opts.plan()?;
    let report = runner::run(&plan).await?;
    println!("{}", report::table::render(&report));
    if let Some(path) = &plan.out {
        report::json::write(&report, path)?;
        println!("wrote {}", path.display());
    }
    Ok(report)
}
