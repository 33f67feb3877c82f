//! Keep-alive forwarding through two hopproxy hops: one client connection carries requests
//! of several methods, bodies over 16 KiB (by length and chunked), answers framed by length,
//! by chunks and by close, to different hosts; each request is logged once on each hop; and
//! bytes an origin sends between two responses never answer the next request.
//! Loopback block 127.0.71.0/24.

mod common;

use common::origin::{Act, ok, scripted};
use common::{Hop, KeepAliveClient, hop_config, parse_log_line};

#[test]
fn one_client_connection_many_requests_methods_bodies_and_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let plain = scripted("127.0.71.20:0".parse().unwrap(), |r| {
        let line = r.head.lines().next().unwrap_or("").to_string();
        let text = format!("{line} body={}", r.body.len());
        if line.starts_with("HEAD ") {
            let mut head = ok(&text);
            head.truncate(head.len() - text.len());
            Act::Reply(head)
        } else {
            Act::Reply(ok(&text))
        }
    });
    let chunked = scripted("127.0.71.21:0".parse().unwrap(), |_| {
        let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..5 {
            out.extend_from_slice(format!("{:x}\r\n{}\r\n", 4000, "c".repeat(4000)).as_bytes());
        }
        out.extend_from_slice(b"0\r\n\r\n");
        Act::Reply(out)
    });
    let until_close = scripted("127.0.71.22:0".parse().unwrap(), |_| {
        Act::ReplyClose(format!("HTTP/1.1 200 OK\r\n\r\n{}", "z".repeat(20_000)).into_bytes())
    });
    let p2 = Hop::start(
        "p2",
        dir.path(),
        "127.0.71.12:31280".parse().unwrap(),
        &hop_config(dir.path(), "p2", "127.0.71.12:31280", "http_access allow all"),
    );
    let p1 = Hop::start(
        "p1",
        dir.path(),
        "127.0.71.11:31280".parse().unwrap(),
        &hop_config(
            dir.path(),
            "p1",
            "127.0.71.11:31280",
            "cache_peer 127.0.71.12 parent 31280 0 no-query\nnever_direct allow all\nhttp_access allow all",
        ),
    );
    let a = plain.server.addr;
    let big = "b".repeat(20_000);
    let huge = "h".repeat(100_000);
    let chunked_body = format!("{:x}\r\n{big}\r\n{:x}\r\n{big}\r\n0\r\n\r\n", big.len(), big.len());
    let requests: Vec<(String, bool, u16, String)> = vec![
        (
            format!("GET http://{a}/one HTTP/1.1\r\nHost: {a}\r\n\r\n"),
            false,
            200,
            "GET /one HTTP/1.1 body=0".into(),
        ),
        (
            format!("HEAD http://{a}/two HTTP/1.1\r\nHost: {a}\r\n\r\n"),
            true,
            200,
            String::new(),
        ),
        (
            format!(
                "POST http://{a}/post HTTP/1.1\r\nHost: {a}\r\nContent-Length: {}\r\n\r\n{big}",
                big.len()
            ),
            false,
            200,
            "POST /post HTTP/1.1 body=20000".into(),
        ),
        (
            format!(
                "POST http://{a}/huge HTTP/1.1\r\nHost: {a}\r\nContent-Length: {}\r\n\r\n{huge}",
                huge.len()
            ),
            false,
            200,
            "POST /huge HTTP/1.1 body=100000".into(),
        ),
        (
            format!("PUT http://{a}/put HTTP/1.1\r\nHost: {a}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_body}"),
            false,
            200,
            "PUT /put HTTP/1.1 body=40000".into(),
        ),
        (
            format!("DELETE http://{a}/del HTTP/1.1\r\nHost: {a}\r\n\r\n"),
            false,
            200,
            "DELETE /del HTTP/1.1 body=0".into(),
        ),
        (
            format!(
                "GET http://{0}/chunks HTTP/1.1\r\nHost: {0}\r\n\r\n",
                chunked.server.addr
            ),
            false,
            200,
            String::new(),
        ),
        (
            format!("GET http://{a}/again HTTP/1.1\r\nHost: {a}\r\n\r\n"),
            false,
            200,
            "GET /again HTTP/1.1 body=0".into(),
        ),
        (
            format!(
                "GET http://{0}/close HTTP/1.1\r\nHost: {0}\r\n\r\n",
                until_close.server.addr
            ),
            false,
            200,
            "z".repeat(20_000),
        ),
    ];
    let mut client = KeepAliveClient::connect(p1.addr);
    for (i, (request, head_only, status, body)) in requests.iter().enumerate() {
        let response = client
            .ask(request.as_bytes(), *head_only)
            .unwrap_or_else(|| panic!("request {i}: connection closed"));
        assert_eq!(response.status(), *status, "request {i}: {}", response.head);
        if i == 6 {
            assert!(
                response.head.contains("Transfer-Encoding: chunked\r\n"),
                "{}",
                response.head
            );
            assert_eq!(
                response.body.len(),
                5 * ("fa0\r\n".len() + 4000 + 2) + "0\r\n\r\n".len(),
                "chunk framing relayed as is"
            );
        } else {
            assert_eq!(&response.body_text(), body, "request {i}");
        }
    }
    assert!(
        client.is_closed(),
        "a close-delimited answer ends the client connection"
    );
    for hop in [&p1, &p2] {
        let lines = hop.wait_for_lines(requests.len());
        assert_eq!(
            lines.len(),
            requests.len(),
            "one line per request on {}: {lines:#?}",
            hop.name
        );
        for line in &lines {
            let line = parse_log_line(line);
            assert_eq!(line.code, "TCP_MISS/200", "{line:?}");
            // The answer's media type as Squid logs it; the chunked and close-delimited
            // origins send none.
            let sent_none = line.url.ends_with("/chunks") || line.url.ends_with("/close");
            let expected = if sent_none { "-" } else { "text/plain" };
            assert_eq!(line.content_type, expected, "{line:?}");
        }
    }
    // The origin got every body whole.
    let got: Vec<usize> = plain.requests().iter().map(|r| r.body.len()).collect();
    assert_eq!(got, [0, 0, 20_000, 100_000, 40_000, 0, 0]);
}

/// Bytes a kept origin connection received (hex `rx_queue` of `/proc/net/tcp`) for the
/// connection from `local` to `remote`; `None` while no such connection is listed.
fn receive_queue(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> Option<u64> {
    let hex = |addr: std::net::SocketAddr| {
        let std::net::IpAddr::V4(ip) = addr.ip() else {
            unreachable!("the test uses IPv4")
        };
        format!("{:08X}:{:04X}", u32::from_le_bytes(ip.octets()), addr.port())
    };
    let (local, remote) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let queues = fields.get(4)?;
        (fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str()))
            .then(|| u64::from_str_radix(queues.split(':').nth(1)?, 16).ok())
            .flatten()
    })
}

/// Bytes an origin sends on a kept connection after its response ended (a pre-loaded fake
/// answer) never answer the next request: the proxy sees the connection is not quiet and
/// opens a fresh one. The origin is driven by hand so the stray bytes are known to sit in the
/// proxy's receive queue before the next request is sent.
#[test]
fn bytes_an_origin_sends_between_responses_never_answer_the_next_request() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let origin = std::net::TcpListener::bind("127.0.71.23:0").unwrap();
    let at = origin.local_addr().unwrap();
    let hop = Hop::start(
        "q",
        dir.path(),
        "127.0.71.13:31280".parse().unwrap(),
        &hop_config(dir.path(), "q", "127.0.71.13:31280", "http_access allow all"),
    );
    let mut client = KeepAliveClient::connect("127.0.71.13:31280".parse().unwrap());
    client.send(format!("GET http://{at}/first HTTP/1.1\r\nHost: {at}\r\n\r\n").as_bytes());
    let (mut kept, proxy_side) = origin.accept().unwrap();
    kept.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(kept.read(&mut byte).unwrap(), 1, "the first request arrives whole");
        head.push(byte[0]);
    }
    kept.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        .unwrap();
    let first = client.read_response(false).expect("the first answer");
    assert_eq!(first.body_text(), "first");

    // The response is over; now the origin pre-loads an answer nobody asked for.
    let stray = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!";
    kept.write_all(stray).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while receive_queue(proxy_side, at) != Some(stray.len() as u64) {
        assert!(
            std::time::Instant::now() < deadline,
            "the stray bytes never reached the proxy"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let fresh = std::thread::spawn(move || {
        let (mut conn, _) = origin.accept().unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let head = common::read_head(&mut conn);
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")
            .unwrap();
        head
    });
    let second = client
        .ask(
            format!("GET http://{at}/second HTTP/1.1\r\nHost: {at}\r\n\r\n").as_bytes(),
            false,
        )
        .expect("the second answer");
    assert_eq!(
        second.body_text(),
        "fresh",
        "the stray bytes answered the second request"
    );
    let head = String::from_utf8(fresh.join().unwrap()).unwrap();
    assert!(head.starts_with("GET /second HTTP/1.1\r\n"), "{head}");
    let lines = hop.wait_for_lines(2);
    assert!(
        lines.iter().all(|l| parse_log_line(l).code == "TCP_MISS/200"),
        "{lines:#?}"
    );
    drop(kept);
}

/// An answer whose end the method or status fixes (HEAD, 204, 304) rather than its own
/// framing never leaves its connection for the next request (a lenient hop behind could pass
/// stray bytes after the proxy looked), nor does one that said `Connection: close`; an
/// ordinary answer does. Each line logs every byte
/// the client received, and only the hostile test's stray bytes are reported on stderr.
#[test]
fn connections_after_head_204_304_and_close_answers_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let origin = scripted("127.0.71.24:0".parse().unwrap(), |r| {
        match r.head.split(' ').nth(1).unwrap_or("") {
            "/head" => Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec()),
            "/204" => Act::Reply(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
            "/304" => Act::Reply(b"HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n".to_vec()),
            // Says close but keeps the connection open: the proxy must not use it again.
            "/close" => Act::Reply(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".to_vec()),
            _ => Act::Reply(ok("plain")),
        }
    });
    let hop = Hop::start(
        "r",
        dir.path(),
        "127.0.71.14:31280".parse().unwrap(),
        &hop_config(dir.path(), "r", "127.0.71.14:31280", "http_access allow all"),
    );
    let at = origin.server.addr;
    let mut client = KeepAliveClient::connect(hop.addr);
    let steps = [
        ("GET", "/plain", 200),
        ("GET", "/plain", 200),
        ("HEAD", "/head", 200),
        ("GET", "/plain", 200),
        ("GET", "/204", 204),
        ("GET", "/plain", 200),
        ("GET", "/304", 304),
        ("GET", "/plain", 200),
        ("GET", "/close", 200),
        ("GET", "/plain", 200),
    ];
    let mut sizes = Vec::new();
    for (method, path, status) in steps {
        let request = format!("{method} http://{at}{path} HTTP/1.1\r\nHost: {at}\r\n\r\n");
        let response = client
            .ask(request.as_bytes(), method == "HEAD")
            .unwrap_or_else(|| panic!("{method} {path}: no answer"));
        assert_eq!(response.status(), status, "{method} {path}: {response:?}");
        sizes.push((response.head.len() + response.body.len()) as u64);
    }
    let connections: Vec<usize> = origin
        .wait_for_requests(steps.len())
        .iter()
        .map(|r| r.connection)
        .collect();
    assert_eq!(
        connections,
        [0, 0, 0, 1, 1, 2, 2, 3, 3, 4],
        "the origin connection of each request"
    );
    let lines = hop.wait_for_lines(steps.len());
    let logged: Vec<u64> = lines.iter().map(|l| parse_log_line(l).bytes).collect();
    assert_eq!(logged, sizes, "{lines:#?}");
    assert!(!hop.stderr_text().contains("past the end"), "{}", hop.stderr_text());
}
