//! `cache_effective_user` / `cache_effective_group`: a proxy started as root serves as the
//! configured user, as `/proc/PID/status` shows (real, effective, saved and filesystem IDs),
//! keeps writing the log it opened as root, and without the directive switches to the default
//! user. Needs root; skipped (and said so) otherwise.

mod common;

use std::net::SocketAddr;

use common::Hop;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// `(uid, gid)` of `name` from the password database, if it exists.
fn user_ids(name: &str) -> Option<(String, String)> {
    let out = std::process::Command::new("getent")
        .args(["passwd", name])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let fields: Vec<&str> = line.trim().split(':').collect();
    (fields.len() >= 4).then(|| (fields[2].to_string(), fields[3].to_string()))
}

fn group_id(name: &str) -> Option<String> {
    let out = std::process::Command::new("getent")
        .args(["group", name])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.trim().split(':').nth(2).map(str::to_string)
}

/// The `Uid:`, `Gid:` and `Groups:` lines of a process.
fn ids_of(pid: u32) -> (String, String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .map(|l| l[key.len()..].split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    (line("Uid:"), line("Gid:"), line("Groups:"))
}

fn serve_one(hop: &Hop, origin: SocketAddr) {
    let request = format!("GET http://{origin}/x HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n");
    let reply = common::exchange(&hop.addr.to_string(), request.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    hop.wait_for_match("the request after the switch", |l| l.code == "TCP_MISS/200");
}

#[test]
fn configured_user_and_group_show_in_proc() {
    if !is_root() {
        common::skip("needs root: only a process started as root switches user");
        return;
    }
    let (Some((uid, _)), Some(gid)) = (user_ids("nobody"), group_id("nogroup").or_else(|| group_id("nobody"))) else {
        common::skip("no 'nobody' user or 'nogroup'/'nobody' group on this machine");
        return;
    };
    let group = if group_id("nogroup").is_some() {
        "nogroup"
    } else {
        "nobody"
    };
    let dir = tempfile::tempdir().unwrap();
    let origin = common::origin::echo_origin("127.0.94.20:0".parse().unwrap());
    let config = common::hop_config(
        dir.path(),
        "drop",
        "127.0.94.1:31280",
        &format!("http_access allow all\ncache_effective_user nobody\ncache_effective_group {group}"),
    );
    let hop = Hop::start("drop", dir.path(), "127.0.94.1:31280".parse().unwrap(), &config);
    hop.wait_for_stderr("running as user nobody");
    let (uids, gids, groups) = ids_of(hop.pid());
    assert_eq!(uids, format!("{uid} {uid} {uid} {uid}"));
    assert_eq!(gids, format!("{gid} {gid} {gid} {gid}"));
    assert_eq!(groups, gid, "cache_effective_group is the only group");
    // The log opened as root in a directory nobody cannot write still gets its lines.
    serve_one(&hop, origin.addr);
}

#[test]
fn default_user_when_started_as_root() {
    if !is_root() {
        common::skip("needs root: only a process started as root switches user");
        return;
    }
    // The packaged system user, else Squid's built-in default.
    let (name, (uid, gid)) = match user_ids("hopproxy") {
        Some(ids) => ("hopproxy", ids),
        None => match user_ids("nobody") {
            Some(ids) => ("nobody", ids),
            None => {
                common::skip("neither a 'hopproxy' nor a 'nobody' user on this machine");
                return;
            }
        },
    };
    let dir = tempfile::tempdir().unwrap();
    let origin = common::origin::echo_origin("127.0.94.21:0".parse().unwrap());
    // Naming the directive in a comment keeps the harness from adding `cache_effective_user root`.
    let config = format!(
        "http_port 127.0.94.2:31280\naccess_log stdio:{} squid\nhttp_access allow all\n\
         # no cache_effective_user: the default applies\n",
        Hop::log_path(dir.path(), "default").display()
    );
    let hop = Hop::start("default", dir.path(), "127.0.94.2:31280".parse().unwrap(), &config);
    hop.wait_for_stderr(&format!("running as user {name}"));
    let (uids, gids, _) = ids_of(hop.pid());
    assert_eq!(uids, format!("{uid} {uid} {uid} {uid}"));
    assert_eq!(gids, format!("{gid} {gid} {gid} {gid}"));
    serve_one(&hop, origin.addr);
}

/// Rotation after the switch: the user reopens the log by path, as Squid does, so a log
/// directory it owns gets a fresh file after the old one was moved away.
#[test]
fn rotation_after_the_switch_needs_a_directory_the_user_can_write() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !is_root() {
        common::skip("needs root: only a process started as root switches user");
        return;
    }
    let Some((uid, _)) = user_ids("nobody") else {
        common::skip("no 'nobody' user on this machine");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The user must be able to reach the log directory; the test's own files stay private.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let status = std::process::Command::new("chown")
        .arg("nobody")
        .arg(&logs)
        .status()
        .unwrap();
    assert!(status.success());
    let origin = common::origin::echo_origin("127.0.94.22:0".parse().unwrap());
    let log = logs.join("access.log");
    let config = format!(
        "http_port 127.0.94.4:31280\naccess_log stdio:{} squid\nhttp_access allow all\n\
         cache_effective_user nobody\n",
        log.display()
    );
    let mut hop = Hop::start("rotate", dir.path(), "127.0.94.4:31280".parse().unwrap(), &config);
    hop.access_log = log.clone();
    hop.wait_for_stderr("running as user nobody");
    serve_one(&hop, origin.addr);
    std::fs::rename(&log, logs.join("access.log.1")).unwrap();
    hop.signal("USR1");
    // The reopen happens on the writer's next record or tick; wait for the new file by content.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let request = format!(
            "GET http://{}/after HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            origin.addr, origin.addr
        );
        let reply = common::exchange(&hop.addr.to_string(), request.as_bytes());
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        if std::fs::read_to_string(&log).is_ok_and(|t| t.contains("/after")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new log file after rotation; stderr:\n{}",
            hop.stderr_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let owner = std::fs::metadata(&log).unwrap().uid().to_string();
    assert_eq!(
        owner, uid,
        "the new log file is created by the user hopproxy switched to"
    );
    let old = std::fs::read_to_string(logs.join("access.log.1")).unwrap();
    assert!(old.contains("/x "), "{old}");
}

#[test]
fn unknown_user_stops_the_start() {
    if !is_root() {
        common::skip("needs root: the user is looked up only when started as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unknown.conf");
    std::fs::write(
        &path,
        "http_port 127.0.94.3:31280\nhttp_access deny all\naccess_log none\npid_filename none\n\
         cache_effective_user no-such-user-here\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::hopproxy_bin())
        .args(["run", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cache_effective_user 'no-such-user-here' does not exist"),
        "{stderr}"
    );
}
