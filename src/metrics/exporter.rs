//! The `/metrics` endpoint (`metrics_port`): a small HTTP/1.1 server on its own task, apart
//! from the proxy's listeners, so a scrape never competes with the proxy's connection limits
//! and a proxy request can never reach it. Everything but `GET /metrics` is 404.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Metrics;

/// A scraper that sends nothing for this long is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many scrapes at once; Prometheus makes one per target.
const MAX_CONNECTIONS: usize = 16;

/// Serves `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => Some(accepted),
            _ = stop.wait_for(|stopped| *stopped) => None,
        };
        let Some(accepted) = accepted else { return };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!("metrics_port: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue; // too many scrapers at once: drop this one
        };
        let metrics = Arc::clone(&metrics);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |request| answer(Arc::clone(&metrics), request));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let stopped = tokio::select! {
                _ = connection.as_mut() => false,
                _ = stop.wait_for(|stopped| *stopped) => true,
            };
            if stopped {
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(HEADER_TIMEOUT, connection).await;
            }
        });
    }
}

async fn answer(metrics: Arc<Metrics>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    let (status, content_type, body) = match (request.method(), path) {
        (&Method::GET | &Method::HEAD, "/metrics") => (StatusCode::OK, super::CONTENT_TYPE, metrics.encode()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".to_string(),
        ),
    };
    let response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn metrics_port_defaults_to_loopback_and_keeps_off_proxy_ports() {
        let parse = |text: &str| crate::config::parse_str(text, Path::new("t.conf"));
        let config = parse("http_port 3128\nmetrics_port 9301\n").expect("valid").config;
        let port = config.metrics_port.expect("set");
        assert_eq!((port.addr, port.port), (Some([127, 0, 0, 1].into()), 9301));
        assert!(parse("http_port 3128\nmetrics_port 3128\n").is_err());
        assert!(parse("http_port 127.0.0.1:3128\nmetrics_port 3128\n").is_err());
        assert!(parse("http_port 10.0.0.1:3128\nmetrics_port 3128\n").is_ok());
        assert!(parse("http_port 3128\nmetrics_port 127.0.0.1:x\n").is_err());
    }
}
