//! Applying `http_access` to a request: gathers the facts ACLs need (resolving the
//! destination only when a `dst` ACL is in play) and evaluates the rules.

use std::net::IpAddr;

use super::client::ClientCtx;
use super::target::Target;
use crate::policy::{Action, Origin, RequestFacts};

pub enum Verdict {
    Allowed,
    /// Denied by the rule at `rule` (or by the implicit default when `None`).
    Denied {
        rule: Option<Origin>,
    },
}

/// The verdict together with the facts it was based on, reused for routing decisions.
pub struct AccessCheck<'a> {
    ctx: &'a ClientCtx,
    method: String,
    target: &'a Target,
    dst_addrs: Vec<IpAddr>,
    aliases: Vec<String>,
    pub verdict: Verdict,
}

impl AccessCheck<'_> {
    pub fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            client: self.ctx.client_ip,
            method: &self.method,
            proto: self.target.proto,
            host: &self.target.host,
            port: self.target.port,
            path: &self.target.path,
            dst_addrs: &self.dst_addrs,
            host_aliases: &self.aliases,
            local_port: self.ctx.local_port,
            user: None,
        }
    }
}

pub async fn check_access<'a>(ctx: &'a ClientCtx, method: &str, target: &'a Target) -> AccessCheck<'a> {
    let generation = &ctx.generation;
    let config = &generation.config;
    let needs_dst = [&config.http_access, &config.never_direct, &config.always_direct]
        .iter()
        .any(|list| list.needs_dst_addrs(&config.acls));
    let dst_addrs = if needs_dst {
        generation
            .resolver
            .resolve(&target.host)
            .await
            .map(|a| a.to_vec())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let aliases = match target.host.parse::<IpAddr>() {
        Ok(ip) => generation.resolver.hosts().names_of(ip).to_vec(),
        Err(_) => Vec::new(),
    };
    let mut check = AccessCheck {
        ctx,
        method: method.to_ascii_uppercase(),
        target,
        dst_addrs,
        aliases,
        verdict: Verdict::Allowed,
    };
    let decision = config.http_access.evaluate(&config.acls, &check.facts());
    check.verdict = match decision {
        Some(d) if d.action == Action::Allow => Verdict::Allowed,
        Some(d) => Verdict::Denied {
            rule: d.rule.map(|i| config.http_access.rules[i].origin.clone()),
        },
        // No http_access lines at all: Squid denies everything.
        None => Verdict::Denied { rule: None },
    };
    if let Verdict::Denied { rule } = &check.verdict {
        let by = rule
            .as_ref()
            .map_or_else(|| "the implicit default".to_string(), |o| o.to_string());
        tracing::info!(client = %ctx.client_ip, "{} {}:{} denied by {by}", check.method, target.host, target.port);
    }
    check
}
