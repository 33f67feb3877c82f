//! Every class of the request space with its decision, and the rectangles of classes one
//! `http_access` line decides (widened over classes earlier lines decide the same way).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use crate::analysis::matcher::Matcher;
use crate::analysis::space::{self, MANAGER_PATH, Point, Probe, Space};
use crate::config::Config;
use crate::policy::{AclKind, Action, Rule, RuleList};

/// Who sends the request: listener port, client address cell, user.
pub(super) struct Who {
    pub(super) local_port: u16,
    pub(super) addr: IpAddr,
    pub(super) user: Option<String>,
}

/// Where it goes: host name cell and resolved-address cell.
pub(super) struct Dest {
    pub(super) host: String,
    pub(super) dst: Vec<IpAddr>,
}

/// What it is: method, scheme, and whether it asks for a cache-manager page.
pub(super) struct Kind {
    pub(super) method: String,
    pub(super) proto: String,
    pub(super) manager: bool,
}

/// A list's decision per class, indexed by [`Grid::at`].
pub(super) type Decisions = Vec<(Action, Option<usize>)>;

/// For each value, the first value with the same signature.
fn representatives(signatures: &[usize]) -> Vec<usize> {
    let mut first: BTreeMap<usize, usize> = BTreeMap::new();
    signatures
        .iter()
        .enumerate()
        .map(|(i, sig)| *first.entry(*sig).or_insert(i))
        .collect()
}

/// A set of cells of one dimension.
pub(super) type Indices = BTreeSet<usize>;

/// A rectangle of classes, as indices into the grid's dimensions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Shape {
    pub(super) ports: BTreeSet<usize>,
    pub(super) kinds: BTreeSet<usize>,
    pub(super) whos: BTreeSet<usize>,
    pub(super) dests: BTreeSet<usize>,
}

/// Every class of the request space with its `http_access` decision.
pub(super) struct Grid<'c> {
    pub(super) config: &'c Config,
    pub(super) space: Space,
    pub(super) ports: Vec<(u16, u16)>,
    pub(super) kinds: Vec<Kind>,
    pub(super) whos: Vec<Who>,
    pub(super) dests: Vec<Dest>,
    /// Decision per class, indexed by [`Grid::at`].
    pub(super) decided: Vec<(Action, Option<usize>)>,
    pub(super) acl_table: BTreeMap<usize, (Dim, Vec<bool>)>,
    /// Per who (dest): the first who (dest) every ACL treats alike; shapes are built on
    /// these representatives and expanded at the end.
    pub(super) who_rep: Vec<usize>,
    pub(super) dest_rep: Vec<usize>,
    /// Per who (dest): the number of its class, and how many classes there are. Decisions
    /// are kept per class, so big lists cost one entry per class, not per value.
    who_class: Vec<usize>,
    dest_class: Vec<usize>,
    who_classes: usize,
    dest_classes: usize,
}

/// The one dimension an ACL looks at.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Dim {
    Port,
    Kind,
    Who,
    Dest,
}

impl<'c> Grid<'c> {
    pub(super) fn new(config: &'c Config) -> Grid<'c> {
        // Routing's lists too, so one grid serves the access reading and the routing.
        let mut lists: Vec<&RuleList> = vec![&config.http_access, &config.never_direct, &config.always_direct];
        lists.extend(config.peers.iter().map(|p| &p.access));
        let used = used_acls(&lists);
        let space = Space::build(config, |i| used.contains(&i), true);
        let mut kinds = Vec::new();
        for method in &space.methods {
            if method == "CONNECT" {
                kinds.push(Kind {
                    method: method.clone(),
                    proto: "AUTHORITY".into(),
                    manager: false,
                });
                continue;
            }
            for proto in &space.protos {
                kinds.push(Kind {
                    method: method.clone(),
                    proto: proto.clone(),
                    manager: false,
                });
            }
        }
        if space.has_manager {
            kinds.push(Kind {
                method: "GET".into(),
                proto: "HTTP".into(),
                manager: true,
            });
        }
        let mut whos = Vec::new();
        for &local_port in &space.local_ports {
            let mut addrs: Vec<IpAddr> = space.v4_sources.iter().chain(&space.v6_sources).copied().collect();
            addrs.sort_by_key(|a| (a.is_ipv6(), space::bits(*a)));
            for addr in addrs {
                for user in &space.users {
                    whos.push(Who {
                        local_port,
                        addr,
                        user: user.clone(),
                    });
                }
            }
        }
        // With `dst` ACLs every host resolves to one address cell; without, "not resolved"
        // is the only (and irrelevant) choice.
        let dst_sets: Vec<Vec<IpAddr>> = if space.dst_sets.len() > 1 {
            let mut sets = space.dst_sets[1..].to_vec();
            sets.sort_by_key(|s| (s[0].is_ipv6(), space::bits(s[0])));
            sets
        } else {
            vec![Vec::new()]
        };
        let mut dests = Vec::new();
        for host in &space.hosts {
            for dst in &dst_sets {
                dests.push(Dest {
                    host: host.clone(),
                    dst: dst.clone(),
                });
            }
        }
        let mut grid = Grid {
            config,
            ports: space.port_cells.clone(),
            space,
            kinds,
            whos,
            dests,
            decided: Vec::new(),
            acl_table: BTreeMap::new(),
            who_rep: Vec::new(),
            dest_rep: Vec::new(),
            who_class: Vec::new(),
            dest_class: Vec::new(),
            who_classes: 0,
            dest_classes: 0,
        };
        grid.build_acl_table(&used);
        grid.who_class = grid.signatures(Dim::Who, grid.whos.len());
        grid.dest_class = grid.signatures(Dim::Dest, grid.dests.len());
        grid.who_rep = representatives(&grid.who_class);
        grid.dest_rep = representatives(&grid.dest_class);
        grid.who_classes = grid.who_rep.iter().enumerate().filter(|(i, r)| i == *r).count();
        grid.dest_classes = grid.dest_rep.iter().enumerate().filter(|(i, r)| i == *r).count();
        if !config.http_access.is_empty() {
            grid.decided = grid.evaluate_all(&config.http_access);
        }
        grid
    }

    /// Where the decision of the class of (port, kind, who, dest) is kept: any who or dest
    /// of a class gives its class's place.
    fn at(&self, port: usize, kind: usize, who: usize, dest: usize) -> usize {
        ((port * self.kinds.len() + kind) * self.who_classes + self.who_class[who]) * self.dest_classes
            + self.dest_class[dest]
    }

    fn probe(&self, port: usize, kind: usize, who: usize) -> Probe<'_> {
        let k = &self.kinds[kind];
        let mut probe = Probe::new(&k.method, self.ports[port].0, self.whos[who].local_port);
        if k.manager {
            probe.path = MANAGER_PATH;
        }
        probe
    }

    fn point(&self, kind: usize, who: usize, dest: usize) -> Point<'_> {
        let (w, d) = (&self.whos[who], &self.dests[dest]);
        Point {
            proto: &self.kinds[kind].proto,
            client: w.addr,
            host: &d.host,
            dst: &d.dst,
            user: w.user.as_deref(),
        }
    }

    /// The decision for every class, in [`Grid::at`] order, from the real
    /// [`RuleList::evaluate`] on the class's representative (clients and hosts that every
    /// ACL treats alike are one class). The fixed-dimension shortcut settles whole (port,
    /// kind, listener) slices at once where it can.
    pub(super) fn evaluate_all(&self, list: &RuleList) -> Vec<(Action, Option<usize>)> {
        let acls = &self.config.acls;
        let total = self.ports.len() * self.kinds.len() * self.who_classes * self.dest_classes;
        let mut out = vec![(Action::Deny, None); total];
        for port in 0..self.ports.len() {
            for kind in 0..self.kinds.len() {
                let mut fixed: BTreeMap<u16, Option<(Action, Option<usize>)>> = BTreeMap::new();
                for who in self.reps(&self.who_rep) {
                    let probe = self.probe(port, kind, who);
                    let shortcut = *fixed
                        .entry(probe.local_port)
                        .or_insert_with(|| Space::fixed_decision_in(list, acls, &probe, &self.kinds[kind].proto, true));
                    for dest in self.reps(&self.dest_rep) {
                        out[self.at(port, kind, who, dest)] = shortcut.unwrap_or_else(|| {
                            Space::decide_in(list, acls, &probe, &self.point(kind, who, dest))
                                .expect("list is not empty")
                        });
                    }
                }
            }
        }
        out
    }

    /// For each value of `dim`, the number of its class of values that every ACL of that
    /// dimension treats alike (same match result for each), numbered in order of first use.
    fn signatures(&self, dim: Dim, size: usize) -> Vec<usize> {
        let tables: Vec<&Vec<bool>> = self
            .acl_table
            .values()
            .filter(|(d, _)| *d == dim)
            .map(|(_, t)| t)
            .collect();
        let mut ids: HashMap<Vec<bool>, usize> = HashMap::new();
        (0..size)
            .map(|v| {
                let key: Vec<bool> = tables.iter().map(|t| t[v]).collect();
                let next = ids.len();
                *ids.entry(key).or_insert(next)
            })
            .collect()
    }

    /// Whether a line matches a class, from the per-dimension tables (each ACL reads one
    /// dimension only), so widening stays cheap on big domain and network lists.
    fn rule_matches(&self, rule: &Rule, port: usize, kind: usize, who: usize, dest: usize) -> bool {
        rule.acls.iter().all(|r| {
            if self.config.acls.get(r.acl).kind.is_opaque() {
                return rule.action == Action::Allow;
            }
            let (dim, table) = &self.acl_table[&r.acl];
            let at = match dim {
                Dim::Port => port,
                Dim::Kind => kind,
                Dim::Who => who,
                Dim::Dest => dest,
            };
            table[at] != r.negated
        })
    }

    /// Per ACL the rules use: which values of its dimension it matches.
    fn build_acl_table(&mut self, used: &BTreeSet<usize>) {
        for &acl in used {
            let kind = &self.config.acls.get(acl).kind;
            let dim = match kind {
                AclKind::Src(_) | AclKind::LocalPort(_) | AclKind::ProxyAuth(_) | AclKind::All => Dim::Who,
                AclKind::Dst(_) | AclKind::DstDomain(_) => Dim::Dest,
                AclKind::Port(_) => Dim::Port,
                AclKind::Method(_) | AclKind::Proto(_) | AclKind::Manager => Dim::Kind,
                // Kinds analysis cannot enumerate; `rule_matches` reads them at their worst.
                _ => Dim::Kind,
            };
            let size = match dim {
                Dim::Port => self.ports.len(),
                Dim::Kind => self.kinds.len(),
                Dim::Who => self.whos.len(),
                Dim::Dest => self.dests.len(),
            };
            // Indexed lookups: the tables of big address and name lists are the costly part.
            let matcher = Matcher::new(kind);
            let table = (0..size)
                .map(|i| {
                    let (p, k, w, d) = match dim {
                        Dim::Port => (i, 0, 0, 0),
                        Dim::Kind => (0, i, 0, 0),
                        Dim::Who => (0, 0, i, 0),
                        Dim::Dest => (0, 0, 0, i),
                    };
                    let probe = self.probe(p, k, w);
                    let point = self.point(k, w, d);
                    matcher.matches(&point.facts(&probe))
                })
                .collect();
            self.acl_table.insert(acl, (dim, table));
        }
    }

    /// The line matches every class (`deny all`, `allow all`).
    pub(super) fn matches_everything(&self, index: usize) -> bool {
        let rule = &self.config.http_access.rules[index];
        self.cells().all(|(p, k, w, d)| self.rule_matches(rule, p, k, w, d))
    }

    /// One class per (port, kind, who representative, dest representative).
    pub(super) fn cells(&self) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        (0..self.ports.len()).flat_map(move |p| {
            (0..self.kinds.len()).flat_map(move |k| {
                self.reps(&self.who_rep)
                    .flat_map(move |w| self.reps(&self.dest_rep).map(move |d| (p, k, w, d)))
            })
        })
    }

    pub(super) fn reps<'a>(&self, rep: &'a [usize]) -> impl Iterator<Item = usize> + 'a {
        (0..rep.len()).filter(move |&i| rep[i] == i)
    }

    /// The classes this line may show: it decides them, or an earlier line decided them the
    /// same way and this line matches them too. Indexed like [`Grid::at`].
    fn showable(&self, index: usize) -> Vec<bool> {
        let rule = &self.config.http_access.rules[index];
        let mut show = vec![false; self.decided.len()];
        for (p, k, w, d) in self.cells() {
            let at = self.at(p, k, w, d);
            show[at] = match self.decided[at] {
                (_, Some(j)) if j == index => true,
                (action, Some(j)) if j < index && action == rule.action => self.rule_matches(rule, p, k, w, d),
                _ => false,
            };
        }
        show
    }

    /// Rectangles covering the classes `rule` decides, widened over showable classes.
    pub(super) fn shapes_for(&self, index: usize) -> Vec<Shape> {
        let show = self.showable(index);
        let showable = |p, k, w, d| show[self.at(p, k, w, d)];
        // (port, kind) → the (who, dest) pairs decided by this rule there.
        let mut by_slice: BTreeMap<(usize, usize), BTreeSet<(usize, usize)>> = BTreeMap::new();
        for (p, k, w, d) in self.cells() {
            if self.decided[self.at(p, k, w, d)].1 == Some(index) {
                by_slice.entry((p, k)).or_default().insert((w, d));
            }
        }
        // Widen each slice over who × dest, then split it into who-set × dest-set products.
        let mut products: BTreeMap<(Indices, Indices), BTreeSet<(usize, usize)>> = BTreeMap::new();
        for (&(p, k), _) in by_slice.iter() {
            let mut dests_of: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
            for w in self.reps(&self.who_rep) {
                for d in self.reps(&self.dest_rep) {
                    if showable(p, k, w, d) {
                        dests_of.entry(w).or_default().insert(d);
                    }
                }
            }
            let mut whos_of: BTreeMap<BTreeSet<usize>, BTreeSet<usize>> = BTreeMap::new();
            for (w, ds) in dests_of {
                whos_of.entry(ds).or_default().insert(w);
            }
            for (ds, ws) in whos_of {
                products.entry((ws, ds)).or_default().insert((p, k));
            }
        }
        // Per product, kinds with the same port set share a row.
        let mut shapes = BTreeSet::new();
        for ((whos, dests), slices) in products {
            let mut ports_of: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
            for (p, k) in slices {
                ports_of.entry(k).or_default().insert(p);
            }
            let mut kinds_of: BTreeMap<BTreeSet<usize>, BTreeSet<usize>> = BTreeMap::new();
            for (k, ps) in ports_of {
                kinds_of.entry(ps).or_default().insert(k);
            }
            for (ports, kinds) in kinds_of {
                let shape = Shape {
                    ports,
                    kinds,
                    whos: whos.clone(),
                    dests: dests.clone(),
                };
                shapes.insert(self.widen(&show, shape));
            }
        }
        // Rows that differ only in methods become one row.
        let mut merged: BTreeMap<(Indices, Indices, Indices), Indices> = BTreeMap::new();
        for s in shapes {
            merged.entry((s.ports, s.whos, s.dests)).or_default().extend(s.kinds);
        }
        // Drop rows another row of this line contains.
        let all: Vec<Shape> = merged
            .into_iter()
            .map(|((ports, whos, dests), kinds)| Shape {
                ports,
                kinds,
                whos,
                dests,
            })
            .collect();
        let mut kept: Vec<Shape> = all
            .iter()
            .filter(|s| !all.iter().any(|o| o != *s && o.contains(s)))
            .cloned()
            .collect();
        // Back from representatives to every who and dest they stand for.
        for shape in &mut kept {
            shape.whos = (0..self.whos.len())
                .filter(|&w| shape.whos.contains(&self.who_rep[w]))
                .collect();
            shape.dests = (0..self.dests.len())
                .filter(|&d| shape.dests.contains(&self.dest_rep[d]))
                .collect();
        }
        kept.sort_by_key(|s| {
            (
                s.kinds.first().copied(),
                s.ports.first().copied(),
                s.whos.first().copied(),
            )
        });
        kept
    }

    /// Grows the ports, then the clients, then the hosts of a rectangle as far as every added
    /// class stays showable (methods are kept: "CONNECT" and "other methods" read better than
    /// one merged row).
    fn widen(&self, show: &[bool], mut s: Shape) -> Shape {
        let ok = |s: &Shape| {
            s.ports.iter().all(|&p| {
                s.kinds.iter().all(|&k| {
                    s.whos
                        .iter()
                        .all(|&w| s.dests.iter().all(|&d| show[self.at(p, k, w, d)]))
                })
            })
        };
        for p in 0..self.ports.len() {
            if !s.ports.contains(&p) {
                let trial = Shape {
                    ports: [p].into(),
                    ..s.clone()
                };
                if ok(&trial) {
                    s.ports.insert(p);
                }
            }
        }
        for w in self.reps(&self.who_rep) {
            if !s.whos.contains(&w) {
                let trial = Shape {
                    whos: [w].into(),
                    ..s.clone()
                };
                if ok(&trial) {
                    s.whos.insert(w);
                }
            }
        }
        for d in self.reps(&self.dest_rep) {
            if !s.dests.contains(&d) {
                let trial = Shape {
                    dests: [d].into(),
                    ..s.clone()
                };
                if ok(&trial) {
                    s.dests.insert(d);
                }
            }
        }
        s
    }
}

impl Shape {
    pub(super) fn contains(&self, other: &Shape) -> bool {
        other.ports.is_subset(&self.ports)
            && other.kinds.is_subset(&self.kinds)
            && other.whos.is_subset(&self.whos)
            && other.dests.is_subset(&self.dests)
    }
}

/// Indices of the ACLs the given lists refer to.
pub(super) fn used_acls(lists: &[&RuleList]) -> BTreeSet<usize> {
    lists
        .iter()
        .flat_map(|l| &l.rules)
        .flat_map(|r| &r.acls)
        .map(|r| r.acl)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use std::path::Path;

    const SEED: &str = "acl SSL_ports port 443\nacl Safe_ports port 443\n\
        acl allowed_https_sites dstdomain ingress-orange-saas.instana.io\nacl client_net src 127.0.0.5\n\
        http_access allow client_net allowed_https_sites\nhttp_access allow CONNECT SSL_ports\n\
        http_access allow Safe_ports\nhttp_access deny all";

    /// The rows, read in order as a first-match list, give every class its real decision:
    /// the first row containing a class has that class's action ("everything" rows contain
    /// all classes; rows of lines that never decide contain none).
    fn assert_faithful(text: &str) {
        let loaded = parse_str(text, Path::new("t.conf")).expect("valid");
        let grid = Grid::new(&loaded.config);
        let rules = &loaded.config.http_access.rules;
        let (rules_list, acls) = (&loaded.config.http_access, &loaded.config.acls);
        let mut table: Vec<(Action, Option<Shape>)> = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if grid.matches_everything(i) {
                table.push((rule.action, None));
            } else {
                table.extend(grid.shapes_for(i).into_iter().map(|s| (rule.action, Some(s))));
            }
        }
        let last = rules.last().unwrap().action.opposite();
        for p in 0..grid.ports.len() {
            for k in 0..grid.kinds.len() {
                for w in 0..grid.whos.len() {
                    for d in 0..grid.dests.len() {
                        let cell = Shape {
                            ports: [p].into(),
                            kinds: [k].into(),
                            whos: [w].into(),
                            dests: [d].into(),
                        };
                        let shown = table
                            .iter()
                            .find(|(_, s)| s.as_ref().is_none_or(|s| s.contains(&cell)))
                            .map_or(last, |(a, _)| *a);
                        // The grid's shortcuts agree with evaluating this very class.
                        let probe = grid.probe(p, k, w);
                        let real = Space::decide_in(rules_list, acls, &probe, &grid.point(k, w, d)).unwrap();
                        assert_eq!(grid.decided[grid.at(p, k, w, d)], real, "{text}: {p} {k} {w} {d}");
                        assert_eq!(shown, real.0, "{text}: {p} {k} {w} {d}");
                    }
                }
            }
        }
    }

    #[test]
    fn rows_are_faithful() {
        for rules in [
            SEED,
            "acl localnet src 10.0.0.0/8 192.168.0.0/16\nacl SSL_ports port 443\nacl Safe_ports port 80 443 1025-65535\n\
             http_access deny !Safe_ports\nhttp_access deny CONNECT !SSL_ports\nhttp_access allow localhost manager\n\
             http_access deny manager\nhttp_access allow localnet\nhttp_access allow localhost\nhttp_access deny all",
            "acl bad src 192.0.2.0/24\nhttp_access deny bad",
            "acl net dst 10.0.0.0/8\nacl d dstdomain .example.com other.org\nhttp_access deny CONNECT net\n\
             http_access allow net\nhttp_access allow CONNECT d\nhttp_access deny all",
            "auth_param basic program /usr/lib/squid/basic_ncsa_auth /dev/null\nacl u proxy_auth REQUIRED\n\
             acl boss proxy_auth alice\nacl localnet src 10.0.0.0/8\nhttp_access allow boss\nhttp_access deny !localnet\n\
             http_access allow u\nhttp_access deny all",
            "http_port 8080\nacl p myport 8080\nacl h proto HTTPS\nhttp_access allow p !CONNECT\nhttp_access allow h\nhttp_access deny all",
        ] {
            let text = if rules.starts_with("http_port") {
                rules.to_string()
            } else {
                format!("http_port 3128\n{rules}\n")
            };
            assert_faithful(&text);
        }
    }
}
