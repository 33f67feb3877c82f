//! Dialect features through real Squid 5.7 and hopproxy side by side, same config and requests:
//! `deny_info` (same status and `Location` or `X-Squid-Error`) and `follow_x_forwarded_for`
//! (same decisions, same client address in the log).
//! Names end in `.invalid`, so no DNS query leaves the machine; the denials happen before any
//! lookup. Skipped without squid.

mod common;

use std::net::{IpAddr, SocketAddr};

use std::io::{Read, Write};

use common::{Hop, connect_from, exchange, header, hop_config};
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

const XFF_RULES: &str = "\
acl lb src 127.0.66.5
acl office src 10.1.0.0/16
follow_x_forwarded_for allow lb
http_access allow office
http_access deny all";

/// The status of a GET sent from `source` with `forwarded_for` as its X-Forwarded-For.
fn status_from(source: IpAddr, proxy: SocketAddr, forwarded_for: &str) -> String {
    let mut stream = connect_from(source, proxy);
    let request = format!(
        "GET http://www.xff.invalid/ HTTP/1.1\r\nHost: www.xff.invalid\r\nX-Forwarded-For: {forwarded_for}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply)
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn follow_x_forwarded_for_decides_like_squid() {
    if squid_binary().is_err() {
        common::skip("squid is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hop_ip: IpAddr = "127.0.66.3".parse().unwrap();
    let squid_ip: IpAddr = "127.0.66.4".parse().unwrap();
    let hop_addr = SocketAddr::new(hop_ip, 31280);
    let squid_addr = SocketAddr::new(squid_ip, hopproxy::lab::process::free_port(squid_ip).unwrap());
    let hop = Hop::start(
        "xff",
        dir.path(),
        hop_addr,
        &hop_config(dir.path(), "xff", &hop_addr.to_string(), XFF_RULES),
    );
    let mut squid = Squid::start("xff-squid", squid_addr, XFF_RULES, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let trusted: IpAddr = "127.0.66.5".parse().unwrap();
    let untrusted: IpAddr = "127.0.66.6".parse().unwrap();
    // (from, X-Forwarded-For, denied?)
    let cases = [
        (trusted, "10.1.2.3", false),
        (trusted, "192.0.2.1", true),
        (untrusted, "10.1.2.3", true),
        (trusted, "10.1.2.3, 127.0.66.5", false),
        (trusted, "10.1.2.3, 127.0.66.9", true),
        (trusted, "garbage", true),
    ];
    for (from, xff, denied) in cases {
        let ours = status_from(from, hop_addr, xff);
        let theirs = status_from(from, squid_addr, xff);
        // A name that does not resolve is answered differently by design (README); only the
        // access decision is compared.
        assert_eq!(ours == "403", denied, "hopproxy, from {from} with {xff:?}: {ours}");
        assert_eq!(theirs == "403", denied, "squid, from {from} with {xff:?}: {theirs}");
    }
    // Both logs show the indirect client (log_uses_indirect_client on), case by case.
    let clients = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("http://www.xff.invalid/"))
            .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
            .collect()
    };
    let ours = clients(&hop.wait_for_lines(cases.len()).join("\n"));
    // Squid writes its line when the transaction ends, which may be just after the close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut theirs = clients(&squid.access_log_text());
    while theirs.len() < cases.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        theirs = clients(&squid.access_log_text());
    }
    assert_eq!(ours, theirs);
    assert_eq!(ours[0], "10.1.2.3");
    squid.stop();
}

/// The keep-alive timer `ss` shows on the proxy's side of a connection from `source`.
fn keepalive_timer(source: IpAddr, proxy: SocketAddr) -> Option<String> {
    let stream = connect_from(source, proxy);
    let local = stream.local_addr().unwrap();
    // Bounded wait for the accepted socket to be tuned (it is, right after accept).
    for _ in 0..100 {
        let out = std::process::Command::new("ss")
            .args(["-tnoH", "state", "established", "dst"])
            .arg(local.to_string())
            .output()
            .expect("ss runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(start) = text.find("timer:(keepalive,") {
            return Some(text[start..].split(',').nth(1).unwrap_or_default().to_string());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(stream);
    None
}

/// `http_port … tcpkeepalive=IDLE,INTERVAL,TIMEOUT` arms TCP keep-alive on accepted client
/// sockets in both proxies, with the idle time given.
#[test]
fn tcpkeepalive_arms_the_same_timer_as_squid() {
    if squid_binary().is_err() || std::process::Command::new("ss").arg("-V").output().is_err() {
        common::skip("squid or ss is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hop_ip: IpAddr = "127.0.66.7".parse().unwrap();
    let squid_ip: IpAddr = "127.0.66.8".parse().unwrap();
    let client: IpAddr = "127.0.66.9".parse().unwrap();
    let hop_addr = SocketAddr::new(hop_ip, 31280);
    let squid_addr = SocketAddr::new(squid_ip, hopproxy::lab::process::free_port(squid_ip).unwrap());
    let rules = "http_access deny all";
    let hop_config = hop_config(
        dir.path(),
        "keepalive",
        &format!("{hop_addr} tcpkeepalive=600,30,180"),
        rules,
    );
    let _hop = Hop::start("keepalive", dir.path(), hop_addr, &hop_config);
    // The lab's Squid writes its own http_port line; this one adds a second, tuned port.
    let squid_port = SocketAddr::new(squid_ip, hopproxy::lab::process::free_port(squid_ip).unwrap());
    let squid_rules = format!("http_port {squid_port} tcpkeepalive=600,30,180\n{rules}");
    let mut squid =
        Squid::start("keepalive-squid", squid_addr, &squid_rules, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let ours = keepalive_timer(client, hop_addr).expect("hopproxy armed no keep-alive timer");
    let theirs = keepalive_timer(client, squid_port).expect("squid armed no keep-alive timer");
    // Both count down from 600 s; allow for the moments between accept and `ss`.
    for timer in [&ours, &theirs] {
        assert!(
            timer.starts_with("9min") || timer.starts_with("10min"),
            "{ours} / {theirs}"
        );
    }
    squid.stop();
}
