//! Applying `http_access` to a request: gathers the facts ACLs need (resolving the
//! destination only when a `dst` ACL is in play) and evaluates the rules.

use std::net::IpAddr;

use super::headers::client_forwarded_for;
use super::reply::{ErrorType, ProxyError};
use super::target::Target;
use super::transaction::{ClientCtx, Failure, Transaction};
use crate::auth::{AuthResult, challenge_on_deny};
use crate::config::DenyAnswer;
use crate::helper::external::Inputs;
use crate::http1::{BufConn, Header};
use crate::log::ResultCode;
use crate::metrics::{Access, AuthCheck};
use crate::policy::{Action, Decision, ExternalAnswer, LocalClock, MoreFacts, Origin, Pending, RequestFacts, pending};
use crate::route::dial::Destination;
use crate::route::dns::Resolution;

pub enum Verdict {
    Allowed,
    /// Denied by the rule at `rule` (or by the implicit default when `None`).
    Denied {
        rule: Option<Origin>,
        /// The `deny_info` answer for the rule's last ACL, as Squid picks it.
        answer: Option<DenyAnswer>,
    },
    /// A `proxy_auth` rule needs a user and none (or a wrong one) was given: answer 407.
    AuthRequired,
    /// A helper the decision needs could not answer (queue full, restart storm, timeout):
    /// answer 503; `what` names the helper and the reason, for `Proxy-Status` details.
    HelperUnavailable {
        what: String,
    },
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
    /// The URL as `url_regex` sees it: `host:port` for CONNECT, else Squid's canonical URL
    /// (empty when no `url_regex` ACL exists).
    url: String,
    headers: &'a [Header],
    /// The local time, when a `time` ACL reads it.
    clock: Option<LocalClock>,
    /// The client ACLs and the log see: the connection's peer, or with `follow_x_forwarded_for`
    /// the indirect client it vouches for (`acl_uses_indirect_client on`, Squid's default).
    pub client: IpAddr,
    /// The user from `Proxy-Authorization`: verified, or the one that failed (for the log).
    pub user: Option<String>,
    /// Whether `user` passed verification (only then do `proxy_auth` ACLs see it).
    authenticated: bool,
    /// External ACL answers gathered while evaluating `http_access`.
    external: Vec<ExternalAnswer>,
    pub verdict: Verdict,
    /// The index of the deciding `http_access` line (`None`: the implicit default, or auth).
    rule: Option<usize>,
}

impl<'a> AccessCheck<'a> {
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
            client: self.client,
            method: &self.method,
            proto: self.target.proto,
            host: &self.target.host,
            port: self.target.port,
            path: &self.target.path,
            dst_addrs: &self.dst_addrs,
            host_aliases: &self.aliases,
            local_port: self.ctx.local_port,
            user: if self.authenticated { self.user.as_deref() } else { None },
            more: MoreFacts {
                url: &self.url,
                path_query: &self.target.path,
                request_headers: self.headers,
                local_ip: self.ctx.local_ip,
                port_name: None,
                clock: self.clock,
                client_connections: self.ctx.client_connections,
                client_cert_cn: self.ctx.client_cert.as_ref().and_then(|c| c.common_name.as_deref()),
                reply: None,
                external: &self.external,
                tls: None,
                worst_case: false,
            },
        }
    }

    /// What an external ACL's format reads.
    fn external_inputs(&self) -> Inputs<'_> {
        Inputs {
            user: if self.authenticated { self.user.as_deref() } else { None },
            client: self.client,
            client_port: self.ctx.client_port,
            host: &self.target.host,
            proto: self.target.proto,
            port: self.target.port,
            path: &self.target.path,
            method: &self.method,
            url: &self.url,
            local_ip: self.ctx.local_ip,
            local_port: self.ctx.local_port,
            headers: self.headers,
        }
    }
}

/// Evaluates `http_access`. Credentials (`proxy_auth`, the client's `Proxy-Authorization`) are
/// checked only when evaluation reaches a `proxy_auth` ACL, as Squid does.
pub async fn check_access<'a>(
    ctx: &'a ClientCtx,
    method: &str,
    target: &'a Target,
    headers: &'a [Header],
) -> AccessCheck<'a> {
    let proxy_authorization = super::headers::client_proxy_auth(headers);
    let generation = &ctx.generation;
    let config = &generation.config;
    let reads = generation.acl_reads;
    // One resolution per request: ACLs and the dial see the same addresses.
    let resolved = if reads.dst_addrs {
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
        client: ctx.client_ip,
        dst_addrs,
        resolved,
        aliases,
        url: if reads.url {
            canonical_url(target)
        } else {
            String::new()
        },
        headers,
        clock: reads.clock.then(local_clock),
        user: None,
        authenticated: false,
        external: Vec::new(),
        verdict: Verdict::Allowed,
        rule: None,
    };
    check.client = indirect_client(&check, client_forwarded_for(headers).as_deref());
    // Credentials and external ACL answers are gathered lazily, in the order evaluation
    // reaches them, as Squid does; each step resolves one, so the loop is bounded.
    let needs_login = |i: usize| config.external_acl_types[i].needs_login();
    for _ in 0..=config.acls.acls.len() + 1 {
        let user_known = generation.auth.is_none() || check.authenticated;
        match pending(
            &config.http_access,
            &config.acls,
            &check.facts(),
            user_known,
            needs_login,
        ) {
            Pending::Nothing => break,
            Pending::User => {
                let Some(auth) = &generation.auth else { break };
                let result = auth.check(proxy_authorization).await;
                ctx.metrics.auth_checked(match result {
                    AuthResult::Authenticated(_) => AuthCheck::Accepted,
                    AuthResult::Missing => AuthCheck::Missing,
                    AuthResult::Invalid { .. } => AuthCheck::Rejected,
                    AuthResult::Unavailable { .. } => AuthCheck::Unavailable,
                });
                check.user = result.user().map(str::to_string);
                if let AuthResult::Unavailable { error, .. } = &result {
                    check.verdict = Verdict::HelperUnavailable {
                        what: format!("authentication helper: {error}"),
                    };
                    return check;
                }
                if !matches!(result, AuthResult::Authenticated(_)) {
                    check.verdict = Verdict::AuthRequired;
                    return check;
                }
                check.authenticated = true;
            }
            Pending::External(acl) => {
                let external = &generation.external[acl.type_index];
                match external.lookup(&acl.args, &check.external_inputs()).await {
                    Ok(answer) => {
                        // Squid logs a helper's user= as the user when no one authenticated.
                        if check.user.is_none() {
                            check.user = answer.user;
                        }
                        check.external.push(ExternalAnswer {
                            acl,
                            matched: answer.matched,
                        });
                    }
                    Err(what) => {
                        check.verdict = Verdict::HelperUnavailable { what };
                        return check;
                    }
                }
            }
        }
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
            // Squid answers with the deny_info of the last ACL on the line that denied; the
            // implicit deny after the last line has no such ACL here.
            answer: d
                .rule
                .and_then(|i| config.http_access.rules[i].acls.last())
                .and_then(|last| config.deny_answer(last.acl))
                .cloned(),
        },
        // No http_access lines at all: Squid denies everything.
        None => Verdict::Denied {
            rule: None,
            answer: None,
        },
    };
    if let Verdict::Denied { rule, .. } = &check.verdict {
        let by = rule
            .as_ref()
            .map_or_else(|| "the implicit default".to_string(), |o| o.to_string());
        tracing::info!(client = %ctx.client_ip, "{} {}:{} denied by {by}", check.method, target.host, target.port);
    }
    check
}

/// The URL as Squid's ACLs see it: `host:port` for CONNECT; otherwise scheme, host, the
/// port when not the scheme's default, and path.
fn canonical_url(target: &Target) -> String {
    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    match target.proto {
        "AUTHORITY" => format!("{host}:{}", target.port),
        _ if target.port == 80 => format!("http://{host}{}", target.path),
        _ => format!("http://{host}:{}{}", target.port, target.path),
    }
}

/// Local wall-clock time now, for `time` ACLs.
pub fn local_clock() -> LocalClock {
    use chrono::{Datelike, Timelike};
    let now = chrono::Local::now();
    LocalClock {
        weekday: now.weekday().num_days_from_sunday() as u8,
        minute_of_day: (now.hour() * 60 + now.minute()) as u16,
    }
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
        Verdict::Denied { .. } | Verdict::HelperUnavailable { .. } => Access::Denied,
    };
    let ctx = tx.ctx();
    ctx.metrics
        .access_decided(&ctx.generation.rule_counters, access, check.rule);
    tx.decided(check.user.clone());
    tx.set_client(check.client);
    let error = match &check.verdict {
        Verdict::Allowed => return Some(tx),
        Verdict::AuthRequired => auth_required(tx.ctx()),
        Verdict::HelperUnavailable { what } => ProxyError::new(503, ErrorType::ProxyInternalError, what.clone())
            .with_hint("the helper's queue is full or it keeps failing; see the proxy's error log"),
        Verdict::Denied { answer: None, .. } => denied(tx.url()),
        Verdict::Denied {
            answer: Some(DenyAnswer::ErrorPage { status, name }),
            ..
        } => ProxyError {
            status: *status,
            ..denied(tx.url())
        }
        .with_header("X-Squid-Error", format!("{name} 0")),
        Verdict::Denied {
            answer: Some(DenyAnswer::Redirect { status, url }),
            ..
        } => {
            // Squid: 302 for GET and HEAD, 307 for other methods, unless the line names one.
            let status = status.unwrap_or(if matches!(check.method.as_str(), "GET" | "HEAD") {
                302
            } else {
                307
            });
            let location = expand_deny_url(url, check, tx.url(), &tx.ctx().generation.hostname);
            ProxyError::new(
                status,
                ErrorType::HttpRequestDenied,
                format!("access to {} denied by policy", tx.url()),
            )
            .with_header("Location", location)
        }
    };
    let failure = Failure {
        result: ResultCode::Denied,
        ..Failure::refused(error)
    };
    tx.fail(client, failure).await;
    None
}

/// Squid's `follow_x_forwarded_for`: starting from the connection's peer, while the rules
/// allow the current address, step to the next `X-Forwarded-For` entry from the right. Stops
/// at a denied address, the end of the list, or an entry that is not an IP address. Without
/// rules nothing is trusted (Squid's default `deny all`).
fn indirect_client(check: &AccessCheck<'_>, forwarded_for: Option<&[u8]>) -> IpAddr {
    let config = &check.ctx.generation.config;
    let (Some(list), false) = (forwarded_for, config.follow_x_forwarded_for.is_empty()) else {
        return check.client;
    };
    let list = String::from_utf8_lossy(list);
    let mut current = check.client;
    // Bounded by the header's own entries (itself bounded by request_header_max_size).
    for entry in list.rsplit(',').map(str::trim) {
        let mut facts = check.facts();
        facts.client = current;
        if !config.follow_x_forwarded_for.allows(&config.acls, &facts, Action::Deny) {
            break;
        }
        match entry.parse::<IpAddr>() {
            Ok(ip) => current = ip.to_canonical(),
            Err(_) => break,
        }
    }
    current
}

/// The plain 403 for a denial.
fn denied(url: &str) -> ProxyError {
    ProxyError::new(
        403,
        ErrorType::HttpRequestDenied,
        format!("access to {url} denied by policy"),
    )
    .with_hint("the proxy's http_access rules do not allow this client, destination, port or method")
}

/// Expands the `%`-codes Squid documents for `deny_info` URLs (the values URL-escaped, as
/// Squid does): `%u`/`%U` URL, `%H` host, `%p` port, `%M` method, `%i` client address,
/// `%h` visible_hostname, `%%`. Other codes are left as written.
fn expand_deny_url(template: &str, check: &AccessCheck<'_>, url: &str, hostname: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let value = match chars.next() {
            Some('u' | 'U') => url.to_string(),
            Some('H') => check.target.host.clone(),
            Some('p') => check.target.port.to_string(),
            Some('M') => check.method.clone(),
            Some('i') => check.ctx.client_ip.to_string(),
            Some('h') => hostname.to_string(),
            Some('%') => {
                out.push('%');
                continue;
            }
            Some(other) => {
                out.push('%');
                out.push(other);
                continue;
            }
            None => {
                out.push('%');
                break;
            }
        };
        escape_into(&mut out, &value);
    }
    out
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn escape_into(out: &mut String, value: &str) {
    use std::fmt::Write as _;
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// `http_reply_access` for an answer the next hop sent: `Some(reply)` when it is refused.
/// No rules allow everything, as in Squid; a refusal is Squid's `TCP_DENIED_REPLY/403`.
pub fn reply_refusal(
    config: &crate::config::Config,
    facts: &RequestFacts<'_>,
    status: u16,
    headers: &[Header],
    url: &str,
) -> Option<ProxyError> {
    let rules = &config.http_reply_access;
    if rules.is_empty() {
        return None;
    }
    let mut facts = facts.clone();
    facts.more.reply = Some(crate::policy::ReplyFacts { status, headers });
    if rules.allows(&config.acls, &facts, Action::Allow) {
        return None;
    }
    Some(
        ProxyError::new(
            403,
            ErrorType::HttpRequestDenied,
            format!("the reply for {url} denied by policy"),
        )
        .with_hint("the proxy's http_reply_access rules do not allow this reply"),
    )
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
