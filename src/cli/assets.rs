//! `hopproxy generate-assets DIR` (hidden): man pages and shell completions generated from
//! the CLI itself, so they never drift from it. A subcommand rather than a build step or an
//! example: `packaging/build` runs the very binary it packages, and users of the portable
//! binary can make them too.

use std::path::Path;
use std::process::ExitCode;

use clap_complete::Shell;

pub fn write(dir: &Path) -> ExitCode {
    match write_all(dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hopproxy generate-assets: {}: {e}", dir.display());
            ExitCode::from(1)
        }
    }
}

fn write_all(dir: &Path) -> std::io::Result<()> {
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    let mut command = super::command();
    command.build();
    write_man(&man, &command, "hopproxy")?;
    for sub in command
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("hopproxy-{}", sub.get_name());
        write_man(&man, &sub.clone().name(name.clone()), &name)?;
    }
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command, "hopproxy", &completions)?;
    }
    Ok(())
}

fn write_man(dir: &Path, command: &clap::Command, name: &str) -> std::io::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    std::fs::write(dir.join(format!("{name}.1")), page)
}
