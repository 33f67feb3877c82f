//! The daemon's own diagnostics (not the access log): always on stderr (the journal under
//! systemd), and also in the `cache_log` file when the config names one, as Squid writes its
//! cache.log. The level is `HOPPROXY_LOG` when set, else what `debug_options ALL,N` asks for,
//! else `info`. Both are read at start; SIGUSR1 reopens the file after logrotate moved it.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Config;

/// The `cache_log` file of this process, once opened.
static CACHE_LOG: OnceLock<Arc<CacheLog>> = OnceLock::new();

/// Sets up diagnostics for `config`. Fails only when `cache_log` cannot be opened.
pub fn init(config: &Config) -> std::io::Result<()> {
    let level = std::env::var("HOPPROXY_LOG")
        .ok()
        .unwrap_or_else(|| config.diagnostics_level().unwrap_or("info").to_string());
    // The DNS client's own debug lines would drown ours; `HOPPROXY_LOG=…,hickory_proto=debug`
    // still turns them on, since a later directive for the same target wins.
    let filter = tracing_subscriber::EnvFilter::try_new(format!("hickory_proto=warn,hickory_resolver=warn,{level}"))
        .unwrap_or_else(|_| "info".into());
    let cache_log = match &config.cache_log {
        Some(path) => Some(
            CacheLog::open(path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot open cache_log {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let file_layer = cache_log.as_ref().map(|log| {
        tracing_subscriber::fmt::layer()
            .with_writer(Arc::clone(log))
            .with_ansi(false)
            .with_target(false)
    });
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(stderr_layer)
        .with(file_layer)
        .try_init();
    if let Some(log) = cache_log {
        let _ = CACHE_LOG.set(log);
    }
    Ok(())
}

/// SIGUSR1: reopen `cache_log` at its path (a new file after logrotate moved the old one).
pub fn reopen() {
    if let Some(log) = CACHE_LOG.get()
        && let Err(e) = log.reopen()
    {
        tracing::error!(
            "cannot reopen cache_log {}: {e}; still writing the old file",
            log.path.display()
        );
    }
}

/// The `cache_log` path in use, if any (a reload cannot move it).
pub fn cache_log_path() -> Option<&'static Path> {
    CACHE_LOG.get().map(|log| log.path.as_path())
}

pub struct CacheLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl CacheLog {
    fn open(path: &Path) -> std::io::Result<Arc<CacheLog>> {
        Ok(Arc::new(CacheLog {
            path: path.to_path_buf(),
            file: Mutex::new(append(path)?),
        }))
    }

    fn reopen(&self) -> std::io::Result<()> {
        let fresh = append(&self.path)?;
        *self.lock() = fresh;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, File> {
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// tracing formats a diagnostic line whole and writes it with one `write_all`; a file opened
/// for appending takes it in one write, so lines from different threads do not interleave.
impl Write for &CacheLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lock().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.lock().flush()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn level(text: &str) -> Option<&'static str> {
        let config = crate::config::parse_str(&format!("http_port 3128\n{text}\n"), Path::new("t.conf"))
            .map_err(|d| format!("{d:?}"))
            .expect("valid")
            .config;
        config.diagnostics_level()
    }

    #[test]
    fn debug_options_all_sets_the_level() {
        assert_eq!(level(""), None);
        assert_eq!(level("debug_options ALL,0"), Some("error"));
        assert_eq!(level("debug_options ALL,1 33,2"), Some("info"));
        assert_eq!(level("debug_options ALL,3"), Some("debug"));
        assert_eq!(level("debug_options rotate=1 ALL,9"), Some("trace"));
        assert_eq!(level("debug_options 28,9"), None);
        assert!(crate::config::parse_str("http_port 1\ndebug_options ALL\n", Path::new("t.conf")).is_err());
    }
}
