//! The request space of the access lists, cut into finitely many classes that every ACL
//! treats alike. Shared by [`super::lint`] (is the policy an open proxy?) and
//! [`super::explain`] (what is the policy, in words?), so both reason about the same cells.
//!
//! Every ACL value is an interval (ports, addresses) or a domain pattern: port and address
//! intervals cut at each value's ends, host names are taken as each pattern's domain, a
//! subdomain of it, and a name nothing matches. One representative per cell, evaluated with
//! the real first-match [`RuleList::evaluate`], decides the whole cell exactly.

use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::matcher::{Intervals, Matcher};

use crate::config::Config;
use crate::policy::{AclKind, AclSet, Action, IpMatch, RequestFacts, RuleList};

/// A marker method no config names, standing for "any other method".
pub(crate) const OTHER_METHOD: &str = "HOPPROXY-LINT-OTHER";
/// A host name no pattern matches.
pub(crate) const NOBODY_HOST: &str = "hopproxy-lint.invalid";
/// A user name no `proxy_auth` list names, standing for "any authenticated user".
pub(crate) const SOME_USER: &str = "hopproxy-lint-user";
/// A path the built-in `manager` ACL matches (cache-manager requests).
pub(crate) const MANAGER_PATH: &str = "/squid-internal-mgr/";

/// The "fixed" dimensions of one request: enumerated outside the per-point loops.
pub(crate) struct Probe<'a> {
    pub method: &'a str,
    pub port: u16,
    pub local_port: u16,
    pub path: &'a str,
}

impl<'a> Probe<'a> {
    pub fn new(method: &'a str, port: u16, local_port: u16) -> Probe<'a> {
        let path = if method == "CONNECT" { "" } else { "/" };
        Probe {
            method,
            port,
            local_port,
            path,
        }
    }
}

/// Representative values: one per cell of each dimension.
pub(crate) struct Space {
    pub port_cells: Vec<(u16, u16)>,
    pub methods: Vec<String>,
    /// Schemes for non-CONNECT requests (CONNECT is always `AUTHORITY`).
    pub protos: Vec<String>,
    pub local_ports: Vec<u16>,
    /// Every source cell, per family.
    pub v4_sources: Vec<IpAddr>,
    pub v6_sources: Vec<IpAddr>,
    /// "Anyone": the source cells no `src` value names, per family (all cells when the
    /// values cover the family). A blocklist (`deny bad`, `allow all`) is open to them.
    pub v4_anyone: Vec<IpAddr>,
    pub v6_anyone: Vec<IpAddr>,
    /// Unmatched name first.
    pub hosts: Vec<String>,
    /// Resolved-address sets to try for `dst` ACLs; the empty set (not resolved) first.
    pub dst_sets: Vec<Vec<IpAddr>>,
    /// "Anywhere": the empty set plus the address cells no `dst` value names.
    pub dst_anywhere: Vec<Vec<IpAddr>>,
    /// Users to try: `None` (not authenticated) and, when `proxy_auth` ACLs are in scope,
    /// each named user and [`SOME_USER`].
    pub users: Vec<Option<String>>,
    /// Whether a `manager` ACL is in scope (then [`MANAGER_PATH`] is a request kind).
    pub has_manager: bool,
    src_cuts: [Cuts; 2],
    dst_cuts: [Cuts; 2],
}

impl Space {
    /// Every ACL of the config, no authenticated users: what `check`'s lint reasons about.
    /// One representative per class of alike values (see [`Space::collapse`]), so the lint's
    /// work grows with the number of classes, not with the size of the lists.
    pub fn new(config: &Config) -> Space {
        let mut space = Space::build(config, |_| true, false);
        space.collapse(config);
        space
    }

    /// Keeps one client address, host name and resolved-address set per class: values that
    /// every ACL of the config matches alike (the same membership signature) get the same
    /// decision from every rule, so one of them decides for all. Big lists then cost one
    /// lookup per value instead of one evaluation per value and per combination. The lists
    /// keep their order, so the "named by nothing" values still come first.
    fn collapse(&mut self, config: &Config) {
        let matchers: Vec<Matcher<'_>> = config.acls.acls.iter().map(|a| Matcher::new(&a.kind)).collect();
        let of =
            |pick: fn(&Matcher<'_>) -> bool| -> Vec<&Matcher<'_>> { matchers.iter().filter(|m| pick(m)).collect() };
        let src = of(|m| matches!(m, Matcher::Src(_)));
        let dst = of(|m| matches!(m, Matcher::Dst(_)));
        // A `dst` ACL also reads an IP-literal host, so it is part of a host's signature.
        let names = of(|m| matches!(m, Matcher::DstDomain(_) | Matcher::Dst(_)));
        let probe = Probe::new("GET", 80, 3128);
        let signature = |acls: &[&Matcher<'_>], client: IpAddr, host: &str, dst: &[IpAddr]| -> Vec<bool> {
            let point = Point {
                proto: "HTTP",
                client,
                host,
                dst,
                user: None,
            };
            let facts = point.facts(&probe);
            acls.iter().map(|m| m.matches(&facts)).collect()
        };
        let nowhere = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let by_source = |a: &IpAddr| signature(&src, *a, NOBODY_HOST, &[]);
        self.v4_sources = first_of_each(&self.v4_sources, by_source);
        self.v6_sources = first_of_each(&self.v6_sources, by_source);
        let kept: HashSet<IpAddr> = self.v4_sources.iter().chain(&self.v6_sources).copied().collect();
        self.v4_anyone.retain(|a| kept.contains(a));
        self.v6_anyone.retain(|a| kept.contains(a));
        self.hosts = first_of_each(&self.hosts, |h| signature(&names, nowhere, h, &[]));
        // Not resolved and resolved to an address no `dst` names are alike too.
        let by_set = |set: &Vec<IpAddr>| signature(&dst, nowhere, NOBODY_HOST, set);
        self.dst_sets = first_of_each(&self.dst_sets, by_set);
        self.dst_anywhere = first_of_each(&self.dst_anywhere, by_set);
    }

    /// The cells of the ACLs `in_scope` accepts (by index); with `users`, the `proxy_auth`
    /// dimension too.
    pub fn build(config: &Config, in_scope: impl Fn(usize) -> bool, with_users: bool) -> Space {
        let acls = &config.acls.acls;
        let mut port_cuts: BTreeSet<u32> = [1, 443, 444, 65_536].into();
        let mut methods: BTreeSet<String> = ["CONNECT", "GET", OTHER_METHOD].iter().map(|s| s.to_string()).collect();
        let mut protos: BTreeSet<String> = ["HTTP".to_string()].into();
        let mut local_cuts: BTreeSet<u32> = BTreeSet::new();
        let mut src_v4 = Cuts::default();
        let mut src_v6 = Cuts::default();
        let mut dst_v4 = Cuts::default();
        let mut dst_v6 = Cuts::default();
        let mut hosts: BTreeSet<String> = BTreeSet::new();
        let mut user_names: BTreeSet<String> = BTreeSet::new();
        let mut has_auth = false;
        let mut has_manager = false;
        for (index, acl) in acls.iter().enumerate() {
            if !in_scope(index) {
                continue;
            }
            match &acl.kind {
                AclKind::Port(ranges) => {
                    for &(lo, hi) in ranges {
                        port_cuts.insert(u32::from(lo.max(1)));
                        port_cuts.insert(u32::from(hi) + 1);
                    }
                }
                AclKind::LocalPort(ranges) => {
                    for &(lo, hi) in ranges {
                        local_cuts.insert(u32::from(lo));
                        local_cuts.insert(u32::from(hi) + 1);
                    }
                }
                AclKind::Method(list) => methods.extend(list.iter().cloned()),
                AclKind::Proto(list) => protos.extend(list.iter().filter(|p| *p != "AUTHORITY").cloned()),
                AclKind::Src(list) => list.iter().for_each(|m| cut(m, &mut src_v4, &mut src_v6)),
                AclKind::Dst(list) => list.iter().for_each(|m| cut(m, &mut dst_v4, &mut dst_v6)),
                AclKind::DstDomain(patterns) => {
                    for p in patterns {
                        hosts.insert(p.domain.clone());
                        hosts.insert(format!("hopproxy-lint.{}", p.domain));
                    }
                }
                AclKind::ProxyAuth(list) => {
                    has_auth = true;
                    user_names.extend(list.iter().flatten().cloned());
                }
                AclKind::Manager => has_manager = true,
                AclKind::All => {}
                // Regexes, time, reply and connection state: no cells; the evaluator takes
                // them at their worst (`MoreFacts::worst_case`).
                _ => {}
            }
        }
        let cuts: Vec<u32> = port_cuts.into_iter().collect();
        let port_cells = cuts.windows(2).map(|w| (w[0] as u16, (w[1] - 1) as u16)).collect();
        // The listeners are what clients can reach; LocalPort cuts only matter without them.
        let mut local_ports: Vec<u16> = config.http_ports.iter().map(|p| p.port).collect();
        local_ports.sort_unstable();
        local_ports.dedup();
        if local_ports.is_empty() {
            local_ports = local_cuts.iter().filter_map(|&c| u16::try_from(c).ok()).collect();
            local_ports.push(3128);
        }
        let mut host_list = vec![NOBODY_HOST.to_string()];
        host_list.extend(hosts);
        let mut dst_sets = vec![Vec::new()];
        dst_sets.extend(dst_v4.reps(false).into_iter().chain(dst_v6.reps(true)).map(|a| vec![a]));
        let values_of = |dst: bool| -> Vec<&IpMatch> {
            acls.iter()
                .enumerate()
                .filter(|(i, _)| in_scope(*i))
                .flat_map(|(_, a)| match (&a.kind, dst) {
                    (AclKind::Src(list), false) | (AclKind::Dst(list), true) => list.as_slice(),
                    _ => &[],
                })
                .collect()
        };
        let (src_values, dst_values) = (Intervals::new(values_of(false)), Intervals::new(values_of(true)));
        let (v4_sources, v6_sources) = (src_v4.reps(false), src_v6.reps(true));
        let unnamed = |reps: &[IpAddr], values: &Intervals| -> Vec<IpAddr> {
            reps.iter().copied().filter(|a| !values.contains(*a)).collect()
        };
        let anyone = |reps: &[IpAddr]| {
            let free = unnamed(reps, &src_values);
            if free.is_empty() { reps.to_vec() } else { free }
        };
        let mut dst_anywhere = vec![Vec::new()];
        for family in [dst_v4.reps(false), dst_v6.reps(true)] {
            dst_anywhere.extend(unnamed(&family, &dst_values).into_iter().map(|a| vec![a]));
        }
        let mut users = vec![None];
        if with_users && has_auth {
            users.push(Some(SOME_USER.to_string()));
            users.extend(user_names.into_iter().map(Some));
        }
        Space {
            port_cells,
            methods: methods.into_iter().collect(),
            protos: protos.into_iter().collect(),
            local_ports,
            v4_anyone: anyone(&v4_sources),
            v6_anyone: anyone(&v6_sources),
            v4_sources,
            v6_sources,
            hosts: host_list,
            dst_sets,
            dst_anywhere,
            users,
            has_manager,
            src_cuts: [src_v4, src_v6],
            dst_cuts: [dst_v4, dst_v6],
        }
    }

    /// The address interval of the source cell that starts at `rep`.
    pub fn source_cell(&self, rep: IpAddr) -> (IpAddr, IpAddr) {
        cell_of(&self.src_cuts, rep)
    }

    /// The address interval of the `dst` cell that starts at `rep`.
    pub fn dst_cell(&self, rep: IpAddr) -> (IpAddr, IpAddr) {
        cell_of(&self.dst_cuts, rep)
    }

    /// Evaluates `http_access` for one point; returns the decision and the deciding rule.
    pub fn decide(
        config: &Config,
        probe: &Probe<'_>,
        proto: &str,
        client: IpAddr,
        host: &str,
        dst: &[IpAddr],
    ) -> (Action, Option<usize>) {
        let point = Point {
            proto,
            client,
            host,
            dst,
            user: None,
        };
        Space::decide_in(&config.http_access, &config.acls, probe, &point).expect("lint runs only on non-empty lists")
    }

    /// Evaluates any non-empty list for one point (`None` for an empty list).
    pub fn decide_in(
        list: &RuleList,
        acls: &AclSet,
        probe: &Probe<'_>,
        point: &Point<'_>,
    ) -> Option<(Action, Option<usize>)> {
        #[cfg(test)]
        EVALUATIONS.with(|n| n.set(n.get() + 1));
        let facts = point.facts(probe);
        list.evaluate(acls, &facts).map(|d| (d.action, d.rule))
    }

    /// When the first rule that can match this probe depends only on fixed dimensions
    /// (port, method, scheme, listener), every point gets its decision: no enumeration.
    /// This is the common case (`deny CONNECT !SSL_ports`, `deny all`) and keeps big
    /// domain or network lists cheap.
    pub fn fixed_decision(config: &Config, probe: &Probe<'_>, proto: &str) -> Option<(Action, Option<usize>)> {
        Space::fixed_decision_in(&config.http_access, &config.acls, probe, proto, false)
    }

    /// [`Space::fixed_decision`] for any list; with `users_vary`, `proxy_auth` is a
    /// per-point dimension too.
    pub fn fixed_decision_in(
        list: &RuleList,
        acls: &AclSet,
        probe: &Probe<'_>,
        proto: &str,
        users_vary: bool,
    ) -> Option<(Action, Option<usize>)> {
        let point = Point {
            proto,
            client: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            host: NOBODY_HOST,
            dst: &[],
            user: None,
        };
        let facts = point.facts(probe);
        for (index, rule) in list.rules.iter().enumerate() {
            let mut variable = false;
            let mut fixed_ok = true;
            for r in &rule.acls {
                let kind = &acls.get(r.acl).kind;
                let per_point = matches!(kind, AclKind::Src(_) | AclKind::Dst(_) | AclKind::DstDomain(_))
                    || (users_vary && matches!(kind, AclKind::ProxyAuth(_)));
                if per_point {
                    variable = true;
                } else if !acls.ref_matches(rule.action, r, &facts) {
                    fixed_ok = false;
                    break;
                }
            }
            match (fixed_ok, variable) {
                (false, _) => continue,
                (true, false) => return Some((rule.action, Some(index))),
                (true, true) => return None,
            }
        }
        let last = list.rules.last()?;
        Some((last.action.opposite(), None))
    }

    pub fn protos_for<'a>(&'a self, probe: &Probe<'_>) -> Vec<&'a str> {
        if probe.method == "CONNECT" {
            vec!["AUTHORITY"]
        } else {
            self.protos.iter().map(String::as_str).collect()
        }
    }
}

/// The "per point" dimensions of one request.
pub(crate) struct Point<'a> {
    pub proto: &'a str,
    pub client: IpAddr,
    pub host: &'a str,
    pub dst: &'a [IpAddr],
    pub user: Option<&'a str>,
}

impl Point<'_> {
    pub fn facts<'a>(&'a self, probe: &'a Probe<'_>) -> RequestFacts<'a> {
        RequestFacts {
            client: self.client,
            method: probe.method,
            proto: self.proto,
            host: self.host,
            port: probe.port,
            path: probe.path,
            dst_addrs: self.dst,
            host_aliases: &[],
            local_port: probe.local_port,
            user: self.user,
            more: crate::policy::MoreFacts {
                worst_case: true,
                ..Default::default()
            },
        }
    }
}

#[cfg(test)]
thread_local! {
    static EVALUATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many points this thread has evaluated, so tests can assert how the work grows.
#[cfg(test)]
pub(crate) fn evaluations() -> usize {
    EVALUATIONS.with(std::cell::Cell::get)
}

/// The first item of each class of items with the same signature, in their order.
fn first_of_each<T: Clone>(items: &[T], signature: impl Fn(&T) -> Vec<bool>) -> Vec<T> {
    let mut seen: HashSet<Vec<bool>> = HashSet::new();
    items
        .iter()
        .filter(|item| seen.insert(signature(item)))
        .cloned()
        .collect()
}

/// Interval cut points of one address family, as integers.
#[derive(Default)]
struct Cuts(BTreeSet<u128>);

impl Cuts {
    /// One address per cell: the start of each interval between cuts, plus 0.
    fn reps(&self, v6: bool) -> Vec<IpAddr> {
        let max: u128 = if v6 { u128::MAX } else { u128::from(u32::MAX) };
        let mut starts: BTreeSet<u128> = self.0.iter().copied().filter(|c| *c <= max).collect();
        starts.insert(0);
        // The cell no value names comes first: it is the most likely to be denied.
        let mut reps: Vec<u128> = starts.into_iter().collect();
        reps.sort_by_key(|s| self.0.contains(s));
        reps.into_iter().map(|s| addr(s, v6)).collect()
    }

    /// The last address of the cell starting at `start`.
    fn end_of(&self, start: u128, v6: bool) -> u128 {
        let max: u128 = if v6 { u128::MAX } else { u128::from(u32::MAX) };
        self.0
            .range(start + 1..)
            .next()
            .filter(|c| **c <= max)
            .map_or(max, |next| next - 1)
    }
}

fn cell_of(cuts: &[Cuts; 2], rep: IpAddr) -> (IpAddr, IpAddr) {
    let v6 = rep.is_ipv6();
    let start = bits(rep);
    (rep, addr(cuts[usize::from(v6)].end_of(start, v6), v6))
}

fn addr(n: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    }
}

fn cut(m: &IpMatch, v4: &mut Cuts, v6: &mut Cuts) {
    let (is_v4, lo, hi) = match m {
        IpMatch::Net(net) => (net.addr().is_ipv4(), bits(net.network()), bits(net.broadcast())),
        IpMatch::Range(lo, hi) => (lo.is_ipv4(), bits(*lo), bits(*hi)),
    };
    let cuts = if is_v4 { v4 } else { v6 };
    cuts.0.insert(lo);
    if let Some(next) = hi.checked_add(1) {
        cuts.0.insert(next);
    }
}

pub(crate) fn bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}
