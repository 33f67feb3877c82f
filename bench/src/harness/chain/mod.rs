//! The setups, and starting/stopping the proxy chain of one.

pub mod conf;
pub mod proxy;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hopproxy::lab::certs::Pki;
use proxy::ProxyProc;
use rustls::pki_types::ServerName;

use super::client::{ProxyTls, Route};
use super::procfs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Setup {
    Direct,
    Hop1,
    Hop2,
    /// hopproxy, client → hop 1 over TLS (`https_port`).
    #[value(name = "hop1tls")]
    Hop1Tls,
    /// hopproxy, TLS on both proxy legs, mTLS between the proxies (`cache_peer … tls`, `clientca=`).
    #[value(name = "hop2tls")]
    Hop2Tls,
    Squid1,
    Squid2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Hopproxy,
    Squid,
}

/// Loopback address of the sink; proxies get their own, so their logs show distinct hops.
pub const SINK_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 240);

impl Setup {
    pub const ALL: [Setup; 7] = [
        Setup::Direct,
        Setup::Hop1,
        Setup::Hop2,
        Setup::Hop1Tls,
        Setup::Hop2Tls,
        Setup::Squid1,
        Setup::Squid2,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Setup::Direct => "direct",
            Setup::Hop1 => "hopproxy_1hop",
            Setup::Hop2 => "hopproxy_2hops",
            Setup::Hop1Tls => "hopproxy_1hop_tls",
            Setup::Hop2Tls => "hopproxy_2hops_tls",
            Setup::Squid1 => "squid_1hop",
            Setup::Squid2 => "squid_2hops",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Setup::Direct => "direct",
            Setup::Hop1 => "hopproxy 1",
            Setup::Hop2 => "hopproxy 2",
            Setup::Hop1Tls => "TLS hop 1",
            Setup::Hop2Tls => "TLS hop 2",
            Setup::Squid1 => "Squid 1",
            Setup::Squid2 => "Squid 2",
        }
    }

    fn kind(self) -> Option<Kind> {
        match self {
            Setup::Direct => None,
            Setup::Hop1 | Setup::Hop2 | Setup::Hop1Tls | Setup::Hop2Tls => Some(Kind::Hopproxy),
            Setup::Squid1 | Setup::Squid2 => Some(Kind::Squid),
        }
    }

    /// Listen addresses, client-facing hop first.
    fn hop_ips(self) -> &'static [u8] {
        match self {
            Setup::Direct => &[],
            Setup::Hop1 => &[241],
            Setup::Hop2 => &[242, 243],
            Setup::Squid1 => &[244],
            Setup::Squid2 => &[245, 246],
            Setup::Hop1Tls => &[247],
            Setup::Hop2Tls => &[248, 249],
        }
    }

    /// TLS on the proxy legs: `https_port` everywhere, `cache_peer … tls` with mTLS between hops.
    pub fn tls(self) -> bool {
        matches!(self, Setup::Hop1Tls | Setup::Hop2Tls)
    }
}

/// The programs and the directory under which each chain gets its own run directory.
pub struct Env {
    pub hopproxy: PathBuf,
    pub squid: PathBuf,
    pub base: PathBuf,
    /// `--delay-pool`: the rate of the one pool the client-facing hop puts every client in.
    pub delay_pool: Option<u64>,
}

/// A running chain; dropping it kills its processes.
pub struct Chain {
    /// Client-facing hop first.
    procs: Vec<ProxyProc>,
    /// How the harness's clients speak TLS to the first hop, when it listens on `https_port`.
    client_tls: Option<Arc<ProxyTls>>,
}

impl Chain {
    pub fn route(&self) -> Route {
        match (self.procs.first(), &self.client_tls) {
            (None, _) => Route::Direct,
            (Some(p), None) => Route::Via(p.listen),
            (Some(p), Some(tls)) => Route::ViaTls(p.listen, tls.clone()),
        }
    }

    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().filter_map(ProxyProc::pid).collect()
    }

    /// Summed CPU ticks of every process of the chain (and their helpers).
    pub fn cpu_ticks(&self) -> u64 {
        procfs::cpu_ticks(&self.pids())
    }

    /// Stops all hops at once (each gets SIGTERM, then SIGKILL after a grace period).
    pub async fn stop(mut self) {
        for p in &mut self.procs {
            p.terminate();
        }
        for p in self.procs {
            p.stop(Duration::from_secs(4)).await;
        }
    }

    /// Starts the chain for `setup` in `env.base/tag`, last hop first so every parent is
    /// listening before its child starts.
    pub async fn start(setup: Setup, env: &Env, tag: &str) -> Result<Chain, String> {
        let dir = env.base.join(tag);
        make_shared_dir(&dir)?;
        let mut chain = Chain {
            procs: Vec::new(),
            client_tls: None,
        };
        let Some(kind) = setup.kind() else { return Ok(chain) };
        let pki = if setup.tls() {
            let (pki, client_tls) = make_pki(&dir)?;
            chain.client_tls = Some(client_tls);
            Some(pki)
        } else {
            None
        };
        let ca_file = dir.join("ca.pem");
        let ips = setup.hop_ips();
        let listens: Vec<SocketAddr> = ips
            .iter()
            .map(|&last| free_port(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))))
            .collect::<Result<_, _>>()?;
        for i in (0..listens.len()).rev() {
            let name = format!("{}{}", if kind == Kind::Squid { "squid" } else { "hop" }, i + 1);
            let hop_dir = dir.join(&name);
            make_shared_dir(&hop_dir)?;
            let parent_name = (i + 1 < listens.len()).then(|| cert_name(i + 1));
            let tls_files = match &pki {
                Some(pki) => Some(
                    pki.issue(&cert_name(i), &hop_dir, "tls")
                        .map_err(|e| format!("{name} certificate: {e}"))?,
                ),
                None => None,
            };
            let hop = conf::Hop {
                listen: listens[i],
                parent: listens.get(i + 1).copied(),
                dir: &hop_dir,
                name: &name,
                tls: tls_files.as_ref().map(|(cert, key)| conf::HopTls {
                    ca: &ca_file,
                    cert,
                    key,
                    demand_client_cert: i > 0,
                    parent_name: parent_name.as_deref(),
                }),
                delay_pool: env.delay_pool.filter(|_| i == 0),
            };
            let conf_path = hop_dir.join(format!("{name}.conf"));
            let text = match kind {
                Kind::Hopproxy => conf::hopproxy(&hop),
                Kind::Squid => conf::squid(&hop),
            };
            std::fs::write(&conf_path, text).map_err(|e| format!("{}: {e}", conf_path.display()))?;
            let conf_arg = conf_path.to_str().ok_or("run directory is not UTF-8")?;
            let mut p = match kind {
                Kind::Hopproxy => {
                    ProxyProc::spawn(&name, &env.hopproxy, &["run", "-c", conf_arg], listens[i], &hop_dir)?
                }
                Kind::Squid => {
                    // Own service name: no clash with other Squids' shared-memory or pid names.
                    let service =
                        format!("hb{}{tag}{i}", std::process::id()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
                    let service: String = service.chars().take(32).collect();
                    ProxyProc::spawn(
                        &name,
                        &env.squid,
                        &["-N", "-f", conf_arg, "-n", &service],
                        listens[i],
                        &hop_dir,
                    )?
                }
            };
            if let Err(e) = p.wait_ready().await {
                let cache_log = tail(&hop_dir.join("cache.log"));
                return Err(if cache_log.is_empty() {
                    e
                } else {
                    format!("{e}; cache.log: {cache_log}")
                });
            }
            chain.procs.insert(0, p);
        }
        Ok(chain)
    }
}

/// The DNS name in the certificate of hop `index` (from 0): never looked up, the harness and
/// the proxies connect by address and only verify the name.
fn cert_name(index: usize) -> String {
    format!("hop{}.bench.invalid", index + 1)
}

/// A throw-away CA in `dir/ca.pem` (the lab's PKI), and the harness's TLS client that trusts
/// only it and verifies the first hop's name.
fn make_pki(dir: &Path) -> Result<(Pki, Arc<ProxyTls>), String> {
    let pki = Pki::generate(&cert_name(0), "hopproxy bench CA").map_err(|e| format!("bench CA: {e}"))?;
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, pki.ca_pem()).map_err(|e| format!("{}: {e}", ca_file.display()))?;
    let mut config = (*pki
        .client_config(&[b"http/1.1"])
        .map_err(|e| format!("bench TLS client: {e}"))?)
    .clone();
    // Every set-up pays a full handshake, as a new agent process does: no resumed sessions.
    config.resumption = rustls::client::Resumption::disabled();
    let name = ServerName::try_from(cert_name(0)).map_err(|e| format!("bench TLS client: {e}"))?;
    let tls = ProxyTls {
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        name,
    };
    Ok((pki, Arc::new(tls)))
}

/// A port the kernel says is free on `ip` right now (the proxy binds it a moment later).
fn free_port(ip: IpAddr) -> Result<SocketAddr, String> {
    let l = std::net::TcpListener::bind(SocketAddr::new(ip, 0)).map_err(|e| format!("bind {ip}: {e}"))?;
    l.local_addr().map_err(|e| e.to_string())
}

/// Squid started as root drops to user `proxy`: its directories must be writable by anyone.
pub fn make_shared_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).map_err(|e| format!("{}: {e}", dir.display()))
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("FATAL"))
        .collect();
    lines[lines.len().saturating_sub(2)..].join(" | ")
}
