//! Small real servers for tests: an HTTP/1.1 origin that answers with what it received, and
//! a TCP echo server. Each runs on its own threads and stops accepting when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve(addr: SocketAddr, handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
    let handler = Arc::new(handler);
    let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if flag.load(Ordering::Relaxed) {
                return;
            }
            if let Ok(stream) = stream {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let handler = Arc::clone(&handler);
                std::thread::spawn(move || handler(stream));
            }
        }
    });
    Server { addr, stop }
}

/// An HTTP/1.1 origin: each response body is the request head it received plus the request
/// body (by Content-Length or chunked), as `text/plain`, keep-alive (no body for HEAD).
pub fn echo_origin(addr: SocketAddr) -> Server {
    serve(addr, handle_http)
}

fn handle_http(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    for _ in 0..100 {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.push_str(&line);
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        let lower = head.to_ascii_lowercase();
        let mut body = Vec::new();
        if let Some(len) = lower.lines().find_map(|l| l.strip_prefix("content-length:")) {
            body.resize(len.trim().parse().unwrap_or(0), 0);
            if reader.read_exact(&mut body).is_err() {
                return;
            }
        } else if lower.contains("transfer-encoding: chunked") {
            loop {
                let mut size_line = String::new();
                if reader.read_line(&mut size_line).unwrap_or(0) == 0 {
                    return;
                }
                let size = usize::from_str_radix(size_line.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; size + 2];
                if reader.read_exact(&mut chunk).is_err() {
                    return;
                }
                body.extend_from_slice(&chunk[..size]);
                if size == 0 {
                    break;
                }
            }
        }
        let mut payload = head.into_bytes();
        payload.extend_from_slice(&body);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        );
        // A HEAD response has no body (RFC 9110 9.3.2): bytes after it would be read by a
        // proxy reusing this connection as the start of the next response.
        let is_head = payload.starts_with(b"HEAD ");
        if writer.write_all(response.as_bytes()).is_err() || (!is_head && writer.write_all(&payload).is_err()) {
            return;
        }
    }
}

/// A TCP echo server: sends back every byte until the client half-closes, then closes.
pub fn echo_tcp(addr: SocketAddr) -> Server {
    serve(addr, |mut stream| {
        let mut buf = [0u8; 16384];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = stream.shutdown(Shutdown::Write);
    })
}

/// A peer that records every byte it receives, per connection, and answers each connection
/// with `reply` once its first bytes arrive (then keeps reading until the peer closes or is
/// idle for 2 s). For asserting exactly what reached a parent or an origin, or that nothing did.
pub struct Recorder {
    pub server: Server,
    connections: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    /// What each accepted connection received so far, in accept order.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.connections.lock().unwrap().clone()
    }
}

pub fn recorder(addr: SocketAddr, reply: &'static [u8]) -> Recorder {
    let connections = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&connections);
    let server = serve(addr, move |mut stream| {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let index = {
            let mut all = log.lock().unwrap();
            all.push(Vec::new());
            all.len() - 1
        };
        let mut buf = [0u8; 16384];
        let mut replied = false;
        for _ in 0..1000 {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    log.lock().unwrap()[index].extend_from_slice(&buf[..n]);
                    if !replied {
                        replied = true;
                        let _ = stream.write_all(reply);
                    }
                }
            }
        }
    });
    Recorder { server, connections }
}
