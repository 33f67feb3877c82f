//! Route's own runtime state, built from a `Config` and held by each generation: the
//! resolver (with its `hosts_file`) and, per parent, its health and rotation counter.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::dns::{HostsTable, Resolver};
use super::health::PeerHealth;
use crate::config::Config;

/// The state of one `cache_peer`, shared across reloads while the parent keeps its name and host.
#[derive(Debug, Default)]
pub struct PeerState {
    name: String,
    host: String,
    pub health: Arc<PeerHealth>,
    /// Requests sent to this parent, for (weighted) round-robin.
    pub uses: AtomicU64,
}

pub struct Egress {
    pub resolver: Resolver,
    /// `peers[i]` is the state of `config.peers[i]`.
    peers: Vec<Arc<PeerState>>,
}

impl Egress {
    /// Builds the state for `config`, reading its `hosts_file`. Parent state is carried over by
    /// name and host from `previous`, so a reload neither forgets a dead parent nor revives it
    /// blindly, and rotation continues where it was.
    pub fn new(config: &Config, previous: Option<&Egress>) -> std::io::Result<Egress> {
        let hosts = match &config.hosts_file {
            Some(path) => HostsTable::load(path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot read hosts_file {}: {e}", path.display()))
            })?,
            None => HostsTable::default(),
        };
        Ok(Egress::with_resolver(
            config,
            Resolver::new(hosts, &config.dns_nameservers, config.dns_timeout)?,
            previous,
        ))
    }

    pub fn with_resolver(config: &Config, resolver: Resolver, previous: Option<&Egress>) -> Egress {
        let peers = config
            .peers
            .iter()
            .map(|peer| {
                previous
                    .and_then(|prev| prev.peers.iter().find(|p| p.name == peer.name && p.host == peer.host))
                    .map(Arc::clone)
                    .unwrap_or_else(|| {
                        Arc::new(PeerState {
                            name: peer.name.clone(),
                            host: peer.host.clone(),
                            ..PeerState::default()
                        })
                    })
            })
            .collect();
        Egress { resolver, peers }
    }

    /// The state of `config.peers[index]`.
    pub fn peer(&self, index: usize) -> &PeerState {
        &self.peers[index]
    }

    pub fn health(&self, index: usize) -> &Arc<PeerHealth> {
        &self.peers[index].health
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use std::path::Path;
    use std::sync::atomic::Ordering;

    fn config(text: &str) -> Config {
        parse_str(&format!("http_port 3128\nhosts_file none\n{text}"), Path::new("t.conf"))
            .expect("valid")
            .config
    }

    #[test]
    fn reload_keeps_state_by_name_and_host() {
        let old = config("cache_peer 127.0.0.1 parent 1 0 name=a\ncache_peer 127.0.0.2 parent 1 0 name=b");
        let egress = Egress::new(&old, None).unwrap();
        egress.health(1).mark_down();
        egress.peer(1).uses.store(7, Ordering::Relaxed);
        egress.health(0).mark_down();
        // b moved to the front; a changed its host, so it is a different parent.
        let new = config("cache_peer 127.0.0.2 parent 1 0 name=b\ncache_peer 127.0.0.9 parent 1 0 name=a");
        let next = Egress::new(&new, Some(&egress)).unwrap();
        assert!(next.health(0).is_down());
        assert_eq!(next.peer(0).uses.load(Ordering::Relaxed), 7);
        assert!(!next.health(1).is_down());
    }
}
