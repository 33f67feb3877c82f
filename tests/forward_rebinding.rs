//! A kept origin connection against a name that moved: one client connection asks for the
//! same name twice, and between the two requests the local DNS stub changes its answer. The
//! second request must go where this request's own lookup (the one its `dst` ACL judged)
//! points, never ride the connection kept from the first request to the old address; when the
//! name no longer resolves, the answer is `dns_error` and nothing rides the kept connection.
//! A move to an address the `dst` ACL denies is refused before any connection is chosen (the
//! third test), so only a move between allowed addresses tests the reuse check itself.
//! Loopback block 127.0.21.0/24.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use common::origin::{Act, Scripted, ok, recorder, scripted};
use common::{Hop, KeepAliveClient, header, hop_config, parse_log_line};
use hopproxy::lab::dns_stub::DnsStub;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 21, last)
}

fn at(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(ip(last).into(), port)
}

/// An origin answering every request with `name`, keep-alive.
fn origin(addr: SocketAddr, name: &'static str) -> Scripted {
    scripted(addr, move |_| Act::Reply(ok(name)))
}

/// A proxy asking only `stub` for names. The `dst` ACL makes every request resolved once for
/// the policy check (that resolution is what the dial must use); it fences off an address
/// no test name points at, so a failed lookup is still allowed and reaches the dial.
fn proxy(dir: &std::path::Path, listen: SocketAddr, stub: SocketAddr) -> Hop {
    let rules = format!(
        "hosts_file none\ndns_nameservers {}\nacl fenced dst 127.0.21.99/32\nhttp_access deny fenced\nhttp_access allow all",
        stub.ip()
    );
    Hop::start(
        "proxy",
        dir,
        listen,
        &hop_config(dir, "proxy", &listen.to_string(), &rules),
    )
}

fn get(url: &str) -> Vec<u8> {
    format!("GET {url} HTTP/1.1\r\nHost: {}\r\n\r\n", url.split('/').nth(2).unwrap()).into_bytes()
}

#[test]
fn a_kept_connection_never_carries_a_request_whose_name_now_points_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let stub_addr = at(53, 53);
    let stub = DnsStub::start(stub_addr);
    let old = origin(at(20, 0), "old");
    let port = old.server.addr.port();
    let new = origin(at(21, port), "new");
    // TTL 0, and the answer alternates: .20 for the first lookup, .21 for the second.
    stub.set_a("moving.stub.test", &[ip(20), ip(21)], 0);
    let listen = at(10, 31280);
    let hop = proxy(dir.path(), listen, stub_addr);

    let url = format!("http://moving.stub.test:{port}/page");
    let mut client = KeepAliveClient::connect(listen);
    let first = client.ask(&get(&url), false).expect("an answer to the first request");
    assert_eq!(first.status(), 200, "{}", first.head);
    assert_eq!(first.body_text(), "old");
    let second = client.ask(&get(&url), false).expect("an answer to the second request");
    assert_eq!(second.status(), 200, "{}", second.head);
    assert_eq!(
        second.body_text(),
        "new",
        "the second request rode the connection kept to the old address"
    );
    assert_eq!(stub.a_queries("moving.stub.test"), 2, "one lookup per request");

    let to_old = old.requests();
    assert_eq!(
        to_old.len(),
        1,
        "the old address got only the first request: {to_old:#?}"
    );
    let to_new = new.wait_for_requests(1);
    assert_eq!(to_new.len(), 1, "{to_new:#?}");
    assert!(
        to_new[0].head.starts_with("GET /page HTTP/1.1\r\n"),
        "{}",
        to_new[0].head
    );

    let lines: Vec<String> = hop
        .wait_for_lines(2)
        .iter()
        .map(|l| {
            let line = parse_log_line(l);
            format!("{} {} {}", line.method, line.code, line.hierarchy)
        })
        .collect();
    assert_eq!(
        lines,
        [
            "GET TCP_MISS/200 HIER_DIRECT/127.0.21.20",
            "GET TCP_MISS/200 HIER_DIRECT/127.0.21.21",
        ]
    );
}

#[test]
fn a_name_that_stops_resolving_is_dns_error_not_the_kept_connection() {
    let dir = tempfile::tempdir().unwrap();
    let stub_addr = at(54, 53);
    let stub = DnsStub::start(stub_addr);
    let old = origin(at(30, 0), "old");
    let port = old.server.addr.port();
    stub.set_a("vanishing.stub.test", &[ip(30)], 0);
    let listen = at(11, 31280);
    let hop = proxy(dir.path(), listen, stub_addr);

    let url = format!("http://vanishing.stub.test:{port}/page");
    let mut client = KeepAliveClient::connect(listen);
    let first = client.ask(&get(&url), false).expect("an answer to the first request");
    assert_eq!(first.status(), 200, "{}", first.head);
    assert_eq!(first.body_text(), "old");
    // From now on the name has no address (an empty answer).
    stub.set_a("vanishing.stub.test", &[], 0);
    let second = client.ask(&get(&url), false).expect("an answer to the second request");
    assert!(
        second.head.starts_with("HTTP/1.1 502 ") || second.head.starts_with("HTTP/1.1 503 "),
        "the second request was answered from the kept connection: {}{}",
        second.head,
        second.body_text()
    );
    let status = header(&second.head, "Proxy-Status").unwrap_or_default();
    assert!(status.starts_with("proxy.test; error=dns_error"), "{status}");
    assert!(client.is_closed(), "a failure closes the client connection");

    let to_old = old.requests();
    assert_eq!(
        to_old.len(),
        1,
        "only the first request reached the origin: {to_old:#?}"
    );

    let lines: Vec<_> = hop.wait_for_lines(2).iter().map(|l| parse_log_line(l)).collect();
    assert_eq!(lines[0].code, "TCP_MISS/200", "{lines:#?}");
    assert_eq!(lines[0].hierarchy, "HIER_DIRECT/127.0.21.30", "{lines:#?}");
    assert!(
        lines[1].code.ends_with("/502") || lines[1].code.ends_with("/503"),
        "{lines:#?}"
    );
    assert_eq!(lines[1].hierarchy, "HIER_NONE/-", "{lines:#?}");
}

#[test]
fn a_name_that_moves_to_a_denied_address_is_refused_and_the_kept_connection_unused() {
    let dir = tempfile::tempdir().unwrap();
    let stub_addr = at(55, 53);
    let stub = DnsStub::start(stub_addr);
    let old = origin(at(40, 0), "old");
    let port = old.server.addr.port();
    let fenced = recorder(at(99, port), b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    // The first lookup gives the allowed .40, the second the fenced .99.
    stub.set_a("fenced.stub.test", &[ip(40), ip(99)], 0);
    let listen = at(12, 31280);
    let hop = proxy(dir.path(), listen, stub_addr);

    let url = format!("http://fenced.stub.test:{port}/page");
    let mut client = KeepAliveClient::connect(listen);
    let first = client.ask(&get(&url), false).expect("an answer to the first request");
    assert_eq!(first.status(), 200, "{}", first.head);
    let second = client.ask(&get(&url), false).expect("an answer to the second request");
    assert!(
        second.head.starts_with("HTTP/1.1 403 "),
        "{}{}",
        second.head,
        second.body_text()
    );

    let lines: Vec<_> = hop.wait_for_lines(2).iter().map(|l| parse_log_line(l)).collect();
    assert_eq!(lines[1].code, "TCP_DENIED/403", "{lines:#?}");
    assert_eq!(lines[1].hierarchy, "HIER_NONE/-", "{lines:#?}");
    // The request is logged, so it is over: it reached neither address.
    assert_eq!(old.requests().len(), 1, "{:#?}", old.requests());
    assert!(fenced.received().is_empty(), "the denied address was dialed");
}
