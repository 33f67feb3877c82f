//! Time limits and the proxy's life cycle, each driven to the point where it must act: a head
//! trickled in slower than `request_start_timeout`, a destination that never answers the SYN
//! (`connect_timeout`), a name that does not resolve, an idle tunnel (`read_timeout`), a tunnel
//! still open when `shutdown_lifetime` runs out, and reloads that add a port or ask for one
//! another process holds.
//!
//! Block 127.0.69.0/24: one proxy address per test (.11–.17), origins on .20–.27.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Hop, header, hop_config, parse_log_line};

/// A CONNECT through `proxy` to the echo server `target`, one round trip, then close.
/// `Ok` with the bytes received, or why it failed.
fn tunnel_round_trip(proxy: SocketAddr, target: SocketAddr) -> Result<Vec<u8>, String> {
    let mut s = TcpStream::connect_timeout(&proxy, Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\n\r\nping").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    s.read_to_end(&mut got).map_err(|e| format!("read: {e}"))?;
    Ok(got)
}

const TUNNEL_OK: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\nping";

/// A config that `Hop::start` would write, for rewriting before a reload (it must keep
/// `pid_filename none`, which `Hop::start` adds only the first time).
fn reload_config(dir: &std::path::Path, name: &str, ports: &[SocketAddr], rules: &str) -> String {
    let ports: String = ports.iter().map(|p| format!("http_port {p}\n")).collect();
    format!(
        "{ports}access_log stdio:{} squid\nvisible_hostname {name}.test\npid_filename none\nshutdown_lifetime 1 second\n{rules}\n",
        Hop::log_path(dir, name).display()
    )
}

#[test]
fn a_reload_that_adds_a_port_serves_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("127.0.69.20:0".parse().unwrap());
    let old: SocketAddr = "127.0.69.11:31280".parse().unwrap();
    let new: SocketAddr = "127.0.69.11:31281".parse().unwrap();
    let hop = Hop::start(
        "add",
        dir.path(),
        old,
        &reload_config(dir.path(), "add", &[old], "http_access allow all"),
    );
    assert!(
        TcpStream::connect_timeout(&new, Duration::from_secs(2)).is_err(),
        "{new} is not open before the reload"
    );
    std::fs::write(
        &hop.config,
        reload_config(dir.path(), "add", &[old, new], "http_access allow all"),
    )
    .unwrap();
    hop.signal("HUP");
    let stderr = hop.wait_for_stderr("reloaded: new connections use the new config");
    assert!(stderr.contains(&format!("listening on {new}")), "{stderr}");
    assert!(!stderr.contains("reload rejected"), "{stderr}");
    assert_eq!(tunnel_round_trip(new, echo.addr).as_deref(), Ok(TUNNEL_OK));
    assert_eq!(tunnel_round_trip(old, echo.addr).as_deref(), Ok(TUNNEL_OK));
    let lines = hop.wait_for_lines(2);
    assert!(
        lines.iter().all(|l| parse_log_line(l).code == "TCP_TUNNEL/200"),
        "{lines:#?}"
    );
}

/// A port another process holds cannot be bound: the whole reload is refused (its new policy
/// too), and the old port keeps serving under the old policy.
#[test]
fn a_reload_onto_a_taken_port_is_rejected_and_the_old_port_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("127.0.69.21:0".parse().unwrap());
    let old: SocketAddr = "127.0.69.12:31280".parse().unwrap();
    let taken: SocketAddr = "127.0.69.12:31281".parse().unwrap();
    // Held by this test process, which to the proxy is another program.
    let holder = TcpListener::bind(taken).unwrap();
    let hop = Hop::start(
        "taken",
        dir.path(),
        old,
        &reload_config(dir.path(), "taken", &[old], "http_access allow all"),
    );
    std::fs::write(
        &hop.config,
        reload_config(dir.path(), "taken", &[old, taken], "http_access deny all"),
    )
    .unwrap();
    hop.signal("HUP");
    let stderr = hop.wait_for_stderr("reload rejected");
    assert!(
        stderr.contains(&format!("cannot listen on {taken}")),
        "the rejection names the port: {stderr}"
    );
    assert!(!stderr.contains("reloaded: new connections"), "{stderr}");
    // The old port still serves, and with the old policy (allow), not the rejected one (deny).
    assert_eq!(tunnel_round_trip(old, echo.addr).as_deref(), Ok(TUNNEL_OK));
    let lines = hop.wait_for_lines(1);
    assert_eq!(parse_log_line(&lines[0]).code, "TCP_TUNNEL/200");
    drop(holder);
}

/// `request_start_timeout` bounds the whole head, not each read: a client trickling one byte
/// every 300 ms (never idle for long) is still cut once the limit passes.
#[test]
fn a_head_trickled_byte_by_byte_is_cut_at_request_start_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("127.0.69.22:0".parse().unwrap());
    let proxy: SocketAddr = "127.0.69.13:31280".parse().unwrap();
    let hop = Hop::start(
        "trickle",
        dir.path(),
        proxy,
        &hop_config(
            dir.path(),
            "trickle",
            &proxy.to_string(),
            "http_access allow all\nrequest_start_timeout 2 seconds",
        ),
    );
    // About 60 bytes at 300 ms each: 18 s to send the whole head, far past the 2 s limit.
    let head = format!(
        "CONNECT {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: trickle\r\n\r\n",
        echo.addr, echo.addr
    );
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (mut stream, sent, stop) = (stream.try_clone().unwrap(), Arc::clone(&sent), Arc::clone(&stop));
        let head = head.clone().into_bytes();
        std::thread::spawn(move || {
            for byte in head {
                if stop.load(Ordering::Relaxed) || stream.write_all(&[byte]).is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let sent_when_closed = sent.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        reply.is_empty(),
        "closed without a reply: {:?}",
        String::from_utf8_lossy(&reply)
    );
    assert!(
        sent_when_closed < head.len(),
        "the proxy closed before the head was complete ({sent_when_closed} of {} bytes sent)",
        head.len()
    );
    let lines = hop.wait_for_lines(1);
    let l = parse_log_line(&lines[0]);
    assert_eq!(
        (l.client.as_str(), l.code.as_str(), l.url.as_str()),
        ("127.0.0.1", "NONE_NONE/000", "error:transaction-end-before-headers")
    );
    assert_eq!(lines.len(), 1, "{lines:#?}");
}

#[test]
fn a_black_holed_destination_is_answered_at_connect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let hole = common::black_hole::black_hole("127.0.69.23:0".parse().unwrap());
    let proxy: SocketAddr = "127.0.69.14:31280".parse().unwrap();
    let hop = Hop::start(
        "hole",
        dir.path(),
        proxy,
        &hop_config(
            dir.path(),
            "hole",
            &proxy.to_string(),
            "http_access allow all\nconnect_timeout 2 seconds",
        ),
    );
    // The default connect_timeout is a minute; exchange gives up after 10 s, so an answer at
    // all means the configured 2 s applied.
    let reply = common::exchange(
        &proxy.to_string(),
        format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", hole.addr).as_bytes(),
    );
    assert!(reply.starts_with("HTTP/1.1 504 "), "{reply}\n{}", hop.stderr_text());
    let status = header(&reply, "Proxy-Status").unwrap_or_default();
    assert!(status.starts_with("hole.test; error=connection_timeout"), "{status}");
    let get = common::exchange(
        &proxy.to_string(),
        format!("GET http://{0}/ HTTP/1.1\r\nHost: {0}\r\n\r\n", hole.addr).as_bytes(),
    );
    assert!(get.starts_with("HTTP/1.1 504 "), "{get}");
    assert!(
        header(&get, "Proxy-Status")
            .unwrap_or_default()
            .contains("error=connection_timeout"),
        "{get}"
    );
    let lines = hop.wait_for_lines(2);
    let codes: Vec<String> = lines.iter().map(|l| parse_log_line(l).code).collect();
    assert!(codes.contains(&"NONE_NONE/504".to_string()), "{lines:#?}");
    assert!(codes.contains(&"TCP_MISS/504".to_string()), "{lines:#?}");
}

#[test]
fn an_unresolvable_name_is_502_dns_error() {
    let dir = tempfile::tempdir().unwrap();
    let proxy: SocketAddr = "127.0.69.15:31280".parse().unwrap();
    let hop = Hop::start(
        "nxdomain",
        dir.path(),
        proxy,
        &hop_config(dir.path(), "nxdomain", &proxy.to_string(), "http_access allow all"),
    );
    for request in [
        "CONNECT x.invalid:443 HTTP/1.1\r\nHost: x.invalid:443\r\n\r\n",
        "GET http://x.invalid/ HTTP/1.1\r\nHost: x.invalid\r\n\r\n",
    ] {
        let reply = common::exchange(&proxy.to_string(), request.as_bytes());
        assert!(reply.starts_with("HTTP/1.1 502 "), "{request:?}: {reply}");
        let status = header(&reply, "Proxy-Status").unwrap_or_default();
        assert!(status.starts_with("nxdomain.test; error=dns_error"), "{status}");
    }
    let lines: Vec<common::LogLine> = hop.wait_for_lines(2).iter().map(|l| parse_log_line(l)).collect();
    common::the_line(&lines, "the CONNECT", |l| {
        l.method == "CONNECT" && l.url == "x.invalid:443" && l.code.ends_with("/502") && l.hierarchy == "HIER_NONE/-"
    });
    common::the_line(&lines, "the GET", |l| {
        l.method == "GET" && l.url == "http://x.invalid/" && l.code.ends_with("/502") && l.hierarchy == "HIER_NONE/-"
    });
}

/// Opens a tunnel through `proxy` to the echo server and checks one round trip; the tunnel
/// stays open.
fn open_tunnel(proxy: SocketAddr, target: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(proxy).unwrap();
    // Under the echo server's own 10 s idle limit, so only the proxy can end it in time.
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = [0u8; 39];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200 Connection established\r\n\r\n");
    s.write_all(b"hello").unwrap();
    let mut back = [0u8; 5];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello");
    s
}

/// A tunnel nobody closes is cut when `shutdown_lifetime` runs out; its line is still
/// written, and the process exits 0.
#[test]
fn a_tunnel_held_past_shutdown_lifetime_is_cut_logged_and_the_exit_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("127.0.69.26:0".parse().unwrap());
    let proxy: SocketAddr = "127.0.69.16:31280".parse().unwrap();
    let config = format!(
        "http_port {proxy}\naccess_log stdio:{} squid\nvisible_hostname held.test\nshutdown_lifetime 2 seconds\nhttp_access allow all\n",
        Hop::log_path(dir.path(), "held").display()
    );
    let mut hop = Hop::start("held", dir.path(), proxy, &config);
    let mut tunnel = open_tunnel(proxy, echo.addr);
    hop.signal("TERM");
    hop.wait_for_stderr("closing 1 connections still open after shutdown_lifetime");
    // Cut by the proxy (the echo server would keep it open: this side never half-closed).
    let mut rest = Vec::new();
    let cut = tunnel.read_to_end(&mut rest);
    assert!(cut.is_ok() && rest.is_empty(), "{cut:?} {rest:?}");
    let status = hop
        .terminate(Duration::from_secs(10))
        .expect("exits after cutting the tunnel");
    assert!(status.success(), "{status:?}\n{}", hop.stderr_text());
    let l = parse_log_line(&hop.wait_for_lines(1)[0]);
    assert_eq!((l.code.as_str(), l.bytes), ("TCP_TUNNEL/200", 39 + 5));
}

/// `read_timeout` ends a tunnel on which nothing moved for that long, and logs it.
#[test]
fn read_timeout_cuts_an_idle_tunnel() {
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("127.0.69.27:0".parse().unwrap());
    let proxy: SocketAddr = "127.0.69.17:31280".parse().unwrap();
    let hop = Hop::start(
        "idle",
        dir.path(),
        proxy,
        &hop_config(
            dir.path(),
            "idle",
            &proxy.to_string(),
            "http_access allow all\nread_timeout 2 seconds",
        ),
    );
    let mut tunnel = open_tunnel(proxy, echo.addr);
    // The default read_timeout is 15 minutes and this read gives up after 8 s: an end at all
    // means the configured 2 s applied.
    let mut rest = Vec::new();
    let cut = tunnel.read_to_end(&mut rest);
    assert!(cut.is_ok() && rest.is_empty(), "{cut:?} {rest:?}");
    let l = parse_log_line(&hop.wait_for_lines(1)[0]);
    assert_eq!((l.code.as_str(), l.bytes), ("TCP_TUNNEL/200", 39 + 5));
}
