//! `ssl_bump` (peek-and-splice without ever bumping) and `on_unsupported_protocol`: which
//! action a tunnel on an `ssl-bump` port takes at each step. Squid's semantics: the first
//! line whose ACLs all match and whose action is possible at the step wins; no match splices.

use super::access::{AclRef, AclSet, Origin};
use super::acl::{RequestFacts, TlsFacts};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BumpAction {
    /// Read the client's ClientHello (step 1) and decide again with its SNI.
    Peek,
    /// Become a plain TCP tunnel (also Squid's deprecated `none`).
    Splice,
    /// Close the client connection; the server gets no byte.
    Terminate,
}

impl BumpAction {
    pub fn name(self) -> &'static str {
        match self {
            BumpAction::Peek => "peek",
            BumpAction::Splice => "splice",
            BumpAction::Terminate => "terminate",
        }
    }
}

/// One `ssl_bump ACTION ACL…` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BumpRule {
    pub action: BumpAction,
    pub acls: Vec<AclRef>,
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsupportedAction {
    /// Relay the bytes as an opaque tunnel.
    Tunnel,
    /// Answer with an HTTP error and close (Squid's default).
    Respond,
}

/// One `on_unsupported_protocol tunnel|respond ACL…` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedRule {
    pub action: UnsupportedAction,
    pub acls: Vec<AclRef>,
    pub origin: Origin,
}

/// The tunnel rules of a config; all empty = nothing is read from tunnels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelRules {
    pub ssl_bump: Vec<BumpRule>,
    pub on_unsupported_protocol: Vec<UnsupportedRule>,
    /// hopproxy extension `tunnel_sni_must_match on`: a ClientHello whose SNI names another
    /// host than the CONNECT target (domain fronting) is terminated before `ssl_bump` is read.
    pub sni_must_match: bool,
}

/// Which rule decided (an index into [`TunnelRules::ssl_bump`], `None` for the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BumpDecision {
    pub action: BumpAction,
    pub rule: Option<usize>,
}

impl TunnelRules {
    /// Whether a tunnel on an `ssl-bump` port has to read the ClientHello at all: only when a
    /// rule could peek, or fronting is refused.
    pub fn may_peek(&self) -> bool {
        self.sni_must_match || self.ssl_bump.iter().any(|r| r.action == BumpAction::Peek)
    }

    /// The decision at `tls.step` (1, 2 or 3). `peek` is possible at steps 1 and 2 only.
    pub fn decide(&self, acls: &AclSet, facts: &RequestFacts<'_>, tls: TlsFacts<'_>) -> BumpDecision {
        let mut facts = facts.clone();
        facts.more.tls = Some(tls);
        for (index, rule) in self.ssl_bump.iter().enumerate() {
            if rule.action == BumpAction::Peek && tls.step >= 3 {
                continue;
            }
            if acls.all_match(&rule.acls, &facts) {
                return BumpDecision {
                    action: rule.action,
                    rule: Some(index),
                };
            }
        }
        BumpDecision {
            action: BumpAction::Splice,
            rule: None,
        }
    }

    /// What to do with a tunnel whose first bytes are not TLS: the first matching line, or
    /// Squid's default `respond`.
    pub fn on_unsupported(&self, acls: &AclSet, facts: &RequestFacts<'_>) -> (UnsupportedAction, Option<usize>) {
        self.on_unsupported_protocol
            .iter()
            .position(|r| acls.all_match(&r.acls, facts))
            .map_or((UnsupportedAction::Respond, None), |i| {
                (self.on_unsupported_protocol[i].action, Some(i))
            })
    }
}

/// Whether a ClientHello's SNI names the CONNECT host (or, for an IP-literal host, one of its
/// `hosts_file` names). Both are lower-case without a trailing dot.
pub fn sni_matches_host(sni: &str, facts: &RequestFacts<'_>) -> bool {
    sni == facts.host || facts.host_aliases.iter().any(|a| a == sni)
}
