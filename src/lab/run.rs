//! Running the lab: files, endpoint, `hopproxy run` children, the agent, logs, verdict.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::ENDPOINT_NAME;
use super::certs::Pki;
use super::endpoint::{DEFAULT_KEY, Endpoint, EndpointHandle, EndpointOptions};
use super::process::{ChildGuard, wait_until_listening};
use super::topology::{Hop, Topology};
use crate::agent::backend_cfg::{BACKEND_CFG_NAME, BackendCfg, render};
use crate::agent::{AgentError, AgentOptions, run_agent};
use crate::client::proxy_status::{describe, error_origin};

/// What to build.
#[derive(Debug, Clone)]
pub struct LabPlan {
    pub dir: PathBuf,
    pub hops: usize,
    /// Hop (1-based) that is not started.
    pub fail: Option<usize>,
    /// The `hopproxy` binary to run each hop with.
    pub hopproxy: PathBuf,
    /// TLS on the proxy legs (`lab --tls`).
    pub tls: bool,
}

/// A running lab; dropping it stops every process it started.
pub struct Lab {
    pub topology: Topology,
    pub ca_file: PathBuf,
    pub backend_cfg: PathBuf,
    /// TLS from the agent to proxy 1 (`lab --tls`).
    pub proxy_tls: Option<crate::tls::PeerTls>,
    /// `(hop index, process)`; a hop skipped by `--fail` has none.
    children: Vec<(usize, ChildGuard)>,
    _endpoint: EndpointHandle,
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(transparent)]
    Cert(#[from] super::certs::CertError),
    #[error(transparent)]
    Endpoint(#[from] super::endpoint::EndpointError),
    #[error("{hop} did not start listening within {limit:?}; its stderr:\n{stderr}")]
    HopDidNotStart {
        hop: String,
        limit: Duration,
        stderr: String,
    },
    #[error(transparent)]
    Backend(#[from] crate::agent::BackendCfgError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let what = what.into();
    move |source| LabError::Io { what, source }
}

fn write(path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(io(format!("writing {}", path.display())))
}

/// A fresh address block with the endpoint already listening on it. Another lab on the same
/// machine (tests run several at once) may have drawn the same block a moment before: its
/// endpoint then holds the address, and a new block is drawn (at most five times).
fn allocate_with_endpoint(plan: &LabPlan, pki: &Pki) -> Result<(Topology, EndpointHandle), LabError> {
    let mut draws = 0;
    loop {
        let topology = Topology::allocate(&plan.dir, plan.hops).map_err(io("choosing lab addresses"))?;
        match Endpoint::start(topology.endpoint, pki, EndpointOptions::default()) {
            Ok(endpoint) => return Ok((topology, endpoint)),
            Err(super::endpoint::EndpointError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse && draws < 4 =>
            {
                draws += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes every file, starts the endpoint and the hops (last first), and reports each to `out`.
pub fn start(plan: &LabPlan, out: &mut dyn FnMut(&str)) -> Result<Lab, LabError> {
    let pki = Pki::generate(ENDPOINT_NAME, "hopproxy lab CA")?;
    let (mut topology, endpoint) = allocate_with_endpoint(plan, &pki)?;
    topology.tls = plan.tls;
    let pki_files = pki.write(&plan.dir, "endpoint")?;
    write(&topology.hosts_file(), &topology.hosts_text())?;
    let agent_dir = plan.dir.join("agent");
    std::fs::create_dir_all(&agent_dir).map_err(io("creating the agent directory"))?;
    let backend_cfg = agent_dir.join(BACKEND_CFG_NAME);
    let first = &topology.hops[0];
    write(
        &backend_cfg,
        &render(
            ENDPOINT_NAME,
            topology.endpoint.port(),
            DEFAULT_KEY,
            &first.addr.ip().to_string(),
            first.addr.port(),
        ),
    )?;
    for hop in &topology.hops {
        std::fs::create_dir_all(&hop.dir).map_err(io(format!("creating {}", hop.dir.display())))?;
        if plan.tls {
            pki.issue(&hop.name, &hop.dir, "tls")?;
        }
        write(&hop.config_path(), &topology.squid_conf(hop.index))?;
    }

    out("files (read them; they are what goes on real machines):");
    let mut files: Vec<(String, String)> = vec![
        (
            "CA certificate (agent trusts it)".into(),
            pki_files.ca_cert.display().to_string(),
        ),
        (
            "endpoint certificate and key".into(),
            format!("{}, {}", pki_files.leaf_chain.display(), pki_files.leaf_key.display()),
        ),
        (
            format!("hosts_file ({ENDPOINT_NAME})"),
            topology.hosts_file().display().to_string(),
        ),
    ];
    for hop in &topology.hops {
        files.push((
            format!("proxy {} config ({})", hop.index, hop.name),
            hop.config_path().display().to_string(),
        ));
    }
    if plan.tls {
        for hop in &topology.hops {
            files.push((
                format!("proxy {} certificate and key ({})", hop.index, hop.name),
                format!("{}, {}", hop.tls_cert().display(), hop.tls_key().display()),
            ));
        }
    }
    files.push(("agent Backend.cfg".into(), backend_cfg.display().to_string()));
    let width = files.iter().map(|(label, _)| label.chars().count()).max().unwrap_or(0);
    for (label, path) in &files {
        out(&format!("  {label:<width$}  {path}"));
    }
    out("the proxy configs are least privilege: each admits only its one client (the agent, or");
    out("the proxy before it) and only the endpoint; their comments say how to widen them.");
    out("Check an edited copy with: hopproxy check --strict -c FILE");
    if plan.tls {
        out(&format!(
            "TLS on every proxy leg: the agent trusts the CA for proxy 1's https_port; each proxy\n\
             presents its certificate to the next, which demands it (clientca=) and admits only\n\
             that name (user_cert). The agent's TLS leg by hand: hopproxy agent --backend-cfg FILE\n\
             --proxy https://{}:{} --proxy-cacert {ca} --ca-file {ca} ({} maps to {} in your hosts file)",
            topology.hops[0].name,
            topology.hops[0].addr.port(),
            topology.hops[0].name,
            topology.hops[0].addr.ip(),
            ca = pki_files.ca_cert.display(),
        ));
    }

    out(&format!(
        "endpoint {ENDPOINT_NAME} at {} (TLS 1.3, ALPN h2 and http/1.1)",
        topology.endpoint
    ));

    let mut children = Vec::new();
    // Last hop first, so every parent is up before its child starts.
    for hop in topology.hops.iter().rev() {
        if plan.fail == Some(hop.index) {
            out(&format!(
                "proxy {} ({}) at {}: NOT started (--fail {})",
                hop.index, hop.name, hop.addr, hop.index
            ));
            continue;
        }
        let child = start_hop(&plan.hopproxy, hop)?;
        out(&format!(
            "proxy {} ({}) at {}: hopproxy run -c {} (pid {})",
            hop.index,
            hop.name,
            hop.addr,
            hop.config_path().display(),
            child.id().unwrap_or(0)
        ));
        children.push((hop.index, child));
    }
    let proxy_tls = if plan.tls {
        let settings = crate::tls::PeerTls {
            ca_file: Some(pki_files.ca_cert.clone()),
            cert: None,
            key: None,
            domain: Some(topology.hops[0].name.clone()),
            min_version: crate::tls::TlsVersion::default(),
            config: None,
        };
        Some(settings.load().map_err(|e| LabError::Io {
            what: format!("loading the agent's TLS settings: {}", e.message),
            source: std::io::Error::other(e.hint),
        })?)
    } else {
        None
    };
    Ok(Lab {
        topology,
        ca_file: pki_files.ca_cert,
        proxy_tls,
        backend_cfg,
        children,
        _endpoint: endpoint,
    })
}

fn start_hop(hopproxy: &Path, hop: &Hop) -> Result<ChildGuard, LabError> {
    let stderr_path = hop.dir.join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).map_err(io(format!("creating {}", stderr_path.display())))?;
    let mut command = Command::new(hopproxy);
    command
        .arg("run")
        .arg("-c")
        .arg(hop.config_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let mut child = ChildGuard::spawn(&hop.name, &mut command).map_err(io(format!("starting {}", hop.label())))?;
    let limit = Duration::from_secs(5);
    if !wait_until_listening(hop.addr, limit, || child.try_status().is_none()) {
        child.stop();
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        return Err(LabError::HopDidNotStart {
            hop: hop.label(),
            limit,
            stderr,
        });
    }
    Ok(child)
}

/// The outcome of one agent run through the lab.
#[derive(Debug, Clone)]
pub struct LabOutcome {
    pub ok: bool,
    pub connected_line: Option<String>,
    pub verdict: String,
    /// `(hop index, new access-log lines)`.
    pub log_lines: Vec<(usize, Vec<String>)>,
}

impl Lab {
    /// Runs the agent through the chain, collects each hop's new log lines, and judges.
    pub async fn run_agent(&self, requests: u32) -> LabOutcome {
        let before: Vec<usize> = self
            .topology
            .hops
            .iter()
            .map(|h| read_lines(&h.access_log()).len())
            .collect();
        let result = match BackendCfg::load(&self.backend_cfg) {
            Ok(cfg) => {
                let options = AgentOptions {
                    ca_file: Some(self.ca_file.clone()),
                    requests,
                    step_timeout: Duration::from_secs(3),
                    bind_ip: Some(self.topology.agent_ip),
                    proxy_tls: self.proxy_tls.clone(),
                };
                run_agent(&cfg, &options).await
            }
            Err(e) => Err(AgentError::Tls {
                host: ENDPOINT_NAME.into(),
                message: e.to_string(),
            }),
        };
        // A tunnel's line is written when it closes, just after the agent hangs up: wait a little.
        let running: Vec<usize> = self.children.iter().map(|(i, _)| *i).collect();
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut log_lines;
        loop {
            log_lines = self
                .topology
                .hops
                .iter()
                .zip(&before)
                .map(|(h, &n)| {
                    (
                        h.index,
                        read_lines(&h.access_log()).into_iter().skip(n).collect::<Vec<_>>(),
                    )
                })
                .collect::<Vec<_>>();
            let all_logged = log_lines
                .iter()
                .all(|(i, lines)| !running.contains(i) || !lines.is_empty());
            let first_logged = log_lines.first().is_some_and(|(_, l)| !l.is_empty());
            if all_logged || (result.is_err() && first_logged) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        match result {
            Ok(report) => LabOutcome {
                ok: true,
                verdict: format!(
                    "OK: the agent reached {ENDPOINT_NAME}:{} through {} with HTTP/2 ({} POSTs accepted)",
                    self.topology.endpoint.port(),
                    self.topology
                        .hops
                        .iter()
                        .map(|h| h.name.as_str())
                        .collect::<Vec<_>>()
                        .join(" → "),
                    report.statuses.len()
                ),
                connected_line: Some(report.connected_line),
                log_lines,
            },
            Err(e) => LabOutcome {
                ok: false,
                connected_line: None,
                verdict: self.judge(&e),
                log_lines,
            },
        }
    }

    /// Names the hop at fault, from the error the agent got.
    fn judge(&self, error: &AgentError) -> String {
        let t = &self.topology;
        let target = format!("{ENDPOINT_NAME}:{}", t.endpoint.port());
        match error {
            AgentError::Connect {
                what: "proxy", source, ..
            } => {
                format!(
                    "FAIL at {}: the agent cannot connect to it: {source}",
                    t.hops[0].label()
                )
            }
            AgentError::ProxyRefused { reply, .. } => {
                let origin = error_origin(reply);
                let kind = origin
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("status {}", reply.status));
                let reporter = origin.proxy.as_deref().and_then(|n| t.hop_named(n));
                let unreachable = origin.failed_address.as_deref().and_then(|a| t.hop_at(a));
                let details = origin.details.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
                let said = format!(
                    "{} {} {}",
                    reply.status,
                    reply.reason,
                    origin.squid_error.as_deref().unwrap_or("")
                );
                match (reporter, unreachable) {
                    (_, Some(dead)) => format!(
                        "FAIL at {}: {} reported {kind}{details} ({})",
                        dead.label(),
                        reporter.map_or("the proxy before it".to_string(), Hop::label),
                        said.trim()
                    ),
                    (Some(hop), None) => {
                        format!(
                            "FAIL at {}: it {}{details} ({})",
                            hop.label(),
                            describe(&kind, &target),
                            said.trim()
                        )
                    }
                    (None, None) => format!("FAIL: the chain answered {}{details}", said.trim()),
                }
            }
            other => format!("FAIL: {other}"),
        }
    }

    /// A curl command through the whole chain, ready to paste.
    pub fn curl_command(&self) -> String {
        let t = &self.topology;
        let first = &t.hops[0];
        let proxy = if t.tls {
            format!(
                "--proxy https://{name}:{port} --resolve {name}:{port}:{ip} --proxy-cacert {ca}",
                name = first.name,
                port = first.addr.port(),
                ip = first.addr.ip(),
                ca = self.ca_file.display()
            )
        } else {
            format!("-x http://{}", first.addr)
        };
        format!(
            "curl --interface {} {proxy} --cacert {} https://{ENDPOINT_NAME}:{}/",
            t.agent_ip,
            self.ca_file.display(),
            t.endpoint.port()
        )
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Renders the outcome for the terminal.
pub fn render_outcome(lab: &Lab, outcome: &LabOutcome) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "agent ({}):", lab.topology.agent_ip);
    match &outcome.connected_line {
        Some(line) => {
            let _ = writeln!(
                s,
                "  INFO | {ENDPOINT_NAME}:{} | Backend | {line}",
                lab.topology.endpoint.port()
            );
        }
        None => {
            let _ = writeln!(s, "  (not connected)");
        }
    }
    for (index, lines) in &outcome.log_lines {
        let hop = &lab.topology.hops[index - 1];
        let _ = writeln!(
            s,
            "proxy {index} ({}) new lines in {}:",
            hop.name,
            hop.access_log().display()
        );
        if lines.is_empty() {
            let _ = writeln!(s, "  (none)");
        }
        for line in lines {
            let _ = writeln!(s, "  {line}");
        }
    }
    let _ = writeln!(s, "verdict: {}", outcome.verdict);
    s
}
