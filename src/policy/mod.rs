//! Access policy, the evaluator only: ACL kinds, ordered allow/deny lists and first-match
//! evaluation. Pure, no I/O, and nothing of `config`: whole-config reasoning (lint, explain)
//! lives in `crate::analysis`.

pub mod access;
pub mod acl;
pub mod header_rules;
pub mod ssl_bump;

pub use access::{AclRef, AclSet, Action, Decision, Origin, Rule, RuleList};
pub use acl::{
    Acl, AclKind, Component, DomainPattern, ExternalAnswer, ExternalRef, HeaderPatterns, IpMatch, LocalClock,
    MoreFacts, Patterns, Pending, ReplyFacts, RequestFacts, TimeSpan, TlsFacts, pending,
};
pub use header_rules::{HeaderFilter, HeaderRules};
pub use ssl_bump::{BumpAction, BumpDecision, BumpRule, TunnelRules, UnsupportedAction, UnsupportedRule};
