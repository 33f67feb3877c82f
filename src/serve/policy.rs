//! Applying `http_access` to a request: gathers the facts ACLs need (resolving the
//! destination only when a `dst` ACL is in play) and evaluates the rules.

use std::net::IpAddr;

use super::reply::{ErrorType, ProxyError};
use super::target::Target;
use super::transaction::{ClientCtx, Failure, Transaction};
use crate::auth::{AuthResult, challenge_on_deny, needs_user};
use crate::http1::BufConn;
use crate::log::ResultCode;
use crate::metrics::{Access, AuthCheck};
use crate::policy::{Action, Decision, Origin, RequestFacts};
use crate::route::dial::Destination;
use crate::route::dns::Resolution;
use crate::route::select::needs_dst_addrs;

pub enum Verdict {
    Allowed,
    /// Denied by the rule at `rule` (or by the implicit default when `None`).
    Denied {
        rule: Option<Origin>,
    },
    /// A `proxy_auth` rule needs a user and none (or a wrong one) was given: answer 407.
    AuthRequired,
}

/// The verdict together with the facts it was based on, reused for routing decisions.
pub struct AccessCheck<'a> {
    ctx: &'a ClientCtx,
    method: String,
    target: &'a Target,
    dst_addrs: Vec<IpAddr>,
    /// The destination's resolution, when ACLs needed it; the dial reuses it.
    resolved: Option<Resolution>,
    aliases: Vec<String>,
    /// The user from `Proxy-Authorization`: verified, or the one that failed (for the log).
    pub user: Option<String>,
    /// Whether `user` passed verification (only then do `proxy_auth` ACLs see it).
    authenticated: bool,
    pub verdict: Verdict,
    /// The index of the deciding `http_access` line (`None`: the implicit default, or auth).
    rule: Option<usize>,
}

impl AccessCheck<'_> {
    /// Where to dial, with the addresses the ACLs were evaluated on.
    pub fn destination(&self) -> Destination<'_> {
        Destination {
            host: &self.target.host,
            port: self.target.port,
            resolved: self.resolved.as_ref(),
        }
    }

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
            user: if self.authenticated { self.user.as_deref() } else { None },
        }
    }
}

/// Evaluates `http_access`. Credentials (`proxy_auth`, the client's `Proxy-Authorization`) are
/// checked only when evaluation reaches a `proxy_auth` ACL, as Squid does.
pub async fn check_access<'a>(
    ctx: &'a ClientCtx,
    method: &str,
    target: &'a Target,
    proxy_authorization: Option<&[u8]>,
) -> AccessCheck<'a> {
    let generation = &ctx.generation;
    let config = &generation.config;
    // One resolution per request: ACLs and the dial see the same addresses.
    let needs_dst = config.http_access.needs_dst_addrs(&config.acls) || needs_dst_addrs(config);
    let resolved = if needs_dst {
        Some(generation.egress.resolver.resolve(&target.host).await)
    } else {
        None
    };
    let dst_addrs = match &resolved {
        Some(Ok(addrs)) => addrs.to_vec(),
        _ => Vec::new(),
    };
    let aliases = match target.host.parse::<IpAddr>() {
        Ok(ip) => generation.egress.resolver.hosts().names_of(ip).to_vec(),
        Err(_) => Vec::new(),
    };
    let mut check = AccessCheck {
        ctx,
        method: method.to_ascii_uppercase(),
        target,
        dst_addrs,
        resolved,
        aliases,
        user: None,
        authenticated: false,
        verdict: Verdict::Allowed,
        rule: None,
    };
    if let Some(auth) = &generation.auth
        && needs_user(&config.http_access, &config.acls, &check.facts())
    {
        let result = auth.check(proxy_authorization).await;
        ctx.metrics.auth_checked(match result {
            AuthResult::Authenticated(_) => AuthCheck::Accepted,
            AuthResult::Missing => AuthCheck::Missing,
            AuthResult::Invalid { .. } => AuthCheck::Rejected,
        });
        check.user = result.user().map(str::to_string);
        if !matches!(result, AuthResult::Authenticated(_)) {
            check.verdict = Verdict::AuthRequired;
            return check;
        }
        check.authenticated = true;
    }
    let decision = config.http_access.evaluate(&config.acls, &check.facts());
    check.rule = decision.as_ref().and_then(|d| d.rule);
    check.verdict = match decision {
        Some(d) if d.action == Action::Allow => Verdict::Allowed,
        // `http_access deny !users`: a deny decided by a proxy_auth ACL asks for credentials.
        Some(Decision { rule: Some(i), .. }) if challenge_on_deny(&config.http_access.rules[i], &config.acls) => {
            Verdict::AuthRequired
        }
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

/// Records the policy's decision in the transaction and, when it refused, answers 407 with a
/// challenge (credentials needed) or 403 and logs. Returns the transaction only when the
/// request is allowed.
pub async fn admit<'c>(
    mut tx: Transaction<'c>,
    client: &mut BufConn,
    check: &AccessCheck<'_>,
) -> Option<Transaction<'c>> {
    let access = match check.verdict {
        Verdict::Allowed => Access::Allowed,
        Verdict::AuthRequired => Access::AuthRequired,
        Verdict::Denied { .. } => Access::Denied,
    };
    let ctx = tx.ctx();
    ctx.metrics
        .access_decided(access, check.rule.and_then(|i| ctx.generation.rule_labels.get(i)));
    tx.decided(check.user.clone());
    let error = match check.verdict {
        Verdict::Allowed => return Some(tx),
        Verdict::AuthRequired => auth_required(tx.ctx()),
        Verdict::Denied { .. } => ProxyError::new(
            403,
            ErrorType::HttpRequestDenied,
            format!("access to {} denied by policy", tx.url()),
        )
        .with_hint("the proxy's http_access rules do not allow this client, destination, port or method"),
    };
    let failure = Failure {
        result: ResultCode::Denied,
        ..Failure::refused(error)
    };
    tx.fail(client, failure).await;
    None
}

/// The 407 reply for [`Verdict::AuthRequired`].
fn auth_required(ctx: &ClientCtx) -> ProxyError {
    let challenge = ctx
        .generation
        .auth
        .as_ref()
        .map(|a| a.challenge())
        .unwrap_or_else(|| "Basic".to_string());
    ProxyError::new(407, ErrorType::HttpRequestDenied, "proxy authentication required")
        .with_header("Proxy-Authenticate", challenge)
        .with_hint("send Proxy-Authorization: Basic with a user of this proxy's auth_param password file")
}
