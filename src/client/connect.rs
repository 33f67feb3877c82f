//! The client side of `CONNECT`: send the request, read the proxy's answer with httparse;
//! one proxy, or a chain of them tunnelled one through the other.
//!
//! The head is read one byte at a time on purpose: after a `200` the same socket carries the
//! tunnel, and no byte past the blank line may be swallowed (a chained CONNECT or TLS follows).

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest answer head accepted from a proxy.
const MAX_HEAD: usize = 64 * 1024;
/// Largest error body kept for the report.
const MAX_BODY: usize = 64 * 1024;

/// Basic credentials for `Proxy-Authorization`.
#[derive(Debug, Clone)]
pub struct ProxyAuth {
    pub user: String,
    pub password: String,
}

/// A proxy's answer to CONNECT.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectReply {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    /// Error body (empty for 200), cut at 64 KiB.
    #[serde(skip)]
    pub body: Vec<u8>,
}

impl ConnectReply {
    /// All values of a header, joined with `, ` as HTTP allows for list headers.
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    /// `; Proxy-Status: …; X-Squid-Error: …; Via: …` for the headers present: what an error
    /// answer says about where it came from, to append to a one-line description.
    pub fn origin_headers(&self) -> String {
        let mut s = String::new();
        for name in ["Proxy-Status", "X-Squid-Error", "Via"] {
            if let Some(v) = self.header(name) {
                s.push_str(&format!("; {name}: {v}"));
            }
        }
        s
    }
}

/// Why no answer to CONNECT could be read.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("sending CONNECT: {0}")]
    Send(std::io::Error),
    #[error("reading the proxy's answer: {0}")]
    Read(std::io::Error),
    #[error("the proxy closed the connection before answering the CONNECT")]
    Closed,
    #[error("no answer to the CONNECT within {0:?}")]
    Timeout(Duration),
    #[error("the proxy's answer is not HTTP: {0}")]
    Malformed(String),
}

/// `host:port`, with brackets for IPv6 literals.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Sends `CONNECT target` on `stream` and reads the answer (and, for errors, its body).
pub async fn send_connect<S>(
    stream: &mut S,
    target: &str,
    auth: Option<&ProxyAuth>,
    timeout: Duration,
) -> Result<ConnectReply, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = format!(
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: hopproxy/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(a) = auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", a.user, a.password));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.map_err(ConnectError::Send)?;
    stream.flush().await.map_err(ConnectError::Send)?;

    let head = tokio::time::timeout(timeout, read_head(stream))
        .await
        .map_err(|_| ConnectError::Timeout(timeout))??;
    let mut reply = parse_head(&head)?;
    if reply.status != 200 {
        // Error bodies are best effort: Squid relays a parent's head without its body (docs/squid-behaviour.md B7r).
        let len = reply
            .header("content-length")
            .and_then(|v| v.trim().parse::<usize>().ok());
        let want = len.unwrap_or(MAX_BODY).min(MAX_BODY);
        let budget = Duration::from_secs(2).min(timeout);
        let _ = tokio::time::timeout(budget, read_body(stream, want, &mut reply.body)).await;
    }
    Ok(reply)
}

/// Where a chain of CONNECTs stopped; `hop` is the index into the list of targets.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("CONNECT {target}: {source}")]
    Io {
        hop: usize,
        target: String,
        source: ConnectError,
    },
    #[error("CONNECT {target}: {} {}", reply.status, reply.reason)]
    Refused {
        hop: usize,
        target: String,
        reply: Box<ConnectReply>,
    },
}

/// Client-side chaining: asks the proxy at the other end of `stream` for a tunnel to
/// `targets[0]`, then, through that tunnel, asks `targets[0]` for one to `targets[1]`, and so
/// on. `auth` goes to the first proxy only. On success `stream` carries a tunnel to the last target.
pub async fn connect_through<S>(
    stream: &mut S,
    targets: &[String],
    auth: Option<&ProxyAuth>,
    timeout: Duration,
) -> Result<(), ChainError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for (hop, target) in targets.iter().enumerate() {
        let auth = if hop == 0 { auth } else { None };
        let reply = send_connect(stream, target, auth, timeout)
            .await
            .map_err(|source| ChainError::Io {
                hop,
                target: target.clone(),
                source,
            })?;
        if reply.status != 200 {
            return Err(ChainError::Refused {
                hop,
                target: target.clone(),
                reply: Box::new(reply),
            });
        }
    }
    Ok(())
}

async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, ConnectError> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    loop {
        let n = stream.read(&mut byte).await.map_err(ConnectError::Read)?;
        if n == 0 {
            return Err(ConnectError::Closed);
        }
        head.push(byte[0]);
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            return Ok(head);
        }
        if head.len() > MAX_HEAD {
            return Err(ConnectError::Malformed(format!(
                "answer head longer than {MAX_HEAD} bytes"
            )));
        }
    }
}

async fn read_body<S: AsyncRead + Unpin>(stream: &mut S, want: usize, body: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    while body.len() < want {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&buf[..n.min(want - body.len())]),
        }
    }
}

fn parse_head(head: &[u8]) -> Result<ConnectReply, ConnectError> {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(ConnectError::Malformed("incomplete head".into())),
        Err(e) => {
            let first_line = String::from_utf8_lossy(head.split(|&b| b == b'\n').next().unwrap_or_default());
            return Err(ConnectError::Malformed(format!("{e}: {:?}", first_line.trim_end())));
        }
    }
    Ok(ConnectReply {
        status: response.code.unwrap_or(0),
        reason: response.reason.unwrap_or("").to_string(),
        headers: response
            .headers
            .iter()
            .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).to_string()))
            .collect(),
        body: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_head_without_eating_tunnel_bytes() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let srv = tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = server.read(&mut buf).await.unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            server
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\nTUNNEL")
                .await
                .unwrap();
            req
        });
        let auth = ProxyAuth {
            user: "u".into(),
            password: "p".into(),
        };
        let reply = send_connect(&mut client, "example.com:443", Some(&auth), Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        let mut rest = [0u8; 6];
        client.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"TUNNEL");
        let req = srv.await.unwrap();
        assert!(
            req.starts_with("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"),
            "{req}"
        );
        assert!(req.contains("Proxy-Authorization: Basic dTpw\r\n"), "{req}");
    }

    #[tokio::test]
    async fn error_answer_keeps_headers_and_body() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = server.read(&mut buf).await.unwrap();
            let msg = "HTTP/1.1 503 Service Unavailable\r\nProxy-Status: p1; error=connection_refused\r\n\
                       Via: 1.1 p1\r\nContent-Length: 4\r\n\r\ngone";
            server.write_all(msg.as_bytes()).await.unwrap();
        });
        let reply = send_connect(&mut client, "[::1]:443", None, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("proxy-status").unwrap(), "p1; error=connection_refused");
        assert_eq!(reply.header("VIA").unwrap(), "1.1 p1");
        assert_eq!(reply.body_text(), "gone");
        assert_eq!(authority("::1", 443), "[::1]:443");
        assert_eq!(
            reply.origin_headers(),
            "; Proxy-Status: p1; error=connection_refused; Via: 1.1 p1"
        );
    }

    #[tokio::test]
    async fn chain_sends_auth_to_the_first_proxy_only_and_stops_at_a_refusal() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let srv = tokio::spawn(async move {
            let mut requests = Vec::new();
            for answer in [
                "HTTP/1.1 200 OK\r\n\r\n",
                "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
            ] {
                let mut buf = [0u8; 1024];
                let n = server.read(&mut buf).await.unwrap();
                requests.push(String::from_utf8_lossy(&buf[..n]).to_string());
                server.write_all(answer.as_bytes()).await.unwrap();
            }
            requests
        });
        let auth = ProxyAuth {
            user: "u".into(),
            password: "p".into(),
        };
        let targets = ["p2:3128".to_string(), "end:443".to_string(), "never:1".to_string()];
        let err = connect_through(&mut client, &targets, Some(&auth), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ChainError::Refused { hop: 1, reply, .. } if reply.status == 403),
            "{err}"
        );
        let requests = srv.await.unwrap();
        assert!(
            requests[0].starts_with("CONNECT p2:3128 HTTP/1.1\r\n"),
            "{}",
            requests[0]
        );
        assert!(requests[0].contains("Proxy-Authorization: Basic dTpw\r\n"));
        assert!(
            requests[1].starts_with("CONNECT end:443 HTTP/1.1\r\n"),
            "{}",
            requests[1]
        );
        assert!(!requests[1].contains("Proxy-Authorization"));
    }
}
