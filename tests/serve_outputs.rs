//! What leaves the proxy, checked where it arrives: the `X-Forwarded-For` and `Via` an origin
//! receives under each `forwarded_for` / `via` mode; that a client's `Proxy-Authorization`
//! reaches no parent without `login=` (CONNECT and GET, recorded byte for byte by the parent);
//! plain-HTTP 407; and `access_log` lines split over two outputs by ACLs.
//!
//! Block 127.0.61.0/24: clients .5 and .6, proxies .10–.19, origins and parents .20–.31.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use common::{Hop, header, hop_config, parse_log_line};

const CLIENT: &str = "127.0.61.5";

/// The body of a raw HTTP reply (what the echo origin received, for `echo_origin`).
fn body(reply: &str) -> &str {
    reply.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// Sends `request` from `source` and returns everything until the proxy closes. A CONNECT is
/// half-closed after its bytes, so a tunnel to the echo server ends once the echo is back.
fn exchange_from(source: &str, proxy: SocketAddr, request: &str) -> String {
    let mut s = common::connect_from(source.parse().unwrap(), proxy);
    s.write_all(request.as_bytes()).unwrap();
    if request.starts_with("CONNECT ") {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Each `forwarded_for` mode (and `via off`) on its own proxy; what the origin receives for a
/// GET that already carries an `X-Forwarded-For` and a `Via` from an earlier hop.
#[test]
fn forwarded_for_and_via_modes_as_the_origin_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    let origin = common::origin::echo_origin("127.0.61.20:0".parse().unwrap());
    let earlier_via = "1.1 earlier.example";
    let version = env!("CARGO_PKG_VERSION");
    // (mode lines, proxy host, X-Forwarded-For the origin gets, Via the origin gets)
    let cases: [(&str, u8, Option<String>, Option<String>); 6] = [
        (
            "forwarded_for on",
            11,
            Some(format!("192.0.2.1, {CLIENT}")),
            Some(format!("{earlier_via}, 1.1 m11.test (hopproxy/{version})")),
        ),
        ("forwarded_for off", 12, Some("192.0.2.1, unknown".into()), None),
        ("forwarded_for transparent", 13, Some("192.0.2.1".into()), None),
        ("forwarded_for delete", 14, None, None),
        ("forwarded_for truncate", 15, Some(CLIENT.into()), None),
        (
            "forwarded_for on\nvia off",
            16,
            Some(format!("192.0.2.1, {CLIENT}")),
            Some(earlier_via.into()),
        ),
    ];
    let hops: Vec<Hop> = cases
        .iter()
        .map(|(mode, host, _, _)| {
            let addr = SocketAddr::new(IpAddr::from([127, 0, 61, *host]), 31280);
            let name = format!("m{host}");
            Hop::start(
                &name,
                dir.path(),
                addr,
                &hop_config(
                    dir.path(),
                    &name,
                    &addr.to_string(),
                    &format!("http_access allow all\n{mode}"),
                ),
            )
        })
        .collect();
    for ((mode, host, want_xff, want_via), hop) in cases.iter().zip(&hops) {
        let reply = exchange_from(
            CLIENT,
            hop.addr,
            &format!(
                "GET http://{0}/m HTTP/1.1\r\nHost: {0}\r\nX-Forwarded-For: 192.0.2.1\r\nVia: {earlier_via}\r\nConnection: close\r\n\r\n",
                origin.addr
            ),
        );
        assert!(reply.starts_with("HTTP/1.1 200 "), "{mode}: {reply}");
        let received = body(&reply);
        assert!(received.starts_with("GET /m HTTP/1.1\r\n"), "{mode}: {received}");
        assert_eq!(
            header(received, "X-Forwarded-For"),
            want_xff.as_deref(),
            "{mode}: {received}"
        );
        assert_eq!(
            received.matches("X-Forwarded-For:").count(),
            usize::from(want_xff.is_some()),
            "one field at most: {received}"
        );
        // Only `via` changes Via: every mode but the last appends this hop.
        let via = want_via
            .clone()
            .unwrap_or_else(|| format!("{earlier_via}, 1.1 m{host}.test (hopproxy/{version})"));
        assert_eq!(header(received, "Via"), Some(via.as_str()), "{mode}: {received}");
    }
}

/// A parent that records every byte it gets and answers `reply`.
fn recording_parent(host: u8, reply: &'static [u8]) -> common::origin::Recorder {
    common::origin::recorder(SocketAddr::new(IpAddr::from([127, 0, 61, host]), 0), reply)
}

/// Waits (bounded) until one of the recorder's connections holds a whole head; returns
/// everything the recorder received, all connections joined (the proxy's start-up probe is an
/// empty one).
fn recorded_head(parent: &common::origin::Recorder) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let received = parent.received();
        if received.iter().any(|c| c.windows(4).any(|w| w == b"\r\n\r\n")) {
            return String::from_utf8_lossy(&received.concat()).into_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the parent got no whole head: {received:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The client's credentials are for this proxy: without `login=` they never reach the parent,
/// on CONNECT or on a forwarded GET. The client's other fields do (the recording is complete).
#[test]
fn client_credentials_never_reach_a_parent_without_login() {
    let dir = tempfile::tempdir().unwrap();
    let connect_parent = recording_parent(21, b"HTTP/1.1 200 Connection established\r\n\r\n");
    let get_parent = recording_parent(
        22,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    );
    let credentials = "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n";
    for (host, parent, request) in [
        (
            17,
            &connect_parent,
            format!("CONNECT far.invalid:443 HTTP/1.1\r\nHost: far.invalid:443\r\n{credentials}X-Marker: kept\r\n\r\n"),
        ),
        (
            18,
            &get_parent,
            format!(
                "GET http://far.invalid/g HTTP/1.1\r\nHost: far.invalid\r\n{credentials}X-Marker: kept\r\nConnection: close\r\n\r\n"
            ),
        ),
    ] {
        let proxy = SocketAddr::new(IpAddr::from([127, 0, 61, host]), 31280);
        let name = format!("c{host}");
        let rules = format!(
            "http_access allow all\ncache_peer {} parent {} 0 no-query default\nnever_direct allow all",
            parent.server.addr.ip(),
            parent.server.addr.port()
        );
        let hop = Hop::start(
            &name,
            dir.path(),
            proxy,
            &hop_config(dir.path(), &name, &proxy.to_string(), &rules),
        );
        let mut s = common::connect_from(CLIENT.parse().unwrap(), proxy);
        s.write_all(request.as_bytes()).unwrap();
        let mut first = [0u8; 12];
        s.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"HTTP/1.1 200", "{request}");
        let head = recorded_head(parent);
        let method = request.split(' ').next().unwrap();
        assert!(head.starts_with(&format!("{method} ")), "{head}");
        assert!(
            head.contains("X-Marker: kept\r\n"),
            "the recording has the client's fields: {head}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("proxy-authorization"),
            "{method}: credentials went upstream: {head}"
        );
        drop(s);
        hop.wait_for_match("the request", |l| {
            l.method == method && l.hierarchy.starts_with("FIRSTUP_PARENT/")
        });
    }
}

fn passwd() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth/passwd")
        .display()
        .to_string()
}

/// Plain HTTP asks for credentials with 407 like CONNECT does; the origin sees nothing of the
/// refused request, and the accepted one arrives without the client's credentials.
#[test]
fn plain_http_without_credentials_gets_407_and_reaches_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let origin = recording_parent(
        23,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    );
    let proxy: SocketAddr = "127.0.61.19:31280".parse().unwrap();
    let rules = format!(
        "auth_param basic program /usr/lib/squid/basic_ncsa_auth {}\nauth_param basic realm outputs test\n\
         acl users proxy_auth REQUIRED\nhttp_access allow users\nhttp_access deny all",
        passwd()
    );
    let hop = Hop::start(
        "auth",
        dir.path(),
        proxy,
        &hop_config(dir.path(), "auth", &proxy.to_string(), &rules),
    );
    let get = |extra: &str| {
        format!(
            "GET http://{0}/p HTTP/1.1\r\nHost: {0}\r\n{extra}Connection: close\r\n\r\n",
            origin.server.addr
        )
    };
    let refused = exchange_from(CLIENT, proxy, &get(""));
    assert!(refused.starts_with("HTTP/1.1 407 "), "{refused}");
    assert_eq!(
        header(&refused, "Proxy-Authenticate"),
        Some("Basic realm=\"outputs test\""),
        "{refused}"
    );
    let l = parse_log_line(&hop.wait_for_lines(1)[0]);
    assert_eq!((l.code.as_str(), l.method.as_str()), ("TCP_DENIED/407", "GET"));
    // "apr1-user:apr1 pass" (tests/fixtures/auth/README.md).
    let accepted = exchange_from(
        CLIENT,
        proxy,
        &get("Proxy-Authorization: Basic YXByMS11c2VyOmFwcjEgcGFzcw==\r\n"),
    );
    assert!(accepted.starts_with("HTTP/1.1 200 "), "{accepted}");
    let received = origin.received();
    assert_eq!(
        received.len(),
        1,
        "only the accepted request reached the origin: {received:?}"
    );
    let head = String::from_utf8_lossy(&received[0]);
    assert!(head.starts_with("GET /p HTTP/1.1\r\n"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("proxy-authorization"), "{head}");
    let lines: Vec<common::LogLine> = hop.wait_for_lines(2).iter().map(|l| parse_log_line(l)).collect();
    common::the_line(&lines, "the accepted GET", |l| {
        l.code == "TCP_MISS/200" && l.user == "apr1-user"
    });
}

/// Two `access_log` outputs: one takes everything, the other only what its ACLs match.
#[test]
fn access_log_acls_choose_what_each_output_gets() {
    let dir = tempfile::tempdir().unwrap();
    let origin = common::origin::echo_origin("127.0.61.30:0".parse().unwrap());
    let echo = common::origin::echo_tcp("127.0.61.31:0".parse().unwrap());
    let proxy: SocketAddr = "127.0.61.10:31280".parse().unwrap();
    let filtered = dir.path().join("filtered.log");
    // The filtered output: plain requests from .6 only (not CONNECT, not from .5).
    let rules = format!(
        "http_access allow all\nacl from6 src 127.0.61.6\naccess_log stdio:{} squid from6 !CONNECT",
        filtered.display()
    );
    let mut hop = Hop::start(
        "logs",
        dir.path(),
        proxy,
        &hop_config(dir.path(), "logs", &proxy.to_string(), &rules),
    );
    let get = format!(
        "GET http://{0}/l HTTP/1.1\r\nHost: {0}\r\nConnection: close\r\n\r\n",
        origin.addr
    );
    let connect = format!("CONNECT {} HTTP/1.1\r\n\r\nping", echo.addr);
    for (source, request) in [
        ("127.0.61.5", &get),
        ("127.0.61.6", &get),
        ("127.0.61.6", &connect),
        ("127.0.61.5", &connect),
    ] {
        let reply = exchange_from(source, proxy, request);
        assert!(reply.starts_with("HTTP/1.1 200 "), "{source} {request}: {reply}");
    }
    let all: Vec<common::LogLine> = hop.wait_for_lines(4).iter().map(|l| parse_log_line(l)).collect();
    assert_eq!(all.len(), 4, "{all:#?}");
    // Each output has its own writer: a clean stop flushes them all, so the filtered file is
    // complete when the process has exited.
    let status = hop.terminate(std::time::Duration::from_secs(10)).expect("stops");
    assert!(status.success(), "{status:?}");
    let chosen = std::fs::read_to_string(&filtered).unwrap_or_default();
    let chosen: Vec<common::LogLine> = chosen.lines().map(parse_log_line).collect();
    assert_eq!(chosen.len(), 1, "{chosen:#?}");
    assert_eq!(
        (chosen[0].client.as_str(), chosen[0].method.as_str()),
        ("127.0.61.6", "GET")
    );
}
