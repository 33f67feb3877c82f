//! Walking the chain: TCP to the first proxy, one CONNECT per hop, then each hop alone.

use std::time::Instant;

use tokio::net::TcpStream;

use super::TraceOptions;
use super::report::{Failure, Step, TraceReport};
use crate::client::connect;
use crate::client::proxy_status::error_origin;
use crate::tls::{Stream, TlsFailure};

use super::cli::split_host_port;

/// One trace in progress: what it was asked, and the report it fills in step by step.
pub(super) struct Tracer {
    pub(super) opts: TraceOptions,
    pub(super) report: TraceReport,
}

/// Runs a trace; never fails, the report says what happened.
pub async fn trace(opts: TraceOptions) -> TraceReport {
    let target = connect::authority(&opts.target_host, opts.target_port);
    let report = TraceReport {
        target,
        proxies: opts.proxies.clone(),
        ok: false,
        steps: Vec::new(),
        proxy_errors: Vec::new(),
        tls: None,
        hop_checks: Vec::new(),
        failure: None,
        verdict: String::new(),
    };
    let mut tracer = Tracer { opts, report };
    tracer.run().await;
    if tracer.opts.proxies.len() > 1 {
        tracer.hop_checks().await;
    }
    let mut report = tracer.report;
    report.ok = report.failure.is_none();
    report.verdict = match &report.failure {
        None => format!("OK: the path to {} works end to end", report.target),
        Some(f) => format!("FAIL: {}", f.reason),
    };
    report
}

fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 10_000.0).round() / 10.0
}

fn io_kind(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection_refused",
        std::io::ErrorKind::TimedOut => "connection_timeout",
        _ => "connection_error",
    }
}

impl Tracer {
    pub(super) fn step(&mut self, step: &str, ok: bool, started: Instant, detail: String) {
        self.report.steps.push(Step {
            step: step.to_string(),
            ok,
            ms: ms(started),
            detail,
        });
    }

    pub(super) fn fail(&mut self, hop: Option<usize>, name: Option<String>, error: &str, reason: String) {
        let hop_address = hop.and_then(|h| self.opts.proxies.get(h - 1).cloned());
        self.report.failure = Some(Failure {
            hop,
            hop_name: name,
            hop_address,
            error: error.to_string(),
            reason,
        });
    }

    pub(super) fn hop_label(&self, hop: usize, name: Option<&str>) -> String {
        match (self.opts.proxies.get(hop - 1), name) {
            (Some(addr), Some(name)) => format!("proxy {hop} ({name} at {addr})"),
            (Some(addr), None) => format!("proxy {hop} ({addr})"),
            (None, Some(name)) => format!("proxy {hop} ({name})"),
            (None, None) => format!("proxy {hop}"),
        }
    }

    /// TCP to the first proxy (or the target when there is none).
    async fn dial_first(&self) -> Result<TcpStream, std::io::Error> {
        let first = self
            .opts
            .proxies
            .first()
            .cloned()
            .unwrap_or_else(|| self.report.target.clone());
        let t = self.opts.step_timeout;
        match tokio::time::timeout(t, connect_from(&first, self.opts.source)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")),
        }
    }

    /// TLS to the first proxy when it is an `https://` one; plain TCP otherwise.
    async fn secure_first(&self, tcp: TcpStream) -> Result<Stream, TlsFailure> {
        match (&self.opts.proxy_tls, self.opts.proxies.first()) {
            (Some(tls), Some(first)) => {
                let host = split_host_port(first).map(|(h, _)| h).unwrap_or_default();
                crate::tls::failure::connect(tcp, tls, &host, self.opts.step_timeout).await
            }
            _ => Ok(Stream::Tcp(tcp)),
        }
    }

    /// A stream tunnelled through proxies 1..=upto (each CONNECT to the next proxy), or None.
    pub(super) async fn open_chain(&self, upto: usize) -> Option<Stream> {
        let tcp = self.dial_first().await.ok()?;
        let mut stream = self.secure_first(tcp).await.ok()?;
        let hops = &self.opts.proxies[1..upto];
        connect::connect_through(&mut stream, hops, self.opts.auth.as_ref(), self.opts.step_timeout)
            .await
            .ok()?;
        Some(stream)
    }

    async fn run(&mut self) {
        let n = self.opts.proxies.len();
        let first_label = if n > 0 {
            format!("proxy 1 ({})", self.opts.proxies[0])
        } else {
            self.report.target.clone()
        };
        let started = Instant::now();
        let stream = match self.dial_first().await {
            Ok(s) => {
                self.step("tcp", true, started, format!("TCP connection to {first_label}"));
                s
            }
            Err(e) => {
                self.step("tcp", false, started, format!("TCP connection to {first_label}: {e}"));
                let hop = (n > 0).then_some(1);
                self.fail(
                    hop,
                    None,
                    io_kind(&e),
                    format!("{first_label} is not reachable from here: {e}"),
                );
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let mut stream = if self.opts.proxy_tls.is_some() && n > 0 {
            let started = Instant::now();
            match self.secure_first(stream).await {
                Ok(s) => {
                    self.step("proxy-tls", true, started, format!("TLS with {first_label}"));
                    s
                }
                Err(failure) => {
                    self.step(
                        "proxy-tls",
                        false,
                        started,
                        format!("TLS with {first_label}: {failure}"),
                    );
                    let kind = if failure.is_certificate_error() {
                        "tls_certificate_error"
                    } else {
                        "tls_protocol_error"
                    };
                    self.fail(Some(1), None, kind, format!("TLS with {first_label} failed: {failure}"));
                    return;
                }
            }
        } else {
            Stream::Tcp(stream)
        };

        for k in 1..=n {
            let next = if k < n {
                self.opts.proxies[k].clone()
            } else {
                self.report.target.clone()
            };
            let next_label = if k < n {
                format!("proxy {} ({next})", k + 1)
            } else {
                next.clone()
            };
            let auth = if k == 1 { self.opts.auth.clone() } else { None };
            let started = Instant::now();
            let reply = connect::send_connect(&mut stream, &next, auth.as_ref(), self.opts.step_timeout).await;
            let label = self.hop_label(k, None);
            match reply {
                Err(e) => {
                    self.step("connect", false, started, format!("CONNECT {next} via {label}: {e}"));
                    self.fail(
                        Some(k),
                        None,
                        "connection_terminated",
                        format!("{label} gave no answer to CONNECT {next}: {e}"),
                    );
                    return;
                }
                Ok(reply) if reply.status == 200 => {
                    self.step(
                        "connect",
                        true,
                        started,
                        format!("CONNECT {next} via {label}: 200 {}", reply.reason),
                    );
                }
                Ok(reply) => {
                    let detail = format!(
                        "CONNECT {next} via {label}: {} {}{}",
                        reply.status,
                        reply.reason,
                        reply.origin_headers()
                    );
                    self.step("connect", false, started, detail);
                    self.diagnose(k, &next, &next_label, reply).await;
                    return;
                }
            }
        }
        self.tls_and_request(stream).await;
    }

    /// Each proxy on its own: TCP to it, then CONNECT to the target through it alone.
    async fn hop_checks(&mut self) {
        for (i, proxy) in self.opts.proxies.clone().into_iter().enumerate() {
            let started = Instant::now();
            let label = format!("proxy {} ({proxy})", i + 1);
            let connected = tokio::time::timeout(self.opts.step_timeout, connect_from(&proxy, self.opts.source)).await;
            let tcp = match connected {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    self.report.hop_checks.push(Step {
                        step: format!("hop {}", i + 1),
                        ok: false,
                        ms: ms(started),
                        detail: format!("{label} alone: TCP from here: {e}"),
                    });
                    continue;
                }
                Err(_) => {
                    self.report.hop_checks.push(Step {
                        step: format!("hop {}", i + 1),
                        ok: false,
                        ms: ms(started),
                        detail: format!("{label} alone: TCP from here: timed out"),
                    });
                    continue;
                }
            };
            let mut stream = if i == 0 {
                match self.secure_first(tcp).await {
                    Ok(s) => s,
                    Err(failure) => {
                        self.report.hop_checks.push(Step {
                            step: format!("hop {}", i + 1),
                            ok: false,
                            ms: ms(started),
                            detail: format!("{label} alone: TLS: {failure}"),
                        });
                        continue;
                    }
                }
            } else {
                Stream::Tcp(tcp)
            };
            let auth = if i == 0 { self.opts.auth.clone() } else { None };
            let target = self.report.target.clone();
            let reply = connect::send_connect(&mut stream, &target, auth.as_ref(), self.opts.step_timeout).await;
            let (ok, detail) = match reply {
                Ok(r) if r.status == 200 => (true, format!("{label} alone: CONNECT {target}: 200")),
                Ok(r) => {
                    let o = error_origin(&r);
                    let why = o.error.unwrap_or_default();
                    (
                        false,
                        format!("{label} alone: CONNECT {target}: {} {} {why}", r.status, r.reason),
                    )
                }
                Err(e) => (false, format!("{label} alone: CONNECT {target}: {e}")),
            };
            self.report.hop_checks.push(Step {
                step: format!("hop {}", i + 1),
                ok,
                ms: ms(started),
                detail,
            });
        }
    }
}

/// Connects to `addr` (`host:port`), from `source` when given.
async fn connect_from(addr: &str, source: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(addr).await;
    };
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, format!("{addr}: no address"));
    for target in tokio::net::lookup_host(addr).await? {
        if target.is_ipv4() != source.is_ipv4() {
            continue;
        }
        let socket = if target.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(std::net::SocketAddr::new(source, 0))?;
        match socket.connect(target).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}
