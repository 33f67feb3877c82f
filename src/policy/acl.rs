//! ACL kinds and how each one matches a request. Pure: no I/O, no DNS.

use std::net::IpAddr;

use ipnet::IpNet;

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
        }
    }

    /// True when matching needs the destination's resolved addresses.
    pub fn needs_dst_addrs(&self) -> bool {
        matches!(self, AclKind::Dst(_))
    }
}
