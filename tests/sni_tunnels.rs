//! SNI-checked tunnels on `http_port … ssl-bump` (docs/sni-tunnels.md), end to end: real
//! hopproxy processes, `openssl s_server` as the TLS origin, curl and `openssl s_client
//! -proxy` as clients, and raw clients that write a ClientHello in small pieces. Nothing is
//! decrypted; a terminated tunnel must reach the origin with no byte at all.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::origin::{echo_tcp, recorder};
use common::{Hop, LogLine, curl, hop_config, the_line, write_hosts};
use hopproxy::lab::process::ChildGuard;
use hopproxy::tls_hello::build_client_hello;

/// Each test has a block of its own: the proxy at .10, the TLS origin at .20, a recording
/// origin at .21, an echo origin at .22, another recorder at .23.
fn at(block: u8, host: u8, port: u16) -> String {
    format!("127.0.{block}.{host}:{port}")
}

fn proxy_addr(block: u8) -> String {
    at(block, 10, 31280)
}

/// Squid's peek-and-splice lines as an operator writes them, with the certificate options
/// Squid needs (reported as unused by hopproxy).
const RULES: &str = "\
acl step1 at_step SslBump1
acl allowed ssl::server_name .allowed.invalid
acl legacy dstdomain legacy.invalid
ssl_bump peek step1
ssl_bump splice allowed
ssl_bump terminate all
on_unsupported_protocol tunnel legacy
acl clients src 127.0.0.0/8
http_access allow clients
http_access deny all
";

/// A proxy with the rules above, plus a second access log `NAME.sni.log` holding
/// `%ssl::>sni %Ss/%03>Hs %ru` per tunnel.
fn start_proxy(dir: &Path, name: &str, block: u8, rules: &str) -> Hop {
    let ip = |host: u8| format!("127.0.{block}.{host}").parse().unwrap();
    let hosts = write_hosts(
        dir,
        &[
            ("www.allowed.invalid", ip(20)),
            ("other.invalid", ip(21)),
            ("echo.allowed.invalid", ip(22)),
            ("legacy.invalid", ip(22)),
            ("plain.invalid", ip(23)),
        ],
    );
    let listen = proxy_addr(block);
    let listen = listen.as_str();
    let config = hop_config(
        dir,
        name,
        &format!("{listen} ssl-bump cert=/etc/squid/bump-ca.pem generate-host-certificates=on"),
        &format!(
            "hosts_file {}\nlogformat sni %ssl::>sni %Ss/%03>Hs %ru\naccess_log stdio:{} sni\n{rules}",
            hosts.display(),
            sni_log(dir, name).display()
        ),
    );
    Hop::start(name, dir, listen.parse().unwrap(), &config)
}

/// Waits (bounded) until the `%ssl::>sni` log holds the line `wanted`.
fn wait_for_sni_log(dir: &Path, name: &str, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(sni_log(dir, name)).unwrap_or_default();
        if text.lines().any(|l| l == wanted) {
            return;
        }
        assert!(Instant::now() < deadline, "no sni log line {wanted:?}:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sni_log(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}.sni.log"))
}

/// Waits (bounded) for the `%ssl::>sni` log line of `url`.
fn sni_line(dir: &Path, name: &str, url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(sni_log(dir, name)).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.ends_with(&format!(" {url}"))) {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "no sni log line for {url}:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `openssl s_server` with a fresh self-signed certificate, answering `-www` pages.
fn tls_origin(dir: &Path, block: u8) -> ChildGuard {
    let tls_origin = at(block, 20, 8443);
    let tls_origin = tls_origin.as_str();
    let (cert, key) = (dir.join("origin.pem"), dir.join("origin.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=www.allowed.invalid", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl must be installed");
    assert!(made.success());
    let mut command = Command::new("openssl");
    command
        .args(["s_server", "-www", "-accept", tls_origin, "-cert"])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = ChildGuard::spawn("s_server", &mut command).unwrap();
    let addr: SocketAddr = tls_origin.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "s_server did not listen on {tls_origin}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// `openssl s_client -proxy` with `args`; returns (success, stdout + stderr).
fn s_client(proxy: &str, connect: &str, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("timeout")
        .args([
            "15", "openssl", "s_client", "-brief", "-proxy", proxy, "-connect", connect,
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    // End the session right after the handshake: s_client quits at EOF on stdin.
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A raw CONNECT: returns the stream after the proxy's 200 (asserted).
fn connect(proxy: &str, target: &str) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    stream.set_nodelay(true).unwrap();
    write!(stream, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").unwrap();
    let expected = b"HTTP/1.1 200 Connection established\r\n\r\n";
    let mut head = vec![0u8; expected.len()];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head, expected);
    stream
}

/// Reads until the proxy closes (bounded by the read timeout).
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

fn log_for<'a>(lines: &'a [LogLine], url: &str) -> &'a LogLine {
    the_line(lines, url, |l| l.url == url)
}

#[test]
fn allowed_names_are_spliced_and_other_names_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let _origin = tls_origin(dir.path(), 84);
    let other = recorder(at(84, 21, 8443).parse().unwrap(), b"never");
    let proxy = start_proxy(dir.path(), "p", 84, RULES);
    let proxy_at = proxy_addr(84);
    let proxy_at = proxy_at.as_str();

    // curl: CONNECT and SNI agree on an allowed name; the TLS handshake and a request complete.
    let url = "https://www.allowed.invalid:8443/";
    let result = curl(&["-k", "--proxy", &format!("http://{proxy_at}"), url]);
    assert_eq!(result.exit, 0, "curl through the spliced tunnel: {}", result.stderr);
    assert!(
        result.stdout.contains("s_server"),
        "the origin's page: {}",
        result.stdout
    );
    let lines = proxy.wait_for_match("spliced tunnel", |l| l.url == "www.allowed.invalid:8443");
    let line = log_for(&lines, "www.allowed.invalid:8443");
    assert_eq!(line.code, "TCP_TUNNEL/200");
    assert_eq!(line.hierarchy, "HIER_DIRECT/127.0.84.20");
    assert_eq!(
        sni_line(dir.path(), "p", "www.allowed.invalid:8443"),
        "www.allowed.invalid TCP_TUNNEL/200 www.allowed.invalid:8443"
    );

    // openssl s_client with a name the rules do not allow: terminated after the 200; the
    // server it CONNECTed to never gets a byte.
    let (ok, text) = s_client(proxy_at, "other.invalid:8443", &["-servername", "other.invalid"]);
    assert!(!ok, "the handshake cannot complete: {text}");
    let lines = proxy.wait_for_match("terminated tunnel", |l| l.url == "other.invalid:8443");
    let line = log_for(&lines, "other.invalid:8443");
    assert_eq!((line.code.as_str(), line.bytes), ("TCP_DENIED/200", 39));
    assert_eq!(
        sni_line(dir.path(), "p", "other.invalid:8443"),
        "other.invalid TCP_DENIED/200 other.invalid:8443"
    );
    let stderr = proxy.wait_for_stderr("tunnel terminated");
    assert!(stderr.contains("sni=\"other.invalid\""), "{stderr}");

    // trace names the refusal: the tunnel closed on its ClientHello with no answer.
    let output = Command::new(common::hopproxy_bin())
        .args(["trace", "--json", "--proxy", proxy_at, "other.invalid:8443"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(!output.status.success());
    assert_eq!(report["failure"]["error"], "tls_tunnel_terminated", "{report:#}");
    let reason = report["failure"]["reason"].as_str().unwrap();
    assert!(reason.contains("ssl_bump terminate"), "{reason}");
    assert!(
        other.received().iter().all(|bytes| bytes.is_empty()),
        "the origin received bytes: {:?}",
        other.received()
    );

    // No SNI: the name is the CONNECT host's (Squid's ssl::server_name), which is allowed.
    let (ok, text) = s_client(proxy_at, "www.allowed.invalid:8443", &["-noservername"]);
    assert!(ok && text.contains("CONNECTION ESTABLISHED"), "{text}");
    wait_for_sni_log(dir.path(), "p", "- TCP_TUNNEL/200 www.allowed.invalid:8443");
}

#[test]
fn non_tls_bytes_follow_on_unsupported_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let _echo = echo_tcp(at(85, 22, 8443).parse().unwrap());
    let plain = recorder(at(85, 23, 8443).parse().unwrap(), b"never");
    let proxy = start_proxy(dir.path(), "p", 85, RULES);
    let proxy_at = proxy_addr(85);
    let proxy_at = proxy_at.as_str();

    // `tunnel` for legacy.invalid: the bytes already read go first, then the relay.
    let mut stream = connect(proxy_at, "legacy.invalid:8443");
    stream.write_all(b"HELO legacy\r\n").unwrap();
    let mut echoed = [0u8; 13];
    stream.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"HELO legacy\r\n");
    drop(stream);

    // `respond` (Squid's default) for anything else: an HTTP error inside the tunnel.
    let mut stream = connect(proxy_at, "plain.invalid:8443");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: plain.invalid\r\n\r\n")
        .unwrap();
    let answer = String::from_utf8_lossy(&read_to_close(&mut stream)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer.contains("Proxy-Status: p.test; error=http_request_error"),
        "{answer}"
    );
    let lines = proxy.wait_for_match("respond", |l| l.url == "plain.invalid:8443");
    let line = log_for(&lines, "plain.invalid:8443");
    assert_eq!(line.code, "TCP_DENIED/400");
    assert_eq!(line.bytes, 39 + answer.len() as u64, "the 200 and the error, as sent");
    let lines = proxy.wait_for_match("tunnel", |l| l.url == "legacy.invalid:8443");
    assert_eq!(log_for(&lines, "legacy.invalid:8443").code, "TCP_TUNNEL/200");
    assert!(plain.received().iter().all(|b| b.is_empty()), "{:?}", plain.received());
}

/// A ClientHello written a few bytes at a time, over 9-byte TLS records: read whole, then
/// forwarded byte for byte (the echo origin sends it back). An oversized one is terminated.
#[test]
fn split_and_oversized_client_hellos() {
    let dir = tempfile::tempdir().unwrap();
    let _echo = echo_tcp(at(86, 22, 8443).parse().unwrap());
    let _proxy = start_proxy(dir.path(), "p", 86, RULES);
    let proxy_at = proxy_addr(86);
    let proxy_at = proxy_at.as_str();

    let hello = build_client_hello(Some("echo.allowed.invalid"), &["h2", "http/1.1"], 0, 9);
    let mut stream = connect(proxy_at, "echo.allowed.invalid:8443");
    for piece in hello.chunks(3) {
        stream.write_all(piece).unwrap();
        // Separate segments on the wire; correctness does not depend on this pause.
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut echoed = vec![0u8; hello.len()];
    stream.read_exact(&mut echoed).unwrap();
    assert!(echoed == hello, "the hello reached the origin unchanged");
    drop(stream);
    assert_eq!(
        sni_line(dir.path(), "p", "echo.allowed.invalid:8443"),
        "echo.allowed.invalid TCP_TUNNEL/200 echo.allowed.invalid:8443"
    );

    let oversized = build_client_hello(Some("echo.allowed.invalid"), &[], 17_000, 16_384);
    let mut stream = connect(proxy_at, "legacy.invalid:8443");
    let _ = stream.write_all(&oversized);
    assert_eq!(read_to_close(&mut stream), b"", "closed without a byte after the 200");
    let text = sni_line(dir.path(), "p", "legacy.invalid:8443");
    assert_eq!(text, "- TCP_DENIED/200 legacy.invalid:8443");
}

/// `tunnel_sni_must_match on`: a ClientHello naming another host than the CONNECT target
/// (domain fronting) is terminated even with no ssl_bump rule; a matching one is spliced.
#[test]
fn fronting_is_refused_by_tunnel_sni_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let _echo = echo_tcp(at(87, 22, 8443).parse().unwrap());
    let proxy = start_proxy(dir.path(), "f", 87, "tunnel_sni_must_match on\nhttp_access allow all");
    let proxy_at = proxy_addr(87);
    let proxy_at = proxy_at.as_str();

    let fronted = build_client_hello(Some("blocked.invalid"), &["h2"], 0, 16_384);
    let mut stream = connect(proxy_at, "echo.allowed.invalid:8443");
    stream.write_all(&fronted).unwrap();
    assert_eq!(read_to_close(&mut stream), b"");
    assert_eq!(
        sni_line(dir.path(), "f", "echo.allowed.invalid:8443"),
        "blocked.invalid TCP_DENIED/200 echo.allowed.invalid:8443"
    );
    let stderr = proxy.wait_for_stderr("tunnel_sni_must_match");
    assert!(stderr.contains("sni=\"blocked.invalid\" alpn=\"h2\""), "{stderr}");

    let honest = build_client_hello(Some("Echo.Allowed.Invalid"), &[], 0, 16_384);
    let mut stream = connect(proxy_at, "echo.allowed.invalid:8443");
    stream.write_all(&honest).unwrap();
    let mut echoed = vec![0u8; honest.len()];
    stream.read_exact(&mut echoed).unwrap();
    assert!(echoed == honest);
}

/// `check` accepts the operator's Squid lines and lists the bump certificate as unused;
/// `explain` shows the tunnel rules in order with their defaults.
#[test]
fn check_and_explain_show_the_tunnel_rules() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bump.conf");
    std::fs::write(
        &config,
        format!("http_port 127.0.84.30:31280 ssl-bump cert=/etc/squid/bump-ca.pem\naccess_log none\n{RULES}"),
    )
    .unwrap();
    let run = |command: &str| {
        let output = Command::new(common::hopproxy_bin())
            .args([command, "-c"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(output.status.success(), "{command}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
    };
    let check = run("check");
    assert!(
        check.contains(":1: note: 'http_port option 'cert=/etc/squid/bump-ca.pem'' ignored: a certificate for bumping"),
        "{check}"
    );
    let explain = run("explain");
    for wanted in [
        "listening: 127.0.84.30:31280 ssl-bump (line 1)",
        "line 6: ssl_bump peek step1",
        "line 7: ssl_bump splice allowed",
        "line 8: ssl_bump terminate all",
        "no ssl_bump line matches: splice",
        "line 9: not TLS: on_unsupported_protocol tunnel legacy",
    ] {
        assert!(explain.contains(wanted), "{wanted:?} in:\n{explain}");
    }
}

/// With a parent, the parent's CONNECT comes first and its 200 lets ours out; a terminated
/// tunnel then closes the parent's tunnel with no byte sent, so the origin gets none either.
#[test]
fn with_a_parent_the_check_follows_the_parents_answer() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let _echo = echo_tcp("127.0.85.42:8443".parse().unwrap());
    let other = recorder("127.0.85.43:8443".parse().unwrap(), b"never");
    let hosts = write_hosts(
        dir,
        &[
            ("echo.allowed.invalid", "127.0.85.42".parse().unwrap()),
            ("other.invalid", "127.0.85.43".parse().unwrap()),
        ],
    );
    let parent_config = hop_config(
        dir,
        "parent",
        "127.0.85.41:31280",
        &format!("hosts_file {}\nhttp_access allow all", hosts.display()),
    );
    let parent = Hop::start("parent", dir, "127.0.85.41:31280".parse().unwrap(), &parent_config);
    let child_config = hop_config(
        dir,
        "child",
        "127.0.85.40:31280 ssl-bump",
        &format!("cache_peer 127.0.85.41 parent 31280 0 no-query\nnever_direct allow all\n{RULES}"),
    );
    let child = Hop::start("child", dir, "127.0.85.40:31280".parse().unwrap(), &child_config);

    let hello = build_client_hello(Some("echo.allowed.invalid"), &["h2"], 0, 16_384);
    let mut stream = connect("127.0.85.40:31280", "echo.allowed.invalid:8443");
    stream.write_all(&hello).unwrap();
    let mut echoed = vec![0u8; hello.len()];
    stream.read_exact(&mut echoed).unwrap();
    assert!(echoed == hello, "spliced through the parent");
    drop(stream);

    let fronted = build_client_hello(Some("other.invalid"), &["h2"], 0, 16_384);
    let mut stream = connect("127.0.85.40:31280", "other.invalid:8443");
    stream.write_all(&fronted).unwrap();
    assert_eq!(read_to_close(&mut stream), b"");
    let lines = child.wait_for_match("terminated", |l| l.url == "other.invalid:8443");
    let line = log_for(&lines, "other.invalid:8443");
    assert_eq!(
        (line.code.as_str(), line.hierarchy.as_str()),
        ("TCP_DENIED/200", "FIRSTUP_PARENT/127.0.85.41")
    );
    // The parent's tunnel carried nothing upstream.
    let lines = parent.wait_for_match("parent tunnel", |l| l.url == "other.invalid:8443");
    assert_eq!(log_for(&lines, "other.invalid:8443").code, "TCP_TUNNEL/200");
    assert!(other.received().iter().all(|b| b.is_empty()), "{:?}", other.received());
}
