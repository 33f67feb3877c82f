//! `Max-Forwards` on TRACE and OPTIONS (RFC 9110 section 7.6.2): a hop that receives 0 is the
//! final recipient and answers itself; otherwise the request goes on with the value one lower
//! (see `forward::send_request`). Other methods ignore the field and forward it unchanged.

use super::transaction::{Outcome, Transaction};
use crate::http1::{BodyKind, BufConn, RequestHead};
use crate::log::ResultCode;

/// What this proxy answers `OPTIONS` with when it is the final recipient.
const ALLOW: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, CONNECT";

/// Fields a TRACE echo leaves out: RFC 9110 section 9.3.8 asks the final recipient to exclude
/// fields likely to hold credentials.
const SENSITIVE: &[&str] = &["authorization", "proxy-authorization", "cookie"];

/// The request's `Max-Forwards`, when it is a TRACE or OPTIONS with one valid value. A value
/// that is not a number is ignored (the request is forwarded as it came).
pub fn remaining(head: &RequestHead) -> Option<u64> {
    let applies = ["TRACE", "OPTIONS"].iter().any(|m| head.method.eq_ignore_ascii_case(m));
    if !applies {
        return None;
    }
    let mut values = head.headers.iter().filter(|h| h.is("max-forwards"));
    let value = values.next()?.value_str().trim();
    if values.next().is_some() || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.parse().unwrap_or(u64::MAX))
}

/// Answers a TRACE (200, the request echoed as `message/http`) or an OPTIONS (200 with
/// `Allow`) that reached its final recipient here, and logs it like Squid: `TCP_MISS/200`,
/// `HIER_NONE`. A request with a body closes the connection (the body is not read).
pub async fn answer(
    tx: Transaction<'_>,
    client: &mut BufConn,
    head: &RequestHead,
    body: BodyKind,
) -> super::forward::Next {
    let keep = body == BodyKind::None && crate::http1::head::wants_keep_alive(head.version, &head.headers);
    let connection = if keep { "keep-alive" } else { "close" };
    let (content_type, content) = if head.method.eq_ignore_ascii_case("TRACE") {
        (Some("message/http"), echo(head))
    } else {
        (None, Vec::new())
    };
    let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", content.len()).into_bytes();
    match content_type {
        Some(kind) => out.extend_from_slice(format!("Content-Type: {kind}\r\n").as_bytes()),
        None => out.extend_from_slice(format!("Allow: {ALLOW}\r\n").as_bytes()),
    }
    out.extend_from_slice(format!("Connection: {connection}\r\n\r\n").as_bytes());
    out.extend_from_slice(&content);
    let sent = client.write_all(&out).await.is_ok();
    let mut outcome = Outcome::local(ResultCode::Miss, 200, out.len());
    outcome.content_type = content_type.map(str::to_string);
    tx.finish(outcome);
    if sent && keep {
        super::forward::Next::KeepAlive
    } else {
        super::forward::Next::Close
    }
}

/// The request head as received, minus credentials.
fn echo(head: &RequestHead) -> Vec<u8> {
    let version = if head.version == 0 { "HTTP/1.0" } else { "HTTP/1.1" };
    let mut out = format!("{} {} {version}\r\n", head.method, head.target).into_bytes();
    for h in head.headers.iter().filter(|h| !SENSITIVE.iter().any(|s| h.is(s))) {
        super::headers::push_header(&mut out, &h.name, &h.value);
    }
    out.extend_from_slice(b"\r\n");
    out
}
