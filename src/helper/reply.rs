//! One helper reply line, as Squid 5 reads it: `[channel-ID] RESULT [key=value …]`, where
//! RESULT is `OK`, `ERR` or `BH` and a value may be a `"quoted string"` with `\` escapes.
//! Helpers written for Squid 2.5 answer `OK`/`ERR` followed by free text; that text becomes
//! the reply's message.

/// The helper's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `OK`: credentials valid, ACL matches.
    Ok,
    /// `ERR`: credentials wrong, ACL does not match.
    Err,
    /// `BH` ("broken helper"): the helper could not decide (its back end is down…).
    BrokenHelper,
}

/// A parsed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub verdict: Verdict,
    /// `key=value` pairs in the order given (`message`, `user`, `tag`, `log`, …).
    pub pairs: Vec<(String, String)>,
    /// Words that were not `key=value` (a 2.5-style helper's free text).
    pub text: String,
}

impl Reply {
    /// The value of the first `key=` pair.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `message=`, or the free text of an old-style helper.
    pub fn message(&self) -> Option<&str> {
        self.get("message")
            .or((!self.text.is_empty()).then_some(self.text.as_str()))
    }
}

/// Splits off a leading channel ID (concurrent helpers): `Some((id, rest))` when the line
/// starts with digits followed by a space or the end.
pub fn split_channel(line: &str) -> Option<(u64, &str)> {
    let (first, rest) = line.split_once(' ').unwrap_or((line, ""));
    let id = first.parse().ok()?;
    Some((id, rest))
}

/// Parses the reply after any channel ID. Anything but `OK`, `ERR` or `BH` first is a
/// broken-helper answer, as Squid treats an unknown result.
pub fn parse(line: &str) -> Reply {
    let line = line.trim_end_matches(['\r', '\n']);
    let (first, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
    let verdict = match first {
        "OK" => Verdict::Ok,
        "ERR" => Verdict::Err,
        _ => Verdict::BrokenHelper,
    };
    let mut reply = Reply {
        verdict,
        pairs: Vec::new(),
        text: String::new(),
    };
    if first != "OK" && first != "ERR" && first != "BH" {
        reply.text = line.to_string();
        return reply;
    }
    let mut words = Vec::new();
    for word in words_of(rest) {
        match word.split_once('=') {
            Some((key, value))
                if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                reply.pairs.push((key.to_string(), unquote(value)));
            }
            _ => words.push(word),
        }
    }
    reply.text = words.join(" ");
    reply
}

/// Splits on blanks, keeping a `"…"` value (which may hold blanks) inside its word.
fn words_of(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ' ' | '\t' if !quoted => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Percent-encodes everything but unreserved characters, as Squid's `rfc1738_escape` does
/// for the words it sends (helpers unescape every `%XX`, so escaping more is harmless).
pub fn escape(value: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~@:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_and_pairs() {
        let reply = parse("ERR message=\"bad \\\"pw\\\"\" user=bob");
        assert_eq!(reply.verdict, Verdict::Err);
        assert_eq!(reply.message(), Some("bad \"pw\""));
        assert_eq!(reply.get("user"), Some("bob"));
        assert_eq!(parse("OK").verdict, Verdict::Ok);
        assert_eq!(parse("BH message=down").verdict, Verdict::BrokenHelper);
        let old = parse("ERR No such user");
        assert_eq!(old.message(), Some("No such user"));
        assert_eq!(parse("garbage").verdict, Verdict::BrokenHelper);
    }

    #[test]
    fn channels_and_escaping() {
        assert_eq!(split_channel("7 OK user=a"), Some((7, "OK user=a")));
        assert_eq!(split_channel("OK"), None);
        assert_eq!(escape("a b%c\n"), "a%20b%25c%0A");
    }
}
