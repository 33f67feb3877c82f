//! SNI-checked tunnels on `http_port … ssl-bump` (docs/sni-tunnels.md): after the next hop
//! said yes, answer 200, read the client's ClientHello (bounded in size and time), and splice
//! or terminate as `ssl_bump` says. Nothing is decrypted and, until the decision is splice,
//! no byte of the client's reaches the server.
//!
//! Ports without `ssl-bump`, and configs without `ssl_bump` rules, never enter this module.

use super::connect::ESTABLISHED;
use super::reply::{ErrorType, ProxyError};
use super::transaction::{ClientCtx, Failure, HopSeen, Outcome, Transaction};
use crate::http1::BufConn;
use crate::log::ResultCode;
use crate::policy::ssl_bump::sni_matches_host;
use crate::policy::{BumpAction, RequestFacts, TlsFacts, UnsupportedAction};
use crate::tls_hello::{self, ClientHello, HELLO_TIMEOUT, HelloError};

/// Whether this client's tunnels are checked: an `ssl-bump` port, and rules that read the
/// ClientHello or decide at step 1. Configs without such rules pay one emptiness check.
pub fn applies(ctx: &ClientCtx) -> bool {
    let config = &ctx.generation.config;
    let rules = &config.tunnel_rules;
    if rules.ssl_bump.is_empty() && !rules.sni_must_match {
        return false;
    }
    config.http_ports.iter().any(|p| {
        p.ssl_bump && p.port == ctx.local_port && (p.addr.is_none() || p.addr.map(|a| a.to_canonical()) == ctx.local_ip)
    })
}

/// What the client sent after our 200.
enum Hello {
    Read(ClientHello),
    /// Not TLS, or nothing at all within [`HELLO_TIMEOUT`].
    NotTls,
    /// TLS that cannot be read: malformed, oversized, or cut short by EOF or the timeout.
    Unreadable(&'static str),
}

/// Answers 200 and applies the rules. `Some` = splice: the bytes read stay in `client.buf`
/// to be forwarded first. `None` = the tunnel ended here, answered and logged.
pub async fn check<'c>(
    mut tx: Transaction<'c>,
    client: &mut BufConn,
    facts: &RequestFacts<'_>,
    hop: HopSeen,
) -> Option<Transaction<'c>> {
    let ctx = tx.ctx();
    let generation = &ctx.generation;
    let rules = &generation.config.tunnel_rules;
    let acls = &generation.config.acls;
    if client.write_all(ESTABLISHED).await.is_err() {
        tx.finish(ended(ResultCode::Tunnel, hop, 0));
        return None;
    }
    let step1 = rules.decide(acls, facts, TlsFacts { step: 1, sni: None });
    let peek = match step1.action {
        BumpAction::Terminate => {
            let rule = step1.rule.map(|i| &rules.ssl_bump[i].origin);
            terminate(tx, hop, None, "", "ssl_bump terminate at step 1", rule);
            return None;
        }
        BumpAction::Peek => true,
        // Fronting is refused only by reading the name, whatever step 1 says.
        BumpAction::Splice => rules.sni_must_match,
    };
    if !peek {
        return Some(tx);
    }
    let hello = match read_hello(client).await {
        Hello::Read(hello) => hello,
        Hello::NotTls => {
            let (action, _) = rules.on_unsupported(acls, facts);
            tracing::info!(client = %ctx.client_ip, url = tx.url(), ?action, "tunnel bytes are not TLS");
            return match action {
                UnsupportedAction::Tunnel => Some(tx),
                UnsupportedAction::Respond => {
                    let error = ProxyError::new(
                        400,
                        ErrorType::HttpRequestError,
                        "the tunnel's first bytes are not a TLS ClientHello",
                    )
                    .with_hint("this port checks TLS server names; on_unsupported_protocol tunnel lets other protocols through");
                    let failure = Failure {
                        result: ResultCode::Denied,
                        hop,
                        ..Failure::refused(error)
                    };
                    tx.fail_after(client, failure, ESTABLISHED.len() as u64).await;
                    None
                }
            };
        }
        Hello::Unreadable(why) => {
            terminate(tx, hop, None, "", why, None);
            return None;
        }
    };
    let alpn = hello.alpn.join(",");
    tx.set_sni(hello.sni.clone());
    let sni = hello.sni.as_deref();
    if rules.sni_must_match
        && let Some(name) = sni
        && !sni_matches_host(name, facts)
    {
        terminate(
            tx,
            hop,
            sni,
            &alpn,
            "tunnel_sni_must_match: SNI names another host",
            None,
        );
        return None;
    }
    let decision = if step1.action == BumpAction::Peek {
        let step2 = rules.decide(acls, facts, TlsFacts { step: 2, sni });
        if step2.action == BumpAction::Peek {
            // Step 3 would read the server's certificate, which hopproxy never does: the
            // rules decide again with what is known, and peek is no longer possible.
            rules.decide(acls, facts, TlsFacts { step: 3, sni })
        } else {
            step2
        }
    } else {
        step1
    };
    let rule = decision.rule.map(|i| &rules.ssl_bump[i].origin);
    match decision.action {
        BumpAction::Terminate => {
            terminate(tx, hop, sni, &alpn, "ssl_bump terminate", rule);
            None
        }
        _ => {
            tracing::debug!(client = %ctx.client_ip, url = tx.url(), sni = sni.unwrap_or("-"), alpn, "tunnel spliced");
            Some(tx)
        }
    }
}

/// Reads until the ClientHello is complete, clearly not TLS, unreadable, or time is up.
async fn read_hello(client: &mut BufConn) -> Hello {
    let deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
    loop {
        match tls_hello::parse(&client.buf) {
            Ok(hello) => return Hello::Read(hello),
            Err(HelloError::NotTls) => return Hello::NotTls,
            Err(HelloError::Malformed(why)) => return Hello::Unreadable(why),
            Err(HelloError::TooLarge) => return Hello::Unreadable("ClientHello larger than 16 KiB"),
            Err(HelloError::Incomplete) => {}
        }
        let nothing_yet = client.buf.is_empty();
        match tokio::time::timeout_at(deadline, client.fill()).await {
            Ok(Ok(n)) if n > 0 => {}
            // EOF or an error before any byte: nothing to check, the relay sees the end.
            Ok(_) if nothing_yet => return Hello::NotTls,
            Ok(_) => return Hello::Unreadable("client closed in the middle of its ClientHello"),
            Err(_) if nothing_yet => return Hello::NotTls,
            Err(_) => return Hello::Unreadable("ClientHello not complete within the time allowed"),
        }
    }
}

/// Ends a tunnel after our 200 without forwarding a byte: logged `TCP_DENIED/200` (the client
/// did get the 200), with the SNI for `%ssl::>sni` and a diagnostic line naming the reason.
fn terminate(
    tx: Transaction<'_>,
    hop: HopSeen,
    sni: Option<&str>,
    alpn: &str,
    why: &str,
    rule: Option<&crate::policy::Origin>,
) {
    let ctx = tx.ctx();
    let rule = rule.map_or_else(|| "-".to_string(), |o| o.to_string());
    tracing::info!(
        client = %ctx.client_ip,
        url = tx.url(),
        sni = sni.unwrap_or("-"),
        alpn,
        rule,
        "tunnel terminated: {why}"
    );
    tx.finish(ended(ResultCode::Denied, hop, ESTABLISHED.len() as u64));
}

fn ended(result: ResultCode, hop: HopSeen, bytes: u64) -> Outcome {
    Outcome {
        result,
        status: 200,
        bytes,
        hierarchy: hop.hierarchy,
        peer: hop.peer,
        content_type: None,
        bytes_to_upstream: 0,
    }
}
