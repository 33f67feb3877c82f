//! Effective policy in words, for `hopproxy explain`: which requests `http_access` allows
//! or denies and by which line, and where allowed requests go (direct or which parents).
//!
//! Built on the request classes of [`super::space`] (the same cells `check`'s lint uses):
//! every class gets its decision from the real [`crate::policy::RuleList::evaluate`], then
//! the classes each line decides are grouped into a few rectangles "clients × hosts × ports ×
//! methods". A rectangle may also cover classes an *earlier* line already decided the *same*
//! way (so `allow Safe_ports` after `allow client_net allowed_https_sites` reads "any client
//! → any host on 443" instead of "any client except the agent's pair"): every row is true on
//! its own, and the rows in order are exactly the policy.
//!
//! By job: [`grid`] decides every class and cuts a line's classes into rectangles,
//! [`labels`] words a rectangle, [`routing`] says where allowed classes go, this module
//! makes the rows, [`render`] gives the whole explanation as text or JSON, and [`command`]
//! is the CLI.

pub mod command;
mod grid;
mod labels;
pub mod render;
mod routing;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{Config, Severity};
use crate::policy::Action;
use grid::Grid;

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
    (access_rows(&grid), routing::routing(&grid))
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
