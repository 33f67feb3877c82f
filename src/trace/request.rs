//! The optional last step: one request through the TLS tunnel.

use std::time::Instant;

use crate::tls::Stream;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::tracer::Tracer;

impl Tracer {
    pub(super) async fn request(&mut self, tls: tokio_rustls::client::TlsStream<Stream>, h2: bool) {
        let started = Instant::now();
        let target = self.report.target.clone();
        let result = tokio::time::timeout(
            self.opts.step_timeout,
            send_one(tls, h2, &target, self.opts.key.clone()),
        )
        .await;
        let (method, outcome) = match result {
            Ok(r) => r,
            Err(_) => ("request", Err("no answer in time".to_string())),
        };
        match outcome {
            Ok(status) => {
                let ok = (200..300).contains(&status);
                let proto = if h2 { "HTTP/2" } else { "HTTP/1.1" };
                self.step(
                    "request",
                    ok,
                    started,
                    format!("{method} https://{target}/: {status} ({proto})"),
                );
                if !ok {
                    self.fail(
                        None,
                        None,
                        &format!("http_{status}"),
                        format!("{target} answered {method} with {status}"),
                    );
                }
            }
            Err(e) => {
                self.step("request", false, started, format!("{method} https://{target}/: {e}"));
                self.fail(
                    None,
                    None,
                    "http_protocol_error",
                    format!("the request to {target} failed: {e}"),
                );
            }
        }
    }
}

/// One request over the tunnel: POST with the key when there is one, else GET /.
async fn send_one(
    tls: tokio_rustls::client::TlsStream<Stream>,
    h2: bool,
    target: &str,
    key: Option<String>,
) -> (&'static str, Result<u16, String>) {
    let method = if key.is_some() { "POST" } else { "GET" };
    let build = |uri: String| {
        let mut builder = http::Request::builder().method(method).uri(uri);
        if let Some(k) = &key {
            builder = builder
                .header("x-instana-key", k)
                .header("content-type", "application/json");
        }
        builder
    };
    let io = TokioIo::new(tls);
    let result = async {
        if h2 {
            let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
            let driver = tokio::spawn(conn);
            let body = Full::new(Bytes::from_static(b"{}"));
            let req = build(format!("https://{target}/"))
                .body(body)
                .map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            driver.abort();
            Ok(status)
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            let driver = tokio::spawn(conn);
            let req = build("/".to_string())
                .header("host", target)
                .body(Empty::<Bytes>::new())
                .map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            driver.abort();
            Ok(status)
        }
    }
    .await;
    (method, result)
}
