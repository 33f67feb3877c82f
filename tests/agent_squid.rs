//! The agent client through one real Squid to the lab endpoint (Squid must be installed).

use std::path::Path;

use hopproxy::agent::{AgentError, AgentOptions, BackendCfg, run_agent};
use hopproxy::lab::ENDPOINT_NAME;
use hopproxy::lab::certs::Pki;
use hopproxy::lab::endpoint::{DEFAULT_KEY, Endpoint, EndpointOptions};
use hopproxy::lab::process::free_port;
use hopproxy::lab::squid::Squid;

fn start_squid(dir: &Path, ip: &str, endpoint_ip: std::net::IpAddr) -> Squid {
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, format!("{endpoint_ip} {ENDPOINT_NAME}\n")).unwrap();
    let ip: std::net::IpAddr = ip.parse().unwrap();
    let addr = std::net::SocketAddr::new(ip, free_port(ip).unwrap());
    let rules = format!(
        "hosts_file {}\nacl CONNECT method CONNECT\nhttp_access allow all\n",
        hosts.display()
    );
    Squid::start("proxy1.lab", addr, &rules, dir).unwrap_or_else(|e| panic!("{e}"))
}

fn backend(proxy: std::net::SocketAddr, endpoint_port: u16, key: &str) -> BackendCfg {
    let text = format!(
        "host={ENDPOINT_NAME}\nport={endpoint_port}\nprotocol=HTTP/2\nkey={key}\n\
         proxy.type=http\nproxy.host={}\nproxy.port={}\n",
        proxy.ip(),
        proxy.port()
    );
    BackendCfg::parse(&text, Path::new("Backend.cfg")).unwrap()
}

#[tokio::test]
async fn agent_connects_through_squid_with_http2_and_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(ENDPOINT_NAME, "agent test CA").unwrap();
    let files = pki.write(dir.path(), "endpoint").unwrap();
    let ep = Endpoint::start("127.0.41.20:0".parse().unwrap(), &pki, EndpointOptions::default()).unwrap();
    let squid = start_squid(dir.path(), "127.0.41.11", ep.local_addr().ip());

    let options = AgentOptions {
        ca_file: Some(files.ca_cert.clone()),
        requests: 3,
        ..AgentOptions::default()
    };
    let report = run_agent(&backend(squid.addr, ep.local_addr().port(), DEFAULT_KEY), &options)
        .await
        .unwrap();
    assert!(
        report.connected_line.starts_with(&format!(
            "Connected using HTTP/2 to {ENDPOINT_NAME}:{} with id '",
            ep.local_addr().port()
        )),
        "{}",
        report.connected_line
    );
    assert!(report.connected_line.ends_with("and key '*** (redacted)'"));
    assert_eq!(report.statuses, vec![200, 200, 200]);
    assert_eq!(ep.accepted_posts(), 3);

    let err = run_agent(&backend(squid.addr, ep.local_addr().port(), "wrong"), &options)
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::KeyRejected { status: 401, .. }), "{err}");

    // Squid writes a tunnel's line when it closes; give it a moment (bounded).
    let mut log = String::new();
    for _ in 0..40 {
        log = squid.access_log_text();
        if log.lines().count() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        log.lines()
            .any(|l| l.contains("TCP_TUNNEL/200") && l.contains("HIER_DIRECT/127.0.41.20")),
        "{log}"
    );
}

#[tokio::test]
async fn agent_reports_the_proxys_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(ENDPOINT_NAME, "agent test CA").unwrap();
    let ep = Endpoint::start("127.0.42.20:0".parse().unwrap(), &pki, EndpointOptions::default()).unwrap();
    let squid = start_squid(dir.path(), "127.0.42.11", ep.local_addr().ip());
    // Port 1 on the endpoint's address: nothing listens, Squid answers 503.
    let err = run_agent(&backend(squid.addr, 1, DEFAULT_KEY), &AgentOptions::default())
        .await
        .unwrap_err();
    let reply = err.proxy_reply().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(reply.status, 503);
    assert!(
        reply.header("X-Squid-Error").unwrap().starts_with("ERR_CONNECT_FAIL"),
        "{err}"
    );
}
