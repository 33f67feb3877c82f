//! Wording of a rectangle's four sides: the shortest honest label for a set of ports,
//! clients, hosts or methods (a short list, "any … except", or a named ACL).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::grid::{Dim, Grid, used_acls};
use crate::analysis::space::{NOBODY_HOST, OTHER_METHOD, SOME_USER};
use crate::policy::AclKind;

impl Grid<'_> {
    pub(super) fn port_label(&self, set: &BTreeSet<usize>) -> String {
        let named = self.named(Dim::Port);
        let pieces = |s: &BTreeSet<usize>| merge_ranges(s.iter().map(|&p| self.ports[p]));
        match choose(set, self.ports.len(), &named, pieces) {
            Label::Any => "any port".into(),
            Label::List(v) if v.len() == 1 && !v[0].contains('-') => format!("port {}", v[0]),
            Label::List(v) => format!("ports {}", v.join(", ")),
            Label::Named(n) => format!("ports in {n}"),
            Label::NotNamed(n) => format!("ports not in {n}"),
            Label::Except(v) => format!("any port except {}", v.join(", ")),
        }
    }

    pub(super) fn who_label(&self, set: &BTreeSet<usize>) -> String {
        if set.len() == self.whos.len() {
            return "any client".into();
        }
        // Project on the three parts; the label is exact when the set is their product.
        let addrs: BTreeSet<usize> = set.iter().map(|&w| self.addr_index(w)).collect();
        let ports: BTreeSet<u16> = set.iter().map(|&w| self.whos[w].local_port).collect();
        let users: BTreeSet<Option<&str>> = set.iter().map(|&w| self.whos[w].user.as_deref()).collect();
        let addr_count = self.addr_count();
        let mut parts = Vec::new();
        if addrs.len() < addr_count {
            parts.push(self.addr_label(&addrs));
        }
        if users.len() < self.space.users.len() {
            parts.push(user_label(&users));
        }
        if ports.len() < self.space.local_ports.len() {
            let list: Vec<String> = ports.iter().map(u16::to_string).collect();
            parts.push(format!("connected to port {}", list.join(", ")));
        }
        let exact = addrs.len() * users.len() * ports.len() == set.len();
        let text = if parts.is_empty() {
            "any client".to_string()
        } else {
            parts.join(", ")
        };
        if exact { text } else { format!("some of: {text}") }
    }

    fn addr_count(&self) -> usize {
        self.space.v4_sources.len() + self.space.v6_sources.len()
    }

    /// Index of a who's address among the address cells (whos repeat per port and user).
    fn addr_index(&self, w: usize) -> usize {
        (w / self.space.users.len()) % self.addr_count()
    }

    fn addr_label(&self, addrs: &BTreeSet<usize>) -> String {
        let reps: Vec<IpAddr> = (0..self.addr_count())
            .map(|a| self.whos[a * self.space.users.len()].addr)
            .collect();
        // Src tables are per who; the who of (first listener, address a, first user) is a * users.
        let users = self.space.users.len();
        let named: Vec<(String, BTreeSet<usize>)> = self
            .named(Dim::Who)
            .into_iter()
            .filter(|(name, _)| {
                self.config
                    .acls
                    .index_of(name)
                    .is_some_and(|i| matches!(self.config.acls.get(i).kind, AclKind::Src(_)))
            })
            .map(|(name, whos)| (name, (0..reps.len()).filter(|a| whos.contains(&(a * users))).collect()))
            .collect();
        let pieces = |s: &BTreeSet<usize>| ip_ranges(s.iter().map(|&a| self.space.source_cell(reps[a])));
        match choose(addrs, reps.len(), &named, pieces) {
            Label::Any => "any client".into(),
            Label::List(v) => format!("clients {}", v.join(", ")),
            Label::Named(n) => format!("clients in {n}"),
            Label::NotNamed(n) => format!("clients not in {n}"),
            Label::Except(v) => format!("any client except {}", v.join(", ")),
        }
    }

    pub(super) fn dest_label(&self, set: &BTreeSet<usize>) -> String {
        let named = self.named(Dim::Dest);
        let pieces = |s: &BTreeSet<usize>| self.dest_pieces(s);
        match choose(set, self.dests.len(), &named, pieces) {
            Label::Any => "any host".into(),
            Label::List(v) => v.join(", "),
            Label::Named(n) => format!("hosts in {n}"),
            Label::NotNamed(n) => format!("hosts not in {n}"),
            Label::Except(v) => format!("any host except {}", v.join(", ")),
        }
    }

    /// Host names (`.example.com` when the name and its subdomains are all in), address
    /// cells every name is in (`hosts at 10.0.0.0/8`), and names limited to some cells.
    fn dest_pieces(&self, set: &BTreeSet<usize>) -> Vec<String> {
        let hosts = &self.space.hosts;
        let per_host = self.dests.len() / hosts.len();
        let index = |h: usize, j: usize| h * per_host + j;
        let full_host = |h: usize| (0..per_host).all(|j| set.contains(&index(h, j)));
        let positions: HashMap<&str, usize> = hosts.iter().enumerate().map(|(i, h)| (h.as_str(), i)).collect();
        let position = |name: &str| positions.get(name).copied();
        let mut covered: BTreeSet<usize> = BTreeSet::new();
        let mut pieces = Vec::new();
        // Whole names first, parents before their "hopproxy-lint." subdomain cell.
        let (subs, names): (Vec<usize>, Vec<usize>) =
            (0..hosts.len()).partition(|&h| hosts[h].starts_with("hopproxy-lint.") && hosts[h] != NOBODY_HOST);
        for h in names.into_iter().chain(subs) {
            if !full_host(h) || covered.contains(&index(h, 0)) {
                continue;
            }
            covered.extend((0..per_host).map(|j| index(h, j)));
            let host = &hosts[h];
            let sub = position(&format!("hopproxy-lint.{host}")).filter(|&s| full_host(s));
            pieces.push(if host == NOBODY_HOST {
                "other hosts".to_string()
            } else if let Some(s) = sub {
                covered.extend((0..per_host).map(|j| index(s, j)));
                format!(".{host}")
            } else if let Some(parent) = host.strip_prefix("hopproxy-lint.") {
                format!("*.{parent}")
            } else {
                host.clone()
            });
        }
        if self.dests[0].dst.is_empty() {
            return pieces;
        }
        let cell = |d: usize| self.space.dst_cell(self.dests[d].dst[0]);
        let columns: Vec<usize> = (0..per_host)
            .filter(|&j| (0..hosts.len()).all(|h| set.contains(&index(h, j))))
            .collect();
        if !columns.is_empty() {
            covered.extend(columns.iter().flat_map(|&j| (0..hosts.len()).map(move |h| index(h, j))));
            pieces.push(format!(
                "hosts at {}",
                ip_ranges(columns.iter().map(|&j| cell(j))).join(", ")
            ));
        }
        for (h, host) in hosts.iter().enumerate() {
            let rest: Vec<usize> = (0..per_host)
                .map(|j| index(h, j))
                .filter(|d| set.contains(d) && !covered.contains(d))
                .collect();
            if !rest.is_empty() {
                let name = match host.strip_prefix("hopproxy-lint.") {
                    _ if host == NOBODY_HOST => "other hosts".to_string(),
                    Some(parent) => format!("*.{parent}"),
                    None => host.clone(),
                };
                pieces.push(format!(
                    "{name} at {}",
                    ip_ranges(rest.iter().map(|&d| cell(d))).join(", ")
                ));
            }
        }
        pieces
    }

    pub(super) fn kind_label(&self, set: &BTreeSet<usize>) -> String {
        let connect: BTreeSet<usize> = (0..self.kinds.len())
            .filter(|&k| self.kinds[k].method == "CONNECT")
            .collect();
        let plain: BTreeSet<usize> = (0..self.kinds.len())
            .filter(|&k| self.kinds[k].method != "CONNECT" && !self.kinds[k].manager)
            .collect();
        let manager: BTreeSet<usize> = (0..self.kinds.len()).filter(|&k| self.kinds[k].manager).collect();
        // Cache-manager requests are a corner of "other methods": leave them out of the
        // wording unless they are all a row covers.
        let core: BTreeSet<usize> = set.difference(&manager).copied().collect();
        if core.is_empty() {
            return "cache-manager requests".into();
        }
        if core == connect.union(&plain).copied().collect() {
            return "any method".into();
        }
        if core == connect {
            return "CONNECT".into();
        }
        if core == plain {
            return "other methods".into();
        }
        // Every non-CONNECT method, for some schemes only: "other methods (https)".
        let protos_of = |m: &str| -> BTreeSet<&str> {
            core.iter()
                .filter(|&&k| self.kinds[k].method == m)
                .map(|&k| self.kinds[k].proto.as_str())
                .collect()
        };
        if core.is_subset(&plain) {
            let methods: BTreeSet<&str> = plain.iter().map(|&k| self.kinds[k].method.as_str()).collect();
            let first = protos_of(methods.first().copied().unwrap_or_default());
            if !first.is_empty() && methods.iter().all(|m| protos_of(m) == first) {
                let list: Vec<&str> = first.into_iter().collect();
                return format!("other methods ({})", list.join(", ").to_lowercase());
            }
        }
        let mut names: Vec<String> = Vec::new();
        let methods: BTreeSet<&str> = core.iter().map(|&k| self.kinds[k].method.as_str()).collect();
        for method in methods {
            let of_method: BTreeSet<usize> = plain
                .union(&connect)
                .copied()
                .filter(|&k| self.kinds[k].method == method)
                .collect();
            let mine: BTreeSet<usize> = core.intersection(&of_method).copied().collect();
            let shown = if method == OTHER_METHOD {
                "other methods"
            } else {
                method
            };
            if mine == of_method {
                names.push(shown.to_string());
            } else {
                let protos: Vec<&str> = mine.iter().map(|&k| self.kinds[k].proto.as_str()).collect();
                names.push(format!("{shown} ({})", protos.join(", ").to_lowercase()));
            }
        }
        names.join(", ")
    }

    /// ACLs referenced by `http_access` that look at `dim`, with the values they match.
    fn named(&self, dim: Dim) -> Vec<(String, BTreeSet<usize>)> {
        used_acls(&[&self.config.http_access])
            .into_iter()
            .filter_map(|i| {
                let (d, table) = self.acl_table.get(&i)?;
                (*d == dim && !matches!(self.config.acls.get(i).kind, AclKind::All)).then(|| {
                    let set = (0..table.len()).filter(|&v| table[v]).collect();
                    (self.config.acls.get(i).name.clone(), set)
                })
            })
            .collect()
    }
}

enum Label {
    Any,
    List(Vec<String>),
    Named(String),
    NotNamed(String),
    Except(Vec<String>),
}

/// The shortest honest wording for a subset of one dimension: everything, a short list,
/// "everything except" a short list, a named ACL (or its complement), or the full list.
fn choose(
    set: &BTreeSet<usize>,
    size: usize,
    named: &[(String, BTreeSet<usize>)],
    pieces: impl Fn(&BTreeSet<usize>) -> Vec<String>,
) -> Label {
    const SHORT: usize = 3;
    if set.len() == size {
        return Label::Any;
    }
    let listed = pieces(set);
    let rest: BTreeSet<usize> = (0..size).filter(|i| !set.contains(i)).collect();
    let others = pieces(&rest);
    // "any port except 443" reads better than "ports 1-442, 444-65535".
    if others.len() <= SHORT && others.len() < listed.len() {
        return Label::Except(others);
    }
    if listed.len() <= SHORT {
        return Label::List(listed);
    }
    if others.len() <= SHORT {
        return Label::Except(others);
    }
    if let Some((name, _)) = named.iter().find(|(_, s)| s == set) {
        return Label::Named(name.clone());
    }
    if let Some((name, _)) = named.iter().find(|(_, s)| *s == rest) {
        return Label::NotNamed(name.clone());
    }
    Label::List(listed)
}

fn user_label(users: &BTreeSet<Option<&str>>) -> String {
    if users.iter().all(Option::is_none) {
        return "without authentication".into();
    }
    if users.contains(&Some(SOME_USER)) && !users.contains(&None) {
        return "authenticated users".into();
    }
    let named: Vec<&str> = users.iter().flatten().filter(|u| **u != SOME_USER).copied().collect();
    let noun = if named.len() == 1 { "user" } else { "users" };
    format!("{noun} {}", named.join(", "))
}

/// `443`, `1025-65535`, merging adjacent cells.
fn merge_ranges(cells: impl Iterator<Item = (u16, u16)>) -> Vec<String> {
    let mut merged: Vec<(u16, u16)> = Vec::new();
    for (lo, hi) in cells {
        match merged.last_mut() {
            Some(last) if u32::from(last.1) + 1 == u32::from(lo) => last.1 = hi,
            _ => merged.push((lo, hi)),
        }
    }
    merged
        .iter()
        .map(|&(lo, hi)| if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") })
        .collect()
}

/// Address cells as text: merged, then as one address, a CIDR block, or `a-b`.
fn ip_ranges(cells: impl Iterator<Item = (IpAddr, IpAddr)>) -> Vec<String> {
    use crate::analysis::space::bits;
    let mut sorted: Vec<(IpAddr, IpAddr)> = cells.collect();
    sorted.sort_by_key(|(lo, _)| (lo.is_ipv6(), bits(*lo)));
    let mut merged: Vec<(IpAddr, IpAddr)> = Vec::new();
    for (lo, hi) in sorted {
        match merged.last_mut() {
            Some(last) if last.1.is_ipv6() == lo.is_ipv6() && bits(last.1).checked_add(1) == Some(bits(lo)) => {
                last.1 = hi;
            }
            _ => merged.push((lo, hi)),
        }
    }
    merged
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                return lo.to_string();
            }
            let width = if lo.is_ipv6() { 128 } else { 32 };
            let size = bits(hi) - bits(lo);
            // A block: size + 1 is a power of two and lo is aligned to it.
            if size
                .checked_add(1)
                .is_some_and(|n| n.is_power_of_two() && bits(lo).is_multiple_of(n))
                || size == u128::MAX
            {
                let host_bits = if size == u128::MAX {
                    128
                } else {
                    (size + 1).trailing_zeros()
                };
                format!("{lo}/{}", width - host_bits)
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect()
}
