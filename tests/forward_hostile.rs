//! A hostile origin behind two hops: hopproxy→hopproxy (block 72), hopproxy→Squid 5.7 (73)
//! and Squid→hopproxy (74). Bytes an origin sends past the end of a response never answer
//! the client's next request; an unsolicited 101 and endless 100s are refused; a body cut
//! short is logged `TCP_MISS_ABORTED` and ends the client connection; transfer codings stay
//! named; TRACE and OPTIONS honour `Max-Forwards`. Asserted on what the origin received,
//! what the client received, and the log lines.

mod common;

use std::net::SocketAddr;

use common::origin::{Act, Scripted, ok, scripted};
use common::{Hop, KeepAliveClient, header, hop_config, parse_log_line, skip};
use hopproxy::lab::squid::{Squid, SquidError};

const SMUGGLED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED";

/// The hostile origin: what it does depends on the request path.
fn hostile_origin(addr: &str) -> Scripted {
    scripted(addr.parse().unwrap(), |r| {
        let path = r.head.split(' ').nth(1).unwrap_or("");
        let path = path.rsplit_once('/').map_or(path, |(_, p)| p);
        let with_smuggled = |head: &[u8]| [head, SMUGGLED].concat();
        match path {
            "head-extra" => Act::Reply(with_smuggled(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")),
            "no-content-extra" => Act::Reply(with_smuggled(b"HTTP/1.1 204 No Content\r\n\r\n")),
            "long" => Act::Reply(with_smuggled(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")),
            "switch" => {
                Act::Reply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n".to_vec())
            }
            "continues" => Act::Reply([b"HTTP/1.1 100 Continue\r\n\r\n".repeat(20), ok("late")].concat()),
            "cut" => Act::ReplyClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789".to_vec()),
            "cut-chunked" => {
                Act::ReplyClose(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".to_vec())
            }
            "bad-chunk" => Act::Reply(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n 5\r\nworld\r\n0\r\n\r\n".to_vec(),
            ),
            "gzip-chunked" => Act::Reply(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4\r\nGZIP\r\n0\r\n\r\n".to_vec(),
            ),
            "chunked-gzip" => {
                Act::ReplyClose(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nRAWGZIP".to_vec())
            }
            _ => Act::Reply(ok("real")),
        }
    })
}

fn get(origin: SocketAddr, path: &str) -> String {
    format!("GET http://{origin}/{path} HTTP/1.1\r\nHost: {origin}\r\n\r\n")
}

/// Bytes past the end of a HEAD answer, a 204 and a body never answer the next request.
/// With hopproxy next to the origin (`fresh`), the next request reaches the origin on a fresh
/// connection (Squid, next to the origin, keeps its connection and discards the bytes).
fn leftovers_never_answer_the_next_request(front: SocketAddr, origin: &Scripted, fresh: bool) {
    let o = origin.server.addr;
    for (method, path) in [("HEAD", "head-extra"), ("GET", "no-content-extra"), ("GET", "long")] {
        let mut client = KeepAliveClient::connect(front);
        let first = format!("{method} http://{o}/{path} HTTP/1.1\r\nHost: {o}\r\n\r\n");
        let response = client.ask(first.as_bytes(), method == "HEAD").expect("an answer");
        assert!(matches!(response.status(), 200 | 204), "{path}: {response:?}");
        assert!(!response.body_text().contains("SMUGGLED"), "{path}: {response:?}");
        let next = client
            .ask(get(o, "next").as_bytes(), false)
            .expect("an answer to the next request");
        assert_eq!(
            next.body_text(),
            "real",
            "{path}: the next answer is the origin's own: {next:?}"
        );
    }
    let requests = origin.wait_for_requests(6);
    for r in requests.iter().filter(|r| fresh && r.head.contains("/next ")) {
        assert_eq!(
            r.index, 0,
            "the request after leftovers went on a fresh connection: {requests:#?}"
        );
    }
}

/// A cut body reaches the client as cut, and the client connection is closed.
fn cut_bodies_close_the_client(front: SocketAddr, origin: SocketAddr) {
    for path in ["cut", "cut-chunked", "bad-chunk"] {
        let mut client = KeepAliveClient::connect(front);
        let response = client.ask(get(origin, path).as_bytes(), false).expect("a head");
        assert_eq!(response.status(), 200, "{path}: {response:?}");
        // A read that timed out also ends the body: only EOF proves the close.
        assert!(
            response.closed && client.is_closed(),
            "{path}: the client connection must close: {response:?}"
        );
        assert!(!response.body_text().contains("world"), "{path}: {response:?}");
    }
}

fn hopproxy_hop(dir: &std::path::Path, name: &str, listen: &str, rules: &str) -> Hop {
    Hop::start(
        name,
        dir,
        listen.parse().unwrap(),
        &hop_config(dir, name, listen, rules),
    )
}

fn parent_rules(parent: SocketAddr) -> String {
    format!(
        "cache_peer {} parent {} 0 no-query no-digest default\nnever_direct allow all\nhttp_access allow all",
        parent.ip(),
        parent.port()
    )
}

fn codes(hop: &Hop, count: usize) -> Vec<String> {
    hop.wait_for_lines(count);
    hop.log_lines()
        .iter()
        .map(|l| parse_log_line(l).code + " " + &parse_log_line(l).url)
        .collect()
}

#[test]
fn hostile_origin_behind_two_hopproxy_hops() {
    let dir = tempfile::tempdir().unwrap();
    let origin = hostile_origin("127.0.72.20:0");
    let o = origin.server.addr;
    let p2 = hopproxy_hop(dir.path(), "p2", "127.0.72.12:31280", "http_access allow all");
    let p1 = hopproxy_hop(dir.path(), "p1", "127.0.72.11:31280", &parent_rules(p2.addr));

    leftovers_never_answer_the_next_request(p1.addr, &origin, true);
    // The hop next to the origin tells its operator (each answer came in one write, so the
    // stray bytes sat in the buffer when the response ended).
    p2.wait_for_stderr(&format!(
        "{o} sent {} bytes past the end of its response; connection closed",
        SMUGGLED.len()
    ));
    cut_bodies_close_the_client(p1.addr, o);

    for path in ["switch", "continues"] {
        let mut client = KeepAliveClient::connect(p1.addr);
        let response = client.ask(get(o, path).as_bytes(), false).expect("an answer");
        assert_eq!(response.status(), 502, "{path}: {response:?}");
        let status = header(&response.head, "Proxy-Status").unwrap_or("");
        assert!(
            status.starts_with("p2.test; error=http_protocol_error"),
            "{path}: {status}"
        );
    }

    let mut client = KeepAliveClient::connect(p1.addr);
    let response = client.ask(get(o, "gzip-chunked").as_bytes(), false).unwrap();
    assert_eq!(
        header(&response.head, "Transfer-Encoding"),
        Some("gzip, chunked"),
        "{response:?}"
    );
    assert_eq!(response.body_text(), "4\r\nGZIP\r\n0\r\n\r\n");
    let response = client.ask(get(o, "chunked-gzip").as_bytes(), false).unwrap();
    assert_eq!(
        header(&response.head, "Transfer-Encoding"),
        Some("chunked, gzip"),
        "{response:?}"
    );
    assert_eq!(response.body_text(), "RAWGZIP");
    assert!(response.closed);

    // Max-Forwards: 0 is answered by p1, 1 by p2; the origin never sees a TRACE or OPTIONS.
    let mut client = KeepAliveClient::connect(p1.addr);
    let trace =
        |n: u8| format!("TRACE http://{o}/t HTTP/1.1\r\nHost: {o}\r\nMax-Forwards: {n}\r\nCookie: secret\r\n\r\n");
    let at_p1 = client.ask(trace(0).as_bytes(), false).unwrap();
    assert_eq!(at_p1.status(), 200, "{at_p1:?}");
    assert_eq!(header(&at_p1.head, "Content-Type"), Some("message/http"));
    assert!(
        at_p1
            .body_text()
            .starts_with(&format!("TRACE http://{o}/t HTTP/1.1\r\n")),
        "{at_p1:?}"
    );
    assert!(
        !at_p1.body_text().contains("Via:") && !at_p1.body_text().contains("secret"),
        "{at_p1:?}"
    );
    let at_p2 = client.ask(trace(1).as_bytes(), false).unwrap();
    assert!(at_p2.body_text().contains("Via: 1.1 p1.test"), "{at_p2:?}");
    assert!(at_p2.body_text().contains("Max-Forwards: 0\r\n"), "{at_p2:?}");
    let options = format!("OPTIONS http://{o}/ HTTP/1.1\r\nHost: {o}\r\nMax-Forwards: 0\r\n\r\n");
    let at_p1 = client.ask(options.as_bytes(), false).unwrap();
    assert_eq!(at_p1.status(), 200, "{at_p1:?}");
    assert!(
        header(&at_p1.head, "Allow").is_some_and(|a| a.contains("GET")),
        "{at_p1:?}"
    );

    let seen = origin.requests();
    assert!(
        !seen
            .iter()
            .any(|r| r.head.starts_with("TRACE") || r.head.starts_with("OPTIONS")),
        "{seen:#?}"
    );
    // 6 leftover requests, 3 cut, 2 refused interim, 2 codings, then 3 answered at p1 (two
    // of them) or p2 (one).
    let p1_codes = codes(&p1, 16);
    let p2_codes = codes(&p2, 14);
    for hop_codes in [&p1_codes, &p2_codes] {
        for path in ["cut", "cut-chunked", "bad-chunk"] {
            let want = format!("TCP_MISS_ABORTED/200 http://{o}/{path}");
            assert!(hop_codes.contains(&want), "{want} in {hop_codes:#?}");
        }
        for path in ["switch", "continues"] {
            let want = format!("TCP_MISS/502 http://{o}/{path}");
            assert!(hop_codes.contains(&want), "{want} in {hop_codes:#?}");
        }
        let next = format!("TCP_MISS/200 http://{o}/next");
        assert_eq!(hop_codes.iter().filter(|c| **c == next).count(), 3, "{hop_codes:#?}");
    }
    assert!(
        p1_codes.contains(&format!("TCP_MISS/200 http://{o}/t")),
        "{p1_codes:#?}"
    );
    assert_eq!(
        p2_codes
            .iter()
            .filter(|c| c.ends_with(&format!("http://{o}/t")))
            .count(),
        1
    );
}

fn squid_or_skip(name: &str, addr: &str, rules: &str, dir: &std::path::Path) -> Option<Squid> {
    match Squid::start(name, addr.parse().unwrap(), rules, dir) {
        Ok(squid) => Some(squid),
        Err(SquidError::NotInstalled) => {
            skip("squid is not installed");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// hopproxy in front of Squid 5.7: the client of hopproxy sees the same guarantees.
#[test]
fn hostile_origin_behind_squid_behind_hopproxy() {
    let dir = tempfile::tempdir().unwrap();
    let origin = hostile_origin("127.0.73.20:0");
    let Some(squid) = squid_or_skip("p2", "127.0.73.12:31280", "http_access allow all", dir.path()) else {
        return;
    };
    let p1 = hopproxy_hop(dir.path(), "p1", "127.0.73.11:31280", &parent_rules(squid.addr));
    leftovers_never_answer_the_next_request(p1.addr, &origin, false);
    cut_bodies_close_the_client(p1.addr, origin.server.addr);
    let url = format!("http://{}/cut", origin.server.addr);
    p1.wait_for_match(&url, |l| l.url == url && l.code == "TCP_MISS_ABORTED/200");
}

/// Squid 5.7 in front of hopproxy: hopproxy's guarantees hold for Squid as its client.
#[test]
fn hostile_origin_behind_hopproxy_behind_squid() {
    let dir = tempfile::tempdir().unwrap();
    let origin = hostile_origin("127.0.74.20:0");
    let p2 = hopproxy_hop(dir.path(), "p2", "127.0.74.12:31280", "http_access allow all");
    let Some(squid) = squid_or_skip("p1", "127.0.74.11:31280", &parent_rules(p2.addr), dir.path()) else {
        return;
    };
    leftovers_never_answer_the_next_request(squid.addr, &origin, true);
    cut_bodies_close_the_client(squid.addr, origin.server.addr);
    for path in ["cut", "cut-chunked", "bad-chunk"] {
        let url = format!("http://{}/{path}", origin.server.addr);
        p2.wait_for_match(&url, |l| l.url == url && l.code == "TCP_MISS_ABORTED/200");
    }
}
