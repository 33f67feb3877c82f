//! Ingress: listeners, accept loop, limits, request heads, CONNECT and plain HTTP; and the
//! daemon's life cycle (`hopproxy run`): start, signals, graceful shutdown.

pub mod client;
pub mod connect;
pub mod control;
pub mod diagnostics;
pub mod failure;
pub mod forward;
pub mod headers;
pub mod limits;
pub mod listener;
pub mod max_forwards;
pub mod policy;
pub mod privileges;
pub mod proxy_protocol;
pub mod reply;
pub mod sni;
pub mod target;
pub mod transaction;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::config::{Config, LogTarget};
use crate::log::{Format, LogSender, LogWriter};
use crate::metrics::Metrics;
use crate::policy::AclRef;
use crate::route::health;
use crate::state::{AccessLogOutput, Generation};

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
    let config = match load_config(&args.config) {
        Some(config) => config,
        None => return ExitCode::from(1),
    };
    if let Err(e) = diagnostics::init(&config) {
        eprintln!("hopproxy: {e}");
        return ExitCode::from(1);
    }
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
    match runtime.block_on(run(args.config, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hopproxy: {e}");
            ExitCode::from(1)
        }
    }
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

/// The access-log files a config writes to, each with the format and ACLs of its
/// `access_log` line. Without any `access_log` line, Squid's default file.
fn log_outputs(config: &Config) -> Vec<(PathBuf, Format, Vec<AclRef>)> {
    if config.access_logs.is_empty() {
        return vec![(PathBuf::from(DEFAULT_ACCESS_LOG), Format::Native, Vec::new())];
    }
    config
        .access_logs
        .iter()
        .filter_map(|l| match &l.target {
            LogTarget::File(p) => Some((p.clone(), l.format.clone(), l.acls.clone())),
            LogTarget::None => None,
        })
        .collect()
}

/// The running daemon: listeners and log writers, which a reload adjusts.
struct Daemon {
    config_path: PathBuf,
    generation_tx: watch::Sender<Arc<Generation>>,
    shared: Arc<listener::Shared>,
    limits: Arc<limits::Limits>,
    listeners: HashMap<(Option<IpAddr>, u16), watch::Sender<bool>>,
    accept_tasks: Vec<tokio::task::JoinHandle<()>>,
    writers: HashMap<PathBuf, (LogWriter, LogSender)>,
    metrics: Arc<Metrics>,
    /// The `metrics_port` being served and the switch that stops it.
    metrics_port: Option<(SocketAddr, watch::Sender<bool>)>,
}

/// A freshly bound `http_port` listener and its key in [`Daemon::listeners`].
type PortKey = ((Option<IpAddr>, u16), tokio::net::TcpListener);

/// What a config asks of the metrics endpoint, relative to the running one.
enum MetricsPortChange {
    Keep,
    Stop,
    Start(tokio::net::TcpListener),
}

impl Daemon {
    /// Log outputs for `config`, reusing the writers of files already open.
    fn outputs_for(&mut self, config: &Config) -> std::io::Result<Vec<AccessLogOutput>> {
        let wanted = log_outputs(config);
        let mut outputs = Vec::with_capacity(wanted.len());
        for (path, format, acls) in wanted {
            let sender = match self.writers.get(&path) {
                Some((_, sender)) => sender.clone(),
                None => {
                    let (writer, sender) = LogWriter::start(vec![path.clone()])?;
                    self.metrics.watch_log_drops(writer.dropped_counter());
                    self.writers.insert(path.clone(), (writer, sender.clone()));
                    sender
                }
            };
            outputs.push(AccessLogOutput { sender, format, acls });
        }
        Ok(outputs)
    }

    /// Closes writers no current output uses; their threads end once the connections of
    /// older generations are gone and every queued line is written.
    fn retire_unused_writers(&mut self, config: &Config) {
        let used: Vec<PathBuf> = log_outputs(config).into_iter().map(|(p, _, _)| p).collect();
        let unused: Vec<PathBuf> = self.writers.keys().filter(|p| !used.contains(p)).cloned().collect();
        for path in unused {
            if let Some((writer, sender)) = self.writers.remove(&path) {
                drop(sender);
                std::thread::spawn(move || writer.finish());
            }
        }
    }

    /// Starts accepting on every `http_port` of `config` not already open; stops the others.
    /// New ports are bound before anything changes, so a port that cannot be bound leaves
    /// the daemon as it was.
    async fn apply_ports(&mut self, config: &Config) -> std::io::Result<()> {
        let fresh = self.bind_new_ports(config).await?;
        self.start_accepting(config, fresh);
        Ok(())
    }

    /// Binds every `http_port` of `config` not already open, changing nothing else.
    async fn bind_new_ports(&self, config: &Config) -> std::io::Result<Vec<PortKey>> {
        let mut fresh: Vec<PortKey> = Vec::new();
        for port in &config.http_ports {
            let key = (port.addr, port.port);
            if self.listeners.contains_key(&key) || fresh.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let listener = listener::bind(port).await.map_err(|e| {
                let addr = port.addr.map_or_else(
                    || format!("*:{}", port.port),
                    |a| SocketAddr::new(a, port.port).to_string(),
                );
                let hint = listener::bind_hint(&e, port.port);
                std::io::Error::new(e.kind(), format!("{}: cannot listen on {addr}: {e}{hint}", port.origin))
            })?;
            fresh.push((key, listener));
        }
        Ok(fresh)
    }

    /// Accepts on the `fresh` listeners; stops those `config` no longer has.
    fn start_accepting(&mut self, config: &Config, fresh: Vec<PortKey>) {
        let keep: Vec<_> = config.http_ports.iter().map(|p| (p.addr, p.port)).collect();
        self.listeners.retain(|key, stop| {
            let kept = keep.contains(key);
            if !kept {
                tracing::info!("no longer listening on port {}", key.1);
                let _ = stop.send(true);
            }
            kept
        });
        for (key, listener) in fresh {
            match listener.local_addr() {
                Ok(addr) => tracing::info!("listening on {addr}"),
                Err(e) => tracing::warn!("listening on port {}; its address is unknown: {e}", key.1),
            }
            let (stop_tx, stop_rx) = watch::channel(false);
            self.accept_tasks.push(tokio::spawn(listener::accept_loop(
                listener,
                Arc::clone(&self.shared),
                stop_rx,
            )));
            self.listeners.insert(key, stop_tx);
        }
    }

    /// Binds the `metrics_port` of `config` if it differs from the one being served; nothing
    /// changes until [`Daemon::switch_metrics_port`].
    async fn bind_metrics_port(&self, config: &Config) -> std::io::Result<MetricsPortChange> {
        let wanted = config.metrics_port.as_ref().map(|p| {
            (
                SocketAddr::new(p.addr.unwrap_or(IpAddr::from([127, 0, 0, 1])), p.port),
                p,
            )
        });
        let running = self.metrics_port.as_ref().map(|(addr, _)| *addr);
        match wanted {
            None if running.is_none() => Ok(MetricsPortChange::Keep),
            None => Ok(MetricsPortChange::Stop),
            Some((addr, _)) if Some(addr) == running => Ok(MetricsPortChange::Keep),
            Some((addr, port)) => match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => Ok(MetricsPortChange::Start(listener)),
                Err(e) => {
                    let hint = listener::bind_hint(&e, addr.port());
                    Err(std::io::Error::new(
                        e.kind(),
                        format!("{}: cannot serve metrics on {addr}: {e}{hint}", port.origin),
                    ))
                }
            },
        }
    }

    fn switch_metrics_port(&mut self, change: MetricsPortChange) {
        let stop_running = |running: Option<(SocketAddr, watch::Sender<bool>)>| {
            if let Some((addr, stop)) = running {
                tracing::info!("no longer serving metrics on {addr}");
                let _ = stop.send(true);
            }
        };
        match change {
            MetricsPortChange::Keep => {}
            MetricsPortChange::Stop => stop_running(self.metrics_port.take()),
            MetricsPortChange::Start(listener) => {
                stop_running(self.metrics_port.take());
                let Ok(addr) = listener.local_addr() else { return };
                tracing::info!("serving metrics on http://{addr}/metrics");
                let (stop_tx, stop_rx) = watch::channel(false);
                tokio::spawn(crate::metrics::exporter::serve(
                    listener,
                    Arc::clone(&self.metrics),
                    stop_rx,
                ));
                self.metrics_port = Some((addr, stop_tx));
            }
        }
    }

    /// SIGHUP: re-read the config; apply it whole, or keep the running one and say why.
    async fn reload(&mut self) {
        let applied = self.try_reload().await;
        self.metrics.config_reloaded(applied);
    }

    /// The reload itself; true when the new config was applied.
    async fn try_reload(&mut self) -> bool {
        tracing::info!("SIGHUP: reloading {}", self.config_path.display());
        let loaded = match crate::config::load(&self.config_path) {
            Ok(loaded) => loaded,
            Err(diagnostics) => {
                for d in &diagnostics {
                    tracing::error!("{d}");
                }
                tracing::error!(
                    "reload rejected: {} is not valid; the running config is kept",
                    self.config_path.display()
                );
                return false;
            }
        };
        for d in &loaded.diagnostics {
            tracing::warn!("{d}");
        }
        if loaded.config.cache_log.as_deref() != diagnostics::cache_log_path() {
            tracing::warn!("cache_log changed: the new file is used after a restart");
        }
        let config = Arc::new(loaded.config);
        let previous = Arc::clone(&self.generation_tx.borrow());
        let built = match self.outputs_for(&config) {
            Ok(outputs) => Generation::new(Arc::clone(&config), Some(&previous), outputs),
            Err(e) => Err(e),
        };
        let generation = match built {
            Ok(g) => Arc::new(g),
            Err(e) => {
                tracing::error!("reload rejected: {e}; the running config is kept");
                self.retire_unused_writers(&previous.config);
                return false;
            }
        };
        let metrics_port = match self.bind_metrics_port(&config).await {
            Ok(change) => change,
            Err(e) => {
                tracing::error!("reload rejected: {e}; the running config is kept");
                self.retire_unused_writers(&previous.config);
                return false;
            }
        };
        if let Err(e) = self.apply_ports(&config).await {
            tracing::error!("reload rejected: {e}; the running config is kept");
            self.retire_unused_writers(&previous.config);
            return false;
        }
        self.switch_metrics_port(metrics_port);
        self.limits.apply(&config);
        health::probe_at_start(&generation.egress, &generation.config);
        let _ = self.generation_tx.send(generation);
        self.retire_unused_writers(&config);
        tracing::info!("reloaded: new connections use the new config; open ones keep theirs");
        true
    }

    fn reopen_logs(&self) {
        tracing::info!("SIGUSR1: reopening access logs");
        diagnostics::reopen();
        for (_, sender) in self.writers.values() {
            sender.reopen();
        }
    }
}

/// Runs the proxy until SIGTERM/SIGINT, then shuts down gracefully. SIGHUP reloads the
/// config from `config_path`; SIGUSR1 reopens the access logs.
pub async fn run(config_path: PathBuf, config: Config) -> std::io::Result<()> {
    limits::raise_open_files_limit();
    let config = Arc::new(config);
    let limits = Arc::new(limits::Limits::from_config(&config));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // A placeholder generation until the first real one is built (it needs the log writers).
    let (generation_tx, generation_rx) =
        watch::channel(Arc::new(Generation::new(Arc::clone(&config), None, Vec::new())?));
    // Created once: reloads replace generations, never the counters.
    let metrics = Arc::new(Metrics::new());
    metrics.watch_parents(parent_samples(generation_rx.clone()));
    let shared = Arc::new(listener::Shared {
        generation: generation_rx,
        limits: Arc::clone(&limits),
        shutdown: shutdown_rx,
        metrics: Arc::clone(&metrics),
    });
    let mut daemon = Daemon {
        config_path,
        generation_tx,
        shared,
        limits: Arc::clone(&limits),
        listeners: HashMap::new(),
        accept_tasks: Vec::new(),
        writers: HashMap::new(),
        metrics,
        metrics_port: None,
    };
    let outputs = daemon.outputs_for(&config)?;
    let generation = Arc::new(Generation::new(Arc::clone(&config), None, outputs)?);
    let _ = daemon.generation_tx.send(Arc::clone(&generation));
    // Handlers first: once "listening on" is printed (what supervisors and tests wait for), a
    // SIGHUP must reload, not kill the process with the default action.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    // Everything that may need root (ports, logs, pid file) is done before the switch to
    // cache_effective_user, and no client is served before it.
    let switch_to = privileges::plan(&config)?;
    let metrics_port = daemon.bind_metrics_port(&config).await?;
    let fresh_ports = daemon.bind_new_ports(&config).await?;
    let pid_file = write_pid_file(&config)?;
    if let Some(target) = &switch_to {
        privileges::drop_to(target)?;
    }
    daemon.start_accepting(&config, fresh_ports);
    daemon.switch_metrics_port(metrics_port);
    health::probe_at_start(&generation.egress, &generation.config);
    drop(generation);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => daemon.reload().await,
            _ = usr1.recv() => daemon.reopen_logs(),
        }
    }

    let lifetime = daemon.generation_tx.borrow().config.shutdown_lifetime;
    tracing::info!("stopping: no new connections; open ones get up to {lifetime:?} (shutdown_lifetime)");
    for stop in daemon.listeners.values() {
        let _ = stop.send(true);
    }
    daemon.switch_metrics_port(MetricsPortChange::Stop);
    for task in daemon.accept_tasks.drain(..) {
        let _ = task.await;
    }
    drain(&limits, lifetime).await;
    if limits.active() > 0 {
        tracing::info!(
            "closing {} connections still open after shutdown_lifetime",
            limits.active()
        );
        let _ = shutdown_tx.send(true);
        drain(&limits, FINAL_LOG_GRACE).await;
    }
    // Replace the last generation so its log senders are dropped, then flush every writer.
    let _ = daemon
        .generation_tx
        .send(Arc::new(Generation::new(Arc::clone(&config), None, Vec::new())?));
    let Daemon { writers, .. } = daemon;
    for (_, (writer, sender)) in writers {
        drop(sender);
        tokio::task::spawn_blocking(move || writer.finish()).await.ok();
    }
    if let Some(path) = pid_file {
        remove_pid_file(&path);
    }
    tracing::info!("stopped");
    Ok(())
}

/// The parents of the current generation as the metrics show them.
fn parent_samples(
    generation: watch::Receiver<Arc<Generation>>,
) -> impl Fn() -> Vec<crate::metrics::ParentSample> + Send + Sync + 'static {
    move || {
        let generation = Arc::clone(&generation.borrow());
        generation
            .config
            .peers
            .iter()
            .enumerate()
            .map(|(index, peer)| {
                let health = generation.egress.health(index);
                crate::metrics::ParentSample {
                    name: peer.name.clone(),
                    up: !health.is_down(),
                    failures: health.failures_total(),
                }
            })
            .collect()
    }
}

/// Waits until no client connection is open, or `limit` passed.
async fn drain(limits: &limits::Limits, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while limits.active() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes the pid file. An explicit `pid_filename` that cannot be written stops the start;
/// the default file (`/run/hopproxy.pid`, as Squid writes `/run/squid.pid`) is best effort, so
/// a user without write access to /run can still run a proxy in the foreground.
fn write_pid_file(config: &Config) -> std::io::Result<Option<PathBuf>> {
    let Some(path) = config.pid_filename.path() else {
        return Ok(None);
    };
    match std::fs::write(&path, format!("{}\n", std::process::id())) {
        Ok(()) => Ok(Some(path)),
        Err(e) if config.pid_filename == crate::config::PidFilename::Default => {
            tracing::warn!(
                "cannot write the default pid file {}: {e}; set pid_filename to a writable path \
                 (or 'none') for reload, rotate and stop to find this process",
                path.display()
            );
            Ok(None)
        }
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("cannot write pid_filename {}: {e}", path.display()),
        )),
    }
}

/// Removes the pid file unless another process has written its own pid there since.
fn remove_pid_file(path: &Path) {
    let ours = std::fs::read_to_string(path).is_ok_and(|text| text.trim() == std::process::id().to_string());
    if ours {
        let _ = std::fs::remove_file(path);
    }
}
