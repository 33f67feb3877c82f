//! Plain HTTP forwarding of absolute-form requests: origin-form to an origin, absolute-form
//! to a parent. One upstream connection is kept per client connection and reused while the
//! client keeps asking the same next hop.
//!
//! A request goes through five phases — validate, choose (or reuse) the upstream, send the
//! request, read the answer, relay the response — and every failure on the way ends in the
//! transaction's one failure path. Failures of the next hop are [`HopError`]s, which say
//! whether any response byte had arrived: the dividing line for trying another hop.

use std::net::SocketAddr;

use tokio::time::Instant;

use super::failure;
use super::headers::{client_proxy_auth, existing_via, push_header, write_forwarded, write_via};
use super::policy::{admit, check_access};
use super::reply::{ErrorType, ProxyError, reason_phrase};
use super::target::{Target, absolute_url, authority, host_field_matches, parse_absolute};
use super::transaction::{ClientCtx, Failure, HopSeen, Outcome, Transaction};
use crate::http1::body::BodyError;
use crate::http1::head::{
    FramingError, connection_tokens, framing_named_in_connection, is_hop_by_hop, parse_response, request_body_kind,
    response_body_kind, wants_keep_alive,
};
use crate::http1::{BodyKind, BufConn, HeadError, RequestHead, ResponseHead, copy_body};
use crate::log::ResultCode;
use crate::policy::RequestFacts;
use crate::route::dial::{Destination, HopFailure, connect_hop};
use crate::route::select::{Attempt, NextHop, plan};
use crate::route::tunnel::{TunnelError, append_peer_login};

/// Largest response head accepted from the next hop.
const RESPONSE_HEAD_LIMIT: usize = 64 * 1024;
/// Bodies up to this size that already arrived go out in the same write as their head.
const COALESCE_LIMIT: u64 = 16 * 1024;

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

impl Live {
    fn seen(&self) -> HopSeen {
        HopSeen::at(self.attempt, self.addr)
    }
}

/// The upstream connection kept between requests of one client connection.
#[derive(Default)]
pub struct Upstream {
    live: Option<Live>,
}

/// A request that passed validation: what the later phases need of it.
struct Request<'h> {
    head: &'h RequestHead,
    target: Target,
    url: String,
    /// The client's Host field (at most one), forwarded as it came.
    host_field: Option<&'h str>,
    body: BodyKind,
}

impl Request<'_> {
    /// `Expect: 100-continue` on a request with a body.
    fn expects_continue(&self) -> bool {
        self.body != BodyKind::None
            && self
                .head
                .headers
                .iter()
                .any(|h| h.is("expect") && h.value_str().eq_ignore_ascii_case("100-continue"))
    }
}

/// The next hop's final answer: its head and how its body is framed.
struct Answer {
    head: ResponseHead,
    body: BodyKind,
}

/// How the next hop failed a request. Where it failed decides what may be done about it.
#[derive(Debug)]
pub enum HopError {
    /// Writing the request (head or body) to it failed.
    Send(std::io::Error),
    /// No usable response head: closed, reset, timed out, or not HTTP. `response_began` says
    /// whether any byte of a response (a dropped interim 1xx included) had arrived.
    Head { error: HeadError, response_began: bool },
    /// A response head whose body framing cannot be relayed.
    Framing(FramingError),
}

impl HopError {
    /// True when the hop failed before the first byte of any response: the client has seen
    /// nothing, and the request may go to a fresh connection or the next parent if it can be
    /// repeated (an idempotent method, or a body still in hand). After that, it may not.
    pub fn before_response(&self) -> bool {
        match self {
            HopError::Send(_) => true,
            HopError::Head { response_began, .. } => !response_began,
            HopError::Framing(_) => false,
        }
    }

    /// The reply for the client, naming the hop at `addr`.
    fn reply(&self, addr: SocketAddr) -> ProxyError {
        let error = match self {
            HopError::Send(_) => ProxyError::new(
                502,
                ErrorType::ConnectionTerminated,
                format!("{addr} closed while receiving the request"),
            ),
            HopError::Head {
                error: HeadError::Timeout { .. },
                ..
            } => ProxyError::new(
                504,
                ErrorType::ConnectionReadTimeout,
                format!("no response from {addr} in time"),
            ),
            HopError::Head {
                error: HeadError::ClosedEarly { .. } | HeadError::Io(_),
                ..
            } => ProxyError::new(
                502,
                ErrorType::ConnectionTerminated,
                format!("{addr} closed the connection without a response"),
            ),
            HopError::Head { error, .. } => ProxyError::new(
                502,
                ErrorType::HttpProtocolError,
                format!("invalid response from {addr}: {error}"),
            ),
            // The head itself arrived: the hop is reachable, only its framing is at fault.
            HopError::Framing(e) => {
                return ProxyError::new(
                    502,
                    ErrorType::HttpProtocolError,
                    format!("response from {addr} has {e}"),
                );
            }
        };
        error.with_next_hop(addr.to_string())
    }
}

impl std::fmt::Display for HopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HopError::Send(e) => write!(f, "writing the request: {e}"),
            HopError::Head { error, .. } => error.fmt(f),
            HopError::Framing(e) => e.fmt(f),
        }
    }
}

/// Why sending the request failed: the client's side (its body) or the next hop's.
enum SendError {
    Client(BodyError),
    Hop(HopError),
}

impl SendError {
    fn from_body(e: BodyError) -> SendError {
        match e {
            BodyError::Write(io) => SendError::Hop(HopError::Send(io)),
            other => SendError::Client(other),
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Client(e) => e.fmt(f),
            SendError::Hop(e) => e.fmt(f),
        }
    }
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
    let mut tx = Transaction::new(ctx, start, &head.method, &head.target);
    let request = match validate(&mut tx, &head) {
        Ok(request) => request,
        Err(reply) => return fail(tx, client, Failure::refused(reply)).await,
    };

    let check = check_access(ctx, &head.method, &request.target, &head.headers).await;
    let Some(tx) = admit(tx, client, &check).await else {
        return Next::Close;
    };
    let facts = check.facts();
    let attempts = plan(&ctx.generation.egress, &ctx.generation.config, &facts);
    let destination = check.destination();
    let mut live = match choose_upstream(ctx, upstream, &attempts, &facts, &request.target, &destination).await {
        Ok(live) => live,
        Err(error) => {
            let (reply, hop) = failure::describe(&error);
            let failure = Failure {
                result: ResultCode::Miss,
                hop,
                ..Failure::refused(reply)
            };
            return fail(tx, client, failure).await;
        }
    };

    if request.expects_continue() {
        // We answer 100 ourselves and drop Expect upstream, so the body flows without waiting.
        let _ = client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
    }
    let bytes_to_upstream = match send_request(ctx, client, &mut live, &request).await {
        Ok(n) => n,
        Err(why) => {
            tracing::info!(client = %ctx.client_ip, "{} {}: request not delivered: {why}", tx.method(), tx.url());
            // Who is at fault decides the answer: a bad chunk is the client's (400), a failed
            // write the next hop's (502); a client that vanished mid-body gets nothing.
            let failure = match why {
                SendError::Client(BodyError::BadChunk(_)) => Failure {
                    hop: live.seen(),
                    ..Failure::refused(ProxyError::new(
                        400,
                        ErrorType::HttpRequestError,
                        format!("request body: {why}"),
                    ))
                },
                SendError::Client(_) => Failure::unanswered(ResultCode::Miss, live.seen()),
                SendError::Hop(error) => hop_failure(&tx, &live, &error),
            };
            return fail(tx, client, failure).await;
        }
    };

    let read_timeout = ctx.generation.config.read_timeout;
    let answer = match read_answer(&mut live, tx.method(), read_timeout).await {
        Ok(answered) => answered,
        Err(error) => {
            let failure = hop_failure(&tx, &live, &error);
            return fail(tx, client, failure).await;
        }
    };
    relay_response(tx, client, upstream, live, &request, answer, bytes_to_upstream).await
}

/// Ends a transaction through the one failure path; the client connection is closed after.
async fn fail(tx: Transaction<'_>, client: &mut BufConn, failure: Failure) -> Next {
    tx.fail(client, failure).await;
    Next::Close
}

/// The failure for a next hop that failed this request (`TCP_MISS`, naming the hop).
fn hop_failure(tx: &Transaction<'_>, live: &Live, error: &HopError) -> Failure {
    let when = if error.before_response() {
        "before any response byte"
    } else {
        "after the response began"
    };
    tracing::debug!(client = %tx.ctx().client_ip, "{} {}: {} failed {when}: {error}", tx.method(), tx.url(), live.addr);
    Failure {
        reply: Some(error.reply(live.addr)),
        result: ResultCode::Miss,
        hop: live.seen(),
    }
}

/// Phase 1: the request must name its destination once and frame its body unambiguously.
/// Sets the transaction's URL as soon as the target is understood.
fn validate<'h>(tx: &mut Transaction<'_>, head: &'h RequestHead) -> Result<Request<'h>, ProxyError> {
    let bad_request = |details: String| ProxyError::new(400, ErrorType::HttpRequestError, details);
    let target = parse_absolute(&head.target).map_err(|e| bad_request(e.to_string()))?;
    let url = absolute_url(&target);
    tx.set_url(url.clone());
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
        // A hop-by-hop field may never remove the framing of a body that is still sent: the
        // next hop would read the body as a second request.
        _ => framing_named_in_connection(&head.headers)
            .map(|field| format!("Connection names the framing field {field}")),
    };
    if let Some(details) = problem {
        return Err(bad_request(details));
    }
    Ok(Request {
        head,
        target,
        url,
        host_field: host_fields.first().copied(),
        body: framing.unwrap_or(BodyKind::None),
    })
}

/// Phase 2: the connection kept from the previous request when it goes to the same next hop
/// as this one's first choice; otherwise a new one, trying the planned hops in order.
async fn choose_upstream(
    ctx: &ClientCtx,
    upstream: &mut Upstream,
    attempts: &[Attempt],
    facts: &RequestFacts<'_>,
    target: &Target,
    destination: &Destination<'_>,
) -> Result<Live, TunnelError> {
    // Taken out for the whole exchange: it goes back only if the response ends cleanly.
    let kept = upstream.live.take();
    if let (Some(live), Some(first)) = (kept, attempts.first())
        && live.key == key_of(first, target)
    {
        return Ok(live);
    }
    if attempts.is_empty() {
        return Err(TunnelError::NoRoute);
    }
    let generation = &ctx.generation;
    let mut failures: Vec<HopFailure> = Vec::new();
    for &attempt in attempts {
        match connect_hop(&generation.egress, &generation.config, facts, attempt, destination).await {
            Ok(c) => {
                return Ok(Live {
                    key: key_of(&attempt, target),
                    conn: BufConn::new(c.stream),
                    addr: c.addr,
                    attempt: c.attempt,
                });
            }
            Err(f) => failures.push(f),
        }
    }
    Err(TunnelError::Failed(failures))
}

/// Phase 3: writes the request head this hop builds (origin-form to an origin, absolute-form
/// to a parent) and relays the body. Returns the bytes written to the next hop.
async fn send_request(
    ctx: &ClientCtx,
    client: &mut BufConn,
    live: &mut Live,
    request: &Request<'_>,
) -> Result<u64, SendError> {
    let generation = &ctx.generation;
    let head = request.head;
    let via_parent = match live.attempt.hop {
        NextHop::Parent(i) => Some(i),
        NextHop::Direct => None,
    };
    let request_target = if via_parent.is_some() {
        &request.url
    } else {
        &request.target.path
    };
    let mut out = format!("{} {request_target} HTTP/1.1\r\n", head.method).into_bytes();
    match request.host_field {
        Some(host) => push_header(&mut out, "Host", host.as_bytes()),
        None => push_header(&mut out, "Host", authority_for_host(&request.target).as_bytes()),
    }
    write_forwarded(
        &mut out,
        generation,
        ctx.client_ip,
        &head.headers,
        &["host", "expect", "content-length"],
    );
    if let Some(i) = via_parent {
        let auth = client_proxy_auth(&head.headers);
        append_peer_login(&mut out, generation.config.peers[i].login.as_ref(), auth);
    }
    let declared_length = head
        .headers
        .iter()
        .find(|h| h.is("content-length"))
        .map(|h| h.value.as_slice());
    write_framing(&mut out, request.body, declared_length);
    out.extend_from_slice(b"Connection: keep-alive\r\n\r\n");

    let mut body_left = request.body;
    if let BodyKind::Length(n) = request.body
        && client.buf.len() as u64 >= n
        && n <= COALESCE_LIMIT
    {
        out.extend_from_slice(&client.buf.split_to(n as usize));
        body_left = BodyKind::None;
    }
    live.conn
        .write_all(&out)
        .await
        .map_err(|e| SendError::Hop(HopError::Send(e)))?;
    let read_timeout = generation.config.read_timeout;
    let body = copy_body(client, &mut live.conn.stream, body_left, read_timeout)
        .await
        .map_err(SendError::from_body)?;
    Ok(out.len() as u64 + body)
}

/// Phase 4: the response head, after any interim 1xx answers (dropped: we never ask for
/// 101), and how its body is framed.
async fn read_answer(live: &mut Live, method: &str, read_timeout: std::time::Duration) -> Result<Answer, HopError> {
    let mut interim_seen = false;
    let answer = loop {
        match live
            .conn
            .read_head(RESPONSE_HEAD_LIMIT, read_timeout, parse_response)
            .await
        {
            Ok((h, len)) => {
                let _ = live.conn.buf.split_to(len);
                if (100..200).contains(&h.status) && h.status != 101 {
                    interim_seen = true;
                    continue;
                }
                break h;
            }
            Err(error) => {
                let response_began = interim_seen || !live.conn.buf.is_empty();
                return Err(HopError::Head { error, response_began });
            }
        }
    };
    let body = response_body_kind(method, answer.status, &answer.headers).map_err(HopError::Framing)?;
    Ok(Answer { head: answer, body })
}

/// Phase 5: relays the response head and body to the client and logs the transaction. The
/// upstream connection is kept only when the response ended cleanly and may be reused.
async fn relay_response(
    tx: Transaction<'_>,
    client: &mut BufConn,
    upstream: &mut Upstream,
    mut live: Live,
    request: &Request<'_>,
    answer: Answer,
    bytes_to_upstream: u64,
) -> Next {
    let ctx = tx.ctx();
    let Answer {
        head: answer,
        body: response_kind,
    } = answer;
    let keep_client = wants_keep_alive(request.head.version, &request.head.headers)
        && response_kind != BodyKind::UntilClose
        && !*ctx.shutdown.borrow();
    let mut head_out = response_head(ctx, &answer, response_kind, keep_client);
    // A small body that already arrived goes out with the head in one write.
    let mut body_kind = response_kind;
    if let BodyKind::Length(n) = response_kind
        && live.conn.buf.len() as u64 >= n
        && n <= COALESCE_LIMIT
    {
        head_out.extend_from_slice(&live.conn.buf.split_to(n as usize));
        body_kind = BodyKind::None;
    }
    let mut bytes = 0u64;
    let mut complete = client.write_all(&head_out).await.is_ok();
    if complete {
        bytes += head_out.len() as u64;
        let read_timeout = ctx.generation.config.read_timeout;
        match copy_body(&mut live.conn, &mut client.stream, body_kind, read_timeout).await {
            Ok(n) => bytes += n,
            Err(e) => {
                tracing::info!(client = %ctx.client_ip, "{} {}: response body cut: {e}", tx.method(), tx.url());
                complete = false;
            }
        }
    }
    tx.finish(Outcome {
        result: ResultCode::Miss,
        status: answer.status,
        bytes,
        hierarchy: live.attempt.hierarchy,
        peer: Some(live.addr.ip()),
        content_type: content_type(&answer),
        bytes_to_upstream,
    });
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
