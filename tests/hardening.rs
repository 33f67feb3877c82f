//! Hostile input and abuse (issue "Hardening"): smuggling-shaped requests are refused, client
//! credentials never leak to the next hop, and a flood from one client cannot lock out others.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Hop, curl, exchange, header, hop_config, parse_log_line};

#[test]
fn bad_chunks_and_folded_headers_are_400() {
    let dir = tempfile::tempdir().unwrap();
    let origin = common::origin::echo_origin("127.0.13.20:0".parse().unwrap());
    let hop = Hop::start(
        "h",
        dir.path(),
        "127.0.13.11:31280".parse().unwrap(),
        &hop_config(dir.path(), "h", "127.0.13.11:31280", "http_access allow all"),
    );
    let url = format!("http://{}/x", origin.addr);
    let bad_chunk = format!(
        "POST {url} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        origin.addr
    );
    let folded = format!(
        "GET {url} HTTP/1.1\r\nHost: {}\r\nX-Folded: one\r\n two\r\n\r\n",
        origin.addr
    );
    let repeated_length = format!(
        "POST {url} HTTP/1.1\r\nHost: {}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        origin.addr
    );
    for request in [&bad_chunk, &folded, &repeated_length] {
        let reply = exchange("127.0.13.11:31280", request.as_bytes());
        assert!(
            reply.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{request:?} → {reply}"
        );
        assert!(
            header(&reply, "Proxy-Status")
                .unwrap()
                .starts_with("h.test; error=http_request_error")
        );
    }
    let lines = hop.wait_for_lines(3);
    assert!(
        lines.iter().all(|l| parse_log_line(l).code == "NONE_NONE/400"),
        "{lines:#?}"
    );
}

#[test]
fn client_proxy_credentials_are_not_forwarded() {
    let dir = tempfile::tempdir().unwrap();
    let origin = common::origin::echo_origin("127.0.14.20:0".parse().unwrap());
    let _hop = Hop::start(
        "h",
        dir.path(),
        "127.0.14.11:31280".parse().unwrap(),
        &hop_config(dir.path(), "h", "127.0.14.11:31280", "http_access allow all"),
    );
    let result = curl(&[
        "-x",
        "http://127.0.14.11:31280",
        "-U",
        "agent:secret",
        &format!("http://{}/", origin.addr),
    ]);
    assert_eq!(result.exit, 0, "{}", result.stderr);
    assert!(result.stdout.starts_with("GET / HTTP/1.1\r\n"), "{}", result.stdout);
    assert_eq!(header(&result.stdout, "Proxy-Authorization"), None, "{}", result.stdout);
}

/// 300 connections from one address against a per-client cap of 10: the rest are refused
/// with 503, and another client's tunnels keep working meanwhile.
#[test]
fn a_flood_from_one_client_does_not_lock_out_another() {
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("127.0.15.20:0".parse().unwrap());
    let rules = "http_access allow all\nclient_ip_max_connections 10\nmax_client_connections 100";
    let hop = Hop::start(
        "f",
        dir.path(),
        "127.0.15.11:31280".parse().unwrap(),
        &hop_config(dir.path(), "f", "127.0.15.11:31280", rules),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let flood: Vec<tokio::net::TcpStream> = runtime.block_on(async {
        let mut held = Vec::new();
        for _ in 0..300 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.15.6:0".parse().unwrap()).unwrap();
            if let Ok(stream) = socket.connect("127.0.15.11:31280".parse().unwrap()).await {
                held.push(stream);
            }
        }
        held
    });
    assert!(flood.len() >= 290, "connections opened: {}", flood.len());
    // No pause: the other client's tunnels must work while the flood is being refused.
    for i in 0..5 {
        let reply = exchange(
            "127.0.15.11:31280",
            format!("CONNECT {} HTTP/1.1\r\n\r\n", echo.addr).as_bytes(),
        );
        assert!(
            reply.starts_with("HTTP/1.1 200 Connection established\r\n"),
            "legitimate tunnel {i}: {reply}"
        );
    }
    drop(flood);
    // Refusals are logged once their connection is closed; wait (bounded) for all lines.
    let refused = hop
        .wait_for_lines(285)
        .iter()
        .filter(|l| l.contains(" NONE_NONE/503 "))
        .count();
    assert!(
        refused >= 280,
        "flood connections over the per-client cap were refused and logged: {refused}"
    );
}

/// Running out of descriptors pauses accepting; it neither kills the proxy nor stops it for
/// good: once the hoarded connections close, new tunnels work again.
#[test]
fn descriptor_exhaustion_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let echo = common::origin::echo_tcp("127.0.17.20:0".parse().unwrap());
    let config_path = dir.path().join("fd.conf");
    // A connection cap far above the descriptor limit, so accept(2) itself hits EMFILE.
    std::fs::write(
        &config_path,
        hop_config(
            dir.path(),
            "fd",
            "127.0.17.11:31280",
            "http_access allow all\nmax_client_connections 5000",
        ),
    )
    .unwrap();
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec {} run -c {}",
            common::hopproxy_bin(),
            config_path.display()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("fd.stderr")).unwrap());
    let mut child = hopproxy::lab::process::ChildGuard::spawn("fd", &mut command).unwrap();
    let addr: SocketAddr = "127.0.17.11:31280".parse().unwrap();
    assert!(hopproxy::lab::process::wait_until_listening(
        addr,
        Duration::from_secs(10),
        || child.try_status().is_none()
    ));
    let hoard: Vec<std::net::TcpStream> = (0..150)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    // Wait (bounded) until the proxy has hit the limit and said so, then check it lives on.
    let stderr_path = dir.path().join("fd.stderr");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&stderr_path)
        .unwrap_or_default()
        .contains("accept failed")
    {
        assert!(child.try_status().is_none(), "exited with every descriptor in use");
        assert!(
            std::time::Instant::now() < deadline,
            "no accept failure reported with 150 connections against 64 descriptors"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_status().is_none(),
        "still running with every descriptor in use"
    );
    drop(hoard);
    for i in 0..3 {
        // Descriptors come free as the proxy sees the hoard close: retry (bounded) until a
        // tunnel gets through, then it must keep working.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let reply = loop {
            let reply = exchange(
                "127.0.17.11:31280",
                format!("CONNECT {} HTTP/1.1\r\n\r\n", echo.addr).as_bytes(),
            );
            if i > 0 || reply.starts_with("HTTP/1.1 200 ") || std::time::Instant::now() > deadline {
                break reply;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            reply.starts_with("HTTP/1.1 200 Connection established\r\n"),
            "tunnel {i} after exhaustion: {reply}"
        );
    }
    let stderr = std::fs::read_to_string(dir.path().join("fd.stderr")).unwrap();
    assert!(
        stderr.contains("accept failed"),
        "exhaustion was hit and reported: {stderr}"
    );
}
