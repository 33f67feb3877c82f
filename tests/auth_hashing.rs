//! Where password hashes are checked: on the runtime's blocking pool, never on the worker
//! threads that relay. Seen from outside through the proxy's threads (`/proc/PID/task`): the
//! workers exist from the start, one per core; hash checks run on threads the pool adds, and
//! the hashing CPU time lands on those.
//!
//! "At most one per core" (a semaphore in front of the pool) has no honest outside view: a
//! pool thread that just returned a result is not yet idle when the next check is handed
//! over, so the pool may add more threads than cores even though no more than one check per
//! core runs at a time. The authenticator counts the checks running at once instead
//! (`auth_authenticator.rs`).
//! Loopback block 127.0.24.0/24.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use common::origin::echo_tcp;
use common::{Hop, keep_root};

/// The fixture's bcrypt cost-10 hash of `slow-but-sure` (tests/fixtures/auth/README.md).
const SLOW_HASH: &str = "$2y$10$yGx8/zrDifryTHUS8tcdH.ee6ZcpEk747Z4fwMzQdQHjJYzo6I0Sq";
const PASSWORD: &str = "slow-but-sure";

/// More checks at once than the machine has cores (each user is checked once: the
/// credentials cache is per user and password).
const USERS: usize = 16;

/// Each runtime thread of process `pid` (tokio names workers and blocking-pool threads
/// alike): its id and the CPU time it used so far, in clock ticks.
fn runtime_threads(pid: u32) -> BTreeMap<u32, u64> {
    let mut threads = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return threads;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with("tokio-") {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // After the name in parentheses: fields 3.. (state first); utime and stime are 14, 15.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
            + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
        if let Ok(tid) = task.file_name().to_string_lossy().parse() {
            threads.insert(tid, ticks);
        }
    }
    threads
}

fn passwd(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("passwd");
    let lines: String = (0..USERS).map(|i| format!("user{i}:{SLOW_HASH}\n")).collect();
    std::fs::write(&path, lines).unwrap();
    path
}

/// A CONNECT through `proxy` to `target` as `user`; the status line of the answer.
fn connect_as(proxy: SocketAddr, target: SocketAddr, user: &str) -> String {
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{PASSWORD}"));
    let mut s = TcpStream::connect_timeout(&proxy, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nProxy-Authorization: Basic {credentials}\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).trim_end().to_string()
}

#[test]
fn hash_checks_run_on_threads_the_blocking_pool_adds_not_on_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_tcp("127.0.24.20:0".parse().unwrap());
    let proxy: SocketAddr = "127.0.24.10:31280".parse().unwrap();
    let config = keep_root(&format!(
        "http_port {proxy}\naccess_log stdio:{} squid\nvisible_hostname hashing.test\n\
         shutdown_lifetime 3 seconds\n\
         auth_param basic program /usr/lib/squid/basic_ncsa_auth {}\n\
         acl users proxy_auth REQUIRED\nhttp_access allow users\nhttp_access deny all",
        Hop::log_path(dir.path(), "hashing").display(),
        passwd(dir.path()).display()
    ));
    let hop = Hop::start("hashing", dir.path(), proxy, &config);
    // Before any request, the runtime's threads are its workers, one per core.
    let workers = runtime_threads(hop.pid());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(workers.len(), cores, "the runtime's threads at start: {workers:?}");

    let checks: Vec<_> = (0..USERS)
        .map(|i| {
            let target = echo.addr;
            std::thread::spawn(move || connect_as(proxy, target, &format!("user{i}")))
        })
        .collect();
    let answers: Vec<String> = checks.into_iter().map(|c| c.join().unwrap()).collect();
    for answer in &answers {
        assert_eq!(answer, "HTTP/1.1 200 Connection established", "{answers:#?}");
    }
    // Idle pool threads live on for seconds: they are all still there.
    let after = runtime_threads(hop.pid());
    let on_workers: u64 = workers
        .iter()
        .map(|(tid, start)| after.get(tid).unwrap_or(start) - start)
        .sum();
    let added: Vec<u64> = after
        .iter()
        .filter(|(tid, _)| !workers.contains_key(tid))
        .map(|(_, ticks)| *ticks)
        .collect();
    let on_added: u64 = added.iter().sum();
    assert!(
        !added.is_empty(),
        "no thread was added: the hashes ran on the workers ({on_workers} ticks)"
    );
    // Sixteen cost-10 bcrypt runs against a few parsed heads and tunnel set-ups.
    assert!(
        on_added > 4 * on_workers.max(1),
        "CPU ticks: {on_added} on {} added threads, {on_workers} on the workers",
        added.len()
    );
}
