//! The squid.conf dialect: text → directives with file and line → validated [`Config`].
//!
//! Pipeline: [`source`] reads files and expands `include` → [`lexer`] gives tokenized lines
//! with their origin → [`directives`] applies them with Squid's semantics, collecting every
//! problem → a [`Config`] or the list of errors.

pub mod acl_parse;
pub mod diag;
pub mod directives;
pub mod helper_opts;
pub mod known;
pub mod lexer;
pub mod model;
pub mod source;
pub mod suggest;
pub mod units;

use std::path::Path;

pub use diag::{Diagnostic, Severity};
pub use model::*;

/// A config that passed validation, with its warnings and notes.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub diagnostics: Vec<Diagnostic>,
}

/// Why a config file could not be loaded at all (as opposed to being invalid).
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct Unreadable {
    pub path: std::path::PathBuf,
    pub source: std::io::Error,
}

/// Reads and validates a config file and everything it includes. `Err` holds every
/// diagnostic (errors first) when there is at least one error, including when the file
/// itself cannot be read.
pub fn load(path: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    match source::read_text(path) {
        Ok(text) => parse_str(&text, path),
        Err(e) => Err(vec![unreadable_diagnostic(path, &e.error)]),
    }
}

/// Like [`load`], but also tells "cannot read the file" apart (for `check`'s exit code 2).
pub fn load_or_unreadable(path: &Path) -> Result<Result<Loaded, Vec<Diagnostic>>, Unreadable> {
    match source::read_text(path) {
        Ok(text) => Ok(parse_str(&text, path)),
        Err(e) => Err(Unreadable {
            path: e.path,
            source: e.error,
        }),
    }
}

fn unreadable_diagnostic(path: &Path, error: &std::io::Error) -> Diagnostic {
    let origin = crate::policy::Origin {
        file: std::sync::Arc::from(path),
        line: 0,
    };
    Diagnostic::error(&origin, format!("cannot read config file: {error}"))
}

/// Parses config text as if it were the contents of `file_label`. `include` and quoted ACL
/// value files are still read from disk, relative to `file_label`'s directory.
pub fn parse_str(text: &str, file_label: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    parse_str_with(text, file_label, false)
}

/// Like [`load_or_unreadable`]; with `syntax_only`, the files the config refers to (ACL value
/// lists, password files) are not read (`check --syntax-only`, like `squid -k parse` in CI).
pub fn load_with(path: &Path, syntax_only: bool) -> Result<Result<Loaded, Vec<Diagnostic>>, Unreadable> {
    match source::read_text(path) {
        Ok(text) => Ok(parse_str_with(&text, path, syntax_only)),
        Err(e) => Err(Unreadable {
            path: e.path,
            source: e.error,
        }),
    }
}

/// [`parse_str`], optionally without reading referenced files.
pub fn parse_str_with(text: &str, file_label: &Path, syntax_only: bool) -> Result<Loaded, Vec<Diagnostic>> {
    let mut reader = source::Reader::new();
    reader.add_text(text, file_label);
    let builder = directives::Builder::new(file_label.to_path_buf()).syntax_only(syntax_only);
    let (config, more) = builder.build(&reader.lines);
    let mut diagnostics = reader.diags;
    diagnostics.extend(more);
    // Errors, then warnings, then notes; within each, by file and line.
    diagnostics
        .sort_by(|a, b| (a.severity, &a.origin.file, a.origin.line).cmp(&(b.severity, &b.origin.file, b.origin.line)));
    if diagnostics.iter().any(Diagnostic::is_error) {
        Err(diagnostics)
    } else {
        Ok(Loaded { config, diagnostics })
    }
}

#[cfg(test)]
mod tests;
