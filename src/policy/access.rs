//! Ordered allow/deny lists (`http_access`, `never_direct`, `cache_peer_access`, …) and their
//! evaluation with Squid's rules: AND within a line, first matching line wins, no match =
//! the opposite of the last line's action.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::acl::{Acl, RequestFacts};

/// Where a directive came from, for diagnostics and for `explain`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub file: Arc<Path>,
    pub line: u32,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

impl Action {
    pub fn opposite(self) -> Action {
        match self {
            Action::Allow => Action::Deny,
            Action::Deny => Action::Allow,
        }
    }
}

/// A reference from a rule to an ACL, by index into [`AclSet`], possibly negated with `!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclRef {
    pub acl: usize,
    pub negated: bool,
}

/// One `http_access allow|deny ACL…` line (or the same shape for other access lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    pub acls: Vec<AclRef>,
    pub origin: Origin,
}

/// All ACLs of a config, in definition order; rules point into it by index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclSet {
    pub acls: Vec<Acl>,
}

impl AclSet {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.acls.iter().position(|a| a.name == name)
    }

    pub fn get(&self, index: usize) -> &Acl {
        &self.acls[index]
    }

    /// Whether every ACL of one line matches (AND within a line, `!` inverts one ACL): the
    /// one test behind `http_access`-style rules, `cache_peer_access` and `access_log` ACLs.
    pub fn all_match(&self, refs: &[AclRef], facts: &RequestFacts<'_>) -> bool {
        refs.iter().all(|r| self.get(r.acl).kind.matches(facts) != r.negated)
    }

    /// Whether a rule applies. Under [`MoreFacts::worst_case`](super::acl::MoreFacts) an
    /// ACL analysis cannot enumerate is taken to let an `allow` line match and a `deny` line
    /// not match, whatever its negation: the most open reading of the policy.
    pub fn rule_matches(&self, rule: &Rule, facts: &RequestFacts<'_>) -> bool {
        rule.acls.iter().all(|r| self.ref_matches(rule.action, r, facts))
    }

    /// One ACL reference of a line with `action`, as [`AclSet::rule_matches`] reads it.
    pub fn ref_matches(&self, action: Action, r: &AclRef, facts: &RequestFacts<'_>) -> bool {
        let kind = &self.get(r.acl).kind;
        if facts.more.worst_case && kind.is_opaque() {
            action == Action::Allow
        } else {
            kind.matches(facts) != r.negated
        }
    }
}

/// The result of evaluating a list: the action and the rule that decided it
/// (`None` when no rule matched and the implicit default applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub rule: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleList {
    pub rules: Vec<Rule>,
}

impl RuleList {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// First matching rule wins; with no match, the opposite of the last rule's action.
    /// An empty list gives `None`: each caller knows its own default (`http_access`: deny).
    pub fn evaluate(&self, acls: &AclSet, facts: &RequestFacts<'_>) -> Option<Decision> {
        let last = self.rules.last()?;
        for (index, rule) in self.rules.iter().enumerate() {
            if acls.rule_matches(rule, facts) {
                return Some(Decision {
                    action: rule.action,
                    rule: Some(index),
                });
            }
        }
        Some(Decision {
            action: last.action.opposite(),
            rule: None,
        })
    }

    /// Evaluates and reduces to allowed-or-not, with `empty_default` for an empty list.
    pub fn allows(&self, acls: &AclSet, facts: &RequestFacts<'_>, empty_default: Action) -> bool {
        self.evaluate(acls, facts).map_or(empty_default, |d| d.action) == Action::Allow
    }

    pub fn needs_dst_addrs(&self, acls: &AclSet) -> bool {
        self.rules
            .iter()
            .flat_map(|r| &r.acls)
            .any(|r| acls.get(r.acl).kind.needs_dst_addrs())
    }
}
