//! `peer_connect_timeout` at run time: a parent that was alive when the proxy started (its
//! start-up probe was accepted) and then stops answering SYNs is left after
//! `peer_connect_timeout` for the next parent, in the same request, for GET and CONNECT; when
//! the next parent fails too, the timed-out attempt is a `Proxy-Status` member of the answer.
//!
//! The default `peer_connect_timeout` is 30 s and `common::exchange` waits at most 10 s, so an
//! answer at all means the configured 1 s applied. Loopback block 127.0.88.0/24.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::black_hole::{BlackHole, Doorway};
use common::origin::{echo_origin, echo_tcp};
use common::{Hop, exchange, header, hop_config, parse_log_line};

/// p1's rules: `first` then `second` as parents, never direct, 1 s to connect to a parent.
fn two_parents(first: SocketAddr, second: SocketAddr) -> String {
    format!(
        "cache_peer {} parent {} 0 no-query name=hole\ncache_peer {} parent {} 0 no-query name=next\n\
         never_direct allow all\nhttp_access allow all\npeer_connect_timeout 1 second",
        first.ip(),
        first.port(),
        second.ip(),
        second.port()
    )
}

/// Starts p1 with `hole` as its first parent, lets p1's start-up probe find `hole` alive, then
/// black-holes it: only an attempt made inside a request can find out it is gone.
fn start_p1(dir: &std::path::Path, listen: &str, hole: Doorway, second: SocketAddr) -> (Hop, BlackHole) {
    let p1 = Hop::start(
        "p1",
        dir,
        listen.parse().unwrap(),
        &hop_config(dir, "p1", listen, &two_parents(hole.addr, second)),
    );
    assert!(
        hole.accept_one(Duration::from_secs(10)),
        "p1 never probed its first parent {}\n{}",
        hole.addr,
        p1.stderr_text()
    );
    (p1, hole.black_hole())
}

#[test]
fn a_black_holed_parent_is_left_at_peer_connect_timeout_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let origin = echo_origin("127.0.88.20:0".parse().unwrap());
    let echo = echo_tcp("127.0.88.21:0".parse().unwrap());
    let p2 = Hop::start(
        "p2",
        dir.path(),
        "127.0.88.12:31280".parse().unwrap(),
        &hop_config(dir.path(), "p2", "127.0.88.12:31280", "http_access allow all"),
    );
    let doorway = Doorway::bind("127.0.88.30:0".parse().unwrap());
    let (p1, hole) = start_p1(dir.path(), "127.0.88.11:31280", doorway, p2.addr);

    let get = exchange(
        &p1.addr.to_string(),
        format!("GET http://{}/page HTTP/1.1\r\nConnection: close\r\n\r\n", origin.addr).as_bytes(),
    );
    assert!(get.starts_with("HTTP/1.1 200 OK\r\n"), "{get}\n{}", p1.stderr_text());
    assert!(get.contains("GET /page HTTP/1.1\r\n"), "the origin's echo: {get}");

    let connect = exchange(
        &p1.addr.to_string(),
        format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\nping", echo.addr).as_bytes(),
    );
    assert_eq!(
        connect,
        "HTTP/1.1 200 Connection established\r\n\r\nping",
        "{}",
        p1.stderr_text()
    );

    let lines: Vec<common::LogLine> = p1.wait_for_lines(2).iter().map(|l| parse_log_line(l)).collect();
    let through_p2 = format!("/{}", p2.addr.ip());
    common::the_line(&lines, "the GET through p2", |l| {
        l.method == "GET" && l.code == "TCP_MISS/200" && l.hierarchy.ends_with(&through_p2)
    });
    common::the_line(&lines, "the CONNECT through p2", |l| {
        l.method == "CONNECT" && l.code == "TCP_TUNNEL/200" && l.hierarchy.ends_with(&through_p2)
    });
    assert!(
        lines.iter().all(|l| !l.hierarchy.contains(&hole.addr.ip().to_string())),
        "no request was logged through the black hole: {lines:#?}"
    );
    // p2 really carried both.
    p2.wait_for_lines(2);
}

#[test]
fn a_timed_out_parent_attempt_is_a_proxy_status_member() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: the second parent refuses.
    let refusing = std::net::TcpListener::bind("127.0.88.31:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let doorway = Doorway::bind("127.0.88.32:0".parse().unwrap());
    let (p1, hole) = start_p1(dir.path(), "127.0.88.13:31280", doorway, refusing);

    let reply = exchange(
        &p1.addr.to_string(),
        b"GET http://site.invalid/ HTTP/1.1\r\nHost: site.invalid\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 504 "), "{reply}\n{}", p1.stderr_text());
    let status = header(&reply, "Proxy-Status").unwrap_or_default();
    let members: Vec<&str> = status.split(", p1.test;").collect();
    assert_eq!(members.len(), 2, "one member per attempt: {status}");
    assert!(members[0].starts_with("p1.test; error=connection_timeout"), "{status}");
    assert!(members[0].contains(&format!("next-hop=\"{}\"", hole.addr)), "{status}");
    assert!(members[1].contains("error=connection_refused"), "{status}");
    assert!(members[1].contains(&refusing.to_string()), "{status}");
    let lines = p1.wait_for_lines(1);
    assert_eq!(parse_log_line(&lines[0]).code, "TCP_MISS/504", "{lines:#?}");
}

/// A parent may itself spend its own connect timeout reaching the origin, so its answer to a
/// CONNECT is awaited for `connect_timeout` + `peer_connect_timeout` (at most 30 s of the
/// latter): a parent that answers after 1.5 s, with `connect_timeout 1 second`, is not given
/// up on. Its answer head of several KiB (a long header) is accepted too.
#[test]
fn a_parent_slower_than_connect_timeout_with_a_long_answer_head_carries_the_tunnel() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let parent = std::net::TcpListener::bind("127.0.88.33:0").unwrap();
    let parent_addr = parent.local_addr().unwrap();
    let rules = format!(
        "cache_peer {} parent {} 0 no-query name=slow\nnever_direct allow all\nhttp_access allow all\n\
         connect_timeout 1 second\npeer_connect_timeout 2 seconds",
        parent_addr.ip(),
        parent_addr.port()
    );
    let p1 = Hop::start(
        "p1",
        dir.path(),
        "127.0.88.14:31280".parse().unwrap(),
        &hop_config(dir.path(), "p1", "127.0.88.14:31280", &rules),
    );
    let serving = std::thread::spawn(move || {
        // The start-up probe connects and sends nothing; the CONNECT comes on the next one.
        for _ in 0..4 {
            let (mut conn, _) = parent.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let head = common::read_head(&mut conn);
            if !head.starts_with(b"CONNECT ") {
                continue;
            }
            std::thread::sleep(Duration::from_millis(1500));
            let pad = "p".repeat(4000);
            conn.write_all(format!("HTTP/1.1 200 Connection established\r\nX-Pad: {pad}\r\n\r\n").as_bytes())
                .unwrap();
            let mut inside = [0u8; 4];
            conn.read_exact(&mut inside).unwrap();
            conn.write_all(&inside).unwrap();
            return String::from_utf8_lossy(&head).into_owned();
        }
        panic!("no CONNECT reached the parent");
    });
    let mut client = std::net::TcpStream::connect(p1.addr).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    client
        .write_all(b"CONNECT far.invalid:443 HTTP/1.1\r\nHost: far.invalid:443\r\n\r\nping")
        .unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    while !reply.ends_with(b"ping") {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.1 200 Connection established\r\n") && reply.ends_with("\r\n\r\nping"),
        "{reply}\n{}",
        p1.stderr_text()
    );
    assert!(serving.join().unwrap().starts_with("CONNECT far.invalid:443 "));
    drop(client);
    let line = parse_log_line(&p1.wait_for_lines(1)[0]);
    assert_eq!(
        (line.code.as_str(), line.hierarchy.as_str()),
        (
            "TCP_TUNNEL/200",
            format!("FIRSTUP_PARENT/{}", parent_addr.ip()).as_str()
        )
    );
}
