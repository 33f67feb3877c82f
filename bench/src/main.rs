//! Benchmark harness: hopproxy beside Squid, one and two hops, in one run (bench/README.md).
#![forbid(unsafe_code)]

mod harness;

fn main() -> std::process::ExitCode {
    harness::main()
}
