//! ACL membership by lookup instead of by scan, for whole-config analysis of big lists: an
//! address is found by binary search in merged intervals, a host name by one hash lookup per
//! label. Same answers as [`AclKind::matches`], which stays the evaluator's own (simple)
//! code; the analysis asks for the same fact hundreds of thousands of times, so it indexes.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::policy::{AclKind, DomainPattern, IpMatch, RequestFacts};

use super::space::bits;

/// One ACL, indexed when it is a list of addresses or names.
pub(crate) enum Matcher<'a> {
    Src(Intervals),
    Dst(Intervals),
    DstDomain(Domains),
    Other(&'a AclKind),
}

impl<'a> Matcher<'a> {
    pub fn new(kind: &'a AclKind) -> Matcher<'a> {
        match kind {
            AclKind::Src(list) => Matcher::Src(Intervals::new(list)),
            AclKind::Dst(list) => Matcher::Dst(Intervals::new(list)),
            AclKind::DstDomain(list) => Matcher::DstDomain(Domains::new(list)),
            other => Matcher::Other(other),
        }
    }

    /// [`AclKind::matches`], by lookup.
    pub fn matches(&self, facts: &RequestFacts<'_>) -> bool {
        match self {
            Matcher::Src(set) => set.contains(facts.client),
            Matcher::Dst(set) => {
                let literal: Option<IpAddr> = facts.host.parse().ok();
                literal.iter().chain(facts.dst_addrs).any(|a| set.contains(*a))
            }
            Matcher::DstDomain(names) => std::iter::once(facts.host)
                .chain(facts.host_aliases.iter().map(String::as_str))
                .any(|n| names.matches(n)),
            Matcher::Other(kind) => kind.matches(facts),
        }
    }
}

/// Address elements as sorted, merged, inclusive integer intervals per family.
#[derive(Default)]
pub(crate) struct Intervals {
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
}

impl Intervals {
    pub fn new<'m>(list: impl IntoIterator<Item = &'m IpMatch>) -> Intervals {
        let mut set = Intervals::default();
        for m in list {
            let (lo, hi) = match m {
                IpMatch::Net(net) => (net.network(), net.broadcast()),
                // A range across families matches nothing (as `IpMatch::contains`).
                IpMatch::Range(lo, hi) if lo.is_ipv4() != hi.is_ipv4() => continue,
                IpMatch::Range(lo, hi) => (*lo, *hi),
            };
            if bits(lo) <= bits(hi) {
                let family = if lo.is_ipv4() { &mut set.v4 } else { &mut set.v6 };
                family.push((bits(lo), bits(hi)));
            }
        }
        for family in [&mut set.v4, &mut set.v6] {
            family.sort_unstable();
            let mut merged: Vec<(u128, u128)> = Vec::with_capacity(family.len());
            for &(lo, hi) in family.iter() {
                match merged.last_mut() {
                    Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                    _ => merged.push((lo, hi)),
                }
            }
            *family = merged;
        }
        set
    }

    /// [`IpMatch::contains`] for any element (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        let family = if addr.is_ipv4() { &self.v4 } else { &self.v6 };
        let n = bits(addr);
        // The last interval starting at or before n.
        let after = family.partition_point(|&(lo, _)| lo <= n);
        after > 0 && n <= family[after - 1].1
    }
}

/// `dstdomain` values: exact names and names whose subdomains match too.
pub(crate) struct Domains {
    exact: HashSet<String>,
    with_subdomains: HashSet<String>,
}

impl Domains {
    fn new(list: &[DomainPattern]) -> Domains {
        Domains {
            exact: list.iter().map(|p| p.domain.clone()).collect(),
            with_subdomains: list
                .iter()
                .filter(|p| p.include_subdomains)
                .map(|p| p.domain.clone())
                .collect(),
        }
    }

    /// [`DomainPattern::matches`] for any value: the name itself, or the part after any dot.
    fn matches(&self, host: &str) -> bool {
        self.exact.contains(host)
            || host
                .match_indices('.')
                .any(|(at, _)| self.with_subdomains.contains(&host[at + 1..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lookup agrees with the evaluator's scan on edge cases: adjacent and nested elements,
    /// ranges, mapped addresses, the empty `.` domain, names that only end like a value.
    #[test]
    fn lookup_agrees_with_the_scan() {
        let ips: Vec<IpMatch> = ["10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/8", "192.0.2.7", "2001:db8::/32"]
            .iter()
            .map(|s| {
                IpMatch::Net(
                    s.parse::<ipnet::IpNet>()
                        .unwrap_or_else(|_| format!("{s}/32").parse().unwrap()),
                )
            })
            .chain([
                IpMatch::Range("172.16.0.9".parse().unwrap(), "172.16.1.3".parse().unwrap()),
                IpMatch::Range("1.2.3.4".parse().unwrap(), "::1".parse().unwrap()),
                IpMatch::Range("9.9.9.9".parse().unwrap(), "9.9.9.1".parse().unwrap()),
            ])
            .collect();
        let set = Intervals::new(&ips);
        for a in [
            "9.255.255.255",
            "10.0.0.0",
            "11.255.255.255",
            "12.0.0.0",
            "192.0.2.6",
            "192.0.2.7",
            "192.0.2.8",
            "172.16.0.8",
            "172.16.0.9",
            "172.16.1.3",
            "172.16.1.4",
            "::ffff:10.2.3.4",
            "2001:db8::1",
            "2001:db9::",
            "::1",
            "1.2.3.5",
            "9.9.9.5",
            "0.0.0.0",
            "255.255.255.255",
        ] {
            let addr: IpAddr = a.parse().unwrap();
            assert_eq!(set.contains(addr), ips.iter().any(|m| m.contains(addr)), "{a}");
        }
        let patterns: Vec<DomainPattern> = [".example.com", "exact.org", ".", "a.b.c"]
            .iter()
            .map(|v| DomainPattern::parse(v))
            .collect();
        let names = Domains::new(&patterns);
        for host in [
            "example.com",
            "x.example.com",
            "xexample.com",
            "exact.org",
            "x.exact.org",
            "",
            "trailing.",
            "a.b.c",
            "z.a.b.c",
            "b.c",
            "com",
        ] {
            assert_eq!(
                names.matches(host),
                patterns.iter().any(|p| p.matches(host)),
                "{host:?}"
            );
        }
    }
}
