//! Delay pools on real sockets: one proxy, one pool (class 1, 64 KiB/s, 16 KiB bucket) that
//! `delay_access` gives to one client address only. A shaped and an unshaped transfer of the
//! same response run side by side, through a CONNECT tunnel and as plain HTTP. Both arrive
//! whole; the shaped one never gets ahead of what its bucket allows (rate × time the test
//! itself measured + bucket + tolerance), a bound a slower machine only makes easier to meet,
//! while the unshaped one is done long before. No assertion on how fast the fast path is.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::Hop;
use common::origin::{Act, scripted};

const SHAPED_CLIENT: &str = "127.0.95.2";
const UNSHAPED_CLIENT: &str = "127.0.95.3";
const RATE: u64 = 64 * 1024;
const BUCKET: u64 = 16 * 1024;
/// What the shaped client may receive beyond its share: granted-but-unwritten bytes and
/// timer slack.
const TOLERANCE: u64 = 32 * 1024;
/// Long enough that the shaped transfer takes seconds (about 3.5 s at the rate).
const BODY: usize = 256 * 1024;

fn body() -> Vec<u8> {
    (0..BODY).map(|i| (i % 251) as u8).collect()
}

fn response() -> Vec<u8> {
    let mut out =
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {BODY}\r\n\r\n")
            .into_bytes();
    out.extend_from_slice(&body());
    out
}

/// The pool of most tests: class 1, for the shaped client's address only.
fn class_one_pool() -> String {
    format!(
        "acl slow src {SHAPED_CLIENT}\n\
         delay_pools 1\n\
         delay_class 1 1\n\
         delay_parameters 1 {RATE}/{BUCKET}\n\
         delay_access 1 allow slow\n\
         delay_access 1 deny all\n\
         http_access allow all\n"
    )
}

fn proxy_config(dir: &std::path::Path, listen: &str) -> String {
    common::hop_config(dir, "shaper", listen, &class_one_pool())
}

/// A transfer running in its own thread: what arrived so far, and everything at the end.
struct Transfer {
    received: Arc<AtomicU64>,
    started: Instant,
    done: JoinHandle<(Vec<u8>, Instant)>,
}

fn start_transfer(source: &str, proxy: SocketAddr, request: String) -> Transfer {
    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    let source: IpAddr = source.parse().unwrap();
    let started = Instant::now();
    let done = std::thread::spawn(move || {
        let mut stream = common::connect_from(source, proxy);
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut all = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        // Bounded: each read waits at most 30 s, and the total is a fixed size.
        while all.len() <= 2 * BODY {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    all.extend_from_slice(&buf[..n]);
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
        (all, Instant::now())
    });
    Transfer {
        received,
        started,
        done,
    }
}

/// Most the shaped client may have received `elapsed` after it started: the bucket starts
/// half full (`delay_initial_bucket_level` 50) and refills at `RATE`, capped at `BUCKET`.
fn allowed(elapsed: Duration, overhead: u64) -> u64 {
    overhead + BUCKET / 2 + (RATE as f64 * elapsed.as_secs_f64()) as u64 + TOLERANCE
}

fn side_by_side(block_host: u8, request: impl Fn(SocketAddr) -> String, expected_prefix: &[u8]) {
    side_by_side_with(
        block_host,
        &class_one_pool(),
        |origin, _| request(origin),
        expected_prefix,
    );
}

/// `request(origin, client)` builds each client's request; `pool_lines` configure the proxy.
fn side_by_side_with(
    block_host: u8,
    pool_lines: &str,
    request: impl Fn(SocketAddr, &str) -> String,
    expected_prefix: &[u8],
) {
    let dir = tempfile::tempdir().unwrap();
    let origin = scripted(format!("127.0.95.{}:0", block_host + 10).parse().unwrap(), |_| {
        Act::ReplyClose(response())
    });
    let proxy_addr: SocketAddr = format!("127.0.95.{block_host}:31280").parse().unwrap();
    let config = common::hop_config(dir.path(), "shaper", &proxy_addr.to_string(), pool_lines);
    let proxy = Hop::start("shaper", dir.path(), proxy_addr, &config);
    let origin_addr = origin.server.addr;

    let shaped = start_transfer(SHAPED_CLIENT, proxy_addr, request(origin_addr, SHAPED_CLIENT));
    let unshaped = start_transfer(UNSHAPED_CLIENT, proxy_addr, request(origin_addr, UNSHAPED_CLIENT));
    let (fast, _) = unshaped.done.join().unwrap();
    // Read the shaped count first, then the clock: the bound only gets looser.
    let shaped_so_far = shaped.received.load(Ordering::Relaxed);
    let elapsed = shaped.started.elapsed();
    let overhead = expected_prefix.len() as u64;
    assert!(
        shaped_so_far <= allowed(elapsed, overhead),
        "shaped client got {shaped_so_far} bytes in {elapsed:?}: more than its pool allows"
    );

    let (slow, finished) = shaped.done.join().unwrap();
    let shaped_time = finished - shaped.started;
    for (what, got) in [("unshaped", &fast), ("shaped", &slow)] {
        assert!(
            got.starts_with(expected_prefix),
            "{what}: {:?}",
            String::from_utf8_lossy(&got[..80.min(got.len())])
        );
        let response = &got[expected_prefix.len()..];
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head")
            + 4;
        assert!(response.starts_with(b"HTTP/1.1 200"), "{what}");
        assert!(
            response[split..] == body()[..],
            "{what}: body arrives whole ({} bytes)",
            response.len() - split
        );
    }
    assert!(
        slow.len() as u64 <= allowed(shaped_time, overhead),
        "shaped client got all {} bytes in {shaped_time:?}: faster than its pool allows",
        slow.len()
    );
    // Both transactions are logged with every byte sent to their client (a tunnel's line is
    // written when it closes, after its client saw the end).
    common::wait_until("two log lines", || proxy.log_lines().len() >= 2);
    let lines: Vec<_> = proxy.log_lines().iter().map(|l| common::parse_log_line(l)).collect();
    for (client, got) in [(SHAPED_CLIENT, &slow), (UNSHAPED_CLIENT, &fast)] {
        let line = common::the_line(&lines, client, |l| l.client == client);
        assert_eq!(line.bytes, got.len() as u64, "{client}");
    }
}

#[test]
fn a_shaped_tunnel_is_held_to_its_pool_while_an_unshaped_one_runs_free() {
    side_by_side(
        1,
        |origin| {
            format!("CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\nGET /bulk HTTP/1.1\r\nHost: {origin}\r\n\r\n")
        },
        b"HTTP/1.1 200 Connection established\r\n\r\n",
    );
}

#[test]
fn a_shaped_plain_http_body_is_held_to_its_pool_too() {
    side_by_side(
        5,
        |origin| format!("GET http://{origin}/bulk HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n"),
        b"",
    );
}

/// Class 4: the authenticated user's bucket shapes; a request without a user skips it (the
/// pool's other buckets are unlimited here), as in Squid.
#[test]
fn class_four_shapes_by_the_authenticated_user() {
    let passwd = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/auth/passwd");
    let pool = format!(
        "auth_param basic program /usr/lib/squid/basic_ncsa_auth {}\n\
         acl users proxy_auth REQUIRED\n\
         acl anonymous src {UNSHAPED_CLIENT}\n\
         http_access allow anonymous\n\
         http_access allow users\n\
         delay_pools 1\n\
         delay_class 1 4\n\
         delay_parameters 1 -1/-1 -1/-1 -1/-1 {RATE}/{BUCKET}\n\
         delay_access 1 allow all\n",
        passwd.display()
    );
    // apr1-user's password is "apr1 pass" (tests/fixtures/auth/README.md).
    let credentials = "YXByMS11c2VyOmFwcjEgcGFzcw==";
    side_by_side_with(
        9,
        &pool,
        |origin, client| {
            let auth = if client == SHAPED_CLIENT {
                format!("Proxy-Authorization: Basic {credentials}\r\n")
            } else {
                String::new()
            };
            format!("GET http://{origin}/bulk HTTP/1.1\r\nHost: {origin}\r\n{auth}Connection: close\r\n\r\n")
        },
        b"",
    );
}

/// Pools belong to the config: a reload that adds one shapes the next transfer of a client
/// that went unshaped before it.
#[test]
fn a_reload_brings_new_pools() {
    let dir = tempfile::tempdir().unwrap();
    let origin = scripted("127.0.95.17:0".parse().unwrap(), |_| Act::ReplyClose(response()));
    let proxy_addr: SocketAddr = "127.0.95.7:31280".parse().unwrap();
    let unshaped_config = common::hop_config(dir.path(), "shaper", &proxy_addr.to_string(), "http_access allow all\n");
    let proxy = Hop::start("shaper", dir.path(), proxy_addr, &unshaped_config);
    let origin_addr = origin.server.addr;
    let request = format!("GET http://{origin_addr}/bulk HTTP/1.1\r\nHost: {origin_addr}\r\nConnection: close\r\n\r\n");

    let before = start_transfer(SHAPED_CLIENT, proxy_addr, request.clone())
        .done
        .join()
        .unwrap()
        .0;
    assert!(
        before.ends_with(&body()),
        "unshaped before the reload: {} bytes",
        before.len()
    );

    let mut shaped_config = proxy_config(dir.path(), &proxy_addr.to_string());
    shaped_config.push_str("pid_filename none\n");
    std::fs::write(&proxy.config, common::keep_root(&shaped_config)).unwrap();
    proxy.signal("HUP");
    proxy.wait_for_stderr("reloaded: new connections use the new config");

    let shaped = start_transfer(SHAPED_CLIENT, proxy_addr, request);
    let (after, finished) = shaped.done.join().unwrap();
    assert!(
        after.ends_with(&body()),
        "shaped after the reload: {} bytes",
        after.len()
    );
    let took = finished - shaped.started;
    assert!(
        after.len() as u64 <= allowed(took, 0),
        "after the reload the client got all {} bytes in {took:?}: the new pool did not shape it",
        after.len()
    );
}

#[test]
fn check_and_explain_list_the_pools_and_check_refuses_bad_lines_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.conf");
    std::fs::write(&good, proxy_config(dir.path(), "127.0.95.9:31280")).unwrap();
    let out = std::process::Command::new(common::hopproxy_bin())
        .args(["check", "-c"])
        .arg(&good)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("delay pool 1 (class 1): aggregate 65536 bytes/s, bucket 16384 bytes"),
        "{text}"
    );
    let out = std::process::Command::new(common::hopproxy_bin())
        .args(["explain", "-c"])
        .arg(&good)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("shaping: delay pool 1 (class 1)"), "{text}");
    let bad = dir.path().join("bad.conf");
    std::fs::write(
        &bad,
        "http_port 127.0.95.9:31280\nhttp_access deny all\ndelay_pools 1\ndelay_class 1 2\ndelay_parameters 1 64000/64000\ndelay_access 1 allow all\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::hopproxy_bin())
        .args(["check", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("bad.conf:5: error: delay_parameters for pool 1 has 1 RATE/MAX pair(s); its class 2 needs 2"),
        "{text}"
    );
    assert!(text.contains("hint:"), "{text}");
}
