//! Java-properties text, as the agent's `.cfg` files are written.
//!
//! Java's rules: `#`/`!` comment lines, key ends at the first unescaped `=`, `:` or blank,
//! backslash escapes (`\t \n \r \f \uXXXX`, others drop the backslash), a trailing backslash
//! continues the line. One deliberate extension: an inline ` # comment` (blank, then `#`) ends
//! the value, because operators write them (the original how-to's example does) and a value with a
//! comment in it is never what they meant. Each such cut is reported so it is not silent.

/// One `key=value` entry with the line it started on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
    /// The inline comment that was dropped from this line, if any.
    pub dropped_comment: Option<String>,
}

/// Parses properties text; later entries with the same key are kept too (last one wins for lookups).
pub fn parse(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((index, raw)) = lines.next() {
        let first = raw.trim_start_matches([' ', '\t', '\u{c}']);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        // Join continuation lines: an odd number of trailing backslashes continues.
        let mut logical = first.to_string();
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start_matches([' ', '\t', '\u{c}'])),
                None => break,
            }
        }
        let (logical, dropped_comment) = cut_inline_comment(&logical);
        let (key, value) = split_key_value(&logical);
        entries.push(Entry {
            key: unescape(&key),
            value: unescape(value.trim_end()),
            line: index + 1,
            dropped_comment,
        });
    }
    entries
}

fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Cuts at the first unescaped `#` that follows a blank.
fn cut_inline_comment(line: &str) -> (String, Option<String>) {
    let mut escaped = false;
    let mut prev_blank = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            prev_blank = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '#' if prev_blank => return (line[..i].to_string(), Some(line[i..].to_string())),
            _ => {}
        }
        prev_blank = c == ' ' || c == '\t';
    }
    (line.to_string(), None)
}

/// Splits at the first unescaped separator; the key keeps its escapes for [`unescape`].
fn split_key_value(line: &str) -> (String, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' | ' ' | '\t' | '\u{c}' => {
                let key = line[..i].to_string();
                let mut rest = line[i..].trim_start_matches([' ', '\t', '\u{c}']);
                // A blank-separated key may still be followed by one `=` or `:`.
                if let Some(stripped) = rest.strip_prefix(['=', ':']) {
                    rest = stripped.trim_start_matches([' ', '\t', '\u{c}']);
                }
                return (key, rest);
            }
            _ => {}
        }
    }
    (line.to_string(), "")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) if hex.len() == 4 => out.push(ch),
                    // Java throws here; keeping the text visible makes the later error clear.
                    _ => {
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).into_iter().map(|e| (e.key, e.value)).collect()
    }

    #[test]
    fn separators_comments_and_escapes() {
        let text = "# c\n! c\n  a=1\nb : 2\nc 3\nd\\ e=f\\tg\nh=\\u0041\\\n   BC\nempty=\nalone\n";
        let expected = [
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d e", "f\tg"),
            ("h", "ABC"),
            ("empty", ""),
            ("alone", ""),
        ];
        let got = pairs(text);
        assert_eq!(got.len(), expected.len(), "{got:?}");
        for ((k, v), (ek, ev)) in got.iter().zip(expected) {
            assert_eq!((k.as_str(), v.as_str()), (ek, ev));
        }
    }

    #[test]
    fn inline_comment_needs_a_blank_before_the_hash() {
        let entries = parse("key=abc#def\nhost=example.com # comment\nesc=a \\# b\n");
        assert_eq!(entries[0].value, "abc#def");
        assert_eq!(entries[1].value, "example.com");
        assert_eq!(entries[1].dropped_comment.as_deref(), Some("# comment"));
        assert_eq!(entries[2].value, "a # b");
    }
}
