//! Parent health over time: a parent unreachable when the proxy starts is marked down and
//! revived by the background probe alone, with no client request spent on it (Squid sacrifices
//! one: docs/squid-behaviour.md F7); revived, it is first again ahead of a spare parent (a
//! parent still down would be tried after the spare). Loopback block 127.0.89.0/24.

mod common;

use common::origin::echo_origin;
use common::{Hop, exchange, hop_config, parse_log_line};

#[test]
fn a_parent_down_at_start_is_revived_by_the_background_probe() {
    let dir = tempfile::tempdir().unwrap();
    let origin = echo_origin("127.0.89.20:0".parse().unwrap());
    let parent = "127.0.89.12:31280";
    let spare = Hop::start(
        "spare",
        dir.path(),
        "127.0.89.13:31280".parse().unwrap(),
        &hop_config(dir.path(), "spare", "127.0.89.13:31280", "http_access allow all"),
    );
    let rules = "cache_peer 127.0.89.12 parent 31280 0 no-query name=up\n\
                 cache_peer 127.0.89.13 parent 31280 0 no-query name=spare\n\
                 never_direct allow all\nhttp_access allow all";
    let p1 = Hop::start(
        "p1",
        dir.path(),
        "127.0.89.11:31280".parse().unwrap(),
        &hop_config(dir.path(), "p1", "127.0.89.11:31280", rules),
    );
    p1.wait_for_stderr("parent unreachable at start-up");
    let p2 = Hop::start(
        "p2",
        dir.path(),
        parent.parse().unwrap(),
        &hop_config(dir.path(), "p2", parent, "http_access allow all"),
    );
    // No request has been sent: only the probe can bring it back.
    p1.wait_for_stderr("parent is reachable again (background probe)");
    assert!(p1.log_lines().is_empty(), "{:?}", p1.log_lines());

    let reply = exchange(
        &p1.addr.to_string(),
        format!("GET http://{}/page HTTP/1.1\r\nConnection: close\r\n\r\n", origin.addr).as_bytes(),
    );
    assert!(
        reply.starts_with("HTTP/1.1 200 OK\r\n"),
        "{reply}\n{}",
        p1.stderr_text()
    );
    let lines = p1.wait_for_lines(1);
    let line = parse_log_line(&lines[0]);
    assert_eq!(line.code, "TCP_MISS/200", "{lines:#?}");
    assert!(
        line.hierarchy.ends_with("/127.0.89.12"),
        "the revived parent first: {lines:#?}"
    );
    p2.wait_for_lines(1);
    assert!(spare.log_lines().is_empty(), "{:?}", spare.log_lines());
}
