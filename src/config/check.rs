//! `hopproxy check`: validate a config and print every problem as `FILE:LINE: severity: message`.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The squid.conf-style file to check.
    #[arg(short = 'c', long = "config", visible_short_alias = 'f')]
    pub config: PathBuf,
}

pub fn run_command(args: CheckArgs) -> ExitCode {
    eprintln!("check: not implemented yet ({})", args.config.display());
    ExitCode::from(2)
}
