//! Ingress: listeners, accept loop, limits, request heads, CONNECT and plain HTTP.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The squid.conf-style config file.
    #[arg(short = 'c', long = "config", visible_short_alias = 'f')]
    pub config: PathBuf,
}

pub fn run_command(args: RunArgs) -> ExitCode {
    eprintln!("run: not implemented yet ({})", args.config.display());
    ExitCode::from(2)
}
