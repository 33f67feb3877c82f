//! Whole-config reasoning over the policy evaluator, for the `check` and `explain` commands.
//!
//! [`space`] cuts the request space into classes every ACL treats alike; [`lint`] finds open-proxy
//! policies on those classes (for `check`); [`explain`] states the policy and its routing in
//! words. Imports `config` and `policy`; neither of them imports this module.

pub mod check;
pub mod explain;
pub mod lint;
mod space;
