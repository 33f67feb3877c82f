//! htpasswd files as Squid's `basic_ncsa_auth` reads them, and the hash schemes in them.
//!
//! `basic_ncsa_auth` (Squid 5.7) reads `user:hash` lines: lines starting with `#`, a space, a
//! tab or nothing are skipped; the hash ends at the next `:` (anything after it is ignored);
//! the *last* line for a user wins. hopproxy reads the same way, and also reports every line
//! it cannot use (with its number), which the helper drops silently: `check` turns those into
//! errors so a typo in the user file is found before clients are refused.
//!
//! Schemes: bcrypt (`$2y$`, `$2a$`, `$2b$`), SHA-256/512-crypt (`$5$`, `$6$`), Apache apr1
//! (`$apr1$`) and MD5-crypt (`$1$`). Not supported, with a message saying so: classic DES
//! crypt (8-character passwords, brute-forced in hours; no maintained crate), `{SHA}`
//! (unsalted SHA-1), plain MD5 hex and plain text.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use sha_crypt::PasswordVerifier;

use super::md5crypt::Md5Crypt;

/// One user's stored hash, validated when the file is read so that a bad line is reported
/// once, at load, rather than as a failed login.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    Bcrypt(String),
    ShaCrypt(String),
    Md5Crypt(Md5Crypt),
}

impl fmt::Debug for PasswordHash {
    // Hashes stay out of debug output (logs, panics).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash({})", self.scheme())
    }
}

impl PasswordHash {
    /// Recognises the scheme from the hash's prefix and checks its shape.
    pub fn parse(text: &str) -> Result<PasswordHash, String> {
        if text.starts_with("$2") {
            return parse_bcrypt(text).map(|()| PasswordHash::Bcrypt(text.to_string()));
        }
        if text.starts_with("$5$") || text.starts_with("$6$") {
            return parse_sha_crypt(text).map(|()| PasswordHash::ShaCrypt(text.to_string()));
        }
        if text.starts_with("$apr1$") || text.starts_with("$1$") {
            return Md5Crypt::parse(text).map(PasswordHash::Md5Crypt);
        }
        Err(unsupported_scheme(text))
    }

    pub fn scheme(&self) -> &'static str {
        match self {
            PasswordHash::Bcrypt(_) => "bcrypt",
            PasswordHash::ShaCrypt(text) if text.starts_with("$5$") => "sha256-crypt",
            PasswordHash::ShaCrypt(_) => "sha512-crypt",
            PasswordHash::Md5Crypt(_) => "md5-crypt",
        }
    }

    /// Recomputes the hash for `password` and compares in constant time (inside the bcrypt
    /// and sha-crypt crates; [`Md5Crypt::verify`] for the MD5 schemes). CPU-heavy by design:
    /// bcrypt at cost 10 takes tens of milliseconds; call it off the async runtime.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Bcrypt(text) => bcrypt::verify(password, text).unwrap_or(false),
            PasswordHash::ShaCrypt(text) => sha_crypt::ShaCrypt::default()
                .verify_password(password, text.as_str())
                .is_ok(),
            PasswordHash::Md5Crypt(parsed) => parsed.verify(password),
        }
    }
}

fn is_crypt64(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
}

/// `$2y$CC$` + 22 characters of salt + 31 of hash.
fn parse_bcrypt(text: &str) -> Result<(), String> {
    let parts: Vec<&str> = text.split('$').collect();
    let ["", variant, cost, rest] = parts.as_slice() else {
        return Err("bcrypt hash must look like $2y$10$<53 characters>".into());
    };
    if !["2a", "2b", "2y", "2x"].contains(variant) {
        return Err(format!(
            "unknown bcrypt variant '${variant}$' (expected $2y$, $2a$ or $2b$)"
        ));
    }
    match cost.parse::<u32>() {
        Ok(4..=31) if cost.len() == 2 => {}
        _ => return Err(format!("bcrypt cost '{cost}' must be two digits from 04 to 31")),
    }
    if rest.len() != 53 || !is_crypt64(rest) {
        return Err("bcrypt salt and hash must be 53 characters of [./0-9A-Za-z]".into());
    }
    Ok(())
}

/// `$5$[rounds=N$]salt$hash` (43 characters of hash) or `$6$…` (86).
fn parse_sha_crypt(text: &str) -> Result<(), String> {
    let (id, rest) = text[1..].split_at(1);
    let rest = &rest[1..];
    let mut fields: Vec<&str> = rest.split('$').collect();
    if let Some(rounds) = fields.first().and_then(|f| f.strip_prefix("rounds=")) {
        // glibc clamps out-of-range rounds; the sha-crypt crate refuses them, so say it here.
        match rounds.parse::<u32>() {
            Ok(1000..=999_999_999) => {}
            _ => return Err(format!("${id}$ rounds={rounds}: must be 1000 to 999999999")),
        }
        fields.remove(0);
    }
    let [salt, hash] = fields.as_slice() else {
        return Err(format!("${id}$ hash must look like ${id}$[rounds=N$]SALT$HASH"));
    };
    if salt.is_empty() || salt.len() > 16 {
        return Err(format!("${id}$ salt must be 1-16 characters"));
    }
    let expected = if id == "5" { 43 } else { 86 };
    if hash.len() != expected || !is_crypt64(hash) {
        return Err(format!("${id}$ hash must be {expected} characters of [./0-9A-Za-z]"));
    }
    Ok(())
}

fn unsupported_scheme(text: &str) -> String {
    let what = if text.starts_with("{SHA}") {
        "'{SHA}' (unsalted SHA-1) hashes are not supported"
    } else if text.len() == 13 && is_crypt64(text) {
        "classic DES crypt hashes are not supported (they only use the first 8 characters of a password)"
    } else if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        "plain MD5 hex hashes are not supported"
    } else if text.starts_with('$') {
        "unknown hash scheme"
    } else {
        "not a recognised password hash (plain-text passwords are not supported)"
    };
    format!("{what}; re-create the entry with 'htpasswd -B FILE USER' (bcrypt) or 'htpasswd -5' (SHA-512)")
}

/// A line of the file hopproxy could not use (it is skipped, as `basic_ncsa_auth` would).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    pub path: PathBuf,
    pub line: u32,
    pub message: String,
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

/// The users of one htpasswd file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Htpasswd {
    users: HashMap<String, PasswordHash>,
}

impl Htpasswd {
    /// Parses file text; `path` only labels the problems.
    pub fn parse(text: &str, path: &Path) -> (Htpasswd, Vec<LineProblem>) {
        let mut users = HashMap::new();
        let mut first_line: HashMap<String, u32> = HashMap::new();
        let mut problems = Vec::new();
        for (index, raw) in text.split('\n').enumerate() {
            let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.is_empty() || raw.starts_with(['#', ' ', '\t']) {
                continue;
            }
            let mut problem = |message: String| {
                problems.push(LineProblem {
                    path: path.to_path_buf(),
                    line,
                    message,
                })
            };
            let Some((user, rest)) = raw.split_once(':') else {
                problem("no ':' between user name and password hash".into());
                continue;
            };
            if user.is_empty() {
                problem("empty user name".into());
                continue;
            }
            let hash = rest.split(':').next().unwrap_or_default();
            if hash.is_empty() {
                problem(format!("user '{user}' has no password hash"));
                continue;
            }
            match PasswordHash::parse(hash) {
                Ok(parsed) => {
                    if let Some(first) = first_line.get(user) {
                        problem(format!(
                            "user '{user}' is already defined on line {first}; this later line wins"
                        ));
                    }
                    first_line.entry(user.to_string()).or_insert(line);
                    users.insert(user.to_string(), parsed);
                }
                Err(message) => problem(format!("user '{user}': {message}")),
            }
        }
        (Htpasswd { users }, problems)
    }

    /// Reads and parses the file. Non-UTF-8 bytes are replaced (user names are compared as
    /// text; hashes are ASCII).
    pub fn load(path: &Path) -> std::io::Result<(Htpasswd, Vec<LineProblem>)> {
        let bytes = std::fs::read(path)?;
        Ok(Htpasswd::parse(&String::from_utf8_lossy(&bytes), path))
    }

    pub fn get(&self, user: &str) -> Option<&PasswordHash> {
        self.users.get(user)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// User names, in no particular order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let ok = [
            "$2y$05$6/CUMco44O.XQYA/zbNULOmOIS5hJJFgJtk.vCKMsWZx.U2lEQtHu",
            "$5$o8MiZQyH/lUPpSG4$8NFvNBAt2D8/zJ78QEz6a1Of/d/6jCHLb2r07Q4cnq2",
            "$apr1$abcdefgh$kBAT1yakViYmAyABaJLaS.",
        ];
        for text in ok {
            assert!(PasswordHash::parse(text).is_ok(), "{text}");
        }
        let bad = [
            ("$2y$05$short", "53 characters"),
            (
                "$2q$05$6/CUMco44O.XQYA/zbNULOmOIS5hJJFgJtk.vCKMsWZx.U2lEQtHu",
                "variant",
            ),
            ("$2y$99$6/CUMco44O.XQYA/zbNULOmOIS5hJJFgJtk.vCKMsWZx.U2lEQtHu", "cost"),
            (
                "$5$rounds=10$salt$8NFvNBAt2D8/zJ78QEz6a1Of/d/6jCHLb2r07Q4cnq2",
                "rounds",
            ),
            ("$6$salt$tooshort", "86 characters"),
            ("zfSrCZcAX.dVA", "DES"),
            ("{SHA}Ew4NwzKppuigh9sC6p9Bh0wux2Y=", "SHA-1"),
            ("5f4dcc3b5aa765d61d8327deb882cf99", "plain MD5"),
            ("secret", "plain-text"),
            ("$9$x$y", "unknown hash scheme"),
        ];
        for (text, expected) in bad {
            let message = PasswordHash::parse(text).unwrap_err();
            assert!(message.contains(expected), "{text}: {message}");
        }
    }

    #[test]
    fn debug_hides_the_hash() {
        let hash = PasswordHash::parse("$apr1$abcdefgh$kBAT1yakViYmAyABaJLaS.").unwrap();
        assert_eq!(format!("{hash:?}"), "PasswordHash(md5-crypt)");
    }
}
