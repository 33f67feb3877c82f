//! Cheap CI check of the benchmark harness (bench/README.md): its quick path against the sink
//! alone, no proxies, in well under 30 s. The full benchmark is not part of CI.

// The harness is the `bench` example's module tree; mounted here so the test runs it in-process.
#[allow(dead_code, unused_imports)]
#[path = "../bench/src/harness/mod.rs"]
mod harness;

use clap::Parser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_direct_run_produces_every_timed_figure() {
    let args = [
        "bench",
        "--quick",
        "--only",
        "direct",
        "--duration",
        "0.2",
        "--workers",
        "8",
        "--out",
        "-",
    ];
    let report = harness::run(harness::Options::parse_from(args))
        .await
        .expect("bench run");
    let direct = &report.setups[0];
    assert_eq!(direct.rounds.len(), 1, "direct must always be available");
    for key in [
        "setup_per_s",
        "setup_p99_ms",
        "bulk_up_1_mib_s",
        "bulk_down_1_mib_s",
        "bulk_echo_1_mib_s",
        "http_req_s",
    ] {
        let v = direct.median.get(key).copied().unwrap_or(0.0);
        assert!(v > 0.0, "{key} = {v}; notes: {:?}", direct.rounds[0].notes);
    }
    // Transient errors (e.g. ports short while other tests run) are notes, not failures.
    if !direct.rounds[0].notes.is_empty() {
        eprintln!("notes: {:?}", direct.rounds[0].notes);
    }
}
