//! `metrics_port`: the `/metrics` endpoint of a running proxy. Counters are asserted against
//! traffic the test makes (tunnels and their bytes, a policy denial, a dead parent, reloads);
//! the endpoint follows `metrics_port` across a reload; a live scrape passes `promtool check
//! metrics`; and a real Prometheus server (Debian's `prometheus` package) scrapes it. Also the
//! other window on a running proxy: its diagnostics in `cache_log`.
//! Addresses: 127.0.68.0/24 (tests/common/blocks.rs).

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Hop;
use hopproxy::lab::process::{ChildGuard, free_port, wait_until_listening};

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 68, last])
}

fn addr_on(last: u8) -> SocketAddr {
    SocketAddr::new(ip(last), free_port(ip(last)).unwrap())
}

/// `GET path` over HTTP/1.0; the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics").unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of one series (`name{labels}` exactly as exposed), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// Scrapes until `series` has `wanted` (bounded, 10 s); returns that scrape.
fn wait_for_value(addr: SocketAddr, series: &str, wanted: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(addr);
        if value(&text, series) == Some(wanted) {
            return text;
        }
        assert!(Instant::now() < deadline, "{series} never became {wanted}:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Opens a tunnel to `target` from `source` and returns the stream once the 200 is read.
fn open_tunnel(source: IpAddr, proxy: SocketAddr, target: SocketAddr) -> TcpStream {
    let mut stream = common::connect_from(source, proxy);
    stream
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "closed: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&head));
    stream
}

/// One tunnel with a 5-byte round trip through the echo server.
fn echo_through(source: IpAddr, proxy: SocketAddr, target: SocketAddr) {
    let mut stream = open_tunnel(source, proxy, target);
    stream.write_all(b"hello").unwrap();
    let mut back = [0u8; 5];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello");
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let _ = stream.read_to_end(&mut Vec::new());
}

/// `FILE:LINE` of the first line of `config` that is exactly `wanted`.
fn rule_label(config: &Path, wanted: &str) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let line = text.lines().position(|l| l == wanted).expect("rule in config") + 1;
    format!("{}:{line}", config.display())
}

fn config(dir: &Path, name: &str, proxy: SocketAddr, metrics: SocketAddr, client: IpAddr) -> String {
    let rules = format!(
        "metrics_port {metrics}\n\
         cache_peer {dead} parent 9 0 no-query name=deadend\n\
         cache_peer_access deadend deny all\n\
         acl client src {client}\n\
         http_access allow client CONNECT\n\
         http_access deny all",
        dead = ip(30)
    );
    common::hop_config(dir, name, &proxy.to_string(), &rules)
}

#[test]
fn counters_follow_known_traffic_a_dead_parent_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp(SocketAddr::new(ip(20), 0));
    let proxy = addr_on(1);
    let metrics = addr_on(1);
    let client = ip(5);
    let mut hop = Hop::start("m", dir.path(), proxy, &config(dir.path(), "m", proxy, metrics, client));
    hop.wait_for_stderr(&format!("serving metrics on http://{metrics}/metrics"));

    // The parent on a port nobody listens on fails its start-up probe.
    wait_for_value(metrics, r#"hopproxy_parent_up{parent="deadend"}"#, 0.0);

    echo_through(client, proxy, echo.addr);
    echo_through(client, proxy, echo.addr);
    let held = open_tunnel(client, proxy, echo.addr);
    wait_for_value(metrics, "hopproxy_tunnels_open", 1.0);
    drop(held);
    wait_for_value(metrics, "hopproxy_tunnels_open", 0.0);
    // Another source is denied by the last rule.
    let denied = common::connect_from(ip(6), proxy);
    let mut denied_reply = String::new();
    (&denied)
        .write_all(format!("CONNECT {} HTTP/1.1\r\n\r\n", echo.addr).as_bytes())
        .unwrap();
    let _ = (&denied).read_to_string(&mut denied_reply);
    assert!(denied_reply.starts_with("HTTP/1.1 403"), "{denied_reply}");

    let lines = hop.wait_for_lines(4);
    let logged_bytes: u64 = lines.iter().map(|l| common::parse_log_line(l).bytes).sum();
    let text = scrape(metrics);
    let allow = rule_label(&hop.config, "http_access allow client CONNECT");
    let deny = rule_label(&hop.config, "http_access deny all");
    for (series, wanted) in [
        ("hopproxy_tunnels_total".to_string(), 3.0),
        ("hopproxy_tunnels_open".to_string(), 0.0),
        (
            r#"hopproxy_requests_total{method="CONNECT",status_class="2xx",hierarchy="HIER_DIRECT"}"#.to_string(),
            3.0,
        ),
        (
            r#"hopproxy_requests_total{method="CONNECT",status_class="4xx",hierarchy="HIER_NONE"}"#.to_string(),
            1.0,
        ),
        (r#"hopproxy_bytes_total{direction="to_upstream"}"#.to_string(), 10.0),
        (
            r#"hopproxy_bytes_total{direction="to_client"}"#.to_string(),
            logged_bytes as f64,
        ),
        (
            format!(r#"hopproxy_http_access_total{{decision="allow",rule="{allow}"}}"#),
            3.0,
        ),
        (
            format!(r#"hopproxy_http_access_total{{decision="deny",rule="{deny}"}}"#),
            1.0,
        ),
        (
            r#"hopproxy_connect_duration_seconds_count{next_hop="direct"}"#.to_string(),
            3.0,
        ),
        (r#"hopproxy_parent_up{parent="deadend"}"#.to_string(), 0.0),
        ("hopproxy_log_records_dropped_total".to_string(), 0.0),
    ] {
        assert_eq!(value(&text, &series), Some(wanted), "{series} in:\n{text}");
    }
    assert!(value(&text, r#"hopproxy_parent_failures_total{parent="deadend"}"#).is_some_and(|n| n >= 1.0));
    assert!(value(&text, "process_resident_memory_bytes").is_some_and(|n| n > 0.0));
    assert!(value(&text, "process_open_fds").is_some_and(|n| n > 0.0));
    assert_eq!(http_get(metrics, "/elsewhere").unwrap().0, 404);
    dashboard_queries_only_exposed_metrics(&text);

    // A reload that moves the endpoint: the new address serves the same counters, the old one
    // is closed.
    let moved = addr_on(4);
    let text = std::fs::read_to_string(&hop.config).unwrap();
    std::fs::write(
        &hop.config,
        text.replace(&format!("metrics_port {metrics}"), &format!("metrics_port {moved}")),
    )
    .unwrap();
    hop.signal("HUP");
    hop.wait_for_stderr(&format!("serving metrics on http://{moved}/metrics"));
    let text = wait_for_value(moved, r#"hopproxy_config_reloads_total{result="applied"}"#, 1.0);
    assert_eq!(
        value(&text, "hopproxy_tunnels_total"),
        Some(3.0),
        "counters survive a reload:\n{text}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&metrics, Duration::from_secs(1)).is_ok() {
        assert!(Instant::now() < deadline, "the old metrics address still accepts");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A rejected reload is counted too, and changes nothing else.
    let text = std::fs::read_to_string(&hop.config).unwrap();
    std::fs::write(&hop.config, format!("{text}no_such_directive 1\n")).unwrap();
    hop.signal("HUP");
    hop.wait_for_stderr("reload rejected");
    wait_for_value(moved, r#"hopproxy_config_reloads_total{result="rejected"}"#, 1.0);
    echo_through(client, proxy, echo.addr);
    hop.wait_for_lines(5);
    wait_for_value(moved, "hopproxy_tunnels_total", 4.0);

    assert!(hop.terminate(Duration::from_secs(10)).is_some_and(|s| s.success()));
    assert!(TcpStream::connect_timeout(&moved, Duration::from_secs(1)).is_err());
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `promtool check metrics` accepts a live scrape, and a Prometheus server started here
/// scrapes hopproxy: its HTTP API reports the target up and a counter with our traffic.
#[test]
fn promtool_accepts_a_scrape_and_prometheus_scrapes_it() {
    if !installed("promtool") || !installed("prometheus") {
        common::skip("promtool or prometheus not installed (Debian package prometheus)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp(SocketAddr::new(ip(21), 0));
    let proxy = addr_on(2);
    let metrics = addr_on(2);
    let client = ip(7);
    let hop = Hop::start("p", dir.path(), proxy, &config(dir.path(), "p", proxy, metrics, client));
    hop.wait_for_stderr("serving metrics on");
    echo_through(client, proxy, echo.addr);
    hop.wait_for_lines(1);
    let text = wait_for_value(metrics, "hopproxy_tunnels_total", 1.0);

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics:\n{}{}\n--- scrape:\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let web = addr_on(40);
    let prometheus_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prometheus_config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: hopproxy\n    static_configs:\n      - targets: ['{metrics}']\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("prometheus.log");
    let mut server = ChildGuard::spawn(
        "prometheus",
        Command::new("prometheus")
            .arg(format!("--config.file={}", prometheus_config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={web}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    )
    .unwrap();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until_listening(web, Duration::from_secs(30), || server.try_status().is_none()),
        "prometheus did not listen on {web}:\n{}",
        log_text()
    );
    let query = |q: &str| http_get(web, &format!("/api/v1/query?query={q}")).map(|(_, body)| body);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = query("up").unwrap_or_default();
        let tunnels = query("hopproxy_tunnels_total").unwrap_or_default();
        if up.contains(r#""job":"hopproxy""#) && up.contains(r#","1"]"#) && tunnels.contains(r#","1"]"#) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never saw hopproxy up with hopproxy_tunnels_total 1:\nup: {up}\ntunnels: {tunnels}\nlog:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    server.stop();
    assert!(TcpStream::connect_timeout(&web, Duration::from_secs(1)).is_err());
}

/// `cache_log`: the diagnostics go there as well as to stderr, and SIGUSR1 (logrotate's
/// signal) moves them to a fresh file at the same path.
#[test]
fn cache_log_gets_the_diagnostics_and_follows_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = addr_on(3);
    let cache_log = dir.path().join("cache.log");
    let config = common::hop_config(
        dir.path(),
        "c",
        &proxy.to_string(),
        &format!(
            "cache_log {}\ndebug_options ALL,1\nhttp_access deny all",
            cache_log.display()
        ),
    );
    let hop = Hop::start("c", dir.path(), proxy, &config);
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        read(&cache_log).contains(&format!("listening on {proxy}")),
        "{}",
        read(&cache_log)
    );

    let rotated = dir.path().join("cache.log.1");
    std::fs::rename(&cache_log, &rotated).unwrap();
    hop.signal("USR1");
    hop.wait_for_stderr("SIGUSR1: reopening");
    // A denial is logged at info level; it lands in the new file once the reopen is done.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read(&cache_log).contains("denied by") {
        assert!(Instant::now() < deadline, "no diagnostics in the new cache_log");
        let denied = common::connect_from(ip(8), proxy);
        (&denied).write_all(b"CONNECT 127.0.68.9:443 HTTP/1.1\r\n\r\n").unwrap();
        let _ = (&denied).read_to_end(&mut Vec::new());
    }
    assert!(read(&rotated).contains("SIGUSR1: reopening"), "{}", read(&rotated));
}

/// Every metric the packaged Grafana dashboard queries is in a live scrape.
fn dashboard_queries_only_exposed_metrics(scrape: &str) {
    let dashboard =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/grafana-dashboard.json"))
            .unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let mut queried = 0;
    for panel in json["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("hopproxy_") || word.starts_with("process_") {
                    queried += 1;
                    assert!(
                        scrape.lines().any(|l| l.starts_with(word)),
                        "the dashboard queries {word}, which /metrics does not expose:\n{scrape}"
                    );
                }
            }
        }
    }
    assert!(queried > 10);
}

/// Plain HTTP: `to_upstream` counts every byte the origin received (the head as sent and the
/// body), `to_client` the bytes the log line records.
#[test]
fn plain_http_bytes_are_counted_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    let origin = common::origin::recorder(
        SocketAddr::new(ip(22), 0),
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok",
    );
    let proxy = addr_on(9);
    let metrics = addr_on(9);
    let rules = format!("metrics_port {metrics}\nhttp_access allow all");
    let hop = Hop::start(
        "bytes",
        dir.path(),
        proxy,
        &common::hop_config(dir.path(), "bytes", &proxy.to_string(), &rules),
    );
    hop.wait_for_stderr(&format!("serving metrics on http://{metrics}/metrics"));
    let at = origin.server.addr;
    let reply = common::exchange(
        &proxy.to_string(),
        format!("POST http://{at}/in HTTP/1.1\r\nHost: {at}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            .as_bytes(),
    );
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    let line = common::parse_log_line(&hop.wait_for_lines(1)[0]);
    let received: usize = origin.received().iter().map(Vec::len).sum();
    assert!(received > "POST /in HTTP/1.1\r\n\r\nhello".len(), "{received}");
    wait_for_value(
        metrics,
        r#"hopproxy_bytes_total{direction="to_upstream"}"#,
        received as f64,
    );
    wait_for_value(
        metrics,
        r#"hopproxy_bytes_total{direction="to_client"}"#,
        line.bytes as f64,
    );
}
