//! Opening TCP connections to the next hop (origin or parent), with the right timeout and
//! source address, and classifying failures so the client is told exactly what went wrong.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

use super::dns::{Resolution, ResolveError};
use super::egress::Egress;
use super::health;
use super::select::{Attempt, NextHop, outgoing_address};
use crate::config::Config;
use crate::policy::RequestFacts;
use crate::tls::{Stream, TlsFailure};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    Refused,
    Timeout,
    Unreachable,
    /// The connection was accepted, then closed or reset before the peer answered.
    ClosedBeforeAnswer,
    Other(String),
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectFailure::Refused => f.write_str("connection refused"),
            ConnectFailure::Timeout => f.write_str("connection timed out"),
            ConnectFailure::Unreachable => f.write_str("network unreachable"),
            ConnectFailure::ClosedBeforeAnswer => f.write_str("connection closed before an answer"),
            ConnectFailure::Other(text) => f.write_str(text),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    Dns(ResolveError),
    Connect(ConnectFailure),
    /// The TCP connection to a `cache_peer … tls` parent was made; its TLS handshake failed.
    Tls(TlsFailure),
}

/// One failed attempt: what we tried to reach and why it failed.
#[derive(Debug, Clone)]
pub struct HopFailure {
    pub attempt: Attempt,
    /// `host:port` of the origin, or `parent NAME` for a parent.
    pub target: String,
    pub addr: Option<SocketAddr>,
    pub reason: FailureReason,
}

impl fmt::Display for HopFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.reason, self.addr) {
            (FailureReason::Dns(e), _) => write!(f, "cannot resolve {}: {e}", self.target),
            (FailureReason::Connect(c), Some(addr)) => write!(f, "cannot connect to {} ({addr}): {c}", self.target),
            (FailureReason::Connect(c), None) => write!(f, "cannot connect to {}: {c}", self.target),
            (FailureReason::Tls(t), Some(addr)) => write!(f, "TLS with {} ({addr}) failed: {t}", self.target),
            (FailureReason::Tls(t), None) => write!(f, "TLS with {} failed: {t}", self.target),
        }
    }
}

pub struct Connected {
    /// TLS for a `cache_peer … tls` parent, else plain TCP.
    pub stream: Stream,
    pub addr: SocketAddr,
    pub attempt: Attempt,
}

/// `host:port` with IPv6 literals bracketed, as in a CONNECT request target.
pub fn authority(host: &str, port: u16) -> String {
    let mut out = String::with_capacity(host.len() + 8);
    push_host(&mut out, host);
    out.push(':');
    push_port(&mut out, port);
    out
}

/// The host as a URL or authority writes it: IPv6 in brackets. (Built by hand rather than
/// with `format!`: every request and tunnel writes one, and the formatter costs more than
/// the rest of building it.)
pub fn push_host(out: &mut String, host: &str) {
    if host.contains(':') {
        out.push('[');
        out.push_str(host);
        out.push(']');
    } else {
        out.push_str(host);
    }
}

/// The port in decimal.
pub fn push_port(out: &mut String, port: u16) {
    let mut digits = [0u8; 5];
    let mut at = digits.len();
    let mut rest = port;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// Where a request goes. `resolved` is the origin's resolution made for the policy check, if
/// one was made: a direct dial then connects to exactly the addresses `dst` ACLs were
/// evaluated on, without a second lookup (which could answer differently: DNS rebinding).
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    pub host: &'a str,
    pub port: u16,
    pub resolved: Option<&'a Resolution>,
}

/// Connects to the hop of `attempt`. For a parent, a failure is counted against it (and a
/// background probe started when that marks it down); a success clears its count.
///
/// `forward_deadline` is when `forward_timeout` runs out for this request: as in Squid, a
/// connect waits at most until then (but at least a second), whatever its own timeout.
pub async fn connect_hop(
    egress: &Egress,
    config: &Config,
    facts: &RequestFacts<'_>,
    attempt: Attempt,
    destination: &Destination<'_>,
    forward_deadline: tokio::time::Instant,
) -> Result<Connected, HopFailure> {
    let Destination { host, port, .. } = *destination;
    let (target, dial_host, dial_port, timeout) = match attempt.hop {
        NextHop::Direct => (authority(host, port), host, port, config.connect_timeout),
        NextHop::Parent(i) => {
            let peer = &config.peers[i];
            let timeout = peer.connect_timeout.unwrap_or(config.peer_connect_timeout);
            (
                format!("parent {}", peer.name),
                peer.host.as_str(),
                peer.http_port,
                timeout,
            )
        }
    };
    let timeout = timeout.min(forward_time_left(forward_deadline));
    let fail = |addr, reason| HopFailure {
        attempt,
        target: target.clone(),
        addr,
        reason,
    };
    let resolution = match (attempt.hop, destination.resolved) {
        (NextHop::Direct, Some(resolved)) => resolved.clone(),
        _ => egress.resolver.resolve(&dial_host.to_ascii_lowercase()).await,
    };
    let addrs = match resolution {
        Ok(addrs) => addrs,
        Err(e) => return Err(fail(None, FailureReason::Dns(e))),
    };
    let sockets: Vec<SocketAddr> = addrs.iter().map(|ip| SocketAddr::new(*ip, dial_port)).collect();
    let started = tokio::time::Instant::now();
    match connect_any(config, facts, &sockets, timeout).await {
        Ok((tcp, addr)) => {
            let stream = match attempt.hop {
                NextHop::Parent(i) => match &config.peers[i].tls {
                    Some(tls) => {
                        let peer = &config.peers[i];
                        let left = timeout.saturating_sub(started.elapsed()).max(Duration::from_secs(1));
                        match crate::tls::failure::connect(tcp, tls, &peer.host, left).await {
                            Ok(stream) => stream,
                            Err(failure) => {
                                // A parent we cannot speak TLS with cannot be used: counted as a
                                // failed connect, so failover and health treat it alike.
                                note_parent_failure(
                                    egress,
                                    config,
                                    i,
                                    &sockets,
                                    &ConnectFailure::Other(failure.to_string()),
                                );
                                return Err(fail(Some(addr), FailureReason::Tls(failure)));
                            }
                        }
                    }
                    None => Stream::Tcp(tcp),
                },
                NextHop::Direct => Stream::Tcp(tcp),
            };
            if let NextHop::Parent(i) = attempt.hop {
                egress.health(i).record_success();
            }
            Ok(Connected { stream, addr, attempt })
        }
        Err((addr, failure)) => {
            if let NextHop::Parent(i) = attempt.hop {
                note_parent_failure(egress, config, i, &sockets, &failure);
            }
            Err(fail(addr, FailureReason::Connect(failure)))
        }
    }
}

/// What is left of `forward_timeout`, never under a second: a connect that was decided on
/// gets a chance, as in Squid.
fn forward_time_left(forward_deadline: tokio::time::Instant) -> Duration {
    forward_deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .max(Duration::from_secs(1))
}

/// Counts a failure to reach parent `index`; starts a background probe if it is now down.
pub fn note_parent_failure(
    egress: &Egress,
    config: &Config,
    index: usize,
    addrs: &[SocketAddr],
    failure: &ConnectFailure,
) {
    let peer = &config.peers[index];
    let health = egress.health(index);
    if health.record_failure(peer.connect_fail_limit) {
        tracing::warn!(parent = %peer.name, "parent marked down after {} consecutive failures (last: {failure}); probing it in the background", peer.connect_fail_limit);
        health::spawn_probe(health, peer.name.clone(), addrs.to_vec());
    }
}

/// Tries each address in turn within one overall deadline; returns the first connection.
async fn connect_any(
    config: &Config,
    facts: &RequestFacts<'_>,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), (Option<SocketAddr>, ConnectFailure)> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = (None, ConnectFailure::Other("no address to connect to".into()));
    for &addr in addrs {
        let source = outgoing_address(config, facts, addr.ip());
        match tokio::time::timeout_at(deadline, connect_from(addr, source)).await {
            Ok(Ok(stream)) => {
                // Nagle plus delayed ACK would cost ~40 ms per small exchange in a tunnel.
                let _ = stream.set_nodelay(true);
                // write_timeout: data the next hop leaves unacknowledged that long drops it.
                let _ = socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(config.write_timeout));
                return Ok((stream, addr));
            }
            Ok(Err(e)) => last = (Some(addr), classify(&e)),
            Err(_) => return Err((Some(addr), ConnectFailure::Timeout)),
        }
    }
    Err(last)
}

async fn connect_from(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(addr).await
}

pub fn classify(e: &std::io::Error) -> ConnectFailure {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => ConnectFailure::Refused,
        ErrorKind::TimedOut => ConnectFailure::Timeout,
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => ConnectFailure::Unreachable,
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::UnexpectedEof
        | ErrorKind::BrokenPipe => ConnectFailure::ClosedBeforeAnswer,
        _ => ConnectFailure::Other(e.to_string()),
    }
}
