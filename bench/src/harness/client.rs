//! Client side: open a connection to the sink either directly or as a CONNECT tunnel through
//! the chain's first proxy (over TLS when it listens on an `https_port`), and build plain-HTTP
//! requests for either route.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::sink::find_head_end;

/// Upper bound on any single connect or proxy answer, so no test can hang.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How the client speaks TLS to the first proxy: the config and the name its certificate carries.
pub struct ProxyTls {
    pub connector: TlsConnector,
    pub name: ServerName<'static>,
}

/// How the client reaches the sink.
#[derive(Clone)]
pub enum Route {
    Direct,
    /// The chain's first proxy, in plain TCP.
    Via(SocketAddr),
    /// The chain's first proxy, on its `https_port`.
    ViaTls(SocketAddr, Arc<ProxyTls>),
}

/// A byte stream to the sink or a proxy: plain TCP, or TLS to the first proxy.
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An open byte stream to the sink, with any bytes that arrived together with the proxy's
/// `200` (the down sink starts sending at once).
pub struct Tunnel {
    pub stream: ClientStream,
    pub early: Vec<u8>,
}

pub fn timeout_err(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what}: timed out"))
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| timeout_err("connect"))??;
    // Like the agent: small request/response exchanges must not wait for Nagle.
    s.set_nodelay(true)?;
    Ok(s)
}

/// Connects to the first proxy, with its TLS handshake done when it listens on `https_port`.
async fn connect_proxy(route: &Route) -> io::Result<ClientStream> {
    match route {
        Route::Direct => Err(io::Error::other("no proxy on a direct route")),
        Route::Via(proxy) => Ok(ClientStream::Plain(connect(*proxy).await?)),
        Route::ViaTls(proxy, tls) => {
            let tcp = connect(*proxy).await?;
            let stream = tokio::time::timeout(IO_TIMEOUT, tls.connector.connect(tls.name.clone(), tcp))
                .await
                .map_err(|_| timeout_err("TLS handshake with the proxy"))??;
            Ok(ClientStream::Tls(Box::new(stream)))
        }
    }
}

/// Connects to `target` along `route`; through a proxy, returns only after its `200`.
pub async fn open(route: &Route, target: SocketAddr) -> io::Result<Tunnel> {
    if let Route::Direct = route {
        return Ok(Tunnel {
            stream: ClientStream::Plain(connect(target).await?),
            early: Vec::new(),
        });
    }
    let mut stream = connect_proxy(route).await?;
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let early = tokio::time::timeout(IO_TIMEOUT, read_connect_answer(&mut stream))
        .await
        .map_err(|_| timeout_err("CONNECT answer"))??;
    Ok(Tunnel { stream, early })
}

/// Reads the proxy's answer head; fails unless it is 2xx. Returns bytes after the head.
async fn read_connect_answer(stream: &mut ClientStream) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "proxy closed before answering CONNECT",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_head_end(&buf) {
            let status = buf.split(|&b| b == b' ').nth(1).unwrap_or(b"");
            if !status.starts_with(b"2") {
                let line = String::from_utf8_lossy(buf.split(|&b| b == b'\r').next().unwrap_or(b""));
                return Err(io::Error::other(format!("CONNECT refused: {line}")));
            }
            return Ok(buf.split_off(end));
        }
        if buf.len() > 64 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "CONNECT answer head too large",
            ));
        }
    }
}

/// A keep-alive connection for plain HTTP: to the sink directly, or to the first proxy.
pub async fn open_http(route: &Route, sink_http: SocketAddr) -> io::Result<ClientStream> {
    match route {
        Route::Direct => Ok(ClientStream::Plain(connect(sink_http).await?)),
        _ => connect_proxy(route).await,
    }
}

/// The GET request bytes: origin-form to the sink, absolute-form to a proxy.
pub fn http_request(route: &Route, sink_http: SocketAddr) -> Vec<u8> {
    let target = match route {
        Route::Direct => "/bench".to_string(),
        Route::Via(_) | Route::ViaTls(..) => format!("http://{sink_http}/bench"),
    };
    format!("GET {target} HTTP/1.1\r\nHost: {sink_http}\r\nUser-Agent: hopproxy-bench\r\n\r\n").into_bytes()
}

impl AsyncRead for ClientStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
