//! What helper directives share: `children N startup= idle= concurrency= queue-size=` (and
//! `external_acl_type`'s `children-max=`… spelling), and the check that a helper program can
//! be run at all.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::lexer::Token;
use crate::helper::HelperSpec;

/// Squid 5's defaults: 20 children for `auth_param basic`, none started ahead, one idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelperChildren {
    pub max: usize,
    pub startup: usize,
    pub idle: usize,
    pub concurrency: usize,
    /// `None`: twice `max`, as Squid.
    pub queue_size: Option<usize>,
}

impl Default for HelperChildren {
    fn default() -> HelperChildren {
        HelperChildren {
            max: 20,
            startup: 0,
            idle: 1,
            concurrency: 0,
            queue_size: None,
        }
    }
}

impl HelperChildren {
    pub fn spec(&self, name: String, program: PathBuf, args: Vec<String>) -> HelperSpec {
        HelperSpec {
            startup: self.startup.min(self.max),
            idle: self.idle.min(self.max),
            concurrency: self.concurrency,
            queue_size: self.queue_size.unwrap_or(2 * self.max).max(1),
            ..HelperSpec::new(name, program, args, self.max)
        }
    }

    /// Applies one `key=value` option; `Ok(false)` when the key is not a children option.
    /// `children-max` is `external_acl_type`'s spelling of the count.
    pub fn option(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{key}={value}: expected a whole number"))
        };
        match key {
            "children-max" => self.max = number()?,
            "startup" | "children-startup" => self.startup = number()?,
            "idle" | "children-idle" => self.idle = number()?,
            "concurrency" => self.concurrency = number()?,
            "queue-size" => self.queue_size = Some(number()?),
            // Squid's answer to a persistently full queue; hopproxy refuses at once (503).
            "on-persistent-overload" if matches!(value, "die" | "ERR") => {}
            "on-persistent-overload" => return Err(format!("{key}={value}: expected 'die' or 'ERR'")),
            _ => return Ok(false),
        }
        if self.max == 0 {
            return Err("at least one child is needed".into());
        }
        Ok(true)
    }
}

/// `children N [startup=N] [idle=N] [concurrency=N] [queue-size=N]`.
pub fn parse_children(values: &[Token]) -> Result<HelperChildren, String> {
    let mut children = HelperChildren::default();
    let Some((count, options)) = values.split_first() else {
        return Err("needs the number of children".into());
    };
    children.max = count
        .text
        .parse()
        .map_err(|_| format!("'{}' is not a number of children", count.text))?;
    if children.max == 0 {
        return Err("at least one child is needed".into());
    }
    for option in options {
        let Some((key, value)) = option.text.split_once('=') else {
            return Err(format!(
                "'{}': expected startup=, idle=, concurrency= or queue-size=",
                option.text
            ));
        };
        if key == "children-max" || !children.option(key, value)? {
            return Err(format!("unknown option '{key}'"));
        }
    }
    Ok(children)
}

/// Why `program` cannot be run, if it cannot.
pub fn runnable(program: &Path) -> Result<(), String> {
    if !program.is_absolute() {
        return Err("the helper must be given with its full path".into());
    }
    let meta = std::fs::metadata(program).map_err(|e| format!("cannot run it: {e}"))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err("cannot run it: not an executable file".into());
    }
    Ok(())
}
