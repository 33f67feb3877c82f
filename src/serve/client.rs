//! One client connection: read request heads (keep-alive), answer parse errors, hand CONNECT
//! and plain HTTP to their handlers, and write one access-log record per transaction.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::reply::{self, ErrorType, ProxyError};
use super::{connect, forward};
use crate::http1::head::parse_request;
use crate::http1::{BufConn, HeadError};
use crate::log::{Hierarchy, Record, ResultCode};
use crate::policy::RequestFacts;
use crate::route::select::Attempt;
use crate::state::Generation;

/// How long an idle keep-alive client connection is kept (Squid's `client_idle_pconn_timeout`).
const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a refused client gets to read our reply before the socket is closed.
const LINGER: Duration = Duration::from_secs(2);

/// What every transaction on one client connection shares.
pub struct ClientCtx {
    pub generation: Arc<Generation>,
    pub client_ip: IpAddr,
    pub local_port: u16,
    pub shutdown: watch::Receiver<bool>,
}

/// The parts of a log record a handler fills in; the rest is common.
pub struct Outcome {
    pub result: ResultCode,
    pub status: u16,
    pub bytes: u64,
    pub hierarchy: Hierarchy,
    pub peer: Option<IpAddr>,
    pub content_type: Option<String>,
    /// The proxy-auth user (verified, or the one that failed), for the log's user field.
    pub user: Option<String>,
}

impl Outcome {
    /// A reply generated here before any next hop was contacted.
    pub fn local(result: ResultCode, status: u16, bytes: usize) -> Outcome {
        Outcome {
            result,
            status,
            bytes: bytes as u64,
            hierarchy: Hierarchy::None,
            peer: None,
            content_type: Some("text/plain".into()),
            user: None,
        }
    }

    /// A CONNECT that reached its next hop: `status` is ours (200) or the parent's answer.
    pub fn tunnel(status: u16, bytes: u64, attempt: Attempt, addr: SocketAddr, user: Option<String>) -> Outcome {
        Outcome {
            result: ResultCode::Tunnel,
            status,
            bytes,
            hierarchy: attempt.hierarchy,
            peer: Some(addr.ip()),
            content_type: None,
            user,
        }
    }

    pub fn with_user(mut self, user: Option<String>) -> Outcome {
        self.user = user;
        self
    }
}

impl ClientCtx {
    pub fn log(&self, start: Instant, method: &str, url: &str, outcome: Outcome) {
        let record = Record {
            end: SystemTime::now(),
            elapsed: start.elapsed(),
            client: self.client_ip,
            result: outcome.result,
            status: outcome.status,
            bytes: outcome.bytes,
            method: method.to_string(),
            url: url.to_string(),
            user: outcome.user,
            hierarchy: outcome.hierarchy,
            peer: outcome.peer,
            content_type: outcome.content_type,
        };
        let line = record.render(self.generation.config.strip_query_terms);
        for output in &self.generation.logs {
            if output.acls.is_empty() || self.log_acls_match(&output.acls, method, url) {
                output.sender.send(line.clone());
            }
        }
    }

    /// `access_log … acl…`: ACLs are evaluated on what the record knows (client, method and
    /// the destination from the URL).
    fn log_acls_match(&self, acls: &[crate::policy::AclRef], method: &str, url: &str) -> bool {
        let target = if method.eq_ignore_ascii_case("CONNECT") {
            super::target::parse_connect(url).ok()
        } else {
            super::target::parse_absolute(url).ok()
        };
        let (host, port, proto, path) = match &target {
            Some(t) => (t.host.as_str(), t.port, t.proto, t.path.as_str()),
            None => ("", 0, "", ""),
        };
        let method = method.to_ascii_uppercase();
        let facts = RequestFacts {
            client: self.client_ip,
            method: &method,
            proto,
            host,
            port,
            path,
            dst_addrs: &[],
            host_aliases: &[],
            local_port: self.local_port,
            user: None,
        };
        let set = &self.generation.config.acls;
        acls.iter().all(|r| set.get(r.acl).kind.matches(&facts) != r.negated)
    }

    /// Sends an error reply; returns the bytes written. The caller logs, then the connection's
    /// owner half-closes and drains it with [`close_gracefully`], so the line is logged before
    /// the client sees the end of the reply, and the linger is not counted in its elapsed time.
    pub async fn refuse(&self, client: &mut BufConn, error: &ProxyError) -> usize {
        let g = &self.generation;
        tracing::debug!(client = %self.client_ip, status = error.status, error = error.error.token(), "{}", error.details);
        let bytes = reply::render(&g.hostname, &g.via_entry, error);
        let _ = client.write_all(&bytes).await;
        bytes.len()
    }
}

/// Half-closes and drains what the client still sends for a moment, so our reply is not lost
/// to a reset caused by unread bytes.
pub async fn close_gracefully(stream: &mut TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let deadline = Instant::now() + LINGER;
    for _ in 0..64 {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => continue,
            _ => break,
        }
    }
}

/// Serves one client connection until it closes or a transaction ends it.
pub async fn serve(ctx: ClientCtx, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut client = BufConn::new(stream);
    let config = Arc::clone(&ctx.generation.config);
    let mut first = true;
    let mut upstream = forward::Upstream::default();
    loop {
        let head_timeout = if first {
            config.request_start_timeout
        } else {
            CLIENT_IDLE_TIMEOUT
        };
        let started = Instant::now();
        let head = client
            .read_head(config.request_header_max_size, head_timeout, parse_request)
            .await;
        let start = if first { started } else { Instant::now() };
        let (head, len) = match head {
            Ok(parsed) => parsed,
            Err(e) => {
                head_error(&ctx, &mut client, e, start, first).await;
                break;
            }
        };
        let _ = client.buf.split_to(len);
        first = false;
        if head.method.eq_ignore_ascii_case("CONNECT") {
            connect::handle(&ctx, client, head, start).await;
            return;
        }
        match forward::handle(&ctx, &mut client, &mut upstream, head, start).await {
            forward::Next::KeepAlive if !*ctx.shutdown.borrow() => continue,
            _ => break,
        }
    }
    close_gracefully(&mut client.stream).await;
}

/// The method token at the start of an unparsable head, for the log (Squid logs `GARBAGE`).
fn leading_token(buf: &[u8]) -> String {
    let token: Vec<u8> = buf
        .iter()
        .take(32)
        .take_while(|b| b.is_ascii_alphanumeric() || b"-_".contains(b))
        .copied()
        .collect();
    String::from_utf8(token).unwrap_or_default()
}

async fn head_error(ctx: &ClientCtx, client: &mut BufConn, error: HeadError, start: Instant, first: bool) {
    let method = leading_token(&client.buf);
    let (status, url, details) = match &error {
        // A connection that never sent a byte is not a transaction: parents' health probes and
        // port checks would otherwise fill the log (Squid logs them: reference M14, section 6).
        HeadError::ClosedEarly { received: 0 } => return,
        HeadError::Timeout { received: 0 } if !first => return,
        HeadError::ClosedEarly { .. } | HeadError::Timeout { .. } | HeadError::Io(_) => {
            // Squid logs every connection that ends before a complete head (reference M14).
            let outcome = Outcome {
                content_type: None,
                ..Outcome::local(ResultCode::None, 0, 0)
            };
            ctx.log(start, "", "error:transaction-end-before-headers", outcome);
            return;
        }
        HeadError::TooLarge { limit } => (
            431,
            "error:request-too-large",
            format!("request head larger than {limit} bytes"),
        ),
        HeadError::Version => (
            505,
            "error:unsupported-http-version",
            "only HTTP/1.0 and HTTP/1.1 are supported".into(),
        ),
        HeadError::Malformed(why) => (400, "error:invalid-request", format!("malformed request: {why}")),
    };
    let error = ProxyError::new(status, ErrorType::HttpRequestError, details);
    let bytes = ctx.refuse(client, &error).await;
    ctx.log(start, &method, url, Outcome::local(ResultCode::None, status, bytes));
}
