//! What the proxy decides about a plain-HTTP request itself: it answers `Expect:
//! 100-continue` with its own `100 Continue` (only for a request with a body that asked), so
//! a client waiting for it sends the body; `forward_max_tries` caps the attempts of one
//! request; `retry_on_error` decides whether a parent's 503 is relayed or retried on the next
//! parent; up to sixteen interim answers are dropped; response heads up to 64 KiB are relayed
//! and larger ones refused. Loopback block 127.0.90.0/24.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::origin::{Act, echo_origin, ok, scripted};
use common::{Hop, exchange, header, hop_config, parse_log_line};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Reads from `s` until `want` bytes came or the peer closed (10 s read timeout).
fn read_at_least(s: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < want {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let origin = echo_origin("127.0.90.20:0".parse().unwrap());
    let proxy = "127.0.90.11:31280";
    let hop = Hop::start(
        "p",
        dir.path(),
        proxy.parse().unwrap(),
        &hop_config(dir.path(), "p", proxy, "http_access allow all"),
    );

    // A client that sends its body only after the interim answer, as curl does.
    let mut s = TcpStream::connect_timeout(&proxy.parse().unwrap(), Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!(
            "POST http://{}/up HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            origin.addr
        )
        .as_bytes(),
    )
    .unwrap();
    let interim = read_at_least(&mut s, CONTINUE.len());
    assert_eq!(
        String::from_utf8_lossy(&interim),
        String::from_utf8_lossy(CONTINUE),
        "{}",
        hop.stderr_text()
    );
    s.write_all(b"hello").unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let reply = String::from_utf8_lossy(&rest);
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.ends_with("\r\n\r\nhello"), "the origin got the body: {reply}");
    assert!(
        !reply.to_ascii_lowercase().contains("expect:"),
        "Expect is not sent upstream: {reply}"
    );

    // No `100 Continue` for a request that did not ask, nor for one without a body.
    for request in [
        format!(
            "POST http://{}/a HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            origin.addr
        ),
        format!(
            "GET http://{}/b HTTP/1.1\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            origin.addr
        ),
    ] {
        let reply = exchange(proxy, request.as_bytes());
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{request:?}: {reply}");
        assert!(!reply.contains("100 Continue"), "{request:?}: {reply}");
    }
    assert_eq!(hop.wait_for_lines(3).len(), 3);
}

#[test]
fn forward_max_tries_caps_the_attempts_of_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let first = scripted("127.0.90.21:0".parse().unwrap(), |_| Act::Reset);
    let second = scripted("127.0.90.22:0".parse().unwrap(), |_| Act::Reset);
    let rules = format!(
        "cache_peer {} parent {} 0 no-query name=a\ncache_peer {} parent {} 0 no-query name=b\n\
         never_direct allow all\nhttp_access allow all\nforward_max_tries 1",
        first.server.addr.ip(),
        first.server.addr.port(),
        second.server.addr.ip(),
        second.server.addr.port()
    );
    let proxy = "127.0.90.12:31280";
    let hop = Hop::start(
        "p",
        dir.path(),
        proxy.parse().unwrap(),
        &hop_config(dir.path(), "p", proxy, &rules),
    );
    let reply = exchange(
        proxy,
        b"GET http://site.invalid/ HTTP/1.1\r\nHost: site.invalid\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{reply}");
    let status = header(&reply, "Proxy-Status").unwrap_or_default();
    assert_eq!(status.matches("p.test;").count(), 1, "one attempt: {status}");
    assert!(status.contains(&first.server.addr.to_string()), "{status}");
    assert_eq!(first.wait_for_requests(1).len(), 1);
    let lines = hop.wait_for_lines(1);
    assert_eq!(parse_log_line(&lines[0]).code, "TCP_MISS/502", "{lines:#?}");
    // The request is logged, so the attempt loop has ended: the second parent was never asked.
    assert!(second.requests().is_empty(), "{:?}", second.requests());
}

/// `retry_on_error on` sends a repeatable request that a parent answered 503 to the next
/// parent; off (the default), the parent's 503 is relayed and the next parent never asked.
#[test]
fn retry_on_error_moves_a_503_answer_to_the_next_parent_only_when_on() {
    let dir = tempfile::tempdir().unwrap();
    let busy = scripted("127.0.90.23:0".parse().unwrap(), |_| {
        Act::ReplyClose(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy".to_vec())
    });
    let good = scripted("127.0.90.24:0".parse().unwrap(), |_| Act::Reply(ok("fine")));
    let rules = |extra: &str| {
        format!(
            "cache_peer {} parent {} 0 no-query name=busy\ncache_peer {} parent {} 0 no-query name=good\n\
             never_direct allow all\nhttp_access allow all\n{extra}",
            busy.server.addr.ip(),
            busy.server.addr.port(),
            good.server.addr.ip(),
            good.server.addr.port()
        )
    };
    let request = b"GET http://site.invalid/ HTTP/1.1\r\nHost: site.invalid\r\nConnection: close\r\n\r\n";

    let off = "127.0.90.13:31280";
    let hop_off = Hop::start(
        "off",
        dir.path(),
        off.parse().unwrap(),
        &hop_config(dir.path(), "off", off, &rules("")),
    );
    let reply = exchange(off, request);
    assert!(reply.starts_with("HTTP/1.1 503 "), "relayed: {reply}");
    assert!(reply.ends_with("\r\n\r\nbusy"), "{reply}");
    hop_off.wait_for_lines(1);
    assert_eq!(busy.requests().len(), 1);
    assert!(good.requests().is_empty(), "{:?}", good.requests());

    let on = "127.0.90.14:31280";
    let hop_on = Hop::start(
        "on",
        dir.path(),
        on.parse().unwrap(),
        &hop_config(dir.path(), "on", on, &rules("retry_on_error on")),
    );
    let reply = exchange(on, request);
    assert!(
        reply.starts_with("HTTP/1.1 200 OK\r\n"),
        "{reply}\n{}",
        hop_on.stderr_text()
    );
    assert!(reply.ends_with("\r\n\r\nfine"), "{reply}");
    let lines = hop_on.wait_for_lines(1);
    let line = parse_log_line(&lines[0]);
    assert!(
        line.hierarchy.ends_with(&format!("/{}", good.server.addr.ip())),
        "{lines:#?}"
    );
    assert_eq!(busy.requests().len(), 2, "the busy parent was asked first");

    // With nobody left to ask, the last hop's 503 is relayed, retry_on_error or not.
    let last = "127.0.90.18:31280";
    let only_busy = format!(
        "cache_peer {} parent {} 0 no-query name=busy\nnever_direct allow all\nhttp_access allow all\n\
         retry_on_error on",
        busy.server.addr.ip(),
        busy.server.addr.port()
    );
    let hop_last = Hop::start(
        "last",
        dir.path(),
        last.parse().unwrap(),
        &hop_config(dir.path(), "last", last, &only_busy),
    );
    let reply = exchange(last, request);
    assert!(reply.starts_with("HTTP/1.1 503 "), "relayed: {reply}");
    assert!(reply.ends_with("\r\n\r\nbusy"), "{reply}");
    assert_eq!(parse_log_line(&hop_last.wait_for_lines(1)[0]).code, "TCP_MISS/503");
    assert_eq!(busy.requests().len(), 3);
}

/// A chunked body streams upstream after the head: a bad chunk line found on the way is the
/// client's fault (400), and the log names the hop the head already went to.
#[test]
fn a_bad_chunk_after_the_head_went_upstream_is_400_logged_with_the_hop() {
    let dir = tempfile::tempdir().unwrap();
    let origin = scripted("127.0.90.25:0".parse().unwrap(), |_| Act::Reply(ok("unused")));
    let proxy = "127.0.90.15:31280";
    let hop = Hop::start(
        "p",
        dir.path(),
        proxy.parse().unwrap(),
        &hop_config(dir.path(), "p", proxy, "http_access allow all"),
    );
    let request = format!(
        "POST http://{}/up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n",
        origin.server.addr
    );
    let reply = exchange(proxy, request.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    let lines = hop.wait_for_lines(1);
    let line = parse_log_line(&lines[0]);
    assert_eq!(
        line.hierarchy,
        format!("HIER_DIRECT/{}", origin.server.addr.ip()),
        "{lines:#?}"
    );
}

/// Interim answers are dropped, not relayed: an origin that sends exactly the sixteen 1xx
/// answers the proxy accepts (a `103 Early Hints` and fifteen `102 Processing`) before its
/// 200 gets that 200 to the client, and nothing of the interim answers.
#[test]
fn up_to_sixteen_interim_answers_are_dropped_and_the_final_answer_relayed() {
    let dir = tempfile::tempdir().unwrap();
    let origin = scripted("127.0.90.26:0".parse().unwrap(), |_| {
        let mut out = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n".to_vec();
        for _ in 0..15 {
            out.extend_from_slice(b"HTTP/1.1 102 Processing\r\n\r\n");
        }
        out.extend_from_slice(&ok("final"));
        Act::Reply(out)
    });
    let hop = Hop::start(
        "interim",
        dir.path(),
        "127.0.90.16:31280".parse().unwrap(),
        &hop_config(dir.path(), "interim", "127.0.90.16:31280", "http_access allow all"),
    );
    let at = origin.server.addr;
    let reply = exchange(
        "127.0.90.16:31280",
        format!("GET http://{at}/ HTTP/1.1\r\nHost: {at}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.ends_with("final"), "{reply}");
    assert!(!reply.contains(" 103 ") && !reply.contains(" 102 "), "{reply}");
    let lines = hop.wait_for_lines(1);
    assert_eq!(parse_log_line(&lines[0]).code, "TCP_MISS/200", "{lines:#?}");
}

/// A response head of about 60 KiB (a long cookie) is relayed byte for byte; one over the
/// 64 KiB limit, or with more header fields than the parser takes, is a 502 naming RFC 9209's
/// `http_response_header_section_size`.
#[test]
fn response_heads_up_to_64_kib_pass_and_larger_ones_are_502() {
    let dir = tempfile::tempdir().unwrap();
    let origin = scripted("127.0.90.27:0".parse().unwrap(), |r| {
        let head = |fields: &str| format!("HTTP/1.1 200 OK\r\n{fields}Content-Length: 2\r\n\r\nok").into_bytes();
        match r.head.split(' ').nth(1).unwrap_or("") {
            "/big" => Act::Reply(head(&format!("Set-Cookie: c={}\r\n", "b".repeat(60_000)))),
            "/huge" => Act::Reply(head(&format!("Set-Cookie: c={}\r\n", "h".repeat(70_000)))),
            "/many" => Act::Reply(head(&(0..200).map(|i| format!("X-F{i}: v\r\n")).collect::<String>())),
            _ => Act::Reply(ok("next")),
        }
    });
    let hop = Hop::start(
        "heads",
        dir.path(),
        "127.0.90.17:31280".parse().unwrap(),
        &hop_config(dir.path(), "heads", "127.0.90.17:31280", "http_access allow all"),
    );
    let at = origin.server.addr;
    let get = |path: &str| {
        exchange(
            "127.0.90.17:31280",
            format!("GET http://{at}{path} HTTP/1.1\r\nHost: {at}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    };
    let big = get("/big");
    assert!(big.starts_with("HTTP/1.1 200 OK\r\n"), "{}", &big[..big.len().min(300)]);
    assert!(
        big.contains(&format!("\r\nSet-Cookie: c={}\r\n", "b".repeat(60_000))),
        "the cookie arrived whole"
    );
    assert!(big.ends_with("\r\n\r\nok"));
    for path in ["/huge", "/many"] {
        let reply = get(path);
        assert!(reply.starts_with("HTTP/1.1 502 "), "{path}: {reply}");
        let status = header(&reply, "Proxy-Status").unwrap_or_default();
        assert!(
            status.starts_with("heads.test; error=http_response_header_section_size;"),
            "{path}: {status}"
        );
    }
    let lines = hop.wait_for_lines(3);
    let codes: Vec<String> = lines.iter().map(|l| parse_log_line(l).code).collect();
    assert_eq!(codes, ["TCP_MISS/200", "TCP_MISS/502", "TCP_MISS/502"], "{lines:#?}");
}
