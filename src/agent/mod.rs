//! `hopproxy agent`: connect like the monitoring agent does, from its Backend.cfg.

pub mod backend_cfg;
pub mod client;
pub mod properties;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub use backend_cfg::{BackendCfg, BackendCfgError, select_backend_files};
pub use client::{AgentError, AgentOptions, AgentReport, run_agent};

#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// The agent's Backend.cfg, or a directory holding Backend.cfg / Backend-N.cfg files.
    #[arg(long = "backend-cfg", value_name = "FILE")]
    pub backend_cfg: PathBuf,
    /// Trust this CA (PEM) instead of the system roots.
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// How many POSTs to send.
    #[arg(long, default_value_t = 1)]
    pub requests: u32,
    /// Use this proxy instead of Backend.cfg's proxy.host/proxy.port (its user and password
    /// stay); `https://HOST:PORT` speaks TLS to it (an https_port).
    #[arg(long, value_name = "[https://]HOST:PORT")]
    pub proxy: Option<String>,
    #[command(flatten)]
    pub proxy_tls: crate::client::proxy_url::ProxyTlsArgs,
}

/// Loads every Backend file named by `path` (a file, or a directory with the Backend-N rule).
pub fn load_backends(path: &std::path::Path) -> Result<Vec<BackendCfg>, BackendCfgError> {
    let files = if path.is_dir() {
        select_backend_files(path)?
    } else {
        vec![path.to_path_buf()]
    };
    files.iter().map(|f| BackendCfg::load(f)).collect()
}

pub fn run_command(args: AgentArgs) -> ExitCode {
    let mut backends = match load_backends(&args.backend_cfg) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("agent: {e}");
            return ExitCode::from(2);
        }
    };
    let proxy = match args
        .proxy
        .as_deref()
        .map(crate::client::proxy_url::ProxyUrl::parse)
        .transpose()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("agent: --proxy {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(url) = &proxy {
        for cfg in &mut backends {
            let (user, password, dns) = cfg
                .proxy
                .as_ref()
                .map_or((None, None, true), |p| (p.user.clone(), p.password.clone(), p.dns));
            cfg.proxy = Some(backend_cfg::ProxyCfg {
                host: url.host.clone(),
                port: url.port,
                user,
                password,
                dns,
            });
        }
    }
    let proxy_tls = match args.proxy_tls.settings(proxy.as_ref().is_some_and(|p| p.tls)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("agent: {e}");
            return ExitCode::from(2);
        }
    };
    let options = AgentOptions {
        ca_file: args.ca_file,
        requests: args.requests,
        step_timeout: Duration::from_secs(10),
        bind_ip: None,
        proxy_tls,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agent: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let mut ok = true;
    for cfg in &backends {
        for note in &cfg.notes {
            eprintln!("agent: note: {note}");
        }
        match runtime.block_on(run_agent(cfg, &options)) {
            Ok(report) => println!("INFO | Backend | {}", report.connected_line),
            Err(e) => {
                ok = false;
                eprintln!("ERROR | Backend | {}: {e}", cfg.path.display());
            }
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
