//! CONNECT: check policy, reach the next hop (directly or through a parent's own CONNECT),
//! and only then answer 200 and relay. Bytes the client sent right behind its CONNECT head
//! are kept and forwarded once the tunnel is up (docs/squid-behaviour.md M15).

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::failure;
use super::headers::{client_proxy_auth, request_filter, write_forwarded};
use super::policy::{admit, check_access};
use super::reply::{ErrorType, ProxyError, reason_phrase, sf_identifier, sf_string};
use super::target::{authority, parse_connect};
use super::transaction::{ClientCtx, Failure, HopSeen, Outcome, Transaction, close_gracefully};
use crate::http1::head::response_body_kind;
use crate::http1::{BufConn, RequestHead, ResponseHead, copy_body};
use crate::relay::{relay, relay_copying};
use crate::route::select::{Attempt, NextHop, plan};
use crate::route::tunnel::{self, ParentRequest, TunnelOutcome};
use crate::shaping::{ShapedWriter, Shaper};

pub const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

/// A tunnel whose next hop said yes. Everything used to get here (heads, buffers, policy
/// facts) is already freed, so a long-lived tunnel holds only its two sockets and the fields
/// of its log record.
struct Established<'c> {
    tx: Transaction<'c>,
    client: BufConn,
    upstream: BufConn,
    addr: SocketAddr,
    attempt: Attempt,
    /// The 200 was already sent (an `ssl-bump` port read the ClientHello behind it).
    answered: bool,
    /// The delay pool share that paces what the client receives; `None` = unshaped.
    shaper: Option<Shaper>,
}

pub async fn handle(ctx: &ClientCtx, client: BufConn, head: RequestHead, start: Instant) {
    let mut tx = Transaction::new(ctx, start, "CONNECT", &head.target);
    tx.request_head(head.version, &head.method, &head.target, &head.headers);
    match establish(tx, client, head).await {
        Ok(established) => run_tunnel(established).await,
        Err(mut refused) => close_gracefully(&mut refused.stream).await,
    }
}

/// Answers 200, forwards the bytes either side sent early, relays, and logs the tunnel.
async fn run_tunnel(established: Established<'_>) {
    let Established {
        tx,
        client,
        upstream,
        addr,
        attempt,
        answered,
        shaper,
    } = established;
    let ctx = tx.ctx();
    let BufConn {
        stream: mut client_stream,
        buf: early_up,
    } = client;
    let BufConn {
        stream: mut upstream_stream,
        buf: early_down,
    } = upstream;
    let mut bytes = 0u64;
    let mut bytes_to_upstream = 0u64;
    let mut ready = answered || client_stream.write_all(ESTABLISHED).await.is_ok();
    let _open = ready.then(|| ctx.metrics.tunnel_opened());
    if ready {
        bytes += ESTABLISHED.len() as u64;
        ready =
            client_stream.write_all(&early_down).await.is_ok() && upstream_stream.write_all(&early_up).await.is_ok();
        bytes += early_down.len() as u64;
        bytes_to_upstream += early_up.len() as u64;
    }
    drop((early_up, early_down));
    if ready {
        let read_timeout = ctx.generation.config.read_timeout;
        let shutdown = ctx.shutdown.clone();
        let stats = match shaper {
            // Unshaped tunnels keep the relay's zero-copy path.
            None => relay(client_stream, upstream_stream, read_timeout, shutdown).await,
            Some(shaper) => {
                let (from_client, to_client) = tokio::io::split(client_stream);
                let to_client = ShapedWriter::new(to_client, shaper);
                relay_copying(from_client, to_client, upstream_stream, read_timeout, shutdown).await
            }
        };
        bytes += stats.server_to_client;
        bytes_to_upstream += stats.client_to_server;
    }
    tx.finish(Outcome {
        bytes_to_upstream,
        ..Outcome::tunnel(200, bytes, attempt, addr)
    });
}

/// Checks policy and reaches the next hop. Refusals and parents' error answers are handled
/// (answered and logged) here; then the client connection comes back to be closed.
async fn establish<'c>(
    mut tx: Transaction<'c>,
    mut client: BufConn,
    head: RequestHead,
) -> Result<Established<'c>, BufConn> {
    let ctx = tx.ctx();
    let target = match parse_connect(&head.target) {
        Ok(t) => t,
        Err(e) => {
            let error = ProxyError::new(400, ErrorType::HttpRequestError, e.to_string());
            tx.fail(&mut client, Failure::refused(error)).await;
            return Err(client);
        }
    };
    let url = authority(&target);
    tx.set_url(url.clone());
    let generation = &ctx.generation;
    let verdict = check_access(ctx, "CONNECT", &target, &head.headers).await;
    let facts = verdict.facts();
    let Some(tx) = admit(tx, &mut client, &verdict).await else {
        return Err(client);
    };
    let attempts = plan(&generation.egress, &generation.config, &facts);
    let shaper = generation.shaping.assign(&generation.config, &facts);

    let mut parent_head = format!("CONNECT {url} HTTP/1.1\r\nHost: {url}\r\n").into_bytes();
    // A CONNECT's bytes after the head are tunnel data: framing fields must not reach the parent.
    let skip = ["host", "content-length", "transfer-encoding"];
    let fields_start = parent_head.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1);
    write_forwarded(&mut parent_head, generation, ctx.client_ip, &head.headers, &skip);
    // Squid mangles the CONNECT it sends a parent like any forwarded request.
    request_filter(&generation.config, &facts).apply(&mut parent_head, fields_start);
    let request = ParentRequest {
        head: &parent_head,
        client_proxy_auth: client_proxy_auth(&head.headers),
    };

    let dialing = Instant::now();
    let opened = tunnel::open(
        &generation.egress,
        &generation.config,
        &facts,
        &attempts,
        &verdict.destination(),
        &request,
    )
    .await;
    if let Ok(TunnelOutcome::Established { attempt, .. }) = &opened {
        let parent = match attempt.hop {
            NextHop::Parent(index) => Some(index),
            NextHop::Direct => None,
        };
        ctx.metrics
            .tunnel_connected(&generation.hop_timers, parent, dialing.elapsed());
    }
    match opened {
        Ok(TunnelOutcome::Established {
            upstream,
            addr,
            attempt,
        }) => {
            // ssl-bump ports: the ClientHello is read behind our 200, once the next hop said
            // yes (so a 200 still means the destination was reached), and decides the splice.
            let answered = super::sni::applies(ctx);
            let tx = if answered {
                match super::sni::check(tx, &mut client, &facts, HopSeen::at(attempt, addr)).await {
                    Some(tx) => tx,
                    None => return Err(client),
                }
            } else {
                tx
            };
            Ok(Established {
                tx,
                client,
                upstream,
                addr,
                attempt,
                answered,
                shaper,
            })
        }
        Ok(TunnelOutcome::ParentAnswered {
            mut upstream,
            head: answer,
            addr,
            attempt,
            ..
        }) => {
            let bytes = relay_parent_answer(ctx, &mut client, &mut upstream, &answer, addr.to_string()).await;
            tx.finish(Outcome::tunnel(answer.status, bytes, attempt, addr));
            Err(client)
        }
        Err(error) => {
            let (reply, hop) = failure::describe(&error);
            let failure = Failure {
                hop,
                ..Failure::refused(reply)
            };
            tx.fail(&mut client, failure).await;
            Err(client)
        }
    }
}

/// Relays a parent's non-2xx answer to our CONNECT: its status line, its headers (with our
/// `Proxy-Status` member and `Via` entry added) and its body, then closes. Squid 5.7 drops
/// the body (docs/squid-behaviour.md B7r); the body often says what went wrong, so hopproxy keeps it.
async fn relay_parent_answer(
    ctx: &ClientCtx,
    client: &mut BufConn,
    upstream: &mut BufConn,
    answer: &ResponseHead,
    parent_addr: String,
) -> u64 {
    let generation = &ctx.generation;
    let mut head = format!("HTTP/1.1 {} {}\r\n", answer.status, reason_or_default(answer)).into_bytes();
    let body_kind =
        response_body_kind("CONNECT", answer.status, &answer.headers).unwrap_or(crate::http1::BodyKind::None);
    let mut proxy_status: Option<Vec<u8>> = None;
    let mut via: Option<Vec<u8>> = None;
    for h in &answer.headers {
        if h.is("connection") || h.is("proxy-connection") || h.is("keep-alive") {
            continue;
        }
        if h.is("proxy-status") {
            proxy_status = Some(join(proxy_status, &h.value));
            continue;
        }
        if h.is("via") {
            via = Some(join(via, &h.value));
            continue;
        }
        super::headers::push_header(&mut head, &h.name, &h.value);
    }
    // RFC 9209: the member closest to the origin comes first; we add ours after the parent's.
    let ours = format!(
        "{}; received-status={}; next-hop={}",
        sf_identifier(&generation.hostname),
        answer.status,
        sf_string(&parent_addr)
    );
    super::headers::push_header(&mut head, "Proxy-Status", &join(proxy_status, ours.as_bytes()));
    super::headers::write_via(&mut head, generation, via);
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    let mut written = 0u64;
    if client.write_all(&head).await.is_ok() {
        written += head.len() as u64;
        let idle = generation.config.read_timeout.min(std::time::Duration::from_secs(30));
        // A cap on the time spent on an error body: it is advice, not payload.
        let copy = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            copy_body(upstream, &mut client.stream, body_kind, idle),
        );
        if let Ok(Ok(n)) = copy.await {
            written += n;
        }
    }
    written
}

fn reason_or_default(answer: &ResponseHead) -> &str {
    if answer.reason.is_empty() {
        reason_phrase(answer.status)
    } else {
        &answer.reason
    }
}

fn join(existing: Option<Vec<u8>>, more: &[u8]) -> Vec<u8> {
    match existing {
        Some(mut v) => {
            v.extend_from_slice(b", ");
            v.extend_from_slice(more);
            v
        }
        None => more.to_vec(),
    }
}
