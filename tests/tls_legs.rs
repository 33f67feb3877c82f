//! TLS on the proxy legs, end to end with real processes: curl speaking TLS to a hopproxy
//! `https_port` (`--proxy https://…`), and a two-hop chain whose proxies authenticate each
//! other (`cache_peer … tls` with a client certificate → `https_port … clientca=`), including
//! the refusals: a parent refusing a child without a certificate, a child refusing a parent
//! whose certificate carries the wrong name or comes from an unknown CA, and a `user_cert`
//! ACL refusing a certificate with another name.
//!
//! Addresses (blocks 80, 81): agent `.5`, proxy 1 `.11`, proxy 2 `.12`, endpoint `.20` (TLS
//! 1.3 + h2 on 443, plain HTTP on 80; `.21` for the trace test, which shares block 80). The proxies' names (`proxy1.example`,
//! `proxy2.example`) are only in certificates and in curl's `--resolve`; no DNS is asked.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use common::{ENDPOINT_NAME, Hop, curl, header, parse_log_line};
use hopproxy::lab::certs::Pki;
use hopproxy::lab::endpoint::{Endpoint, EndpointHandle, EndpointOptions};
use hopproxy::lab::process::free_port;
use hopproxy::lab::squid::Squid;

fn ip(block: u8, host: u8) -> IpAddr {
    IpAddr::from([127, 0, block, host])
}

/// One test's world: PKI (one CA for the endpoint and both proxies), endpoint, origin, hosts.
struct World {
    block: u8,
    dir: tempfile::TempDir,
    pki: Pki,
    ca: PathBuf,
    hosts: PathBuf,
    _endpoint: EndpointHandle,
    _origin: common::origin::Server,
}

impl World {
    fn new(block: u8) -> World {
        World::with_endpoint(block, 20)
    }

    /// A world whose endpoint is `.endpoint_host` (two tests share block 80).
    fn with_endpoint(block: u8, endpoint_host: u8) -> World {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(ENDPOINT_NAME, "tls legs test CA").unwrap();
        let ca = pki.write(dir.path(), "endpoint").unwrap().ca_cert;
        let endpoint_ip = ip(block, endpoint_host);
        let endpoint = Endpoint::start(SocketAddr::new(endpoint_ip, 443), &pki, EndpointOptions::default()).unwrap();
        let origin = common::origin::echo_origin(SocketAddr::new(endpoint_ip, 80));
        let hosts = common::write_hosts(dir.path(), &[(ENDPOINT_NAME, endpoint_ip)]);
        World {
            block,
            dir,
            pki,
            ca,
            hosts,
            _endpoint: endpoint,
            _origin: origin,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn addr(&self, host: u8) -> SocketAddr {
        let ip = ip(self.block, host);
        SocketAddr::new(ip, free_port(ip).unwrap())
    }

    /// A certificate and key for `name`, signed by the test CA.
    fn cert(&self, name: &str) -> (String, String) {
        let (cert, key) = self.pki.issue(name, self.path(), name).unwrap();
        (cert.display().to_string(), key.display().to_string())
    }

    /// hopproxy on `addr` with `listen` (the `https_port …` line) and `rules`.
    fn hop(&self, name: &str, addr: SocketAddr, listen: &str, rules: &str) -> Hop {
        let text = format!(
            "{listen}\n{rules}\nvisible_hostname {name}.lab\nhosts_file {}\ntcp_outgoing_address {}\n\
             access_log stdio:{} squid\nshutdown_lifetime 2 seconds\n",
            self.hosts.display(),
            addr.ip(),
            Hop::log_path(self.path(), name).display()
        );
        Hop::start(name, self.path(), addr, &text)
    }

    /// curl from the agent (`.5`) through the `https://NAME:PORT` proxy at `proxy`.
    fn curl_via(&self, proxy_name: &str, proxy: SocketAddr, extra: &[&str]) -> common::CurlResult {
        let agent = ip(self.block, 5).to_string();
        let url = format!("https://{proxy_name}:{}", proxy.port());
        let resolve = format!("{proxy_name}:{}:{}", proxy.port(), proxy.ip());
        let ca = self.ca.display().to_string();
        let mut args = vec![
            "--interface",
            &agent,
            "--proxy",
            &url,
            "--resolve",
            &resolve,
            "--proxy-cacert",
            &ca,
        ];
        args.extend_from_slice(extra);
        curl(&args)
    }
}

/// curl → hopproxy https_port → endpoint: a TLS 1.3 + h2 tunnel and a plain GET, both
/// through the TLS leg; a client that does not trust the port's certificate gets nowhere and
/// the proxy says why.
#[test]
fn curl_speaks_tls_to_an_https_port() {
    let world = World::new(80);
    let (cert, key) = world.cert("proxy1.example");
    let addr = world.addr(11);
    let agent = ip(80, 5);
    let hop = world.hop(
        "proxy1",
        addr,
        &format!("https_port {addr} tls-cert={cert} tls-key={key} tls-min-version=1.2"),
        &format!("acl agent src {agent}\nhttp_access allow agent\nhttp_access deny all"),
    );
    let ca = world.ca.display().to_string();

    let tunnel = world.curl_via(
        "proxy1.example",
        addr,
        &[
            "--http2",
            "--cacert",
            &ca,
            "-sS",
            "-i",
            &format!("https://{ENDPOINT_NAME}/tunnel"),
        ],
    );
    assert_eq!(tunnel.exit, 0, "{}", tunnel.stderr);
    assert!(
        tunnel.stdout.starts_with("HTTP/1.1 200 Connection established\r\n"),
        "{}",
        tunnel.stdout
    );
    assert!(tunnel.stdout.contains("HTTP/2 200"), "{}", tunnel.stdout);

    let plain = world.curl_via(
        "proxy1.example",
        addr,
        &["-i", &format!("http://{ENDPOINT_NAME}/plain")],
    );
    assert_eq!(plain.exit, 0, "{}", plain.stderr);
    assert!(plain.stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{}", plain.stdout);
    assert!(
        plain.stdout.contains("GET /plain HTTP/1.1"),
        "the origin got the request: {}",
        plain.stdout
    );

    // Without the CA, curl refuses the port's certificate: no transaction, and the proxy's
    // diagnostics name the client and the alert.
    let agent_text = agent.to_string();
    let url = format!("https://proxy1.example:{}", addr.port());
    let resolve = format!("proxy1.example:{}:{}", addr.port(), addr.ip());
    let untrusted = curl(&[
        "--interface",
        &agent_text,
        "--proxy",
        &url,
        "--resolve",
        &resolve,
        &format!("http://{ENDPOINT_NAME}/x"),
    ]);
    assert_eq!(untrusted.exit, 60, "curl: certificate problem: {}", untrusted.stderr);
    hop.wait_for_stderr("the client refused this port's certificate (TLS alert unknown_ca)");

    let lines: Vec<_> = hop.wait_for_lines(2).iter().map(|l| parse_log_line(l)).collect();
    assert_eq!(lines.len(), 2, "the refused handshake is not a transaction: {lines:#?}");
    let tunnel_line = common::the_line(&lines, "the tunnel", |l| l.method == "CONNECT");
    assert_eq!(
        (
            tunnel_line.client.as_str(),
            tunnel_line.code.as_str(),
            tunnel_line.url.as_str()
        ),
        (
            agent_text.as_str(),
            "TCP_TUNNEL/200",
            format!("{ENDPOINT_NAME}:443").as_str()
        )
    );
    assert_eq!(tunnel_line.hierarchy, format!("HIER_DIRECT/{}", ip(80, 20)));
    let get = common::the_line(&lines, "the GET", |l| l.method == "GET");
    assert_eq!(get.code, "TCP_MISS/200");
    assert_eq!(get.url, format!("http://{ENDPOINT_NAME}/plain"));
}

/// agent → proxy 1 (https_port) → proxy 2 (https_port with clientca=, a `user_cert` ACL),
/// with proxy 1 presenting its certificate; then each way the leg between them can fail.
#[test]
fn chain_with_mutual_tls_between_the_proxies() {
    let world = World::new(81);
    let (p1_cert, p1_key) = world.cert("proxy1.example");
    let (p2_cert, p2_key) = world.cert("proxy2.example");
    let (intruder_cert, intruder_key) = world.cert("intruder.example");
    let ca = world.ca.display().to_string();
    let other_ca_dir = tempfile::tempdir().unwrap();
    let other_ca = Pki::generate("unrelated.example", "unrelated CA")
        .unwrap()
        .write(other_ca_dir.path(), "x")
        .unwrap()
        .ca_cert
        .display()
        .to_string();

    let p2_addr = world.addr(12);
    let p2_log = world.path().join("proxy2.certs.log");
    let proxy2 = world.hop(
        "proxy2",
        p2_addr,
        &format!("https_port {p2_addr} tls-cert={p2_cert} tls-key={p2_key} clientca={ca}"),
        &format!(
            "acl proxy1 user_cert CN proxy1.example\n\
             logformat certs %>a %Ss/%03>Hs %rm %ru %ssl::>cert_subject\n\
             access_log stdio:{} certs\n\
             http_access allow proxy1\nhttp_access deny all",
            p2_log.display()
        ),
    );
    let agent = ip(81, 5);
    let child = |name: &str, peer_options: &str| {
        let addr = world.addr(11);
        let hop = world.hop(
            name,
            addr,
            &format!("https_port {addr} tls-cert={p1_cert} tls-key={p1_key}"),
            &format!(
                "cache_peer {} parent {} 0 no-query {peer_options}\nnever_direct allow all\n\
                 acl agent src {agent}\nhttp_access allow agent\nhttp_access deny all",
                p2_addr.ip(),
                p2_addr.port()
            ),
        );
        (hop, addr)
    };

    // The good chain: proxy 1 verifies proxy2.example and presents proxy1.example.
    let (proxy1, p1_addr) = child(
        "proxy1",
        &format!("tls tls-cafile={ca} tls-domain=proxy2.example tls-cert={p1_cert} tls-key={p1_key}"),
    );
    let tunnel = world.curl_via(
        "proxy1.example",
        p1_addr,
        &[
            "--http2",
            "--cacert",
            &ca,
            "-i",
            &format!("https://{ENDPOINT_NAME}/chain"),
        ],
    );
    assert_eq!(tunnel.exit, 0, "{}", tunnel.stderr);
    assert!(tunnel.stdout.contains("HTTP/2 200"), "{}", tunnel.stdout);
    let plain = world.curl_via("proxy1.example", p1_addr, &["-i", &format!("http://{ENDPOINT_NAME}/p")]);
    assert!(plain.stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{}", plain.stdout);

    let p1_lines: Vec<_> = proxy1.wait_for_lines(2).iter().map(|l| parse_log_line(l)).collect();
    for line in &p1_lines {
        assert_eq!(line.client, agent.to_string());
        assert_eq!(line.hierarchy, format!("FIRSTUP_PARENT/{}", p2_addr.ip()));
    }
    let certs_text = || std::fs::read_to_string(&p2_log).unwrap_or_default();
    let p1_ip = p1_addr.ip();
    common::wait_until("proxy 2 logs both requests", || certs_text().lines().count() >= 2);
    let text = certs_text();
    assert!(
        text.contains(&format!(
            "{p1_ip} TCP_TUNNEL/200 CONNECT {ENDPOINT_NAME}:443 CN=proxy1.example\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{p1_ip} TCP_MISS/200 GET http://{ENDPOINT_NAME}/p CN=proxy1.example\n"
        )),
        "{text}"
    );

    // A child without a certificate: proxy 2 refuses the handshake, proxy 1 says so.
    let (_bare, bare_addr) = child("bare", &format!("tls tls-cafile={ca} tls-domain=proxy2.example"));
    for (method_args, method) in [(vec!["-p"], "CONNECT"), (vec![], "GET")] {
        let mut args = method_args.clone();
        let url = format!("http://{ENDPOINT_NAME}/nocert");
        args.extend_from_slice(&["-i", &url]);
        let refused = world.curl_via("proxy1.example", bare_addr, &args);
        let head = refused.stdout.clone();
        assert!(
            head.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
            "{method}: {head}\n{}",
            refused.stderr
        );
        let status = header(&head, "Proxy-Status").unwrap_or_default();
        assert!(status.contains("error=tls_protocol_error"), "{method}: {status}");
        assert!(
            status.contains("our client certificate was refused (TLS alert certificate_required)"),
            "{method}: {status}"
        );
        assert!(
            status.contains(&format!("next-hop=\"{p2_addr}\"")),
            "{method}: {status}"
        );
    }
    proxy2.wait_for_stderr("refused: no client certificate presented");

    // A parent whose certificate does not carry the name the child expects.
    let (_wrong, wrong_addr) = child(
        "wrongname",
        &format!("tls tls-cafile={ca} tls-domain=proxy3.example tls-cert={p1_cert} tls-key={p1_key}"),
    );
    let refused = world.curl_via(
        "proxy1.example",
        wrong_addr,
        &["-i", &format!("http://{ENDPOINT_NAME}/n")],
    );
    assert!(
        refused.stdout.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{}",
        refused.stdout
    );
    let status = header(&refused.stdout, "Proxy-Status").unwrap_or_default();
    assert!(status.contains("error=tls_certificate_error"), "{status}");
    assert!(
        status.contains("certificate not valid for the name proxy3.example"),
        "{status}"
    );

    // A parent signed by a CA the child does not trust.
    let (_unknown, unknown_addr) = child(
        "unknownca",
        &format!("tls tls-cafile={other_ca} tls-domain=proxy2.example tls-cert={p1_cert} tls-key={p1_key}"),
    );
    let refused = world.curl_via(
        "proxy1.example",
        unknown_addr,
        &["-p", "-i", &format!("http://{ENDPOINT_NAME}/u")],
    );
    let status = header(&refused.stdout, "Proxy-Status").unwrap_or_default();
    assert!(status.contains("error=tls_certificate_error"), "{status}");
    assert!(status.contains("certificate signed by an unknown CA"), "{status}");

    // A certificate from the right CA with another name: the handshake succeeds, and the
    // user_cert ACL denies.
    let denied = world.curl_via(
        "proxy2.example",
        p2_addr,
        &[
            "--proxy-cert",
            &intruder_cert,
            "--proxy-key",
            &intruder_key,
            "-i",
            &format!("http://{ENDPOINT_NAME}/i"),
        ],
    );
    assert!(
        denied.stdout.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{}",
        denied.stdout
    );
    common::wait_until("proxy 2 logs the denial", || {
        certs_text().contains("CN=intruder.example")
    });
    assert!(
        certs_text().contains(&format!(
            "{agent} TCP_DENIED/403 GET http://{ENDPOINT_NAME}/i CN=intruder.example\n"
        )),
        "{}",
        certs_text()
    );
}

/// The access-log lines of a Squid without the harness's readiness probes (connect from
/// 127.0.0.1, send nothing: docs/squid-behaviour.md M14), waiting (bounded) for `count`.
fn squid_lines(squid: &Squid, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    common::wait_until("squid's log lines", || {
        lines = squid
            .access_log_text()
            .lines()
            .filter(|l| !l.contains("error:transaction-end-before-headers"))
            .map(str::to_string)
            .collect();
        lines.len() >= count
    });
    lines
}

/// Squid 5.7 as proxy 2 behind hopproxy, the leg between them TLS: Debian's GnuTLS build
/// serves `https_port` (it rejects `clientca=` and does not demand a client certificate, so
/// this leg is TLS without mTLS); hopproxy verifies Squid's certificate, name and CA.
#[test]
fn squid_https_port_behind_hopproxy() {
    if hopproxy::lab::squid::squid_binary().is_err() {
        return common::skip("squid is not installed");
    }
    let world = World::new(82);
    // Squid drops to its own user: let it read the certificates.
    std::fs::set_permissions(world.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (p1_cert, p1_key) = world.cert("proxy1.example");
    let (p2_cert, p2_key) = world.cert("proxy2.example");
    let ca = world.ca.display().to_string();
    let squid_http = world.addr(12);
    let squid_tls = world.addr(12);
    let p1_addr = world.addr(11);
    let squid = Squid::start(
        "proxy2.lab",
        squid_http,
        &format!(
            "https_port {squid_tls} tls-cert={p2_cert} tls-key={p2_key}\nhosts_file {}\n\
             acl child src {}\nhttp_access allow child\nhttp_access deny all\n",
            world.hosts.display(),
            p1_addr.ip()
        ),
        world.path(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let agent = ip(82, 5);
    let child = |name: &str, addr: SocketAddr, domain: &str| {
        world.hop(
            name,
            addr,
            &format!("https_port {addr} tls-cert={p1_cert} tls-key={p1_key}"),
            &format!(
                "cache_peer {} parent {} 0 no-query tls tls-cafile={ca} tls-domain={domain} tls-cert={p1_cert} tls-key={p1_key}\n\
                 never_direct allow all\nacl agent src {agent}\nhttp_access allow agent\nhttp_access deny all",
                squid_tls.ip(),
                squid_tls.port()
            ),
        )
    };
    let proxy1 = child("proxy1", p1_addr, "proxy2.example");
    let tunnel = world.curl_via(
        "proxy1.example",
        p1_addr,
        &[
            "--http2",
            "--cacert",
            &ca,
            "-i",
            &format!("https://{ENDPOINT_NAME}/squid"),
        ],
    );
    assert_eq!(tunnel.exit, 0, "{}", tunnel.stderr);
    assert!(tunnel.stdout.contains("HTTP/2 200"), "{}", tunnel.stdout);
    let plain = world.curl_via(
        "proxy1.example",
        p1_addr,
        &["-i", &format!("http://{ENDPOINT_NAME}/sq")],
    );
    assert!(plain.stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{}", plain.stdout);
    assert!(
        plain.stdout.contains("(squid/5.7)"),
        "Via names Squid: {}",
        plain.stdout
    );

    let lines: Vec<_> = squid_lines(&squid, 2).iter().map(|l| parse_log_line(l)).collect();
    let tunnel_line = common::the_line(&lines, "Squid's tunnel", |l| l.method == "CONNECT");
    assert_eq!(tunnel_line.client, p1_addr.ip().to_string());
    assert_eq!(tunnel_line.code, "TCP_TUNNEL/200");
    let get = common::the_line(&lines, "Squid's GET", |l| l.method == "GET");
    assert_eq!(get.code, "TCP_MISS/200");
    let p1_lines: Vec<_> = proxy1.wait_for_lines(2).iter().map(|l| parse_log_line(l)).collect();
    assert!(
        p1_lines
            .iter()
            .all(|l| l.hierarchy == format!("FIRSTUP_PARENT/{}", squid_tls.ip()))
    );

    // hopproxy checks Squid's certificate like any parent's.
    let wrong_addr = world.addr(11);
    let _wrong = child("wrongname", wrong_addr, "squid.invalid");
    let refused = world.curl_via(
        "proxy1.example",
        wrong_addr,
        &["-i", &format!("http://{ENDPOINT_NAME}/w")],
    );
    let status = header(&refused.stdout, "Proxy-Status").unwrap_or_default();
    assert!(status.contains("error=tls_certificate_error"), "{}", refused.stdout);
    assert!(
        status.contains("certificate not valid for the name squid.invalid"),
        "{status}"
    );
}

/// Squid 5.7 as proxy 1 in front of hopproxy, `cache_peer … tls` to hopproxy's https_port.
/// Its GnuTLS build verifies hopproxy's certificate but presents no client certificate even
/// with `tls-cert=`, so a `clientca=` port refuses it (and says so); and it fails on TLS 1.3
/// session tickets, so the port sets `tls-options=NO_TICKET`.
#[test]
fn squid_cache_peer_tls_in_front_of_hopproxy() {
    if hopproxy::lab::squid::squid_binary().is_err() {
        return common::skip("squid is not installed");
    }
    let world = World::new(83);
    std::fs::set_permissions(world.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (p1_cert, p1_key) = world.cert("proxy1.example");
    let (p2_cert, p2_key) = world.cert("proxy2.example");
    let ca = world.ca.display().to_string();
    let open_addr = world.addr(12);
    let mtls_addr = world.addr(12);
    let squid_addr = world.addr(11);
    let parent = |name: &str, addr: SocketAddr, extra: &str| {
        world.hop(
            name,
            addr,
            &format!("https_port {addr} tls-cert={p2_cert} tls-key={p2_key} tls-options=NO_TICKET {extra}"),
            &format!(
                "acl child src {}\nhttp_access allow child\nhttp_access deny all",
                squid_addr.ip()
            ),
        )
    };
    let proxy2 = parent("proxy2", open_addr, "");
    let mtls = parent("proxy2mtls", mtls_addr, &format!("clientca={ca}"));
    let squid = Squid::start(
        "proxy1.lab",
        squid_addr,
        &format!(
            "cache_peer {} parent {} 0 no-query no-digest name=open tls tls-cafile={ca} tls-domain=proxy2.example tls-cert={p1_cert} tls-key={p1_key}\n\
             cache_peer {} parent {} 0 no-query no-digest name=mtls tls tls-cafile={ca} tls-domain=proxy2.example tls-cert={p1_cert} tls-key={p1_key}\n\
             acl to_mtls urlpath_regex ^/mtls\ncache_peer_access mtls allow to_mtls\ncache_peer_access mtls deny all\n\
             cache_peer_access open deny to_mtls\nnever_direct allow all\nhttp_access allow all\n\
             tcp_outgoing_address {}\n",
            open_addr.ip(),
            open_addr.port(),
            mtls_addr.ip(),
            mtls_addr.port(),
            squid_addr.ip()
        ),
        world.path(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let agent = ip(83, 5).to_string();
    let proxy = format!("http://{squid_addr}");
    let plain = curl(&[
        "--interface",
        &agent,
        "-x",
        &proxy,
        "-i",
        &format!("http://{ENDPOINT_NAME}/fromsquid"),
    ]);
    assert!(plain.stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{}", plain.stdout);
    let tunnel = curl(&[
        "--interface",
        &agent,
        "-x",
        &proxy,
        "--http2",
        "--cacert",
        &ca,
        "-i",
        &format!("https://{ENDPOINT_NAME}/fromsquid"),
    ]);
    assert_eq!(tunnel.exit, 0, "{}", tunnel.stderr);
    assert!(tunnel.stdout.contains("HTTP/2 200"), "{}", tunnel.stdout);
    let lines: Vec<_> = proxy2.wait_for_lines(2).iter().map(|l| parse_log_line(l)).collect();
    assert!(
        lines.iter().all(|l| l.client == squid_addr.ip().to_string()),
        "{lines:#?}"
    );
    common::the_line(&lines, "the tunnel from Squid", |l| l.code == "TCP_TUNNEL/200");
    common::the_line(&lines, "the GET from Squid", |l| l.code == "TCP_MISS/200");

    // The mTLS port: Squid sends no certificate; hopproxy refuses and names the reason.
    let refused = curl(&[
        "--interface",
        &agent,
        "-x",
        &proxy,
        "-i",
        &format!("http://{ENDPOINT_NAME}/mtls"),
    ]);
    assert!(
        refused.stdout.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{}",
        refused.stdout
    );
    mtls.wait_for_stderr("refused: no client certificate presented");
    let _ = squid_lines(&squid, 3);
}

/// `hopproxy trace` and `hopproxy agent` with an `https://` proxy: the TLS leg is a step of
/// its own, and a proxy certificate from an unknown CA is named as such.
#[test]
fn trace_and_agent_take_an_https_proxy() {
    let world = World::with_endpoint(80, 21);
    let addr = world.addr(12);
    // The URL names the proxy by address (no DNS): its certificate carries that address.
    let (cert, key) = world.cert(&addr.ip().to_string());
    let agent = ip(80, 5);
    let _hop = world.hop(
        "proxy-by-ip",
        addr,
        &format!("https_port {addr} tls-cert={cert} tls-key={key}"),
        &format!("acl agent src {agent} 127.0.0.1\nhttp_access allow agent\nhttp_access deny all"),
    );
    let ca = world.ca.display().to_string();
    let proxy = format!("https://{addr}");
    let target = format!("{ENDPOINT_NAME}:443");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::hopproxy_bin())
            .args(args)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let agent_text = agent.to_string();
    let (code, out) = run(&[
        "trace",
        "--proxy",
        &proxy,
        "--proxy-cacert",
        &ca,
        "--ca-file",
        &ca,
        "--interface",
        &agent_text,
        &target,
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("TLS with proxy 1 ({addr})")), "{out}");

    let other_dir = tempfile::tempdir().unwrap();
    let other_ca = Pki::generate("unrelated.example", "unrelated CA")
        .unwrap()
        .write(other_dir.path(), "x")
        .unwrap()
        .ca_cert;
    let other_ca = other_ca.display().to_string();
    let (code, out) = run(&[
        "trace",
        "--proxy",
        &proxy,
        "--proxy-cacert",
        &other_ca,
        "--ca-file",
        &ca,
        "--interface",
        &agent_text,
        &target,
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("certificate signed by an unknown CA"), "{out}");

    let backend = world.path().join("Backend.cfg");
    std::fs::write(
        &backend,
        hopproxy::agent::backend_cfg::render(ENDPOINT_NAME, 443, hopproxy::lab::endpoint::DEFAULT_KEY, "192.0.2.1", 9),
    )
    .unwrap();
    let backend = backend.display().to_string();
    let (code, out) = run(&[
        "agent",
        "--backend-cfg",
        &backend,
        "--proxy",
        &proxy,
        "--proxy-cacert",
        &ca,
        "--ca-file",
        &ca,
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Connected using HTTP/2"), "{out}");
}

/// SIGHUP re-reads the certificates: a renewed certificate serves the next connection; a
/// broken one rejects the reload with `file:line:` and the running certificate stays.
#[test]
fn reload_rereads_certificates() {
    let world = World::with_endpoint(80, 22);
    let addr = world.addr(13);
    let (cert, key) = world.cert("proxy1.example");
    let agent = ip(80, 5);
    let hop = world.hop(
        "reloaded",
        addr,
        &format!("https_port {addr} tls-cert={cert} tls-key={key}"),
        &format!("acl agent src {agent}\nhttp_access allow agent\nhttp_access deny all"),
    );
    let url = format!("http://{ENDPOINT_NAME}/r");
    let get = |ca: &str| {
        let agent = agent.to_string();
        let proxy = format!("https://proxy1.example:{}", addr.port());
        let resolve = format!("proxy1.example:{}:{}", addr.port(), addr.ip());
        curl(&[
            "--interface",
            &agent,
            "--proxy",
            &proxy,
            "--resolve",
            &resolve,
            "--proxy-cacert",
            ca,
            &url,
        ])
    };
    let old_ca = world.ca.display().to_string();
    assert_eq!(get(&old_ca).exit, 0);

    // Renewed by another CA, same files.
    let renewed_dir = tempfile::tempdir().unwrap();
    let renewed = Pki::generate("unused.example", "renewing CA").unwrap();
    let new_ca = renewed
        .write(renewed_dir.path(), "x")
        .unwrap()
        .ca_cert
        .display()
        .to_string();
    let (new_cert, new_key) = renewed.issue("proxy1.example", renewed_dir.path(), "proxy1").unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    hop.signal("HUP");
    hop.wait_for_stderr("reloaded: new connections use the new config");
    assert_eq!(get(&new_ca).exit, 0, "the renewed certificate is served");
    assert_eq!(get(&old_ca).exit, 60, "the old one is not");

    // A key file that is not a key: the reload is rejected, the renewed certificate stays.
    std::fs::write(&key, "not a key\n").unwrap();
    hop.signal("HUP");
    let stderr = hop.wait_for_stderr("reload rejected");
    assert!(
        stderr.contains(&format!(
            "reloaded.conf:1: error: https_port {addr}: cannot read a private key from {key}"
        )),
        "{stderr}"
    );
    assert_eq!(get(&new_ca).exit, 0);
}
