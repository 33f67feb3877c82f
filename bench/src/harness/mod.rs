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
    let outcome = rt.block_on(async move {
        match opts.sink_only {
            Some(secs) => until_signal(serve_sink_only(secs.min(3600))).await,
            None => until_signal(run(opts)).await.map(|_| ()),
        }
    });
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

/// Runs `work`, but gives up on SIGINT/SIGTERM: dropping the run future drops every chain
/// guard, which kills the proxy processes it started.
async fn until_signal<T>(work: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted (SIGINT); proxies stopped".into()),
        _ = term.recv() => Err("terminated (SIGTERM); proxies stopped".into()),
    }
}

/// Runs the whole benchmark, prints the table and writes the JSON file.
pub async fn run(opts: Options) -> Result<report::Report, String> {
    let plan = opts.plan()?;
    let report = runner::run(&plan).await?;
    let table = report::table::render(&report);
    println!("{table}");
    if let Some(path) = &plan.out {
        report::json::write(&report, path)?;
        // The printed table beside the JSON, for README and for diffs between runs.
        let txt = path.with_extension("txt");
        std::fs::write(&txt, table.trim_start()).map_err(|e| format!("{}: {e}", txt.display()))?;
        println!("wrote {} and {}", path.display(), txt.display());
    }
    Ok(report)
}

/// Serves the sink alone for `secs` seconds, so other load generators or a profiler can be
/// pointed at a proxy in front of it.
async fn serve_sink_only(secs: u64) -> Result<(), String> {
    let sink = sink::Sink::start(chain::SINK_IP.into())
        .await
        .map_err(|e| format!("sink: {e}"))?;
    println!(
        "sink for {secs} s: echo {} down {} up {} http {}",
        sink.echo, sink.down, sink.up, sink.http
    );
    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
    Ok(())
}
