//! The stand-in SaaS endpoint: TLS 1.3, ALPN `h2` and `http/1.1`, answering like a backend.
//!
//! Start it from any test (sync or async) in two lines; it runs on its own thread and
//! runtime and stops when the handle is dropped:
//! ```no_run
//! # use hopproxy::lab::{certs::Pki, endpoint::{Endpoint, EndpointOptions}, ENDPOINT_NAME};
//! let pki = Pki::generate(ENDPOINT_NAME, "test CA").unwrap(); // pki.write(dir, "endpoint") → ca.pem for curl --cacert
//! let ep = Endpoint::start("127.0.0.20:0".parse().unwrap(), &pki, EndpointOptions::default()).unwrap();
//! // ep.local_addr(): map ENDPOINT_NAME to its IP with hosts_file; POSTs need `x-instana-key: lab-agent-key`
//! ```
//! Answers: `POST` with the right `x-instana-key` → 200 + small JSON; wrong or missing key →
//! 401 + JSON; `GET`/`HEAD` any path → 200 + a short text body; anything else → 405.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use super::certs::{CertError, Pki};

/// The agent key the endpoint accepts unless told otherwise.
pub const DEFAULT_KEY: &str = "lab-agent-key";

/// How the endpoint behaves.
#[derive(Debug, Clone)]
pub struct EndpointOptions {
    /// The agent key (`x-instana-key`) that POSTs must carry.
    pub key: String,
    /// Offer ALPN `h2`. Off: only `http/1.1`, to show what an agent sees behind a box without h2.
    pub h2: bool,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        EndpointOptions {
            key: DEFAULT_KEY.to_string(),
            h2: true,
        }
    }
}

/// What the endpoint has seen so far (for tests and the lab's summary).
#[derive(Debug, Default)]
pub struct EndpointStats {
    pub h2_connections: AtomicU64,
    pub http1_connections: AtomicU64,
    pub accepted_posts: AtomicU64,
    pub rejected_posts: AtomicU64,
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("binding the endpoint to {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] CertError),
    #[error("starting the endpoint's runtime: {0}")]
    Runtime(std::io::Error),
}

pub struct Endpoint;

impl Endpoint {
    /// Binds `bind` (port 0 picks a free port) and serves until the handle is dropped.
    pub fn start(bind: SocketAddr, pki: &Pki, options: EndpointOptions) -> Result<EndpointHandle, EndpointError> {
        let alpn: &[&[u8]] = if options.h2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        let acceptor = TlsAcceptor::from(pki.server_config(alpn)?);
        let listener =
            std::net::TcpListener::bind(bind).map_err(|source| EndpointError::Bind { addr: bind, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| EndpointError::Bind { addr: bind, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| EndpointError::Bind { addr: bind, source })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(EndpointError::Runtime)?;
        let stats = Arc::new(EndpointStats::default());
        let (stop_tx, stop_rx) = oneshot::channel();
        let key: Arc<str> = Arc::from(options.key.as_str());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name(format!("lab-endpoint-{local_addr}"))
            .spawn(move || {
                // Dropping the runtime at the end of this closure cancels every open connection.
                runtime.block_on(serve(listener, acceptor, key, thread_stats, stop_rx));
            })
            .map_err(EndpointError::Runtime)?;
        Ok(EndpointHandle {
            local_addr,
            stats,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

/// A running endpoint; dropping it stops the endpoint and waits for its thread.
pub struct EndpointHandle {
    local_addr: SocketAddr,
    stats: Arc<EndpointStats>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EndpointHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// POSTs accepted with the right key so far.
    pub fn accepted_posts(&self) -> u64 {
        self.stats.accepted_posts.load(Ordering::Relaxed)
    }
}

impl Drop for EndpointHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    key: Arc<str>,
    stats: Arc<EndpointStats>,
    mut stop: oneshot::Receiver<()>,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        // Accept errors (e.g. out of descriptors) are not fatal for a listener.
        let Ok((tcp, _peer)) = accepted else { continue };
        let acceptor = acceptor.clone();
        let key = key.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else {
                return;
            };
            let is_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let svc_stats = stats.clone();
            let service = service_fn(move |req| answer(req, key.clone(), svc_stats.clone()));
            let io = TokioIo::new(tls);
            if is_h2 {
                stats.h2_connections.fetch_add(1, Ordering::Relaxed);
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await;
            } else {
                stats.http1_connections.fetch_add(1, Ordering::Relaxed);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            }
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    key: Arc<str>,
    stats: Arc<EndpointStats>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        if let Ok(value) = content_type.parse() {
            resp.headers_mut().insert(http::header::CONTENT_TYPE, value);
        }
        resp
    };
    match *req.method() {
        Method::POST => {
            let key_ok = req
                .headers()
                .get("x-instana-key")
                .is_some_and(|v| v.as_bytes() == key.as_bytes());
            let path = req.uri().path().to_string();
            let body = req.into_body().collect().await?.to_bytes();
            if key_ok {
                stats.accepted_posts.fetch_add(1, Ordering::Relaxed);
                let json = serde_json::json!({"status": "ok", "path": path, "received_bytes": body.len()});
                Ok(reply(StatusCode::OK, "application/json", json.to_string()))
            } else {
                stats.rejected_posts.fetch_add(1, Ordering::Relaxed);
                let json = serde_json::json!({"status": "error", "error": "invalid agent key"});
                Ok(reply(StatusCode::UNAUTHORIZED, "application/json", json.to_string()))
            }
        }
        Method::GET | Method::HEAD => Ok(reply(
            StatusCode::OK,
            "text/plain",
            format!("hopproxy lab endpoint: stand-in for {}\n", super::ENDPOINT_NAME),
        )),
        _ => Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".to_string(),
        )),
    }
}
