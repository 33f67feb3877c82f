//! `hopproxy explain`: a valid config's effective policy in plain words (or one JSON object
//! with `--json`). Exit 0; 1 invalid (diagnostics as `check` prints them); 2 unreadable.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::render::{explain, render};
use crate::analysis::check::with_valid_config;

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The squid.conf-style file to explain.
    #[arg(short = 'c', long = "config", visible_short_alias = 'f')]
    pub config: PathBuf,
    /// Print the same facts as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run_command(args: ExplainArgs) -> ExitCode {
    with_valid_config(&args.config, |loaded| {
        let e = explain(&loaded.config);
        let text = if args.json {
            serde_json::to_string_pretty(&e).expect("plain data serializes") + "\n"
        } else {
            render(&e)
        };
        // A closed pipe (`| head`) is the reader's choice, not a failure to report.
        let _ = std::io::stdout().write_all(text.as_bytes());
        ExitCode::SUCCESS
    })
}
