//! `hopproxy reload`, `rotate`, `stop`: find the running daemon and signal it. `reload`
//! validates the config first, so an operator sees a bad config's errors in the terminal
//! instead of in the daemon's log.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rustix::process::{Pid, Signal, kill_process, test_kill_process};

use crate::config::PidFilename;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ControlArgs {
    /// The daemon's config: validated before a reload, and where `pid_filename` is read.
    #[arg(short = 'c', long = "config", visible_short_alias = 'f')]
    pub config: Option<PathBuf>,
    /// The daemon's pid file (default: the config's `pid_filename`, else /run/hopproxy.pid).
    #[arg(long = "pid-file", conflicts_with = "pid")]
    pub pid_file: Option<PathBuf>,
    /// The daemon's process id (e.g. systemd's $MAINPID); no pid file is read.
    #[arg(long = "pid")]
    pub pid: Option<i32>,
}

/// What a control command asks of the running daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// SIGHUP: re-read the config (validated here first).
    Reload,
    /// SIGUSR1: reopen the access logs.
    Rotate,
    /// SIGTERM: stop accepting, let open tunnels finish for up to `shutdown_lifetime`.
    Stop,
    /// SIGINT: handled like SIGTERM (Squid's `-k interrupt`).
    Interrupt,
    /// No signal: is the daemon running? (Squid's `-k check`.)
    Check,
}

impl Action {
    fn command(self) -> &'static str {
        match self {
            Action::Reload => "reload",
            Action::Rotate => "rotate",
            Action::Stop => "stop",
            Action::Interrupt => "interrupt",
            Action::Check => "check",
        }
    }

    fn signal(self) -> Option<(Signal, &'static str)> {
        match self {
            Action::Reload => Some((Signal::HUP, "SIGHUP")),
            Action::Rotate => Some((Signal::USR1, "SIGUSR1")),
            Action::Stop => Some((Signal::TERM, "SIGTERM")),
            Action::Interrupt => Some((Signal::INT, "SIGINT")),
            Action::Check => None,
        }
    }

    fn outcome(self) -> &'static str {
        match self {
            Action::Reload => "see its stderr or log for the result",
            Action::Rotate => "it reopens its access logs",
            Action::Stop | Action::Interrupt => {
                "it stops accepting and lets open tunnels finish (up to shutdown_lifetime)"
            }
            Action::Check => "",
        }
    }
}

pub fn run_command(args: ControlArgs) -> ExitCode {
    signal_daemon(Action::Reload, &args)
}

/// Finds the daemon (by `--pid`, `--pid-file`, the config's `pid_filename` or the default
/// pid file) and sends the action's signal. Exit codes: 0 done, 1 invalid config or no
/// daemon, 2 no way to find the daemon.
pub fn signal_daemon(action: Action, args: &ControlArgs) -> ExitCode {
    let name = action.command();
    let pid = match args.pid {
        Some(pid) => pid,
        None => {
            let pid_file = match pid_file(action, args) {
                Ok(path) => path,
                Err(code) => return code,
            };
            match read_pid(&pid_file).and_then(|pid| is_hopproxy(pid, &pid_file).map(|()| pid)) {
                Ok(pid) => pid,
                Err(message) => {
                    eprintln!("hopproxy {name}: {message}");
                    return ExitCode::from(1);
                }
            }
        }
    };
    let Some(process) = Pid::from_raw(pid) else {
        eprintln!("hopproxy {name}: invalid process id {pid}");
        return ExitCode::from(1);
    };
    let Some((signal, signal_name)) = action.signal() else {
        return match test_kill_process(process) {
            Ok(()) => {
                eprintln!("hopproxy check: process {pid} is running");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hopproxy check: process {pid} is not running ({e})");
                ExitCode::from(1)
            }
        };
    };
    match kill_process(process, signal) {
        Ok(()) => {
            eprintln!("hopproxy {name}: sent {signal_name} to {pid}; {}", action.outcome());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hopproxy {name}: cannot signal process {pid}: {e} (is hopproxy running?)");
            ExitCode::from(1)
        }
    }
}

/// The pid file to read. A reload refuses an invalid config; the other actions only need
/// `pid_filename` from it, so they fall back to the default file when it cannot be read.
fn pid_file(action: Action, args: &ControlArgs) -> Result<PathBuf, ExitCode> {
    let name = action.command();
    let mut from_config = PidFilename::Default;
    if let Some(path) = &args.config {
        match crate::config::load(path) {
            Ok(loaded) => from_config = loaded.config.pid_filename,
            Err(diagnostics) => {
                for d in &diagnostics {
                    eprintln!("{d}");
                }
                if action == Action::Reload {
                    eprintln!(
                        "hopproxy reload: {} is not valid; the daemon was not signalled",
                        path.display()
                    );
                    return Err(ExitCode::from(1));
                }
                if args.pid_file.is_none() {
                    eprintln!(
                        "hopproxy {name}: {} is not valid; looking for the daemon in the default pid file",
                        path.display()
                    );
                }
            }
        }
    }
    if let Some(path) = &args.pid_file {
        return Ok(path.clone());
    }
    from_config.path().ok_or_else(|| {
        eprintln!("hopproxy {name}: the config says 'pid_filename none'; give --pid-file or --pid");
        ExitCode::from(2)
    })
}

fn read_pid(pid_file: &Path) -> Result<i32, String> {
    match std::fs::read_to_string(pid_file) {
        Ok(text) => text
            .trim()
            .parse::<i32>()
            .map_err(|_| format!("{} does not hold a process id", pid_file.display())),
        Err(e) => Err(format!(
            "cannot read {}: {e} (is hopproxy running?)",
            pid_file.display()
        )),
    }
}

/// A pid file left behind by a killed daemon may name an unrelated process by now; signal
/// only a process whose name says hopproxy (the kernel keeps 15 bytes of it).
fn is_hopproxy(pid: i32, pid_file: &Path) -> Result<(), String> {
    let Ok(name) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
        return Err(format!(
            "process {pid} from {} is not running (is hopproxy running?)",
            pid_file.display()
        ));
    };
    if name.trim_end().starts_with("hopproxy") {
        Ok(())
    } else {
        Err(format!(
            "process {pid} from {} is '{}', not hopproxy: a stale pid file? nothing was signalled",
            pid_file.display(),
            name.trim_end()
        ))
    }
}
