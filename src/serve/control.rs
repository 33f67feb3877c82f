//! `hopproxy reload`: validate the config first, then signal the running daemon (SIGHUP), so
//! an operator sees a bad config's errors in the terminal instead of in the daemon's log.

use std::path::PathBuf;
use std::process::ExitCode;

use rustix::process::{Pid, Signal, kill_process};

#[derive(clap::Args, Debug)]
pub struct ReloadArgs {
    /// The config to validate before signalling (and where to find `pid_filename`).
    #[arg(short = 'c', long = "config", visible_short_alias = 'f')]
    pub config: Option<PathBuf>,
    /// The daemon's pid file (default: the config's `pid_filename`).
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
}

pub fn run_command(args: ReloadArgs) -> ExitCode {
    let mut pid_file = args.pid_file;
    if let Some(path) = &args.config {
        match crate::config::load(path) {
            Ok(loaded) => {
                pid_file = pid_file.or(loaded.config.pid_filename);
            }
            Err(diagnostics) => {
                for d in &diagnostics {
                    eprintln!("{d}");
                }
                eprintln!(
                    "hopproxy reload: {} is not valid; the daemon was not signalled",
                    path.display()
                );
                return ExitCode::from(1);
            }
        }
    }
    let Some(pid_file) = pid_file else {
        eprintln!("hopproxy reload: give --pid-file, or -c with a config that sets pid_filename");
        return ExitCode::from(2);
    };
    let pid = match std::fs::read_to_string(&pid_file).map(|t| t.trim().parse::<i32>()) {
        Ok(Ok(pid)) => pid,
        Ok(Err(_)) => {
            eprintln!("hopproxy reload: {} does not hold a process id", pid_file.display());
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!(
                "hopproxy reload: cannot read {}: {e} (is hopproxy running?)",
                pid_file.display()
            );
            return ExitCode::from(1);
        }
    };
    match Pid::from_raw(pid).map(|p| kill_process(p, Signal::HUP)) {
        Some(Ok(())) => {
            eprintln!("hopproxy reload: sent SIGHUP to {pid}; see its stderr for the result");
            ExitCode::SUCCESS
        }
        Some(Err(e)) => {
            eprintln!("hopproxy reload: cannot signal process {pid}: {e}");
            ExitCode::from(1)
        }
        None => {
            eprintln!("hopproxy reload: invalid process id {pid} in {}", pid_file.display());
            ExitCode::from(1)
        }
    }
}
