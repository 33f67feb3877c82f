//! `hopproxy check`: validate a config and print every problem as `FILE:LINE: severity: message`,
//! then a one-line summary. Exit 0 valid, 1 invalid, 2 unreadable.

mod squid_diff;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::known::{self, Class};
use crate::config::{Diagnostic, Loaded, Severity, load_with};

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The squid.conf-style file to check.
    #[arg(
        short = 'c',
        long = "config",
        visible_short_alias = 'f',
        required_unless_present = "list_directives"
    )]
    pub config: Option<PathBuf>,
    /// Validate the syntax only: do not read the files the config refers to (ACL value lists,
    /// password files), like `squid -k parse` in a CI pipeline without the deployment's files.
    #[arg(long)]
    pub syntax_only: bool,
    /// Also list every place where hopproxy will behave differently from Squid 5.7 with this
    /// config (ignored directives Squid would act on, deliberate differences that apply).
    #[arg(long)]
    pub squid_diff: bool,
    /// Print every Squid 5.7 directive with what hopproxy does with it, and exit.
    #[arg(long)]
    pub list_directives: bool,
    /// Also fail (exit 1) when the policy is an open door: any client reaching any host, or
    /// any client reaching ports other than 443 with CONNECT (the lint's warnings).
    #[arg(long)]
    pub strict: bool,
}

/// Everything `check` reports for a config that loaded: the loader's warnings and notes, the
/// effective-policy lint, and one note per ignored directive; errors, warnings, then notes.
pub fn report(loaded: &Loaded) -> Vec<Diagnostic> {
    report_and_open_doors(loaded).0
}

/// [`report`], and how many of its findings are open doors (what `--strict` refuses).
fn report_and_open_doors(loaded: &Loaded) -> (Vec<Diagnostic>, usize) {
    let lint = super::lint::lint(&loaded.config);
    let open_doors = lint.iter().filter(|d| super::lint::is_open_door(d)).count();
    let mut all = loaded.diagnostics.clone();
    all.extend(lint);
    all.extend(loaded.config.ignored.iter().map(|i| {
        // The class, when the line is a directive of the table (not an option or sub-setting).
        let class = match known::class_of(&i.directive) {
            Some(Class::Caching(_)) => " (only concerns caching)",
            Some(Class::Obsolete(_)) => " (obsolete: Squid ignores it too)",
            _ if i.squid_ignores => " (Squid ignores it too)",
            _ => "",
        };
        Diagnostic::note(&i.origin, format!("'{}' ignored{class}: {}", i.directive, i.reason))
    }));
    all.extend(
        loaded
            .config
            .delay_pools
            .pools
            .iter()
            .map(|pool| Diagnostic::note(&pool.origin, crate::shaping::describe(pool))),
    );
    all.sort_by_key(|d| d.severity);
    (all, open_doors)
}

pub fn run_command(args: CheckArgs) -> ExitCode {
    if args.list_directives {
        print!("{}", directive_table());
        return ExitCode::SUCCESS;
    }
    let Some(config) = args.config else {
        eprintln!("error: --config FILE is required");
        return ExitCode::from(2);
    };
    load_and(&config, args.syntax_only, |loaded| {
        let path = config.display();
        let (mut diagnostics, open_doors) = report_and_open_doors(loaded);
        if args.squid_diff {
            diagnostics.extend(squid_diff::differences(loaded));
        }
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
        if args.strict && open_doors > 0 {
            println!(
                "{path}: refused by --strict: {open_doors} open-proxy finding{} (see the warnings above)",
                if open_doors == 1 { "" } else { "s" }
            );
            return ExitCode::from(1);
        }
        ExitCode::SUCCESS
    })
}

/// Loads `path` and runs `then` on a valid config. An unreadable file exits 2; an invalid one
/// prints every diagnostic and a count, and exits 1 (shared by `check` and `explain`).
pub fn with_valid_config(path: &std::path::Path, then: impl FnOnce(&Loaded) -> ExitCode) -> ExitCode {
    load_and(path, false, then)
}

fn load_and(path: &std::path::Path, syntax_only: bool, then: impl FnOnce(&Loaded) -> ExitCode) -> ExitCode {
    let shown = path.display();
    match load_with(path, syntax_only) {
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

/// `check --list-directives`: every Squid 5.7 directive and old name, its class and what it
/// means in hopproxy, one per line, grouped by class.
pub fn directive_table() -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    type Wanted = fn(&Class) -> bool;
    let groups: [(&str, Wanted); 5] = [
        ("supported with Squid's semantics", |c| matches!(c, Class::Supported)),
        ("supported for Squid's default value only", |c| {
            matches!(c, Class::DefaultOnly { .. })
        }),
        ("accepted and ignored: only concerns caching", |c| {
            matches!(c, Class::Caching(_))
        }),
        ("accepted and ignored: Squid 5.7 ignores it too", |c| {
            matches!(c, Class::Obsolete(_))
        }),
        ("rejected, with what to use instead", |c| {
            matches!(c, Class::Rejected(_))
        }),
    ];
    for (title, wanted) in groups {
        let _ = writeln!(out, "# {title}");
        for (name, class) in known::DIRECTIVES.iter().filter(|(_, c)| wanted(c)) {
            let text = match class {
                Class::Supported => String::new(),
                Class::DefaultOnly { default, instead } => format!("only '{default}'; {instead}"),
                Class::Caching(t) | Class::Obsolete(t) | Class::Rejected(t) => t.to_string(),
            };
            let aliases: Vec<&str> = known::ALIASES
                .iter()
                .filter(|(_, new)| new == name)
                .map(|(old, _)| *old)
                .collect();
            let aka = if aliases.is_empty() {
                String::new()
            } else {
                format!(" (also {})", aliases.join(", "))
            };
            let _ = writeln!(out, "{name}{aka}\t{}\t{text}", class.label());
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Mangled configs (bytes dropped, duplicated, swapped) never panic the parser or the lint:
    /// a poor man's fuzz run until the cargo-fuzz target exists.
    #[test]
    fn mangled_configs_never_panic() {
        let seed =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-proxy1.conf"))
                .unwrap();
        let extra = "\nacl s src 10.0.0.0/8 [::1] 1.2.3.4-1.2.3.9 0/0\nacl p port 1-65535 0\nhttp_port [::]:3128\n\
            cache_peer [::1] parent 1 0 name=x login=a:b\ncache_peer_access x deny !s\nacl d dstdomain \"\"\n";
        let base: Vec<char> = format!("{seed}{extra}").chars().collect();
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..300 {
            let mut text = base.clone();
            for _ in 0..1 + next(8) {
                let at = next(text.len());
                match next(4) {
                    0 => {
                        text.remove(at);
                    }
                    1 => text.insert(at, text[next(text.len())]),
                    2 => text.insert(at, ['\\', '"', '#', '!', '-', '/', ':', '[', '\n', ' '][next(10)]),
                    _ => {
                        let other = next(text.len());
                        text.swap(at, other);
                    }
                }
            }
            let text: String = text.into_iter().collect();
            if let Ok(loaded) = crate::config::parse_str(&text, Path::new("t.conf")) {
                let _ = report(&loaded);
            }
        }
    }
}
