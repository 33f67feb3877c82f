//! The command line: subcommands, and a Squid-compatible front (`-k ACTION -f FILE`, `-N`,
//! `-v`) so init scripts and habits written for Squid keep working.

mod assets;
mod squid_front;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

pub use squid_front::{SquidAction, SquidFront};

#[derive(Parser)]
#[command(
    name = "hopproxy",
    version,
    disable_version_flag = true,
    args_conflicts_with_subcommands = true,
    about = "A chaining forward proxy that speaks squid.conf",
    after_help = "Squid's habits work too: 'hopproxy -k reconfigure -f /etc/hopproxy/squid.conf', \
                  'hopproxy -N -f FILE' (runs the proxy; hopproxy always stays in the foreground)."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    squid: SquidFront,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy in the foreground.
    Run(crate::serve::RunArgs),
    /// Re-read the config of a running proxy (validates first, then sends SIGHUP).
    Reload(crate::serve::control::ControlArgs),
    /// Make a running proxy reopen its access logs (SIGUSR1), after logrotate moved them.
    Rotate(crate::serve::control::ControlArgs),
    /// Stop a running proxy gracefully (SIGTERM): open tunnels get up to shutdown_lifetime.
    Stop(crate::serve::control::ControlArgs),
    /// Validate a config without starting anything.
    Check(crate::analysis::check::CheckArgs),
    /// Explain a config's effective policy: who may reach what, and through which hops.
    Explain(crate::analysis::explain::command::ExplainArgs),
    /// Run the whole chain on this machine: endpoint, proxies and an agent-like client.
    Lab(crate::lab::LabArgs),
    /// Connect like the monitoring agent does, from a Backend.cfg.
    Agent(crate::agent::AgentArgs),
    /// Walk a proxy chain hop by hop and name the hop that fails.
    Trace(crate::trace::TraceArgs),
    /// Write man pages and shell completions generated from this CLI into DIR (for packagers).
    #[command(hide = true)]
    GenerateAssets {
        /// Receives man/*.1 and completions/{hopproxy.bash,_hopproxy,hopproxy.fish}.
        dir: PathBuf,
    },
}

/// The clap description of the whole CLI (for man pages and completions).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Parses `std::env::args` and runs the command; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    use crate::serve::control::{Action, signal_daemon};
    match cli.command {
        Some(Command::Run(args)) => crate::serve::run_command(args),
        Some(Command::Reload(args)) => signal_daemon(Action::Reload, &args),
        Some(Command::Rotate(args)) => signal_daemon(Action::Rotate, &args),
        Some(Command::Stop(args)) => signal_daemon(Action::Stop, &args),
        Some(Command::Check(args)) => crate::analysis::check::run_command(args),
        Some(Command::Explain(args)) => crate::analysis::explain::command::run_command(args),
        Some(Command::Lab(args)) => crate::lab::run_command(args),
        Some(Command::Agent(args)) => crate::agent::run_command(args),
        Some(Command::Trace(args)) => crate::trace::run_command(args),
        Some(Command::GenerateAssets { dir }) => assets::write(&dir),
        None if cli.squid.is_empty() => {
            let _ = command().print_help();
            ExitCode::from(2)
        }
        None => cli.squid.run(),
    }
}
