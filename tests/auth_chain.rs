//! Proxy authentication end to end: clients authenticate to proxy 1 with Basic credentials
//! from an htpasswd file (`auth_param basic program …/basic_ncsa_auth FILE`), proxy 1
//! authenticates to proxy 2 with `cache_peer … login=user:pass`, and the users appear in each
//! hop's access log. Block 127.0.16.0/24.

mod common;

use std::path::Path;

use common::{ENDPOINT_NAME, Hop, curl, header, parse_log_line, write_hosts};
use hopproxy::lab::certs::Pki;
use hopproxy::lab::endpoint::{Endpoint, EndpointOptions};

fn passwd() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth/passwd")
        .display()
        .to_string()
}

fn hop_config(dir: &Path, name: &str, listen: &str, rules: &str) -> String {
    format!(
        "http_port {listen}\naccess_log stdio:{} squid\nvisible_hostname {name}.test\n\
         auth_param basic program /usr/lib/squid/basic_ncsa_auth {}\nauth_param basic realm {name} proxy\n{rules}\n",
        Hop::log_path(dir, name).display(),
        passwd()
    )
}

#[test]
fn users_authenticate_at_each_hop_and_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(ENDPOINT_NAME, "auth test CA").unwrap();
    let files = pki.write(dir.path(), "endpoint").unwrap();
    let endpoint = Endpoint::start("127.0.16.20:443".parse().unwrap(), &pki, EndpointOptions::default()).unwrap();
    let hosts = write_hosts(dir.path(), &[(ENDPOINT_NAME, "127.0.16.20".parse().unwrap())]);
    let p2_rules = format!(
        "hosts_file {}\nacl proxy1 src 127.0.16.11\nacl peers proxy_auth bcrypt10\nhttp_access deny !peers\nhttp_access allow proxy1\nhttp_access deny all",
        hosts.display()
    );
    let p2 = Hop::start(
        "p2",
        dir.path(),
        "127.0.16.12:31280".parse().unwrap(),
        &hop_config(dir.path(), "p2", "127.0.16.12:31280", &p2_rules),
    );
    let p1_rules = "acl users proxy_auth REQUIRED\nhttp_access allow users\nhttp_access deny all\n\
        cache_peer 127.0.16.12 parent 31280 0 no-query default login=bcrypt10:slow-but-sure\nnever_direct allow all\n\
        tcp_outgoing_address 127.0.16.11";
    let p1 = Hop::start(
        "p1",
        dir.path(),
        "127.0.16.11:31280".parse().unwrap(),
        &hop_config(dir.path(), "p1", "127.0.16.11:31280", p1_rules),
    );
    let proxy = "http://127.0.16.11:31280";
    let url = format!("https://{ENDPOINT_NAME}/");

    // No credentials, then a wrong password: 407 with a Basic challenge naming the realm.
    let none = curl(&["-x", proxy, "-D", "-", "-o", "/dev/null", &url]);
    assert!(
        none.stdout
            .starts_with("HTTP/1.1 407 Proxy Authentication Required\r\n"),
        "{}",
        none.stdout
    );
    assert_eq!(
        header(&none.stdout, "Proxy-Authenticate"),
        Some("Basic realm=\"p1 proxy\"")
    );
    assert!(
        header(&none.stdout, "Proxy-Status")
            .unwrap()
            .starts_with("p1.test; error=http_request_denied")
    );
    let wrong = curl(&["-x", proxy, "-U", "apr1-user:nope", "-D", "-", "-o", "/dev/null", &url]);
    assert!(wrong.stdout.starts_with("HTTP/1.1 407 "), "{}", wrong.stdout);

    // The agent, with proxy.user / proxy.password in its Backend.cfg, gets through both hops.
    let cfg = dir.path().join("com.instana.agent.main.sender.Backend.cfg");
    std::fs::write(
        &cfg,
        format!(
            "host={ENDPOINT_NAME}\nport=443\nprotocol=HTTP/2\nkey=lab-agent-key\nproxy.type=http\n\
             proxy.host=127.0.16.11\nproxy.port=31280\nproxy.user=apr1-user\nproxy.password=apr1 pass\n"
        ),
    )
    .unwrap();
    let agent = std::process::Command::new(common::hopproxy_bin())
        .args(["agent", "--backend-cfg"])
        .arg(&cfg)
        .arg("--ca-file")
        .arg(&files.ca_cert)
        .output()
        .unwrap();
    let agent_out = format!(
        "{}{}",
        String::from_utf8_lossy(&agent.stdout),
        String::from_utf8_lossy(&agent.stderr)
    );
    assert!(agent.status.success(), "{agent_out}");
    assert!(
        agent_out.contains(&format!("Connected using HTTP/2 to {ENDPOINT_NAME}:443")),
        "{agent_out}"
    );
    assert!(endpoint.accepted_posts() >= 1);

    let p1_lines: Vec<_> = p1.wait_for_lines(3).iter().map(|l| parse_log_line(l)).collect();
    assert_eq!(
        (p1_lines[0].code.as_str(), p1_lines[0].user.as_str()),
        ("TCP_DENIED/407", "-")
    );
    assert_eq!(
        (p1_lines[1].code.as_str(), p1_lines[1].user.as_str()),
        ("TCP_DENIED/407", "apr1-user")
    );
    assert_eq!(
        (
            p1_lines[2].code.as_str(),
            p1_lines[2].user.as_str(),
            p1_lines[2].hierarchy.as_str()
        ),
        ("TCP_TUNNEL/200", "apr1-user", "FIRSTUP_PARENT/127.0.16.12")
    );
    let p2_line = parse_log_line(&p2.wait_for_lines(1)[0]);
    assert_eq!(
        (p2_line.client.as_str(), p2_line.code.as_str(), p2_line.user.as_str()),
        ("127.0.16.11", "TCP_TUNNEL/200", "bcrypt10")
    );
}

/// `login=PASSTHRU`: proxy 1 asks nothing itself and hands the client's own credentials to
/// proxy 2, which checks them; without PASSTHRU they would never leave proxy 1.
#[test]
fn passthru_hands_the_clients_credentials_to_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("127.0.18.20:0".parse().unwrap());
    let p2_rules = "acl users proxy_auth REQUIRED\nhttp_access allow users\nhttp_access deny all";
    let p2 = Hop::start(
        "p2",
        dir.path(),
        "127.0.18.12:31280".parse().unwrap(),
        &hop_config(dir.path(), "p2", "127.0.18.12:31280", p2_rules),
    );
    let p1 = Hop::start(
        "p1",
        dir.path(),
        "127.0.18.11:31280".parse().unwrap(),
        &common::hop_config(
            dir.path(),
            "p1",
            "127.0.18.11:31280",
            "http_access allow all\ncache_peer 127.0.18.12 parent 31280 0 no-query login=PASSTHRU\nnever_direct allow all",
        ),
    );
    use base64::Engine as _;
    let good = base64::engine::general_purpose::STANDARD.encode("sha512-user:sha512 pass");
    let ok = common::exchange(
        "127.0.18.11:31280",
        format!(
            "CONNECT {0} HTTP/1.1\r\nProxy-Authorization: Basic {good}\r\n\r\nping",
            echo.addr
        )
        .as_bytes(),
    );
    assert!(
        ok.starts_with("HTTP/1.1 200 Connection established\r\n\r\nping"),
        "{ok}"
    );
    let none = common::exchange(
        "127.0.18.11:31280",
        format!("CONNECT {} HTTP/1.1\r\n\r\n", echo.addr).as_bytes(),
    );
    assert!(none.starts_with("HTTP/1.1 407 "), "the parent's 407 is relayed: {none}");
    assert_eq!(header(&none, "Proxy-Authenticate"), Some("Basic realm=\"p2 proxy\""));
    // Matched by content: the tunnel's line is written when the tunnel closes, which may be
    // after the 407 was logged.
    let p2_lines: Vec<_> = p2.wait_for_lines(2).iter().map(|l| parse_log_line(l)).collect();
    assert_eq!(p2_lines.len(), 2, "{p2_lines:#?}");
    let tunnel = common::the_line(&p2_lines, "the tunnel", |l| l.code == "TCP_TUNNEL/200");
    assert_eq!(tunnel.user, "sha512-user");
    common::the_line(&p2_lines, "the refusal", |l| {
        l.code == "TCP_DENIED/407" && l.user == "-"
    });
    let p1_lines: Vec<_> = p1.wait_for_lines(2).iter().map(|l| parse_log_line(l)).collect();
    assert_eq!(p1_lines.len(), 2, "{p1_lines:#?}");
    common::the_line(&p1_lines, "the tunnel", |l| l.code == "TCP_TUNNEL/200");
    common::the_line(&p1_lines, "the relayed 407", |l| l.code == "TCP_TUNNEL/407");
}
