//! Effective policy in words, for `hopproxy explain`: which requests `http_access` allows
//! or denies and by which line, and where allowed requests go (direct or which parents).
//!
//! Built on the request classes of [`super::space`] (the same cells `check`'s lint uses):
//! every class gets its decision from the real [`super::RuleList::evaluate`], then the
//! classes each line decides are grouped into a few rectangles "clients × hosts × ports ×
//! methods". A rectangle may also cover classes an *earlier* line already decided the *same*
//! way (so `allow Safe_ports` after `allow client_net allowed_https_sites` reads "any client
//! → any host on 443" instead of "any client except the agent's pair"): every row is true on
//! its own, and the rows in order are exactly the policy.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use super::access::{Action, Rule, RuleList};
use super::acl::AclKind;
use super::space::{MANAGER_PATH, NOBODY_HOST, OTHER_METHOD, Point, Probe, SOME_USER, Space};
use crate::config::{Config, PeerSelection, Severity};

/// One row of the `http_access` reading.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    /// `allow` or `deny`.
    pub action: &'static str,
    /// What the row covers; all four are `None` for "everything else" and for a line that
    /// never decides anything.
    pub clients: Option<String>,
    pub hosts: Option<String>,
    pub ports: Option<String>,
    pub methods: Option<String>,
    /// The line matches every request that reaches it.
    pub everything_else: bool,
    /// Earlier lines decide every request this line matches: it has no effect.
    pub never_decides: bool,
    /// No line matched: the implicit default (the opposite of the last line).
    pub implicit: bool,
    /// `file:line` of the deciding line (for the implicit default: the last line).
    pub origin: String,
    pub line: u32,
    /// The line as written (`http_access allow CONNECT SSL_ports`).
    pub rule: String,
    /// The lint's warning about this line (open proxy, CONNECT beyond 443).
    pub warning: Option<String>,
}

/// Where the requests `http_access` allows go next.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Routing {
    /// One sentence; several when the route depends on the request.
    pub summary: Vec<String>,
    pub parents: Vec<ParentInfo>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ParentInfo {
    pub name: String,
    pub address: String,
    pub selection: &'static str,
    pub line: u32,
    /// `cache_peer_access` lines for this parent, as written; empty = every request.
    pub access: Vec<String>,
}

/// The `http_access` reading (rows in first-match order) and the routing of what it allows.
pub fn analyse(config: &Config) -> (Vec<Row>, Routing) {
    let grid = Grid::new(config);
    (access_rows(&grid), routing(&grid))
}

fn access_rows(grid: &Grid<'_>) -> Vec<Row> {
    let config = grid.config;
    if config.http_access.is_empty() {
        return Vec::new();
    }
    let warnings = lint_warnings(config);
    let mut rows = Vec::new();
    for (index, rule) in config.http_access.rules.iter().enumerate() {
        let shapes = grid.shapes_for(index);
        let text = super::lint::rule_text(config, rule);
        let warning = warnings.get(&(rule.origin.to_string(), false)).cloned();
        let base = Row {
            action: action_word(rule.action),
            clients: None,
            hosts: None,
            ports: None,
            methods: None,
            everything_else: false,
            never_decides: false,
            implicit: false,
            origin: rule.origin.to_string(),
            line: rule.origin.line,
            rule: text,
            warning,
        };
        if shapes.is_empty() {
            rows.push(Row {
                never_decides: true,
                ..base
            });
        } else if grid.matches_everything(index) {
            rows.push(Row {
                everything_else: true,
                ..base
            });
        } else {
            for shape in shapes {
                rows.push(Row {
                    clients: Some(grid.who_label(&shape.whos)),
                    hosts: Some(grid.dest_label(&shape.dests)),
                    ports: Some(grid.port_label(&shape.ports)),
                    methods: Some(grid.kind_label(&shape.kinds)),
                    ..base.clone()
                });
            }
        }
    }
    if grid.decided.iter().any(|d| d.1.is_none()) {
        let last = config.http_access.rules.last().expect("non-empty");
        rows.push(Row {
            action: action_word(last.action.opposite()),
            clients: None,
            hosts: None,
            ports: None,
            methods: None,
            everything_else: true,
            never_decides: false,
            implicit: true,
            origin: last.origin.to_string(),
            line: last.origin.line,
            rule: "no line matched: the opposite of the last line".to_string(),
            warning: warnings.get(&(last.origin.to_string(), true)).cloned(),
        });
    }
    rows
}

/// The lint's warnings by (origin, about the implicit default).
fn lint_warnings(config: &Config) -> BTreeMap<(String, bool), String> {
    super::lint::lint(config)
        .into_iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| {
            let implicit = d.message.contains("the implicit default");
            ((d.origin.to_string(), implicit), d.message)
        })
        .collect()
}

fn action_word(action: Action) -> &'static str {
    match action {
        Action::Allow => "allow",
        Action::Deny => "deny",
    }
}

/// Who sends the request: listener port, client address cell, user.
struct Who {
    local_port: u16,
    addr: IpAddr,
    user: Option<String>,
}

/// Where it goes: host name cell and resolved-address cell.
struct Dest {
    host: String,
    dst: Vec<IpAddr>,
}

/// What it is: method, scheme, and whether it asks for a cache-manager page.
struct Kind {
    method: String,
    proto: String,
    manager: bool,
}

/// A list's decision per class, indexed by [`Grid::at`].
type Decisions = Vec<(Action, Option<usize>)>;

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
type Indices = BTreeSet<usize>;

/// A rectangle of classes, as indices into the grid's dimensions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Shape {
    ports: BTreeSet<usize>,
    kinds: BTreeSet<usize>,
    whos: BTreeSet<usize>,
    dests: BTreeSet<usize>,
}

/// Every class of the request space with its `http_access` decision.
struct Grid<'c> {
    config: &'c Config,
    space: Space,
    ports: Vec<(u16, u16)>,
    kinds: Vec<Kind>,
    whos: Vec<Who>,
    dests: Vec<Dest>,
    /// Decision per class, indexed by [`Grid::at`].
    decided: Vec<(Action, Option<usize>)>,
    acl_table: BTreeMap<usize, (Dim, Vec<bool>)>,
    /// Per who (dest): the first who (dest) every ACL treats alike; shapes are built on
    /// these representatives and expanded at the end.
    who_rep: Vec<usize>,
    dest_rep: Vec<usize>,
}

/// The one dimension an ACL looks at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dim {
    Port,
    Kind,
    Who,
    Dest,
}

impl<'c> Grid<'c> {
    fn new(config: &'c Config) -> Grid<'c> {
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
            addrs.sort_by_key(|a| (a.is_ipv6(), super::space::bits(*a)));
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
            sets.sort_by_key(|s| (s[0].is_ipv6(), super::space::bits(s[0])));
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
        };
        grid.build_acl_table(&used);
        grid.who_rep = representatives(&grid.signatures(Dim::Who, grid.whos.len()));
        grid.dest_rep = representatives(&grid.signatures(Dim::Dest, grid.dests.len()));
        if !config.http_access.is_empty() {
            grid.decided = grid.evaluate_all(&config.http_access);
        }
        grid
    }

    fn at(&self, port: usize, kind: usize, who: usize, dest: usize) -> usize {
        ((port * self.kinds.len() + kind) * self.whos.len() + who) * self.dests.len() + dest
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
    /// [`RuleList::evaluate`]. The fixed-dimension shortcut settles whole (port, kind,
    /// listener) slices at once where it can; elsewhere clients (and hosts) that every ACL
    /// treats alike share one evaluation, which keeps big domain and network lists cheap.
    fn evaluate_all(&self, list: &RuleList) -> Vec<(Action, Option<usize>)> {
        let acls = &self.config.acls;
        let who_sig = self.signatures(Dim::Who, self.whos.len());
        let dest_sig = self.signatures(Dim::Dest, self.dests.len());
        let total = self.ports.len() * self.kinds.len() * self.whos.len() * self.dests.len();
        let mut out = vec![(Action::Deny, None); total];
        for port in 0..self.ports.len() {
            for kind in 0..self.kinds.len() {
                let mut fixed: BTreeMap<u16, Option<(Action, Option<usize>)>> = BTreeMap::new();
                let mut seen: BTreeMap<(usize, usize), (Action, Option<usize>)> = BTreeMap::new();
                for who in 0..self.whos.len() {
                    let probe = self.probe(port, kind, who);
                    let shortcut = *fixed
                        .entry(probe.local_port)
                        .or_insert_with(|| Space::fixed_decision_in(list, acls, &probe, &self.kinds[kind].proto, true));
                    for dest in 0..self.dests.len() {
                        out[self.at(port, kind, who, dest)] = shortcut.unwrap_or_else(|| {
                            *seen.entry((who_sig[who], dest_sig[dest])).or_insert_with(|| {
                                Space::decide_in(list, acls, &probe, &self.point(kind, who, dest))
                                    .expect("list is not empty")
                            })
                        });
                    }
                }
            }
        }
        out
    }

    /// For each value of `dim`, the number of its class of values that every ACL of that
    /// dimension treats alike (same match result for each).
    fn signatures(&self, dim: Dim, size: usize) -> Vec<usize> {
        let tables: Vec<&Vec<bool>> = self
            .acl_table
            .values()
            .filter(|(d, _)| *d == dim)
            .map(|(_, t)| t)
            .collect();
        let mut ids: BTreeMap<Vec<bool>, usize> = BTreeMap::new();
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
            };
            let size = match dim {
                Dim::Port => self.ports.len(),
                Dim::Kind => self.kinds.len(),
                Dim::Who => self.whos.len(),
                Dim::Dest => self.dests.len(),
            };
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
                    kind.matches(&point.facts(&probe))
                })
                .collect();
            self.acl_table.insert(acl, (dim, table));
        }
    }

    /// The line matches every class (`deny all`, `allow all`).
    fn matches_everything(&self, index: usize) -> bool {
        let rule = &self.config.http_access.rules[index];
        self.cells().all(|(p, k, w, d)| self.rule_matches(rule, p, k, w, d))
    }

    /// One class per (port, kind, who representative, dest representative).
    fn cells(&self) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        (0..self.ports.len()).flat_map(move |p| {
            (0..self.kinds.len()).flat_map(move |k| {
                self.reps(&self.who_rep)
                    .flat_map(move |w| self.reps(&self.dest_rep).map(move |d| (p, k, w, d)))
            })
        })
    }

    fn reps<'a>(&self, rep: &'a [usize]) -> impl Iterator<Item = usize> + 'a {
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
    fn shapes_for(&self, index: usize) -> Vec<Shape> {
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

    fn port_label(&self, set: &BTreeSet<usize>) -> String {
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

    fn who_label(&self, set: &BTreeSet<usize>) -> String {
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

    fn dest_label(&self, set: &BTreeSet<usize>) -> String {
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
        let position = |name: &str| hosts.iter().position(|h| h == name);
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

    fn kind_label(&self, set: &BTreeSet<usize>) -> String {
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

impl Shape {
    fn contains(&self, other: &Shape) -> bool {
        other.ports.is_subset(&self.ports)
            && other.kinds.is_subset(&self.kinds)
            && other.whos.is_subset(&self.whos)
            && other.dests.is_subset(&self.dests)
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
    use super::space::bits;
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

/// Indices of the ACLs the given lists refer to.
fn used_acls(lists: &[&RuleList]) -> BTreeSet<usize> {
    lists
        .iter()
        .flat_map(|l| &l.rules)
        .flat_map(|r| &r.acls)
        .map(|r| r.acl)
        .collect()
}

/// Where an allowed request goes, for routing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Route {
    /// `always_direct` allows it (line).
    Direct(Option<usize>),
    /// `never_direct` allows it: these parents only (the `never_direct` line).
    ParentsOnly(Vec<usize>, Option<usize>),
    /// Direct first, then these parents (Squid 5.7 without `never_direct`: F10).
    DirectFirst(Vec<usize>),
}

/// Where the requests `http_access` allows go, per class, summarised.
fn routing(grid: &Grid<'_>) -> Routing {
    let config = grid.config;
    let parents: Vec<ParentInfo> = config
        .peers
        .iter()
        .map(|p| ParentInfo {
            name: p.name.clone(),
            address: format!("{}:{}", p.host, p.http_port),
            selection: match p.selection {
                PeerSelection::FirstUp => "FIRSTUP",
                PeerSelection::RoundRobin => "round-robin",
                PeerSelection::WeightedRoundRobin => "weighted-round-robin",
            },
            line: p.origin.line,
            access: p.access.rules.iter().map(|r| list_rule_text(config, r)).collect(),
        })
        .collect();
    let routes = route_classes(grid);
    let name = |i: &usize| {
        let p = &parents[*i];
        let named = if p.name != config.peers[*i].host {
            format!(" name={}", p.name)
        } else {
            String::new()
        };
        format!("{}{named} ({})", p.address, p.selection)
    };
    let list = |ps: &[usize]| -> String {
        if ps.is_empty() {
            "none eligible, so it is refused".to_string()
        } else {
            ps.iter().map(name).collect::<Vec<_>>().join(", then ")
        }
    };
    // One sentence per kind of route; the lines that choose it and the parents it may use
    // are merged across classes (cache_peer_access limits are listed with the parents).
    let mut direct_by: BTreeSet<Option<usize>> = BTreeSet::new();
    let mut parents_by: BTreeSet<Option<usize>> = BTreeSet::new();
    let mut parents_only: BTreeSet<usize> = BTreeSet::new();
    let mut fallback: BTreeSet<usize> = BTreeSet::new();
    let mut direct_first = false;
    for route in &routes {
        match route {
            Route::Direct(rule) => {
                direct_by.insert(*rule);
            }
            Route::ParentsOnly(ps, rule) => {
                parents_by.insert(*rule);
                parents_only.extend(ps);
            }
            Route::DirectFirst(ps) => {
                direct_first = true;
                fallback.extend(ps);
            }
        }
    }
    let kinds = usize::from(!direct_by.is_empty()) + usize::from(!parents_by.is_empty()) + usize::from(direct_first);
    let every = kinds == 1;
    let lines = |list: &RuleList, name: &str, rules: &BTreeSet<Option<usize>>| -> String {
        let named: Vec<String> = rules
            .iter()
            .flatten()
            .map(|&i| {
                format!(
                    "{name} {} (line {})",
                    words(config, &list.rules[i]),
                    list.rules[i].origin.line
                )
            })
            .collect();
        named.join(", ")
    };
    let ordered = |ps: &BTreeSet<usize>| -> Vec<usize> { ps.iter().copied().collect() };
    let mut summary = Vec::new();
    if !direct_by.is_empty() {
        let by = lines(&config.always_direct, "always_direct", &direct_by);
        summary.push(if config.peers.is_empty() && by.is_empty() {
            "no cache_peer → every request goes direct".to_string()
        } else if by.is_empty() {
            format!(
                "no eligible parent → {} direct",
                if every {
                    "every request goes"
                } else {
                    "some requests go"
                }
            )
        } else {
            format!(
                "{by} → {} direct",
                if every {
                    "every request goes"
                } else {
                    "the requests it matches go"
                }
            )
        });
    }
    if !parents_by.is_empty() {
        let by = lines(&config.never_direct, "never_direct", &parents_by);
        summary.push(format!(
            "{by} → {} to a parent: {}, no direct fallback",
            if every {
                "every request goes"
            } else {
                "the requests it matches go"
            },
            list(&ordered(&parents_only))
        ));
    }
    if direct_first {
        summary.push(format!(
            "no never_direct → {} direct first, then to a parent if direct fails: {}",
            if every { "every request goes" } else { "the rest go" },
            list(&ordered(&fallback))
        ));
    }
    if summary.is_empty() {
        summary.push("nothing is allowed, so nothing is routed".to_string());
    }
    Routing { summary, parents }
}

/// The distinct routes of the classes `http_access` allows.
fn route_classes(grid: &Grid<'_>) -> BTreeSet<Route> {
    let config = grid.config;
    let decide = |list: &RuleList| (!list.is_empty()).then(|| grid.evaluate_all(list));
    let always = decide(&config.always_direct);
    let never = decide(&config.never_direct);
    let access: Vec<Option<Decisions>> = config.peers.iter().map(|p| decide(&p.access)).collect();
    let mut routes = BTreeSet::new();
    for (cell, &(action, _)) in grid.decided.iter().enumerate() {
        if action == Action::Deny {
            continue;
        }
        let at = |d: &Option<Decisions>| d.as_ref().map(|v| v[cell]);
        routes.insert(route_of(at(&always), at(&never), access.iter().map(at).collect()));
    }
    routes
}

/// The same choice as `route::select::plan`, without health: always_direct, then
/// never_direct, else direct first.
fn route_of(
    always: Option<(Action, Option<usize>)>,
    never: Option<(Action, Option<usize>)>,
    access: Vec<Option<(Action, Option<usize>)>>,
) -> Route {
    if let Some((Action::Allow, rule)) = always {
        return Route::Direct(rule);
    }
    // A parent without cache_peer_access takes every request.
    let eligible: Vec<usize> = (0..access.len())
        .filter(|&i| access[i].is_none_or(|d| d.0 == Action::Allow))
        .collect();
    match never {
        Some((Action::Allow, rule)) => Route::ParentsOnly(eligible, rule),
        _ if eligible.is_empty() => Route::Direct(None),
        _ => Route::DirectFirst(eligible),
    }
}

/// `allow all`: a rule of any list without its directive name.
fn words(config: &Config, rule: &Rule) -> String {
    let acls: Vec<String> = rule
        .acls
        .iter()
        .map(|r| format!("{}{}", if r.negated { "!" } else { "" }, config.acls.get(r.acl).name))
        .collect();
    format!("{} {}", action_word(rule.action), acls.join(" "))
}

fn list_rule_text(config: &Config, rule: &Rule) -> String {
    format!("{} (line {})", words(config, rule), rule.origin.line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use std::path::Path;

    fn rows(text: &str) -> Vec<Row> {
        let loaded = parse_str(text, Path::new("t.conf")).expect("valid");
        analyse(&loaded.config).0
    }

    fn brief(r: &Row) -> String {
        if r.everything_else {
            return format!("{} everything else", r.action);
        }
        if r.never_decides {
            return format!("{} never", r.action);
        }
        format!(
            "{} {} → {} | {} | {} @{}",
            r.action,
            r.clients.as_deref().unwrap_or(""),
            r.hosts.as_deref().unwrap_or(""),
            r.ports.as_deref().unwrap_or(""),
            r.methods.as_deref().unwrap_or(""),
            r.line
        )
    }

    const SEED: &str = "acl SSL_ports port 443\nacl Safe_ports port 443\n\
        acl allowed_https_sites dstdomain ingress-orange-saas.instana.io\nacl client_net src 127.0.0.5\n\
        http_access allow client_net allowed_https_sites\nhttp_access allow CONNECT SSL_ports\n\
        http_access allow Safe_ports\nhttp_access deny all";

    #[test]
    fn seed_reading() {
        let text = "http_port 8080\nacl SSL_ports port 443\nacl Safe_ports port 443\n\
            acl CONNECT method CONNECT\nacl allowed_https_sites dstdomain ingress-orange-saas.instana.io\n\
            acl client_net src 127.0.0.5\n\
            http_access allow client_net allowed_https_sites\nhttp_access allow CONNECT SSL_ports\n\
            http_access allow Safe_ports\nhttp_access deny all\n";
        let got: Vec<String> = rows(text).iter().map(brief).collect();
        assert_eq!(
            got,
            vec![
                "allow clients 127.0.0.5 → ingress-orange-saas.instana.io | any port | any method @7",
                "allow any client → any host | port 443 | CONNECT @8",
                "allow any client → any host | port 443 | other methods @9",
                "deny everything else",
            ]
        );
    }

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

    #[test]
    fn wording_of_users_addresses_and_unused_lines() {
        let auth = "http_port 3128\nauth_param basic program /usr/lib/squid/basic_ncsa_auth /dev/null\n\
            acl u proxy_auth REQUIRED\nacl boss proxy_auth alice\nacl localnet src 10.0.0.0/8\n\
            http_access allow boss\nhttp_access allow localnet u\nhttp_access deny all\n";
        let got: Vec<String> = rows(auth).iter().map(brief).collect();
        assert_eq!(
            got,
            vec![
                "allow user alice → any host | any port | any method @6",
                "allow clients 10.0.0.0/8, authenticated users → any host | any port | any method @7",
                "deny everything else",
            ]
        );
        let dst = "http_port 3128\nacl net dst 10.0.0.0/8\nacl d dstdomain .example.com other.org\n\
            http_access allow net\nhttp_access allow CONNECT d\nhttp_access deny all\n";
        let got: Vec<String> = rows(dst).iter().map(brief).collect();
        assert_eq!(
            got,
            vec![
                "allow any client → hosts at 10.0.0.0/8 | any port | any method @4",
                "allow any client → .example.com, other.org | any port | CONNECT @5",
                "deny everything else",
            ]
        );
        let shadowed = "http_port 3128\nacl bad src 192.0.2.0/24\nhttp_access deny bad\nhttp_access deny bad\n";
        let got = rows(shadowed);
        let got: Vec<String> = got.iter().map(brief).collect();
        assert_eq!(
            got,
            vec![
                "deny clients 192.0.2.0/24 → any host | any port | any method @3",
                "deny never",
                "allow everything else",
            ]
        );
        assert!(rows(shadowed)[2].implicit && rows(shadowed)[2].warning.is_some());
    }
}
