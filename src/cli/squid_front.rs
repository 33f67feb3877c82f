//! Squid's command-line habits: `-k parse|check|reconfigure|rotate|shutdown|interrupt`,
//! `-f FILE`, `-N`, mapped onto hopproxy's own commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::serve::control::{Action, ControlArgs, signal_daemon};

/// Where the packages install the config; Squid's `-f` default is its own squid.conf.
pub const DEFAULT_CONFIG: &str = "/etc/hopproxy/squid.conf";

#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = "Squid-compatible options")]
pub struct SquidFront {
    /// Act on the running proxy as Squid's -k does (parse: validate the config only).
    #[arg(short = 'k', value_enum, value_name = "ACTION")]
    pub action: Option<SquidAction>,
    /// The config file [default: /etc/hopproxy/squid.conf].
    #[arg(short = 'f', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Stay in the foreground (accepted for Squid's scripts: hopproxy never daemonizes).
    #[arg(short = 'N')]
    pub no_daemon: bool,
    /// Print the version.
    #[arg(short = 'v', short_alias = 'V', long = "version", action = clap::ArgAction::Version)]
    pub version: Option<bool>,
}

/// Squid's `-k` actions.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SquidAction {
    /// Validate the config (exit 1 with FILE:LINE errors when invalid).
    Parse,
    /// Is the proxy of this config running?
    Check,
    /// Validate the config, then make the running proxy re-read it (hopproxy reload).
    Reconfigure,
    /// Reopen the access logs (hopproxy rotate).
    Rotate,
    /// Stop gracefully (hopproxy stop).
    Shutdown,
    /// Stop gracefully, as on Ctrl-C.
    Interrupt,
}

impl SquidFront {
    /// True when none of Squid's options was given.
    pub fn is_empty(&self) -> bool {
        self.action.is_none() && self.config.is_none() && !self.no_daemon
    }

    pub fn run(self) -> ExitCode {
        let config = self.config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        let control = ControlArgs {
            config: Some(config.clone()),
            ..ControlArgs::default()
        };
        match self.action {
            None => crate::serve::run_command(crate::serve::RunArgs { config }),
            Some(SquidAction::Parse) => parse(&config),
            Some(SquidAction::Check) => signal_daemon(Action::Check, &control),
            Some(SquidAction::Reconfigure) => signal_daemon(Action::Reload, &control),
            Some(SquidAction::Rotate) => signal_daemon(Action::Rotate, &control),
            Some(SquidAction::Shutdown) => signal_daemon(Action::Stop, &control),
            Some(SquidAction::Interrupt) => signal_daemon(Action::Interrupt, &control),
        }
    }
}

/// `-k parse`: every diagnostic on stderr; 0 when the config is valid, 1 when not.
fn parse(path: &Path) -> ExitCode {
    match crate::config::load(path) {
        Ok(loaded) => {
            for d in &loaded.diagnostics {
                eprintln!("{d}");
            }
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            eprintln!("hopproxy -k parse: {} is not valid", path.display());
            ExitCode::from(1)
        }
    }
}
