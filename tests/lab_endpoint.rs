//! The stand-in endpoint answers curl over HTTP/2 and HTTP/1.1 and checks the agent key.

use std::process::Command;

use hopproxy::lab::ENDPOINT_NAME;
use hopproxy::lab::certs::Pki;
use hopproxy::lab::endpoint::{DEFAULT_KEY, Endpoint, EndpointOptions};

/// Runs curl against the endpoint (name pinned to its address) and returns (http_code, body, http_version).
fn curl(ep: std::net::SocketAddr, ca: &std::path::Path, extra: &[&str]) -> (String, String, String) {
    let resolve = format!("{ENDPOINT_NAME}:{}:{}", ep.port(), ep.ip());
    let url = format!("https://{ENDPOINT_NAME}:{}/", ep.port());
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--resolve", &resolve, "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_code} %{http_version}"])
        .args(extra)
        .arg(&url)
        .output()
        .expect("curl must be installed for this test (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (code, version) = tail.split_once(' ').unwrap_or((tail, ""));
    (code.to_string(), body.to_string(), version.to_string())
}

#[test]
fn endpoint_serves_h2_and_http1_and_checks_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(ENDPOINT_NAME, "endpoint test CA").unwrap();
    let files = pki.write(dir.path(), "endpoint").unwrap();
    let ep = Endpoint::start("127.0.65.31:0".parse().unwrap(), &pki, EndpointOptions::default()).unwrap();
    let addr = ep.local_addr();

    let (code, body, version) = curl(addr, &files.ca_cert, &["--http2"]);
    assert_eq!((code.as_str(), version.as_str()), ("200", "2"), "body: {body}");
    assert!(body.contains("stand-in"), "{body}");

    let (code, _, version) = curl(addr, &files.ca_cert, &["--http1.1"]);
    assert_eq!((code.as_str(), version.as_str()), ("200", "1.1"));

    let good = format!("x-instana-key: {DEFAULT_KEY}");
    let (code, body, _) = curl(addr, &files.ca_cert, &["--http2", "-H", &good, "--data", "{}"]);
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("\"ok\""), "{body}");

    let (code, _, _) = curl(
        addr,
        &files.ca_cert,
        &["--http2", "-H", "x-instana-key: wrong", "--data", "{}"],
    );
    assert_eq!(code, "401");
    assert_eq!(ep.accepted_posts(), 1);
}

#[test]
fn endpoint_without_h2_negotiates_http1() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(ENDPOINT_NAME, "endpoint test CA").unwrap();
    let files = pki.write(dir.path(), "endpoint").unwrap();
    let options = EndpointOptions {
        h2: false,
        ..EndpointOptions::default()
    };
    let ep = Endpoint::start("127.0.65.32:0".parse().unwrap(), &pki, options).unwrap();
    let (code, _, version) = curl(ep.local_addr(), &files.ca_cert, &["--http2"]);
    assert_eq!((code.as_str(), version.as_str()), ("200", "1.1"));
}
