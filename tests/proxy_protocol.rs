//! `http_port … require-proxy-header` with `proxy_protocol_access`: a raw test client plays the
//! load balancer and sends PROXY v1 and v2 headers; the carried address must be the client
//! that `src` ACLs, the access log and `X-Forwarded-For` see. A header from an address that
//! `proxy_protocol_access` does not allow, a missing header and a malformed one close the
//! connection without an answer, with a diagnostic line and Squid 5.7's access-log line.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};

use common::Hop;

const PROXY: &str = "127.0.92.1:31280";
/// The load balancer `proxy_protocol_access` allows.
const BALANCER: &str = "127.0.92.2";
/// A client that is not a load balancer but sends a header anyway.
const FORGER: &str = "127.0.92.3";

/// v2 PROXY/TCP4 header from `src` (with a NOOP and an authority TLV, which must be skipped).
fn v2_header(src: [u8; 4], src_port: u16, local: bool) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    if local {
        h.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        return h;
    }
    let tlvs = [
        0x04, 0x00, 0x01, 0x00, 0x02, 0x00, 0x06, b'a', b'.', b't', b'e', b's', b't',
    ];
    h.extend_from_slice(&[0x21, 0x11]);
    h.extend_from_slice(&((12 + tlvs.len()) as u16).to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 92, 1]);
    h.extend_from_slice(&src_port.to_be_bytes());
    h.extend_from_slice(&31280u16.to_be_bytes());
    h.extend_from_slice(&tlvs);
    h
}

/// Sends `bytes` from `source` and returns everything the proxy sends back until it closes.
fn send_from(source: &str, bytes: &[u8]) -> String {
    let proxy: SocketAddr = PROXY.parse().unwrap();
    let mut s = common::connect_from(source.parse::<IpAddr>().unwrap(), proxy);
    // The proxy may close before reading everything (a refused client): that is the answer.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(origin: SocketAddr) -> String {
    format!("GET http://{origin}/pp HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n")
}

#[test]
fn carried_address_is_the_client_for_acls_log_and_forwarded_for() {
    let dir = tempfile::tempdir().unwrap();
    let origin = common::origin::echo_origin("127.0.92.20:0".parse().unwrap());
    let rules = format!(
        "acl balancers src {BALANCER}\n\
         proxy_protocol_access allow balancers\n\
         proxy_protocol_access deny all\n\
         acl carried src 192.0.2.0/24\n\
         http_access allow carried\n\
         http_access deny all\n"
    );
    let config = common::hop_config(dir.path(), "pp", &format!("{PROXY} require-proxy-header"), &rules);
    let hop = Hop::start("pp", dir.path(), PROXY.parse().unwrap(), &config);

    // v1 from the balancer: allowed by the carried address, which the origin and log see.
    let v1 = format!("PROXY TCP4 192.0.2.7 127.0.92.1 40001 31280\r\n{}", get(origin.addr));
    let reply = send_from(BALANCER, v1.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("X-Forwarded-For: 192.0.2.7\r\n"), "{reply}");

    // v2 with TLVs: the same, and the bytes after the header are the request.
    let mut v2 = v2_header([192, 0, 2, 8], 40002, false);
    v2.extend_from_slice(get(origin.addr).as_bytes());
    let reply = send_from(BALANCER, &v2);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("X-Forwarded-For: 192.0.2.8\r\n"), "{reply}");

    // A carried address outside the src ACL is denied, though the balancer itself connected.
    let v1 = format!("PROXY TCP4 198.51.100.9 127.0.92.1 40003 31280\r\n{}", get(origin.addr));
    let reply = send_from(BALANCER, v1.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");

    // v2 LOCAL (the balancer's health check): the connection's own address stays the client.
    let mut local = v2_header([0; 4], 0, true);
    local.extend_from_slice(get(origin.addr).as_bytes());
    let reply = send_from(BALANCER, &local);
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");

    let lines = hop.wait_for_match("the LOCAL request", |l| l.client == BALANCER);
    let line = common::the_line(&lines, "v1", |l| l.client == "192.0.2.7");
    assert_eq!(line.code, "TCP_MISS/200");
    let line = common::the_line(&lines, "v2", |l| l.client == "192.0.2.8");
    assert_eq!(line.code, "TCP_MISS/200");
    let line = common::the_line(&lines, "denied", |l| l.client == "198.51.100.9");
    assert_eq!(line.code, "TCP_DENIED/403");
    let line = common::the_line(&lines, "LOCAL", |l| l.client == BALANCER);
    assert_eq!(line.code, "TCP_DENIED/403");
}

#[test]
fn forged_missing_and_malformed_headers_close_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    const PORT2: &str = "127.0.93.1:31280";
    let rules = format!("acl balancers src {BALANCER}\nproxy_protocol_access allow balancers\nhttp_access allow all\n");
    let config = common::hop_config(dir.path(), "pp2", &format!("{PORT2} require-proxy-header"), &rules);
    let hop = Hop::start("pp2", dir.path(), PORT2.parse().unwrap(), &config);
    let send = |source: &str, bytes: &[u8]| {
        let mut s = common::connect_from(source.parse::<IpAddr>().unwrap(), PORT2.parse().unwrap());
        let _ = s.write_all(bytes);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    };
    let request = b"GET http://127.0.93.20:9/ HTTP/1.1\r\nHost: 127.0.93.20:9\r\n\r\n";

    // A forged header from a client that is not a balancer: refused before anything is read.
    let mut forged = b"PROXY TCP4 192.0.2.7 127.0.93.1 40001 31280\r\n".to_vec();
    forged.extend_from_slice(request);
    assert!(send(FORGER, &forged).is_empty());
    hop.wait_for_stderr("PROXY client not permitted by proxy_protocol_access");

    // The balancer without a header: the request is not taken for one.
    assert!(send(BALANCER, request).is_empty());
    hop.wait_for_stderr("PROXY protocol error: no PROXY protocol header");

    // A malformed v1 header and an oversized v2 one.
    assert!(send(BALANCER, b"PROXY TCP4 300.1.1.1 127.0.93.1 1 2\r\n").is_empty());
    hop.wait_for_stderr("invalid PROXY v1 header");
    let mut huge = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff".to_vec();
    huge.extend_from_slice(&[0; 64]);
    assert!(send(BALANCER, &huge).is_empty());
    hop.wait_for_stderr("PROXY v2 header of 65551 bytes");

    // Each is logged as Squid 5.7 logs them: the connecting address, no request.
    let lines = hop.wait_for_lines(4);
    let lines: Vec<_> = lines.iter().map(|l| common::parse_log_line(l)).collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    for line in &lines {
        assert_eq!(line.code, "NONE_NONE/000", "{line:?}");
        assert_eq!(line.url, "error:transaction-end-before-headers", "{line:?}");
        assert_eq!(line.bytes, 0, "{line:?}");
    }
    common::the_line(&lines, "the forged header", |l| l.client == FORGER);
    assert_eq!(lines.iter().filter(|l| l.client == BALANCER).count(), 3);
}
