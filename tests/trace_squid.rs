//! `trace` against real two-hop Squid chains (agent → proxy1 → proxy2 → endpoint), one case per
//! test, each on its own loopback block. Squid must be installed.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hopproxy::lab::ENDPOINT_NAME;
use hopproxy::lab::certs::Pki;
use hopproxy::lab::endpoint::{Endpoint, EndpointHandle, EndpointOptions};
use hopproxy::lab::process::free_port;
use hopproxy::lab::squid::Squid;
use hopproxy::trace::{TraceOptions, TraceReport, trace};

struct Chain {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    endpoint: EndpointHandle,
    proxy1: Squid,
    proxy2: Squid,
}

fn addr(ip: &str) -> SocketAddr {
    let ip: IpAddr = ip.parse().unwrap();
    SocketAddr::new(ip, free_port(ip).unwrap())
}

/// proxy2 rules: `deny` adds a dstdomain denial of the endpoint name.
fn proxy2_rules(dir: &Path, deny_endpoint: bool) -> String {
    let deny = if deny_endpoint {
        format!("acl blocked dstdomain {ENDPOINT_NAME}\nhttp_access deny blocked\n")
    } else {
        String::new()
    };
    format!(
        "hosts_file {}\n{deny}http_access allow all\n",
        dir.join("hosts").display()
    )
}

/// Starts endpoint, proxy2 and proxy1 (proxy1 has proxy2 as parent unless `direct_proxy1`).
fn chain(block: u8, endpoint: EndpointOptions, foreign_ca: bool, deny: bool, direct_proxy1: bool) -> Chain {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(ENDPOINT_NAME, "trace test CA").unwrap();
    let ca = pki.write(dir.path(), "endpoint").unwrap().ca_cert;
    // Interception: the endpoint presents a certificate from a CA the client was not given.
    let served = if foreign_ca {
        Pki::generate(ENDPOINT_NAME, "Intercepting Proxy CA").unwrap()
    } else {
        pki
    };
    let ep = Endpoint::start(format!("127.0.{block}.20:0").parse().unwrap(), &served, endpoint).unwrap();
    std::fs::write(
        dir.path().join("hosts"),
        format!("{} {ENDPOINT_NAME}\n", ep.local_addr().ip()),
    )
    .unwrap();

    let p2 = Squid::start(
        "proxy2.lab",
        addr(&format!("127.0.{block}.12")),
        &proxy2_rules(dir.path(), deny),
        dir.path(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p1_rules = if direct_proxy1 {
        format!(
            "hosts_file {}\nhttp_access allow all\n",
            dir.path().join("hosts").display()
        )
    } else {
        format!(
            "hosts_file {}\nhttp_access allow all\n\
             cache_peer {} parent {} 0 no-query default no-digest no-netdb-exchange\nnever_direct allow all\n",
            dir.path().join("hosts").display(),
            p2.addr.ip(),
            p2.addr.port()
        )
    };
    let p1 = Squid::start("proxy1.lab", addr(&format!("127.0.{block}.11")), &p1_rules, dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    Chain {
        _dir: dir,
        ca,
        endpoint: ep,
        proxy1: p1,
        proxy2: p2,
    }
}

fn options(chain: &Chain, proxies: Vec<String>, host: &str, port: u16) -> TraceOptions {
    TraceOptions {
        proxy_tls: None,
        proxies,
        target_host: host.to_string(),
        target_port: port,
        ca_file: Some(chain.ca.clone()),
        auth: None,
        key: None,
        request: true,
        step_timeout: Duration::from_secs(10),
        source: None,
    }
}

fn seed_style(chain: &Chain) -> TraceOptions {
    options(
        chain,
        vec![chain.proxy1.addr.to_string()],
        ENDPOINT_NAME,
        chain.endpoint.local_addr().port(),
    )
}

fn failure(report: &TraceReport) -> (Option<usize>, String, String) {
    let f = report
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("expected a failure:\n{report:#?}"));
    (f.hop, f.error.clone(), f.reason.clone())
}

#[tokio::test]
async fn all_well() {
    let chain = chain(51, EndpointOptions::default(), false, false, false);
    let report = trace(seed_style(&chain)).await;
    assert!(report.ok, "{}", hopproxy::trace::render_text(&report));
    let tls = report.tls.as_ref().unwrap();
    assert!(tls.trusted && tls.name_matches);
    assert_eq!(tls.alpn.as_deref(), Some("h2"));
    assert_eq!(tls.subject, format!("CN={ENDPOINT_NAME}"));
    assert!(
        report
            .steps
            .iter()
            .any(|s| s.step == "request" && s.ok && s.detail.contains("200 (HTTP/2)"))
    );
}

#[tokio::test]
async fn proxy2_down() {
    let mut chain = chain(52, EndpointOptions::default(), false, false, false);
    chain.proxy2.stop();
    let report = trace(seed_style(&chain)).await;
    let (hop, error, reason) = failure(&report);
    // Squid's own page names proxy 1 and the parent address it could not reach.
    assert_eq!((hop, error.as_str()), (Some(1), "connection_refused"), "{reason}");
    assert!(reason.contains("proxy1.lab"), "{reason}");
    assert!(
        reason.contains(&format!("could not connect to {}", chain.proxy2.addr.ip())),
        "{reason}"
    );
    assert!(reason.contains("connection refused"), "{reason}");
}

#[tokio::test]
async fn proxy2_down_client_side_chain_names_hop_2() {
    let mut chain = chain(53, EndpointOptions::default(), false, false, true);
    chain.proxy2.stop();
    let proxies = vec![chain.proxy1.addr.to_string(), chain.proxy2.addr.to_string()];
    let report = trace(options(
        &chain,
        proxies,
        ENDPOINT_NAME,
        chain.endpoint.local_addr().port(),
    ))
    .await;
    let (hop, error, reason) = failure(&report);
    assert_eq!((hop, error.as_str()), (Some(2), "connection_refused"), "{reason}");
    assert!(
        reason.contains(&format!("could not connect to proxy 2 ({})", chain.proxy2.addr)),
        "{reason}"
    );
    assert!(
        report
            .hop_checks
            .iter()
            .any(|s| !s.ok && s.detail.starts_with("proxy 2")),
        "{:?}",
        report.hop_checks
    );
}

#[tokio::test]
async fn client_side_chain_all_well() {
    let chain = chain(54, EndpointOptions::default(), false, false, true);
    let proxies = vec![chain.proxy1.addr.to_string(), chain.proxy2.addr.to_string()];
    let report = trace(options(
        &chain,
        proxies,
        ENDPOINT_NAME,
        chain.endpoint.local_addr().port(),
    ))
    .await;
    assert!(report.ok, "{}", hopproxy::trace::render_text(&report));
    assert_eq!(report.steps.iter().filter(|s| s.step == "connect" && s.ok).count(), 2);
    assert_eq!(report.hop_checks.len(), 2);
}

#[tokio::test]
async fn proxy2_denies_the_target() {
    let chain = chain(55, EndpointOptions::default(), false, true, false);
    let report = trace(seed_style(&chain)).await;
    let (hop, error, reason) = failure(&report);
    assert_eq!((hop, error.as_str()), (Some(2), "http_request_denied"), "{reason}");
    assert!(reason.contains("proxy 2 (proxy2.lab"), "{reason}");
    assert!(reason.contains("denied the request"), "{reason}");
}

#[tokio::test]
async fn target_port_closed() {
    let chain = chain(56, EndpointOptions::default(), false, false, false);
    let report = trace(options(&chain, vec![chain.proxy1.addr.to_string()], ENDPOINT_NAME, 1)).await;
    let (hop, error, reason) = failure(&report);
    assert_eq!((hop, error.as_str()), (Some(2), "connection_refused"), "{reason}");
    assert!(
        reason.contains(&format!("could not connect to {ENDPOINT_NAME}:1")),
        "{reason}"
    );
}

#[tokio::test]
async fn name_does_not_resolve() {
    let chain = chain(57, EndpointOptions::default(), false, false, false);
    let report = trace(options(
        &chain,
        vec![chain.proxy1.addr.to_string()],
        "no-such-host.invalid",
        443,
    ))
    .await;
    let (hop, error, reason) = failure(&report);
    assert_eq!((hop, error.as_str()), (Some(2), "destination_not_found"), "{reason}");
    assert!(
        reason.contains("could not resolve the name of no-such-host.invalid:443"),
        "{reason}"
    );
}

#[tokio::test]
async fn certificate_from_an_unexpected_ca_is_interception() {
    let chain = chain(58, EndpointOptions::default(), true, false, false);
    let report = trace(seed_style(&chain)).await;
    let (hop, error, reason) = failure(&report);
    assert_eq!((hop, error.as_str()), (None, "tls_untrusted"), "{reason}");
    assert!(reason.contains("possible TLS interception by a proxy"), "{reason}");
    assert!(reason.contains("Intercepting Proxy CA"), "{reason}");
}

#[tokio::test]
async fn endpoint_without_h2() {
    let chain = chain(
        50,
        EndpointOptions {
            h2: false,
            ..EndpointOptions::default()
        },
        false,
        false,
        false,
    );
    let report = trace(seed_style(&chain)).await;
    let (hop, error, reason) = failure(&report);
    assert_eq!((hop, error.as_str()), (None, "no_h2"), "{reason}");
    assert!(reason.contains("does not offer HTTP/2 (ALPN http/1.1)"), "{reason}");
}

#[test]
fn cli_json_and_exit_status() {
    let chain = chain(59, EndpointOptions::default(), false, true, false);
    let run = |target: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hopproxy"))
            .args([
                "trace",
                "--json",
                "--proxy",
                &chain.proxy1.addr.to_string(),
                "--ca-file",
            ])
            .arg(&chain.ca)
            .arg(target)
            .output()
            .unwrap()
    };
    let out = run(format!("{ENDPOINT_NAME}:{}", chain.endpoint.local_addr().port()));
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["failure"]["hop"], 2, "{json}");
    assert_eq!(json["ok"], false);
}
