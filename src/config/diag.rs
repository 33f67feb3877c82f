//! Diagnostics: every problem found in a config, with the file and line it comes from.

use std::fmt;

use crate::policy::Origin;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// One finding. Displayed as `FILE:LINE: severity: message`, then `    hint: …` on the next
/// line when there is a hint, so editors and `grep` can jump to the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub origin: Origin,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(origin: &Origin, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Error, origin, message)
    }

    pub fn warning(origin: &Origin, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Warning, origin, message)
    }

    pub fn note(origin: &Origin, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Note, origin, message)
    }

    fn new(severity: Severity, origin: &Origin, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity,
            origin: origin.clone(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint only when there is one (e.g. an optional did-you-mean).
    pub fn with_opt_hint(mut self, hint: Option<String>) -> Diagnostic {
        self.hint = hint;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.severity, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n    hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}
