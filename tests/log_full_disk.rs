//! The access log when the disk or the file fails: records are whole or absent (a full disk
//! never leaves a fragment for the next record to be glued to), lost records are reported once
//! per episode with their count, and logging comes back by itself.
//!
//! The full-disk test mounts a small tmpfs itself (root and mount(8) needed); without them it
//! prints a line starting `SKIPPED:` and passes. Loopback block 127.0.63.0/24.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Hop, exchange, parse_log_line};

/// A tmpfs mounted for one test, unmounted when dropped (also when the test panics).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| format!("id -u: {e}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not running as root (mounting a tmpfs needs root)".into());
        }
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs { dir: dir.to_path_buf() })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let clean = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !clean {
            // Still busy (a process outlived the test): detach it now, it goes when they do.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Written straight to the test's stderr so it shows even when cargo captures output.
fn skipped(reason: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
}

fn config(listen: &str, log: &Path) -> String {
    format!(
        "http_port {listen}\naccess_log stdio:{} squid\nvisible_hostname disk.test\n\
         shutdown_lifetime 1 seconds\nhttp_access allow all\n",
        log.display()
    )
}

/// One CONNECT to the echo server and back; every one gives a log record of the same length.
fn tunnel(proxy: &str, echo: SocketAddr) {
    let reply = exchange(proxy, format!("CONNECT {echo} HTTP/1.1\r\n\r\nping").as_bytes());
    assert_eq!(reply, "HTTP/1.1 200 Connection established\r\n\r\nping");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Every line is one whole, well-formed record and the file ends at a record's end.
fn assert_whole_records(text: &str) -> usize {
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a cut record at the end: {text:?}"
    );
    for line in text.lines() {
        assert_eq!(parse_log_line(line).code, "TCP_TUNNEL/200", "{line:?}");
    }
    text.lines().count()
}

/// Waits (bounded, 15 s) until `done` holds for the hop's stderr; returns it.
fn wait_for_stderr(hop: &Hop, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = hop.stderr_text();
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "waited for {what}; stderr:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded, 10 s) until the log holds `count` lines.
fn wait_for_lines(path: &Path, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = read(path);
        if text.lines().count() >= count || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const LOSS_STARTS: &str = "losing records until it works again";
const LOSS_ENDS: &str = "writing again after losing ";

#[test]
fn a_full_disk_loses_whole_records_only_and_logging_comes_back() {
    const PROXY: &str = "127.0.63.11:3128";
    let dir = tempfile::tempdir().unwrap();
    // Declared before the hop so it is unmounted after the hop has stopped.
    let disk = match Tmpfs::mount(&dir.path().join("disk"), "64k") {
        Ok(disk) => disk,
        Err(reason) => return skipped(&format!("a_full_disk_loses_whole_records_only: {reason}")),
    };
    let log = disk.dir.join("access.log");
    let echo = common::origin::echo_tcp("127.0.63.20:0".parse().unwrap());
    // Config and stderr stay off the small disk: the report must not be lost with the records.
    let hop = Hop::start("disk", dir.path(), PROXY.parse().unwrap(), &config(PROXY, &log));

    tunnel(PROXY, echo.addr);
    assert_eq!(assert_whole_records(&wait_for_lines(&log, 1)), 1);

    // Fill every free page; the log's own page keeps its slack, so the next records fill that
    // and then one is cut in the middle by the full disk.
    let mut filler = std::fs::File::create(disk.dir.join("filler")).unwrap();
    let page = [b'x'; 4096];
    let full = (0..1000).any(|_| filler.write_all(&page).is_err());
    assert!(full, "the 64k tmpfs filled up");
    drop(filler);

    let mut sent = 1;
    for _ in 0..80 {
        tunnel(PROXY, echo.addr);
        sent += 1;
    }
    let stderr = wait_for_stderr(&hop, "the loss report", |s| s.contains(LOSS_STARTS));
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let kept_while_full = assert_whole_records(&read(&log));
    assert!(
        kept_while_full > 1 && kept_while_full < sent,
        "{kept_while_full} of {sent} kept"
    );

    std::fs::remove_file(disk.dir.join("filler")).unwrap();
    for _ in 0..10 {
        tunnel(PROXY, echo.addr);
        sent += 1;
    }
    let stderr = wait_for_stderr(&hop, "the recovery report", |s| s.contains(LOSS_ENDS));
    let lost: usize = stderr
        .lines()
        .find_map(|l| l.split(LOSS_ENDS).nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count in the recovery line: {stderr}"));
    assert!(lost >= 1, "{stderr}");
    let text = wait_for_lines(&log, sent - lost);
    assert_eq!(
        assert_whole_records(&text),
        sent - lost,
        "records kept + reported lost = sent"
    );
    assert!(
        text.lines().count() >= kept_while_full + 10,
        "the new records are there"
    );
    assert_eq!(
        stderr.matches(LOSS_STARTS).count(),
        1,
        "one report per episode: {stderr}"
    );
    assert_eq!(stderr.matches(LOSS_ENDS).count(), 1, "{stderr}");
}

#[test]
fn a_failed_reopen_keeps_the_old_file_and_retries_by_itself() {
    const PROXY: &str = "127.0.63.12:3128";
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("access.log");
    let echo = common::origin::echo_tcp("127.0.63.21:0".parse().unwrap());
    let hop = Hop::start("reopen", dir.path(), PROXY.parse().unwrap(), &config(PROXY, &log));
    tunnel(PROXY, echo.addr);
    wait_for_lines(&log, 1);

    // The directory is gone when the rotation signal comes: the path cannot be opened.
    let moved = dir.path().join("logs.old");
    std::fs::rename(&logs, &moved).unwrap();
    hop.signal("USR1");
    let stderr = wait_for_stderr(&hop, "the reopen failure", |s| s.contains("cannot open access log"));
    assert!(
        stderr.contains("records still go to the file opened before"),
        "{stderr}"
    );
    tunnel(PROXY, echo.addr);
    assert_eq!(assert_whole_records(&wait_for_lines(&moved.join("access.log"), 2)), 2);

    // The directory is back: the next retry opens the path, no signal needed.
    std::fs::create_dir(&logs).unwrap();
    wait_for_stderr(&hop, "the retried reopen", |s| s.contains("reopened after"));
    tunnel(PROXY, echo.addr);
    assert_eq!(assert_whole_records(&wait_for_lines(&log, 1)), 1);
    let stderr = hop.stderr_text();
    assert_eq!(
        stderr.matches("cannot open access log").count(),
        1,
        "reported once: {stderr}"
    );
    assert!(!stderr.contains(LOSS_STARTS), "nothing was lost: {stderr}");
}

#[test]
fn a_removed_log_file_is_created_again() {
    const PROXY: &str = "127.0.63.13:3128";
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let echo = common::origin::echo_tcp("127.0.63.22:0".parse().unwrap());
    let hop = Hop::start("removed", dir.path(), PROXY.parse().unwrap(), &config(PROXY, &log));
    tunnel(PROXY, echo.addr);
    wait_for_lines(&log, 1);
    // The log then stays idle longer than the once-a-second removal check: the check must
    // come back with the next record, not only run while records keep coming.
    std::thread::sleep(Duration::from_millis(1500));

    std::fs::remove_file(&log).unwrap();
    // Records written before the removal is noticed (checked once a second) go to the
    // removed file; keep logging (bounded) until the new file appears.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.exists() {
        assert!(Instant::now() < deadline, "no new file; stderr:\n{}", hop.stderr_text());
        tunnel(PROXY, echo.addr);
        std::thread::sleep(Duration::from_millis(100));
    }
    tunnel(PROXY, echo.addr);
    assert!(assert_whole_records(&wait_for_lines(&log, 1)) >= 1);
    let stderr = hop.stderr_text();
    assert_eq!(stderr.matches("was removed; creating it again").count(), 1, "{stderr}");
    // The new file opened at the first try: no failed tries to report.
    assert!(!stderr.contains("failed tries"), "{stderr}");
}
