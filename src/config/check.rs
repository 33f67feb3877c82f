//! `hopproxy check`: validate a config and print every problem as `FILE:LINE: severity: message`,
//! then a one-line summary. Exit 0 valid, 1 invalid, 2 unreadable.

use std::path::PathBuf;
use std::process::ExitCode;

use super::diag::{Diagnostic, Severity};
use super::{Loaded, load_or_unreadable};

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The squid.conf-style file to check.
    #[arg(short = 'c', long = "config", visible_short_alias = 'f')]
    pub config: PathBuf,
}

/// Everything `check` reports for a config that loaded: the loader's warnings and notes, the
/// effective-policy lint, and one note per ignored directive; errors, warnings, then notes.
pub fn report(loaded: &Loaded) -> Vec<Diagnostic> {
    let mut all = loaded.diagnostics.clone();
    all.extend(crate::policy::lint::lint(&loaded.config));
    all.extend(
        loaded
            .config
            .ignored
            .iter()
            .map(|i| Diagnostic::note(&i.origin, format!("'{}' ignored: {}", i.directive, i.reason))),
    );
    all.sort_by_key(|d| d.severity);
    all
}

pub fn run_command(args: CheckArgs) -> ExitCode {
    with_valid_config(&args.config, |loaded| {
        let path = args.config.display();
        let diagnostics = report(loaded);
        for d in &diagnostics {
            println!("{d}");
        }
        let warnings = diagnostics.iter().filter(|d| d.severity == Severity::Warning).count();
        let ignored = loaded.config.ignored.len();
        println!(
            "{path}: OK ({warnings} warning{}, {ignored} directive{} ignored)",
            if warnings == 1 { "" } else { "s" },
            if ignored == 1 { "" } else { "s" }
        );
        ExitCode::SUCCESS
    })
}

/// Loads `path` and runs `then` on a valid config. An unreadable file exits 2; an invalid one
/// prints every diagnostic and a count, and exits 1 (shared by `check` and `explain`).
pub fn with_valid_config(path: &std::path::Path, then: impl FnOnce(&super::Loaded) -> ExitCode) -> ExitCode {
    let shown = path.display();
    match load_or_unreadable(path) {
        Err(unreadable) => {
            eprintln!("{shown}: error: {unreadable}");
            ExitCode::from(2)
        }
        Ok(Err(diagnostics)) => {
            for d in &diagnostics {
                println!("{d}");
            }
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            println!("{shown}: {errors} error{}", if errors == 1 { "" } else { "s" });
            ExitCode::from(1)
        }
        Ok(Ok(loaded)) => then(&loaded),
    }
}
