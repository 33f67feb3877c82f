//! Reading config text and the files it includes into one flat list of directive lines.
//!
//! `include PATH…` is expanded in place with globs (Debian's stock file has
//! `include /etc/squid/conf.d/*.conf`); matches are read in sorted order. A relative path is
//! resolved against the directory of the file that includes it. (Squid resolves it against
//! its working directory, which depends on how it was started; ours gives the same answer
//! from any directory.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diag::Diagnostic;
use super::lexer::{self, Line};
use crate::policy::Origin;

/// Squid refuses includes nested deeper than 16 levels; so do we.
const MAX_DEPTH: usize = 16;

pub struct Reader {
    /// Canonical paths of the files being read, outermost first: an include loop shows up
    /// as a path already on this stack.
    stack: Vec<PathBuf>,
    pub lines: Vec<Line>,
    pub diags: Vec<Diagnostic>,
}

/// Why a file could not be read.
#[derive(Debug)]
pub struct ReadError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// Reads a file as text; bytes that are not UTF-8 (a Latin-1 comment) are replaced, not fatal.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|error| ReadError {
            path: path.to_path_buf(),
            error,
        })
}

/// Resolves a path written in a config file relative to that file's directory.
pub fn resolve(written: &str, from: &Path) -> PathBuf {
    let path = Path::new(written);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match from.parent() {
        Some(dir) => dir.join(path),
        None => path.to_path_buf(),
    }
}

impl Reader {
    pub fn new() -> Reader {
        Reader {
            stack: Vec::new(),
            lines: Vec::new(),
            diags: Vec::new(),
        }
    }

    /// Lexes `text` as the contents of `label`, expanding its includes.
    pub fn add_text(&mut self, text: &str, label: &Path) {
        let canonical = std::fs::canonicalize(label).unwrap_or_else(|_| label.to_path_buf());
        self.stack.push(canonical);
        let file: Arc<Path> = Arc::from(label);
        for line in lexer::lex(text, &file, &mut self.diags) {
            if line.name() == "include" {
                self.include(&line);
            } else {
                self.lines.push(line);
            }
        }
        self.stack.pop();
    }

    fn include(&mut self, line: &Line) {
        if line.args().is_empty() {
            self.diags.push(Diagnostic::error(
                &line.origin,
                "include needs a file name or glob pattern",
            ));
            return;
        }
        for arg in line.args() {
            let pattern = resolve(&arg.text, &line.origin.file);
            let is_glob = arg.text.contains(['*', '?', '[']);
            let files = if is_glob {
                match glob::glob(&pattern.to_string_lossy()) {
                    Ok(paths) => {
                        let mut files: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
                        files.sort();
                        if files.is_empty() {
                            // Squid 5.7: "FATAL: Unable to find configuration file".
                            self.diags.push(
                                Diagnostic::error(
                                    &line.origin,
                                    format!("include pattern '{}' matches no file", pattern.display()),
                                )
                                .with_hint("create a file it matches (it may be empty) or remove the include, as Squid stops here too"),
                            );
                        }
                        files
                    }
                    Err(e) => {
                        self.diags.push(Diagnostic::error(
                            &line.origin,
                            format!("bad include pattern '{}': {e}", arg.text),
                        ));
                        continue;
                    }
                }
            } else {
                vec![pattern]
            };
            for file in files {
                self.include_file(&file, &line.origin);
            }
        }
    }

    fn include_file(&mut self, path: &Path, from: &Origin) {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if self.stack.contains(&canonical) {
            let chain: Vec<String> = self
                .stack
                .iter()
                .skip_while(|p| **p != canonical)
                .chain(std::iter::once(&canonical))
                .map(|p| p.display().to_string())
                .collect();
            self.diags.push(
                Diagnostic::error(from, format!("include loop: {}", chain.join(" -> ")))
                    .with_hint("remove the include that leads back to a file being read"),
            );
            return;
        }
        if self.stack.len() >= MAX_DEPTH {
            self.diags.push(Diagnostic::error(
                from,
                format!("includes nested deeper than {MAX_DEPTH} levels at '{}'", path.display()),
            ));
            return;
        }
        match read_text(path) {
            Ok(text) => self.add_text(&text, path),
            Err(e) => self.diags.push(Diagnostic::error(
                from,
                format!("cannot read included file '{}': {}", e.path.display(), e.error),
            )),
        }
    }
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}
