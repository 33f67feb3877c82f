//! Plain-HTTP keep-alive GETs: several connections, each sending the next request as soon as
//! the previous 64-byte answer is complete.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::join_all;
use crate::harness::client::{self, ClientStream, Route, timeout_err};

#[derive(Debug, Clone, Default)]
pub struct HttpResult {
    /// Answers completed inside the measured window.
    pub requests: u64,
    /// All answers, warm-up included: what the proxies' CPU time paid for.
    pub total: u64,
    pub per_sec: f64,
    pub errors: u64,
    /// Connections the proxy closed (we reopen them).
    pub reconnects: u64,
    pub first_error: Option<String>,
}

struct ConnOut {
    requests: u64,
    total: u64,
    errors: u64,
    reconnects: u64,
    first_error: Option<String>,
}

pub async fn run(
    route: &Route,
    sink_http: SocketAddr,
    conns: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<HttpResult, String> {
    let measure_from = Instant::now() + warmup;
    let end = measure_from + duration;
    let tasks = (0..conns)
        .map(|_| tokio::spawn(conn_loop(route.clone(), sink_http, measure_from, end)))
        .collect();
    let outs = join_all(tasks).await?;
    let requests: u64 = outs.iter().map(|o| o.requests).sum();
    Ok(HttpResult {
        requests,
        total: outs.iter().map(|o| o.total).sum(),
        per_sec: requests as f64 / duration.as_secs_f64(),
        errors: outs.iter().map(|o| o.errors).sum(),
        reconnects: outs.iter().map(|o| o.reconnects).sum(),
        first_error: outs.iter().find_map(|o| o.first_error.clone()),
    })
}

async fn conn_loop(route: Route, sink_http: SocketAddr, measure_from: Instant, end: Instant) -> ConnOut {
    let req = client::http_request(&route, sink_http);
    let mut out = ConnOut {
        requests: 0,
        total: 0,
        errors: 0,
        reconnects: 0,
        first_error: None,
    };
    let mut conn: Option<ClientStream> = None;
    let mut buf = BytesMut::with_capacity(16 * 1024);
    while Instant::now() < end {
        let stream = match conn.as_mut() {
            Some(s) => s,
            None => match client::open_http(&route, sink_http).await {
                Ok(s) => {
                    buf.clear();
                    conn.insert(s)
                }
                Err(e) => {
                    fail(&mut out, e.to_string()).await;
                    continue;
                }
            },
        };
        match tokio::time::timeout(client::IO_TIMEOUT, exchange(stream, &req, &mut buf)).await {
            Ok(Ok(Exchange::KeepAlive)) => {
                out.total += 1;
                if Instant::now() >= measure_from && Instant::now() <= end {
                    out.requests += 1;
                }
            }
            Ok(Ok(Exchange::Closed)) => {
                out.total += 1;
                if Instant::now() >= measure_from && Instant::now() <= end {
                    out.requests += 1;
                }
                out.reconnects += 1;
                conn = None;
            }
            Ok(Err(e)) => {
                conn = None;
                fail(&mut out, e.to_string()).await;
            }
            Err(_) => {
                conn = None;
                fail(&mut out, timeout_err("plain-HTTP answer").to_string()).await;
            }
        }
    }
    out
}

async fn fail(out: &mut ConnOut, e: String) {
    out.errors += 1;
    out.first_error.get_or_insert(e);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

enum Exchange {
    KeepAlive,
    /// The answer came complete but the server will close (or did).
    Closed,
}

/// Sends one GET and reads exactly one answer (head + Content-Length body) from `buf`/stream.
async fn exchange(stream: &mut ClientStream, req: &[u8], buf: &mut BytesMut) -> std::io::Result<Exchange> {
    stream.write_all(req).await?;
    loop {
        if let Some((total, keep_alive)) = parse_answer(buf)? {
            buf.advance(total);
            return Ok(if keep_alive {
                Exchange::KeepAlive
            } else {
                Exchange::Closed
            });
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed mid-answer",
            ));
        }
    }
}

/// `Some((head + body length, keep-alive?))` once a whole 200 answer is buffered.
fn parse_answer(buf: &[u8]) -> std::io::Result<Option<(usize, bool)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf).map_err(std::io::Error::other)? {
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(n) => n,
    };
    if resp.code != Some(200) {
        return Err(std::io::Error::other(format!("answer status {:?}", resp.code)));
    }
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    let body_len: usize = header("content-length")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other("answer without Content-Length"))?;
    let close = header("connection").is_some_and(|v| v.contains("close")) || resp.version == Some(0);
    Ok((buf.len() >= head_len + body_len).then_some((head_len + body_len, !close)))
}

#[cfg(test)]
mod tests {
    use super::parse_answer;

    #[test]
    fn parses_keep_alive_and_close() {
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP";
        assert_eq!(parse_answer(a).unwrap(), Some((41, true)));
        let b = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nab";
        assert_eq!(parse_answer(b).unwrap(), None);
        assert!(parse_answer(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n").is_err());
    }
}
