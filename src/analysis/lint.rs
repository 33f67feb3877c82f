//! Effective-policy lint for `check`: does `http_access` make an open proxy?
//!
//! Two findings (Squid's stock policy traps, docs/squid-behaviour.md 3):
//! * **open proxy** (warning): some port on which *any* client reaches *any* host, for some
//!   method. "Any client" means every IPv4 (or every IPv6) source that no `src` value names,
//!   "any host" a name no `dstdomain` names and an address no `dst` names, so blocklists
//!   (`deny bad_sites`, `allow all`) count as open. The seed's `allow CONNECT SSL_ports` and
//!   `allow Safe_ports` lines do this on port 443 (docs/squid-behaviour.md 3.1, C1).
//! * **CONNECT beyond 443**: tunnels to other ports (SSH, SMTP, …). A warning when any
//!   client can do it; a note when only some clients can (the seed's agent can CONNECT to
//!   its endpoint on any port, docs/squid-behaviour.md B4a), so `http_access allow
//!   localnet` configs stay quiet at warning level.
//!
//! Method: symbolic, not sampled. The space of requests splits into finitely many cells that
//! every ACL treats alike ([`super::space`], shared with `explain`). Evaluating the real
//! first-match list once per cell decides the question exactly. "Exists" dimensions (port,
//! method, listener) are enumerated outside; "for all" dimensions (client, host, resolved
//! address) inside, starting with the cell that no ACL names, which settles most cases early.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::space::{NOBODY_HOST, OTHER_METHOD, Probe, Space};
use crate::config::{Config, Diagnostic};
use crate::policy::{AclKind, Action, Origin, Rule};

/// Whether a finding of [`lint`] is an open door (`check --strict` fails on these): every
/// warning the lint gives is one; its notes (some clients reach more than 443) are not.
pub fn is_open_door(finding: &Diagnostic) -> bool {
    finding.severity == crate::config::Severity::Warning
}

pub fn lint(config: &Config) -> Vec<Diagnostic> {
    if config.http_access.is_empty() {
        return Vec::new(); // the loader already warns that everything is denied
    }
    lint_on(config, &Space::new(config))
}

/// The lint on a given cut of the request space (collapsed or not: the findings agree).
fn lint_on(config: &Config, space: &Space) -> Vec<Diagnostic> {
    let mut open: BTreeMap<Option<usize>, Finding> = BTreeMap::new();
    let mut beyond_443: BTreeMap<Option<usize>, Finding> = BTreeMap::new();

    for &(lo, hi) in &space.port_cells {
        for method in &space.methods {
            for &local_port in &space.local_ports {
                let probe = Probe::new(method, lo, local_port);
                // Open proxy: every client of one family reaches every host.
                for family in [&space.v4_anyone, &space.v6_anyone] {
                    if let Some(deciders) = space.all_allowed(config, &probe, family) {
                        for rule in responsible(config, &deciders) {
                            let f = open.entry(rule).or_default();
                            f.ports.insert((lo, hi));
                            f.methods.insert(method.clone());
                        }
                    }
                }
                // CONNECT to a port other than 443, by anyone (any_source) or by someone.
                if method == "CONNECT" && lo != 443 {
                    for (rule, any_source) in space.allowed_somewhere(config, &probe) {
                        let f = beyond_443.entry(rule).or_default();
                        f.ports.insert((lo, hi));
                        f.any_source |= any_source;
                    }
                }
            }
        }
    }

    let mut diags = Vec::new();
    let fix = FixHint::new(config);
    for (rule, finding) in &open {
        let (origin, what) = describe(config, *rule);
        let ports = port_list(&finding.ports);
        let methods = method_list(&finding.methods);
        diags.push(
            Diagnostic::warning(
                &origin,
                format!("open proxy: {what} lets any client reach any host {methods} on {ports}"),
            )
            .with_hint(fix.open_proxy()),
        );
    }
    for (rule, finding) in &beyond_443 {
        // Already reported as open on exactly these CONNECT ports: say it once.
        if let Some(o) = open.get(rule)
            && o.methods.contains("CONNECT")
            && finding.ports.is_subset(&o.ports)
        {
            continue;
        }
        let (origin, what) = describe(config, *rule);
        let ports = port_list(&finding.ports);
        let diag = if finding.any_source {
            Diagnostic::warning(
                &origin,
                format!("{what} lets any client CONNECT to {ports} (not only 443)"),
            )
        } else {
            Diagnostic::note(
                &origin,
                format!("{what} lets some clients CONNECT to {ports} (not only 443)"),
            )
        };
        diags.push(diag.with_hint(fix.connect_guard()));
    }
    diags
}

#[derive(Default)]
struct Finding {
    ports: BTreeSet<(u16, u16)>,
    methods: BTreeSet<String>,
    any_source: bool,
}

impl Space {
    /// If every (client in `sources`, unnamed host, unnamed resolved set) is allowed for
    /// some scheme, the deciding rules; `None` at the first denied point.
    fn all_allowed(&self, config: &Config, probe: &Probe<'_>, sources: &[IpAddr]) -> Option<BTreeSet<Option<usize>>> {
        let mut deciders = BTreeSet::new();
        // The scheme is the client's choice too, so one allowed scheme is enough.
        for proto in self.protos_for(probe) {
            if let Some((action, rule)) = Self::fixed_decision(config, probe, proto) {
                if action == Action::Allow {
                    deciders.insert(rule);
                }
                continue;
            }
            let mut all = true;
            let mut these = BTreeSet::new();
            'points: for host in [NOBODY_HOST] {
                for dst in &self.dst_anywhere {
                    for &client in sources {
                        match Self::decide(config, probe, proto, client, host, dst) {
                            (Action::Allow, rule) => {
                                these.insert(rule);
                            }
                            (Action::Deny, _) => {
                                all = false;
                                break 'points;
                            }
                        }
                    }
                }
            }
            if all {
                deciders.extend(these);
            }
        }
        (!deciders.is_empty()).then_some(deciders)
    }

    /// Rules that allow this CONNECT probe for some point, each with whether it allows it for
    /// every client of a family (for one host and resolved set).
    fn allowed_somewhere(&self, config: &Config, probe: &Probe<'_>) -> BTreeMap<Option<usize>, bool> {
        let mut found: BTreeMap<Option<usize>, bool> = BTreeMap::new();
        if let Some((action, rule)) = Self::fixed_decision(config, probe, "AUTHORITY") {
            if action == Action::Allow {
                found.insert(rule, true);
            }
            return found;
        }
        for host in &self.hosts {
            for dst in &self.dst_sets {
                for (family, anyone) in [(&self.v4_sources, &self.v4_anyone), (&self.v6_sources, &self.v6_anyone)] {
                    let mut rules = BTreeSet::new();
                    let mut every = true;
                    for &client in family {
                        match Self::decide(config, probe, "AUTHORITY", client, host, dst) {
                            (Action::Allow, rule) => {
                                rules.insert(rule);
                            }
                            (Action::Deny, _) => every &= !anyone.contains(&client),
                        }
                    }
                    for rule in rules {
                        *found.entry(rule).or_default() |= every;
                    }
                }
            }
        }
        found
    }
}

/// Among the rules that decided an open cell, the ones that restrict neither who nor where:
/// those are what makes it open. (A restricted rule such as `allow client_net
/// allowed_https_sites` only decides the cells it names.) All deciders if none qualifies.
fn responsible(config: &Config, deciders: &BTreeSet<Option<usize>>) -> Vec<Option<usize>> {
    let unrestricted: Vec<Option<usize>> = deciders
        .iter()
        .copied()
        .filter(|rule| match rule {
            None => true,
            Some(i) => !restricts_who_or_where(config, &config.http_access.rules[*i]),
        })
        .collect();
    if unrestricted.is_empty() {
        deciders.iter().copied().collect()
    } else {
        unrestricted
    }
}

fn restricts_who_or_where(config: &Config, rule: &Rule) -> bool {
    rule.acls.iter().any(|r| {
        !r.negated
            && matches!(
                config.acls.get(r.acl).kind,
                AclKind::Src(_) | AclKind::Dst(_) | AclKind::DstDomain(_) | AclKind::ProxyAuth(_)
            )
    })
}

/// Where to point and how to name a deciding rule (`None` = the implicit default).
fn describe(config: &Config, rule: Option<usize>) -> (Origin, String) {
    match rule {
        Some(i) => {
            let r = &config.http_access.rules[i];
            (r.origin.clone(), format!("'{}'", rule_text(config, r)))
        }
        None => {
            let last = config.http_access.rules.last().expect("non-empty");
            (
                last.origin.clone(),
                "the implicit default after this last 'deny' line (no rule matches, so allow)".to_string(),
            )
        }
    }
}

pub(crate) fn rule_text(config: &Config, rule: &Rule) -> String {
    let action = match rule.action {
        Action::Allow => "allow",
        Action::Deny => "deny",
    };
    let acls: Vec<String> = rule
        .acls
        .iter()
        .map(|r| format!("{}{}", if r.negated { "!" } else { "" }, config.acls.get(r.acl).name))
        .collect();
    format!("http_access {action} {}", acls.join(" "))
}

/// `port 443`, `ports 1-442, 444-65535`, merging adjacent cells.
fn port_list(cells: &BTreeSet<(u16, u16)>) -> String {
    let mut merged: Vec<(u16, u16)> = Vec::new();
    for &(lo, hi) in cells {
        match merged.last_mut() {
            Some(last) if u32::from(last.1) + 1 == u32::from(lo) => last.1 = hi,
            _ => merged.push((lo, hi)),
        }
    }
    let single = merged.len() == 1 && merged[0].0 == merged[0].1;
    let parts: Vec<String> = merged
        .iter()
        .map(|&(lo, hi)| if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") })
        .collect();
    format!("{} {}", if single { "port" } else { "ports" }, parts.join(", "))
}

fn method_list(methods: &BTreeSet<String>) -> String {
    let connect = methods.contains("CONNECT");
    let others = methods.contains(OTHER_METHOD);
    match (connect, others) {
        (true, true) => "with any method (CONNECT included)".to_string(),
        (true, false) if methods.len() == 1 => "by CONNECT".to_string(),
        (false, true) => "with any method but CONNECT".to_string(),
        _ => {
            let named: Vec<&str> = methods.iter().map(String::as_str).collect();
            format!("with {}", named.join(", "))
        }
    }
}

/// The fix from docs/squid-behaviour.md 3.2, spelled with this config's own names.
struct FixHint {
    guards: String,
    allows: String,
}

impl FixHint {
    fn new(config: &Config) -> FixHint {
        let has = |name: &str| config.acls.index_of(name).is_some();
        let mut guards = Vec::new();
        if has("Safe_ports") {
            guards.push("'http_access deny !Safe_ports'".to_string());
        }
        guards.push(if has("SSL_ports") {
            "'http_access deny CONNECT !SSL_ports'".to_string()
        } else {
            "'http_access deny CONNECT !SSL_ports' (with 'acl SSL_ports port 443')".to_string()
        });
        let allows: Vec<String> = config
            .http_access
            .rules
            .iter()
            .filter(|r| r.action == Action::Allow && restricts_who_or_where(config, r))
            .map(|r| format!("'{}'", rule_text(config, r)))
            .collect();
        FixHint {
            guards: guards.join(" and "),
            allows: if allows.is_empty() {
                "only rules naming your clients (e.g. 'http_access allow localnet')".to_string()
            } else {
                allows.join(", ")
            },
        }
    }

    fn open_proxy(&self) -> String {
        format!(
            "put {} first, then {}, then 'http_access deny all'; remove allow lines that name neither clients nor destinations",
            self.guards, self.allows
        )
    }

    fn connect_guard(&self) -> String {
        format!("put {} before it to keep tunnels on port 443", self.guards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Severity, parse_str};
    use crate::policy::RequestFacts;
    use std::net::Ipv4Addr;
    use std::path::Path;

    fn lint_text(text: &str) -> Vec<String> {
        let loaded = parse_str(text, Path::new("t.conf")).expect("valid");
        lint(&loaded.config)
            .iter()
            .map(|d| d.to_string().lines().next().unwrap().to_string())
            .collect()
    }

    fn warnings(text: &str) -> Vec<String> {
        lint_text(text)
            .into_iter()
            .filter(|l| l.contains(": warning: "))
            .collect()
    }

    const SEED_RULES: &str = "http_port 8080\nacl SSL_ports port 443\nacl Safe_ports port 443\n\
        acl CONNECT method CONNECT\nacl allowed_https_sites dstdomain ingress-orange-saas.instana.io\n\
        acl client_net src 127.0.0.5\n\
        http_access allow client_net allowed_https_sites\nhttp_access allow CONNECT SSL_ports\n\
        http_access allow Safe_ports\nhttp_access deny all\n";

    #[test]
    fn seed_policy_is_an_open_proxy_on_443() {
        assert_eq!(
            lint_text(SEED_RULES),
            vec![
                "t.conf:8: warning: open proxy: 'http_access allow CONNECT SSL_ports' lets any client reach any host by CONNECT on port 443",
                "t.conf:9: warning: open proxy: 'http_access allow Safe_ports' lets any client reach any host with any method but CONNECT on port 443",
                "t.conf:7: note: 'http_access allow client_net allowed_https_sites' lets some clients CONNECT to ports 1-442, 444-65535 (not only 443)",
            ]
        );
    }

    #[test]
    fn the_hint_gives_the_guarded_order() {
        let loaded = parse_str(SEED_RULES, Path::new("t.conf")).unwrap();
        let diags = lint(&loaded.config);
        assert_eq!(
            diags[0].hint.as_deref(),
            Some(
                "put 'http_access deny !Safe_ports' and 'http_access deny CONNECT !SSL_ports' first, then \
                 'http_access allow client_net allowed_https_sites', then 'http_access deny all'; remove allow \
                 lines that name neither clients nor destinations"
            )
        );
    }

    #[test]
    fn guarded_seed_is_quiet() {
        let fixed = "http_port 8080\nacl SSL_ports port 443\nacl Safe_ports port 443\n\
            acl allowed_https_sites dstdomain ingress-orange-saas.instana.io\nacl client_net src 127.0.0.5\n\
            http_access deny !Safe_ports\nhttp_access deny CONNECT !SSL_ports\n\
            http_access allow client_net allowed_https_sites\nhttp_access deny all\n";
        assert_eq!(lint_text(fixed), Vec::<String>::new());
    }

    #[test]
    fn cases() {
        let cases: &[(&str, usize)] = &[
            // Restricted sources: no warning (they may still get a CONNECT note).
            (
                "acl localnet src 10.0.0.0/8\nhttp_access allow localnet\nhttp_access deny all",
                0,
            ),
            ("http_access allow localhost\nhttp_access deny all", 0),
            (
                "auth_param basic program /usr/lib/squid/basic_ncsa_auth /dev/null\n\
                 acl u proxy_auth REQUIRED\nhttp_access allow u\nhttp_access deny all",
                0,
            ),
            ("http_access deny all", 0),
            // Open.
            ("http_access allow all", 1),
            (
                "acl localnet src 10.0.0.0/8\nhttp_access allow !localnet\nhttp_access allow localnet",
                2,
            ),
            ("acl bad src 192.0.2.0/24\nhttp_access deny bad", 1),
            ("acl v4 src 0.0.0.0/0\nhttp_access allow v4\nhttp_access deny all", 1),
            ("acl p port 80\nhttp_access allow p\nhttp_access deny all", 1),
            (
                "acl d dstdomain .example.com\nhttp_access allow d\nhttp_access deny all",
                1,
            ),
            (
                "acl p port 443\nhttp_access deny CONNECT !p\nacl bad dstdomain .bad.example\n\
                 http_access deny bad\nhttp_access allow all",
                1,
            ),
        ];
        for (rules, expected) in cases {
            let text = format!("http_port 3128\n{rules}\n");
            let found = warnings(&text);
            assert_eq!(found.len(), *expected, "{rules:?}: {found:#?}");
        }
    }

    #[test]
    fn connect_beyond_443_by_anyone_is_a_warning() {
        let text = "http_port 3128\nacl d dstdomain .example.com\nhttp_access allow CONNECT d\nhttp_access deny all\n";
        assert_eq!(
            lint_text(text),
            vec![
                "t.conf:3: warning: 'http_access allow CONNECT d' lets any client CONNECT to ports 1-442, 444-65535 (not only 443)"
            ]
        );
    }

    #[test]
    fn implicit_default_allow_is_named() {
        let found = warnings("http_port 3128\nacl bad src 192.0.2.0/24\nhttp_access deny bad\n");
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("t.conf:3: warning: open proxy: the implicit default"),
            "{found:?}"
        );
    }

    /// Cross-check by sampling: random requests against the seed policy agree with the
    /// symbolic result (open on 443 for anyone, closed elsewhere for outsiders).
    #[test]
    fn sampling_agrees_with_the_symbolic_result() {
        let loaded = parse_str(SEED_RULES, Path::new("t.conf")).unwrap();
        let config = &loaded.config;
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let hosts = ["a.example", "ingress-orange-saas.instana.io", "x.y.z", "10.1.2.3"];
        for _ in 0..2000 {
            let client = IpAddr::V4(Ipv4Addr::from(next() as u32));
            let host = hosts[(next() % hosts.len() as u64) as usize];
            let port = (next() % 65_535) as u16 + 1;
            let method = ["CONNECT", "GET", "POST"][(next() % 3) as usize];
            let facts = RequestFacts {
                client,
                method,
                proto: if method == "CONNECT" { "AUTHORITY" } else { "HTTP" },
                host,
                port,
                path: "/",
                dst_addrs: &[],
                host_aliases: &[],
                local_port: 8080,
                user: None,
                more: crate::policy::MoreFacts::default(),
            };
            let allowed = config.http_access.allows(&config.acls, &facts, Action::Deny);
            let agent = client == IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));
            let expected = port == 443 || (agent && host == "ingress-orange-saas.instana.io");
            assert_eq!(allowed, expected, "{client} {method} {host}:{port}");
        }
        assert_eq!(
            lint(config).iter().filter(|d| d.severity == Severity::Warning).count(),
            2
        );
    }

    /// One value per class decides for the whole class: the lint on the collapsed space says
    /// exactly what it says on every cell, on lists whose values overlap across ACLs.
    #[test]
    fn collapsed_space_gives_the_same_findings() {
        let configs = [
            SEED_RULES.to_string(),
            "http_port 3128\nacl a src 10.0.0.0/8 10.1.0.0/16 192.0.2.1 192.0.2.3\nacl b src 10.1.2.0/24 192.0.2.3\n\
             acl d dstdomain .example.com a.example.com b.example.org 10.9.9.9\nacl e dstdomain .a.example.com\n\
             acl n dst 10.9.0.0/16 192.0.2.0/24\nacl p port 22 443\n\
             http_access deny b e\nhttp_access allow CONNECT a d\nhttp_access allow n !p\nhttp_access allow CONNECT p\n\
             http_access deny a\n"
                .to_string(),
        ];
        for text in configs {
            let loaded = parse_str(&text, Path::new("t.conf")).expect("valid");
            let config = &loaded.config;
            let every_cell = Space::build(config, |_| true, false);
            let collapsed = Space::new(config);
            assert!(collapsed.hosts.len() < every_cell.hosts.len(), "{text}");
            let show = |d: Vec<Diagnostic>| d.iter().map(ToString::to_string).collect::<Vec<_>>();
            assert_eq!(
                show(lint_on(config, &collapsed)),
                show(lint_on(config, &every_cell)),
                "{text}"
            );
        }
    }
}
