//! Running for months: reload (SIGHUP) and log rotation (SIGUSR1) under load, with nothing
//! lost — no failed request, no lost or cut log line, open tunnels untouched.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Hop, parse_log_line};

fn config(dir: &std::path::Path, listen: &str, rules: &str) -> String {
    format!(
        "http_port {listen}\naccess_log stdio:{} squid\nvisible_hostname r.test\npid_filename {}\n{rules}\n",
        Hop::log_path(dir, "r").display(),
        dir.join("r.pid").display()
    )
}

/// One CONNECT to the echo server, a round trip, then close. True when it all worked.
fn tunnel_round_trip(proxy: &str, target: std::net::SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&proxy.parse().unwrap(), Duration::from_secs(5)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(format!("CONNECT {target} HTTP/1.1\r\n\r\nping").as_bytes())
        .is_err()
    {
        return false;
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got == b"HTTP/1.1 200 Connection established\r\n\r\nping"
}

/// Waits (bounded) until `path` holds at least `count` lines: the load has made progress.
fn wait_for_log_lines(path: &std::path::Path, count: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let have = std::fs::read_to_string(path).unwrap_or_default().lines().count();
        if have >= count {
            return have;
        }
        assert!(Instant::now() < deadline, "{}: {have} of {count} lines", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until `hop`'s stderr holds `count` reload outcomes (applied or rejected).
fn wait_for_reloads(hop: &Hop, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stderr = hop.stderr_text();
        let done = stderr.matches("reloaded: new connections").count() + stderr.matches("reload rejected").count();
        if done >= count {
            return;
        }
        assert!(Instant::now() < deadline, "{done} of {count} reloads done:\n{stderr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `workers` threads of round trips until `stop`; returns (ok, failed) counts.
fn load(
    proxy: &'static str,
    target: std::net::SocketAddr,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..workers)
            .map(|_| {
                let (ok, failed, stop) = (Arc::clone(&ok), Arc::clone(&failed), Arc::clone(&stop));
                std::thread::spawn(move || {
                    // Bounded: at most 10 000 round trips per worker.
                    for _ in 0..10_000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let counter = if tunnel_round_trip(proxy, target) { &ok } else { &failed };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
    })
}

#[test]
fn reload_under_load_fails_no_request() {
    const PROXY: &str = "127.0.10.11:31280";
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("127.0.10.20:0".parse().unwrap());
    let hop = Hop::start(
        "r",
        dir.path(),
        PROXY.parse().unwrap(),
        &config(dir.path(), PROXY, "http_access allow all"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let runner = load(PROXY, echo.addr, 4, Arc::clone(&stop));
    let mut logged = 0;
    for i in 0..6 {
        // Each reload lands while requests are flowing: wait for fresh log lines first.
        logged = wait_for_log_lines(&hop.access_log, logged + 10);
        // Alternate between two valid configs, and once a broken one that must be rejected.
        let rules = match i % 3 {
            0 => "acl here src 127.0.0.0/8\nhttp_access allow here\nhttp_access deny all".to_string(),
            1 => "http_access allow all".to_string(),
            _ => "http_access allow nosuchacl".to_string(),
        };
        std::fs::write(&hop.config, config(dir.path(), PROXY, &rules)).unwrap();
        hop.signal("HUP");
        wait_for_reloads(&hop, i + 1);
    }
    wait_for_log_lines(&hop.access_log, logged + 10);
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = runner.join().unwrap();
    assert_eq!(failed, 0, "{ok} ok, {failed} failed\n{}", hop.stderr_text());
    assert!(ok > 20, "the load ran: {ok}");
    let stderr = hop.stderr_text();
    assert_eq!(
        stderr.matches("reloaded: new connections use the new config").count(),
        4,
        "{stderr}"
    );
    assert_eq!(stderr.matches("reload rejected").count(), 2, "{stderr}");
    let lines = hop.wait_for_lines(ok);
    assert_eq!(lines.len(), ok, "one log line per request");
    assert!(lines.iter().all(|l| parse_log_line(l).code == "TCP_TUNNEL/200"));
}

#[test]
fn reload_changes_policy_for_new_connections_only() {
    const PROXY: &str = "127.0.11.11:31280";
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("127.0.11.20:0".parse().unwrap());
    let hop = Hop::start(
        "r",
        dir.path(),
        PROXY.parse().unwrap(),
        &config(dir.path(), PROXY, "http_access allow all"),
    );
    let mut open = TcpStream::connect(PROXY).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    open.write_all(format!("CONNECT {} HTTP/1.1\r\n\r\n", echo.addr).as_bytes())
        .unwrap();
    let mut head = [0u8; 39];
    open.read_exact(&mut head).unwrap();
    assert_eq!(
        &head, b"HTTP/1.1 200 Connection established\r\n\r\n",
        "allowed before the reload"
    );

    std::fs::write(&hop.config, config(dir.path(), PROXY, "http_access deny all")).unwrap();
    let reload = std::process::Command::new(common::hopproxy_bin())
        .args(["reload", "-c"])
        .arg(&hop.config)
        .output()
        .unwrap();
    assert!(reload.status.success(), "{}", String::from_utf8_lossy(&reload.stderr));
    hop.wait_for_stderr("reloaded: new connections use the new config");
    // Denied by the new rules, and said so by this proxy: not just any failure.
    let reply = common::exchange(PROXY, format!("CONNECT {} HTTP/1.1\r\n\r\n", echo.addr).as_bytes());
    assert!(reply.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{reply}");
    let status = common::header(&reply, "Proxy-Status").unwrap_or_default();
    assert!(status.starts_with("r.test; error=http_request_denied"), "{status}");
    let target = echo.addr.to_string();
    hop.wait_for_match("the denial", |l| l.code == "TCP_DENIED/403" && l.url == target);
    // The tunnel opened before the reload still carries bytes both ways.
    open.write_all(b"still open").unwrap();
    let mut back = [0u8; 10];
    open.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still open");
}

#[test]
fn rotation_under_load_keeps_every_line() {
    const PROXY: &str = "127.0.12.11:31280";
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("127.0.12.20:0".parse().unwrap());
    let hop = Hop::start(
        "r",
        dir.path(),
        PROXY.parse().unwrap(),
        &config(dir.path(), PROXY, "http_access allow all"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let runner = load(PROXY, echo.addr, 4, Arc::clone(&stop));
    let mut rotated = Vec::new();
    for i in 0..3 {
        // Rotate while requests flow: wait for fresh lines in the current file first.
        wait_for_log_lines(&hop.access_log, 10);
        // What logrotate does: move the file away, then tell the daemon to reopen.
        let moved = dir.path().join(format!("r.access.log.{i}"));
        std::fs::rename(&hop.access_log, &moved).unwrap();
        hop.signal("USR1");
        rotated.push(moved);
    }
    wait_for_log_lines(&hop.access_log, 10);
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = runner.join().unwrap();
    assert_eq!(failed, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let count_all = || -> Vec<String> {
        rotated
            .iter()
            .chain(std::iter::once(&hop.access_log))
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let mut lines = count_all();
    while lines.len() < ok && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        lines = count_all();
    }
    assert_eq!(
        lines.len(),
        ok,
        "every transaction has exactly one line across the rotated files"
    );
    for line in &lines {
        assert_eq!(
            parse_log_line(line).code,
            "TCP_TUNNEL/200",
            "whole, well-formed line: {line}"
        );
    }
    for file in &rotated {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "no line cut at a rotation");
    }
}
