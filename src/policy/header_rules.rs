//! `request_header_access` / `reply_header_access` and their `*_header_replace`: which header
//! fields a hop forwards, with Squid's lookup order (a field's own rules; for a field Squid
//! does not know, the `Other` rules; then the `All` rules; with none, the field passes).

use std::collections::HashMap;

use super::access::{AclSet, Action, RuleList};
use super::acl::RequestFacts;

/// The rules of one header name (or of `All`/`Other`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mangler {
    pub access: RuleList,
    /// `*_header_replace NAME value`: sent instead of a denied field (only then, as in Squid).
    pub replacement: Option<Vec<u8>>,
}

/// One direction's header rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    /// By lower-case field name.
    pub named: HashMap<String, Mangler>,
    /// `Other`: fields Squid has no registered id for, without rules of their own.
    pub other: Mangler,
    /// `All`: every field without rules of its own (and unknown ones without `Other` rules).
    pub all: Mangler,
}

/// What happens to one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Remove,
    Replace(Vec<u8>),
}

/// The rules evaluated for one message: each list is decided once, then every field is
/// looked up by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderFilter {
    named: HashMap<String, Verdict>,
    other: Option<Verdict>,
    all: Option<Verdict>,
}

impl HeaderRules {
    /// The mangler for `name` (`All`, `Other` or a field name, any case).
    pub fn mangler_mut(&mut self, name: &str) -> &mut Mangler {
        if name.eq_ignore_ascii_case("all") {
            &mut self.all
        } else if name.eq_ignore_ascii_case("other") {
            &mut self.other
        } else {
            self.named.entry(name.to_ascii_lowercase()).or_default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.all.access.is_empty() && self.other.access.is_empty() && self.named.values().all(|m| m.access.is_empty())
    }

    /// Decides every list for one message. A list's default with no matching line is the
    /// opposite of its last line, as in every Squid access list.
    pub fn filter(&self, acls: &AclSet, facts: &RequestFacts<'_>) -> HeaderFilter {
        let decide = |m: &Mangler| -> Option<Verdict> {
            if m.access.is_empty() {
                return None;
            }
            Some(if m.access.allows(acls, facts, Action::Allow) {
                Verdict::Keep
            } else if let Some(value) = &m.replacement {
                Verdict::Replace(value.clone())
            } else {
                Verdict::Remove
            })
        };
        HeaderFilter {
            named: self
                .named
                .iter()
                .filter_map(|(name, m)| decide(m).map(|v| (name.clone(), v)))
                .collect(),
            other: decide(&self.other),
            all: decide(&self.all),
        }
    }
}

impl HeaderFilter {
    pub fn is_empty(&self) -> bool {
        self.named.is_empty() && self.other.is_none() && self.all.is_none()
    }

    pub fn verdict(&self, name: &str) -> &Verdict {
        let lower = name.to_ascii_lowercase();
        let own = self.named.get(&lower);
        let other = if is_registered(&lower) {
            None
        } else {
            self.other.as_ref()
        };
        own.or(other).or(self.all.as_ref()).unwrap_or(&Verdict::Keep)
    }

    /// Rewrites the `Name: value\r\n` lines of `head` from `from` on. Message framing
    /// (`Content-Length`, `Transfer-Encoding`) always stays: removing it would make the next
    /// hop read the body as another message.
    pub fn apply(&self, head: &mut Vec<u8>, from: usize) {
        if self.is_empty() || from >= head.len() {
            return;
        }
        let lines = head.split_off(from);
        for line in lines.split_inclusive(|b| *b == b'\n') {
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                head.extend_from_slice(line);
                continue;
            };
            let name = String::from_utf8_lossy(&line[..colon]);
            let framing = name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding");
            match self.verdict(&name) {
                _ if framing => head.extend_from_slice(line),
                Verdict::Keep => head.extend_from_slice(line),
                Verdict::Remove => {}
                Verdict::Replace(value) => {
                    head.extend_from_slice(&line[..colon]);
                    head.extend_from_slice(b": ");
                    head.extend_from_slice(value);
                    head.extend_from_slice(b"\r\n");
                }
            }
        }
    }
}

/// Whether Squid 5.7 has a registered id for this (lower-case) field name: such fields never
/// fall under `Other` (Squid's `RegisteredHeadersHash.gperf`).
fn is_registered(lower: &str) -> bool {
    REGISTERED.binary_search(&lower).is_ok()
}

/// Sorted, lower-case.
const REGISTERED: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "alternate-protocol",
    "authentication-info",
    "authorization",
    "cache-control",
    "cdn-loop",
    "connection",
    "content-base",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "cookie",
    "cookie2",
    "date",
    "etag",
    "expect",
    "expires",
    "forwarded",
    "from",
    "front-end-https",
    "ftp-arguments",
    "ftp-command",
    "ftp-pre",
    "ftp-reason",
    "ftp-status",
    "host",
    "http2-settings",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "keep-alive",
    "key",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "mime-version",
    "negotiate",
    "origin",
    "pragma",
    "proxy-authenticate",
    "proxy-authentication-info",
    "proxy-authorization",
    "proxy-connection",
    "proxy-support",
    "public",
    "range",
    "referer",
    "request-range",
    "retry-after",
    "server",
    "set-cookie",
    "set-cookie2",
    "surrogate-capability",
    "surrogate-control",
    "te",
    "title",
    "trailer",
    "transfer-encoding",
    "translate",
    "unless-modified-since",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "x-accelerator-vary",
    "x-cache",
    "x-cache-lookup",
    "x-forwarded-for",
    "x-next-services",
    "x-request-uri",
    "x-squid-error",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_names_are_sorted() {
        assert!(REGISTERED.windows(2).all(|w| w[0] < w[1]));
    }

    fn filter(named: &[(&str, Verdict)], other: Option<Verdict>, all: Option<Verdict>) -> HeaderFilter {
        HeaderFilter {
            named: named.iter().map(|(n, v)| (n.to_string(), v.clone())).collect(),
            other,
            all,
        }
    }

    #[test]
    fn own_rules_then_other_for_unknown_fields_then_all() {
        let f = filter(
            &[("user-agent", Verdict::Replace(b"x".to_vec()))],
            Some(Verdict::Remove),
            Some(Verdict::Keep),
        );
        assert_eq!(f.verdict("User-Agent"), &Verdict::Replace(b"x".to_vec()));
        assert_eq!(f.verdict("X-Secret"), &Verdict::Remove, "unknown: Other");
        assert_eq!(
            f.verdict("Referer"),
            &Verdict::Keep,
            "known without own rules: All, never Other"
        );
        let f = filter(&[], None, Some(Verdict::Remove));
        assert_eq!(f.verdict("X-Secret"), &Verdict::Remove, "unknown without Other: All");
    }

    #[test]
    fn apply_rewrites_lines_but_keeps_framing() {
        let f = filter(
            &[
                ("via", Verdict::Remove),
                ("user-agent", Verdict::Replace(b"Mozilla".to_vec())),
            ],
            None,
            Some(Verdict::Remove),
        );
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        let from = head.len();
        head.extend_from_slice(b"Host: h\r\nUser-Agent: curl\r\nVia: 1.1 a\r\nContent-Length: 3\r\n");
        f.apply(&mut head, from);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET / HTTP/1.1\r\nUser-Agent: Mozilla\r\nContent-Length: 3\r\n"
        );
    }
}
