//! Cheap CI check of the benchmark harness (bench/README.md): its quick path against the sink
//! alone, then briefly through a two-hop hopproxy chain with TLS legs, in well under 30 s. The
//! full benchmark is not part of CI.

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

/// The TLS setup end to end: certificates made, https_port and `cache_peer … tls` with mTLS
/// configured, the harness's clients speaking TLS to the first hop. Tiny counts keep it cheap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_two_hop_tls_run_moves_bytes_through_tls_legs() {
    let args = [
        "bench",
        "--quick",
        "--only",
        "hop2tls",
        "--duration",
        "0.2",
        "--workers",
        "4",
        "--idle",
        "16",
        "--parallel",
        "2",
        "--http-conns",
        "2",
        "--hopproxy",
        env!("CARGO_BIN_EXE_hopproxy"),
        "--out",
        "-",
    ];
    let report = harness::run(harness::Options::parse_from(args))
        .await
        .expect("bench run");
    let tls = &report.setups[0];
    assert_eq!(
        tls.rounds.len(),
        1,
        "the TLS chain did not start: {:?}",
        tls.unavailable
    );
    for key in [
        "setup_per_s",
        "bulk_up_1_mib_s",
        "bulk_down_1_mib_s",
        "bulk_echo_1_mib_s",
        "http_req_s",
    ] {
        let v = tls.median.get(key).copied().unwrap_or(0.0);
        assert!(v > 0.0, "{key} = {v}; notes: {:?}", tls.rounds[0].notes);
    }
    assert_eq!(
        tls.median.get("idle_opened").copied(),
        Some(16.0),
        "notes: {:?}",
        tls.rounds[0].notes
    );
}
