//! `hopproxy lab`: the seed's whole chain on one machine (endpoint, proxies, agent) in seconds.

pub mod certs;
pub mod dns_stub;
pub mod endpoint;
pub mod process;
pub mod run;
pub mod squid;
pub mod topology;

use std::path::PathBuf;
use std::process::ExitCode;

/// The SaaS endpoint name the seed's agent talks to; the lab maps it with `hosts_file`.
pub const ENDPOINT_NAME: &str = "ingress-orange-saas.instana.io";

#[derive(clap::Args, Debug)]
pub struct LabArgs {
    /// Keep every file here (default: a temporary directory, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Stay up after the check and print a curl command through the chain; Ctrl-C, SIGTERM or
    /// SIGHUP stops every process the lab started.
    #[arg(long)]
    pub keep_running: bool,
    /// Number of proxies in the chain.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub hops: u8,
    /// Leave proxy HOP stopped, to see what a broken chain looks like.
    #[arg(long, value_name = "HOP")]
    pub fail: Option<u8>,
    /// TLS on every proxy leg: the agent speaks TLS to proxy 1's https_port, and each proxy
    /// presents its own certificate to the next (mTLS, `cache_peer … tls` → `clientca=`).
    #[arg(long)]
    pub tls: bool,
}

/// A directory removed when dropped (the default lab directory).
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> std::io::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("hopproxy-lab-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run_command(args: LabArgs) -> ExitCode {
    if let Some(f) = args.fail
        && (f == 0 || f > args.hops)
    {
        eprintln!("lab: --fail {f}: there are only hops 1 to {}", args.hops);
        return ExitCode::from(2);
    }
    let (dir, temp_dir) = match &args.dir {
        Some(d) => match std::fs::create_dir_all(d).and_then(|_| std::fs::canonicalize(d)) {
            Ok(d) => (d, None),
            Err(e) => {
                eprintln!("lab: {}: {e}", d.display());
                return ExitCode::from(2);
            }
        },
        None => match TempDir::create() {
            Ok(t) => (t.0.clone(), Some(t)),
            Err(e) => {
                eprintln!("lab: creating a temporary directory: {e}");
                return ExitCode::from(1);
            }
        },
    };
    let hopproxy = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("lab: finding the hopproxy binary: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lab: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let plan = run::LabPlan {
        dir,
        hops: args.hops as usize,
        fail: args.fail.map(usize::from),
        hopproxy,
        tls: args.tls,
    };
    let keep_running = args.keep_running;
    let temporary = temp_dir.is_some();
    // Everything that owns a process lives inside this future: Ctrl-C drops it, which kills them.
    let lab = async move {
        println!(
            "hopproxy lab: agent → {} proxies → endpoint, files in {}",
            plan.hops,
            plan.dir.display()
        );
        if temporary {
            println!("  (a temporary directory, removed when the lab ends; --dir DIR keeps the files)");
        }
        let lab = match run::start(&plan, &mut |line| println!("{line}")) {
            Ok(lab) => lab,
            Err(e) => {
                println!("verdict: FAIL: the lab could not start: {e}");
                return ExitCode::from(1);
            }
        };
        let outcome = lab.run_agent(3).await;
        print!("{}", run::render_outcome(&lab, &outcome));
        if keep_running {
            println!(
                "\nThe chain stays up. Try it (Ctrl-C or SIGTERM stops every process):\n  {}",
                lab.curl_command()
            );
            std::future::pending::<()>().await;
        }
        if outcome.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    };
    let code = runtime.block_on(async {
        tokio::select! {
            code = lab => code,
            signal = stop_signal() => {
                println!("\nlab: {signal}; stopping every process it started");
                ExitCode::from(130)
            }
        }
    });
    if let Some(temp) = temp_dir {
        let path = temp.0.clone();
        drop(temp);
        println!("lab: removed {}", path.display());
    }
    code
}

/// The first of SIGINT (Ctrl-C), SIGTERM (kill, systemd, a closing terminal multiplexer) and
/// SIGHUP (the terminal went away): each stops the lab the same way. When a handler cannot be
/// installed, that signal keeps its default action, which ends the lab too (without cleanup).
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    tokio::select! {
        _ = next(&mut int) => "interrupted",
        _ = next(&mut term) => "SIGTERM",
        _ = next(&mut hup) => "SIGHUP",
    }
}
