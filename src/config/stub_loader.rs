//! Temporary stand-in until the real parser lands (replaced at merge).
use std::path::Path;

use super::Config;

pub struct Loaded {
    pub config: Config,
    pub diagnostics: Vec<String>,
}

pub fn load(path: &Path) -> Result<Loaded, Vec<String>> {
    Err(vec![format!("{}: parser not merged yet", path.display())])
}
