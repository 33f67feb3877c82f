//! `hopproxy lab` (work in progress).

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct LabArgs {}

pub fn run_command(_args: LabArgs) -> ExitCode {
    eprintln!("lab: not implemented yet");
    ExitCode::from(2)
}
