//! Mixed chains with a real Squid 5.7: hopproxy in front of Squid, Squid in front of
//! hopproxy, and Squid in front of two hopproxy hops. Each chain carries a real TLS + HTTP/2
//! session, plain GET and POST, a denial at the far hop and a stopped far hop; every case
//! checks what curl saw and the access-log line of every hop, field by field.
//!
//! The configs are `tests/fixtures/interop/*.conf` (the ones README.md's "Mixing hopproxy
//! and Squid" shows), with the example network `10.1.0.x` moved to this test's loopback block:
//! agent `.5`, proxy 1 `.11`, proxy 2 `.12`, proxy 3 `.13`, endpoint `.20` (TLS on 443, plain
//! HTTP on 80), a DNS stub answering NXDOMAIN on `.53`. Each test owns its block (43, 44, 45).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{ENDPOINT_NAME, Hop, LogLine, curl, header, parse_log_line};
use hopproxy::lab::certs::Pki;
use hopproxy::lab::endpoint::{Endpoint, EndpointHandle, EndpointOptions};
use hopproxy::lab::process::free_port;
use hopproxy::lab::squid::Squid;

const DENIED_NAME: &str = "other.example.com";
const HOPPROXY_VIA: &str = concat!("(hopproxy/", env!("CARGO_PKG_VERSION"), ")");

/// A hop of the chain: hopproxy or Squid.
enum Proxy {
    Hop(Hop),
    Squid(Squid),
}

impl Proxy {
    fn addr(&self) -> SocketAddr {
        match self {
            Proxy::Hop(h) => h.addr,
            Proxy::Squid(s) => s.addr,
        }
    }

    fn name(&self) -> &str {
        match self {
            Proxy::Hop(h) => &h.name,
            Proxy::Squid(s) => &s.name,
        }
    }

    fn log_lines(&self) -> Vec<String> {
        let text = match self {
            Proxy::Hop(h) => std::fs::read_to_string(&h.access_log).unwrap_or_default(),
            Proxy::Squid(s) => s.access_log_text(),
        };
        // The harness's readiness probes (connect from 127.0.0.1, send nothing): Squid logs
        // them as `NONE_NONE/000 0 - error:transaction-end-before-headers` (docs/squid-behaviour.md M14).
        text.lines()
            .filter(|l| {
                !(l.contains(" 127.0.0.1 NONE_NONE/000 0 ") && l.contains("error:transaction-end-before-headers"))
            })
            .map(str::to_string)
            .collect()
    }

    /// Waits (bounded) until the log has `count` lines, and returns them all.
    fn wait_lines(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.log_lines();
            if lines.len() >= count || Instant::now() > deadline {
                assert_eq!(lines.len(), count, "{}: log lines {lines:#?}", self.name());
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        match self {
            Proxy::Hop(h) => h.kill(),
            Proxy::Squid(s) => s.stop(),
        }
    }
}

/// The fixed parts of one test's world: its block, directory, endpoint, origin, DNS stub.
struct World {
    block: u8,
    dir: tempfile::TempDir,
    ca: PathBuf,
    hosts: PathBuf,
    endpoint: EndpointHandle,
    _origin: common::origin::Server,
    _dns: hopproxy::lab::dns_stub::DnsStub,
}

impl World {
    fn new(block: u8) -> World {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(ENDPOINT_NAME, "interop test CA").unwrap();
        let ca = pki.write(dir.path(), "endpoint").unwrap().ca_cert;
        let endpoint_ip = ip(block, 20);
        let endpoint = Endpoint::start(SocketAddr::new(endpoint_ip, 443), &pki, EndpointOptions::default()).unwrap();
        let origin = common::origin::echo_origin(SocketAddr::new(endpoint_ip, 80));
        let hosts = common::write_hosts(dir.path(), &[(ENDPOINT_NAME, endpoint_ip), (DENIED_NAME, endpoint_ip)]);
        let dns = hopproxy::lab::dns_stub::DnsStub::start(SocketAddr::new(ip(block, 53), 53));
        World {
            block,
            dir,
            ca,
            hosts,
            endpoint,
            _origin: origin,
            _dns: dns,
        }
    }

    fn ip(&self, host: u8) -> IpAddr {
        ip(self.block, host)
    }

    fn ipt(&self, host: u8) -> String {
        self.ip(host).to_string()
    }

    /// A free port on `.host` of this block.
    fn addr(&self, host: u8) -> SocketAddr {
        let ip = self.ip(host);
        SocketAddr::new(ip, free_port(ip).unwrap())
    }

    /// A fixture (or any config text) moved into this block: `10.1.0.x` → `127.0.B.x`, the
    /// parent's port filled in, and the lines the harness sets itself dropped.
    fn localize(&self, text: &str, parent_port: Option<u16>) -> String {
        let mut out = String::new();
        for line in text.lines() {
            if ["http_port ", "access_log ", "visible_hostname "]
                .iter()
                .any(|p| line.starts_with(p))
            {
                continue;
            }
            let mut line = line.replace("10.1.0.", &format!("127.0.{}.", self.block));
            if let (true, Some(port)) = (line.starts_with("cache_peer "), parent_port) {
                line = line.replace(" parent 8080 ", &format!(" parent {port} "));
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// hopproxy as `name` (`proxy1` …) on `.host`, with `config` (already localized).
    fn hopproxy(&self, name: &str, addr: SocketAddr, config: &str) -> Proxy {
        let text = format!(
            "http_port {addr}\n{config}visible_hostname {name}.lab\nhosts_file {}\ntcp_outgoing_address {}\n\
             access_log stdio:{} squid\n",
            self.hosts.display(),
            addr.ip(),
            Hop::log_path(self.dir.path(), name).display()
        );
        Proxy::Hop(Hop::start(name, self.dir.path(), addr, &text))
    }

    /// Squid as `name` (`proxy1` …), its own config/pid/log dir under this test's directory.
    fn squid(&self, name: &str, addr: SocketAddr, config: &str) -> Proxy {
        let rules = format!(
            "{config}hosts_file {}\ndns_nameservers {}\ntcp_outgoing_address {}\n",
            self.hosts.display(),
            self.ip(53),
            addr.ip()
        );
        let squid =
            Squid::start(&format!("{name}.lab"), addr, &rules, self.dir.path()).unwrap_or_else(|e| panic!("{e}"));
        Proxy::Squid(squid)
    }

    /// curl from the agent (`.5`) through `proxy`.
    fn curl(&self, proxy: &Proxy, args: &[&str]) -> common::CurlResult {
        let agent = self.ipt(5);
        let proxy = format!("http://{}", proxy.addr());
        let mut all = vec!["--interface", &agent, "-x", &proxy];
        all.extend_from_slice(args);
        curl(&all)
    }
}

fn ip(block: u8, host: u8) -> IpAddr {
    IpAddr::from([127, 0, block, host])
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/interop")
            .join(name),
    )
    .unwrap()
}

/// Asserts the fields of a log line other than time, elapsed and bytes; returns the parsed line.
fn expect_line(line: &str, client: &str, code: &str, method: &str, url: &str, hierarchy: &str, ctype: &str) -> LogLine {
    let l = parse_log_line(line);
    assert_eq!(
        (
            l.client.as_str(),
            l.code.as_str(),
            l.method.as_str(),
            l.url.as_str(),
            l.user.as_str(),
            l.hierarchy.as_str(),
            l.content_type.as_str()
        ),
        (client, code, method, url, "-", hierarchy, ctype),
        "{line}"
    );
    l
}

/// Which product runs which hop, for what the client sees in `Via` and error replies.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Hopproxy,
    Squid,
}

fn via_entry(name: &str, kind: Kind) -> String {
    match kind {
        Kind::Hopproxy => format!("1.1 {name}.lab {HOPPROXY_VIA}"),
        Kind::Squid => format!("1.1 {name}.lab (squid/5.7)"),
    }
}

/// The cases every chain must pass, in order; `hops[0]` is proxy 1, the last one is the far
/// hop (it goes direct). `kinds` says which product each hop is.
// Hop `i` is looked at in several slices at once (hops, kinds, seen): indexes read best.
#[allow(clippy::needless_range_loop)]
fn run_chain(world: &World, hops: &mut [Proxy], kinds: &[Kind]) {
    let last = hops.len() - 1;
    let hop_ip = |i: usize| world.ipt(11 + i as u8);
    // Who each hop sees as its client, and the hierarchy field it logs.
    let client_of = |i: usize| if i == 0 { world.ipt(5) } else { hop_ip(i - 1) };
    let hier_of = |i: usize| {
        if i == last {
            format!("HIER_DIRECT/{}", world.ipt(20))
        } else {
            format!("FIRSTUP_PARENT/{}", hop_ip(i + 1))
        }
    };
    let mut seen = vec![0usize; hops.len()];
    let mut new_lines = |hops: &[Proxy], i: usize, n: usize| -> Vec<String> {
        let lines = hops[i].wait_lines(seen[i] + n);
        let fresh = lines[seen[i]..].to_vec();
        seen[i] += n;
        fresh
    };

    // 1. CONNECT tunnel with a real TLS 1.3 + HTTP/2 session.
    let ca = world.ca.display().to_string();
    let tunnel = world.curl(
        &hops[0],
        &[
            "--http2",
            "--cacert",
            &ca,
            "-w",
            "%{http_connect} %{http_code} %{http_version}",
            "-o",
            "/dev/null",
            &format!("https://{ENDPOINT_NAME}/"),
        ],
    );
    assert_eq!(
        (tunnel.exit, tunnel.stdout.as_str()),
        (0, "200 200 2"),
        "{}",
        tunnel.stderr
    );
    assert_eq!(
        world
            .endpoint
            .stats()
            .h2_connections
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let url = format!("{ENDPOINT_NAME}:443");
    let mut tunnel_bytes = Vec::new();
    for i in 0..hops.len() {
        let line = &new_lines(hops, i, 1)[0];
        let l = expect_line(line, &client_of(i), "TCP_TUNNEL/200", "CONNECT", &url, &hier_of(i), "-");
        tunnel_bytes.push(l.bytes);
    }
    // 39 bytes of "200 Connection established" plus every TLS byte from the server, on each hop.
    assert!(tunnel_bytes[0] > 39 + 500, "{tunnel_bytes:?}");
    assert!(
        tunnel_bytes.iter().all(|b| *b == tunnel_bytes[0]),
        "every hop logs the same tunnel bytes: {tunnel_bytes:?}"
    );

    // 2. Plain GET: origin-form at the origin, every hop in Via and X-Forwarded-For.
    let get = world.curl(&hops[0], &[&format!("http://{ENDPOINT_NAME}/get/path?secret=1")]);
    assert_eq!(get.exit, 0, "{}", get.stderr);
    assert!(
        get.stdout.starts_with("GET /get/path?secret=1 HTTP/1.1\r\n"),
        "{}",
        get.stdout
    );
    let via: Vec<String> = (0..hops.len())
        .map(|i| via_entry(&format!("proxy{}", i + 1), kinds[i]))
        .collect();
    assert_eq!(
        header(&get.stdout, "Via"),
        Some(via.join(", ").as_str()),
        "{}",
        get.stdout
    );
    let xff: Vec<String> = (0..hops.len()).map(client_of).collect();
    assert_eq!(header(&get.stdout, "X-Forwarded-For"), Some(xff.join(", ").as_str()));
    assert_eq!(header(&get.stdout, "Proxy-Connection"), None);
    let get_url = format!("http://{ENDPOINT_NAME}/get/path?");
    for i in 0..hops.len() {
        let line = &new_lines(hops, i, 1)[0];
        let l = expect_line(
            line,
            &client_of(i),
            "TCP_MISS/200",
            "GET",
            &get_url,
            &hier_of(i),
            "text/plain",
        );
        assert!(l.bytes > get.stdout.len() as u64, "head and body counted: {line}");
    }

    // 3. Plain POST with a 5000-byte body.
    let body = "p".repeat(5000);
    let post = world.curl(
        &hops[0],
        &["--data-binary", &body, &format!("http://{ENDPOINT_NAME}/upload")],
    );
    assert_eq!(post.exit, 0, "{}", post.stderr);
    assert!(post.stdout.starts_with("POST /upload HTTP/1.1\r\n"), "{}", post.stdout);
    assert!(
        post.stdout.ends_with(&format!("\r\n\r\n{body}")),
        "the body arrives whole"
    );
    let post_url = format!("http://{ENDPOINT_NAME}/upload");
    for i in 0..hops.len() {
        let line = &new_lines(hops, i, 1)[0];
        expect_line(
            line,
            &client_of(i),
            "TCP_MISS/200",
            "POST",
            &post_url,
            &hier_of(i),
            "text/plain",
        );
    }

    // 4. Denial at the far hop: proxy 1 allows the agent anywhere on 443, the far hop only
    //    allows the SaaS domain. CONNECT first, then a plain GET.
    let far = kinds[last];
    let denied = world.curl(
        &hops[0],
        &[
            "--cacert",
            &ca,
            "-D",
            "-",
            "-o",
            "/dev/null",
            &format!("https://{DENIED_NAME}/"),
        ],
    );
    assert_eq!(denied.exit, 56, "{}", denied.stderr);
    assert!(
        denied.stdout.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{}",
        denied.stdout
    );
    expect_far_denial(&denied.stdout, far, last);
    let denied_url = format!("{DENIED_NAME}:443");
    for i in 0..hops.len() {
        let line = &new_lines(hops, i, 1)[0];
        if i == last {
            let ctype = if far == Kind::Squid { "text/html" } else { "text/plain" };
            let l = expect_line(
                line,
                &client_of(i),
                "TCP_DENIED/403",
                "CONNECT",
                &denied_url,
                "HIER_NONE/-",
                ctype,
            );
            assert!(l.bytes > 0, "a denial counts its reply: {line}");
        } else {
            // A relayed parent error on CONNECT: Squid logs 0 bytes (it sends the head only),
            // hopproxy the bytes it wrote (head and body).
            let l = expect_line(
                line,
                &client_of(i),
                "TCP_TUNNEL/403",
                "CONNECT",
                &denied_url,
                &hier_of(i),
                "-",
            );
            match kinds[i] {
                Kind::Squid => assert_eq!(l.bytes, 0, "{line}"),
                Kind::Hopproxy => assert!(l.bytes > 0, "{line}"),
            }
        }
    }
    let denied_get = world.curl(
        &hops[0],
        &["-D", "-", "-o", "/dev/null", &format!("http://{DENIED_NAME}/x")],
    );
    assert!(
        denied_get.stdout.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{}",
        denied_get.stdout
    );
    expect_far_denial(&denied_get.stdout, far, last);
    let denied_get_url = format!("http://{DENIED_NAME}/x");
    let far_ctype = if far == Kind::Squid { "text/html" } else { "text/plain" };
    for i in 0..hops.len() {
        let line = &new_lines(hops, i, 1)[0];
        let (code, hier) = if i == last {
            ("TCP_DENIED/403", "HIER_NONE/-".to_string())
        } else {
            ("TCP_MISS/403", hier_of(i))
        };
        let l = expect_line(line, &client_of(i), code, "GET", &denied_get_url, &hier, far_ctype);
        assert!(l.bytes > 0, "{line}");
    }

    // 5. The far hop stopped: the hop in front of it answers 503 (relayed by any hop before).
    hops[last].stop();
    let before = last - 1;
    let stopped = world.curl(
        &hops[0],
        &[
            "--cacert",
            &ca,
            "-D",
            "-",
            "-o",
            "/dev/null",
            &format!("https://{ENDPOINT_NAME}/"),
        ],
    );
    assert_eq!(stopped.exit, 56, "{}", stopped.stderr);
    assert!(
        stopped.stdout.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{}",
        stopped.stdout
    );
    expect_far_down(&stopped.stdout, kinds[before], before, &hops[last].addr());
    for i in 0..last {
        let line = &new_lines(hops, i, 1)[0];
        let code = if i == before { "NONE_NONE/503" } else { "TCP_TUNNEL/503" };
        // Squid logs `-` as the type of a failed CONNECT even though it sent an HTML page;
        // hopproxy logs the type of the reply it wrote (a deliberate difference).
        let ctype = if i == before && kinds[i] == Kind::Hopproxy {
            "text/plain"
        } else {
            "-"
        };
        let l = expect_line(line, &client_of(i), code, "CONNECT", &url, &hier_of(i), ctype);
        match kinds[i] {
            // Squid logs 0 bytes for every failed CONNECT, even with an error page sent.
            Kind::Squid => assert_eq!(l.bytes, 0, "{line}"),
            Kind::Hopproxy => assert!(l.bytes > 0, "{line}"),
        }
    }
    let stopped_get = world.curl(
        &hops[0],
        &["-D", "-", "-o", "/dev/null", &format!("http://{ENDPOINT_NAME}/down")],
    );
    assert!(
        stopped_get.stdout.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{}",
        stopped_get.stdout
    );
    expect_far_down(&stopped_get.stdout, kinds[before], before, &hops[last].addr());
    let down_url = format!("http://{ENDPOINT_NAME}/down");
    let before_ctype = if kinds[before] == Kind::Squid {
        "text/html"
    } else {
        "text/plain"
    };
    for i in 0..last {
        let line = &new_lines(hops, i, 1)[0];
        let l = expect_line(
            line,
            &client_of(i),
            "TCP_MISS/503",
            "GET",
            &down_url,
            &hier_of(i),
            before_ctype,
        );
        assert!(l.bytes > 0, "{line}");
    }

    // Nothing else reached any log: no digest or netdb fetches, no logged parent probes.
    std::thread::sleep(Duration::from_millis(300));
    for (i, hop) in hops.iter().enumerate() {
        assert_eq!(hop.log_lines().len(), seen[i], "{}: {:#?}", hop.name(), hop.log_lines());
    }
}

/// What the client sees of a denial by the far hop (`index`), whichever hops relayed it.
fn expect_far_denial(head: &str, far: Kind, index: usize) {
    match far {
        Kind::Squid => assert_eq!(header(head, "X-Squid-Error"), Some("ERR_ACCESS_DENIED 0"), "{head}"),
        Kind::Hopproxy => {
            let status = header(head, "Proxy-Status").unwrap_or_default();
            assert!(
                status.starts_with(&format!("proxy{}.lab; error=http_request_denied", index + 1)),
                "{head}"
            );
        }
    }
}

/// What the client sees when the hop at `index` cannot reach the stopped hop at `next`.
fn expect_far_down(head: &str, kind: Kind, index: usize, next: &SocketAddr) {
    match kind {
        Kind::Squid => assert_eq!(header(head, "X-Squid-Error"), Some("ERR_CONNECT_FAIL 111"), "{head}"),
        Kind::Hopproxy => {
            let status = header(head, "Proxy-Status").unwrap_or_default();
            assert!(
                status.starts_with(&format!(
                    "proxy{}.lab; error=connection_refused; next-hop=\"{next}\"",
                    index + 1
                )),
                "{head}"
            );
        }
    }
}

/// (a) hopproxy proxy 1 → Squid proxy 2 → endpoint.
#[test]
fn hopproxy_in_front_of_squid() {
    let world = World::new(43);
    let p2_addr = world.addr(12);
    let p2 = world.squid("proxy2", p2_addr, &world.localize(&fixture("squid-proxy2.conf"), None));
    let p1_addr = world.addr(11);
    let p1 = world.hopproxy(
        "proxy1",
        p1_addr,
        &world.localize(&fixture("hopproxy-proxy1.conf"), Some(p2_addr.port())),
    );
    run_chain(&world, &mut [p1, p2], &[Kind::Hopproxy, Kind::Squid]);
}

/// (b) Squid proxy 1 → hopproxy proxy 2 → endpoint.
#[test]
fn squid_in_front_of_hopproxy() {
    let world = World::new(44);
    let p2_addr = world.addr(12);
    let p2 = world.hopproxy(
        "proxy2",
        p2_addr,
        &world.localize(&fixture("hopproxy-proxy2.conf"), None),
    );
    let p1_addr = world.addr(11);
    let p1 = world.squid(
        "proxy1",
        p1_addr,
        &world.localize(&fixture("squid-proxy1.conf"), Some(p2_addr.port())),
    );
    run_chain(&world, &mut [p1, p2], &[Kind::Squid, Kind::Hopproxy]);
}

/// (c) Squid proxy 1 → hopproxy proxy 2 → hopproxy proxy 3 → endpoint. The middle hop lets
/// proxy 1 through to any host on 80/443; the far hop (the edge config) only to the SaaS.
#[test]
fn squid_in_front_of_two_hopproxy_hops() {
    let world = World::new(45);
    let p3_addr = world.addr(13);
    let edge = fixture("hopproxy-proxy2.conf").replace("src 10.1.0.11", "src 10.1.0.12");
    let p3 = world.hopproxy("proxy3", p3_addr, &world.localize(&edge, None));
    let p2_addr = world.addr(12);
    let middle = format!(
        "acl proxy1 src 10.1.0.11\nacl Safe_ports port 80 443\nhttp_access deny !Safe_ports\n\
         http_access allow proxy1\nhttp_access deny all\n\
         cache_peer 10.1.0.13 parent {} 0 no-query default\nnever_direct allow all\n",
        p3_addr.port()
    );
    let p2 = world.hopproxy("proxy2", p2_addr, &world.localize(&middle, None));
    let p1_addr = world.addr(11);
    let p1 = world.squid(
        "proxy1",
        p1_addr,
        &world.localize(&fixture("squid-proxy1.conf"), Some(p2_addr.port())),
    );
    run_chain(
        &world,
        &mut [p1, p2, p3],
        &[Kind::Squid, Kind::Hopproxy, Kind::Hopproxy],
    );
}
