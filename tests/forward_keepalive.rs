//! Keep-alive forwarding through two hopproxy hops: one client connection carries requests
//! of several methods, bodies over 16 KiB (by length and chunked), answers framed by length,
//! by chunks and by close, to different hosts; each request is logged once on each hop.
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
