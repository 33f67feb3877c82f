//! `hopproxy trace`: walk a proxy chain the way the agent does and name the hop that fails.
//!
//! Steps, each timed: TCP to the first proxy; one CONNECT per proxy (client-side chaining when
//! several `--proxy` are given); TLS (subject, issuer, trust, name); ALPN; optionally one
//! request. With several proxies each hop is also tried on its own from here.
//!
//! [`tracer`] walks the chain, `diagnose` names the hop behind an error answer, `tls_step`
//! and `request` run the last steps through the tunnel ([`tls_probe`] and `crate::tls::x509` help the
//! TLS step), [`report`] holds what was seen and [`render`] prints it; [`cli`] is the command
//! line.

pub mod cli;
mod diagnose;
pub mod render;
pub mod report;
mod request;
pub mod tls_probe;
mod tls_step;
pub mod tracer;

use std::path::PathBuf;
use std::time::Duration;

use crate::client::connect::ProxyAuth;

pub use cli::{TraceArgs, run_command, split_host_port};
pub use render::render_text;
pub use report::{Failure, ProxyErrorFacts, Step, TlsFacts, TraceReport};
pub use tracer::trace;

/// Everything trace needs to know.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// `host:port` of each proxy, first = the one this machine talks to.
    pub proxies: Vec<String>,
    /// TLS to the first proxy (`--proxy https://…`), loaded.
    pub proxy_tls: Option<crate::tls::PeerTls>,
    pub target_host: String,
    pub target_port: u16,
    pub ca_file: Option<PathBuf>,
    /// Credentials for the first proxy.
    pub auth: Option<ProxyAuth>,
    /// Agent key for the optional request (POST instead of GET).
    pub key: Option<String>,
    pub request: bool,
    pub step_timeout: Duration,
    /// The local address to connect from (the proxies' `src` ACLs see it); `None` = the
    /// system's choice.
    pub source: Option<std::net::IpAddr>,
}
