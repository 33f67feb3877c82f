//! Plain-HTTP failover and retries: a parent that fails before answering (reset, garbage
//! instead of a status line, silence past the bound) is left for the next parent within the
//! same request, and a kept origin connection that the origin closed is replaced by a fresh
//! one. Each test can only pass through a real in-request retry: the failing peer records
//! that it received the request. A parent that resets a CONNECT, with none left to try, is
//! named as the hop that closed the connection. Loopback block 127.0.70.0/24.

mod common;

use common::origin::{Act, echo_origin, ok, scripted};
use common::{Hop, KeepAliveClient, exchange, header, hop_config, parse_log_line};

/// p1 (hopproxy) with two parents: `bad` first, then p2 (hopproxy, direct to an echo origin).
struct Chain {
    p1: Hop,
    p2: Hop,
    _origin: common::origin::Server,
    origin_url: String,
}

fn chain(dir: &std::path::Path, index: u8, bad: std::net::SocketAddr, extra: &str) -> Chain {
    let origin = echo_origin(format!("127.0.70.{}:0", 100 + index).parse().unwrap());
    let p2_listen = format!("127.0.70.{}:31280", 50 + index);
    let p2 = Hop::start(
        "p2",
        dir,
        p2_listen.parse().unwrap(),
        &hop_config(dir, "p2", &p2_listen, "http_access allow all"),
    );
    let p1_listen = format!("127.0.70.{}:31280", 10 + index);
    let rules = format!(
        "cache_peer {} parent {} 0 no-query name=bad\ncache_peer {} parent 31280 0 no-query name=good\n\
         never_direct allow all\nhttp_access allow all\n{extra}",
        bad.ip(),
        bad.port(),
        p2.addr.ip()
    );
    let p1 = Hop::start(
        "p1",
        dir,
        p1_listen.parse().unwrap(),
        &hop_config(dir, "p1", &p1_listen, &rules),
    );
    Chain {
        p1,
        p2,
        origin_url: format!("http://{}/page", origin.addr),
        _origin: origin,
    }
}

/// Sends a GET for `url` through `proxy` and checks the answer came from the echo origin via
/// the second parent, logged once on p1 as `TCP_MISS/200 … ANY_OLD_PARENT/<p2>`.
fn assert_failed_over(chain: &Chain) {
    let request = format!("GET {} HTTP/1.1\r\nConnection: close\r\n\r\n", chain.origin_url);
    let reply = exchange(&chain.p1.addr.to_string(), request.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains("GET /page HTTP/1.1\r\n"), "the origin's echo: {reply}");
    let lines = chain.p1.wait_for_lines(1);
    assert_eq!(lines.len(), 1, "one line per request: {lines:#?}");
    let line = parse_log_line(&lines[0]);
    assert_eq!(line.code, "TCP_MISS/200", "{lines:#?}");
    assert_eq!(
        line.hierarchy,
        format!("ANY_OLD_PARENT/{}", chain.p2.addr.ip()),
        "{lines:#?}"
    );
    chain.p2.wait_for_lines(1);
}

#[test]
fn a_parent_that_resets_after_the_request_is_left_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let bad = scripted("127.0.70.21:0".parse().unwrap(), |_| Act::Reset);
    let chain = chain(dir.path(), 1, bad.server.addr, "");
    assert_failed_over(&chain);
    let seen = bad.wait_for_requests(1);
    assert_eq!(seen.len(), 1, "the bad parent got the request first: {seen:?}");
    assert!(seen[0].head.starts_with("GET http://"), "{seen:?}");
}

#[test]
fn a_parent_that_answers_garbage_is_left_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let bad = scripted("127.0.70.22:0".parse().unwrap(), |_| {
        Act::ReplyClose(b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec())
    });
    let chain = chain(dir.path(), 2, bad.server.addr, "");
    assert_failed_over(&chain);
    assert_eq!(bad.wait_for_requests(1).len(), 1);
    // The operator's record of the failed attempt says which hop and what it sent.
    chain.p1.wait_for_stderr(&format!(
        "{} failed before any response byte: unsupported HTTP version",
        bad.server.addr
    ));
}

#[test]
fn a_silent_parent_is_left_after_the_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let bad = scripted("127.0.70.23:0".parse().unwrap(), |_| Act::Silent);
    let chain = chain(dir.path(), 3, bad.server.addr, "read_timeout 1 second");
    assert_failed_over(&chain);
    assert_eq!(bad.wait_for_requests(1).len(), 1);
    chain.p1.wait_for_stderr(&format!(
        "{} failed before any response byte: timed out waiting for a complete head",
        bad.server.addr
    ));
}

/// A POST whose body the parent may have acted on is not sent again: the client gets the
/// failure (502) and the second parent never sees it.
#[test]
fn a_post_is_not_repeated_after_it_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let bad = scripted("127.0.70.24:0".parse().unwrap(), |_| Act::Reset);
    let chain = chain(dir.path(), 4, bad.server.addr, "");
    let request = format!(
        "POST {} HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        chain.origin_url
    );
    let reply = exchange(&chain.p1.addr.to_string(), request.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{reply}");
    let lines = chain.p1.wait_for_lines(1);
    assert_eq!(parse_log_line(&lines[0]).code, "TCP_MISS/502", "{lines:#?}");
    assert_eq!(bad.wait_for_requests(1).len(), 1);
    assert!(
        chain.p2.log_lines().is_empty(),
        "p2 got the POST: {:?}",
        chain.p2.log_lines()
    );
}

/// Every parent failing: one `Proxy-Status` member per failed attempt.
#[test]
fn when_every_parent_fails_each_attempt_is_a_proxy_status_member() {
    let dir = tempfile::tempdir().unwrap();
    let reset = scripted("127.0.70.25:0".parse().unwrap(), |_| Act::Reset);
    let garbage = scripted("127.0.70.26:0".parse().unwrap(), |_| {
        Act::ReplyClose(b"garbage\r\n\r\n".to_vec())
    });
    let rules = format!(
        "cache_peer {} parent {} 0 no-query name=a\ncache_peer {} parent {} 0 no-query name=b\n\
         never_direct allow all\nhttp_access allow all",
        reset.server.addr.ip(),
        reset.server.addr.port(),
        garbage.server.addr.ip(),
        garbage.server.addr.port()
    );
    let hop = Hop::start(
        "p1",
        dir.path(),
        "127.0.70.15:31280".parse().unwrap(),
        &hop_config(dir.path(), "p1", "127.0.70.15:31280", &rules),
    );
    let reply = exchange(
        "127.0.70.15:31280",
        b"GET http://site.invalid/ HTTP/1.1\r\nHost: site.invalid\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{reply}");
    let status = header(&reply, "Proxy-Status").unwrap();
    let members: Vec<&str> = status.split(", p1.test;").collect();
    assert_eq!(members.len(), 2, "{status}");
    assert!(members[0].contains("error=connection_terminated"), "{status}");
    assert!(members[0].contains(&reset.server.addr.to_string()), "{status}");
    assert!(members[1].contains("error=http_protocol_error"), "{status}");
    assert!(members[1].contains(&garbage.server.addr.to_string()), "{status}");
    let lines = hop.wait_for_lines(1);
    assert_eq!(parse_log_line(&lines[0]).code, "TCP_MISS/502", "{lines:#?}");
}

/// An origin that keeps a connection open after its answer but closes it when the next
/// request arrives (what a short keep-alive timeout looks like from the proxy): the second
/// request goes once more on a fresh connection; the client never sees a 502.
#[test]
fn a_kept_connection_the_origin_dropped_is_replaced_in_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let origin = scripted("127.0.70.30:0".parse().unwrap(), |r| {
        if r.index == 0 {
            Act::Reply(ok(&format!("answer on connection {}", r.connection)))
        } else {
            Act::Close
        }
    });
    let hop = Hop::start(
        "d",
        dir.path(),
        "127.0.70.16:31280".parse().unwrap(),
        &hop_config(dir.path(), "d", "127.0.70.16:31280", "http_access allow all"),
    );
    let mut client = KeepAliveClient::connect(hop.addr);
    let get = format!("GET http://{0}/a HTTP/1.1\r\nHost: {0}\r\n\r\n", origin.server.addr);
    for round in 0..3 {
        let response = client.ask(get.as_bytes(), false).expect("a response");
        assert_eq!(response.status(), 200, "round {round}: {response:?}");
        assert_eq!(response.body_text(), format!("answer on connection {round}"));
    }
    let seen = origin.wait_for_requests(5);
    // Rounds 1 and 2 each reached the kept connection first (closed there), then a new one.
    assert_eq!(seen.len(), 5, "{seen:#?}");
    let lines = hop.wait_for_lines(3);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines.iter().all(|l| parse_log_line(l).code == "TCP_MISS/200"),
        "{lines:#?}"
    );
}

/// An origin that closes each connection right after answering (announcing keep-alive):
/// the kept connection is found closed and a fresh one used.
#[test]
fn a_kept_connection_closed_while_idle_is_not_a_502() {
    let dir = tempfile::tempdir().unwrap();
    let origin = scripted("127.0.70.31:0".parse().unwrap(), |r| {
        Act::ReplyClose(ok(&format!("answer on connection {}", r.connection)))
    });
    let hop = Hop::start(
        "i",
        dir.path(),
        "127.0.70.17:31280".parse().unwrap(),
        &hop_config(dir.path(), "i", "127.0.70.17:31280", "http_access allow all"),
    );
    let mut client = KeepAliveClient::connect(hop.addr);
    let get = format!("GET http://{0}/a HTTP/1.1\r\nHost: {0}\r\n\r\n", origin.server.addr);
    for round in 0..3 {
        let response = client.ask(get.as_bytes(), false).expect("a response");
        assert_eq!(response.status(), 200, "round {round}: {response:?}");
    }
    let lines = hop.wait_for_lines(3);
    assert!(
        lines.iter().all(|l| parse_log_line(l).code == "TCP_MISS/200"),
        "{lines:#?}"
    );
}

/// A repeatable request's body is kept in hand for a retry up to 64 KiB: a PUT of 1,000 bytes
/// and one of exactly 65,536 bytes are sent again to the next parent, body whole, when the
/// first resets; one of 65,537 bytes was streamed, not kept, so it is answered 502 and the
/// next parent never sees it.
#[test]
fn a_body_up_to_64_kib_is_kept_for_a_retry_and_a_larger_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let bad = scripted("127.0.70.27:0".parse().unwrap(), |_| Act::Reset);
    let chain = chain(dir.path(), 8, bad.server.addr, "");
    for (n, size) in [1_000usize, 65_536, 65_537].into_iter().enumerate() {
        let body = "k".repeat(size);
        let request = format!(
            "PUT {} HTTP/1.1\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n{body}",
            chain.origin_url
        );
        let reply = exchange(&chain.p1.addr.to_string(), request.as_bytes());
        let lines = chain.p1.wait_for_lines(n + 1);
        let line = parse_log_line(&lines[n]);
        assert_eq!(
            bad.wait_for_requests(n + 1)[n].body.len(),
            size,
            "the first parent got it all"
        );
        if size <= 65_536 {
            assert!(
                reply.starts_with("HTTP/1.1 200 OK\r\n"),
                "{size}: {}",
                &reply[..80.min(reply.len())]
            );
            assert!(reply.contains("PUT /page HTTP/1.1\r\n"), "{size}: the origin's echo");
            assert!(reply.ends_with(&body), "{size}: the body reached the origin whole");
            assert_eq!(line.code, "TCP_MISS/200", "{lines:#?}");
        } else {
            assert!(reply.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{size}: {reply}");
            assert_eq!(line.code, "TCP_MISS/502", "{lines:#?}");
        }
    }
    // Only the two kept bodies reached the second parent.
    let p2 = chain.p2.wait_for_lines(2);
    assert_eq!(p2.len(), 2, "{p2:#?}");
    assert!(p2.iter().all(|l| parse_log_line(l).method == "PUT"), "{p2:#?}");
}

/// A parent that resets a CONNECT before answering it, with no other parent left, is a 502
/// `connection_terminated` naming that parent, logged once.
#[test]
fn a_parent_that_resets_a_connect_is_502_connection_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let bad = scripted("127.0.70.41:0".parse().unwrap(), |_| Act::Reset);
    let rules = format!(
        "cache_peer {} parent {} 0 no-query name=bad\nnever_direct allow all\nhttp_access allow all",
        bad.server.addr.ip(),
        bad.server.addr.port()
    );
    let listen = "127.0.70.40:31280";
    let p1 = Hop::start(
        "p1",
        dir.path(),
        listen.parse().unwrap(),
        &hop_config(dir.path(), "p1", listen, &rules),
    );
    let reply = exchange(
        listen,
        b"CONNECT far.invalid:443 HTTP/1.1\r\nHost: far.invalid:443\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{reply}");
    let status = header(&reply, "Proxy-Status").unwrap_or_default();
    assert!(
        status.starts_with(&format!(
            "p1.test; error=connection_terminated; next-hop=\"{}\"",
            bad.server.addr
        )),
        "{status}"
    );
    assert_eq!(bad.wait_for_requests(1).len(), 1, "the parent got the CONNECT");
    let lines = p1.wait_for_lines(1);
    assert_eq!(parse_log_line(&lines[0]).code, "NONE_NONE/502", "{lines:#?}");
}
