//! Java's own HTTP client (`java.net.http.HttpClient`) through hopproxy, as a Java agent uses
//! it: a `ProxySelector` naming a plain-HTTP proxy, `CONNECT name:port`, then TLS + HTTP/2 to
//! the stand-in endpoint inside the tunnel. Java cannot speak TLS to the proxy itself (a
//! `ProxySelector` gives only an address), so it is tested as a CONNECT client: through a
//! two-hop chain, against SNI rules on an `ssl-bump` port, and with proxy Basic auth.
//!
//! The client is `tests/java/ProxyClient.java`, run by the JDK's single-file source launcher;
//! each test starts one JVM that makes all of its requests and prints one line per request.
//! Without a JDK (`java` with the `jdk.compiler` module) the tests skip.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::origin::recorder;
use common::{ENDPOINT_NAME, Hop, LogLine, hop_config, parse_log_line, the_line, write_hosts};
use hopproxy::lab::certs::Pki;
use hopproxy::lab::endpoint::{Endpoint, EndpointHandle, EndpointOptions};

/// The endpoint listens on this port in every test (each on its own address).
const ENDPOINT_PORT: u16 = 8443;

/// The line Java prints for a GET answered 200 over HTTP/2 with the stand-in endpoint's page
/// (`src/lab/endpoint.rs`); the body's newline is escaped by the Java client.
fn h2_ok() -> String {
    let page = format!("hopproxy lab endpoint: stand-in for {ENDPOINT_NAME}\n");
    let printed = page.replace('\n', "\\n");
    format!("status=200 version=HTTP_2 bytes={} body={printed}", page.len())
}

/// Why Java cannot run here, if it cannot. Asked once per test binary: a JVM start is slow.
fn java_missing() -> Option<&'static str> {
    static MISSING: OnceLock<Option<String>> = OnceLock::new();
    MISSING
        .get_or_init(|| {
            let output = Command::new("java")
                .arg("--list-modules")
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output();
            match output {
                Err(_) => Some("java is not installed (apt-get install default-jdk-headless)".into()),
                Ok(out) if !String::from_utf8_lossy(&out.stdout).contains("jdk.compiler@") => {
                    Some("java has no jdk.compiler module for the source launcher (install a JDK, not a JRE)".into())
                }
                Ok(_) => None,
            }
        })
        .as_deref()
}

/// The endpoint (TLS 1.3, ALPN h2) for [`ENDPOINT_NAME`] at `ip`, and the CA file Java trusts.
fn endpoint(dir: &Path, ip: &str) -> (EndpointHandle, PathBuf) {
    let pki = Pki::generate(ENDPOINT_NAME, "java client test CA").unwrap();
    let files = pki.write(dir, "endpoint").unwrap();
    let bind = format!("{ip}:{ENDPOINT_PORT}").parse().unwrap();
    let handle = Endpoint::start(bind, &pki, EndpointOptions::default()).unwrap();
    (handle, files.ca_cert)
}

/// One request for the Java client: `label`, the proxy, the URL, and Basic credentials.
struct JavaRequest<'a> {
    label: &'a str,
    proxy: &'a str,
    url: String,
    credentials: Option<(&'a str, &'a str)>,
}

/// Runs one JVM making every request in turn; returns each label's result line (what follows
/// the label). Proxy Basic auth on CONNECT is off in Java by default; the empty
/// `jdk.http.auth.tunneling.disabledSchemes` turns it on, as a Java agent behind an
/// authenticating proxy must.
fn run_java(ca: &Path, requests: &[JavaRequest]) -> BTreeMap<String, String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/ProxyClient.java");
    let specs: Vec<String> = requests
        .iter()
        .map(|r| {
            let mut spec = format!("{},{},{}", r.label, r.proxy, r.url);
            if let Some((user, password)) = r.credentials {
                spec.push_str(&format!(",{user},{password}"));
            }
            spec
        })
        .collect();
    // `timeout` bounds the JVM; each request also has Java's own 10 s connect / 15 s limits.
    let output = Command::new("timeout")
        .args([
            "120",
            "java",
            "-Djava.net.preferIPv4Stack=true",
            "-Djdk.http.auth.tunneling.disabledSchemes=",
        ])
        .arg(&source)
        .arg(ca)
        .args(&specs)
        .stdin(Stdio::null())
        .output()
        .expect("java runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "java exited {}:\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let results: BTreeMap<String, String> = stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(label, rest)| (label.to_string(), rest.to_string()))
        .collect();
    for request in requests {
        assert!(
            results.contains_key(request.label),
            "no result for {}:\nstdout:\n{stdout}\nstderr:\n{stderr}",
            request.label
        );
    }
    results
}

fn url(host: &str) -> String {
    format!("https://{host}:{ENDPOINT_PORT}/")
}

fn target(host: &str) -> String {
    format!("{host}:{ENDPOINT_PORT}")
}

/// Waits (bounded) until `path` holds the line `wanted` `count` times, and not more.
fn wait_for_file_lines(path: &Path, wanted: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let found = text.lines().filter(|l| *l == wanted).count();
        if found >= count || Instant::now() > deadline {
            assert_eq!(found, count, "line {wanted:?} in {}:\n{text}", path.display());
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until `count` access-log lines of `hop` match, and not more; returns them.
fn wait_for_lines_matching(hop: &Hop, count: usize, matches: impl Fn(&LogLine) -> bool) -> Vec<LogLine> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<LogLine> = hop
            .log_lines()
            .iter()
            .map(|l| parse_log_line(l))
            .filter(&matches)
            .collect();
        if found.len() >= count || Instant::now() > deadline {
            assert_eq!(found.len(), count, "{}: {found:#?}", hop.name);
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The seed's shape with Java as the agent: proxy 1 sends everything to proxy 2
/// (`cache_peer … parent … default`, `never_direct allow all`), proxy 2 reaches the endpoint.
#[test]
fn java_through_a_two_hop_chain_gets_http2_from_the_endpoint() {
    if let Some(reason) = java_missing() {
        common::skip(reason);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, ca) = endpoint(dir.path(), "127.0.19.20");
    let hosts = write_hosts(dir.path(), &[(ENDPOINT_NAME, "127.0.19.20".parse().unwrap())]);
    let site_rules = format!(
        "hosts_file {}\nacl SSL_ports port {ENDPOINT_PORT}\nacl CONNECT method CONNECT\n\
         acl allowed_https_sites dstdomain {ENDPOINT_NAME}\nhttp_access deny CONNECT !SSL_ports\n",
        hosts.display()
    );
    let p2_listen = "127.0.19.12:31280";
    let p2_rules = format!(
        "{site_rules}acl client_net src 127.0.19.11\nhttp_access allow client_net allowed_https_sites\nhttp_access deny all"
    );
    let p2 = Hop::start(
        "p2",
        dir.path(),
        p2_listen.parse().unwrap(),
        &hop_config(dir.path(), "p2", p2_listen, &p2_rules),
    );
    let p1_listen = "127.0.19.11:31280";
    let p1_rules = format!(
        "{site_rules}acl client_net src 127.0.0.0/8\nhttp_access allow client_net allowed_https_sites\nhttp_access deny all\n\
         cache_peer 127.0.19.12 parent 31280 0 no-query default\nnever_direct allow all\ntcp_outgoing_address 127.0.19.11"
    );
    let p1 = Hop::start(
        "p1",
        dir.path(),
        p1_listen.parse().unwrap(),
        &hop_config(dir.path(), "p1", p1_listen, &p1_rules),
    );

    let results = run_java(
        &ca,
        &[JavaRequest {
            label: "chain",
            proxy: p1_listen,
            url: url(ENDPOINT_NAME),
            credentials: None,
        }],
    );
    assert_eq!(results["chain"], h2_ok());

    // Java names the host in its CONNECT (it does not resolve it itself): one tunnel per hop.
    let wanted = target(ENDPOINT_NAME);
    let lines = p1.wait_for_match("proxy 1's tunnel", |l| l.url == wanted);
    let line = the_line(&lines, "proxy 1's tunnel", |l| l.url == wanted);
    assert_eq!(
        (line.code.as_str(), line.method.as_str(), line.hierarchy.as_str()),
        ("TCP_TUNNEL/200", "CONNECT", "FIRSTUP_PARENT/127.0.19.12")
    );
    let lines = p2.wait_for_match("proxy 2's tunnel", |l| l.url == wanted);
    let line = the_line(&lines, "proxy 2's tunnel", |l| l.url == wanted);
    assert_eq!(
        (line.code.as_str(), line.client.as_str(), line.hierarchy.as_str()),
        ("TCP_TUNNEL/200", "127.0.19.11", "HIER_DIRECT/127.0.19.20")
    );
    assert_eq!(lines.len(), 1, "one tunnel, no other request: {lines:#?}");
    assert_eq!(
        endpoint
            .stats()
            .h2_connections
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// An `ssl-bump` port with peek-and-splice rules: Java's ClientHello for the allowed name is
/// spliced; for a name `http_access` allows but `ssl_bump` does not, the tunnel is terminated
/// after the `200`, Java's handshake fails and the server behind that name gets no byte.
#[test]
fn java_tunnels_are_spliced_or_terminated_by_sni() {
    if let Some(reason) = java_missing() {
        common::skip(reason);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_endpoint, ca) = endpoint(dir.path(), "127.0.20.20");
    let other: SocketAddr = "127.0.20.21:8443".parse().unwrap();
    let other_server = recorder(other, b"never");
    let hosts = write_hosts(
        dir.path(),
        &[
            (ENDPOINT_NAME, "127.0.20.20".parse().unwrap()),
            ("other.invalid", other.ip()),
        ],
    );
    let sni_log = dir.path().join("p.sni.log");
    let listen = "127.0.20.10:31280";
    let rules = format!(
        "hosts_file {}\nlogformat sni %ssl::>sni %Ss/%03>Hs %ru\naccess_log stdio:{} sni\n\
         acl CONNECT method CONNECT\nacl sites dstdomain {ENDPOINT_NAME} other.invalid\n\
         acl step1 at_step SslBump1\nacl spliced ssl::server_name {ENDPOINT_NAME}\n\
         ssl_bump peek step1\nssl_bump splice spliced\nssl_bump terminate all\n\
         acl clients src 127.0.0.0/8\nhttp_access allow clients CONNECT sites\nhttp_access deny all",
        hosts.display(),
        sni_log.display()
    );
    let proxy = Hop::start(
        "p",
        dir.path(),
        listen.parse().unwrap(),
        &hop_config(
            dir.path(),
            "p",
            &format!("{listen} ssl-bump cert=/etc/squid/bump-ca.pem generate-host-certificates=on"),
            &rules,
        ),
    );

    let results = run_java(
        &ca,
        &[
            JavaRequest {
                label: "spliced",
                proxy: listen,
                url: url(ENDPOINT_NAME),
                credentials: None,
            },
            JavaRequest {
                label: "terminated",
                proxy: listen,
                url: url("other.invalid"),
                credentials: None,
            },
        ],
    );
    assert_eq!(results["spliced"], h2_ok());
    let terminated = &results["terminated"];
    assert!(
        terminated.starts_with("error=javax.net.ssl.SSLHandshakeException: Remote host terminated the handshake"),
        "Java's handshake must fail: {terminated}"
    );

    let spliced = target(ENDPOINT_NAME);
    let lines = proxy.wait_for_match("spliced tunnel", |l| l.url == spliced);
    let line = the_line(&lines, "spliced tunnel", |l| l.url == spliced);
    assert_eq!(
        (line.code.as_str(), line.hierarchy.as_str()),
        ("TCP_TUNNEL/200", "HIER_DIRECT/127.0.20.20")
    );
    wait_for_file_lines(&sni_log, &format!("{ENDPOINT_NAME} TCP_TUNNEL/200 {spliced}"), 1);

    // The terminated tunnel: a denial after the 200 (39 bytes sent to Java), with the hop that
    // was reached. Java tries twice: its HTTP/2 handshake (ALPN h2, http/1.1) fails, and it
    // tries again as HTTP/1.1 (no ALPN); both are terminated on Java's SNI.
    let refused = target("other.invalid");
    let terminated = wait_for_lines_matching(&proxy, 2, |l| l.url == refused);
    for line in &terminated {
        assert_eq!(
            (line.code.as_str(), line.bytes, line.hierarchy.as_str()),
            ("TCP_DENIED/200", 39, "HIER_DIRECT/127.0.20.21")
        );
    }
    wait_for_file_lines(&sni_log, &format!("other.invalid TCP_DENIED/200 {refused}"), 2);
    let stderr = proxy.wait_for_stderr("alpn=\"\"");
    let diagnostics: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("tunnel terminated"))
        .map(|l| l.split_once("tunnel terminated").unwrap().1)
        .collect();
    let expected = |alpn: &str| {
        format!(
            ": ssl_bump terminate client=127.0.0.1 url=\"{refused}\" sni=\"other.invalid\" alpn=\"{alpn}\" rule=\"{}:14\"",
            proxy.config.display()
        )
    };
    assert_eq!(diagnostics, [expected("h2,http/1.1"), expected("")]);
    assert!(
        other_server.received().iter().all(Vec::is_empty),
        "the server behind other.invalid received bytes: {:?}",
        other_server.received()
    );
}

/// Proxy Basic auth on CONNECT from an htpasswd file: Java answers the `407` challenge with
/// its `Authenticator`'s credentials; a wrong password leaves Java with the `407`.
#[test]
fn java_authenticates_its_tunnel_with_basic_credentials() {
    if let Some(reason) = java_missing() {
        common::skip(reason);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_endpoint, ca) = endpoint(dir.path(), "127.0.19.21");
    let hosts = write_hosts(dir.path(), &[(ENDPOINT_NAME, "127.0.19.21".parse().unwrap())]);
    let passwd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/auth/passwd");
    let listen = "127.0.19.30:31280";
    let rules = format!(
        "hosts_file {}\nauth_param basic program /usr/lib/squid/basic_ncsa_auth {}\n\
         auth_param basic realm java test proxy\nacl users proxy_auth REQUIRED\n\
         http_access allow users\nhttp_access deny all",
        hosts.display(),
        passwd.display()
    );
    let proxy = Hop::start(
        "auth",
        dir.path(),
        listen.parse().unwrap(),
        &hop_config(dir.path(), "auth", listen, &rules),
    );

    let results = run_java(
        &ca,
        &[
            JavaRequest {
                label: "good",
                proxy: listen,
                url: url(ENDPOINT_NAME),
                credentials: Some(("apr1-user", "apr1 pass")),
            },
            JavaRequest {
                label: "wrong",
                proxy: listen,
                url: url(ENDPOINT_NAME),
                credentials: Some(("sha256-user", "not the password")),
            },
        ],
    );
    assert_eq!(results["good"], h2_ok());
    // The proxy's second 407 (for the wrong password) finds the Authenticator with nothing
    // more to offer: Java gives up on the tunnel with an IOException.
    assert_eq!(
        results["wrong"],
        "error=java.io.IOException: No credentials provided <- java.io.IOException: No credentials provided"
    );

    // Java first sends its CONNECT without credentials (Basic is not pre-emptive), then
    // answers the challenge: each request is a 407 without a user, then the verdict on the
    // credentials, the user logged either way.
    let wanted = target(ENDPOINT_NAME);
    let lines = proxy.wait_for_lines(4);
    let mut seen: Vec<(String, String, String, String)> = lines
        .iter()
        .map(|l| parse_log_line(l))
        .map(|l| (l.code, l.method, l.url, l.user))
        .collect();
    seen.sort();
    let line = |code: &str, user: &str| {
        (
            code.to_string(),
            "CONNECT".to_string(),
            wanted.clone(),
            user.to_string(),
        )
    };
    assert_eq!(
        seen,
        [
            line("TCP_DENIED/407", "-"),
            line("TCP_DENIED/407", "-"),
            line("TCP_DENIED/407", "sha256-user"),
            line("TCP_TUNNEL/200", "apr1-user"),
        ]
    );
    let tunnel = lines
        .iter()
        .map(|l| parse_log_line(l))
        .find(|l| l.code == "TCP_TUNNEL/200")
        .unwrap();
    assert_eq!(tunnel.hierarchy, "HIER_DIRECT/127.0.19.21");
}
