//! Plain-HTTP framing a hostile peer cannot bend: a `Connection` field that names a framing
//! field (Content-Length, Transfer-Encoding) must never strip that field while the body is
//! still sent, or the next hop reads the body as a second request (request smuggling).
//! Loopback block 127.0.60.0/24.

mod common;

use common::origin::recorder;
use common::{Hop, exchange, header, hop_config, parse_log_line};

const SMUGGLED: &str = "GET http://denied.invalid/ HTTP/1.1\r\nHost: denied.invalid\r\n\r\n";

/// A request whose `Connection` names its framing is refused with 400 and reaches nobody:
/// neither the parent nor any origin sees a byte of it.
#[test]
fn a_request_whose_connection_names_its_framing_reaches_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let parent = recorder(
        "127.0.60.12:0".parse().unwrap(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    );
    let rules = format!(
        "cache_peer {} parent {} 0 no-query default\nnever_direct allow all\nhttp_access allow all",
        parent.server.addr.ip(),
        parent.server.addr.port()
    );
    let hop = Hop::start(
        "p1",
        dir.path(),
        "127.0.60.11:31280".parse().unwrap(),
        &hop_config(dir.path(), "p1", "127.0.60.11:31280", &rules),
    );
    let length = SMUGGLED.len();
    let chunked_body = format!("{length:x}\r\n{SMUGGLED}\r\n0\r\n\r\n");
    let shapes = [
        format!("Content-Length: {length}\r\nConnection: Content-Length\r\n\r\n{SMUGGLED}"),
        format!("Content-Length: {length}\r\nConnection: keep-alive, content-length\r\n\r\n{SMUGGLED}"),
        format!("Content-Length: {length}\r\nProxy-Connection: Content-Length\r\n\r\n{SMUGGLED}"),
        format!("Transfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n{chunked_body}"),
    ];
    for shape in &shapes {
        let request = format!("POST http://allowed.invalid/form HTTP/1.1\r\nHost: allowed.invalid\r\n{shape}");
        let reply = exchange("127.0.60.11:31280", request.as_bytes());
        assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{shape:?} → {reply}");
        let status = header(&reply, "Proxy-Status").unwrap();
        assert!(status.starts_with("p1.test; error=http_request_error"), "{status}");
        assert!(status.contains("framing field"), "{status}");
    }
    let lines = hop.wait_for_lines(shapes.len());
    for line in &lines {
        let fields = parse_log_line(line);
        assert_eq!(fields.code, "NONE_NONE/400", "{line}");
    }
    // The refusal comes before any next hop is chosen, so once every line is logged the parent
    // can have received nothing (its connections, if any, are hopproxy's empty health probes).
    let received = parent.received();
    assert!(received.iter().all(|c| c.is_empty()), "parent received {received:?}");
}

/// An origin answer whose `Connection` names Content-Length reaches the client with its
/// length intact, so the client (or the next proxy) cannot mistake the body's end.
#[test]
fn a_response_whose_connection_names_its_length_keeps_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let origin = recorder(
        "127.0.60.20:0".parse().unwrap(),
        b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    );
    let _hop = Hop::start(
        "h",
        dir.path(),
        "127.0.60.13:31280".parse().unwrap(),
        &hop_config(dir.path(), "h", "127.0.60.13:31280", "http_access allow all"),
    );
    let request = format!(
        "GET http://{0}/x HTTP/1.1\r\nHost: {0}\r\nConnection: close\r\n\r\n",
        origin.server.addr
    );
    let reply = exchange("127.0.60.13:31280", request.as_bytes());
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert_eq!(header(head, "Content-Length"), Some("5"), "{reply}");
    assert_eq!(body, "hello");
}

/// Chunk lines two hops could read differently (white space around the size, bare LF line
/// ends, a bare CR in an extension) are refused with 400 before the body reaches the origin.
#[test]
fn lenient_chunk_lines_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let origin = recorder(
        "127.0.60.21:0".parse().unwrap(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    );
    let hop = Hop::start(
        "c",
        dir.path(),
        "127.0.60.14:31280".parse().unwrap(),
        &hop_config(dir.path(), "c", "127.0.60.14:31280", "http_access allow all"),
    );
    let bodies = [
        " 5\r\nhello\r\n0\r\n\r\n",
        "5 \r\nhello\r\n0\r\n\r\n",
        "5\nhello\n0\n\n",
        "5;a\rb\r\nhello\r\n0\r\n\r\n",
        "5\r\nhello\r\n0\r\nX: y\n\r\n",
    ];
    for body in bodies {
        let request = format!(
            "POST http://{0}/upload HTTP/1.1\r\nHost: {0}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
            origin.server.addr
        );
        let reply = exchange("127.0.60.14:31280", request.as_bytes());
        assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{body:?} → {reply}");
    }
    let lines = hop.wait_for_lines(bodies.len());
    assert!(
        lines.iter().all(|l| parse_log_line(l).code == "NONE_NONE/400"),
        "{lines:#?}"
    );
    // Chunks before the bad line may already be on their way (a body is streamed), but the bad
    // line is never forwarded, so the origin never holds a complete message: it sees a request
    // cut short, never one it could answer.
    for received in origin.received() {
        let text = String::from_utf8_lossy(&received);
        let bad_line_forwarded = [" 5\r\n", "5 \r\n", "5\nhello", "a\rb", "X: y\n"]
            .iter()
            .any(|bad| text.split("\r\n\r\n").nth(1).is_some_and(|body| body.contains(bad)));
        assert!(!bad_line_forwarded, "origin received a bad chunk line: {text:?}");
        assert!(
            !text.ends_with("0\r\n\r\n"),
            "origin received a whole message: {text:?}"
        );
    }
}

/// Host names with empty labels or a leading dot are refused (400) for CONNECT and absolute
/// URLs alike, before any `dstdomain` check or DNS lookup.
#[test]
fn malformed_host_names_are_400() {
    let dir = tempfile::tempdir().unwrap();
    let hop = Hop::start(
        "n",
        dir.path(),
        "127.0.60.15:31280".parse().unwrap(),
        &hop_config(
            dir.path(),
            "n",
            "127.0.60.15:31280",
            "acl ok dstdomain .example.invalid\nhttp_access allow ok\nhttp_access deny all",
        ),
    );
    let requests = [
        "CONNECT .api.example.invalid:443 HTTP/1.1\r\nHost: .api.example.invalid:443\r\n\r\n",
        "CONNECT api..example.invalid:443 HTTP/1.1\r\n\r\n",
        "GET http://.api.example.invalid/ HTTP/1.1\r\nHost: .api.example.invalid\r\n\r\n",
    ];
    for request in requests {
        let reply = exchange("127.0.60.15:31280", request.as_bytes());
        assert!(
            reply.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{request:?} → {reply}"
        );
        assert!(
            header(&reply, "Proxy-Status").unwrap().contains("invalid host name"),
            "{reply}"
        );
    }
    let lines = hop.wait_for_lines(requests.len());
    assert!(
        lines.iter().all(|l| parse_log_line(l).code == "NONE_NONE/400"),
        "{lines:#?}"
    );
}

/// A request must name its destination once: two `Host` fields (even equal ones, RFC 9112
/// §3.2) or a `Host` that disagrees with the absolute URL are 400, logged, and reach nobody.
#[test]
fn repeated_or_disagreeing_host_fields_are_400_and_reach_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let origin = recorder(
        "127.0.60.22:0".parse().unwrap(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    );
    let hop = Hop::start(
        "host",
        dir.path(),
        "127.0.60.16:31280".parse().unwrap(),
        &hop_config(dir.path(), "host", "127.0.60.16:31280", "http_access allow all"),
    );
    let at = origin.server.addr;
    let requests = [
        (
            format!("GET http://{at}/ HTTP/1.1\r\nHost: {at}\r\nHost: other.invalid\r\n\r\n"),
            "more than one Host field",
        ),
        (
            format!("GET http://{at}/ HTTP/1.1\r\nHost: {at}\r\nHost: {at}\r\n\r\n"),
            "more than one Host field",
        ),
        (
            format!("GET http://{at}/ HTTP/1.1\r\nHost: other.invalid\r\n\r\n"),
            "disagrees with the URL",
        ),
    ];
    for (request, why) in &requests {
        let reply = exchange("127.0.60.16:31280", request.as_bytes());
        assert!(
            reply.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{request:?} → {reply}"
        );
        let status = header(&reply, "Proxy-Status").unwrap_or_default();
        assert!(
            status.contains("error=http_request_error") && status.contains(why),
            "{request:?} → {reply}"
        );
    }
    let lines = hop.wait_for_lines(requests.len());
    assert!(
        lines.iter().all(|l| parse_log_line(l).code == "NONE_NONE/400"),
        "{lines:#?}"
    );
    assert!(origin.received().is_empty(), "{:?}", origin.received());
}
