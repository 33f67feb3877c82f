//! One client connection: read request heads (keep-alive), answer parse errors, hand CONNECT
//! and plain HTTP to their handlers. What a transaction is lives in `transaction`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::reply::{ErrorType, ProxyError};
use super::transaction::{ClientCtx, Failure, HopSeen, Transaction, close_gracefully};
use super::{connect, forward};
use crate::http1::head::parse_request;
use crate::http1::{BufConn, HeadError};
use crate::log::ResultCode;
use crate::tls::Stream;

/// How long an idle keep-alive client connection is kept (Squid's `client_idle_pconn_timeout`).
const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Serves one client connection until it closes or a transaction ends it.
pub async fn serve(mut ctx: ClientCtx, stream: Stream) {
    let _ = stream.tcp().set_nodelay(true);
    let mut client = BufConn::new(stream);
    let config = Arc::clone(&ctx.generation.config);
    let needs_proxy_header = config
        .http_port_for(ctx.local_port, ctx.local_ip)
        .is_some_and(|p| p.require_proxy_header);
    if needs_proxy_header {
        use super::proxy_protocol::{Verdict, accept};
        let start = Instant::now();
        match accept(&mut ctx, &mut client).await {
            Verdict::Accepted => {}
            verdict => {
                // No answer (the peer is a load balancer, not an HTTP client), but a log line
                // with the connecting address, as Squid 5.7 writes.
                if verdict == Verdict::Refused {
                    let tx = Transaction::new(&ctx, start, "", "error:transaction-end-before-headers");
                    tx.fail(&mut client, Failure::unanswered(ResultCode::None, HopSeen::NONE))
                        .await;
                }
                close_gracefully(&mut client.stream).await;
                return;
            }
        }
    }
    let mut first = true;
    let mut upstream = forward::Upstream::default();
    loop {
        let head_timeout = if first {
            // request_start_timeout bounds the wait for the first byte and request_timeout
            // the whole head; one deadline for the head is the stricter of the two.
            config.request_start_timeout.min(config.request_timeout)
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
        // port checks would otherwise fill the log (Squid logs them: docs/squid-behaviour.md M14, section 6).
        HeadError::ClosedEarly { received: 0 } => return,
        HeadError::Timeout { received: 0 } if !first => return,
        HeadError::ClosedEarly { .. } | HeadError::Timeout { .. } | HeadError::Io(_) => {
            // Squid logs every connection that ends before a complete head (docs/squid-behaviour.md M14).
            let tx = Transaction::new(ctx, start, "", "error:transaction-end-before-headers");
            tx.fail(client, Failure::unanswered(ResultCode::None, HopSeen::NONE))
                .await;
            return;
        }
        HeadError::TooLarge { limit } => (
            431,
            "error:request-too-large",
            format!("request head larger than {limit} bytes"),
        ),
        HeadError::TooManyFields { limit } => (
            431,
            "error:request-too-large",
            format!("request head with more than {limit} header fields"),
        ),
        HeadError::Version => (
            505,
            "error:unsupported-http-version",
            "only HTTP/1.0 and HTTP/1.1 are supported".into(),
        ),
        HeadError::Malformed(why) => (400, "error:invalid-request", format!("malformed request: {why}")),
    };
    let error = ProxyError::new(status, ErrorType::HttpRequestError, details);
    let tx = Transaction::new(ctx, start, &method, url);
    tx.fail(client, Failure::refused(error)).await;
}
