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

/// What a [`scripted`] origin does with one request.
pub enum Act {
    /// Writes these bytes and waits for the next request on the connection.
    Reply(Vec<u8>),
    /// Writes these bytes, then closes the connection.
    ReplyClose(Vec<u8>),
    /// Closes the connection without a byte.
    Close,
    /// Resets the connection (RST) without a byte.
    Reset,
    /// Answers nothing and holds the connection until the peer closes it (at most 30 s).
    Silent,
}

/// One request a [`scripted`] origin received: the connection it came on (in accept order),
/// its index on that connection, its head and its body.
#[derive(Debug, Clone)]
pub struct Received {
    pub connection: usize,
    pub index: usize,
    pub head: String,
    pub body: Vec<u8>,
}

/// A hostile (or merely exact) HTTP/1.1 peer: reads requests (body by Content-Length or
/// chunked) and does what `script(request)` says with each, recording them all.
pub struct Scripted {
    pub server: Server,
    requests: Arc<Mutex<Vec<Received>>>,
}

impl Scripted {
    pub fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits (bounded, 10 s) until at least `count` requests arrived; returns them.
    pub fn wait_for_requests(&self, count: usize) -> Vec<Received> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let all = self.requests();
            if all.len() >= count || std::time::Instant::now() > deadline {
                return all;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn scripted(addr: SocketAddr, script: impl Fn(&Received) -> Act + Send + Sync + 'static) -> Scripted {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&requests);
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = serve(addr, move |stream| {
        let connection = accepted.fetch_add(1, Ordering::Relaxed);
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        for index in 0..100 {
            let Some((head, body)) = read_request(&mut reader) else {
                return;
            };
            let received = Received {
                connection,
                index,
                head,
                body,
            };
            log.lock().unwrap().push(received.clone());
            match script(&received) {
                Act::Reply(bytes) => {
                    if writer.write_all(&bytes).is_err() {
                        return;
                    }
                }
                Act::ReplyClose(bytes) => {
                    let _ = writer.write_all(&bytes);
                    let _ = writer.shutdown(Shutdown::Both);
                    return;
                }
                Act::Close => {
                    let _ = writer.shutdown(Shutdown::Both);
                    return;
                }
                Act::Reset => {
                    // SO_LINGER 0: close sends RST instead of FIN.
                    let _ = rustix::net::sockopt::set_socket_linger(&writer, Some(Duration::ZERO));
                    return;
                }
                Act::Silent => {
                    let _ = writer.set_read_timeout(Some(Duration::from_secs(30)));
                    let mut sink = [0u8; 1024];
                    while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
                    return;
                }
            }
        }
    });
    Scripted { server, requests }
}

/// Reads one request (head and body); `None` when the peer closed or sent nonsense.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" || line == "\n" {
            break;
        }
    }
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if let Some(len) = lower.lines().find_map(|l| l.strip_prefix("content-length:")) {
        body.resize(len.trim().parse().ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    } else if lower.contains("transfer-encoding: chunked") {
        loop {
            let mut size_line = String::new();
            if reader.read_line(&mut size_line).ok()? == 0 {
                return None;
            }
            let size = usize::from_str_radix(size_line.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk[..size]);
            if size == 0 {
                break;
            }
        }
    }
    Some((head, body))
}

/// `HTTP/1.1 200 OK` with `body` as text/plain, keep-alive.
pub fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
