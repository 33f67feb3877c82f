//! Command line only: parse arguments, call the library, map results to exit codes
//! (0 success, 1 a check failed, 2 bad usage).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hopproxy",
    version,
    about = "A chaining forward proxy that speaks squid.conf"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy in the foreground.
    Run(hopproxy::serve::RunArgs),
    /// Re-read the config of a running proxy (validates first, then sends SIGHUP).
    Reload(hopproxy::serve::control::ReloadArgs),
    /// Validate a config without starting anything.
    Check(hopproxy::analysis::check::CheckArgs),
    /// Explain a config's effective policy: who may reach what, and through which hops.
    Explain(hopproxy::analysis::explain::command::ExplainArgs),
    /// Run the whole chain on this machine: endpoint, proxies and an agent-like client.
    Lab(hopproxy::lab::LabArgs),
    /// Connect like the monitoring agent does, from a Backend.cfg.
    Agent(hopproxy::agent::AgentArgs),
    /// Walk a proxy chain hop by hop and name the hop that fails.
    Trace(hopproxy::trace::TraceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => hopproxy::serve::run_command(args),
        Command::Reload(args) => hopproxy::serve::control::run_command(args),
        Command::Check(args) => hopproxy::analysis::check::run_command(args),
        Command::Explain(args) => hopproxy::analysis::explain::command::run_command(args),
        Command::Lab(args) => hopproxy::lab::run_command(args),
        Command::Agent(args) => hopproxy::agent::run_command(args),
        Command::Trace(args) => hopproxy::trace::run_command(args),
    }
}
