//! The endpoint behind the proxies: one loopback port per behaviour, so a CONNECT target
//! alone says what the sink does (the proxies relay opaque bytes and must not need framing).
//!
//! * echo: returns every byte;
//! * down: sends bytes until the peer goes away;
//! * up: swallows bytes and returns one token byte per MiB received, so the client knows
//!   when its bytes have really arrived (no reliance on half-close, which Squid does not relay);
//! * http: HTTP/1.1 keep-alive server answering every request with a 64-byte body.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Bytes per token of the up mode.
pub const UP_TOKEN_BYTES: u64 = 1 << 20;
/// Body of every plain-HTTP answer.
pub const HTTP_BODY_LEN: usize = 64;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Echo,
    Down,
    Up,
    Http,
}

/// The running sink; its accept loops stop when it is dropped.
pub struct Sink {
    pub echo: SocketAddr,
    pub down: SocketAddr,
    pub up: SocketAddr,
    pub http: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Sink {
    /// Binds the four ports on `ip` (port 0: the kernel picks free ones).
    pub async fn start(ip: IpAddr) -> io::Result<Sink> {
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        for mode in [Mode::Echo, Mode::Down, Mode::Up, Mode::Http] {
            let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
            addrs.push(listener.local_addr()?);
            tasks.push(tokio::spawn(accept_loop(listener, mode)));
        }
        Ok(Sink {
            echo: addrs[0],
            down: addrs[1],
            up: addrs[2],
            http: addrs[3],
            tasks,
        })
    }
}

async fn accept_loop(listener: TcpListener, mode: Mode) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    // A peer that resets is normal at the end of every test.
                    let _ = serve(stream, mode).await;
                });
            }
            // Out of descriptors or similar: back off briefly instead of spinning.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
        }
    }
}

async fn serve(stream: TcpStream, mode: Mode) -> io::Result<()> {
    match mode {
        Mode::Echo => echo(stream).await,
        Mode::Down => down(stream).await,
        Mode::Up => up(stream).await,
        Mode::Http => http(stream).await,
    }
}

async fn echo(mut s: TcpStream) -> io::Result<()> {
    // Small first buffer: most echo connections carry 64 bytes; grow only for bulk echo.
    let mut buf = vec![0u8; 4096];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n]).await?;
        if n == buf.len() && buf.len() < 256 * 1024 {
            buf.resize(256 * 1024, 0);
        }
    }
}

async fn down(s: TcpStream) -> io::Result<()> {
    let (mut rd, mut wr) = s.into_split();
    // Watch for the peer closing so the writer stops even if the kernel keeps accepting bytes.
    let watcher = tokio::spawn(async move {
        let mut b = [0u8; 512];
        while matches!(rd.read(&mut b).await, Ok(n) if n > 0) {}
    });
    let chunk = vec![b'd'; 256 * 1024];
    let result = loop {
        if watcher.is_finished() {
            break Ok(());
        }
        if let Err(e) = wr.write_all(&chunk).await {
            break Err(e);
        }
    };
    watcher.abort();
    result
}

async fn up(mut s: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let (mut total, mut tokens_sent) = (0u64, 0u64);
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        total += n as u64;
        let due = total / UP_TOKEN_BYTES - tokens_sent;
        if due > 0 {
            s.write_all(&vec![b't'; due as usize]).await?;
            tokens_sent += due;
        }
    }
}

async fn http(mut s: TcpStream) -> io::Result<()> {
    let mut response = Vec::new();
    response.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n");
    response.extend_from_slice(format!("Content-Length: {HTTP_BODY_LEN}\r\n\r\n").as_bytes());
    response.extend_from_slice(&[b'x'; HTTP_BODY_LEN]);
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 8192];
    loop {
        // Answer every complete head in the buffer (GETs carry no body), then read more.
        while let Some(end) = find_head_end(&buf) {
            let close = head_says_close(&buf[..end]);
            buf.drain(..end);
            s.write_all(&response).await?;
            if close {
                return Ok(());
            }
        }
        if buf.len() > 64 * 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too large"));
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Index just past the blank line ending the first head in `buf`.
pub fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn head_says_close(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    text.lines()
        .any(|l| l.starts_with("connection:") && l.contains("close"))
}
