//! How many attempts one plain-HTTP request may make, at run time: `connect_retries` dials a
//! refusing destination once more per retry; `forward_timeout` stops new attempts once it has
//! passed (a live next parent is then never asked, for plain HTTP and tunnels alike) and caps
//! each connect at the time left of it, as in Squid; and when the one try `forward_max_tries`
//! allows went to a kept connection that broke, the answer says no attempt was left.
//! Loopback block 127.0.22.0/24.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::black_hole::Doorway;
use common::origin::{Act, ok, scripted};
use common::{Hop, KeepAliveClient, exchange, header, hop_config, parse_log_line};

/// A port on `ip` that nothing listens on: connecting is refused.
fn refusing(ip: &str) -> SocketAddr {
    std::net::TcpListener::bind(format!("{ip}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The members of a `Proxy-Status` value written by `proxy` (each begins `proxy;`).
fn members<'a>(status: &'a str, proxy: &str) -> Vec<&'a str> {
    let separator = format!(", {proxy};");
    let mut members: Vec<&str> = status.split(separator.as_str()).collect();
    if status.is_empty() {
        members.clear();
    }
    members
}

#[test]
fn connect_retries_dials_a_refusing_destination_once_more_per_retry() {
    let dir = tempfile::tempdir().unwrap();
    let closed = refusing("127.0.22.20");
    for (index, retries) in [0u32, 2].into_iter().enumerate() {
        let name = format!("r{retries}");
        let listen = format!("127.0.22.{}:31280", 10 + index);
        let hop = Hop::start(
            &name,
            dir.path(),
            listen.parse().unwrap(),
            &hop_config(
                dir.path(),
                &name,
                &listen,
                &format!("http_access allow all\nconnect_retries {retries}"),
            ),
        );
        let reply = exchange(
            &listen,
            format!("GET http://{closed}/ HTTP/1.1\r\nHost: {closed}\r\n\r\n").as_bytes(),
        );
        assert!(reply.starts_with("HTTP/1.1 503 "), "{reply}\n{}", hop.stderr_text());
        let status = header(&reply, "Proxy-Status").unwrap_or_default();
        let seen = members(status, &format!("{name}.test"));
        assert_eq!(
            seen.len(),
            1 + retries as usize,
            "connect_retries {retries}: one member per connect: {status}"
        );
        for member in &seen {
            assert!(member.contains("error=connection_refused"), "{status}");
            assert!(member.contains(&closed.to_string()), "{status}");
        }
        let lines = hop.wait_for_lines(1);
        let line = parse_log_line(&lines[0]);
        assert_eq!(line.code, "TCP_MISS/503", "{lines:#?}");
        assert_eq!(line.hierarchy, "HIER_DIRECT/127.0.22.20", "{lines:#?}");
    }
}

#[test]
fn after_forward_timeout_no_new_attempt_starts_and_the_next_parent_is_never_asked() {
    let dir = tempfile::tempdir().unwrap();
    // The second parent is alive and would answer: only forward_timeout keeps it unasked.
    let next = scripted("127.0.22.31:0".parse().unwrap(), |_| Act::Reply(ok("from next")));
    let hole = Doorway::bind("127.0.22.30:0".parse().unwrap());
    let rules = format!(
        "cache_peer {} parent {} 0 no-query name=hole\ncache_peer {} parent {} 0 no-query name=next\n\
         never_direct allow all\nhttp_access allow all\npeer_connect_timeout 30 seconds\nforward_timeout 1 second",
        hole.addr.ip(),
        hole.addr.port(),
        next.server.addr.ip(),
        next.server.addr.port()
    );
    let listen = "127.0.22.12:31280";
    let hop = Hop::start(
        "ft",
        dir.path(),
        listen.parse().unwrap(),
        &hop_config(dir.path(), "ft", listen, &rules),
    );
    // The start-up probe finds the first parent alive; then it stops answering SYNs.
    assert!(
        hole.accept_one(Duration::from_secs(10)),
        "the first parent was never probed\n{}",
        hop.stderr_text()
    );
    let hole = hole.black_hole();

    let requests: [(&[u8], &str, &str); 2] = [
        (
            b"GET http://site.invalid/ HTTP/1.1\r\nHost: site.invalid\r\n\r\n",
            "HTTP/1.1 504 ",
            "TCP_MISS/504",
        ),
        (
            b"CONNECT site.invalid:443 HTTP/1.1\r\nHost: site.invalid:443\r\n\r\n",
            "HTTP/1.1 504 ",
            "NONE_NONE/504",
        ),
    ];
    for (n, (request, status_line, code)) in requests.into_iter().enumerate() {
        let started = Instant::now();
        let reply = exchange(listen, request);
        // The black-holed connect waits what is left of forward_timeout (1 s), not
        // peer_connect_timeout (30 s): the bound is far from both, so it is no timing claim.
        assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
        assert!(reply.starts_with(status_line), "{reply}\n{}", hop.stderr_text());
        let status = header(&reply, "Proxy-Status").unwrap_or_default();
        let seen = members(status, "ft.test");
        assert_eq!(seen.len(), 1, "only the first parent was tried: {status}");
        assert!(seen[0].starts_with("ft.test; error=connection_timeout"), "{status}");
        assert!(seen[0].contains(&format!("next-hop=\"{}\"", hole.addr)), "{status}");
        // The details name the hop, its address and what went wrong.
        let details = format!(
            "details=\"cannot connect to parent hole ({}): connection timed out\"",
            hole.addr
        );
        assert!(seen[0].contains(&details), "{status}");
        let lines = hop.wait_for_lines(n + 1);
        let line = parse_log_line(&lines[n]);
        assert_eq!(line.code, code, "{lines:#?}");
        // The request is logged, so its attempts are over: the live parent never got it.
        assert!(next.requests().is_empty(), "{:#?}", next.requests());
    }
}

#[test]
fn a_kept_connection_broken_on_the_last_allowed_try_leaves_no_attempt() {
    let dir = tempfile::tempdir().unwrap();
    // The origin answers the first request and drops the connection on reading the second:
    // the kept connection was quiet when it was chosen, and breaks on reuse.
    let origin = scripted("127.0.22.40:0".parse().unwrap(), |r| {
        if r.index == 0 {
            Act::Reply(ok("first"))
        } else {
            Act::Close
        }
    });
    let listen = "127.0.22.13:31280";
    let hop = Hop::start(
        "mt",
        dir.path(),
        listen.parse().unwrap(),
        &hop_config(dir.path(), "mt", listen, "http_access allow all\nforward_max_tries 1"),
    );

    let url = format!("http://{}/page", origin.server.addr);
    let get = format!("GET {url} HTTP/1.1\r\nHost: {}\r\n\r\n", origin.server.addr);
    let mut client = KeepAliveClient::connect(listen.parse().unwrap());
    let first = client
        .ask(get.as_bytes(), false)
        .expect("an answer to the first request");
    assert_eq!(first.status(), 200, "{}", first.head);
    assert_eq!(first.body_text(), "first");
    let second = client
        .ask(get.as_bytes(), false)
        .expect("an answer to the second request");
    assert!(
        second.head.starts_with("HTTP/1.1 504 "),
        "{}{}",
        second.head,
        second.body_text()
    );
    let status = header(&second.head, "Proxy-Status").unwrap_or_default();
    assert!(status.starts_with("mt.test; error=connection_timeout"), "{status}");
    assert!(status.contains("no attempt left within forward_max_tries"), "{status}");
    assert!(client.is_closed(), "a failure closes the client connection");

    // Both requests went on the one kept connection; no fresh one was opened for the second.
    let received = origin.wait_for_requests(2);
    assert_eq!(received.len(), 2, "{received:#?}");
    assert!(received.iter().all(|r| r.connection == 0), "{received:#?}");

    let lines: Vec<_> = hop.wait_for_lines(2).iter().map(|l| parse_log_line(l)).collect();
    common::the_line(&lines, "the first GET", |l| l.code == "TCP_MISS/200");
    common::the_line(&lines, "the GET no attempt was left for", |l| {
        l.code == "TCP_MISS/504" && l.hierarchy == "HIER_NONE/-"
    });
}
