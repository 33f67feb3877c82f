//! `http_port … require-proxy-header`: the PROXY protocol (v1 text, v2 binary) a load balancer
//! puts in front of the client's bytes, with Squid's semantics. The connecting address must be
//! allowed by `proxy_protocol_access` (no rules = deny all) before anything is read; the header
//! must then come first, whole, within the first-request timeout; the address it carries
//! becomes the client for ACLs, the log and `X-Forwarded-For`. Anything else closes the
//! connection with a diagnostic line, an access-log line and no answer, as Squid 5.7 does.
//!
//! Framing (how many bytes the header takes) is done here so a header is parsed only once it
//! is complete and nothing behind it is consumed; the `ppp` crate parses the complete header.

use std::net::SocketAddr;

use ppp::v2;

use super::transaction::ClientCtx;
use crate::http1::{BufConn, HeadError};
use crate::policy::{Action, MoreFacts, RequestFacts};

/// v1: "PROXY " … "\r\n", at most 107 bytes (the spec's bound).
const V1_MAX: usize = 107;
const V1_PREFIX: &[u8] = b"PROXY ";
/// v2: a 16-byte fixed part whose last two bytes give the length of what follows.
const V2_FIXED: usize = 16;
/// v2 headers larger than this are refused: addresses take at most 216 bytes, and TLVs from
/// real load balancers (ALPN, authority, unique id, TLS details) stay far below it.
pub const V2_MAX: usize = 4096;

/// What a complete, valid header says about the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    /// A proxied TCP connection from this address.
    Client(SocketAddr),
    /// v2 `LOCAL` (the balancer's own health check), v1 `UNKNOWN`, or an address family that
    /// is not IP: the connection's own addresses stay, as the spec asks.
    Local,
}

/// The length of the complete header at the start of `buf`, `Ok(None)` while more bytes may
/// complete it, or why it can never be a valid header.
fn frame(buf: &[u8]) -> Result<Option<usize>, String> {
    let v2_prefix = v2::PROTOCOL_PREFIX;
    if buf.is_empty() {
        return Ok(None);
    }
    if v2_prefix.starts_with(&buf[..buf.len().min(v2_prefix.len())]) {
        if buf.len() < V2_FIXED {
            return Ok(None);
        }
        let total = V2_FIXED + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if total > V2_MAX {
            return Err(format!("PROXY v2 header of {total} bytes (at most {V2_MAX})"));
        }
        return Ok((buf.len() >= total).then_some(total));
    }
    if V1_PREFIX.starts_with(&buf[..buf.len().min(V1_PREFIX.len())]) {
        let window = &buf[..buf.len().min(V1_MAX)];
        return match window.windows(2).position(|w| w == b"\r\n") {
            Some(end) => Ok(Some(end + 2)),
            None if window.len() >= V1_MAX => Err(format!("PROXY v1 header without CRLF in {V1_MAX} bytes")),
            None => Ok(None),
        };
    }
    Err("no PROXY protocol header".into())
}

/// Parses a header that [`frame`] found complete.
fn parse_complete(header: &[u8]) -> Result<Carried, String> {
    if header.starts_with(V1_PREFIX) {
        let parsed = ppp::v1::Header::try_from(header).map_err(|e| format!("invalid PROXY v1 header: {e}"))?;
        return Ok(match parsed.addresses {
            ppp::v1::Addresses::Tcp4(a) => Carried::Client(SocketAddr::new(a.source_address.into(), a.source_port)),
            ppp::v1::Addresses::Tcp6(a) => Carried::Client(SocketAddr::new(a.source_address.into(), a.source_port)),
            ppp::v1::Addresses::Unknown => Carried::Local,
        });
    }
    let parsed = v2::Header::try_from(header).map_err(|e| format!("invalid PROXY v2 header: {e}"))?;
    // TLVs are skipped: none changes who the client is.
    Ok(match (parsed.command, parsed.addresses) {
        (v2::Command::Local, _) => Carried::Local,
        (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
            Carried::Client(SocketAddr::new(a.source_address.into(), a.source_port))
        }
        (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
            Carried::Client(SocketAddr::new(a.source_address.into(), a.source_port))
        }
        (v2::Command::Proxy, v2::Addresses::Unspecified | v2::Addresses::Unix(_)) => Carried::Local,
    })
}

/// The header at the start of `buf` with its length, `Ok(None)` while incomplete, or why the
/// bytes are not a valid header. Never reads past the header.
pub fn parse(buf: &[u8]) -> Result<Option<(Carried, usize)>, String> {
    let Some(len) = frame(buf)? else {
        return Ok(None);
    };
    parse_complete(&buf[..len]).map(|carried| Some((carried, len)))
}

/// Whether `proxy_protocol_access` lets the connecting address send a header; only what is
/// known before any byte is read (addresses, ports, time) can match.
fn allowed(ctx: &ClientCtx) -> bool {
    let config = &ctx.generation.config;
    let facts = RequestFacts {
        client: ctx.client_ip,
        method: "",
        proto: "",
        host: "",
        port: 0,
        path: "",
        dst_addrs: &[],
        host_aliases: &[],
        local_port: ctx.local_port,
        user: None,
        more: MoreFacts {
            local_ip: ctx.local_ip,
            clock: Some(super::policy::local_clock()),
            client_connections: ctx.client_connections,
            ..MoreFacts::default()
        },
    };
    config.proxy_protocol_access.allows(&config.acls, &facts, Action::Deny)
}

/// How the start of a `require-proxy-header` connection went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `ctx` now names the client the header carries; the request follows.
    Accepted,
    /// Not permitted, or no valid header: close without an answer. Squid 5.7 logs these as
    /// `NONE_NONE/000 … error:transaction-end-before-headers` (docs/moving-parts.md).
    Refused,
    /// Closed before sending a byte: nothing to log.
    Silent,
}

/// Checks the connecting address and reads the header; on success `ctx` names the client the
/// header carries and `conn.buf` holds whatever followed it. A refusal is logged as a
/// diagnostic line with its reason, as Squid writes it to cache.log.
pub async fn accept(ctx: &mut ClientCtx, conn: &mut BufConn) -> Verdict {
    let peer = SocketAddr::new(ctx.client_ip, ctx.client_port);
    if !allowed(ctx) {
        tracing::warn!(client = %peer, "PROXY client not permitted by proxy_protocol_access; connection closed");
        return Verdict::Refused;
    }
    let config = &ctx.generation.config;
    let timeout = config.request_start_timeout.min(config.request_timeout);
    let read = conn
        .read_head(V2_MAX, timeout, |buf| parse(buf).map_err(HeadError::Malformed))
        .await;
    match read {
        Ok((carried, len)) => {
            let _ = conn.buf.split_to(len);
            if let Carried::Client(addr) = carried {
                ctx.client_ip = addr.ip().to_canonical();
                ctx.client_port = addr.port();
            }
            tracing::debug!(client = %peer, carried = ?carried, "PROXY header accepted");
            Verdict::Accepted
        }
        Err(HeadError::ClosedEarly { received: 0 }) => Verdict::Silent,
        Err(e) => {
            let why = match e {
                HeadError::Malformed(why) => why,
                other => format!("no complete PROXY header: {other}"),
            };
            tracing::warn!(client = %peer, "PROXY protocol error: {why}; connection closed");
            Verdict::Refused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_header(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut h = v2::PROTOCOL_PREFIX.to_vec();
        h.push(0x20 | command);
        h.push(family);
        let len = (addresses.len() + tlvs.len()) as u16;
        h.extend_from_slice(&len.to_be_bytes());
        h.extend_from_slice(addresses);
        h.extend_from_slice(tlvs);
        h
    }

    #[test]
    fn v1_tcp4_tcp6_unknown() {
        let text = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 3128\r\nGET / HTTP/1.1\r\n";
        let (carried, len) = parse(text).unwrap().unwrap();
        assert_eq!(carried, Carried::Client("192.0.2.7:40000".parse().unwrap()));
        assert_eq!(&text[len..], b"GET / HTTP/1.1\r\n");
        let (carried, _) = parse(b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 3128\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(carried, Carried::Client("[2001:db8::7]:40000".parse().unwrap()));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().0, Carried::Local);
    }

    #[test]
    fn partial_headers_wait_for_more() {
        let full = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 3128\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(None), "cut at {cut}");
        }
        let v2 = v2_header(1, 0x11, &[192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0x40, 0x0c, 0x38], &[]);
        for cut in 0..v2.len() {
            assert_eq!(parse(&v2[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn v2_proxy_local_and_tlvs() {
        let addrs = [192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0x40, 0x0c, 0x38];
        // A NOOP TLV and an authority TLV: skipped.
        let tlvs = [0x04, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03, b'a', b'.', b'b'];
        let mut bytes = v2_header(1, 0x11, &addrs, &tlvs);
        let header_len = bytes.len();
        bytes.extend_from_slice(b"CONNECT");
        let (carried, len) = parse(&bytes).unwrap().unwrap();
        assert_eq!(carried, Carried::Client("192.0.2.7:40000".parse().unwrap()));
        assert_eq!(len, header_len);
        let local = v2_header(0, 0x00, &[], &[]);
        assert_eq!(parse(&local).unwrap().unwrap(), (Carried::Local, 16));
        let mut v6 = vec![0u8; 36];
        v6[0] = 0x20;
        v6[1] = 0x01;
        v6[15] = 7;
        v6[32] = 0x9c;
        v6[33] = 0x40;
        let (carried, _) = parse(&v2_header(1, 0x21, &v6, &[])).unwrap().unwrap();
        assert_eq!(carried, Carried::Client("[2001::7]:40000".parse().unwrap()));
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            &b"GET http://a.test/ HTTP/1.1\r\n\r\n"[..],
            b"PROXY TCP4 300.0.2.7 198.51.100.1 40000 3128\r\n",
            b"PROXY TCP4 192.0.2.7\r\n",
            b"PROXY FOO\r\n",
            &[b'P'; 200][..],
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut long_v1 = b"PROXY TCP4 ".to_vec();
        long_v1.extend_from_slice(&[b'1'; 120]);
        assert!(parse(&long_v1).is_err());
        // Version 1 in the binary form, an unknown command, and an oversized v2 header.
        let mut bad_version = v2_header(1, 0x11, &[0; 12], &[]);
        bad_version[12] = 0x11;
        assert!(parse(&bad_version).is_err());
        assert!(parse(&v2_header(7, 0x11, &[0; 12], &[])).is_err());
        let mut huge = v2_header(1, 0x11, &[0; 12], &[]);
        huge[14] = 0xff;
        assert!(parse(&huge).is_err());
        // Addresses shorter than the family needs.
        assert!(parse(&v2_header(1, 0x11, &[0; 4], &[])).is_err());
    }
}
