//! Listening sockets and the accept loop: one task per connection, accept errors logged and
//! survived (running out of descriptors must not stop the proxy).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::client;
use super::limits::{Limits, Refusal};
use super::reply::{ErrorType, ProxyError};
use super::transaction::{ClientCtx, Failure, Transaction, close_gracefully};
use crate::config::HttpPort;
use crate::http1::BufConn;
use crate::metrics::Metrics;
use crate::state::Generation;
use crate::tls::{ListenTls, Stream, TlsFailure};

/// Binds one `http_port`. Without an address, listens on `[::]` (which also accepts IPv4 on
/// Linux), falling back to `0.0.0.0` where IPv6 is off.
pub async fn bind(port: &HttpPort) -> std::io::Result<TcpListener> {
    match port.addr {
        Some(ip) => TcpListener::bind(SocketAddr::new(ip, port.port)).await,
        None => match TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port.port)).await {
            Ok(l) => Ok(l),
            Err(_) => TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port.port)).await,
        },
    }
}

/// What to do when binding a port was refused: ports below 1024 need a privilege.
pub fn bind_hint(error: &std::io::Error, port: u16) -> &'static str {
    if error.kind() == std::io::ErrorKind::PermissionDenied && port < 1024 {
        " (hint: ports below 1024 need root or the CAP_NET_BIND_SERVICE capability: run hopproxy \
         under its systemd unit, which grants it, or give the binary the capability with \
         'setcap cap_net_bind_service=+ep', or choose a port of 1024 or above)"
    } else {
        ""
    }
}

pub struct Shared {
    pub generation: watch::Receiver<Arc<Generation>>,
    pub limits: Arc<Limits>,
    pub shutdown: watch::Receiver<bool>,
    pub metrics: Arc<Metrics>,
}

/// Accepts until `stop` turns true.
pub async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE/ENFILE and friends: wait for descriptors to free up, keep going.
                tracing::warn!("accept failed: {e}; retrying shortly");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let client_ip = peer.ip().to_canonical();
        let local_ip = stream.local_addr().ok().map(|a| a.ip().to_canonical());
        // The current generation at each accept, so a reload's settings and certificates
        // serve the next connection.
        let generation = Arc::clone(&shared.generation.borrow());
        let port = generation.config.http_port_for(local_port, local_ip);
        tune_client_socket(&stream, &generation.config, port);
        let tls = port.and_then(|p| p.tls.clone());
        let mut ctx = ClientCtx {
            generation,
            client_ip,
            client_port: peer.port(),
            local_port,
            local_ip,
            client_connections: 0,
            client_cert: None,
            shutdown: shared.shutdown.clone(),
            metrics: Arc::clone(&shared.metrics),
        };
        match shared.limits.acquire(client_ip) {
            Ok(slot) => {
                ctx.client_connections = slot.client_connections();
                tokio::spawn(async move {
                    if let Some(stream) = handshake(&mut ctx, stream, tls.as_ref()).await {
                        client::serve(ctx, stream).await;
                    }
                    drop(slot);
                });
            }
            Err(refusal) => {
                tokio::spawn(async move {
                    if let Some(stream) = handshake(&mut ctx, stream, tls.as_ref()).await {
                        refuse_over_limit(ctx, stream, refusal).await;
                    }
                });
            }
        }
    }
}

/// The TLS handshake of an `https_port` (bounded by `request_start_timeout`); the plain
/// stream for an `http_port`. A failed handshake is not a transaction (no HTTP was spoken):
/// it is reported on the diagnostics, with the client and the reason.
async fn handshake(ctx: &mut ClientCtx, stream: TcpStream, tls: Option<&ListenTls>) -> Option<Stream> {
    let Some(tls) = tls else {
        return Some(Stream::Tcp(stream));
    };
    let timeout = ctx.generation.config.request_start_timeout;
    match crate::tls::failure::accept(stream, tls, timeout).await {
        Ok((stream, cert)) => {
            ctx.client_cert = cert.map(Arc::new);
            Some(stream)
        }
        // Parents' health probes and port checks connect and close without a byte.
        Err(TlsFailure::Closed) => None,
        Err(failure) => {
            tracing::warn!(
                client = %ctx.client_ip,
                "TLS handshake on https_port {} refused: {failure}",
                ctx.local_port
            );
            None
        }
    }
}

/// `write_timeout` as TCP_USER_TIMEOUT (unacknowledged data, including a zero window, for
/// longer than that drops the connection) and the port's `tcpkeepalive`.
fn tune_client_socket(stream: &tokio::net::TcpStream, config: &crate::config::Config, port: Option<&HttpPort>) {
    let socket = socket2::SockRef::from(stream);
    if let Err(e) = socket.set_tcp_user_timeout(Some(config.write_timeout)) {
        tracing::debug!("cannot set write_timeout on a client socket: {e}");
    }
    let keepalive = port.and_then(|p| p.tcp_keepalive);
    if let Some(k) = keepalive {
        let mut params = socket2::TcpKeepalive::new();
        if let Some(idle) = k.idle {
            params = params.with_time(idle);
        }
        if let Some(interval) = k.interval {
            params = params.with_interval(interval);
            if let Some(timeout) = k.timeout {
                let probes = (timeout.as_secs() / interval.as_secs().max(1)).clamp(1, 127) as u32;
                params = params.with_retries(probes);
            }
        }
        if let Err(e) = socket.set_tcp_keepalive(&params) {
            tracing::debug!("cannot set tcpkeepalive on a client socket: {e}");
        }
    }
}

async fn refuse_over_limit(ctx: ClientCtx, stream: Stream, refusal: Refusal) {
    let start = Instant::now();
    let details = match refusal {
        Refusal::Total(n) => format!("this proxy is at its limit of {n} connections"),
        Refusal::PerClient(n) => format!("this client already has {n} connections (client_ip_max_connections)"),
    };
    let error = ProxyError::new(503, ErrorType::ConnectionLimitReached, details);
    let mut conn = BufConn::new(stream);
    let tx = Transaction::new(&ctx, start, "", "error:connection-limit");
    tx.fail(&mut conn, Failure::refused(error)).await;
    close_gracefully(&mut conn.stream).await;
}
