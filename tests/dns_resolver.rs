//! DNS through `dns_nameservers`: hopproxy asks the configured server (a local stub, so no
//! query leaves the machine), honours the answers' TTLs, and resolves a destination once per
//! request, so a `dst` ACL judges the very address that is dialed. Loopback block 127.0.62.0/24.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::origin::{echo_origin, recorder};
use common::{Hop, curl, hop_config, parse_log_line};
use hopproxy::lab::dns_stub::DnsStub;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 62, last)
}

fn at(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(ip(last).into(), port)
}

/// `%{http_code} %{http_connect}` of a GET through `proxy` (through a CONNECT tunnel when
/// `tunnel`), e.g. "200 000" for a plain GET, "000 403" for a refused CONNECT.
fn get(proxy: SocketAddr, url: &str, tunnel: bool) -> String {
    let proxy = proxy.to_string();
    let mut args = vec!["-o", "/dev/null", "-w", "%{http_code} %{http_connect}", "-x", &proxy];
    if tunnel {
        args.push("-p");
    }
    args.push(url);
    curl(&args).stdout
}

fn config(dir: &std::path::Path, name: &str, listen: SocketAddr, nameserver: Ipv4Addr, rules: &str) -> String {
    hop_config(
        dir,
        name,
        &listen.to_string(),
        &format!("hosts_file none\ndns_nameservers {nameserver}\n{rules}"),
    )
}

#[test]
fn names_only_the_configured_server_knows_resolve_and_expired_answers_are_asked_again() {
    let dir = tempfile::tempdir().unwrap();
    let stub = DnsStub::start(at(53, 53));
    let first = echo_origin(at(20, 0));
    let port = first.addr.port();
    let _second = echo_origin(at(21, port));
    stub.set_a("short-lived.stub.test", &[ip(20)], 1);
    stub.set_a("long-lived.stub.test", &[ip(20)], 300);
    let proxy_addr = at(10, 13128);
    let rules = "http_access allow all";
    let proxy = Hop::start(
        "proxy",
        dir.path(),
        proxy_addr,
        &config(dir.path(), "proxy", proxy_addr, ip(53), rules),
    );

    // A name no hosts file and no real resolver knows: only the stub can have answered.
    let long = format!("http://long-lived.stub.test:{port}/");
    assert_eq!(get(proxy_addr, &long, false), "200 000");
    assert_eq!(get(proxy_addr, &long, false), "200 000");
    let lines = proxy.wait_for_lines(2);
    assert!(
        lines.iter().all(|l| l.contains(" HIER_DIRECT/127.0.62.20 ")),
        "{lines:#?}"
    );
    assert_eq!(stub.a_queries("long-lived.stub.test"), 1, "a 300 s answer is cached");

    let short = format!("http://short-lived.stub.test:{port}/");
    assert_eq!(get(proxy_addr, &short, false), "200 000");
    let lines = proxy.wait_for_lines(3);
    assert!(lines[2].contains(" HIER_DIRECT/127.0.62.20 "), "{lines:#?}");
    // The name moves; once its 1 s TTL is over, hopproxy must ask again and follow it.
    stub.set_a("short-lived.stub.test", &[ip(21)], 1);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut moved = false;
    for sent in 4..200 {
        assert_eq!(get(proxy_addr, &short, false), "200 000");
        let lines = proxy.wait_for_lines(sent);
        if lines[sent - 1].contains(" HIER_DIRECT/127.0.62.21 ") {
            moved = true;
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(moved, "the new answer was never used; stderr:\n{}", proxy.stderr_text());
    assert!(stub.a_queries("short-lived.stub.test") >= 2);
    assert_eq!(stub.a_queries("long-lived.stub.test"), 1);

    // RFC 6761: `.invalid` is never asked about, not even to the configured server.
    assert_eq!(get(proxy_addr, "http://nothing.invalid/", false), "502 000");
    assert_eq!(stub.a_queries("nothing.invalid"), 0);
}

#[test]
fn the_dst_acl_judges_the_address_that_is_dialed() {
    let dir = tempfile::tempdir().unwrap();
    let stub = DnsStub::start(at(54, 53));
    let allowed = echo_origin(at(30, 0));
    let port = allowed.addr.port();
    // Reaching this one would mean the dial resolved the name again and got the other answer.
    let forbidden = recorder(at(31, port), b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    // TTL 0 and an answer that flips on every query: a DNS-rebinding name.
    stub.set_a("rebind.stub.test", &[ip(30), ip(31)], 0);
    let proxy_addr = at(11, 13128);
    let rules = "acl safe dst 127.0.62.30/32\nhttp_access allow safe\nhttp_access deny all";
    let proxy = Hop::start(
        "proxy",
        dir.path(),
        proxy_addr,
        &config(dir.path(), "proxy", proxy_addr, ip(54), rules),
    );

    let url = format!("http://rebind.stub.test:{port}/");
    // Each request resolves once: .30 (allowed, and dialed), then .31 (denied), and so on.
    let seen: Vec<String> = [false, false, true, true]
        .iter()
        .map(|&tunnel| get(proxy_addr, &url, tunnel))
        .collect();
    assert_eq!(seen, ["200 000", "403 000", "200 200", "000 403"]);
    assert_eq!(stub.a_queries("rebind.stub.test"), 4, "one lookup per request");
    assert!(forbidden.received().is_empty(), "the denied address was dialed");
    // A tunnel is logged when it closes, so the lines' order is not the requests' order.
    let mut logged: Vec<String> = proxy
        .wait_for_lines(4)
        .iter()
        .map(|l| {
            let line = parse_log_line(l);
            format!("{} {} {}", line.method, line.code, line.hierarchy)
        })
        .collect();
    logged.sort();
    assert_eq!(
        logged,
        [
            "CONNECT TCP_DENIED/403 HIER_NONE/-",
            "CONNECT TCP_TUNNEL/200 HIER_DIRECT/127.0.62.30",
            "GET TCP_DENIED/403 HIER_NONE/-",
            "GET TCP_MISS/200 HIER_DIRECT/127.0.62.30",
        ]
    );
}
