//! The agent's `com.instana.agent.main.sender.Backend.cfg`: where to send, with which key, via which proxy.

use std::path::{Path, PathBuf};

use super::properties;

/// The file name the agent reads (in `<agent>/etc/instana/`).
pub const BACKEND_CFG_NAME: &str = "com.instana.agent.main.sender.Backend.cfg";

/// A validated Backend.cfg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendCfg {
    pub path: PathBuf,
    pub host: String,
    pub port: u16,
    pub protocol: String,
    pub key: String,
    pub proxy: Option<ProxyCfg>,
    /// Things worth telling the operator that are not errors (inline comments dropped, unknown keys).
    pub notes: Vec<String>,
}

/// `proxy.*` settings; only `proxy.type=http` exists for the CONNECT path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyCfg {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    /// `proxy.dns`: the proxy resolves the target name (default). Off: resolve here, CONNECT to the IP.
    pub dns: bool,
}

/// A Backend.cfg that cannot be used, naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum BackendCfgError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: required key '{key}' is missing")]
    Missing { path: PathBuf, key: &'static str },
    #[error("{path}:{line}: key '{key}': {problem} (value '{value}')")]
    Malformed {
        path: PathBuf,
        line: usize,
        key: &'static str,
        value: String,
        problem: String,
    },
    #[error("{dir}: no {BACKEND_CFG_NAME} and no Backend-N.cfg in this directory")]
    NoneFound { dir: PathBuf },
}

const KNOWN_KEYS: &[&str] = &[
    "host",
    "port",
    "protocol",
    "key",
    "proxy.type",
    "proxy.host",
    "proxy.port",
    "proxy.user",
    "proxy.password",
    "proxy.dns",
];

impl BackendCfg {
    /// Reads and validates one file.
    pub fn load(path: &Path) -> Result<BackendCfg, BackendCfgError> {
        let text = std::fs::read_to_string(path).map_err(|source| BackendCfgError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        BackendCfg::parse(&text, path)
    }

    /// Validates properties text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<BackendCfg, BackendCfgError> {
        let entries = properties::parse(text);
        let mut notes = Vec::new();
        for e in &entries {
            if let Some(comment) = &e.dropped_comment {
                notes.push(format!(
                    "{}:{}: inline comment after '{}' ignored: {comment}",
                    path.display(),
                    e.line,
                    e.key
                ));
            }
            if !KNOWN_KEYS.contains(&e.key.as_str()) {
                notes.push(format!(
                    "{}:{}: unknown key '{}' ignored",
                    path.display(),
                    e.line,
                    e.key
                ));
            }
        }
        let get = |key: &str| {
            entries
                .iter()
                .rev()
                .find(|e| e.key == key)
                .filter(|e| !e.value.is_empty())
        };
        let malformed = |key: &'static str, e: &properties::Entry, problem: &str| BackendCfgError::Malformed {
            path: path.to_path_buf(),
            line: e.line,
            key,
            value: e.value.clone(),
            problem: problem.to_string(),
        };
        let required = |key: &'static str| {
            get(key).ok_or(BackendCfgError::Missing {
                path: path.to_path_buf(),
                key,
            })
        };
        let host_value = |key: &'static str, e: &properties::Entry| {
            if is_host(&e.value) {
                Ok(e.value.clone())
            } else {
                Err(malformed(
                    key,
                    e,
                    "not a host name or address (an unfilled placeholder?)",
                ))
            }
        };
        let port_value = |key: &'static str, e: &properties::Entry| match e.value.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(malformed(key, e, "not a port number 1-65535")),
        };

        let host = host_value("host", required("host")?)?;
        let port = port_value("port", required("port")?)?;
        let key = required("key")?;
        if key.value.contains(char::is_whitespace) || key.value.contains(['<', '>']) {
            return Err(malformed(
                "key",
                key,
                "contains blanks or <> (an unfilled placeholder?)",
            ));
        }
        let protocol = match get("protocol") {
            None => "HTTP/2".to_string(),
            Some(e) if e.value.eq_ignore_ascii_case("HTTP/2") => e.value.clone(),
            Some(e) => return Err(malformed("protocol", e, "only HTTP/2 is supported")),
        };

        let proxy = match get("proxy.host") {
            None => None,
            Some(h) => {
                if let Some(t) = get("proxy.type")
                    && !t.value.eq_ignore_ascii_case("http")
                {
                    return Err(malformed("proxy.type", t, "only 'http' (CONNECT) is supported"));
                }
                let dns = match get("proxy.dns") {
                    None => true,
                    Some(e) => match e.value.to_ascii_lowercase().as_str() {
                        "true" | "yes" | "1" => true,
                        "false" | "no" | "0" => false,
                        _ => return Err(malformed("proxy.dns", e, "expected true or false")),
                    },
                };
                Some(ProxyCfg {
                    host: host_value("proxy.host", h)?,
                    port: port_value("proxy.port", required("proxy.port")?)?,
                    user: get("proxy.user").map(|e| e.value.clone()),
                    password: get("proxy.password").map(|e| e.value.clone()),
                    dns,
                })
            }
        };
        Ok(BackendCfg {
            path: path.to_path_buf(),
            host,
            port,
            protocol,
            key: key.value.clone(),
            proxy,
            notes,
        })
    }
}

/// A DNS name, IPv4 or IPv6 literal (brackets allowed); rejects placeholders like `< instana-endpoint >`.
fn is_host(s: &str) -> bool {
    let bare = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !bare.is_empty()
        && bare.len() <= 253
        && bare
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
}

/// The Backend files the agent would use from `dir`: a plain `…Backend.cfg` wins; otherwise
/// every `…Backend-N.cfg`, by N.
pub fn select_backend_files(dir: &Path) -> Result<Vec<PathBuf>, BackendCfgError> {
    let read = std::fs::read_dir(dir).map_err(|source| BackendCfgError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut plain = None;
    let mut numbered = Vec::new();
    for entry in read.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let stem = name.strip_prefix("com.instana.agent.main.sender.").unwrap_or(&name);
        if stem == "Backend.cfg" {
            plain = Some(entry.path());
        } else if let Some(n) = stem.strip_prefix("Backend-").and_then(|r| r.strip_suffix(".cfg"))
            && let Ok(n) = n.parse::<u32>()
        {
            numbered.push((n, entry.path()));
        }
    }
    if let Some(p) = plain {
        return Ok(vec![p]);
    }
    if numbered.is_empty() {
        return Err(BackendCfgError::NoneFound { dir: dir.to_path_buf() });
    }
    numbered.sort();
    Ok(numbered.into_iter().map(|(_, p)| p).collect())
}

/// Renders a Backend.cfg like the example in the original how-to (used by the lab; see tests/fixtures/backend).
pub fn render(host: &str, port: u16, key: &str, proxy_host: &str, proxy_port: u16) -> String {
    format!(
        "# Written by hopproxy lab: the agent's {BACKEND_CFG_NAME}\n\
         host={host}\n\
         port={port}\n\
         protocol=HTTP/2\n\
         key={key}\n\
         proxy.type=http\n\
         proxy.host={proxy_host}\n\
         proxy.port={proxy_port}\n"
    )
}
