//! Access policy: ACL kinds, ordered allow/deny lists and their evaluation. Pure, no I/O.

pub mod access;
pub mod acl;

pub use access::{AclRef, AclSet, Action, Decision, Origin, Rule, RuleList};
pub use acl::{Acl, AclKind, DomainPattern, IpMatch, RequestFacts};
