//! `hopproxy trace` (work in progress).

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct TraceArgs {}

pub fn run_command(_args: TraceArgs) -> ExitCode {
    eprintln!("trace: not implemented yet");
    ExitCode::from(2)
}
