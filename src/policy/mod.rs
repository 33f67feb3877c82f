//! Access policy: ACL kinds, ordered allow/deny lists and their evaluation. Pure, no I/O.
//! [`lint`] reasons about a whole `http_access` list (open-proxy warnings for `check`).

pub mod access;
pub mod acl;
pub mod lint;

pub use access::{AclRef, AclSet, Action, Decision, Origin, Rule, RuleList};
pub use acl::{Acl, AclKind, DomainPattern, IpMatch, RequestFacts};
