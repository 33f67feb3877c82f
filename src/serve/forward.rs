//! Plain HTTP forwarding of absolute-form requests: origin-form to an origin, absolute-form
//! to a parent. One upstream connection is kept per client connection and reused while the
//! client keeps asking the same next hop.
//!
//! A request goes through its phases — validate, check and admit, then per attempt: choose
//! (or reuse) the upstream, send the request, read the answer; finally relay the response —
//! and every failure on the way ends in the transaction's one failure path. Failures of the
//! next hop are [`HopError`]s, which say whether any response byte had arrived: the dividing
//! line for trying again. Before it, a repeatable request (idempotent, its body still in
//! hand) goes once more to a fresh connection when a reused one failed (the origin closed it
//! while idle), or to the next planned hop, within `forward_max_tries` and
//! `forward_timeout`, as Squid does. After it, nothing is retried.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;

use super::failure;
use super::headers::{
    client_proxy_auth, existing_via, push_header, reply_filter, request_filter, write_forwarded, write_via,
};
use super::max_forwards;
use super::policy::{admit, check_access, reply_refusal};
use super::reply::{ErrorType, ProxyError, reason_phrase};
use super::target::{Target, absolute_url, authority, host_field_matches, parse_absolute};
use super::transaction::{ClientCtx, Failure, HopSeen, Outcome, Transaction};
use crate::http1::body::BodyError;
use crate::http1::head::{
    FramingError, connection_tokens, framing_named_in_connection, is_hop_by_hop, parse_response, request_body_kind,
    response_body_kind, wants_keep_alive,
};
use crate::http1::{BodyKind, BufConn, HeadError, RequestHead, ResponseHead, copy_body, copy_body_counted};
use crate::log::ResultCode;
use crate::policy::{HeaderFilter, RequestFacts};
use crate::route::dial::{ConnectFailure, Destination, connect_hop, note_parent_failure};
use crate::route::select::{Attempt, NextHop, plan};
use crate::route::tunnel::{TunnelError, append_peer_login};
use crate::shaping::{ShapedWriter, Shaper};

/// Largest response head accepted from the next hop.
const RESPONSE_HEAD_LIMIT: usize = 64 * 1024;
/// Bodies up to this size that already arrived go out in the same write as their head.
const COALESCE_LIMIT: u64 = 16 * 1024;
/// Request bodies up to this size (by Content-Length) are read whole before the request is
/// sent, so the request can be sent again to a fresh connection or the next hop. Larger
/// and chunked bodies are streamed, and such a request is not repeated once sent.
const BODY_IN_HAND_LIMIT: u64 = 64 * 1024;
/// Most interim (1xx) responses accepted before the final one; all share one deadline.
const MAX_INTERIM: usize = 16;
/// Answers that `retry_on_error on` retries on the next hop (Squid's list).
const RETRIED_STATUSES: &[u16] = &[403, 500, 501, 502, 503, 504];

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
    /// The whole body, read before the first attempt when it is small enough to resend.
    body_in_hand: Option<BytesMut>,
}

impl Request<'_> {
    /// RFC 9110 section 9.2.2: repeating the request has the same effect as sending it once.
    fn idempotent(&self) -> bool {
        ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]
            .iter()
            .any(|m| self.head.method.eq_ignore_ascii_case(m))
    }

    /// Whether the request may be sent again after a failed attempt: idempotent, and its
    /// body (if any) still in hand rather than streamed away.
    fn repeatable(&self) -> bool {
        self.idempotent() && (self.body == BodyKind::None || self.body_in_hand.is_some())
    }

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
    /// `reply_header_access` decided for this answer (empty until the policy has looked).
    header_rules: HeaderFilter,
    /// The delay pool share that paces the body to the client; `None` = unshaped.
    shaper: Option<Shaper>,
}

impl Answer {
    /// The answer's transfer codings as one list (`gzip, chunked`), when it has any.
    fn codings(&self) -> Option<Vec<u8>> {
        let mut values = self.head.headers.iter().filter(|h| h.is("transfer-encoding"));
        let mut out = values.next()?.value.trim_ascii().to_vec();
        for h in values {
            out.extend_from_slice(b", ");
            out.extend_from_slice(h.value.trim_ascii());
        }
        Some(out)
    }
}

/// How the next hop failed a request. Where it failed decides what may be done about it.
#[derive(Debug)]
pub enum HopError {
    /// Writing the request (head or body) to it failed.
    Send(std::io::Error),
    /// No usable response head: closed, reset, timed out, or not HTTP. `response_began` says
    /// whether an interim (1xx) response had arrived: the hop had begun answering.
    Head { error: HeadError, response_began: bool },
    /// A response head whose body framing cannot be relayed.
    Framing(FramingError),
    /// Interim answers we cannot accept: an unsolicited `101` (we never forward `Upgrade`),
    /// or more 1xx answers than [`MAX_INTERIM`].
    Interim(&'static str),
}

impl HopError {
    /// True when the hop failed before answering anything HTTP (reset, closed, silent, or
    /// garbage instead of a status line): the client has seen nothing, and the request may go
    /// to a fresh connection or the next hop if it can be repeated (idempotent, its body
    /// still in hand). Once a head (even an interim one) arrived, the hop has answered.
    pub fn before_response(&self) -> bool {
        match self {
            HopError::Send(_) => true,
            HopError::Head { response_began, .. } => !response_began,
            HopError::Framing(_) | HopError::Interim(_) => false,
        }
    }

    /// How a hop that failed before answering is counted in its health.
    fn as_connect_failure(&self) -> ConnectFailure {
        match self {
            HopError::Head {
                error: HeadError::Timeout { .. },
                ..
            } => ConnectFailure::Timeout,
            HopError::Send(_)
            | HopError::Head {
                error: HeadError::ClosedEarly { .. } | HeadError::Io(_),
                ..
            } => ConnectFailure::ClosedBeforeAnswer,
            other => ConnectFailure::Other(format!("invalid answer: {other}")),
        }
    }

    /// The reply for the client, naming the hop at `addr`.
    fn reply(&self, addr: SocketAddr) -> ProxyError {
        // A TLS 1.3 parent refuses our client certificate at the first read, not in the handshake.
        let tls = match self {
            HopError::Send(e)
            | HopError::Head {
                error: HeadError::Io(e),
                ..
            } => crate::tls::TlsFailure::after_handshake(e, ""),
            _ => None,
        };
        if let Some(failure) = tls {
            let kind = if failure.is_certificate_error() {
                ErrorType::TlsCertificateError
            } else {
                ErrorType::TlsProtocolError
            };
            return ProxyError::new(502, kind, format!("TLS with {addr} failed: {failure}"))
                .with_next_hop(addr.to_string());
        }
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
            HopError::Head {
                error: error @ (HeadError::TooLarge { .. } | HeadError::TooManyFields { .. }),
                ..
            } => ProxyError::new(
                502,
                ErrorType::HttpResponseHeaderSectionSize,
                format!("response from {addr}: {error}"),
            ),
            HopError::Head { error, .. } => ProxyError::new(
                502,
                ErrorType::HttpProtocolError,
                format!("invalid response from {addr}: {error}"),
            ),
            HopError::Interim(what) => {
                return ProxyError::new(502, ErrorType::HttpProtocolError, format!("{addr} sent {what}"));
            }
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
            HopError::Interim(what) => f.write_str(what),
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
    tx.request_head(head.version, &head.method, &head.target, &head.headers);
    let mut request = match validate(&mut tx, &head) {
        Ok(request) => request,
        Err(reply) => return fail(tx, client, Failure::refused(reply)).await,
    };

    // The check keeps its own copy of the target: the request is completed (its body taken)
    // while the check's facts are still in use.
    let target = request.target.clone();
    let check = check_access(ctx, &head.method, &target, &head.headers).await;
    let Some(mut tx) = admit(tx, client, &check).await else {
        return Next::Close;
    };
    if max_forwards::remaining(&head) == Some(0) {
        // TRACE or OPTIONS with Max-Forwards 0: this hop is the final recipient.
        return max_forwards::answer(tx, client, &head, request.body).await;
    }
    let facts = check.facts();
    let attempts = plan(&ctx.generation.egress, &ctx.generation.config, &facts);
    if attempts.is_empty() {
        let (reply, hop) = failure::describe(&TunnelError::NoRoute);
        return fail(
            tx,
            client,
            Failure {
                result: ResultCode::Miss,
                hop,
                ..Failure::refused(reply)
            },
        )
        .await;
    }
    let destination = check.destination();

    if request.expects_continue() {
        // We answer 100 ourselves and drop Expect upstream, so the body flows without waiting.
        let _ = client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
    }
    if let Err(e) = take_small_body(ctx, client, &mut request).await {
        // Only Content-Length bodies are taken here, so there is no chunk framing to refuse:
        // the client went away or fell silent.
        tracing::info!(client = %ctx.client_ip, "{} {}: request body not received: {e}", tx.method(), tx.url());
        return fail(tx, client, Failure::unanswered(ResultCode::Miss, HopSeen::NONE)).await;
    }

    let mut tries = Tries::new(&ctx.generation.config);
    let mut kept = upstream.live.take();
    let mut next = 0;
    while let Some(&attempt) = attempts.get(next) {
        if !tries.may_try() {
            break;
        }
        let reused = kept
            .take()
            .filter(|live| may_reuse(live, attempt, &request, &destination));
        let is_reused = reused.is_some();
        let mut live = match reused {
            Some(live) => live,
            None => match connect(ctx, &facts, attempt, &request.target, &destination, &mut tries).await {
                Some(live) => live,
                None => {
                    next += 1;
                    continue;
                }
            },
        };
        if is_reused {
            // Each connection is one try (Squid's `forward_max_tries`); a reuse is one too.
            tries.used += 1;
        }
        let error = match exchange(ctx, client, &mut live, &request, tx.method(), &facts).await {
            Ok((answer, bytes_to_upstream)) => {
                let more_hops = next + 1 < attempts.len();
                if ctx.generation.config.retry_on_error
                    && RETRIED_STATUSES.contains(&answer.head.status)
                    && request.repeatable()
                    && more_hops
                    && tries.may_try()
                {
                    // The hop answered, so it is alive: not counted against it. Its answer
                    // (and the connection it came on) are dropped for the next hop's.
                    tracing::info!(client = %ctx.client_ip, "{} {}: {} answered {}; retry_on_error: trying the next hop", tx.method(), tx.url(), live.addr, answer.head.status);
                    tries.failed(
                        ProxyError::new(
                            answer.head.status,
                            ErrorType::DestinationUnavailable,
                            format!("{} answered {}", live.addr, answer.head.status),
                        )
                        .with_next_hop(live.addr.to_string()),
                        live.seen(),
                    );
                    next += 1;
                    continue;
                }
                let head = &answer.head;
                tx.upstream_answered(head.status, &head.headers);
                let config = &ctx.generation.config;
                if let Some(refusal) = reply_refusal(config, &facts, head.status, &head.headers, tx.url()) {
                    // Squid's TCP_DENIED_REPLY: our 403, and the next hop's connection (with
                    // the unread body) is closed.
                    let hop = live.seen();
                    drop(live);
                    let failure = Failure {
                        result: ResultCode::DeniedReply,
                        hop,
                        ..Failure::refused(refusal)
                    };
                    return fail(tx, client, failure).await;
                }
                return relay_response(tx, client, upstream, live, &request, answer, bytes_to_upstream).await;
            }
            Err(SendError::Client(why)) => {
                tracing::info!(client = %ctx.client_ip, "{} {}: request not delivered: {why}", tx.method(), tx.url());
                // A bad chunk is the client's fault (400); a client gone mid-body gets nothing.
                let failure = match why {
                    BodyError::BadChunk(_) => Failure {
                        hop: live.seen(),
                        ..Failure::refused(ProxyError::new(
                            400,
                            ErrorType::HttpRequestError,
                            format!("request body: {why}"),
                        ))
                    },
                    _ => Failure::unanswered(ResultCode::Miss, live.seen()),
                };
                return fail(tx, client, failure).await;
            }
            Err(SendError::Hop(error)) => error,
        };
        let when = if error.before_response() {
            "before any response byte"
        } else {
            "after the response began"
        };
        tracing::info!(client = %ctx.client_ip, "{} {}: {} failed {when}: {error}", tx.method(), tx.url(), live.addr);
        let again = error.before_response() && request.repeatable();
        if is_reused && again {
            // A kept connection the hop closed while it sat idle (or that broke on reuse) says
            // nothing about the hop: once more on a fresh connection, not counted against it.
            continue;
        }
        if let NextHop::Parent(i) = live.attempt.hop
            && error.before_response()
        {
            let generation = &ctx.generation;
            note_parent_failure(
                &generation.egress,
                &generation.config,
                i,
                &[live.addr],
                &error.as_connect_failure(),
            );
        }
        tries.failed(error.reply(live.addr), live.seen());
        if !again {
            break;
        }
        next += 1;
    }
    let failure = tries.into_failure();
    fail(tx, client, failure).await
}

/// Ends a transaction through the one failure path; the client connection is closed after.
async fn fail(tx: Transaction<'_>, client: &mut BufConn, failure: Failure) -> Next {
    tx.fail(client, failure).await;
    Next::Close
}

/// The attempts of one request: how many were made, the deadline for starting another, and
/// each failure (for the reply's `Proxy-Status` members and the log's hop).
struct Tries {
    used: u32,
    max: u32,
    deadline: Instant,
    failures: Vec<(ProxyError, HopSeen)>,
}

impl Tries {
    fn new(config: &crate::config::Config) -> Tries {
        Tries {
            used: 0,
            max: config.forward_max_tries.max(1),
            deadline: Instant::now() + config.forward_timeout,
            failures: Vec::new(),
        }
    }

    /// Whether another attempt may start (`forward_max_tries`, `forward_timeout`).
    fn may_try(&self) -> bool {
        self.used < self.max && Instant::now() < self.deadline
    }

    fn failed(&mut self, reply: ProxyError, hop: HopSeen) {
        self.failures.push((reply, hop));
    }

    /// The failure to answer with: the first attempt's (it tells most; later ones are
    /// fall-backs) with every other attempt as a further `Proxy-Status` member.
    fn into_failure(self) -> Failure {
        let mut failures = self.failures.into_iter();
        let Some((mut reply, hop)) = failures.next() else {
            let reply = ProxyError::new(
                504,
                ErrorType::ConnectionTimeout,
                "no attempt left within forward_max_tries and forward_timeout",
            );
            return Failure {
                result: ResultCode::Miss,
                ..Failure::refused(reply)
            };
        };
        reply.more = failures.map(|(e, _)| e).collect();
        Failure {
            reply: Some(reply),
            result: ResultCode::Miss,
            hop,
        }
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
        body_in_hand: None,
    })
}

/// Reads a small body whole before the first attempt, so it can be sent again.
async fn take_small_body(ctx: &ClientCtx, client: &mut BufConn, request: &mut Request<'_>) -> Result<(), BodyError> {
    let BodyKind::Length(n) = request.body else {
        return Ok(());
    };
    if n > BODY_IN_HAND_LIMIT {
        return Ok(());
    }
    let idle = ctx.generation.config.read_timeout;
    let mut body = Vec::with_capacity(n as usize);
    copy_body(client, &mut body, request.body, idle).await?;
    request.body_in_hand = Some(BytesMut::from(&body[..]));
    Ok(())
}

/// Phase 2a: whether the connection kept from the previous request may carry this one. Only
/// to the same next hop; only for a request that may be repeated (Squid's default for
/// `server_pconn_for_nonretriable`: others get a fresh connection, so a kept connection the
/// hop closed while idle can never lose them); only to an address this request's `dst`
/// ACLs judged (the name may resolve elsewhere now); and only when the connection is quiet:
/// no byte nor close arrived since the last response ended.
fn may_reuse(live: &Live, attempt: Attempt, request: &Request<'_>, destination: &Destination<'_>) -> bool {
    let judged = match (attempt.hop, destination.resolved) {
        (NextHop::Direct, Some(Ok(addrs))) => addrs.contains(&live.addr.ip().to_canonical()),
        (NextHop::Direct, Some(Err(_))) => false,
        _ => true,
    };
    live.key == key_of(&attempt, &request.target) && request.repeatable() && judged && is_quiet(&live.conn)
}

/// True when nothing is waiting to be read on a kept connection: bytes there could only be
/// left over from the previous response (or a close), never an answer to the next request.
fn is_quiet(conn: &BufConn) -> bool {
    if !conn.buf.is_empty() {
        return false;
    }
    conn.stream.is_quiet()
}

/// Phase 2b: a new connection to the hop of `attempt`, trying it `1 + connect_retries`
/// times. Failures are recorded in `tries` (and counted against a parent by the dialer).
async fn connect(
    ctx: &ClientCtx,
    facts: &RequestFacts<'_>,
    attempt: Attempt,
    target: &Target,
    destination: &Destination<'_>,
    tries: &mut Tries,
) -> Option<Live> {
    let generation = &ctx.generation;
    let config = &generation.config;
    for _ in 0..=config.connect_retries {
        if !tries.may_try() {
            return None;
        }
        tries.used += 1;
        match connect_hop(&generation.egress, config, facts, attempt, destination, tries.deadline).await {
            Ok(c) => {
                return Some(Live {
                    key: key_of(&attempt, target),
                    conn: BufConn::new(c.stream),
                    addr: c.addr,
                    attempt: c.attempt,
                });
            }
            Err(f) => {
                tracing::debug!(client = %ctx.client_ip, "{f}");
                let (reply, hop) = failure::describe_one(&f);
                tries.failed(reply, hop);
            }
        }
    }
    None
}

/// Phases 3 and 4 on one connection: sends the request, reads the answer's head.
async fn exchange(
    ctx: &ClientCtx,
    client: &mut BufConn,
    live: &mut Live,
    request: &Request<'_>,
    method: &str,
    facts: &RequestFacts<'_>,
) -> Result<(Answer, u64), SendError> {
    let config = &ctx.generation.config;
    let header_rules = request_filter(config, facts);
    let bytes_to_upstream = send_request(ctx, client, live, request, &header_rules).await?;
    let head_bound = config.read_timeout.min(config.forward_timeout);
    let mut answer = read_answer(live, method, head_bound).await.map_err(SendError::Hop)?;
    answer.header_rules = reply_filter(config, facts, answer.head.status, &answer.head.headers);
    answer.shaper = ctx.generation.shaping.assign(config, facts);
    Ok((answer, bytes_to_upstream))
}

/// Phase 3: writes the request head this hop builds (origin-form to an origin, absolute-form
/// to a parent) and relays the body. Returns the bytes written to the next hop.
async fn send_request(
    ctx: &ClientCtx,
    client: &mut BufConn,
    live: &mut Live,
    request: &Request<'_>,
    header_rules: &HeaderFilter,
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
    // Sized for the usual head, so the fields below rarely grow it.
    let fields_guess: usize = head.headers.iter().map(|h| h.name.len() + h.value.len() + 4).sum();
    let mut out = Vec::with_capacity(head.method.len() + request_target.len() + fields_guess + 256);
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(request_target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let fields_start = out.len();
    match request.host_field {
        Some(host) => push_header(&mut out, "Host", host.as_bytes()),
        None => push_header(&mut out, "Host", authority_for_host(&request.target).as_bytes()),
    }
    // TRACE and OPTIONS carry Max-Forwards one lower (RFC 9110 section 7.6.2).
    let max_forwards = max_forwards::remaining(head);
    let skip: &[&str] = if max_forwards.is_some() {
        &["host", "expect", "content-length", "max-forwards"]
    } else {
        &["host", "expect", "content-length"]
    };
    write_forwarded(&mut out, generation, ctx.client_ip, &head.headers, skip);
    if let Some(n) = max_forwards {
        push_header(&mut out, "Max-Forwards", n.saturating_sub(1).to_string().as_bytes());
    }
    if let Some(i) = via_parent {
        let auth = client_proxy_auth(&head.headers);
        append_peer_login(&mut out, generation.config.peers[i].login.as_ref(), auth);
    }
    header_rules.apply(&mut out, fields_start);
    let declared_length = head
        .headers
        .iter()
        .find(|h| h.is("content-length"))
        .map(|h| h.value.as_slice());
    write_framing(&mut out, request.body, declared_length);
    out.extend_from_slice(b"Connection: keep-alive\r\n\r\n");

    let mut body_left = request.body;
    if let Some(body) = &request.body_in_hand {
        out.extend_from_slice(body);
        body_left = BodyKind::None;
    } else if let BodyKind::Length(n) = request.body
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

/// Phase 4: the response head, after any interim 1xx answers (dropped: `100 Continue` we
/// answered ourselves), and how its body is framed. The head, interim answers included,
/// must arrive within `bound`; at most [`MAX_INTERIM`] interim answers are accepted, and a
/// `101` is refused: we never forward `Upgrade`, so no switch was asked for.
async fn read_answer(live: &mut Live, method: &str, bound: Duration) -> Result<Answer, HopError> {
    let deadline = Instant::now() + bound;
    let mut interim_seen = 0;
    let answer = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match live.conn.read_head(RESPONSE_HEAD_LIMIT, left, parse_response).await {
            Ok((h, _)) if h.status == 101 => return Err(HopError::Interim("an unsolicited 101 Switching Protocols")),
            Ok((h, len)) => {
                let _ = live.conn.buf.split_to(len);
                if (100..200).contains(&h.status) {
                    interim_seen += 1;
                    if interim_seen > MAX_INTERIM {
                        return Err(HopError::Interim("too many interim (1xx) responses"));
                    }
                    continue;
                }
                break h;
            }
            Err(error) => {
                // Bytes that never made a head (garbage, a cut head) are no answer: only a
                // parsed interim response means the hop had begun answering.
                let response_began = interim_seen > 0;
                return Err(HopError::Head { error, response_began });
            }
        }
    };
    let body = response_body_kind(method, answer.status, &answer.headers).map_err(HopError::Framing)?;
    Ok(Answer {
        head: answer,
        body,
        header_rules: HeaderFilter::default(),
        shaper: None,
    })
}

/// Phase 5: relays the response head and body to the client and logs the transaction. A
/// body cut short (the hop closed early or broke the chunk framing, or the client left) is
/// logged `TCP_MISS_ABORTED`, as Squid does, and the client connection is closed so the
/// client sees the cut. The upstream connection is kept only when the response ended exactly
/// at its framed end: nothing left over behind it, no close announced.
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
    let codings = answer.codings();
    let Answer {
        head: answer,
        body: response_kind,
        header_rules,
        shaper,
    } = answer;
    let keep_client = wants_keep_alive(request.head.version, &request.head.headers)
        && response_kind != BodyKind::UntilClose
        && !*ctx.shutdown.borrow();
    let mut head_out = response_head(
        ctx,
        &answer,
        response_kind,
        codings.as_deref(),
        keep_client,
        &header_rules,
    );
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
        let copied = match shaper {
            // Unshaped bodies are written straight to the client.
            None => copy_body_counted(&mut live.conn, &mut client.stream, body_kind, read_timeout, &mut bytes).await,
            Some(shaper) => {
                let mut to_client = ShapedWriter::new(&mut client.stream, shaper);
                copy_body_counted(&mut live.conn, &mut to_client, body_kind, read_timeout, &mut bytes).await
            }
        };
        if let Err(e) = copied {
            tracing::info!(client = %ctx.client_ip, "{} {}: response body cut: {e}", tx.method(), tx.url());
            complete = false;
        }
    }
    let leftover = live.conn.buf.len();
    if complete && leftover > 0 {
        tracing::info!(client = %ctx.client_ip, "{} {}: {} sent {leftover} bytes past the end of its response; connection closed", tx.method(), tx.url(), live.addr);
    }
    tx.finish(Outcome {
        result: if complete {
            ResultCode::Miss
        } else {
            ResultCode::MissAborted
        },
        status: answer.status,
        bytes,
        hierarchy: live.attempt.hierarchy,
        peer: Some(live.addr),
        content_type: content_type(&answer),
        bytes_to_upstream,
    });
    // An answer whose end the method or status fixes (HEAD, 204, 304) rather than its own
    // framing is where a hostile origin's stray bytes hide, and a lenient parent (Squid 5.7
    // does) passes them on, possibly after we have looked: such a connection is never reused,
    // so those bytes can never answer the next request, perhaps for another host.
    let end_fixed_by_rule = request.head.method.eq_ignore_ascii_case("HEAD") || matches!(answer.status, 204 | 304);
    let upstream_reusable = complete
        && leftover == 0
        && !end_fixed_by_rule
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
fn response_head(
    ctx: &ClientCtx,
    answer: &ResponseHead,
    kind: BodyKind,
    codings: Option<&[u8]>,
    keep_alive: bool,
    header_rules: &HeaderFilter,
) -> Vec<u8> {
    let reason = if answer.reason.is_empty() {
        reason_phrase(answer.status)
    } else {
        &answer.reason
    };
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", answer.status).into_bytes();
    let fields_start = out.len();
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
    match (kind, codings) {
        // The chunk framing is relayed as it came, so the codings under it stay named (`gzip,
        // chunked`); a body whose codings do not end in chunked is close-delimited and keeps
        // its field too, or the client would take encoded bytes for the representation.
        (BodyKind::Chunked | BodyKind::UntilClose, Some(codings)) => {
            push_header(&mut out, "Transfer-Encoding", codings)
        }
        _ => write_framing(&mut out, kind, declared_length),
    }
    write_via(&mut out, &ctx.generation, existing_via(&answer.headers));
    header_rules.apply(&mut out, fields_start);
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
    out
}
