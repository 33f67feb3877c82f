//! `hopproxy trace`: walk a proxy chain the way the agent does and name the hop that fails.
//!
//! Steps, each timed: TCP to the first proxy; one CONNECT per proxy (client-side chaining when
//! several `--proxy` are given); TLS (subject, issuer, trust, name); ALPN; optionally one
//! request. With several proxies each hop is also tried on its own from here.

pub mod proxy_status;
pub mod tls_probe;
pub mod x509;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::agent::connect::{self, ConnectReply, ProxyAuth};
use proxy_status::{ErrorOrigin, describe, error_origin};

#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// A proxy of the chain, in order from here (repeat for each hop).
    #[arg(long = "proxy", value_name = "HOST:PORT")]
    pub proxies: Vec<String>,
    /// The destination, e.g. ingress-orange-saas.instana.io:443.
    #[arg(value_name = "TARGET_HOST:PORT", required_unless_present = "backend_cfg")]
    pub target: Option<String>,
    /// Take target, proxy and key from the agent's Backend.cfg.
    #[arg(long = "backend-cfg", value_name = "FILE", conflicts_with_all = ["proxies", "target"])]
    pub backend_cfg: Option<PathBuf>,
    /// Trust this CA (PEM) instead of the system roots.
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also send one request through the tunnel (a POST with the key when it comes from Backend.cfg).
    #[arg(long)]
    pub request: bool,
    /// Limit for each step, in seconds.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

/// Everything trace needs to know.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// `host:port` of each proxy, first = the one this machine talks to.
    pub proxies: Vec<String>,
    pub target_host: String,
    pub target_port: u16,
    pub ca_file: Option<PathBuf>,
    /// Credentials for the first proxy.
    pub auth: Option<ProxyAuth>,
    /// Agent key for the optional request (POST instead of GET).
    pub key: Option<String>,
    pub request: bool,
    pub step_timeout: Duration,
}

/// One timed step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: String,
    pub ok: bool,
    pub ms: f64,
    pub detail: String,
}

/// Where and why the path failed.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// 1-based proxy number; `None` when the destination itself is at fault.
    pub hop: Option<usize>,
    pub hop_name: Option<String>,
    pub hop_address: Option<String>,
    /// RFC 9209-style type (`connection_refused`, `http_request_denied`, `tls_untrusted`, `no_h2`, …).
    pub error: String,
    /// One sentence naming the hop and the reason.
    pub reason: String,
}

/// TLS facts.
#[derive(Debug, Clone, Serialize)]
pub struct TlsFacts {
    pub version: String,
    pub subject: String,
    pub issuer: String,
    pub dns_names: Vec<String>,
    pub trusted: bool,
    pub name_matches: bool,
    pub verifier_error: Option<String>,
    pub alpn: Option<String>,
}

/// The whole result; `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct TraceReport {
    pub target: String,
    pub proxies: Vec<String>,
    pub ok: bool,
    pub steps: Vec<Step>,
    /// Error answers from proxies, with what they say about their origin.
    pub proxy_errors: Vec<ProxyErrorFacts>,
    pub tls: Option<TlsFacts>,
    /// Each proxy tried alone from here (only with several proxies).
    pub hop_checks: Vec<Step>,
    pub failure: Option<Failure>,
    pub verdict: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProxyErrorFacts {
    pub hop: usize,
    pub status: u16,
    pub reason: String,
    pub proxy_status: Option<String>,
    pub via: Option<String>,
    pub x_squid_error: Option<String>,
    pub origin: ErrorOrigin,
}

struct Tracer {
    opts: TraceOptions,
    report: TraceReport,
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
    fn step(&mut self, step: &str, ok: bool, started: Instant, detail: String) {
        self.report.steps.push(Step {
            step: step.to_string(),
            ok,
            ms: ms(started),
            detail,
        });
    }

    fn fail(&mut self, hop: Option<usize>, name: Option<String>, error: &str, reason: String) {
        let hop_address = hop.and_then(|h| self.opts.proxies.get(h - 1).cloned());
        self.report.failure = Some(Failure {
            hop,
            hop_name: name,
            hop_address,
            error: error.to_string(),
            reason,
        });
    }

    fn hop_label(&self, hop: usize, name: Option<&str>) -> String {
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
        match tokio::time::timeout(t, TcpStream::connect(first.as_str())).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")),
        }
    }

    /// A stream tunnelled through proxies 1..=upto (each CONNECT to the next proxy), or None.
    async fn open_chain(&self, upto: usize) -> Option<TcpStream> {
        let mut stream = self.dial_first().await.ok()?;
        for k in 1..upto {
            let auth = if k == 1 { self.opts.auth.as_ref() } else { None };
            let reply = connect::send_connect(&mut stream, &self.opts.proxies[k], auth, self.opts.step_timeout)
                .await
                .ok()?;
            if reply.status != 200 {
                return None;
            }
        }
        Some(stream)
    }

    /// Asks proxy `hop` for its own name with a request every proxy must refuse itself
    /// (CONNECT to port 0); its error answer names it. Costs one log line on that proxy.
    async fn probe_name(&self, hop: usize) -> Option<String> {
        let mut stream = self.open_chain(hop).await?;
        let reply = connect::send_connect(
            &mut stream,
            "hopproxy-trace-name-probe.invalid:0",
            None,
            self.opts.step_timeout,
        )
        .await
        .ok()?;
        error_origin(&reply).proxy
    }

    async fn run(&mut self) {
        let n = self.opts.proxies.len();
        let first_label = if n > 0 {
            format!("proxy 1 ({})", self.opts.proxies[0])
        } else {
            self.report.target.clone()
        };
        let started = Instant::now();
        let mut stream = match self.dial_first().await {
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
                    let mut detail = format!("CONNECT {next} via {label}: {} {}", reply.status, reply.reason);
                    for h in ["Proxy-Status", "X-Squid-Error", "Via"] {
                        if let Some(v) = reply.header(h) {
                            detail.push_str(&format!("; {h}: {v}"));
                        }
                    }
                    self.step("connect", false, started, detail);
                    self.diagnose(k, &next, &next_label, reply).await;
                    return;
                }
            }
        }
        self.tls_and_request(stream).await;
    }

    /// Names the hop behind an error answer to the CONNECT sent to proxy `k` for `next`.
    async fn diagnose(&mut self, k: usize, next: &str, next_label: &str, reply: ConnectReply) {
        let origin = error_origin(&reply);
        self.report.proxy_errors.push(ProxyErrorFacts {
            hop: k,
            status: reply.status,
            reason: reply.reason.clone(),
            proxy_status: reply.header("proxy-status"),
            via: reply.header("via"),
            x_squid_error: reply.header("x-squid-error"),
            origin: origin.clone(),
        });
        let error = origin.error.clone().unwrap_or_else(|| format!("http_{}", reply.status));
        let k_name = self.probe_name(k).await;
        let from_hop_k = match (&origin.proxy, &k_name) {
            _ if origin.relayed_from_parent => false,
            (None, _) => true,
            (Some(o), Some(kn)) => o.eq_ignore_ascii_case(kn),
            // Hop k did not name itself: assume the answer is its own.
            (Some(_), None) => true,
        };
        let details = origin.details.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
        let squid = origin
            .squid_error
            .as_deref()
            .map(|s| format!(" [{s}]"))
            .unwrap_or_default();
        let connectish = matches!(
            error.as_str(),
            "connection_refused" | "connection_timeout" | "destination_ip_unroutable"
        );
        if from_hop_k {
            let name = k_name.or(origin.proxy.clone());
            let label = self.hop_label(k, name.as_deref());
            if k < self.opts.proxies.len() && connectish {
                // We asked proxy k for proxy k+1's address: the next proxy is what is unreachable.
                let reason = format!("{label} {}{details}{squid}", describe(&error, next_label));
                let next_addr = self.opts.proxies[k].clone();
                self.fail(Some(k + 1), None, &error, reason);
                if let Some(f) = self.report.failure.as_mut() {
                    f.hop_address = Some(next_addr);
                }
                return;
            }
            let what = match &origin.failed_address {
                Some(addr) if !next.starts_with(addr.as_str()) && connectish => {
                    format!("{addr} (its next hop: a parent proxy, or the address of {next})")
                }
                _ => next_label.to_string(),
            };
            let reason = format!("{label} {}{details}{squid}", describe(&error, &what));
            self.fail(Some(k), name, &error, reason);
        } else {
            let name = origin.proxy.clone();
            let beyond = k + 1;
            let label = format!(
                "proxy {beyond} ({}, a parent of proxy {k})",
                name.as_deref().unwrap_or("unnamed")
            );
            let reason = format!("{label} {}{details}{squid}", describe(&error, next_label));
            self.fail(Some(beyond), name, &error, reason);
            if let Some(f) = self.report.failure.as_mut() {
                f.hop_address = None;
            }
        }
    }

    async fn tls_and_request(&mut self, stream: TcpStream) {
        let host = self
            .opts
            .target_host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let started = Instant::now();
        let roots = match crate::agent::tls::root_store(self.opts.ca_file.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                self.step("tls", false, started, e.to_string());
                self.fail(None, None, "tls_setup", e.to_string());
                return;
            }
        };
        let verifier = match tls_probe::RecordingVerifier::new(roots) {
            Ok(v) => v,
            Err(e) => {
                self.fail(None, None, "tls_setup", e);
                return;
            }
        };
        let mut config = match rustls::ClientConfig::builder_with_provider(crate::lab::certs::provider())
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        {
            Ok(b) => b
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_no_client_auth(),
            Err(e) => {
                self.fail(None, None, "tls_setup", e.to_string());
                return;
            }
        };
        // Offer both so a missing h2 is reported as such rather than as a handshake failure.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let Ok(name) = ServerName::try_from(host.clone()) else {
            self.fail(
                None,
                None,
                "tls_setup",
                format!("'{host}' is not a valid TLS server name"),
            );
            return;
        };
        let handshake = TlsConnector::from(Arc::new(config)).connect(name, stream);
        let tls = match tokio::time::timeout(self.opts.step_timeout, handshake).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                self.step("tls", false, started, format!("TLS handshake with {host}: {e}"));
                self.fail(
                    None,
                    None,
                    "tls_protocol_error",
                    format!("the TLS handshake with {host} failed: {e}"),
                );
                return;
            }
            Err(_) => {
                self.step(
                    "tls",
                    false,
                    started,
                    format!("TLS handshake with {host}: no answer in time"),
                );
                self.fail(
                    None,
                    None,
                    "tls_timeout",
                    format!("no TLS answer from {host} through the tunnel"),
                );
                return;
            }
        };
        let conn = tls.get_ref().1;
        let cert = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| x509::summarize(c))
            .unwrap_or_default();
        let version = conn
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string();
        let alpn = conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).to_string());
        let verdict = verifier.verdict();
        let name_ok = tls_probe::name_matches(&host, &cert.dns_names);
        let (trusted, verifier_error) = match &verdict {
            Some(Ok(())) => (true, None),
            Some(Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            ))) => (
                true,
                verdict.as_ref().and_then(|v| v.as_ref().err()).map(|e| e.to_string()),
            ),
            Some(Err(e)) => (false, Some(e.to_string())),
            None => (false, Some("no certificate was checked".into())),
        };
        let facts = TlsFacts {
            version: version.clone(),
            subject: cert.subject.clone(),
            issuer: cert.issuer.clone(),
            dns_names: cert.dns_names.clone(),
            trusted,
            name_matches: name_ok,
            verifier_error: verifier_error.clone(),
            alpn: alpn.clone(),
        };
        self.report.tls = Some(facts);
        let detail = format!(
            "TLS handshake with {host}: {version}, subject {}, issuer {}, {}, {}",
            cert.subject,
            cert.issuer,
            if trusted { "trusted" } else { "NOT trusted" },
            if name_ok { "name matches" } else { "name does NOT match" }
        );
        self.step("tls", trusted && name_ok, started, detail);
        if !trusted {
            let why = verifier_error.unwrap_or_default();
            let trust = match &self.opts.ca_file {
                Some(p) => format!("the CA in {}", p.display()),
                None => "the system roots".to_string(),
            };
            let reason = format!(
                "the certificate presented for {host} (issuer {}) is not trusted by {trust} ({why}): possible TLS interception by a proxy",
                cert.issuer
            );
            self.fail(None, None, "tls_untrusted", reason);
            return;
        }
        if !name_ok {
            let reason = format!(
                "the certificate presented for {host} is for {:?}, not {host}",
                cert.dns_names
            );
            self.fail(None, None, "tls_name_mismatch", reason);
            return;
        }
        let alpn_ok = alpn.as_deref() == Some("h2");
        self.report.steps.push(Step {
            step: "alpn".into(),
            ok: alpn_ok,
            ms: 0.0,
            detail: format!("ALPN: {}", alpn.as_deref().unwrap_or("none")),
        });
        if self.opts.request {
            self.request(tls, alpn_ok).await;
        }
        if !alpn_ok && self.report.failure.is_none() {
            let reason = format!(
                "{} does not offer HTTP/2 (ALPN {}); the agent needs h2",
                self.report.target,
                alpn.as_deref().unwrap_or("none")
            );
            self.fail(None, None, "no_h2", reason);
        }
    }

    async fn request(&mut self, tls: tokio_rustls::client::TlsStream<TcpStream>, h2: bool) {
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

    /// Each proxy on its own: TCP to it, then CONNECT to the target through it alone.
    async fn hop_checks(&mut self) {
        for (i, proxy) in self.opts.proxies.clone().into_iter().enumerate() {
            let started = Instant::now();
            let label = format!("proxy {} ({proxy})", i + 1);
            let connected = tokio::time::timeout(self.opts.step_timeout, TcpStream::connect(proxy.as_str())).await;
            let mut stream = match connected {
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

/// One request over the tunnel: POST with the key when there is one, else GET /.
async fn send_one(
    tls: tokio_rustls::client::TlsStream<TcpStream>,
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

/// Renders the report for a terminal.
pub fn render_text(report: &TraceReport) -> String {
    let mut out = String::new();
    let via = if report.proxies.is_empty() {
        "directly".to_string()
    } else {
        report
            .proxies
            .iter()
            .enumerate()
            .map(|(i, p)| format!("proxy {} {p}", i + 1))
            .collect::<Vec<_>>()
            .join(" → ")
    };
    out.push_str(&format!("trace {} via {via}\n", report.target));
    for s in &report.steps {
        out.push_str(&format!(
            "  [{}] {:>8.1} ms  {}\n",
            if s.ok { " ok " } else { "FAIL" },
            s.ms,
            s.detail
        ));
    }
    if !report.hop_checks.is_empty() {
        out.push_str("each hop alone, from here:\n");
        for s in &report.hop_checks {
            out.push_str(&format!(
                "  [{}] {:>8.1} ms  {}\n",
                if s.ok { " ok " } else { "FAIL" },
                s.ms,
                s.detail
            ));
        }
    }
    out.push_str(&format!("verdict: {}\n", report.verdict));
    out
}

/// Splits `host:port` (IPv6 in brackets).
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port))
}

fn options_from_args(args: &TraceArgs) -> Result<TraceOptions, String> {
    let step_timeout = Duration::from_secs(args.timeout.max(1));
    if let Some(path) = &args.backend_cfg {
        let cfg = crate::agent::BackendCfg::load(path).map_err(|e| e.to_string())?;
        let (proxies, auth) = match &cfg.proxy {
            Some(p) => (
                vec![connect::authority(&p.host, p.port)],
                p.user.clone().map(|user| ProxyAuth {
                    user,
                    password: p.password.clone().unwrap_or_default(),
                }),
            ),
            None => (Vec::new(), None),
        };
        return Ok(TraceOptions {
            proxies,
            target_host: cfg.host.clone(),
            target_port: cfg.port,
            ca_file: args.ca_file.clone(),
            auth,
            key: Some(cfg.key.clone()),
            request: args.request,
            step_timeout,
        });
    }
    let target = args.target.as_deref().ok_or("a TARGET_HOST:PORT is needed")?;
    let (target_host, target_port) = split_host_port(target).ok_or(format!("'{target}' is not HOST:PORT"))?;
    for p in &args.proxies {
        split_host_port(p).ok_or(format!("--proxy '{p}' is not HOST:PORT"))?;
    }
    Ok(TraceOptions {
        proxies: args.proxies.clone(),
        target_host,
        target_port,
        ca_file: args.ca_file.clone(),
        auth: None,
        key: None,
        request: args.request,
        step_timeout,
    })
}

pub fn run_command(args: TraceArgs) -> ExitCode {
    let opts = match options_from_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("trace: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("trace: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let report = runtime.block_on(trace(opts));
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("trace: {e}"),
        }
    } else {
        print!("{}", render_text(&report));
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
