//! Secure by default: `check --strict` refuses open doors (the seed's policy) and passes what
//! the project ships or generates (the packaged config, the lab's configs); `lab
//! --keep-running` stops every proxy it started on SIGTERM and SIGHUP, and removes its
//! temporary directory. The lab picks its own random `127.64+` block.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hopproxy::lab::process::ChildGuard;

fn hopproxy(args: &[&str]) -> Output {
    Command::new(common::hopproxy_bin()).args(args).output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn strict_check_refuses_the_seed_policy_and_passes_the_shipped_config() {
    for name in ["seed-proxy1.conf", "seed-proxy2.conf"] {
        let path = repo("tests/fixtures").join(name);
        let path = path.to_str().unwrap();
        let plain = hopproxy(&["check", "-c", path]);
        assert!(plain.status.success(), "{}", text(&plain));
        let strict = hopproxy(&["check", "--strict", "-c", path]);
        assert_eq!(strict.status.code(), Some(1), "{}", text(&strict));
        let out = text(&strict);
        assert!(out.contains("warning: open proxy:"), "{out}");
        assert!(
            out.lines()
                .any(|l| l == format!("{path}: refused by --strict: 2 open-proxy findings (see the warnings above)")),
            "{out}"
        );
    }
    let shipped = repo("packaging/squid.conf");
    let strict = hopproxy(&["check", "--strict", "-c", shipped.to_str().unwrap()]);
    assert!(strict.status.success(), "{}", text(&strict));
}

/// The lab's configs, written with `--dir`, pass `check --strict` as they are.
#[test]
fn lab_configs_pass_the_strict_check() {
    let dir = tempfile::tempdir().unwrap();
    let lab = hopproxy(&["lab", "--hops", "3", "--dir", dir.path().to_str().unwrap()]);
    let out = text(&lab);
    assert!(lab.status.success(), "{out}");
    assert!(out.contains("least privilege"), "{out}");
    for index in 1..=3 {
        let config = dir.path().join(format!("proxy{index}/squid.conf"));
        let strict = hopproxy(&["check", "--strict", "-c", config.to_str().unwrap()]);
        assert!(strict.status.success(), "proxy {index}: {}", text(&strict));
        assert!(text(&strict).contains("OK (0 warnings"), "{}", text(&strict));
    }
}

/// The pids of `parent`'s children, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Field 4 (ppid) comes after the command name, which is in parentheses.
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

/// Alive and not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 1..].trim_start().starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

fn stop_lab_with(signal: &str) {
    let mut command = Command::new(common::hopproxy_bin());
    command
        .args(["lab", "--keep-running"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut lab = ChildGuard::spawn("lab", &mut command).unwrap();
    let pid = lab.id().unwrap();
    let stdout = lab_stdout(&mut lab);
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        })
    };
    let seen = |needle: &str| lines.lock().unwrap().iter().any(|l| l.contains(needle));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen("The chain stays up") {
        assert!(
            lab.try_status().is_none(),
            "lab ended early: {:#?}",
            lines.lock().unwrap()
        );
        assert!(
            Instant::now() < deadline,
            "lab not up within 30 s: {:#?}",
            lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = lines
        .lock()
        .unwrap()
        .iter()
        .find_map(|l| l.split_once("files in ").map(|(_, d)| PathBuf::from(d.trim())))
        .expect("the lab says where its files are");
    assert!(seen("removed when the lab ends"), "{:#?}", lines.lock().unwrap());
    assert!(dir.is_dir());
    let proxies = children_of(pid);
    assert_eq!(proxies.len(), 2, "two hopproxy run children: {proxies:?}");

    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
    assert!(status.unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(status) = lab.try_status() {
            break status;
        }
        assert!(Instant::now() < deadline, "lab still running 15 s after SIG{signal}");
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    assert_eq!(exit.code(), Some(130), "SIG{signal}: {:#?}", lines.lock().unwrap());
    for proxy in proxies {
        assert!(!running(proxy), "SIG{signal}: proxy pid {proxy} still runs");
    }
    assert!(!dir.exists(), "SIG{signal}: {} left behind", dir.display());
    assert!(seen("lab: removed"), "{:#?}", lines.lock().unwrap());
}

fn lab_stdout(lab: &mut ChildGuard) -> std::process::ChildStdout {
    lab.take_stdout().expect("piped stdout")
}

#[test]
fn lab_keep_running_stops_its_proxies_on_sigterm() {
    stop_lab_with("TERM");
}

#[test]
fn lab_keep_running_stops_its_proxies_on_sighup() {
    stop_lab_with("HUP");
}
