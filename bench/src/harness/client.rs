//! Client side: open a connection to the sink either directly or as a CONNECT tunnel through
//! the chain's first proxy, and build plain-HTTP requests for either route.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::sink::find_head_end;

/// Upper bound on any single connect or proxy answer, so no test can hang.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How the client reaches the sink.
#[derive(Clone, Copy, Debug)]
pub enum Route {
    Direct,
    /// The chain's first proxy.
    Via(SocketAddr),
}

/// An open byte stream to the sink, with any bytes that arrived together with the proxy's
/// `200` (the down sink starts sending at once).
pub struct Tunnel {
    pub stream: TcpStream,
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

/// Connects to `target` along `route`; through a proxy, returns only after its `200`.
pub async fn open(route: Route, target: SocketAddr) -> io::Result<Tunnel> {
    match route {
        Route::Direct => Ok(Tunnel {
            stream: connect(target).await?,
            early: Vec::new(),
        }),
        Route::Via(proxy) => {
            let mut stream = connect(proxy).await?;
            let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
            stream.write_all(req.as_bytes()).await?;
            let early = tokio::time::timeout(IO_TIMEOUT, read_connect_answer(&mut stream))
                .await
                .map_err(|_| timeout_err("CONNECT answer"))??;
            Ok(Tunnel { stream, early })
        }
    }
}

/// Reads the proxy's answer head; fails unless it is 2xx. Returns bytes after the head.
async fn read_connect_answer(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
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
pub async fn open_http(route: Route, sink_http: SocketAddr) -> io::Result<TcpStream> {
    match route {
        Route::Direct => connect(sink_http).await,
        Route::Via(proxy) => connect(proxy).await,
    }
}

/// The GET request bytes: origin-form to the sink, absolute-form to a proxy.
pub fn http_request(route: Route, sink_http: SocketAddr) -> Vec<u8> {
    let target = match route {
        Route::Direct => "/bench".to_string(),
        Route::Via(_) => format!("http://{sink_http}/bench"),
    };
    format!("GET {target} HTTP/1.1\r\nHost: {sink_http}\r\nUser-Agent: hopproxy-bench\r\n\r\n").into_bytes()
}
