//! Effective-policy lint for `check`.

use crate::config::{Config, Diagnostic};

pub fn lint(_config: &Config) -> Vec<Diagnostic> {
    Vec::new()
}
