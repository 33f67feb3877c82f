//! A real Squid (5.x) as a peer in tests and labs: one foreground process per proxy.
//!
//! Squid run as root drops to its compiled-in user (`proxy` on Debian), so the run directory is
//! made world-writable; everything it writes (pid, cache.log, access.log) stays in that directory.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::{ChildGuard, wait_until_listening};

/// A running Squid, killed when dropped.
pub struct Squid {
    pub name: String,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub access_log: PathBuf,
    child: ChildGuard,
    service: String,
    /// The local resolver this Squid asks, unless its rules name their own `dns_nameservers`.
    _dns: Option<super::dns_stub::DnsStub>,
}

#[derive(Debug, thiserror::Error)]
pub enum SquidError {
    #[error("squid is not installed (not found on PATH or in /usr/sbin); install it: apt-get install squid")]
    NotInstalled,
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("squid {name} did not listen on {addr} within {limit:?}; end of {cache_log}:\n{tail}")]
    NotListening {
        name: String,
        addr: SocketAddr,
        limit: Duration,
        cache_log: PathBuf,
        tail: String,
    },
}

/// The squid binary, searched on PATH and in the sbin directories Debian uses.
pub fn squid_binary() -> Result<PathBuf, SquidError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()])
        .map(|dir: PathBuf| dir.join("squid"))
        .find(|candidate| candidate.is_file())
        .ok_or(SquidError::NotInstalled)
}

impl Squid {
    /// Starts `squid -N` named `name` on `addr` with `rules` (ACLs, http_access, cache_peer, …)
    /// plus the lab settings, in `<parent_dir>/<name>/`, and waits until it listens.
    pub fn start(name: &str, addr: SocketAddr, rules: &str, parent_dir: &Path) -> Result<Squid, SquidError> {
        let binary = squid_binary()?;
        let io = |what: String| move |source| SquidError::Io { what, source };
        let dir = parent_dir.join(name);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .map_err(io(format!("chmod {}", dir.display())))?;
        let access_log = dir.join("access.log");
        let cache_log = dir.join("cache.log");
        let d = dir.display();
        // Squid asks DNS for every client (PTR) and every name not in its hosts file: point it at
        // a stub on its own address so no query ever leaves this machine.
        let (dns, dns_line) = if rules.contains("dns_nameservers") {
            (None, String::new())
        } else {
            let stub = super::dns_stub::DnsStub::try_start(SocketAddr::new(addr.ip(), 53))
                .map_err(io(format!("starting a DNS stub on {}:53 for squid", addr.ip())))?;
            (Some(stub), format!("dns_nameservers {}\n", addr.ip()))
        };
        let rules = format!("{dns_line}{rules}");
        let text = format!(
            "# {name}: generated for a hopproxy test/lab\n\
             http_port {addr}\n\
             visible_hostname {name}\n\
             {rules}\n\
             access_log stdio:{access} squid\n\
             cache_log {cache}\n\
             pid_filename {d}/squid.pid\n\
             coredump_dir {d}\n\
             cache deny all\n\
             pinger_enable off\n\
             shutdown_lifetime 1 seconds\n\
             dns_timeout 5 seconds\n",
            access = access_log.display(),
            cache = cache_log.display(),
        );
        let config = dir.join("squid.conf");
        std::fs::write(&config, text).map_err(io(format!("writing {}", config.display())))?;
        // Squid names its shared-memory segments after the service name: two instances with
        // the same name collide (`shm_open(/squid-cf__metadata.shm): File exists`).
        let service: String = format!("hp{}p{}", addr.ip(), addr.port())
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let mut command = Command::new(binary);
        command.arg("-N").arg("-n").arg(&service).arg("-f").arg(&config);
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = ChildGuard::spawn(name, &mut command).map_err(io("starting squid".to_string()))?;
        let limit = Duration::from_secs(15);
        if !wait_until_listening(addr, limit, || child.try_status().is_none()) {
            child.stop();
            remove_shm(&service);
            let text = std::fs::read_to_string(&cache_log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(8)..].join("\n");
            return Err(SquidError::NotListening {
                name: name.to_string(),
                addr,
                limit,
                cache_log,
                tail,
            });
        }
        Ok(Squid {
            name: name.to_string(),
            addr,
            dir,
            config,
            access_log,
            child,
            service,
            _dns: dns,
        })
    }

    /// The access log so far.
    pub fn access_log_text(&self) -> String {
        std::fs::read_to_string(&self.access_log).unwrap_or_default()
    }

    /// Stops this Squid now (it is also stopped on drop).
    pub fn stop(&mut self) {
        self.child.stop();
        remove_shm(&self.service);
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A killed Squid cannot unlink its shared-memory segments (`/dev/shm/<service>-cf__*.shm`);
/// the service name is unique to this instance, so removing them touches nothing else.
fn remove_shm(service: &str) {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    let prefix = format!("{service}-");
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
