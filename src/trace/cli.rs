//! The `hopproxy trace` command line: arguments, options from them, the exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{TraceOptions, render_text, trace};
use crate::client::connect::{self, ProxyAuth};
use crate::client::proxy_url::{ProxyTlsArgs, ProxyUrl};

#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// A proxy of the chain, in order from here (repeat for each hop); `https://HOST:PORT`
    /// for a first proxy that speaks TLS (an https_port).
    #[arg(long = "proxy", value_name = "[https://]HOST:PORT")]
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
    #[command(flatten)]
    pub proxy_tls: ProxyTlsArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also send one request through the tunnel (a POST with the key when it comes from Backend.cfg).
    #[arg(long)]
    pub request: bool,
    /// Limit for each step, in seconds.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
    /// Connect from this local address (as curl's --interface), so the proxies' `src` ACLs
    /// see the address the agent has.
    #[arg(long, value_name = "IP")]
    pub interface: Option<std::net::IpAddr>,
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
        let proxy_tls = args.proxy_tls.settings(false)?;
        return Ok(TraceOptions {
            proxies,
            proxy_tls,
            target_host: cfg.host.clone(),
            target_port: cfg.port,
            ca_file: args.ca_file.clone(),
            auth,
            key: Some(cfg.key.clone()),
            request: args.request,
            source: args.interface,
            step_timeout,
        });
    }
    let target = args.target.as_deref().ok_or("a TARGET_HOST:PORT is needed")?;
    let (target_host, target_port) = split_host_port(target).ok_or(format!("'{target}' is not HOST:PORT"))?;
    let mut proxies = Vec::new();
    let mut first_tls = false;
    for (i, p) in args.proxies.iter().enumerate() {
        let url = ProxyUrl::parse(p)?;
        if url.tls && i > 0 {
            return Err(format!("--proxy '{p}': only the first proxy may be https:// here"));
        }
        first_tls |= url.tls;
        proxies.push(url.authority());
    }
    let proxy_tls = args.proxy_tls.settings(first_tls)?;
    Ok(TraceOptions {
        proxies,
        proxy_tls,
        target_host,
        target_port,
        ca_file: args.ca_file.clone(),
        auth: None,
        key: None,
        request: args.request,
        source: args.interface,
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
