//! Shared harness for integration tests: real `hopproxy run` processes on loopback addresses,
//! a real TLS endpoint, a small echo origin, and curl as the client.
#![allow(dead_code)]

pub mod black_hole;
pub mod blocks;
pub mod origin;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hopproxy::lab::process::ChildGuard;

pub const ENDPOINT_NAME: &str = "ingress-orange-saas.instana.io";

/// Reports that the calling test cannot run here and why, as `SKIPPED: <crate>::<test>: <reason>`;
/// the test then returns early. `.ci/run` counts these lines as skipped, not passed. Written
/// straight to the process's stderr, past the test harness's capture (which only takes
/// `print!`/`eprint!`), so the line shows even when the test passes.
pub fn skip(reason: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    // libtest runs each test on a thread named after it.
    let test = thread.name().unwrap_or("unnamed");
    let line = format!("SKIPPED: {}::{test}: {reason}\n", env!("CARGO_CRATE_NAME"));
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

pub fn hopproxy_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hopproxy")
}

/// A running `hopproxy run` process, killed when dropped.
pub struct Hop {
    pub name: String,
    pub addr: SocketAddr,
    pub config: PathBuf,
    pub access_log: PathBuf,
    pub stderr: PathBuf,
    child: ChildGuard,
}

impl Hop {
    /// Writes `config` to `dir/NAME.conf`, starts hopproxy on it and waits until the process
    /// itself reports `listening on ADDR` on its stderr. Not a connect probe: any other service
    /// listening there (a packaged Squid on `*:3128`) would answer a probe, while hopproxy
    /// could not bind and exits. The config must log to [`Hop::log_path`] to be read back.
    pub fn start(name: &str, dir: &Path, addr: SocketAddr, config: &str) -> Hop {
        let config_path = dir.join(format!("{name}.conf"));
        // A test's proxy is killed, not stopped, so a default pid file in /run would be left
        // behind; tests that exercise pid files set `pid_filename` themselves.
        let config = if config.contains("pid_filename") {
            config.to_string()
        } else {
            format!("{}\npid_filename none\n", config.trim_end())
        };
        let config = keep_root(&config);
        std::fs::write(&config_path, &config).unwrap();
        let stderr = dir.join(format!("{name}.stderr"));
        let mut command = Command::new(hopproxy_bin());
        command
            .args(["run", "-c"])
            .arg(&config_path)
            .env("HOPPROXY_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let child = ChildGuard::spawn(name, &mut command).unwrap();
        let mut hop = Hop {
            name: name.into(),
            addr,
            config: config_path,
            access_log: Hop::log_path(dir, name),
            stderr,
            child,
        };
        let listening = format!("listening on {addr}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !hop.stderr_text().contains(&listening) {
            if let Some(status) = hop.child.try_status() {
                panic!(
                    "{name} exited ({status}) before {listening}; stderr:\n{}",
                    hop.stderr_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not report {listening} within 10 s; stderr:\n{}",
                hop.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        hop
    }

    /// Waits (bounded, 10 s) until the process's stderr contains `needle` and returns it whole.
    pub fn wait_for_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.stderr_text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no {needle:?} on stderr within 10 s:\n{text}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process has exited (its status, once it has).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_status()
    }

    pub fn log_path(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.access.log"))
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits (bounded) until the access log has at least `count` lines.
    pub fn wait_for_lines(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.log_lines();
            if lines.len() >= count || Instant::now() > deadline {
                assert!(
                    lines.len() >= count,
                    "{}: wanted {count} log lines, got {lines:#?}\nstderr:\n{}",
                    self.name,
                    self.stderr_text()
                );
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until some access-log line `matches`; returns every line, parsed.
    pub fn wait_for_match(&self, what: &str, matches: impl Fn(&LogLine) -> bool) -> Vec<LogLine> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<LogLine> = self.log_lines().iter().map(|l| parse_log_line(l)).collect();
            if lines.iter().any(&matches) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no log line for {what} within 10 s: {lines:#?}\nstderr:\n{}",
                self.name,
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status once the process has ended.
    pub fn try_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_status()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends a signal with kill(1) (no unsafe FFI in tests either).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.signal("TERM");
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_status() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn kill(&mut self) {
        self.child.stop();
    }
}

/// Tests run as root in CI, and a proxy started as root switches to an unprivileged user once
/// its ports and logs are open; it could then no longer re-read its config, reopen its logs or
/// remove its pid file in a test's private (0700) directory. Test proxies keep root unless
/// the config chooses a user itself (`tests/privilege_drop.rs` does).
pub fn keep_root(config: &str) -> String {
    if config.contains("cache_effective_user") {
        config.to_string()
    } else {
        format!("{}\ncache_effective_user root\n", config.trim_end())
    }
}

/// A `hosts_file` mapping each name to an address.
pub fn write_hosts(dir: &Path, entries: &[(&str, IpAddr)]) -> PathBuf {
    let path = dir.join("hosts");
    let text: String = entries.iter().map(|(name, ip)| format!("{ip} {name}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// One of the seed's configs (tests/fixtures), made runnable on one machine the way the
/// reference's lab did it: `http_port` bound to the hop's address, the log in `dir`, and
/// hosts_file / visible_hostname / tcp_outgoing_address added. ACLs and rules are untouched.
pub fn seed_config(fixture: &str, name: &str, dir: &Path, hop_ip: IpAddr, hosts: &Path) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(fixture),
    )
    .unwrap();
    let log = Hop::log_path(dir, name);
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("http_port ") {
            out.push_str(&format!("http_port {hop_ip}:8080\n"));
        } else if line.starts_with("access_log ") {
            out.push_str(&format!("access_log stdio:{} squid\n", log.display()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "hosts_file {}\nvisible_hostname {name}.lab\ntcp_outgoing_address {hop_ip}\nshutdown_lifetime 2 seconds\n",
        hosts.display()
    ));
    out
}

/// What curl did.
pub struct CurlResult {
    pub exit: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs curl with `args` (bounded by `--max-time`).
pub fn curl(args: &[&str]) -> CurlResult {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "15"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl must be installed (apt-get install curl)");
    CurlResult {
        exit: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// One access-log line split into its ten fields, after checking the line's exact layout
/// (`%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt`).
#[derive(Debug)]
pub struct LogLine {
    pub elapsed: u64,
    pub client: String,
    pub code: String,
    pub bytes: u64,
    pub method: String,
    pub url: String,
    pub user: String,
    pub hierarchy: String,
    pub content_type: String,
}

pub fn parse_log_line(line: &str) -> LogLine {
    let (time, rest) = line.split_at(14);
    assert!(
        time.len() == 14 && time.as_bytes()[10] == b'.' && time.bytes().filter(u8::is_ascii_digit).count() == 13,
        "time field in {line:?}"
    );
    let rest = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("space after time in {line:?}"));
    let elapsed_text: String = rest.chars().take_while(|c| *c == ' ' || c.is_ascii_digit()).collect();
    assert!(
        elapsed_text.len() >= 6,
        "elapsed is right-aligned in 6 columns: {line:?}"
    );
    let fields: Vec<&str> = rest.split(' ').filter(|f| !f.is_empty()).collect();
    assert_eq!(fields.len(), 9, "fields of {line:?}");
    assert_eq!(
        rest.trim_start(),
        fields.join(" "),
        "only the elapsed field is padded: {line:?}"
    );
    LogLine {
        elapsed: fields[0].parse().unwrap(),
        client: fields[1].into(),
        code: fields[2].into(),
        bytes: fields[3].parse().unwrap(),
        method: fields[4].into(),
        url: fields[5].into(),
        user: fields[6].into(),
        hierarchy: fields[7].into(),
        content_type: fields[8].into(),
    }
}

/// The one line of `lines` that `matches`, asserting there is exactly one. Tests match log lines
/// by content, never by position: a tunnel is logged when it closes, so the log's order need
/// not be the order the requests were sent in.
pub fn the_line<'a>(lines: &'a [LogLine], what: &str, matches: impl Fn(&LogLine) -> bool) -> &'a LogLine {
    let found: Vec<&LogLine> = lines.iter().filter(|l| matches(l)).collect();
    assert_eq!(found.len(), 1, "exactly one log line for {what} in {lines:#?}");
    found[0]
}

/// The value of header `name` in a raw HTTP head (case-insensitive), if present.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A one-hop config for tests: a listener, a log in `dir`, `NAME.test` as its name, a short
/// shutdown, and `rules`.
pub fn hop_config(dir: &Path, name: &str, listen: &str, rules: &str) -> String {
    keep_root(&format!(
        "http_port {listen}\naccess_log stdio:{} squid\nvisible_hostname {name}.test\nshutdown_lifetime 3 seconds\n{rules}\n",
        Hop::log_path(dir, name).display()
    ))
}

/// Reads a message head byte by byte (so nothing behind it is consumed), up to and including
/// its blank line; stops early, with what came, at EOF or a read error.
pub fn read_head(stream: &mut impl std::io::Read) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && matches!(stream.read(&mut byte), Ok(1)) {
        head.push(byte[0]);
    }
    head
}

/// Sends raw `request` bytes, half-closes (so a tunnel to an echo server ends once the echo
/// is back), and returns everything received until the proxy closes (bounded by 10 s).
pub fn exchange(addr: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let target: SocketAddr = addr.parse().unwrap();
    let mut stream = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request).unwrap();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A blocking TCP connection from a chosen source address (std cannot bind before connect;
/// tokio's TcpSocket can), with a 10 s read timeout.
pub fn connect_from(source: IpAddr, dest: SocketAddr) -> std::net::TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = if source.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        };
        let socket = socket.unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        socket.connect(dest).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

/// One response read off a persistent connection.
#[derive(Debug)]
pub struct Response {
    pub head: String,
    pub body: Vec<u8>,
    /// The body ended because the connection closed (close-delimited, or cut short).
    pub closed: bool,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client on one keep-alive connection to a proxy, reading responses by their framing.
pub struct KeepAliveClient {
    reader: std::io::BufReader<std::net::TcpStream>,
}

impl KeepAliveClient {
    pub fn connect(addr: SocketAddr) -> KeepAliveClient {
        let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        KeepAliveClient {
            reader: std::io::BufReader::new(stream),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// Sends `request` and reads one response (`head_only` for a HEAD request). `None` when
    /// the proxy closed the connection before a response head.
    pub fn ask(&mut self, request: &[u8], head_only: bool) -> Option<Response> {
        self.send(request);
        self.read_response(head_only)
    }

    pub fn read_response(&mut self, head_only: bool) -> Option<Response> {
        use std::io::{BufRead, Read};
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            head.push_str(&line);
            if line == "\r\n" {
                if head.starts_with("HTTP/1.1 100 ") {
                    head.clear();
                    continue;
                }
                break;
            }
        }
        let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
        let mut body = Vec::new();
        let mut closed = false;
        let no_body = head_only || status == 204 || status == 304;
        if no_body {
        } else if let Some(len) = header(&head, "Content-Length") {
            body.resize(len.parse().unwrap(), 0);
            let mut got = 0;
            while got < body.len() {
                match self.reader.read(&mut body[got..]) {
                    Ok(0) | Err(_) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => got += n,
                }
            }
            body.truncate(got);
        } else if header(&head, "Transfer-Encoding").is_some_and(|te| te.ends_with("chunked")) {
            // Kept raw (chunk framing included), as relayed.
            loop {
                let mut line = String::new();
                if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                    closed = true;
                    break;
                }
                body.extend_from_slice(line.as_bytes());
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16).unwrap_or(0);
                if size == 0 {
                    let mut end = String::new();
                    let _ = self.reader.read_line(&mut end);
                    body.extend_from_slice(end.as_bytes());
                    break;
                }
                let mut chunk = vec![0; size + 2];
                if self.reader.read_exact(&mut chunk).is_err() {
                    closed = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
        } else {
            let _ = self.reader.read_to_end(&mut body);
            closed = true;
        }
        Some(Response { head, body, closed })
    }

    /// True when the proxy closed the connection (reads EOF within 10 s).
    pub fn is_closed(&mut self) -> bool {
        use std::io::Read;
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok() && rest.is_empty()
    }
}

/// Waits (bounded, 10 s) until `done` holds; panics naming `what` otherwise.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}
