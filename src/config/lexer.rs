//! squid.conf lexing: physical lines → logical directive lines → tokens.
//!
//! Squid's rules, reproduced (5.7 `parseOneConfigFile` and `ConfigParser::TokenParse`):
//! * leading whitespace is dropped; a line that then starts with `#` is a comment; blank lines
//!   are skipped (also in the middle of a `\` continuation);
//! * a line ending in `\` continues on the next line; the next line's leading whitespace is
//!   dropped and the pieces are glued without a separator (so `a\` + ` b` is `ab`);
//! * tokens are separated by spaces or tabs; a token that *starts* with `#` ends the line
//!   (`http_port 8080 # comment`), but `443#x` stays one token, as in Squid;
//! * `"…"` is one token (with `\"` and `\\` escapes); in an `acl` line it names a file of values.
//!
//! A directive's origin is the line it *starts* on (Squid reports the line it ends on; for a
//! continued line the first is where an operator looks).

use std::path::Path;
use std::sync::Arc;

use super::diag::Diagnostic;
use crate::policy::Origin;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    /// Written as `"…"`: in `acl` values this means "read the values from this file".
    pub quoted: bool,
}

/// One directive: its tokens (the first is the directive name) and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub origin: Origin,
    pub tokens: Vec<Token>,
    /// The text after the directive name, untokenized: for directives such as `logformat`
    /// that Squid takes verbatim (inline `#` text included).
    pub rest: String,
}

impl Line {
    pub fn name(&self) -> &str {
        &self.tokens[0].text
    }

    /// The arguments after the directive name.
    pub fn args(&self) -> &[Token] {
        &self.tokens[1..]
    }
}

/// Splits a file's text into logical lines. Lexing errors (an unterminated quote) are
/// reported and the offending line is dropped.
pub fn lex(text: &str, file: &Arc<Path>, diags: &mut Vec<Diagnostic>) -> Vec<Line> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = Vec::new();
    let mut pending: Option<(u32, String)> = None;
    for (index, physical) in text.split('\n').enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let physical = physical.strip_suffix('\r').unwrap_or(physical);
        let content = physical.trim_start_matches([' ', '\t']);
        if content.starts_with('#') || content.is_empty() {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((number, String::new()));
        joined.push_str(content);
        if let Some(stripped) = joined.strip_suffix('\\') {
            pending = Some((start, stripped.to_string()));
            continue;
        }
        let origin = Origin {
            file: file.clone(),
            line: start,
        };
        if let Some(line) = tokenize(&joined, origin, diags) {
            lines.push(line);
        }
    }
    // A file ending in `\`: Squid parses what it has; so do we.
    if let Some((start, joined)) = pending {
        let origin = Origin {
            file: file.clone(),
            line: start,
        };
        if let Some(line) = tokenize(&joined, origin, diags) {
            lines.push(line);
        }
    }
    lines
}

/// Tokenizes one logical line; `None` when it holds no directive or cannot be lexed.
fn tokenize(line: &str, origin: Origin, diags: &mut Vec<Diagnostic>) -> Option<Line> {
    let mut tokens = Vec::new();
    let mut rest = String::new();
    let mut chars = line.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| *c == ' ' || *c == '\t').is_some() {}
        let Some(&(start, first)) = chars.peek() else { break };
        if tokens.len() == 1 && rest.is_empty() {
            rest = line[start..].trim_end().to_string();
        }
        if first == '#' {
            break;
        }
        if first == '"' {
            chars.next();
            let mut text = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, escaped)) => text.push(escaped),
                        None => break,
                    },
                    c => text.push(c),
                }
            }
            if !closed {
                diags.push(
                    Diagnostic::error(&origin, "unterminated quoted string")
                        .with_hint("close the value with a double quote (\")"),
                );
                return None;
            }
            tokens.push(Token { text, quoted: true });
            continue;
        }
        let mut end = line.len();
        while let Some(&(i, c)) = chars.peek() {
            if c == ' ' || c == '\t' {
                end = i;
                break;
            }
            chars.next();
        }
        tokens.push(Token {
            text: line[start..end].to_string(),
            quoted: false,
        });
    }
    if tokens.is_empty() {
        return None;
    }
    Some(Line { origin, tokens, rest })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Vec<Vec<String>> {
        let file: Arc<Path> = Arc::from(Path::new("t.conf"));
        let mut diags = Vec::new();
        let lines = lex(input, &file, &mut diags);
        assert!(diags.is_empty(), "{diags:?}");
        lines
            .into_iter()
            .map(|l| l.tokens.into_iter().map(|t| t.text).collect())
            .collect()
    }

    #[test]
    fn squid_tokenizer_rules() {
        let cases: &[(&str, &[&[&str]])] = &[
            ("", &[]),
            ("# comment\n\n   # indented comment\n", &[]),
            ("http_port 8080", &[&["http_port", "8080"]]),
            ("http_port 8080 # Squidの待受ポート", &[&["http_port", "8080"]]),
            (
                "acl SSL_ports port 443#comment",
                &[&["acl", "SSL_ports", "port", "443#comment"]],
            ),
            (
                "acl SSL_ports port 443 #comment-no-space",
                &[&["acl", "SSL_ports", "port", "443"]],
            ),
            (
                "acl d dstdomain a.example # b.example c.example",
                &[&["acl", "d", "dstdomain", "a.example"]],
            ),
            (
                "acl\tlocalnet src 10.0.0.0/8\t\t# RFC 1918",
                &[&["acl", "localnet", "src", "10.0.0.0/8"]],
            ),
            ("  http_port 1\r\nvia off\r\n", &[&["http_port", "1"], &["via", "off"]]),
            (
                "acl a src 1.2.3.4 \\\n   5.6.7.8",
                &[&["acl", "a", "src", "1.2.3.4", "5.6.7.8"]],
            ),
            ("acl a src 1.2.3.4\\\n 5", &[&["acl", "a", "src", "1.2.3.45"]]),
            (
                "acl a src 1 \\\n# comment inside\n\n 2",
                &[&["acl", "a", "src", "1", "2"]],
            ),
            (
                "acl a dstdomain \"/tmp/x y\"",
                &[&["acl", "a", "dstdomain", "/tmp/x y"]],
            ),
            ("\u{feff}via on", &[&["via", "on"]]),
            ("via on \\", &[&["via", "on"]]),
        ];
        for (input, expected) in cases {
            let expected: Vec<Vec<String>> = expected
                .iter()
                .map(|l| l.iter().map(|s| s.to_string()).collect())
                .collect();
            assert_eq!(texts(input), expected, "input: {input:?}");
        }
    }

    #[test]
    fn origin_is_the_first_physical_line() {
        let file: Arc<Path> = Arc::from(Path::new("t.conf"));
        let mut diags = Vec::new();
        let lines = lex("# c\n\nacl a src \\\n 1.2.3.4\nvia on\n", &file, &mut diags);
        assert_eq!(lines[0].origin.line, 3);
        assert_eq!(lines[1].origin.line, 5);
    }

    #[test]
    fn quoted_flag_and_rest() {
        let file: Arc<Path> = Arc::from(Path::new("t.conf"));
        let mut diags = Vec::new();
        let lines = lex("logformat mine %ts %>a # kept\nacl a src \"f\" x", &file, &mut diags);
        assert_eq!(lines[0].rest, "mine %ts %>a # kept");
        assert!(lines[1].tokens[3].quoted);
        assert!(!lines[1].tokens[4].quoted);
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let file: Arc<Path> = Arc::from(Path::new("t.conf"));
        let mut diags = Vec::new();
        let lines = lex("acl a src \"/etc/x\nvia on", &file, &mut diags);
        assert_eq!(lines.len(), 1);
        assert_eq!(diags.len(), 1);
        assert_eq!(
            diags[0].to_string().lines().next().unwrap(),
            "t.conf:1: error: unterminated quoted string"
        );
    }
}
