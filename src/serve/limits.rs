//! Connection caps: a global one (each tunnel holds two descriptors) and an optional one per
//! client address (`client_ip_max_connections`). A connection over a cap is answered 503.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::config::Config;

/// Descriptors kept free for listeners, log files, DNS and probes.
const RESERVED_FDS: usize = 64;

/// Caps can change on reload; connections already open keep their slots.
pub struct Limits {
    state: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    max_total: usize,
    per_client: Option<usize>,
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// Held while a client connection is open; releases its slot when dropped.
pub struct Slot {
    limits: Arc<Limits>,
    client: IpAddr,
    /// Connections open from `client` when this one was admitted, this one included.
    client_connections: usize,
}

impl Slot {
    /// Connections open from this slot's client address when it was admitted, this one
    /// included (what `maxconn` ACLs compare).
    pub fn client_connections(&self) -> usize {
        self.client_connections
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.limits.state.lock().unwrap_or_else(|p| p.into_inner());
        counts.total -= 1;
        if let Some(n) = counts.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                counts.by_client.remove(&self.client);
            }
        }
    }
}

pub enum Refusal {
    Total(usize),
    PerClient(usize),
}

impl Limits {
    pub fn from_config(config: &Config) -> Limits {
        let limits = Limits {
            state: Mutex::new(Counts::default()),
        };
        limits.apply(config);
        limits
    }

    /// Takes the caps of `config` (at start and on reload).
    pub fn apply(&self, config: &Config) {
        let fds = config.max_filedescriptors.unwrap_or_else(open_files_limit);
        let derived = fds.saturating_sub(RESERVED_FDS) / 2;
        let mut counts = self.state.lock().unwrap_or_else(|p| p.into_inner());
        counts.max_total = config.max_client_connections.unwrap_or(derived).max(1);
        counts.per_client = config.client_ip_max_connections;
    }

    pub fn active(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    pub fn acquire(self: &Arc<Self>, client: IpAddr) -> Result<Slot, Refusal> {
        let mut counts = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= counts.max_total {
            return Err(Refusal::Total(counts.max_total));
        }
        let mine = counts.by_client.get(&client).copied().unwrap_or(0);
        if let Some(cap) = counts.per_client
            && mine >= cap
        {
            return Err(Refusal::PerClient(cap));
        }
        counts.total += 1;
        *counts.by_client.entry(client).or_default() += 1;
        Ok(Slot {
            limits: Arc::clone(self),
            client,
            client_connections: mine + 1,
        })
    }
}

/// The soft `RLIMIT_NOFILE` (raised to the hard limit at start-up, as Squid does).
fn open_files_limit() -> usize {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(1 << 20, |n| n as usize)
}

/// Raises the soft descriptor limit to the hard one: the default soft limit of 1024 would cap
/// a proxy at ~480 tunnels.
pub fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!("cannot raise the open-files limit: {e}");
        }
    }
}
