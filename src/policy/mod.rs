//! Access policy: ACL kinds, ordered allow/deny lists and their evaluation. Pure, no I/O.
//! [`lint`] reasons about a whole `http_access` list (open-proxy warnings for `check`) and
//! [`explain`] states it in words; both on the request classes of [`space`].

pub mod access;
pub mod acl;
pub mod explain;
pub mod lint;
mod space;

pub use access::{AclRef, AclSet, Action, Decision, Origin, Rule, RuleList};
pub use acl::{Acl, AclKind, DomainPattern, IpMatch, RequestFacts};
