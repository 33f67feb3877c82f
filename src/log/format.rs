//! `logformat` compiled once, at config load, into a list of parts, and rendered per record.
//!
//! Squid's syntax for a code: `%` [quoting `"` `[` `#` `'` `/`] [`-`] [`0`][min][`.`max]
//! [`{arg}`] code [`{arg}`]. A field with no value is `-`, never padded. The values, their
//! default escaping and the quoting modes follow Squid 5.7 as observed (tests/logformat.rs
//! compares with a real Squid). Unlike Squid, no mode lets a control character through: a
//! record is always one line.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use super::record::Record;

/// Squid's built-in formats other than `squid` (which keeps its own fast path), written as
/// the `logformat` lines that produce what Squid 5.7's built-in code writes. Squid writes
/// the `Referer` and `User-Agent` values of `combined` and `useragent` unescaped, hence `%'`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("common", "%>a %[ui %[un [%tl] \"%rm %ru HTTP/%rv\" %>Hs %<st %Ss:%Sh"),
    (
        "combined",
        "%>a %[ui %[un [%tl] \"%rm %ru HTTP/%rv\" %>Hs %<st \"%'{Referer}>h\" \"%'{User-Agent}>h\" %Ss:%Sh",
    ),
    ("referrer", "%ts.%03tu %>a %'{Referer}>h %ru"),
    ("useragent", "%>a [%tl] \"%'{User-Agent}>h\""),
];

/// What a format reads that costs something to collect; the union over the configured
/// formats decides what a transaction keeps for its record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub request_headers: bool,
    pub reply_headers: bool,
}

impl Needs {
    pub fn union(self, other: Needs) -> Needs {
        Needs {
            request_headers: self.request_headers || other.request_headers,
            reply_headers: self.reply_headers || other.reply_headers,
        }
    }
}

/// An `access_log` line's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Squid's native format (`squid`), rendered by [`Record::render`].
    Native,
    Custom(Arc<Compiled>),
}

impl Format {
    pub fn needs(&self) -> Needs {
        match self {
            Format::Native => Needs::default(),
            Format::Custom(c) => c.needs,
        }
    }

    pub fn render(&self, record: &Record, strip_query: bool) -> String {
        match self {
            Format::Native => record.render(strip_query),
            Format::Custom(c) => c.render(record, strip_query),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    parts: Vec<Part>,
    needs: Needs,
    /// Codes Squid knows whose value hopproxy does not have: always `-`.
    pub dashes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Field),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    code: Code,
    quote: Quote,
    left: bool,
    zero: bool,
    min: Option<usize>,
    max: Option<usize>,
    arg: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    /// The code's own default: raw, or Squid's "pass-through URL encoding" for some codes.
    Default,
    /// `"`: `"` and `\` backslash-escaped, CR LF TAB as `\r` `\n` `\t`.
    Quotes,
    /// `[`: `%`, `[`, `]`, controls and non-ASCII %-encoded, `\` doubled, CR LF as `\r` `\n`.
    Mime,
    /// `#`: RFC 1738 unsafe characters %-encoded, `%` included.
    Url,
    /// `'`: as is.
    Raw,
    /// `/`: like `"`, and the whole value in quotes when it has a space.
    Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Percent,
    ClientIp,
    ClientPort,
    LocalIp,
    LocalPort,
    ServerIp,
    ServerPort,
    Seconds,
    Subsecond,
    LocalTime,
    GmtTime,
    StartTime,
    Elapsed,
    UserName,
    SentStatus,
    ReceivedStatus,
    ResultTag,
    Hierarchy,
    MimeType,
    Method,
    /// `%ru`: as logged (query stripped under `strip_query_terms`).
    Url,
    /// `%>ru`: as received.
    ClientUrl,
    UrlPath,
    UrlScheme,
    UrlDomain,
    UrlPort,
    Version,
    ReplySize,
    RequestSize,
    IoSize,
    RequestHeader,
    ReplyHeader,
    /// `%ssl::>cert_subject`: the verified client certificate's subject (`CN=…, O=…`).
    ClientCertSubject,
    /// `%ssl::>sni`: the ClientHello's server name, read on `ssl-bump` ports.
    Sni,
    /// A code whose value hopproxy never has; Squid logs `-` for it in such setups too.
    Dash,
    /// A code Squid fills and hopproxy cannot: `-`, and `check` says so.
    Unfilled,
}

/// How a code's value is escaped when no quoting is given: Squid's "pass-through URL
/// encoding" (`rfc1738_escape_unescaped`) for headers and request parts, raw otherwise.
fn escaped_by_default(code: Code) -> bool {
    matches!(
        code,
        Code::RequestHeader | Code::ReplyHeader | Code::ClientUrl | Code::UrlPath | Code::UrlDomain | Code::UserName
    )
}

/// Every code Squid 5.7 accepts in a logformat (except the TLS, ICAP and adaptation ones,
/// which need features hopproxy does not have), with what hopproxy logs for it.
const CODES: &[(&str, Code)] = &[
    ("%", Code::Percent),
    (">a", Code::ClientIp),
    // No reverse DNS of clients in hopproxy; Squid too logs the address until its lookup
    // has an answer.
    (">A", Code::ClientIp),
    (">p", Code::ClientPort),
    (">la", Code::LocalIp),
    ("la", Code::LocalIp),
    (">lp", Code::LocalPort),
    ("lp", Code::LocalPort),
    ("<a", Code::ServerIp),
    ("<p", Code::ServerPort),
    ("ts", Code::Seconds),
    ("tu", Code::Subsecond),
    ("tl", Code::LocalTime),
    ("tg", Code::GmtTime),
    ("tS", Code::StartTime),
    ("tr", Code::Elapsed),
    ("un", Code::UserName),
    ("ul", Code::UserName),
    ("ui", Code::Dash),
    ("ue", Code::Dash),
    ("et", Code::Dash),
    ("ea", Code::Dash),
    ("note", Code::Dash),
    ("ssl::>sni", Code::Sni),
    ("ssl::>cert_subject", Code::ClientCertSubject),
    (">Hs", Code::SentStatus),
    ("Hs", Code::SentStatus),
    ("<Hs", Code::ReceivedStatus),
    ("Ss", Code::ResultTag),
    ("Sh", Code::Hierarchy),
    ("mt", Code::MimeType),
    ("rm", Code::Method),
    (">rm", Code::Method),
    ("ru", Code::Url),
    (">ru", Code::ClientUrl),
    ("rp", Code::UrlPath),
    (">rp", Code::UrlPath),
    (">rs", Code::UrlScheme),
    (">rd", Code::UrlDomain),
    (">rP", Code::UrlPort),
    ("rv", Code::Version),
    (">rv", Code::Version),
    (">v", Code::Version),
    ("<st", Code::ReplySize),
    (">st", Code::RequestSize),
    ("st", Code::IoSize),
    (">h", Code::RequestHeader),
    ("<h", Code::ReplyHeader),
    ("<A", Code::Unfilled),
    (">eui", Code::Unfilled),
    ("<la", Code::Unfilled),
    ("oa", Code::Unfilled),
    ("<lp", Code::Unfilled),
    ("<pt", Code::Unfilled),
    ("<tt", Code::Unfilled),
    ("dt", Code::Unfilled),
    ("sn", Code::Unfilled),
    (">ha", Code::Unfilled),
    ("<bs", Code::Unfilled),
    (">sh", Code::Unfilled),
    ("<sh", Code::Unfilled),
    ("<sH", Code::Unfilled),
    ("<sS", Code::Unfilled),
    ("<rm", Code::Unfilled),
    ("<ru", Code::Unfilled),
    ("<rs", Code::Unfilled),
    ("<rd", Code::Unfilled),
    ("<rP", Code::Unfilled),
    ("<rp", Code::Unfilled),
    ("<rv", Code::Unfilled),
    ("err_code", Code::Unfilled),
    ("err_detail", Code::Unfilled),
    ("credentials", Code::Unfilled),
    ("master_xaction", Code::Unfilled),
    (">qos", Code::Unfilled),
    ("<qos", Code::Unfilled),
    (">nfmark", Code::Unfilled),
    ("<nfmark", Code::Unfilled),
    (">handshake", Code::Unfilled),
    ("busy_time", Code::Unfilled),
    ("transport::>connection_id", Code::Unfilled),
];

/// A format that cannot be compiled: what is wrong and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    pub message: String,
    pub hint: Option<String>,
}

/// Compiles a `logformat` body (the rest of its line, verbatim).
pub fn compile(text: &str) -> Result<Compiled, FormatError> {
    let mut parts = Vec::new();
    let mut needs = Needs::default();
    let mut dashes = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some(at) = rest.find('%') else {
            parts.push(Part::Text(rest.to_string()));
            break;
        };
        if at > 0 {
            parts.push(Part::Text(rest[..at].to_string()));
        }
        let (field, name, after) = parse_field(&rest[at..])?;
        match field.code {
            Code::RequestHeader => needs.request_headers = true,
            Code::ReplyHeader => needs.reply_headers = true,
            Code::Unfilled => dashes.push(format!("%{name}")),
            _ => {}
        }
        parts.push(Part::Field(field));
        rest = after;
    }
    Ok(Compiled { parts, needs, dashes })
}

/// Parses one `%…` field at the start of `text`; returns it, the code's name and the rest.
fn parse_field(text: &str) -> Result<(Field, &'static str, &str), FormatError> {
    let whole = text;
    let mut rest = &text[1..];
    let quote = match rest.chars().next() {
        Some('"') => Quote::Quotes,
        Some('[') => Quote::Mime,
        Some('#') => Quote::Url,
        Some('\'') => Quote::Raw,
        Some('/') => Quote::Shell,
        _ => Quote::Default,
    };
    if quote != Quote::Default {
        rest = &rest[1..];
    }
    let left = rest.starts_with('-');
    if left {
        rest = &rest[1..];
    }
    let zero = rest.starts_with('0');
    if zero {
        rest = &rest[1..];
    }
    let (min, after) = leading_number(rest);
    rest = after;
    let mut max = None;
    if let Some(after_dot) = rest.strip_prefix('.')
        && after_dot.starts_with(|c: char| c.is_ascii_digit())
    {
        let (number, after) = leading_number(after_dot);
        max = number;
        rest = after;
    }
    let mut arg = None;
    if let Some(open) = rest.strip_prefix('{') {
        let (value, after) = braced(open, whole)?;
        arg = Some(value);
        rest = after;
    }
    let rest_after_prefix = rest.strip_prefix("http::").unwrap_or(rest);
    let Some(&(name, code)) = CODES
        .iter()
        .filter(|(name, _)| rest_after_prefix.starts_with(name))
        .max_by_key(|(name, _)| name.len())
    else {
        return Err(unknown_code(whole, rest_after_prefix));
    };
    rest = &rest_after_prefix[name.len()..];
    if arg.is_none()
        && let Some(open) = rest.strip_prefix('{')
    {
        let (value, after) = braced(open, whole)?;
        arg = Some(value);
        rest = after;
    }
    if matches!(code, Code::LocalTime | Code::GmtTime)
        && let Some(spec) = &arg
        && chrono::format::StrftimeItems::new(spec).any(|i| matches!(i, chrono::format::Item::Error))
    {
        return Err(FormatError {
            message: format!("'%{{{spec}}}{name}': not a valid strftime format"),
            hint: Some("use strftime codes such as %Y-%m-%d %H:%M:%S".into()),
        });
    }
    let field = Field {
        code,
        quote,
        left,
        zero,
        min,
        max,
        arg,
    };
    Ok((field, name, rest))
}

fn leading_number(text: &str) -> (Option<usize>, &str) {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return (None, text);
    }
    (text[..digits].parse().ok(), &text[digits..])
}

fn braced<'t>(open: &'t str, whole: &str) -> Result<(String, &'t str), FormatError> {
    match open.find('}') {
        Some(end) => Ok((open[..end].to_string(), &open[end + 1..])),
        None => Err(FormatError {
            message: format!("'{}': '{{' without '}}'", shorten(whole)),
            hint: Some("close the argument, as in %{User-Agent}>h".into()),
        }),
    }
}

fn unknown_code(whole: &str, at: &str) -> FormatError {
    let word: String = at.chars().take_while(|c| !c.is_whitespace() && *c != '%').collect();
    let hint = if word.starts_with("ssl::") || word.starts_with("tls::") {
        Some(
            "hopproxy does not intercept TLS; only %ssl::>sni (the ClientHello's name on ssl-bump ports, else '-') \
             and %ssl::>cert_subject (an https_port client's verified certificate) are accepted"
                .into(),
        )
    } else if word.starts_with("adapt::") || word.starts_with("icap::") {
        Some("hopproxy has no ICAP or eCAP adaptation".into())
    } else {
        // "%%" is a literal percent sign, never the code someone misspelt, and every
        // one-letter prefix is one edit away from it.
        let candidates = CODES.iter().map(|(name, _)| *name).filter(|name| *name != "%");
        let close = (1..=word.len())
            .rev()
            .filter_map(|n| word.get(..n))
            .find_map(|prefix| closest_code(prefix, candidates.clone()));
        Some(match close {
            Some(code) => format!("did you mean %{code}? (see docs/logformat.md for the codes)"),
            None => "see docs/logformat.md for the codes hopproxy knows".to_string(),
        })
    };
    FormatError {
        message: format!("unknown logformat code '{}'", shorten(whole)),
        hint,
    }
}

fn closest_code<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = edit_distance(word, candidate);
        if distance <= 1 && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            current.push(
                (previous[j] + usize::from(ca != *cb))
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()]
}

fn shorten(text: &str) -> String {
    let end: String = text.chars().take_while(|c| !c.is_whitespace()).take(24).collect();
    end
}

/// A field's value before escaping and width.
enum Value {
    Text(String),
    Number(u64),
    None,
}

impl Compiled {
    pub fn needs(&self) -> Needs {
        self.needs
    }

    /// One record as one line ending in `\n`.
    pub fn render(&self, record: &Record, strip_query: bool) -> String {
        let mut line = String::with_capacity(160);
        for part in &self.parts {
            match part {
                Part::Text(text) => push_safe(&mut line, text),
                Part::Field(field) => field.render(&mut line, record, strip_query),
            }
        }
        line.push('\n');
        line
    }
}

impl Field {
    fn render(&self, line: &mut String, record: &Record, strip_query: bool) {
        let value = self.value(record, strip_query);
        let text = match value {
            Value::None => None,
            Value::Number(n) => {
                let width = if self.zero { self.min.unwrap_or(0) } else { 0 };
                Some(format!("{n:0width$}"))
            }
            Value::Text(text) => {
                let escaped = escape(&text, self.quote, escaped_by_default(self.code));
                let limited = match self.max {
                    Some(max) if !matches!(self.code, Code::Elapsed | Code::Subsecond | Code::StartTime) => {
                        escaped.chars().take(max).collect()
                    }
                    _ => escaped,
                };
                Some(limited)
            }
        };
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            line.push('-');
            return;
        };
        let width = self.min.unwrap_or(0);
        if self.left {
            let _ = write!(line, "{text:<width$}");
        } else {
            let _ = write!(line, "{text:>width$}");
        }
    }

    fn value(&self, r: &Record, strip_query: bool) -> Value {
        let d = &r.details;
        let ip = |ip: IpAddr| Value::Text(ip.to_canonical().to_string());
        let since_epoch = r.end.duration_since(UNIX_EPOCH).unwrap_or_default();
        match self.code {
            Code::Percent => Value::Text("%".into()),
            Code::ClientIp => ip(r.client),
            Code::ClientPort => Value::Number(d.client_port.into()),
            Code::LocalIp => d.local.map_or(Value::None, |a| ip(a.ip())),
            Code::LocalPort => d.local.map_or(Value::None, |a| Value::Number(a.port().into())),
            Code::ServerIp => r.peer.map_or(Value::None, ip),
            Code::ServerPort => d.peer_port.map_or(Value::None, |p| Value::Number(p.into())),
            Code::Seconds => Value::Number(since_epoch.as_secs()),
            Code::Subsecond => {
                let digits = self.max.filter(|m| (1..=6).contains(m)).unwrap_or(3) as u32;
                Value::Number(u64::from(since_epoch.subsec_micros()) / 10u64.pow(6 - digits))
            }
            Code::LocalTime | Code::GmtTime => Value::Text(self.clock(since_epoch.as_secs())),
            Code::StartTime => {
                let start = since_epoch.saturating_sub(r.elapsed);
                let digits = self.max.unwrap_or(3).min(6);
                let fraction = u64::from(start.subsec_micros()) / 10u64.pow(6 - digits as u32);
                let mut text = start.as_secs().to_string();
                if digits > 0 {
                    let _ = write!(text, ".{fraction:0digits$}");
                }
                Value::Text(text)
            }
            Code::Elapsed => match self.max {
                Some(digits) if digits > 0 => {
                    let digits = digits.min(3);
                    let fraction = u64::from(r.elapsed.subsec_micros() % 1000) / 10u64.pow(3 - digits as u32);
                    Value::Text(format!("{}.{fraction:0digits$}", r.elapsed.as_millis()))
                }
                _ => Value::Number(u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX)),
            },
            Code::UserName => r.user.clone().map_or(Value::None, Value::Text),
            Code::ClientCertSubject => r.details.client_cert_subject.clone().map_or(Value::None, Value::Text),
            Code::SentStatus => Value::Number(r.status.into()),
            Code::ReceivedStatus => d.upstream_status.map_or(Value::None, |s| Value::Number(s.into())),
            Code::ResultTag => Value::Text(r.result.tag().into()),
            Code::Hierarchy => Value::Text(r.hierarchy.code().into()),
            Code::MimeType => r.content_type.clone().map_or(Value::None, Value::Text),
            Code::Method => Value::Text(r.method.clone()),
            Code::Url => Value::Text(if strip_query {
                super::record::strip_query_terms(&r.url).to_string()
            } else {
                r.url.clone()
            }),
            Code::ClientUrl => Value::Text(r.url.clone()),
            Code::UrlPath => url_parts(r).map_or(Value::None, |u| Value::Text(u.path.into())),
            Code::UrlScheme => url_parts(r).map_or(Value::None, |u| Value::Text(u.scheme.into())),
            Code::UrlDomain => url_parts(r).map_or(Value::None, |u| Value::Text(u.host.into())),
            Code::UrlPort => url_parts(r)
                .and_then(|u| u.port)
                .map_or(Value::None, |p| Value::Number(p.into())),
            Code::Version => Value::Text(match d.version {
                Some(minor) => format!("1.{minor}"),
                None => "0.0".into(),
            }),
            Code::ReplySize => Value::Number(r.bytes),
            Code::RequestSize => Value::Number(d.request_size),
            Code::IoSize => Value::Number(d.request_size + r.bytes),
            Code::RequestHeader => header_value(&d.request_headers, self.arg.as_deref()),
            Code::ReplyHeader => header_value(&d.reply_headers, self.arg.as_deref()),
            Code::Sni => d.sni.clone().map_or(Value::None, Value::Text),
            Code::Dash | Code::Unfilled => Value::None,
        }
    }

    fn clock(&self, secs: u64) -> String {
        use chrono::TimeZone;
        let secs = i64::try_from(secs).unwrap_or(0);
        let mut out = String::new();
        if self.code == Code::LocalTime {
            let spec = self.arg.as_deref().unwrap_or("%d/%b/%Y:%H:%M:%S %z");
            if let Some(time) = chrono::Local.timestamp_opt(secs, 0).single() {
                let _ = write!(out, "{}", time.format(spec));
            }
        } else {
            let spec = self.arg.as_deref().unwrap_or("%d/%b/%Y:%H:%M:%S");
            if let Some(time) = chrono::Utc.timestamp_opt(secs, 0).single() {
                let _ = write!(out, "{}", time.format(spec));
            }
        }
        out
    }
}

struct UrlParts<'u> {
    scheme: &'u str,
    host: &'u str,
    port: Option<u16>,
    path: &'u str,
}

/// The parts of the logged URL: `host:port` for CONNECT (no scheme, no path, as Squid logs
/// them), `scheme://authority/path` otherwise; `None` for `error:` pseudo-URLs.
fn url_parts(r: &Record) -> Option<UrlParts<'_>> {
    let (scheme, authority, path) = match r.url.split_once("://") {
        Some((scheme, rest)) => {
            let slash = rest.find('/').unwrap_or(rest.len());
            (scheme, &rest[..slash], &rest[slash..])
        }
        None if r.method.eq_ignore_ascii_case("CONNECT") => ("", r.url.as_str(), ""),
        None => return None,
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse().ok()),
        _ => (authority, None),
    };
    let default_port = match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    Some(UrlParts {
        scheme,
        host: host.trim_start_matches('[').trim_end_matches(']'),
        port: port.or(default_port),
        path,
    })
}

/// `%{Name}>h`: every field called `Name`, joined with `, `; `%{Name:;elem}>h`: the first
/// `elem=value` list member (`,` always separates members, as in Squid); `%>h`: all fields.
fn header_value(headers: &[(String, Vec<u8>)], arg: Option<&str>) -> Value {
    let Some(arg) = arg else {
        if headers.is_empty() {
            return Value::None;
        }
        let mut all = String::new();
        for (name, value) in headers {
            let _ = write!(all, "{name}: {}\r\n", String::from_utf8_lossy(value));
        }
        return Value::Text(all);
    };
    let (name, member) = match arg.split_once(':') {
        Some((name, spec)) => {
            let (separator, element) = match spec.chars().next() {
                Some(c) if ",;:".contains(c) => (c, &spec[1..]),
                _ => (',', spec),
            };
            (name, Some((separator, element)))
        }
        None => (arg, None),
    };
    let mut joined: Option<String> = None;
    for (_, value) in headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)) {
        let value = String::from_utf8_lossy(value);
        match &mut joined {
            Some(all) => {
                all.push_str(", ");
                all.push_str(&value);
            }
            None => joined = Some(value.into_owned()),
        }
    }
    let Some(joined) = joined else { return Value::None };
    match member {
        None => Value::Text(joined),
        Some((separator, element)) => joined
            .split([separator, ','])
            .map(str::trim)
            .find_map(|item| item.strip_prefix(element).and_then(|v| v.strip_prefix('=')))
            .map_or(Value::None, |v| Value::Text(v.to_string())),
    }
}

/// RFC 1738's unsafe characters, as Squid's `rfc1738_escape` lists them.
const UNSAFE: &[u8] = b"<>\"#{}|\\^~[]`' ";

fn escape(text: &str, quote: Quote, by_default: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        let byte = u32::from(ch);
        let control = byte < 0x20 || byte == 0x7f;
        let is = |c: char| ch == c;
        match quote {
            Quote::Default if by_default => {
                if !ch.is_ascii() || control || (ch.is_ascii() && UNSAFE.contains(&(byte as u8))) {
                    push_percent(&mut out, ch);
                } else {
                    out.push(ch);
                }
            }
            Quote::Url => {
                if !ch.is_ascii() || control || is('%') || UNSAFE.contains(&(byte as u8)) {
                    push_percent(&mut out, ch);
                } else {
                    out.push(ch);
                }
            }
            Quote::Quotes | Quote::Shell => match ch {
                '"' | '\\' => {
                    out.push('\\');
                    out.push(ch);
                }
                '\r' => out.push_str("\\r"),
                '\n' => out.push_str("\\n"),
                '\t' if quote == Quote::Quotes => out.push_str("\\t"),
                _ if control => push_percent(&mut out, ch),
                _ => out.push(ch),
            },
            Quote::Mime => match ch {
                '\r' => out.push_str("\\r"),
                '\n' => out.push_str("\\n"),
                '\\' => out.push_str("\\\\"),
                _ if control || !ch.is_ascii() || "%[]".contains(ch) => push_percent(&mut out, ch),
                _ => out.push(ch),
            },
            // Raw, and codes that are raw by default: as is, but never a control character.
            _ => {
                if control {
                    push_percent(&mut out, ch);
                } else {
                    out.push(ch);
                }
            }
        }
    }
    if quote == Quote::Shell && text.contains(' ') {
        return format!("\"{out}\"");
    }
    out
}

fn push_percent(out: &mut String, ch: char) {
    let mut buf = [0u8; 4];
    for byte in ch.encode_utf8(&mut buf).bytes() {
        let _ = write!(out, "%{byte:02X}");
    }
}

/// Literal text of a format: control characters cannot end the record early.
fn push_safe(line: &mut String, text: &str) {
    for ch in text.chars() {
        if ch.is_control() {
            push_percent(line, ch);
        } else {
            line.push(ch);
        }
    }
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
