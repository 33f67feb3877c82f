//! `hopproxy agent` (work in progress).

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct AgentArgs {}

pub fn run_command(_args: AgentArgs) -> ExitCode {
    eprintln!("agent: not implemented yet");
    ExitCode::from(2)
}
