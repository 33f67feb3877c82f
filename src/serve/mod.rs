//! Ingress: listeners, accept loop, limits, request heads, CONNECT and plain HTTP; and the
//! daemon's life cycle (`hopproxy run`): start, signals, graceful shutdown.

pub mod client;
pub mod connect;
pub mod failure;
pub mod forward;
pub mod headers;
pub mod limits;
pub mod listener;
pub mod policy;
pub mod reply;
pub mod target;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::config::{Config, LogTarget};
use crate::log::{LogSender, LogWriter};
use crate::route::health;
use crate::state::Generation;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The squid.conf-style config file.
    #[arg(short = 'c', long = "config", visible_short_alias = 'f')]
    pub config: PathBuf,
}

/// Squid's default when a config has no `access_log` line.
const DEFAULT_ACCESS_LOG: &str = "/var/log/squid/access.log";
/// After the forced end of tunnels, how long their tasks get to write their log lines.
const FINAL_LOG_GRACE: Duration = Duration::from_secs(2);

pub fn run_command(args: RunArgs) -> ExitCode {
    init_tracing();
    let config = match load_config(&args.config) {
        Some(config) => config,
        None => return ExitCode::from(1),
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hopproxy: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hopproxy: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOPPROXY_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Loads and validates; prints every diagnostic to stderr. `None` when the config is invalid.
fn load_config(path: &Path) -> Option<Config> {
    match crate::config::load(path) {
        Ok(loaded) => {
            for d in &loaded.diagnostics {
                eprintln!("{d}");
            }
            Some(loaded.config)
        }
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            eprintln!(
                "hopproxy: {} is not valid; nothing started (run `hopproxy check -c {}` for details)",
                path.display(),
                path.display()
            );
            None
        }
    }
}

fn log_paths(config: &Config) -> Vec<PathBuf> {
    if config.access_logs.is_empty() {
        return vec![PathBuf::from(DEFAULT_ACCESS_LOG)];
    }
    config
        .access_logs
        .iter()
        .filter_map(|l| match &l.target {
            LogTarget::File(p) => Some(p.clone()),
            LogTarget::None => None,
        })
        .collect()
}

/// Runs the proxy until SIGTERM/SIGINT, then shuts down gracefully.
pub async fn run(config: Config) -> std::io::Result<()> {
    let config = Arc::new(config);
    let generation = Arc::new(Generation::new(Arc::clone(&config), None)?);
    let (writer, log) = LogWriter::start(log_paths(&config))?;

    let mut listeners = Vec::new();
    for port in &config.http_ports {
        let listener = listener::bind(port).await.map_err(|e| {
            let addr = port.addr.map_or_else(
                || format!("*:{}", port.port),
                |a| std::net::SocketAddr::new(a, port.port).to_string(),
            );
            std::io::Error::new(e.kind(), format!("{}: cannot listen on {addr}: {e}", port.origin))
        })?;
        tracing::info!("listening on {}", listener.local_addr()?);
        listeners.push(listener);
    }
    let pid_file = write_pid_file(&config)?;
    probe_parents_at_start(&generation);

    let limits = Arc::new(limits::Limits::from_config(&config));
    let (generation_tx, generation_rx) = watch::channel(Arc::clone(&generation));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(listener::Shared {
        generation: generation_rx,
        limits: Arc::clone(&limits),
        log: log.clone(),
        shutdown: shutdown_rx,
    });
    let accept_tasks: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(listener::accept_loop(l, Arc::clone(&shared), stop_rx.clone())))
        .collect();

    wait_for_stop_signal(&log).await?;
    tracing::info!(
        "stopping: no new connections; open ones get up to {:?} (shutdown_lifetime)",
        config.shutdown_lifetime
    );
    let _ = stop_tx.send(true);
    for task in accept_tasks {
        let _ = task.await;
    }
    drain(&limits, config.shutdown_lifetime).await;
    if limits.active() > 0 {
        tracing::info!(
            "closing {} connections still open after shutdown_lifetime",
            limits.active()
        );
        let _ = shutdown_tx.send(true);
        drain(&limits, FINAL_LOG_GRACE).await;
    }
    drop(shared);
    drop(generation_tx);
    drop(log);
    writer.finish();
    if let Some(path) = pid_file {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("stopped");
    Ok(())
}

/// Waits until no client connection is open, or `limit` passed.
async fn drain(limits: &limits::Limits, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while limits.active() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGTERM/SIGINT end the wait; SIGUSR1 reopens the access logs (logrotate) meanwhile.
async fn wait_for_stop_signal(log: &LogSender) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1: reopening access logs");
                log.reopen();
            }
        }
    }
}

fn write_pid_file(config: &Config) -> std::io::Result<Option<PathBuf>> {
    let Some(path) = &config.pid_filename else {
        return Ok(None);
    };
    std::fs::write(path, format!("{}\n", std::process::id()))
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot write pid_filename {}: {e}", path.display())))?;
    Ok(Some(path.clone()))
}

/// Squid probes every parent at start-up; so do we, in the background, marking unreachable
/// ones down (their own probe revives them) so the first requests do not wait on them.
fn probe_parents_at_start(generation: &Arc<Generation>) {
    for (index, peer) in generation.config.peers.iter().enumerate() {
        let generation = Arc::clone(generation);
        let host = peer.host.clone();
        let port = peer.http_port;
        tokio::spawn(async move {
            let Ok(addrs) = generation.resolver.resolve(&host.to_ascii_lowercase()).await else {
                return;
            };
            let sockets: Vec<std::net::SocketAddr> =
                addrs.iter().map(|ip| std::net::SocketAddr::new(*ip, port)).collect();
            for addr in &sockets {
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr)).await
                {
                    return;
                }
            }
            let health = &generation.peer_health[index];
            let name = generation.config.peers[index].name.clone();
            if health.mark_down() {
                tracing::warn!(parent = %name, "parent unreachable at start-up; probing it in the background");
                health::spawn_probe(health, name, sockets);
            }
        });
    }
}
