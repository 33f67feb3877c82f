//! `deny_info` through real Squid 5.7 and hopproxy side by side: the same config and requests,
//! the same status and `Location` (redirect forms) or `X-Squid-Error` (error-name form).
//! Names end in `.invalid`, so no DNS query leaves the machine; the denials happen before any
//! lookup. Skipped without squid.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::{Hop, exchange, header, hop_config};
use hopproxy::lab::squid::{Squid, squid_binary};

const RULES: &str = "\
acl blocked dstdomain .blocked.invalid
acl moved dstdomain .moved.invalid
acl named dstdomain .named.invalid
deny_info http://portal.invalid/why?url=%u&host=%H blocked
deny_info 303:http://portal.invalid/moved moved
deny_info ERR_CUSTOM_POLICY named
http_access deny blocked
http_access deny moved
http_access deny CONNECT named
http_access deny named
http_access allow localhost
http_access deny all";

/// The status line and the named header of the answer to `request`.
fn answer(addr: SocketAddr, request: &str, field: &str) -> (String, Option<String>) {
    let reply = exchange(&addr.to_string(), request.as_bytes());
    let status = reply
        .lines()
        .next()
        .unwrap_or_default()
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, header(&reply, field).map(str::to_string))
}

#[test]
fn deny_info_answers_like_squid() {
    if squid_binary().is_err() {
        common::skip("squid is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hop_ip: IpAddr = "127.0.66.1".parse().unwrap();
    let squid_ip: IpAddr = "127.0.66.2".parse().unwrap();
    let hop_addr = SocketAddr::new(hop_ip, 31280);
    let squid_addr = SocketAddr::new(squid_ip, hopproxy::lab::process::free_port(squid_ip).unwrap());
    let _hop = Hop::start(
        "deny-info",
        dir.path(),
        hop_addr,
        &hop_config(dir.path(), "deny-info", &hop_addr.to_string(), RULES),
    );
    let mut squid = Squid::start("deny-info-squid", squid_addr, RULES, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let cases = [
        (
            "GET http://www.blocked.invalid/a%20b?q=1 HTTP/1.1\r\nHost: www.blocked.invalid\r\n\r\n",
            "Location",
        ),
        (
            "POST http://www.blocked.invalid/ HTTP/1.1\r\nHost: www.blocked.invalid\r\nContent-Length: 0\r\n\r\n",
            "Location",
        ),
        (
            "GET http://x.moved.invalid/ HTTP/1.1\r\nHost: x.moved.invalid\r\n\r\n",
            "Location",
        ),
        (
            "GET http://x.named.invalid/ HTTP/1.1\r\nHost: x.named.invalid\r\n\r\n",
            "X-Squid-Error",
        ),
    ];
    for (request, field) in cases {
        let ours = answer(hop_addr, request, field);
        let theirs = answer(squid_addr, request, field);
        assert_eq!(ours, theirs, "{request:?}");
        assert!(ours.1.is_some(), "no {field} in {ours:?}");
        println!("{} {field}: {}", ours.0, ours.1.unwrap());
    }
    // The denial is logged as Squid logs it: TCP_DENIED with the status sent.
    let lines = _hop.wait_for_lines(cases.len());
    assert!(lines.iter().any(|l| l.contains("TCP_DENIED/302 ")), "{lines:#?}");
    squid.stop();
}
