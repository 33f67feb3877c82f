//! The seed's chain run with hopproxy on both hops: the seed's two squid.conf files
//! (placeholders filled), curl as the agent, and a real TLS endpoint. Addresses as in the
//! reference: agent 127.0.0.5, proxy 1 127.0.0.11, proxy 2 127.0.0.12, endpoint 127.0.0.20.

mod common;

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::Path;

use common::{ENDPOINT_NAME, Hop, curl, header, parse_log_line, seed_config, write_hosts};
use hopproxy::lab::certs::Pki;
use hopproxy::lab::endpoint::{Endpoint, EndpointOptions};

const AGENT: &str = "127.0.0.5";
const OTHER_CLIENT: &str = "127.0.0.6";
const PROXY1: &str = "127.0.0.11:8080";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The seed's addresses are fixed, so tests using them take turns.
static SEED_ADDRESSES: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct SeedChain {
    proxy1: Hop,
    proxy2: Hop,
    ca: std::path::PathBuf,
    _endpoint: hopproxy::lab::endpoint::EndpointHandle,
    _dir: tempfile::TempDir,
    _turn: std::sync::MutexGuard<'static, ()>,
}

/// Starts the endpoint on 127.0.0.20:443 and both hops from the seed's configs.
fn seed_chain() -> SeedChain {
    let turn = SEED_ADDRESSES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(ENDPOINT_NAME, "hopproxy test CA").unwrap();
    let files = pki.write(dir.path(), "endpoint").unwrap();
    let endpoint = Endpoint::start("127.0.0.20:443".parse().unwrap(), &pki, EndpointOptions::default()).unwrap();
    let hosts = write_hosts(
        dir.path(),
        &[
            (ENDPOINT_NAME, ip("127.0.0.20")),
            ("other.example.com", ip("127.0.0.22")),
        ],
    );
    let p2 = seed_config("seed-proxy2.conf", "proxy2", dir.path(), ip("127.0.0.12"), &hosts);
    let proxy2 = Hop::start("proxy2", dir.path(), "127.0.0.12:8080".parse().unwrap(), &p2);
    let p1 = seed_config("seed-proxy1.conf", "proxy1", dir.path(), ip("127.0.0.11"), &hosts);
    let proxy1 = Hop::start("proxy1", dir.path(), PROXY1.parse().unwrap(), &p1);
    SeedChain {
        proxy1,
        proxy2,
        ca: files.ca_cert,
        _endpoint: endpoint,
        _dir: dir,
        _turn: turn,
    }
}

fn ca_arg(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn agent_tunnel_through_both_hops_logs_like_the_seed() {
    let chain = seed_chain();
    let ca = ca_arg(&chain.ca);
    let result = curl(&[
        "--interface",
        AGENT,
        "-x",
        &format!("http://{PROXY1}"),
        "--cacert",
        &ca,
        "-w",
        "%{http_connect} %{http_code}",
        "-o",
        "/dev/null",
        &format!("https://{ENDPOINT_NAME}/"),
    ]);
    assert_eq!(
        (result.exit, result.stdout.as_str()),
        (0, "200 200"),
        "{}",
        result.stderr
    );

    let p1 = parse_log_line(&chain.proxy1.wait_for_lines(1)[0]);
    let p2 = parse_log_line(&chain.proxy2.wait_for_lines(1)[0]);
    assert_eq!(
        (
            p1.client.as_str(),
            p1.code.as_str(),
            p1.method.as_str(),
            p1.url.as_str(),
            p1.user.as_str(),
            p1.hierarchy.as_str(),
            p1.content_type.as_str()
        ),
        (
            AGENT,
            "TCP_TUNNEL/200",
            "CONNECT",
            "ingress-orange-saas.instana.io:443",
            "-",
            "FIRSTUP_PARENT/127.0.0.12",
            "-"
        )
    );
    assert_eq!(
        (
            p2.client.as_str(),
            p2.code.as_str(),
            p2.url.as_str(),
            p2.hierarchy.as_str(),
            p2.content_type.as_str()
        ),
        (
            "127.0.0.11",
            "TCP_TUNNEL/200",
            "ingress-orange-saas.instana.io:443",
            "HIER_DIRECT/127.0.0.20",
            "-"
        )
    );
    // 39 bytes of "200 Connection established" plus every TLS byte the server sent: the same on both hops.
    assert_eq!(p1.bytes, p2.bytes);
    assert!(
        p1.bytes > 39 + 500,
        "TLS handshake and response are counted: {}",
        p1.bytes
    );
}

#[test]
fn denials_are_403_with_proxy_status_and_logged() {
    let chain = seed_chain();
    // Reference B4c (wrong source on a non-443 port), B4d (wrong domain), B5b (plain GET elsewhere).
    let cases = [
        (
            OTHER_CLIENT,
            format!("https://{ENDPOINT_NAME}:8443/"),
            "CONNECT",
            format!("{ENDPOINT_NAME}:8443"),
        ),
        (
            AGENT,
            "https://other.example.com:8443/".to_string(),
            "CONNECT",
            "other.example.com:8443".to_string(),
        ),
        (
            AGENT,
            "http://other.example.com/".to_string(),
            "GET",
            "http://other.example.com/".to_string(),
        ),
    ];
    for (client, url, _, _) in &cases {
        let result = curl(&[
            "--interface",
            client,
            "-x",
            &format!("http://{PROXY1}"),
            "-i",
            "--proxy-insecure",
            "-k",
            "-D",
            "-",
            "-o",
            "/dev/null",
            url,
        ]);
        assert!(
            result.stdout.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{url}: {}",
            result.stdout
        );
        let status = header(&result.stdout, "Proxy-Status").unwrap_or_default();
        assert!(status.starts_with("proxy1.lab; error=http_request_denied"), "{status}");
    }
    let lines: Vec<_> = chain
        .proxy1
        .wait_for_lines(cases.len())
        .iter()
        .map(|l| parse_log_line(l))
        .collect();
    assert_eq!(lines.len(), cases.len(), "{lines:#?}");
    // Each case's line found by content (the log's order is the order requests ended).
    for (client, _, method, logged_url) in &cases {
        let l = common::the_line(&lines, logged_url, |l| {
            l.client == *client && l.method == *method && l.url == *logged_url
        });
        assert_eq!(
            (l.code.as_str(), l.hierarchy.as_str()),
            ("TCP_DENIED/403", "HIER_NONE/-"),
            "{l:?}"
        );
        assert!(l.bytes > 0, "the denial reply is counted: {l:?}");
    }
    assert!(
        chain.proxy2.log_lines().is_empty(),
        "denied requests never reach proxy 2"
    );
}

#[test]
fn proxy2_down_gives_503_from_proxy1_naming_itself() {
    let mut chain = seed_chain();
    chain.proxy2.kill();
    let result = curl(&[
        "--interface",
        AGENT,
        "-x",
        &format!("http://{PROXY1}"),
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("https://{ENDPOINT_NAME}/"),
    ]);
    assert!(
        result.stdout.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{}",
        result.stdout
    );
    let status = header(&result.stdout, "Proxy-Status").unwrap();
    assert!(
        status.starts_with("proxy1.lab; error=connection_refused; next-hop=\"127.0.0.12:8080\""),
        "{status}"
    );
    let l = parse_log_line(&chain.proxy1.wait_for_lines(1)[0]);
    assert_eq!(
        (l.code.as_str(), l.hierarchy.as_str()),
        ("NONE_NONE/503", "FIRSTUP_PARENT/127.0.0.12")
    );
}

#[test]
fn plain_http_get_and_post_through_the_chain() {
    let chain = seed_chain();
    let _origin = common::origin::echo_origin("127.0.0.20:80".parse().unwrap());
    let proxy = format!("http://{PROXY1}");
    let get = curl(&[
        "--interface",
        AGENT,
        "-x",
        &proxy,
        "-H",
        "X-Forwarded-For: 10.9.9.9",
        &format!("http://{ENDPOINT_NAME}/some/path?secret=1"),
    ]);
    assert_eq!(get.exit, 0, "{}", get.stderr);
    // The origin echoes what it received: origin-form, and both hops in Via and X-Forwarded-For.
    assert!(
        get.stdout.starts_with("GET /some/path?secret=1 HTTP/1.1\r\n"),
        "{}",
        get.stdout
    );
    assert_eq!(
        header(&get.stdout, "Via"),
        Some("1.1 proxy1.lab (hopproxy/0.1.0), 1.1 proxy2.lab (hopproxy/0.1.0)")
    );
    assert_eq!(
        header(&get.stdout, "X-Forwarded-For"),
        Some("10.9.9.9, 127.0.0.5, 127.0.0.11")
    );
    assert_eq!(header(&get.stdout, "Proxy-Connection"), None);

    let body = "x".repeat(5000);
    let post = curl(&[
        "--interface",
        AGENT,
        "-x",
        &proxy,
        "--data-binary",
        &body,
        &format!("http://{ENDPOINT_NAME}/upload"),
    ]);
    assert_eq!(post.exit, 0, "{}", post.stderr);
    assert!(post.stdout.starts_with("POST /upload HTTP/1.1\r\n"), "{}", post.stdout);
    assert!(
        post.stdout.ends_with(&format!("\r\n\r\n{body}")),
        "the body arrives whole"
    );

    let chunked = curl(&[
        "--interface",
        AGENT,
        "-x",
        &proxy,
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "hello chunks",
        &format!("http://{ENDPOINT_NAME}/c"),
    ]);
    assert!(chunked.stdout.ends_with("\r\n\r\nhello chunks"), "{}", chunked.stdout);

    let p1: Vec<_> = chain
        .proxy1
        .wait_for_lines(3)
        .iter()
        .map(|l| parse_log_line(l))
        .collect();
    let p2: Vec<_> = chain
        .proxy2
        .wait_for_lines(3)
        .iter()
        .map(|l| parse_log_line(l))
        .collect();
    assert_eq!((p1.len(), p2.len()), (3, 3), "{p1:#?}\n{p2:#?}");
    // Matched by content, not position: each request's line is written when it ends.
    let get_url = "http://ingress-orange-saas.instana.io/some/path?";
    let get1 = common::the_line(&p1, "the GET on proxy 1", |l| l.method == "GET");
    assert_eq!(
        (
            get1.code.as_str(),
            get1.url.as_str(),
            get1.hierarchy.as_str(),
            get1.content_type.as_str()
        ),
        ("TCP_MISS/200", get_url, "FIRSTUP_PARENT/127.0.0.12", "text/plain")
    );
    let get2 = common::the_line(&p2, "the GET on proxy 2", |l| l.method == "GET");
    assert_eq!(
        (get2.client.as_str(), get2.url.as_str(), get2.hierarchy.as_str()),
        ("127.0.0.11", get_url, "HIER_DIRECT/127.0.0.20")
    );
    for (name, lines) in [("proxy 1", &p1), ("proxy 2", &p2)] {
        let posts: Vec<_> = lines.iter().filter(|l| l.method == "POST").collect();
        assert_eq!(posts.len(), 2, "{name}: {lines:#?}");
        assert!(posts.iter().all(|l| l.code == "TCP_MISS/200"), "{name}: {posts:#?}");
    }
}

/// Bytes sent right behind the CONNECT head are forwarded, and a half-close from the client
/// does not cut the answer coming back (docs/squid-behaviour.md M15).
#[test]
fn early_bytes_and_half_close_survive_the_chain() {
    let chain = seed_chain();
    let _echo = common::origin::echo_tcp("127.0.0.20:7".parse().unwrap());
    let mut stream = common::connect_from(ip(AGENT), PROXY1.parse().unwrap());
    let payload = b"early bytes behind the head";
    let mut request = format!("CONNECT {ENDPOINT_NAME}:7 HTTP/1.1\r\nHost: {ENDPOINT_NAME}:7\r\n\r\n").into_bytes();
    request.extend_from_slice(payload);
    stream.write_all(&request).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).unwrap();
    let mut expected = b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec();
    expected.extend_from_slice(payload);
    assert_eq!(String::from_utf8_lossy(&received), String::from_utf8_lossy(&expected));
    let l = parse_log_line(&chain.proxy1.wait_for_lines(1)[0]);
    assert_eq!(
        (l.code.as_str(), l.bytes),
        ("TCP_TUNNEL/200", (39 + payload.len()) as u64)
    );
}
