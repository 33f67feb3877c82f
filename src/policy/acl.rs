//! ACL kinds and how each one matches a request. Pure: no I/O, no DNS.

use std::net::IpAddr;

use ipnet::IpNet;
use regex::bytes::Regex;

use crate::http1::Header;

/// One address element of a `src`/`dst` ACL: a CIDR network (a bare address is a /32 or /128)
/// or an inclusive range `a-b`, as Squid accepts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpMatch {
    Net(IpNet),
    Range(IpAddr, IpAddr),
}

impl IpMatch {
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        match self {
            IpMatch::Net(net) => net.contains(&addr),
            IpMatch::Range(lo, hi) => match (lo, hi, addr) {
                (IpAddr::V4(lo), IpAddr::V4(hi), IpAddr::V4(a)) => *lo <= a && a <= *hi,
                (IpAddr::V6(lo), IpAddr::V6(hi), IpAddr::V6(a)) => *lo <= a && a <= *hi,
                _ => false,
            },
        }
    }
}

/// A `dstdomain` value. `.example.com` matches `example.com` and every subdomain;
/// `example.com` matches only itself. Stored lower-case without leading or trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPattern {
    pub domain: String,
    pub include_subdomains: bool,
}

impl DomainPattern {
    /// Parses one `dstdomain` value as Squid does: case-insensitive, trailing dot ignored.
    pub fn parse(value: &str) -> DomainPattern {
        let lowered = value.trim_end_matches('.').to_ascii_lowercase();
        match lowered.strip_prefix('.') {
            Some(rest) => DomainPattern {
                domain: rest.to_string(),
                include_subdomains: true,
            },
            None => DomainPattern {
                domain: lowered,
                include_subdomains: false,
            },
        }
    }

    /// `host` must already be lower-case without a trailing dot (see [`RequestFacts`]).
    pub fn matches(&self, host: &str) -> bool {
        if host == self.domain {
            return true;
        }
        self.include_subdomains
            && host.len() > self.domain.len()
            && host.ends_with(self.domain.as_str())
            && host.as_bytes()[host.len() - self.domain.len() - 1] == b'.'
    }
}

/// What an ACL tests. The variants mirror Squid's ACL types of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclKind {
    /// `all`: always matches.
    All,
    /// `src`: the client's address.
    Src(Vec<IpMatch>),
    /// `dst`: any address the destination host resolves to (or the IP literal itself).
    Dst(Vec<IpMatch>),
    /// `dstdomain`: the destination host name.
    DstDomain(Vec<DomainPattern>),
    /// `port`: the destination port, as inclusive ranges (a single port is `p..=p`).
    Port(Vec<(u16, u16)>),
    /// `method`: request method, upper-case.
    Method(Vec<String>),
    /// `proto`: URL scheme, upper-case (`HTTP`, `HTTPS`, `AUTHORITY` for CONNECT as in Squid 5).
    Proto(Vec<String>),
    /// `localport`/`myport`: the port the client connected to.
    LocalPort(Vec<(u16, u16)>),
    /// `proxy_auth`: `None` = `REQUIRED` (any authenticated user); otherwise the user names.
    ProxyAuth(Option<Vec<String>>),
    /// Squid's built-in `manager`: cache-manager URLs. hopproxy serves no manager pages,
    /// so this matches requests for them only to let stock configs deny them.
    Manager,
    /// `url_regex`: the URL as Squid logs it (`host:port` for CONNECT), percent-decoded.
    UrlRegex(Patterns),
    /// `urlpath_regex`: the URL path with query, percent-decoded (empty for CONNECT).
    UrlPathRegex(Patterns),
    /// `dstdom_regex`: the destination host name (and `hosts_file` names of an IP literal).
    DstDomRegex(Patterns),
    /// `browser`: the request's `User-Agent`.
    Browser(Patterns),
    /// `req_mime_type`: the request's `Content-Type`.
    ReqMimeType(Patterns),
    /// `rep_mime_type`: the reply's `Content-Type` (empty when it has none, as in Squid).
    RepMimeType(Patterns),
    /// `req_header NAME regex…`: one request header's values, joined with `, `.
    ReqHeader(Vec<HeaderPatterns>),
    /// `rep_header NAME regex…`: the same on the reply.
    RepHeader(Vec<HeaderPatterns>),
    /// `http_status`: the reply's status code, as inclusive ranges.
    HttpStatus(Vec<(u16, u16)>),
    /// `time [days] [h1:m1-h2:m2]`: local wall-clock time.
    Time(Vec<TimeSpan>),
    /// `myip`/`localip`: the local address the client connected to.
    LocalIp(Vec<IpMatch>),
    /// `myportname`: the `name=` of the `http_port` the client connected to (its
    /// `[addr:]port` text without one, as Squid names it).
    PortName(Vec<String>),
    /// `user_cert CN regex…`: the common name of the client certificate an `https_port`
    /// verified (Squid also takes other attributes; hopproxy only CN).
    UserCertCn(Patterns),
    /// `maxconn N`: the client address has more than N connections open.
    MaxConn(usize),
    /// `has request|response|ALE`: which parts of the transaction exist at this check.
    Has(Vec<Component>),
    /// `external TYPE [args]`: an `external_acl_type` helper decides. The evaluator stays
    /// pure: serve asks the helper first and passes the answer in [`MoreFacts::external`];
    /// without an answer the ACL does not match.
    External(ExternalRef),
    /// `at_step SslBump1|2|3`: the step of an `ssl_bump` check (1 = the CONNECT, 2 = the
    /// client's ClientHello read, 3 = the last decision). Matches nothing outside `ssl_bump`.
    AtStep(Vec<u8>),
    /// `ssl::server_name`: the TLS server name as far as it is known — the SNI once the
    /// ClientHello was read, before that (or without SNI) the CONNECT host, as in Squid.
    ServerName(Vec<DomainPattern>),
    /// `ssl::server_name_regex`: the same name, by regular expression.
    ServerNameRegex(Patterns),
}

/// One `acl NAME external TYPE args…`: which `external_acl_type` and the arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExternalRef {
    /// Index into the config's `external_acl_types`.
    pub type_index: usize,
    pub args: Vec<String>,
}

/// A helper's answer for one external ACL, for this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAnswer {
    pub acl: ExternalRef,
    pub matched: bool,
}

/// What an `ssl_bump` check knows about the tunnel's TLS so far.
#[derive(Debug, Clone, Copy)]
pub struct TlsFacts<'a> {
    /// 1, 2 or 3 (Squid's SslBump1…3).
    pub step: u8,
    /// The ClientHello's SNI, once read.
    pub sni: Option<&'a str>,
}

/// Transaction parts the `has` ACL asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Request,
    Response,
    /// The access-log entry: exists for every check hopproxy makes.
    Ale,
}

/// One `time` ACL line: the days it applies on (bit 0 = Sunday, as `tm_wday`) and an
/// inclusive range of minutes since local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSpan {
    pub days: u8,
    pub start: u16,
    pub end: u16,
}

/// Regular expressions of a regex ACL, each with its own case flag (Squid's `-i`/`+i` switch
/// applies to the patterns after it).
#[derive(Debug, Clone, Default)]
pub struct Patterns(pub Vec<Regex>);

impl PartialEq for Patterns {
    fn eq(&self, other: &Patterns) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| a.as_str() == b.as_str())
    }
}

impl Eq for Patterns {}

impl Patterns {
    /// Matches on bytes, as Squid's POSIX `regexec` in the C locale does.
    pub fn is_match(&self, text: &str) -> bool {
        self.0.iter().any(|r| r.is_match(text.as_bytes()))
    }
}

/// The patterns for one header name of a `req_header`/`rep_header` ACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderPatterns {
    pub header: String,
    pub patterns: Patterns,
}

impl HeaderPatterns {
    fn matches(&self, headers: &[Header]) -> bool {
        joined_header(headers, &self.header).is_some_and(|v| self.patterns.is_match(&v))
    }
}

/// All values of `name`, joined with `, ` as Squid's `getStrOrList` does.
fn joined_header(headers: &[Header], name: &str) -> Option<String> {
    let mut values = headers
        .iter()
        .filter(|h| h.is(name))
        .map(|h| String::from_utf8_lossy(&h.value));
    let first = values.next()?;
    Some(values.fold(first.into_owned(), |mut acc, v| {
        acc.push_str(", ");
        acc.push_str(&v);
        acc
    }))
}

/// Squid's `rfc1738_unescape`: `%XX` sequences decoded before URL regexes are matched.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The name `ssl::server_name` ACLs see: the SNI when one was read, else the CONNECT host.
fn server_name<'a>(facts: &RequestFacts<'a>) -> &'a str {
    facts.more.tls.and_then(|t| t.sni).unwrap_or(facts.host)
}

/// Local wall-clock time at the check, for `time` ACLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalClock {
    /// 0 = Sunday … 6 = Saturday.
    pub weekday: u8,
    pub minute_of_day: u16,
}

/// The reply, for `http_reply_access` and `reply_header_access` checks.
#[derive(Debug, Clone, Copy)]
pub struct ReplyFacts<'a> {
    pub status: u16,
    pub headers: &'a [Header],
}

/// Facts only some ACL kinds read; `Default` knows none of them (such ACLs then do not match).
#[derive(Debug, Clone, Copy, Default)]
pub struct MoreFacts<'a> {
    /// The URL as logged: absolute for plain HTTP, `host:port` for CONNECT.
    pub url: &'a str,
    /// Path and query of a plain-HTTP request URL.
    pub path_query: &'a str,
    pub request_headers: &'a [Header],
    pub local_ip: Option<IpAddr>,
    pub port_name: Option<&'a str>,
    pub clock: Option<LocalClock>,
    /// Connections open from the client's address, this one included.
    pub client_connections: usize,
    /// The common name of the client certificate an `https_port` verified.
    pub client_cert_cn: Option<&'a str>,
    pub reply: Option<ReplyFacts<'a>>,
    /// External ACL answers gathered for this request (see [`AclKind::External`]).
    pub external: &'a [ExternalAnswer],
    /// Only during `ssl_bump` checks.
    pub tls: Option<TlsFacts<'a>>,
    /// Set by whole-config analysis: ACL kinds it cannot enumerate are taken at their worst
    /// (see [`AclKind::is_opaque`]) instead of evaluated.
    pub worst_case: bool,
}

/// A named ACL after all `acl NAME …` lines for that name were merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub name: String,
    pub kind: AclKind,
}

/// Facts about one request that ACLs look at. Built by `serve`, so policy stays pure.
#[derive(Debug, Clone)]
pub struct RequestFacts<'a> {
    pub client: IpAddr,
    /// Upper-case method token (`CONNECT`, `GET`, …).
    pub method: &'a str,
    /// Upper-case scheme: `HTTP`, `HTTPS`, or `AUTHORITY` for CONNECT.
    pub proto: &'a str,
    /// Destination host: lower-case, no trailing dot, IPv6 without brackets.
    pub host: &'a str,
    pub port: u16,
    /// Path of the request URL (empty for CONNECT); only the built-in `manager` ACL reads it.
    pub path: &'a str,
    /// Addresses the destination resolves to; empty when not resolved. Only `dst` reads them.
    pub dst_addrs: &'a [IpAddr],
    /// Names known for an IP-literal host (from `hosts_file`), so `dstdomain` can match
    /// `CONNECT 10.0.0.1:443` the way Squid's reverse lookup would, without DNS.
    pub host_aliases: &'a [String],
    /// The port of the listener the client connected to.
    pub local_port: u16,
    /// The authenticated user, if any.
    pub user: Option<&'a str>,
    pub more: MoreFacts<'a>,
}

impl AclKind {
    pub fn matches(&self, facts: &RequestFacts<'_>) -> bool {
        let in_ranges = |ranges: &[(u16, u16)], port: u16| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port));
        match self {
            AclKind::All => true,
            AclKind::Src(list) => list.iter().any(|m| m.contains(facts.client)),
            AclKind::Dst(list) => {
                let literal: Option<IpAddr> = facts.host.parse().ok();
                literal
                    .iter()
                    .chain(facts.dst_addrs.iter())
                    .any(|addr| list.iter().any(|m| m.contains(*addr)))
            }
            AclKind::DstDomain(patterns) => {
                let names = std::iter::once(facts.host).chain(facts.host_aliases.iter().map(String::as_str));
                names.into_iter().any(|name| patterns.iter().any(|p| p.matches(name)))
            }
            AclKind::Port(ranges) => in_ranges(ranges, facts.port),
            AclKind::LocalPort(ranges) => in_ranges(ranges, facts.local_port),
            AclKind::Method(methods) => methods.iter().any(|m| m.eq_ignore_ascii_case(facts.method)),
            AclKind::Proto(protos) => protos.iter().any(|p| p.eq_ignore_ascii_case(facts.proto)),
            AclKind::ProxyAuth(users) => match (users, facts.user) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(list), Some(user)) => list.iter().any(|u| u == user),
            },
            AclKind::Manager => {
                facts.proto.eq_ignore_ascii_case("cache_object") || facts.path.starts_with("/squid-internal-mgr/")
            }
            _ if facts.more.worst_case => true,
            kind => kind.matches_more(facts),
        }
    }

    /// The kinds whole-config analysis cannot cut into classes (regexes, time, reply and
    /// connection state): it assumes whatever makes the policy most open.
    pub fn is_opaque(&self) -> bool {
        !matches!(
            self,
            AclKind::All
                | AclKind::Src(_)
                | AclKind::Dst(_)
                | AclKind::DstDomain(_)
                | AclKind::Port(_)
                | AclKind::Method(_)
                | AclKind::Proto(_)
                | AclKind::LocalPort(_)
                | AclKind::ProxyAuth(_)
                | AclKind::Manager
        )
    }

    /// Whether the kind reads the reply (only meaningful in `http_reply_access` and
    /// `reply_header_access`; elsewhere it matches nothing, as Squid's would fail to match).
    pub fn needs_reply(&self) -> bool {
        matches!(
            self,
            AclKind::RepMimeType(_) | AclKind::RepHeader(_) | AclKind::HttpStatus(_)
        )
    }

    fn matches_more(&self, facts: &RequestFacts<'_>) -> bool {
        let more = &facts.more;
        let request_header = |name: &str| joined_header(more.request_headers, name);
        match self {
            AclKind::UrlRegex(p) => p.is_match(&percent_decoded(more.url)),
            AclKind::UrlPathRegex(p) => p.is_match(&percent_decoded(more.path_query)),
            AclKind::DstDomRegex(p) => std::iter::once(facts.host)
                .chain(facts.host_aliases.iter().map(String::as_str))
                .any(|h| p.is_match(h)),
            AclKind::Browser(p) => request_header("user-agent").is_some_and(|v| p.is_match(&v)),
            AclKind::UserCertCn(p) => more.client_cert_cn.is_some_and(|cn| p.is_match(cn)),
            AclKind::ReqMimeType(p) => p.is_match(&request_header("content-type").unwrap_or_default()),
            AclKind::RepMimeType(p) => more
                .reply
                .is_some_and(|r| p.is_match(&joined_header(r.headers, "content-type").unwrap_or_default())),
            AclKind::ReqHeader(list) => list.iter().any(|h| h.matches(more.request_headers)),
            AclKind::RepHeader(list) => more.reply.is_some_and(|r| list.iter().any(|h| h.matches(r.headers))),
            AclKind::HttpStatus(ranges) => more
                .reply
                .is_some_and(|r| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&r.status))),
            AclKind::Time(spans) => more.clock.is_some_and(|c| {
                spans
                    .iter()
                    .any(|s| s.days & (1 << c.weekday) != 0 && s.start <= c.minute_of_day && c.minute_of_day <= s.end)
            }),
            AclKind::LocalIp(list) => more.local_ip.is_some_and(|ip| list.iter().any(|m| m.contains(ip))),
            AclKind::PortName(names) => more.port_name.is_some_and(|n| names.iter().any(|x| x == n)),
            AclKind::MaxConn(limit) => more.client_connections > *limit,
            AclKind::Has(parts) => parts.iter().any(|p| match p {
                Component::Request | Component::Ale => true,
                Component::Response => more.reply.is_some(),
            }),
            AclKind::External(acl) => more.external.iter().any(|a| a.acl == *acl && a.matched),
            AclKind::AtStep(steps) => more.tls.is_some_and(|t| steps.contains(&t.step)),
            AclKind::ServerName(patterns) => patterns.iter().any(|p| p.matches(server_name(facts))),
            AclKind::ServerNameRegex(p) => p.is_match(server_name(facts)),
            AclKind::All
            | AclKind::Src(_)
            | AclKind::Dst(_)
            | AclKind::DstDomain(_)
            | AclKind::Port(_)
            | AclKind::Method(_)
            | AclKind::Proto(_)
            | AclKind::LocalPort(_)
            | AclKind::ProxyAuth(_)
            | AclKind::Manager => false, // decided in `matches`
        }
    }

    /// True when matching needs the destination's resolved addresses.
    pub fn needs_dst_addrs(&self) -> bool {
        matches!(self, AclKind::Dst(_))
    }
}

/// What `http_access` evaluation needs before it can decide, found by walking the rules
/// the way evaluation does (rules in order, ACLs left to right, stopping at the first ACL
/// that fails): the user (a `proxy_auth` ACL, or an external ACL whose format sends the
/// login, reached while `user_known` is false) or an external ACL's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    Nothing,
    User,
    External(ExternalRef),
}

/// See [`Pending`]. `needs_login(type_index)` says whether an external type's format sends
/// the user name.
pub fn pending(
    rules: &super::RuleList,
    acls: &super::AclSet,
    facts: &RequestFacts<'_>,
    user_known: bool,
    needs_login: impl Fn(usize) -> bool,
) -> Pending {
    for rule in &rules.rules {
        let mut matched = true;
        for acl_ref in &rule.acls {
            let kind = &acls.get(acl_ref.acl).kind;
            match kind {
                AclKind::ProxyAuth(_) if !user_known => return Pending::User,
                AclKind::External(acl) if !facts.more.external.iter().any(|a| a.acl == *acl) => {
                    if needs_login(acl.type_index) && !user_known {
                        return Pending::User;
                    }
                    return Pending::External(acl.clone());
                }
                _ => {}
            }
            if kind.matches(facts) == acl_ref.negated {
                matched = false;
                break;
            }
        }
        if matched {
            return Pending::Nothing;
        }
    }
    Pending::Nothing
}
