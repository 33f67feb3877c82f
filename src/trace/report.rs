//! What a trace saw: timed steps, proxies' error answers, TLS facts, and where it failed.
//! `--json` prints [`TraceReport`] exactly.

use serde::Serialize;

use crate::client::proxy_status::ErrorOrigin;

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
