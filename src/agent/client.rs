//! The agent's path: TCP to the proxy, CONNECT, TLS with ALPN h2, HTTP/2 POSTs carrying the key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::tls::Stream;
use tokio_rustls::TlsConnector;

use super::backend_cfg::BackendCfg;
use crate::client::connect::{self, ConnectError, ConnectReply, ProxyAuth};
use crate::client::tls::{self, TlsSetupError};

/// How the agent run behaves beyond what Backend.cfg says.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Trust this CA file instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// How many POSTs to send on the HTTP/2 connection.
    pub requests: u32,
    /// Limit for each step (connect, CONNECT answer, TLS, each request).
    pub step_timeout: Duration,
    /// Source address to connect from (the lab gives the agent its own loopback address).
    pub bind_ip: Option<std::net::IpAddr>,
    /// TLS to the proxy (an `https://` proxy: hopproxy's or Squid's `https_port`).
    pub proxy_tls: Option<crate::tls::PeerTls>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            ca_file: None,
            requests: 1,
            step_timeout: Duration::from_secs(5),
            bind_ip: None,
            proxy_tls: None,
        }
    }
}

/// What a successful run saw.
#[derive(Debug, Clone)]
pub struct AgentReport {
    /// The agent log line, e.g. `Connected using HTTP/2 to host:443 with id '..' and key '*** (redacted)'`.
    pub connected_line: String,
    pub agent_id: String,
    /// Status of every POST, in order.
    pub statuses: Vec<u16>,
}

/// Why the agent could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("resolving {host}: {message}")]
    Resolve { host: String, message: String },
    #[error("connecting to {what} {addr}: {source}")]
    Connect {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("CONNECT {target} via proxy {proxy}: {source}")]
    ConnectIo {
        proxy: String,
        target: String,
        source: ConnectError,
    },
    #[error("proxy {proxy} answered CONNECT {target} with {} {}{}", reply.status, reply.reason, reply.origin_headers())]
    ProxyRefused {
        proxy: String,
        target: String,
        reply: Box<ConnectReply>,
    },
    #[error("TLS with proxy {proxy}: {failure}")]
    ProxyTls {
        proxy: String,
        failure: crate::tls::TlsFailure,
    },
    #[error(transparent)]
    TlsSetup(#[from] TlsSetupError),
    #[error("TLS handshake with {host}: {message}")]
    Tls { host: String, message: String },
    #[error("{host} did not offer HTTP/2 (ALPN: {alpn})")]
    NoH2 { host: String, alpn: String },
    #[error("HTTP/2 to {host}: {message}")]
    Http { host: String, message: String },
    #[error("{host} rejected the agent key: {status} {body}")]
    KeyRejected { host: String, status: u16, body: String },
    #[error("{host} answered {status}: {body}")]
    Backend { host: String, status: u16, body: String },
}

impl AgentError {
    /// The proxy's error answer, when that is what stopped the agent.
    pub fn proxy_reply(&self) -> Option<&ConnectReply> {
        match self {
            AgentError::ProxyRefused { reply, .. } => Some(reply),
            _ => None,
        }
    }
}

/// Runs the agent's path once for `cfg`.
pub async fn run_agent(cfg: &BackendCfg, options: &AgentOptions) -> Result<AgentReport, AgentError> {
    let limit = options.step_timeout;
    let target_host = cfg.host.trim_start_matches('[').trim_end_matches(']').to_string();
    let stream = match &cfg.proxy {
        Some(proxy) => {
            let proxy_addr = connect::authority(&proxy.host, proxy.port);
            let tcp = dial(&proxy.host, proxy.port, "proxy", limit, options.bind_ip).await?;
            let mut stream = match &options.proxy_tls {
                Some(tls) => crate::tls::failure::connect(tcp, tls, &proxy.host, limit)
                    .await
                    .map_err(|failure| AgentError::ProxyTls {
                        proxy: proxy_addr.clone(),
                        failure,
                    })?,
                None => Stream::Tcp(tcp),
            };
            // proxy.dns=false: the agent resolves the name itself and asks the proxy for the IP.
            let target = if proxy.dns {
                connect::authority(&target_host, cfg.port)
            } else {
                resolve(&target_host, cfg.port).await?.to_string()
            };
            let auth = match (&proxy.user, &proxy.password) {
                (Some(user), password) => Some(ProxyAuth {
                    user: user.clone(),
                    password: password.clone().unwrap_or_default(),
                }),
                _ => None,
            };
            let reply = connect::send_connect(&mut stream, &target, auth.as_ref(), limit)
                .await
                .map_err(|source| AgentError::ConnectIo {
                    proxy: proxy_addr.clone(),
                    target: target.clone(),
                    source,
                })?;
            if reply.status != 200 {
                return Err(AgentError::ProxyRefused {
                    proxy: proxy_addr,
                    target,
                    reply: Box::new(reply),
                });
            }
            stream
        }
        None => Stream::Tcp(dial(&target_host, cfg.port, "backend", limit, options.bind_ip).await?),
    };
    let _ = stream.tcp().set_nodelay(true);

    let tls_err = |message: String| AgentError::Tls {
        host: target_host.clone(),
        message,
    };
    let config = tls::h2_client_config(options.ca_file.as_deref())?;
    let name = ServerName::try_from(target_host.clone()).map_err(|e| tls_err(e.to_string()))?;
    let handshake = TlsConnector::from(Arc::clone(&config)).connect(name, stream);
    let tls_stream = tokio::time::timeout(limit, handshake)
        .await
        .map_err(|_| tls_err(format!("no handshake within {limit:?}")))?
        .map_err(|e| tls_err(e.to_string()))?;
    let alpn = tls_stream
        .get_ref()
        .1
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).to_string());
    if alpn.as_deref() != Some("h2") {
        return Err(AgentError::NoH2 {
            host: target_host,
            alpn: alpn.unwrap_or_else(|| "none".into()),
        });
    }

    let http_err = |e: &dyn std::fmt::Display| AgentError::Http {
        host: target_host.clone(),
        message: e.to_string(),
    };
    let (mut sender, conn) = tokio::time::timeout(
        limit,
        hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(TokioExecutor::new(), TokioIo::new(tls_stream)),
    )
    .await
    .map_err(|_| http_err(&"no HTTP/2 handshake in time"))?
    .map_err(|e| http_err(&e))?;
    let driver = tokio::spawn(conn);

    let agent_id = agent_id();
    let authority = connect::authority(&target_host, cfg.port);
    let mut statuses = Vec::new();
    for seq in 0..options.requests.max(1) {
        let body = serde_json::json!({"agent_id": agent_id, "seq": seq, "kind": "hopproxy-agent-ping"}).to_string();
        let request = Request::post(format!("https://{authority}/metrics"))
            .header("x-instana-key", &cfg.key)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| http_err(&e))?;
        let response = tokio::time::timeout(limit, sender.send_request(request))
            .await
            .map_err(|_| http_err(&"no answer in time"))?
            .map_err(|e| http_err(&e))?;
        let status = response.status().as_u16();
        let body = tokio::time::timeout(limit, response.into_body().collect())
            .await
            .map_err(|_| http_err(&"body not received in time"))?
            .map_err(|e| http_err(&e))?
            .to_bytes();
        let body = String::from_utf8_lossy(&body).trim().to_string();
        match status {
            200..=299 => statuses.push(status),
            401 | 403 => {
                return Err(AgentError::KeyRejected {
                    host: target_host,
                    status,
                    body,
                });
            }
            _ => {
                return Err(AgentError::Backend {
                    host: target_host,
                    status,
                    body,
                });
            }
        }
    }
    driver.abort();
    Ok(AgentReport {
        connected_line: format!("Connected using HTTP/2 to {authority} with id '{agent_id}' and key '*** (redacted)'"),
        agent_id,
        statuses,
    })
}

/// Resolves and connects within `limit`, from `bind_ip` when given.
async fn dial(
    host: &str,
    port: u16,
    what: &'static str,
    limit: Duration,
    bind_ip: Option<std::net::IpAddr>,
) -> Result<TcpStream, AgentError> {
    let addr = resolve(host, port).await?;
    let err = |source| AgentError::Connect {
        what,
        addr: connect::authority(host, port),
        source,
    };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(err)?;
    if let Some(ip) = bind_ip {
        socket.bind(SocketAddr::new(ip, 0)).map_err(err)?;
    }
    tokio::time::timeout(limit, socket.connect(addr))
        .await
        .map_err(|_| err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")))?
        .map_err(err)
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, AgentError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let err = |message: String| AgentError::Resolve {
        host: host.to_string(),
        message,
    };
    tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("no address".into()))
}

/// An id shaped like the agent's (EUI-64 from a MAC: `02:00:43:ff:fe:5d:e6:54`).
pub fn agent_id() -> String {
    let mac = first_mac().unwrap_or([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);
    let eui = [mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]];
    eui.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The first non-zero interface MAC Linux shows in sysfs, if any.
fn first_mac() -> Option<[u8; 6]> {
    let mut names: Vec<_> = std::fs::read_dir("/sys/class/net")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    names.into_iter().find_map(|dir| {
        let text = std::fs::read_to_string(dir.join("address")).ok()?;
        let bytes: Vec<u8> = text
            .trim()
            .split(':')
            .filter_map(|h| u8::from_str_radix(h, 16).ok())
            .collect();
        let mac: [u8; 6] = bytes.try_into().ok()?;
        (mac != [0; 6]).then_some(mac)
    })
}
