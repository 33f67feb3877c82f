//! `acl NAME TYPE value…`: parsing each type's values and Squid's checks on them
//! (docs/squid-behaviour.md 5: overlapping domains and networks, port ranges, out-of-range ports).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use regex::bytes::RegexBuilder;

use super::diag::Diagnostic;
use crate::policy::{AclKind, Component, DomainPattern, HeaderPatterns, IpMatch, Origin, Patterns, TimeSpan};

/// The ACL types hopproxy evaluates, by their squid.conf names.
pub const SUPPORTED_TYPES: &[&str] = &[
    "src",
    "dst",
    "dstdomain",
    "port",
    "method",
    "proto",
    "localport",
    "myport",
    "proxy_auth",
    "url_regex",
    "urlpath_regex",
    "dstdom_regex",
    "browser",
    "req_mime_type",
    "rep_mime_type",
    "req_header",
    "rep_header",
    "http_status",
    "time",
    "myip",
    "localip",
    "myportname",
    "maxconn",
    "has",
    "at_step",
    "ssl::server_name",
    "ssl::server_name_regex",
];

/// Squid ACL types hopproxy rejects, each with what to use instead.
const REJECTED_TYPES: &[(&str, &str)] = &[
    (
        "arp",
        "a MAC address is only known on the client's own link and hopproxy does not read the kernel's neighbour table; match the client's address with 'src'",
    ),
    (
        "max_user_ip",
        "hopproxy does not count the addresses a user logs in from, and a rule that never matched would let through what Squid denies; limit each client address with client_ip_max_connections instead",
    ),
    (
        "eui64",
        "hopproxy does not derive EUI-64 identifiers; match the client's address with 'src'",
    ),
];

/// Squid ACL types hopproxy does not evaluate: named so the error says "not supported"
/// rather than "unknown".
const SQUID_ONLY_TYPES: &[&str] = &[
    "srcdomain",
    "srcdom_regex",
    "urllogin",
    "referer_regex",
    "peername",
    "peername_regex",
    "external",
    "ext_user",
    "ext_user_regex",
    "proxy_auth_regex",
    "ident",
    "ident_regex",
    "ssl_error",
    "server_cert_fingerprint",
    "connections_encrypted",
    "note",
    "annotate_transaction",
    "annotate_client",
    "adaptation_service",
    "random",
    "any-of",
    "all-of",
    "hier_code",
    "ca_cert",
    "squid_error",
    "transaction_initiator",
    "tag",
    "snmp_community",
    "src_as",
    "dst_as",
    "clientside_mark",
    "client_connection_mark",
];

/// One value as written, with where it was written (the `acl` line, or a line of a values file).
#[derive(Debug, Clone)]
pub struct Value {
    pub text: String,
    pub origin: Origin,
}

/// An ACL while the config is being read: its values keep their text and origin so the
/// overlap checks can point at the line to edit.
#[derive(Debug, Clone)]
pub struct AclDraft {
    pub name: String,
    /// The type as first written (`myport` stays `myport` in messages).
    pub type_name: String,
    pub origin: Origin,
    pub builtin: bool,
    pub kind: AclKind,
    /// For `src`/`dst`/`dstdomain`: text and origin of each element of `kind`, same order.
    pub elements: Vec<Value>,
}

impl AclDraft {
    /// A draft of `kind` with no values yet, defined by the config at `origin`.
    pub fn new(name: &str, type_name: &str, origin: &Origin, kind: AclKind) -> AclDraft {
        AclDraft {
            name: name.to_string(),
            type_name: type_name.to_string(),
            origin: origin.clone(),
            builtin: false,
            kind,
            elements: Vec::new(),
        }
    }
}

/// Checks an ACL type name; `Err` carries the error for the `acl` line.
pub fn empty_kind(type_name: &str, origin: &Origin) -> Result<AclKind, Diagnostic> {
    Ok(match type_name {
        "src" => AclKind::Src(Vec::new()),
        "dst" => AclKind::Dst(Vec::new()),
        "dstdomain" => AclKind::DstDomain(Vec::new()),
        "port" => AclKind::Port(Vec::new()),
        "localport" | "myport" => AclKind::LocalPort(Vec::new()),
        "method" => AclKind::Method(Vec::new()),
        "proto" => AclKind::Proto(Vec::new()),
        "proxy_auth" => AclKind::ProxyAuth(Some(Vec::new())),
        "url_regex" => AclKind::UrlRegex(Patterns::default()),
        "urlpath_regex" => AclKind::UrlPathRegex(Patterns::default()),
        "dstdom_regex" => AclKind::DstDomRegex(Patterns::default()),
        "browser" => AclKind::Browser(Patterns::default()),
        "user_cert" => AclKind::UserCertCn(Patterns::default()),
        "req_mime_type" => AclKind::ReqMimeType(Patterns::default()),
        "rep_mime_type" => AclKind::RepMimeType(Patterns::default()),
        "req_header" => AclKind::ReqHeader(Vec::new()),
        "rep_header" => AclKind::RepHeader(Vec::new()),
        "http_status" => AclKind::HttpStatus(Vec::new()),
        "time" => AclKind::Time(Vec::new()),
        "myip" | "localip" => AclKind::LocalIp(Vec::new()),
        "myportname" => AclKind::PortName(Vec::new()),
        "maxconn" => AclKind::MaxConn(usize::MAX),

        "has" => AclKind::Has(Vec::new()),
        "at_step" => AclKind::AtStep(Vec::new()),
        "ssl::server_name" => AclKind::ServerName(Vec::new()),
        "ssl::server_name_regex" => AclKind::ServerNameRegex(Patterns::default()),
        other if let Some((_, instead)) = REJECTED_TYPES.iter().find(|(name, _)| *name == other) => {
            return Err(
                Diagnostic::error(origin, format!("ACL type '{other}' is not supported by hopproxy"))
                    .with_hint((*instead).to_string()),
            );
        }
        other if SQUID_ONLY_TYPES.contains(&other) => {
            return Err(
                Diagnostic::error(origin, format!("ACL type '{other}' is not supported by hopproxy")).with_hint(
                    format!("use one of the supported types instead: {}", SUPPORTED_TYPES.join(", ")),
                ),
            );
        }
        other => {
            let hint = super::suggest::did_you_mean(other, SUPPORTED_TYPES.iter().copied())
                .unwrap_or_else(|| format!("use one of the supported types instead: {}", SUPPORTED_TYPES.join(", ")));
            return Err(Diagnostic::error(origin, format!("unknown ACL type '{other}'")).with_hint(hint));
        }
    })
}

/// True when two kinds are the same ACL type (so a later `acl` line may add to an earlier one).
pub fn same_type(a: &AclKind, b: &AclKind) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Adds the values of one `acl` line (or values file) to a draft, reporting bad values.
pub fn add_values(draft: &mut AclDraft, values: &[Value], diags: &mut Vec<Diagnostic>) {
    match &mut draft.kind {
        AclKind::UrlRegex(p)
        | AclKind::UrlPathRegex(p)
        | AclKind::DstDomRegex(p)
        | AclKind::Browser(p)
        | AclKind::ReqMimeType(p)
        | AclKind::RepMimeType(p)
        | AclKind::ServerNameRegex(p) => add_patterns(p, values, diags),
        AclKind::ReqHeader(list) | AclKind::RepHeader(list) => add_header_patterns(&draft.name, list, values, diags),
        AclKind::UserCertCn(p) => match values.split_first() {
            Some((attribute, patterns)) if attribute.text == "CN" => add_patterns(p, patterns, diags),
            Some((attribute, _)) => diags.push(
                Diagnostic::error(
                    &attribute.origin,
                    format!(
                        "user_cert ACL '{}': attribute '{}' is not supported",
                        draft.name, attribute.text
                    ),
                )
                .with_hint(format!(
                    "hopproxy matches the certificate's common name: acl {} user_cert CN NAME…",
                    draft.name
                )),
            ),
            None => {}
        },
        AclKind::Time(spans) => add_time_line(spans, values, diags),
        AclKind::MaxConn(limit) => {
            let numbers: Vec<&Value> = values.iter().collect();
            match numbers.as_slice() {
                [one] => match one.text.parse::<usize>() {
                    Ok(n) => *limit = n,
                    Err(_) => diags.push(Diagnostic::error(
                        &one.origin,
                        format!(
                            "{} ACL '{}': '{}' is not a number",
                            draft.type_name, draft.name, one.text
                        ),
                    )),
                },
                _ => {
                    if let Some(first) = values.first() {
                        diags.push(
                            Diagnostic::error(
                                &first.origin,
                                format!("{} ACL '{}' takes one number", draft.type_name, draft.name),
                            )
                            .with_hint(format!("acl {} {} N", draft.name, draft.type_name)),
                        );
                    }
                }
            }
        }
        _ => {
            for value in values {
                add_value(draft, value, diags);
            }
        }
    }
}

/// Regex values of one line. Squid compiles POSIX extended regexes, case-sensitive until a
/// `-i` and again after `+i`; hopproxy uses the `regex` crate on bytes with the same flags
/// (docs/acl-types.md lists where the two syntaxes differ).
fn add_patterns(patterns: &mut Patterns, values: &[Value], diags: &mut Vec<Diagnostic>) {
    let mut case_insensitive = false;
    for value in values {
        match value.text.as_str() {
            "-i" => case_insensitive = true,
            "+i" => case_insensitive = false,
            text => match compile_regex(text, case_insensitive) {
                Ok(regex) => patterns.0.push(regex),
                Err(diag) => diags.push(Diagnostic::error(&value.origin, diag.0).with_opt_hint(diag.1)),
            },
        }
    }
}

/// One POSIX-ERE-like pattern: bytes, no Unicode classes, `.` matching newlines too.
pub fn compile_regex(text: &str, case_insensitive: bool) -> Result<regex::bytes::Regex, Problem> {
    RegexBuilder::new(text)
        .unicode(false)
        .dot_matches_new_line(true)
        .case_insensitive(case_insensitive)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            let detail = e.to_string();
            let last = detail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            (
                format!("invalid regular expression '{text}': {last}"),
                Some("hopproxy takes POSIX extended regexes (escape a literal '.', '?', '+' or '(' with '\\')".into()),
            )
        })
}

/// `req_header NAME [-i] regex…`: the first value names the header.
fn add_header_patterns(acl: &str, list: &mut Vec<HeaderPatterns>, values: &[Value], diags: &mut Vec<Diagnostic>) {
    let Some((name, regexes)) = values.split_first() else {
        return;
    };
    if regexes.is_empty() {
        diags.push(
            Diagnostic::error(
                &name.origin,
                format!("ACL '{acl}' names header '{}' but no regex", name.text),
            )
            .with_hint(format!("acl {acl} req_header {} [-i] REGEX…", name.text)),
        );
        return;
    }
    let mut patterns = Patterns::default();
    add_patterns(&mut patterns, regexes, diags);
    match list.iter_mut().find(|h| h.header.eq_ignore_ascii_case(&name.text)) {
        Some(existing) => existing.patterns.0.extend(patterns.0),
        None => list.push(HeaderPatterns {
            header: name.text.clone(),
            patterns,
        }),
    }
}

/// All days, Sunday to Saturday, as `tm_wday` bits.
const EVERY_DAY: u8 = 0x7f;

/// `time [SMTWHFA…] [h1:m1-h2:m2…]`: the day letters of a line apply to each of its ranges.
fn add_time_line(spans: &mut Vec<TimeSpan>, values: &[Value], diags: &mut Vec<Diagnostic>) {
    let mut days = 0u8;
    let mut ranges: Vec<(u16, u16)> = Vec::new();
    for value in values {
        let text = value.text.as_str();
        let result = if text.starts_with(|c: char| c.is_ascii_digit()) {
            parse_time_range(text).map(|r| ranges.push(r))
        } else {
            parse_days(text).map(|d| days |= d)
        };
        if let Err((message, hint)) = result {
            diags.push(Diagnostic::error(&value.origin, message).with_opt_hint(hint));
        }
    }
    if days == 0 {
        days = EVERY_DAY;
    }
    if ranges.is_empty() {
        ranges.push((0, 24 * 60));
    }
    spans.extend(ranges.into_iter().map(|(start, end)| TimeSpan { days, start, end }));
}

fn parse_days(text: &str) -> Result<u8, Problem> {
    let mut days = 0u8;
    for c in text.chars() {
        days |= match c {
            'S' => 1,
            'M' => 1 << 1,
            'T' => 1 << 2,
            'W' => 1 << 3,
            'H' => 1 << 4,
            'F' => 1 << 5,
            'A' => 1 << 6,
            'D' => 0b011_1110,
            _ => {
                return Err((
                    format!("'{text}' is not a list of days"),
                    Some("days are S M T W H F A (Sunday to Saturday) and D (weekdays), e.g. MTWHF".into()),
                ));
            }
        };
    }
    Ok(days)
}

/// `h1:m1-h2:m2`, inclusive at both ends as Squid matches it; minutes since midnight.
fn parse_time_range(text: &str) -> Result<(u16, u16), Problem> {
    let bad = || {
        (
            format!("'{text}' is not a time range"),
            Some("write HH:MM-HH:MM, e.g. 08:00-17:30".to_string()),
        )
    };
    let clock = |part: &str| -> Option<u16> {
        let (h, m) = part.split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m <= 59).then_some(h * 60 + m)
    };
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let (start, end) = (clock(a).ok_or_else(bad)?, clock(b).ok_or_else(bad)?);
    if start > end {
        return Err((
            format!("time range '{text}' is reversed"),
            Some(format!(
                "a range cannot pass midnight: write two, '{a}-24:00' and '00:00-{b}'"
            )),
        ));
    }
    Ok((start, end))
}

fn add_value(draft: &mut AclDraft, value: &Value, diags: &mut Vec<Diagnostic>) {
    let text = value.text.as_str();
    let origin = &value.origin;
    let error = |message: String, hint: Option<String>| Diagnostic::error(origin, message).with_opt_hint(hint);
    match &mut draft.kind {
        AclKind::Src(list) | AclKind::Dst(list) => match parse_ip_match(text) {
            Ok((matches, masked)) => {
                if masked {
                    // Squid: "Netmask masks away part of the specified IP in '...'".
                    diags.push(
                        Diagnostic::warning(
                            origin,
                            format!(
                                "netmask masks away part of the specified IP in '{text}' (ACL '{}')",
                                draft.name
                            ),
                        )
                        .with_hint(format!("write the network address, e.g. '{}'", matches[0].display())),
                    );
                }
                for m in matches {
                    list.push(m);
                    draft.elements.push(value.clone());
                }
            }
            Err((message, hint)) => diags.push(error(message, hint)),
        },
        AclKind::DstDomain(list) => match check_domain(text) {
            Ok(()) => {
                list.push(DomainPattern::parse(text));
                draft.elements.push(value.clone());
            }
            Err((message, hint)) => diags.push(error(message, hint)),
        },
        AclKind::ServerName(list) => match check_domain(text) {
            Ok(()) => list.push(DomainPattern::parse(text)),
            Err((message, hint)) => diags.push(error(message, hint)),
        },
        AclKind::AtStep(steps) => match text {
            "SslBump1" => steps.push(1),
            "SslBump2" => steps.push(2),
            "SslBump3" => steps.push(3),
            "GeneratingCONNECT" => diags.push(error(
                "at_step GeneratingCONNECT never matches in hopproxy".into(),
                Some("hopproxy never bumps, so it never generates a CONNECT of its own; remove the value".into()),
            )),
            _ => diags.push(error(
                format!("'{text}' is not an SslBump step"),
                Some("at_step takes SslBump1, SslBump2 or SslBump3".into()),
            )),
        },
        AclKind::Port(ranges) | AclKind::LocalPort(ranges) => match parse_port_range(text) {
            Ok(range) => ranges.push(range),
            Err((message, hint)) => diags.push(error(message, hint)),
        },
        AclKind::Method(methods) => {
            if text.bytes().all(is_tchar) {
                methods.push(text.to_string());
            } else {
                diags.push(error(format!("'{text}' is not a valid HTTP method name"), None));
            }
        }
        AclKind::Proto(protos) => protos.push(text.to_ascii_uppercase()),
        AclKind::ProxyAuth(users) => match (text, users.as_mut()) {
            ("REQUIRED", Some(list)) if list.is_empty() => *users = None,
            ("REQUIRED", _) | (_, None) => diags.push(error(
                format!("'REQUIRED' must be the only value of proxy_auth ACL '{}'", draft.name),
                Some("use either 'REQUIRED' (any authenticated user) or a list of user names".into()),
            )),
            (user, Some(list)) => list.push(user.to_string()),
        },
        AclKind::HttpStatus(ranges) => match parse_status_range(text) {
            Ok(range) => ranges.push(range),
            Err((message, hint)) => diags.push(error(message, hint)),
        },
        AclKind::LocalIp(list) => match parse_ip_match(text) {
            Ok((matches, _)) => list.extend(matches),
            Err((message, hint)) => diags.push(error(message, hint)),
        },
        AclKind::PortName(names) => names.push(text.to_string()),
        AclKind::Has(parts) => match text {
            "request" => parts.push(Component::Request),
            "response" => parts.push(Component::Response),
            "ALE" => parts.push(Component::Ale),
            _ => diags.push(error(
                format!("'{text}' is not a transaction component"),
                Some("has takes request, response or ALE".into()),
            )),
        },
        // Whole-line kinds are parsed in `add_values`.
        AclKind::All
        | AclKind::Manager
        | AclKind::UrlRegex(_)
        | AclKind::UrlPathRegex(_)
        | AclKind::DstDomRegex(_)
        | AclKind::Browser(_)
        | AclKind::UserCertCn(_)
        | AclKind::ReqMimeType(_)
        | AclKind::RepMimeType(_)
        | AclKind::ReqHeader(_)
        | AclKind::RepHeader(_)
        | AclKind::Time(_)
        | AclKind::ServerNameRegex(_)
        | AclKind::MaxConn(_)
        // Built from the whole line by the `external` directive code.
        | AclKind::External(_) => {}
    }
}

/// `http_status` values: `200`, `400-499`, or `500-` (to the end), 100–999 as Squid takes.
fn parse_status_range(text: &str) -> Result<(u16, u16), Problem> {
    let status = |part: &str| part.parse::<u16>().ok().filter(|s| (100..=999).contains(s));
    let bad = || {
        (
            format!("'{text}' is not an HTTP status or range"),
            Some("write 404, 400-499 or 500-".into()),
        )
    };
    let (lo, hi) = match text.split_once('-') {
        Some((lo, "")) => (status(lo).ok_or_else(bad)?, 999),
        Some((lo, hi)) => (status(lo).ok_or_else(bad)?, status(hi).ok_or_else(bad)?),
        None => {
            let s = status(text).ok_or_else(bad)?;
            (s, s)
        }
    };
    if lo > hi {
        return Err((format!("status range '{text}' is reversed"), None));
    }
    Ok((lo, hi))
}

/// RFC 9110 token characters (a method name).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

type Problem = (String, Option<String>);

/// A port or an inclusive `lo-hi` range, 0–65535 as Squid's `port` ACL accepts.
pub fn parse_port_range(text: &str) -> Result<(u16, u16), Problem> {
    let (lo, hi) = match text.split_once('-') {
        Some((lo, hi)) => (parse_port(lo, text)?, parse_port(hi, text)?),
        None => {
            let port = parse_port(text, text)?;
            (port, port)
        }
    };
    if lo > hi {
        return Err((
            format!("port range '{text}' is backwards: it starts above where it ends, so it matches nothing"),
            Some(format!("write the lower port first: '{hi}-{lo}'")),
        ));
    }
    Ok((lo, hi))
}

fn parse_port(part: &str, whole: &str) -> Result<u16, Problem> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        let hint = if whole.contains('#') {
            Some("a '#' starts a comment only at the start of a word: put a space before it".to_string())
        } else {
            Some("a port is a number (443) or a range (1025-65535)".to_string())
        };
        return Err((format!("'{whole}' is not a port number or range"), hint));
    }
    part.parse::<u32>()
        .ok()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| (format!("port '{part}' is out of range (0-65535)"), None))
}

/// Parses a `src`/`dst` value: `all`, an address, `addr/prefix`, `addr/netmask`, `a-b`.
/// Returns the elements and whether a mask dropped set host bits (Squid warns about that).
pub fn parse_ip_match(text: &str) -> Result<(Vec<IpMatch>, bool), Problem> {
    if text == "all" {
        let v4 = IpNet::V4(Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0).expect("valid prefix"));
        let v6 = IpNet::V6(Ipv6Net::new(Ipv6Addr::UNSPECIFIED, 0).expect("valid prefix"));
        return Ok((vec![IpMatch::Net(v4), IpMatch::Net(v6)], false));
    }
    let not_an_address = || {
        (
            format!("'{text}' is not an IP address, network or range"),
            Some(
                "src/dst take addresses (10.0.0.1, 10.0.0.0/8, 10.0.0.1-10.0.0.9); use dstdomain for host names".into(),
            ),
        )
    };
    if let Some((lo, hi)) = text.split_once('-') {
        let lo = parse_addr(lo).ok_or_else(not_an_address)?;
        let hi = parse_addr(hi).ok_or_else(not_an_address)?;
        if lo.is_ipv4() != hi.is_ipv4() {
            return Err((format!("range '{text}' mixes IPv4 and IPv6"), None));
        }
        if lo > hi {
            return Err((
                format!("address range '{text}' is backwards: it starts above where it ends"),
                Some(format!("write the lower address first: '{hi}-{lo}'")),
            ));
        }
        return Ok((vec![IpMatch::Range(lo, hi)], false));
    }
    let (addr_text, mask) = match text.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (text, None),
    };
    let addr = parse_addr(addr_text).ok_or_else(not_an_address)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match mask {
        None => max,
        Some(m) if m.bytes().all(|b| b.is_ascii_digit()) && !m.is_empty() => match m.parse::<u8>() {
            Ok(p) if p <= max => p,
            _ => return Err((format!("netmask '/{m}' is out of range in '{text}' (0-{max})"), None)),
        },
        Some(m) => match (addr, m.parse::<IpAddr>()) {
            (IpAddr::V4(_), Ok(IpAddr::V4(mask))) => {
                let bits = u32::from(mask);
                if bits.leading_ones() + bits.trailing_zeros() != 32 {
                    return Err((format!("netmask '{m}' in '{text}' is not contiguous"), None));
                }
                bits.leading_ones() as u8
            }
            _ => return Err((format!("'{m}' in '{text}' is not a netmask"), None)),
        },
    };
    let net = IpNet::new(addr, prefix).expect("prefix checked against the family");
    let masked = net.trunc().addr() != addr;
    Ok((vec![IpMatch::Net(net.trunc())], masked))
}

fn parse_addr(text: &str) -> Option<IpAddr> {
    let text = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    text.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

fn check_domain(text: &str) -> Result<(), Problem> {
    if text.contains("://") || text.contains('/') {
        return Err((
            format!("'{text}' is not a domain name"),
            Some("dstdomain takes host names such as 'example.com' or '.example.com', not URLs".into()),
        ));
    }
    let bare = text.trim_start_matches('.').trim_end_matches('.');
    if bare.is_empty()
        || bare.contains("..")
        || !bare.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:*".contains(&b))
    {
        return Err((format!("'{text}' is not a valid domain name"), None));
    }
    Ok(())
}

/// Squid's checks across all values of one ACL, once every `acl` line for it was read.
pub fn check_overlaps(draft: &AclDraft, diags: &mut Vec<Diagnostic>) {
    if draft.builtin {
        return;
    }
    match &draft.kind {
        AclKind::Src(list) | AclKind::Dst(list) => check_ip_overlaps(draft, list, diags),
        AclKind::DstDomain(list) => check_domain_overlaps(draft, list, diags),
        _ => {}
    }
}

/// An address element as an interval of integers, per family.
fn interval(m: &IpMatch) -> (bool, u128, u128) {
    fn bits(a: IpAddr) -> u128 {
        match a {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        }
    }
    match m {
        IpMatch::Net(net) => (net.addr().is_ipv4(), bits(net.network()), bits(net.broadcast())),
        IpMatch::Range(lo, hi) => (lo.is_ipv4(), bits(*lo), bits(*hi)),
    }
}

/// Squid warns `(A) 'x' is a subnetwork of (B) 'y'` and drops x. Sorting by start (wider
/// first) finds every contained or overlapping element in one sweep.
fn check_ip_overlaps(draft: &AclDraft, list: &[IpMatch], diags: &mut Vec<Diagnostic>) {
    let mut order: Vec<usize> = (0..list.len()).collect();
    let iv: Vec<(bool, u128, u128)> = list.iter().map(interval).collect();
    order.sort_by_key(|&i| (iv[i].0, iv[i].1, std::cmp::Reverse(iv[i].2)));
    let mut widest: Option<usize> = None;
    for &i in &order {
        let (family, lo, hi) = iv[i];
        if let Some(w) = widest.filter(|&w| iv[w].0 == family && lo <= iv[w].2) {
            let (inner, outer) = (&draft.elements[i], &draft.elements[w]);
            if inner.text == "all" {
                continue;
            }
            let message = if hi <= iv[w].2 {
                if iv[w].1 == lo && iv[w].2 == hi {
                    format!("'{}' is listed twice in ACL '{}'", inner.text, draft.name)
                } else {
                    format!(
                        "'{}' is a subnetwork of '{}' in ACL '{}'",
                        inner.text, outer.text, draft.name
                    )
                }
            } else {
                format!("'{}' overlaps '{}' in ACL '{}'", inner.text, outer.text, draft.name)
            };
            diags.push(
                Diagnostic::warning(&inner.origin, message)
                    .with_hint(format!("remove '{}' from the ACL named '{}'", inner.text, draft.name)),
            );
            if hi <= iv[w].2 {
                continue;
            }
        }
        widest = Some(i);
    }
}

/// `example.com` with `.example.com` is fatal in Squid; `www.example.com` with `.example.com`
/// is a warning. Walks each name's parent domains, so large lists stay linear.
fn check_domain_overlaps(draft: &AclDraft, list: &[DomainPattern], diags: &mut Vec<Diagnostic>) {
    let mut exact: HashMap<&str, usize> = HashMap::new();
    let mut wildcard: HashMap<&str, usize> = HashMap::new();
    for (i, p) in list.iter().enumerate() {
        let map = if p.include_subdomains {
            &mut wildcard
        } else {
            &mut exact
        };
        if let Some(&first) = map.get(p.domain.as_str()) {
            let (value, earlier) = (&draft.elements[i], &draft.elements[first]);
            diags.push(
                Diagnostic::warning(
                    &value.origin,
                    format!(
                        "'{}' is listed twice in ACL '{}' (also '{}')",
                        value.text, draft.name, earlier.text
                    ),
                )
                .with_hint(format!(
                    "remove one '{}' from the ACL named '{}'",
                    value.text, draft.name
                )),
            );
        } else {
            map.insert(p.domain.as_str(), i);
        }
    }
    for (i, p) in list.iter().enumerate() {
        let value = &draft.elements[i];
        if !p.include_subdomains
            && let Some(&w) = wildcard.get(p.domain.as_str())
        {
            let dotted = &draft.elements[w];
            diags.push(
                Diagnostic::error(
                    &dotted.origin,
                    format!("'{}' is a subdomain of '{}' in ACL '{}'", dotted.text, value.text, draft.name),
                )
                .with_hint(format!(
                    "remove one: '{}' already matches '{}' and all its subdomains; keep '{}' alone if subdomains must not match",
                    dotted.text, value.text, value.text
                )),
            );
        }
        // Every proper parent domain with a leading-dot entry makes this one redundant.
        let mut rest = p.domain.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(&w) = wildcard.get(parent) {
                let dotted = &draft.elements[w];
                diags.push(
                    Diagnostic::warning(
                        &value.origin,
                        format!(
                            "'{}' is a subdomain of '{}' in ACL '{}'",
                            value.text, dotted.text, draft.name
                        ),
                    )
                    .with_hint(format!("remove '{}' from the ACL named '{}'", value.text, draft.name)),
                );
                break;
            }
            rest = parent;
        }
    }
}

/// Display of an address element the way it is written in squid.conf.
pub trait IpMatchDisplay {
    fn display(&self) -> String;
}

impl IpMatchDisplay for IpMatch {
    fn display(&self) -> String {
        match self {
            IpMatch::Net(net) if net.prefix_len() == net.max_prefix_len() => net.addr().to_string(),
            IpMatch::Net(net) => net.to_string(),
            IpMatch::Range(lo, hi) => format!("{lo}-{hi}"),
        }
    }
}

#[cfg(test)]
#[path = "acl_types_tests.rs"]
mod types_tests;
