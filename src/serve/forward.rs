//! Plain HTTP forwarding of absolute-form requests: origin-form to an origin, absolute-form
//! to a parent. One upstream connection is kept per client connection and reused while the
//! client keeps asking the same next hop.

use std::net::SocketAddr;

use tokio::time::Instant;

use super::client::{ClientCtx, Outcome};
use super::failure;
use super::headers::{existing_via, push_header, write_forwarded, write_via};
use super::policy::{check_access, refuse_unless_allowed};
use super::reply::{ErrorType, ProxyError, reason_phrase};
use super::target::{Target, absolute_url, authority, host_field_matches, parse_absolute};
use crate::http1::body::BodyError;
use crate::http1::head::{
    connection_tokens, framing_named_in_connection, is_hop_by_hop, parse_response, request_body_kind,
    response_body_kind, wants_keep_alive,
};
use crate::http1::{BodyKind, BufConn, HeadError, RequestHead, ResponseHead, copy_body};
use crate::log::ResultCode;
use crate::route::dial::{HopFailure, connect_hop};
use crate::route::select::{Attempt, NextHop, plan};
use crate::route::tunnel::{TunnelError, append_peer_login};

/// Largest response head accepted from the next hop.
const RESPONSE_HEAD_LIMIT: usize = 64 * 1024;

pub enum Next {
    KeepAlive,
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HopKey {
    Direct(String),
    Parent(usize),
}

struct Live {
    key: HopKey,
    conn: BufConn,
    addr: SocketAddr,
    attempt: Attempt,
}

/// The upstream connection kept between requests of one client connection.
#[derive(Default)]
pub struct Upstream {
    live: Option<Live>,
}

fn key_of(attempt: &Attempt, target: &Target) -> HopKey {
    match attempt.hop {
        NextHop::Direct => HopKey::Direct(authority(target)),
        NextHop::Parent(i) => HopKey::Parent(i),
    }
}

fn content_type(head: &ResponseHead) -> Option<String> {
    let value = head.headers.iter().find(|h| h.is("content-type"))?.value_str();
    let mime = value.split(';').next().unwrap_or("").trim();
    (!mime.is_empty()).then(|| mime.to_string())
}

pub async fn handle(
    ctx: &ClientCtx,
    client: &mut BufConn,
    upstream: &mut Upstream,
    head: RequestHead,
    start: Instant,
) -> Next {
    let method = head.method.clone();
    let refuse = |status: u16, error: ErrorType, details: String| ProxyError::new(status, error, details);
    let target = match parse_absolute(&head.target) {
        Ok(t) => t,
        Err(e) => {
            let bytes = ctx
                .refuse(client, &refuse(400, ErrorType::HttpRequestError, e.to_string()))
                .await;
            ctx.log(
                start,
                &method,
                &head.target,
                Outcome::local(ResultCode::None, 400, bytes),
            );
            return Next::Close;
        }
    };
    let url = absolute_url(&target);
    let host_fields: Vec<&str> = head
        .headers
        .iter()
        .filter(|h| h.is("host"))
        .map(|h| h.value_str())
        .collect();
    let framing = request_body_kind(&head.headers);
    let problem = match (&host_fields[..], &framing) {
        ([_, _, ..], _) => Some("more than one Host field".to_string()),
        ([one], _) if !host_field_matches(&target, one) => Some(format!("Host '{one}' disagrees with the URL")),
        (_, Err(e)) => Some(e.to_string()),
        _ => framing_named_in_connection(&head.headers)
            .map(|field| format!("Connection names the framing field {field}")),
    };
    if let Some(details) = problem {
        let bytes = ctx
            .refuse(client, &refuse(400, ErrorType::HttpRequestError, details))
            .await;
        ctx.log(start, &method, &url, Outcome::local(ResultCode::None, 400, bytes));
        return Next::Close;
    }
    let body_kind = framing.unwrap_or(BodyKind::None);

    let check = check_access(ctx, &method, &target, super::headers::client_proxy_auth(&head.headers)).await;
    let user = check.user.clone();
    if refuse_unless_allowed(ctx, client, &check, start, &method, &url).await {
        return Next::Close;
    }
    let facts = check.facts();
    let generation = &ctx.generation;
    let attempts = plan(&generation.egress, &generation.config, &facts);

    let reusable = match (&upstream.live, attempts.first()) {
        (Some(live), Some(first)) => live.key == key_of(first, &target),
        _ => false,
    };
    if !reusable {
        upstream.live = None;
    }
    let mut failures: Vec<HopFailure> = Vec::new();
    if upstream.live.is_none() {
        for &attempt in &attempts {
            match connect_hop(
                &generation.egress,
                &generation.config,
                &facts,
                attempt,
                &check.destination(),
            )
            .await
            {
                Ok(c) => {
                    let key = key_of(&attempt, &target);
                    upstream.live = Some(Live {
                        key,
                        conn: BufConn::new(c.stream),
                        addr: c.addr,
                        attempt: c.attempt,
                    });
                    break;
                }
                Err(f) => failures.push(f),
            }
        }
    }
    let Some(mut live) = upstream.live.take() else {
        let error = if attempts.is_empty() {
            TunnelError::NoRoute
        } else {
            TunnelError::Failed(failures)
        };
        let (reply, hierarchy, peer) = failure::describe(&error);
        let bytes = ctx.refuse(client, &reply).await;
        let outcome = Outcome {
            hierarchy,
            peer,
            ..Outcome::local(ResultCode::Miss, reply.status, bytes).with_user(user.clone())
        };
        ctx.log(start, &method, &url, outcome);
        return Next::Close;
    };

    let via_parent = match live.attempt.hop {
        NextHop::Parent(i) => Some(i),
        NextHop::Direct => None,
    };
    let request_target = if via_parent.is_some() {
        url.clone()
    } else {
        target.path.clone()
    };
    let mut out = format!("{method} {request_target} HTTP/1.1\r\n").into_bytes();
    match host_fields.first() {
        Some(host) => push_header(&mut out, "Host", host.as_bytes()),
        None => push_header(&mut out, "Host", authority_for_host(&target).as_bytes()),
    }
    write_forwarded(
        &mut out,
        generation,
        ctx.client_ip,
        &head.headers,
        &["host", "expect", "content-length"],
    );
    if let Some(i) = via_parent {
        let auth = super::headers::client_proxy_auth(&head.headers);
        append_peer_login(&mut out, generation.config.peers[i].login.as_ref(), auth);
    }
    let declared_length = head
        .headers
        .iter()
        .find(|h| h.is("content-length"))
        .map(|h| h.value.as_slice());
    write_framing(&mut out, body_kind, declared_length);
    out.extend_from_slice(b"Connection: keep-alive\r\n\r\n");

    let expects_continue = head
        .headers
        .iter()
        .any(|h| h.is("expect") && h.value_str().eq_ignore_ascii_case("100-continue"));
    if expects_continue && body_kind != BodyKind::None {
        // We answer 100 ourselves and drop Expect upstream, so the body flows without waiting.
        let _ = client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
    }
    let read_timeout = generation.config.read_timeout;
    let mut body_left = body_kind;
    if let BodyKind::Length(n) = body_kind
        && client.buf.len() as u64 >= n
        && n <= 16 * 1024
    {
        out.extend_from_slice(&client.buf.split_to(n as usize));
        body_left = BodyKind::None;
    }
    let sent = async {
        live.conn.write_all(&out).await.map_err(BodyError::Write)?;
        copy_body(client, &mut live.conn.stream, body_left, read_timeout).await
    };
    if let Err(why) = sent.await {
        // Who is at fault decides the answer: a bad chunk is the client's (400), a failed write
        // the next hop's (502); a client that vanished mid-body gets nothing.
        let reply = match &why {
            BodyError::BadChunk(_) => Some(refuse(400, ErrorType::HttpRequestError, format!("request body: {why}"))),
            BodyError::Write(_) => Some(
                refuse(
                    502,
                    ErrorType::ConnectionTerminated,
                    format!("{} closed while receiving the request", live.addr),
                )
                .with_next_hop(live.addr.to_string()),
            ),
            BodyError::Truncated | BodyError::Idle(_) | BodyError::Read(_) => None,
        };
        tracing::info!(client = %ctx.client_ip, "{method} {url}: request not delivered: {why}");
        let (status, bytes) = match reply {
            Some(error) => (error.status, ctx.refuse(client, &error).await as u64),
            None => (0, 0),
        };
        let result = if status == 400 {
            ResultCode::None
        } else {
            ResultCode::Miss
        };
        let outcome = Outcome {
            result,
            status,
            bytes,
            hierarchy: live.attempt.hierarchy,
            peer: Some(live.addr.ip()),
            content_type: reply_type(status),
            user: user.clone(),
        };
        ctx.log(start, &method, &url, outcome);
        return Next::Close;
    }

    let answer = loop {
        match live
            .conn
            .read_head(RESPONSE_HEAD_LIMIT, read_timeout, parse_response)
            .await
        {
            Ok((h, len)) => {
                let _ = live.conn.buf.split_to(len);
                // Interim 1xx answers (other than 101, which we never ask for) are dropped.
                if (100..200).contains(&h.status) && h.status != 101 {
                    continue;
                }
                break Ok(h);
            }
            Err(e) => break Err(e),
        }
    };
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            let status = error_status(&e);
            let error = match e {
                HeadError::Timeout { .. } => refuse(
                    504,
                    ErrorType::ConnectionReadTimeout,
                    format!("no response from {} in time", live.addr),
                ),
                HeadError::ClosedEarly { .. } | HeadError::Io(_) => refuse(
                    502,
                    ErrorType::ConnectionTerminated,
                    format!("{} closed the connection without a response", live.addr),
                ),
                other => refuse(
                    502,
                    ErrorType::HttpProtocolError,
                    format!("invalid response from {}: {other}", live.addr),
                ),
            };
            let bytes = ctx.refuse(client, &error.with_next_hop(live.addr.to_string())).await;
            let outcome = Outcome {
                hierarchy: live.attempt.hierarchy,
                peer: Some(live.addr.ip()),
                ..Outcome::local(ResultCode::Miss, status, bytes).with_user(user.clone())
            };
            ctx.log(start, &method, &url, outcome);
            return Next::Close;
        }
    };
    let response_kind = match response_body_kind(&method, answer.status, &answer.headers) {
        Ok(kind) => kind,
        Err(e) => {
            let error = refuse(
                502,
                ErrorType::HttpProtocolError,
                format!("response from {} has {e}", live.addr),
            );
            let bytes = ctx.refuse(client, &error).await;
            let outcome = Outcome {
                hierarchy: live.attempt.hierarchy,
                peer: Some(live.addr.ip()),
                ..Outcome::local(ResultCode::Miss, 502, bytes).with_user(user.clone())
            };
            ctx.log(start, &method, &url, outcome);
            return Next::Close;
        }
    };
    let keep_client = wants_keep_alive(head.version, &head.headers)
        && response_kind != BodyKind::UntilClose
        && !*ctx.shutdown.borrow();
    let mut head_out = response_head(ctx, &answer, response_kind, keep_client);
    // A small body that already arrived goes out with the head in one write.
    let mut body_kind = response_kind;
    if let BodyKind::Length(n) = response_kind
        && live.conn.buf.len() as u64 >= n
        && n <= 16 * 1024
    {
        head_out.extend_from_slice(&live.conn.buf.split_to(n as usize));
        body_kind = BodyKind::None;
    }
    let mut bytes = 0u64;
    let mut complete = client.write_all(&head_out).await.is_ok();
    if complete {
        bytes += head_out.len() as u64;
        match copy_body(&mut live.conn, &mut client.stream, body_kind, read_timeout).await {
            Ok(n) => bytes += n,
            Err(e) => {
                tracing::info!(client = %ctx.client_ip, "{method} {url}: response body cut: {e}");
                complete = false;
            }
        }
    }
    let outcome = Outcome {
        result: ResultCode::Miss,
        status: answer.status,
        bytes,
        hierarchy: live.attempt.hierarchy,
        peer: Some(live.addr.ip()),
        content_type: content_type(&answer),
        user: user.clone(),
    };
    ctx.log(start, &method, &url, outcome);
    let upstream_reusable = complete
        && answer.version >= 1
        && response_kind != BodyKind::UntilClose
        && !connection_tokens(&answer.headers).iter().any(|t| t == "close");
    if upstream_reusable {
        upstream.live = Some(live);
    }
    if complete && keep_client {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

fn reply_type(status: u16) -> Option<String> {
    (status != 0).then(|| "text/plain".to_string())
}

fn error_status(e: &HeadError) -> u16 {
    match e {
        HeadError::Timeout { .. } => 504,
        _ => 502,
    }
}

fn authority_for_host(target: &Target) -> String {
    if target.port == 80 {
        if target.host.contains(':') {
            format!("[{}]", target.host)
        } else {
            target.host.clone()
        }
    } else {
        authority(target)
    }
}

/// Writes the framing this hop itself uses for the body that follows, never a copy of the
/// peer's fields: `Connection: Content-Length` must not be able to strip a length while the
/// body is still sent (the next hop would read the body as another message). With no body,
/// a declared length is kept (a HEAD or 304 answer describes the representation; `0` on a
/// POST); a close-delimited body needs no field.
fn write_framing(out: &mut Vec<u8>, kind: BodyKind, declared_length: Option<&[u8]>) {
    match (kind, declared_length) {
        (BodyKind::Length(n), _) => push_header(out, "Content-Length", n.to_string().as_bytes()),
        (BodyKind::Chunked, _) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        (BodyKind::None, Some(declared)) => push_header(out, "Content-Length", declared),
        (BodyKind::None | BodyKind::UntilClose, _) => {}
    }
}

/// The response head for the client: the origin's fields minus hop-by-hop ones, our `Via`
/// entry, and our own connection management.
fn response_head(ctx: &ClientCtx, answer: &ResponseHead, kind: BodyKind, keep_alive: bool) -> Vec<u8> {
    let reason = if answer.reason.is_empty() {
        reason_phrase(answer.status)
    } else {
        &answer.reason
    };
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", answer.status).into_bytes();
    let tokens = connection_tokens(&answer.headers);
    for h in &answer.headers {
        let hop_by_hop = is_hop_by_hop(&h.name, &tokens) && !h.is("proxy-authenticate");
        if h.is("via") || h.is("content-length") || hop_by_hop {
            continue;
        }
        push_header(&mut out, &h.name, &h.value);
    }
    let declared_length = answer
        .headers
        .iter()
        .find(|h| h.is("content-length"))
        .map(|h| h.value.as_slice());
    write_framing(&mut out, kind, declared_length);
    write_via(&mut out, &ctx.generation, existing_via(&answer.headers));
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
    out
}
