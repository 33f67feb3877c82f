//! Command line only: the CLI lives in the library (`hopproxy::cli`), so man pages and
//! completions are generated from the same definition. Exit codes: 0 success, 1 a check
//! failed, 2 bad usage.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    hopproxy::cli::main()
}
