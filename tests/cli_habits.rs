//! Operator habits: `rotate` and `stop` beside `reload`, Squid's `-k … -f FILE`, `-N`, `-v`,
//! the default pid file, and the hint when a port below 1024 is refused. Real `hopproxy run`
//! processes on 127.0.64.0/24.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Hop, hopproxy_bin};
use hopproxy::lab::process::{ChildGuard, free_port, wait_until_listening};

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 64, last])
}

fn config(dir: &Path, name: &str, addr: SocketAddr) -> String {
    common::keep_root(&format!(
        "http_port {addr}\nhttp_access deny all\n\
         access_log stdio:{} squid\npid_filename {}\nshutdown_lifetime 1 second\n",
        Hop::log_path(dir, name).display(),
        dir.join(format!("{name}.pid")).display()
    ))
}

fn hopproxy(args: &[&str]) -> Output {
    Command::new(hopproxy_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Waits (bounded) until `hop`'s stderr contains `text`.
fn wait_for_stderr(hop: &Hop, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hop.stderr_text().contains(text) {
        assert!(
            Instant::now() < deadline,
            "{}: no '{text}' in stderr:\n{}",
            hop.name,
            hop.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) for a process to exit; its status.
fn wait_exit(hop: &mut Hop) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = hop.try_status() {
            return status;
        }
        assert!(Instant::now() < deadline, "{} did not exit", hop.name);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A request through the proxy, so the access log gets a line (a 403: every rule denies).
fn request(addr: SocketAddr) {
    let result = common::curl(&["-x", &format!("http://{addr}"), "http://blocked.invalid/"]);
    assert_eq!(result.exit, 0, "{}", result.stderr);
}

#[test]
fn squid_k_front_reconfigures_rotates_checks_and_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::new(ip(1), free_port(ip(1)).unwrap());
    let mut hop = Hop::start("k", dir.path(), addr, &config(dir.path(), "k", addr));
    let conf = hop.config.to_str().unwrap().to_string();

    let check = hopproxy(&["-k", "check", "-f", &conf]);
    assert!(check.status.success(), "{}", stderr(&check));

    let reconfigure = hopproxy(&["-k", "reconfigure", "-f", &conf]);
    assert!(reconfigure.status.success(), "{}", stderr(&reconfigure));
    assert!(stderr(&reconfigure).contains("sent SIGHUP"));
    wait_for_stderr(&hop, "reloaded: new connections use the new config");

    request(addr);
    hop.wait_for_lines(1);
    let rotated = dir.path().join("k.access.log.1");
    std::fs::rename(&hop.access_log, &rotated).unwrap();
    let rotate = hopproxy(&["-k", "rotate", "-f", &conf]);
    assert!(rotate.status.success(), "{}", stderr(&rotate));
    wait_for_stderr(&hop, "SIGUSR1: reopening access logs");
    request(addr);
    let fresh = hop.wait_for_lines(1);
    assert!(fresh[0].contains("TCP_DENIED/403"), "{fresh:?}");
    assert_eq!(std::fs::read_to_string(&rotated).unwrap().lines().count(), 1);

    let shutdown = hopproxy(&["-k", "shutdown", "-f", &conf]);
    assert!(shutdown.status.success(), "{}", stderr(&shutdown));
    assert_eq!(wait_exit(&mut hop).code(), Some(0), "{}", hop.stderr_text());
    assert!(
        !dir.path().join("k.pid").exists(),
        "the pid file is removed on a clean stop"
    );

    let check = hopproxy(&["-k", "check", "-f", &conf]);
    assert_eq!(check.status.code(), Some(1), "no daemon any more: {}", stderr(&check));
}

#[test]
fn rotate_and_stop_subcommands_take_the_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::new(ip(2), free_port(ip(2)).unwrap());
    let mut hop = Hop::start("s", dir.path(), addr, &config(dir.path(), "s", addr));
    let pid_file = dir.path().join("s.pid");
    let pid_file = pid_file.to_str().unwrap();

    let rotate = hopproxy(&["rotate", "--pid-file", pid_file]);
    assert!(rotate.status.success(), "{}", stderr(&rotate));
    wait_for_stderr(&hop, "SIGUSR1: reopening access logs");

    let stop = hopproxy(&["stop", "--pid-file", pid_file]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert_eq!(wait_exit(&mut hop).code(), Some(0), "{}", hop.stderr_text());

    let again = hopproxy(&["stop", "--pid-file", pid_file]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("is hopproxy running?"), "{}", stderr(&again));
}

#[test]
fn a_stale_pid_file_naming_another_program_is_not_signalled() {
    let dir = tempfile::tempdir().unwrap();
    let mut sleeper = ChildGuard::spawn("sleep", Command::new("sleep").arg("30")).unwrap();
    let pid_file = dir.path().join("stale.pid");
    std::fs::write(&pid_file, format!("{}\n", sleeper.id().unwrap())).unwrap();
    let stop = hopproxy(&["stop", "--pid-file", pid_file.to_str().unwrap()]);
    assert_eq!(stop.status.code(), Some(1));
    assert!(stderr(&stop).contains("not hopproxy"), "{}", stderr(&stop));
    assert!(sleeper.try_status().is_none(), "sleep must still run");
}

#[test]
fn k_parse_reports_file_and_line_of_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.conf");
    std::fs::write(&path, "http_port 3128\nhttp_acces allow all\n").unwrap();
    let parse = hopproxy(&["-k", "parse", "-f", path.to_str().unwrap()]);
    assert_eq!(parse.status.code(), Some(1));
    let text = stderr(&parse);
    assert!(text.contains(&format!("{}:2:", path.display())), "{text}");

    let good = dir.path().join("good.conf");
    std::fs::write(&good, "http_port 3128\nhttp_access deny all\n").unwrap();
    let parse = hopproxy(&["-k", "parse", "-f", good.to_str().unwrap()]);
    assert!(parse.status.success(), "{}", stderr(&parse));
}

#[test]
fn v_prints_the_version_and_n_f_runs_the_proxy() {
    let version = hopproxy(&["-v"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("hopproxy {}", env!("CARGO_PKG_VERSION"))
    );

    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::new(ip(3), free_port(ip(3)).unwrap());
    let path = dir.path().join("n.conf");
    std::fs::write(&path, config(dir.path(), "n", addr)).unwrap();
    let mut command = Command::new(hopproxy_bin());
    command
        .args(["-N", "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = ChildGuard::spawn("n", &mut command).unwrap();
    assert!(wait_until_listening(addr, Duration::from_secs(10), || child
        .try_status()
        .is_none()));
    let stop = hopproxy(&["stop", "-c", path.to_str().unwrap()]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_status() {
            break status;
        }
        assert!(Instant::now() < deadline, "-N proxy did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
}

#[test]
fn debug_options_points_at_hopproxy_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.conf");
    std::fs::write(&path, "http_port 3128\ndebug_options ALL,1\nhttp_access deny all\n").unwrap();
    let check = hopproxy(&["check", "-c", path.to_str().unwrap()]);
    let out = format!("{}{}", String::from_utf8_lossy(&check.stdout), stderr(&check));
    assert!(out.contains("HOPPROXY_LOG"), "{out}");
    assert!(!out.contains("RUST_LOG"), "{out}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

/// Without `pid_filename`, `run` writes /run/hopproxy.pid and the control commands find it.
/// Runs in a mount namespace with its own /run, so no other proxy on the machine is touched.
#[test]
fn the_default_pid_file_is_written_and_found() {
    if !is_root() {
        println!("SKIPPED: needs root for a private /run (unshare --mount)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::new(ip(4), free_port(ip(4)).unwrap());
    let path = dir.path().join("p.conf");
    std::fs::write(
        &path,
        common::keep_root(&format!(
            "http_port {addr}\nhttp_access deny all\naccess_log none\nshutdown_lifetime 1 second\n"
        )),
    )
    .unwrap();
    // Every wait is bounded (100 × 50 ms); the proxy is stopped by the script or killed below.
    let script = r#"
        set -u
        mount -t tmpfs tmpfs /run || exit 99
        "$BIN" run -c "$CONF" 2>"$DIR/p.stderr" &
        proxy=$!
        for _ in $(seq 100); do [ -s /run/hopproxy.pid ] && break; sleep 0.05; done
        [ "$(cat /run/hopproxy.pid)" = "$proxy" ] || { echo "pid file: $(cat /run/hopproxy.pid 2>&1)"; kill -9 $proxy; exit 1; }
        "$BIN" rotate -c "$CONF" || { kill -9 $proxy; exit 2; }
        "$BIN" stop || { kill -9 $proxy; exit 3; }
        for _ in $(seq 100); do kill -0 $proxy 2>/dev/null || break; sleep 0.05; done
        kill -0 $proxy 2>/dev/null && { kill -9 $proxy; exit 4; }
        wait $proxy; status=$?
        [ -e /run/hopproxy.pid ] && exit 5
        exit $status
    "#;
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .env("BIN", hopproxy_bin())
        .env("CONF", &path)
        .env("DIR", dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if output.status.code() == Some(99) {
        println!("SKIPPED: cannot mount a private /run here: {}", stderr(&output));
        return;
    }
    let daemon = std::fs::read_to_string(dir.path().join("p.stderr")).unwrap_or_default();
    assert!(
        output.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}\nproxy stderr:\n{daemon}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    assert!(daemon.contains("SIGUSR1: reopening access logs"), "{daemon}");
}

/// Binding a port below 1024 without the privilege fails with a hint saying what to do.
#[test]
fn a_refused_low_port_explains_the_capability() {
    if !is_root() {
        println!("SKIPPED: needs root to drop to an unprivileged user (setpriv)");
        return;
    }
    let unprivileged_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|t| t.trim().parse::<u16>().ok())
        .unwrap_or(1024);
    if unprivileged_start <= 81 {
        println!("SKIPPED: this kernel lets everyone bind port 81 (ip_unprivileged_port_start={unprivileged_start})");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("low.conf");
    std::fs::write(
        &path,
        format!(
            "http_port {}:81\nhttp_access deny all\naccess_log none\npid_filename none\n",
            ip(5)
        ),
    )
    .unwrap();
    // The unprivileged user must be able to read the config.
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(hopproxy_bin())
        .args(["run", "-c"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("cannot listen on 127.0.64.5:81"), "{text}");
    assert!(text.contains("CAP_NET_BIND_SERVICE"), "{text}");
    assert!(text.contains("port of 1024 or above"), "{text}");
}
