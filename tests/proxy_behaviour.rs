//! Behaviour of one or two hopproxy processes beyond the seed's happy path: failover, parents
//! that answer errors, IPv6, malformed input, limits, timeouts and graceful shutdown.
//! Each test owns a distinct 127.0.N.0/24 block so tests run in parallel.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::black_hole::Doorway;
use common::{Hop, curl, exchange, header, hop_config, parse_log_line};

/// In-request failover: the first parent is up when proxy 1 starts (its start-up probe is
/// accepted) and closed afterwards, so each request tries it, is refused, and goes on to the
/// second parent within the same request. The test waits for the probe itself: a parent
/// killed before the probe ran would be marked down at start-up instead, and the requests
/// would never try it.
#[test]
fn second_parent_carries_the_tunnel_when_the_first_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("127.0.1.20:0".parse().unwrap());
    let p2 = Hop::start(
        "p2",
        dir.path(),
        "127.0.1.12:31280".parse().unwrap(),
        &hop_config(dir.path(), "p2", "127.0.1.12:31280", "http_access allow all"),
    );
    let first = Doorway::bind("127.0.1.13:0".parse().unwrap());
    let rules = format!(
        "http_access allow all\ncache_peer 127.0.1.13 parent {} 0 no-query default\n\
         cache_peer 127.0.1.12 parent 31280 0 no-query\nnever_direct allow all",
        first.addr.port()
    );
    let p1 = Hop::start(
        "p1",
        dir.path(),
        "127.0.1.11:31280".parse().unwrap(),
        &hop_config(dir.path(), "p1", "127.0.1.11:31280", &rules),
    );
    assert!(
        first.accept_one(Duration::from_secs(10)),
        "p1 never probed its first parent\n{}",
        p1.stderr_text()
    );
    // Closed only now: proxy 1's probe found both parents up.
    drop(first);
    for round in 0..3 {
        let reply = exchange(
            "127.0.1.11:31280",
            format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", echo.addr).as_bytes(),
        );
        assert!(
            reply.starts_with("HTTP/1.1 200 Connection established\r\n\r\n"),
            "round {round}: {reply}"
        );
    }
    for line in p1.wait_for_lines(3) {
        let l = parse_log_line(&line);
        // Three refusals are below the limit that marks a parent down (10): every request
        // tried .13 first and was carried by the second parent (ANY_OLD_PARENT).
        assert_eq!(
            (l.code.as_str(), l.hierarchy.as_str()),
            ("TCP_TUNNEL/200", "ANY_OLD_PARENT/127.0.1.12"),
            "{line}"
        );
    }
    assert_eq!(p2.wait_for_lines(3).len(), 3);
}

/// Squid 5.7 counts a parent's 403 as a failure and declares it dead after ten (docs/squid-behaviour.md F9);
/// hopproxy does not. A second parent that would let everything through is configured, so a
/// 403 counted as a failure shows either as failover (a 200 from the second parent) or, after
/// ten, as the first parent marked down (the twelfth request carried by the second).
#[test]
fn a_parent_that_answers_403_is_never_declared_dead() {
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("127.0.2.20:0".parse().unwrap());
    let hosts = common::write_hosts(
        dir.path(),
        &[
            ("allowed.test", "127.0.2.20".parse().unwrap()),
            ("denied.test", "127.0.2.20".parse().unwrap()),
        ],
    );
    let p2_rules = format!(
        "hosts_file {}\nacl bad dstdomain denied.test\nhttp_access deny bad\nhttp_access allow all",
        hosts.display()
    );
    let p2 = Hop::start(
        "p2",
        dir.path(),
        "127.0.2.12:31280".parse().unwrap(),
        &hop_config(dir.path(), "p2", "127.0.2.12:31280", &p2_rules),
    );
    let p3_rules = format!("hosts_file {}\nhttp_access allow all", hosts.display());
    let p3 = Hop::start(
        "p3",
        dir.path(),
        "127.0.2.13:31280".parse().unwrap(),
        &hop_config(dir.path(), "p3", "127.0.2.13:31280", &p3_rules),
    );
    let p1_rules = "http_access allow all\ncache_peer 127.0.2.12 parent 31280 0 no-query default\n\
                    cache_peer 127.0.2.13 parent 31280 0 no-query\nnever_direct allow all";
    let p1 = Hop::start(
        "p1",
        dir.path(),
        "127.0.2.11:31280".parse().unwrap(),
        &hop_config(dir.path(), "p1", "127.0.2.11:31280", p1_rules),
    );
    let port = echo.addr.port();
    for i in 0..11 {
        let reply = exchange(
            "127.0.2.11:31280",
            format!("CONNECT denied.test:{port} HTTP/1.1\r\n\r\n").as_bytes(),
        );
        assert!(reply.starts_with("HTTP/1.1 403 Forbidden\r\n"), "request {i}: {reply}");
        // The parent's own Proxy-Status comes first, then proxy 1's entry naming what it received.
        let status = header(&reply, "Proxy-Status").unwrap();
        assert!(status.starts_with("p2.test; error=http_request_denied"), "{status}");
        assert!(
            status.contains(", p1.test; received-status=403; next-hop=\"127.0.2.12:31280\""),
            "{status}"
        );
        assert!(
            reply.contains("hopproxy at p2.test: http_request_denied"),
            "the parent's body is relayed: {reply}"
        );
    }
    let reply = exchange(
        "127.0.2.11:31280",
        format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert!(reply.starts_with("HTTP/1.1 200 Connection established\r\n"), "{reply}");
    let lines = p1.wait_for_lines(12);
    for line in &lines[..11] {
        let l = parse_log_line(line);
        assert_eq!(
            (l.code.as_str(), l.hierarchy.as_str()),
            ("TCP_TUNNEL/403", "FIRSTUP_PARENT/127.0.2.12")
        );
    }
    let last = parse_log_line(&lines[11]);
    assert_eq!(
        (last.code.as_str(), last.hierarchy.as_str()),
        ("TCP_TUNNEL/200", "FIRSTUP_PARENT/127.0.2.12")
    );
    assert_eq!(p2.wait_for_lines(12).len(), 12);
    assert!(
        p3.log_lines().is_empty(),
        "the second parent was never used: {:?}",
        p3.log_lines()
    );
    let stderr = p1.stderr_text();
    assert!(!stderr.contains("marked down"), "{stderr}");
}

#[test]
fn ipv6_listener_target_acl_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("[::1]:0".parse().unwrap());
    let rules = "acl v6clients src ::1/128\nacl v6dst dst ::1\nhttp_access allow v6clients v6dst\nhttp_access deny all";
    let listen = "[::1]:0";
    let port = hopproxy::lab::process::free_port("::1".parse().unwrap()).unwrap();
    let listen_at = listen.replace(":0", &format!(":{port}"));
    let hop = Hop::start(
        "v6",
        dir.path(),
        listen_at.parse().unwrap(),
        &hop_config(dir.path(), "v6", &listen_at, rules),
    );
    let reply = exchange(
        &listen_at,
        format!(
            "CONNECT [::1]:{0} HTTP/1.1\r\nHost: [::1]:{0}\r\n\r\nping",
            echo.addr.port()
        )
        .as_bytes(),
    );
    assert!(
        reply.starts_with("HTTP/1.1 200 Connection established\r\n\r\nping"),
        "{reply}"
    );
    let l = parse_log_line(&hop.wait_for_lines(1)[0]);
    assert_eq!(
        (l.client.as_str(), l.url, l.hierarchy),
        (
            "::1",
            format!("[::1]:{}", echo.addr.port()),
            "HIER_DIRECT/::1".to_string()
        )
    );
}

#[test]
fn malformed_requests_get_the_right_status_and_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = "http_access allow all\nrequest_header_max_size 8 KB";
    let hop = Hop::start(
        "m",
        dir.path(),
        "127.0.3.11:31280".parse().unwrap(),
        &hop_config(dir.path(), "m", "127.0.3.11:31280", rules),
    );
    let big = "x".repeat(10_000);
    // More fields than the parser takes (128), in well under 8 KB.
    let many: String = (0..130).map(|i| format!("X{i}: v\r\n")).collect();
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), "HTTP/1.1 400 Bad Request", "NONE_NONE/400"),
        (
            b"CONNECT example.invalid:0 HTTP/1.1\r\n\r\n".to_vec(),
            "HTTP/1.1 400 Bad Request",
            "NONE_NONE/400",
        ),
        (
            b"CONNECT user@example.invalid:443 HTTP/1.1\r\n\r\n".to_vec(),
            "HTTP/1.1 400 Bad Request",
            "NONE_NONE/400",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "HTTP/1.1 400 Bad Request",
            "NONE_NONE/400",
        ),
        (
            format!("GET http://a.invalid/ HTTP/1.1\r\nX-Big: {big}\r\n\r\n").into_bytes(),
            "HTTP/1.1 431 Request Header Fields Too Large",
            "NONE_NONE/431",
        ),
        (
            format!("GET http://a.invalid/ HTTP/1.1\r\n{many}\r\n").into_bytes(),
            "HTTP/1.1 431 Request Header Fields Too Large",
            "NONE_NONE/431",
        ),
        (
            b"CONNECT a.invalid:443 HTTP/9.9\r\n\r\n".to_vec(),
            "HTTP/1.1 505 HTTP Version Not Supported",
            "NONE_NONE/505",
        ),
        (
            b"POST http://a.invalid/ HTTP/1.1\r\nHost: a.invalid\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 400 Bad Request",
            "NONE_NONE/400",
        ),
        (
            b"GET http://a.invalid/ HTTP/1.1\r\nHost: b.test\r\n\r\n".to_vec(),
            "HTTP/1.1 400 Bad Request",
            "NONE_NONE/400",
        ),
    ];
    for (request, status_line, _) in &cases {
        let reply = exchange("127.0.3.11:31280", request);
        assert!(
            reply.starts_with(&format!("{status_line}\r\n")),
            "{:?} → {reply}",
            String::from_utf8_lossy(&request[..request.len().min(60)])
        );
        let status = header(&reply, "Proxy-Status").unwrap();
        assert!(status.starts_with("m.test; error=http_request_error"), "{status}");
        assert_eq!(header(&reply, "Connection"), Some("close"));
    }
    let lines = hop.wait_for_lines(cases.len());
    for ((_, _, code), line) in cases.iter().zip(&lines) {
        assert_eq!(parse_log_line(line).code, *code, "{line}");
    }
    assert!(lines[0].contains(" GARBAGE error:invalid-request "), "{}", lines[0]);
    assert!(lines[4].contains(" error:request-too-large "), "{}", lines[4]);
}

#[test]
fn slow_heads_are_cut_off_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let rules = "http_access allow all\nrequest_start_timeout 1 second";
    let hop = Hop::start(
        "slow",
        dir.path(),
        "127.0.4.11:31280".parse().unwrap(),
        &hop_config(dir.path(), "slow", "127.0.4.11:31280", rules),
    );
    let mut stream = TcpStream::connect("127.0.4.11:31280").unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(b"CONNECT a.invalid:443 HTT").unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without a reply");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "closed by the head timeout, not the test's"
    );
    let l = parse_log_line(&hop.wait_for_lines(1)[0]);
    assert_eq!(
        (l.code.as_str(), l.url.as_str()),
        ("NONE_NONE/000", "error:transaction-end-before-headers")
    );
}

#[test]
fn connections_over_the_cap_get_503_and_the_rest_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("127.0.5.20:0".parse().unwrap());
    let rules = "http_access allow all\nmax_client_connections 3";
    let hop = Hop::start(
        "cap",
        dir.path(),
        "127.0.5.11:31280".parse().unwrap(),
        &hop_config(dir.path(), "cap", "127.0.5.11:31280", rules),
    );
    // Hop::start makes no probe connection, so no slot is taken before these. The proxy
    // accepts in arrival order and counts a connection as it accepts it: the three held
    // connections hold their slots before the fourth is looked at.
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect("127.0.5.11:31280").unwrap())
        .collect();
    let reply = exchange("127.0.5.11:31280", b"CONNECT a.invalid:443 HTTP/1.1\r\n\r\n");
    assert!(
        reply.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{reply}\n{}",
        hop.stderr_text()
    );
    assert!(
        header(&reply, "Proxy-Status")
            .unwrap()
            .starts_with("cap.test; error=connection_limit_reached")
    );
    drop(held);
    // The slots come free once the proxy has seen the held connections close: wait (bounded)
    // for a tunnel to be accepted again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let reply = exchange(
            "127.0.5.11:31280",
            format!("CONNECT {} HTTP/1.1\r\n\r\n", echo.addr).as_bytes(),
        );
        if !reply.starts_with("HTTP/1.1 503 ") || Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(reply.starts_with("HTTP/1.1 200 Connection established\r\n"), "{reply}");
    // The tunnel is logged when it closes, after any 503s of the retries above.
    let lines = hop.wait_for_match("the tunnel", |l| l.code == "TCP_TUNNEL/200");
    assert!(lines.iter().any(|l| l.code == "NONE_NONE/503"), "{lines:#?}");
}

/// SIGTERM stops accepting at once, lets an open tunnel finish, then exits 0 with its line logged.
#[test]
fn sigterm_lets_open_tunnels_finish() {
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("127.0.6.20:0".parse().unwrap());
    let mut hop = Hop::start(
        "term",
        dir.path(),
        "127.0.6.11:31280".parse().unwrap(),
        &hop_config(dir.path(), "term", "127.0.6.11:31280", "http_access allow all"),
    );
    let mut tunnel = TcpStream::connect("127.0.6.11:31280").unwrap();
    tunnel.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tunnel
        .write_all(format!("CONNECT {} HTTP/1.1\r\n\r\n", echo.addr).as_bytes())
        .unwrap();
    let mut head = [0u8; 39];
    tunnel.read_exact(&mut head).unwrap();
    hop.signal("TERM");
    hop.wait_for_stderr("stopping: no new connections");
    // The listener closes right after that line: wait (bounded) for connections to be refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&"127.0.6.11:31280".parse().unwrap(), Duration::from_secs(1)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The open tunnel still works during shutdown_lifetime.
    tunnel.write_all(b"still here").unwrap();
    let mut back = [0u8; 10];
    tunnel.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still here");
    tunnel.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = tunnel.read_to_end(&mut rest);
    let status = hop
        .terminate(Duration::from_secs(10))
        .expect("exits once the tunnel closed");
    assert!(status.success(), "{status:?}");
    let l = parse_log_line(&hop.wait_for_lines(1)[0]);
    assert_eq!((l.code.as_str(), l.bytes), ("TCP_TUNNEL/200", 49));
}

#[test]
fn never_direct_without_a_usable_parent_is_503() {
    let dir = tempfile::tempdir().unwrap();
    let hop = Hop::start(
        "nd",
        dir.path(),
        "127.0.7.11:31280".parse().unwrap(),
        &hop_config(
            dir.path(),
            "nd",
            "127.0.7.11:31280",
            "http_access allow all\nnever_direct allow all",
        ),
    );
    let result = curl(&[
        "-x",
        "http://127.0.7.11:31280",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "http://a.invalid/",
    ]);
    assert!(
        result.stdout.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{}",
        result.stdout
    );
    assert!(
        header(&result.stdout, "Proxy-Status")
            .unwrap()
            .starts_with("nd.test; error=destination_unavailable")
    );
    let l = parse_log_line(&hop.wait_for_lines(1)[0]);
    assert_eq!((l.code.as_str(), l.hierarchy.as_str()), ("TCP_MISS/503", "HIER_NONE/-"));
}

#[test]
fn bad_config_exits_1_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.conf");
    std::fs::write(&path, "http_port 127.0.8.11:31280\nhttp_access allow nosuchacl\n").unwrap();
    let out = std::process::Command::new(common::hopproxy_bin())
        .args(["run", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}:2: error:", path.display())), "{stderr}");
}
