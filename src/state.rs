//! One generation of runtime state: the validated config plus what is derived from it
//! (resolver with its hosts table, parent health, identity). Swapped whole on reload;
//! connections keep the generation they started with.

use std::sync::Arc;

use crate::config::Config;
use crate::log::LogSender;
use crate::policy::AclRef;
use crate::route::dns::{HostsTable, Resolver};
use crate::route::health::PeerHealth;

pub struct Generation {
    pub config: Arc<Config>,
    /// `visible_hostname`, or the machine's host name.
    pub hostname: String,
    /// Our `Via` entry: `1.1 <hostname> (hopproxy/<version>)`.
    pub via_entry: String,
    pub resolver: Resolver,
    /// Health of `config.peers[i]`, same index.
    pub peer_health: Vec<Arc<PeerHealth>>,
    /// One entry per `access_log` line that writes somewhere.
    pub logs: Vec<AccessLogOutput>,
}

/// Where one `access_log` line's records go, and which transactions it takes.
pub struct AccessLogOutput {
    pub sender: LogSender,
    /// Log only transactions matching all of these (empty = all).
    pub acls: Vec<AclRef>,
}

impl Generation {
    /// Builds the state for `config`. Parent health is carried over by peer name from
    /// `previous`, so a reload neither forgets a dead parent nor revives it blindly.
    pub fn new(
        config: Arc<Config>,
        previous: Option<&Generation>,
        logs: Vec<AccessLogOutput>,
    ) -> std::io::Result<Generation> {
        let hosts = match &config.hosts_file {
            Some(path) => HostsTable::load(path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot read hosts_file {}: {e}", path.display()))
            })?,
            None => HostsTable::default(),
        };
        let hostname = config.visible_hostname.clone().unwrap_or_else(machine_hostname);
        let via_entry = format!("1.1 {hostname} (hopproxy/{})", env!("CARGO_PKG_VERSION"));
        let peer_health = config
            .peers
            .iter()
            .map(|peer| {
                previous
                    .and_then(|prev| {
                        let index = prev
                            .config
                            .peers
                            .iter()
                            .position(|p| p.name == peer.name && p.host == peer.host)?;
                        Some(Arc::clone(&prev.peer_health[index]))
                    })
                    .unwrap_or_default()
            })
            .collect();
        Ok(Generation {
            config,
            hostname,
            via_entry,
            resolver: Resolver::new(hosts),
            peer_health,
            logs,
        })
    }
}

/// The kernel's host name, as Squid uses it when `visible_hostname` is unset.
pub fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
