//! Connection caps: a global one (each tunnel holds two descriptors) and an optional one per
//! client address (`client_ip_max_connections`). A connection over a cap is answered 503.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::config::Config;

/// Descriptors kept free for listeners, log files, DNS and probes.
const RESERVED_FDS: usize = 64;

pub struct Limits {
    max_total: usize,
    per_client: Option<usize>,
    state: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// Held while a client connection is open; releases its slot when dropped.
pub struct Slot {
    limits: Arc<Limits>,
    client: IpAddr,
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
        let fds = config.max_filedescriptors.unwrap_or_else(open_files_limit);
        let derived = fds.saturating_sub(RESERVED_FDS) / 2;
        let max_total = config.max_client_connections.unwrap_or(derived).max(1);
        Limits {
            max_total,
            per_client: config.client_ip_max_connections,
            state: Mutex::new(Counts::default()),
        }
    }

    pub fn max_total(&self) -> usize {
        self.max_total
    }

    pub fn active(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    pub fn acquire(self: &Arc<Self>, client: IpAddr) -> Result<Slot, Refusal> {
        let mut counts = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= self.max_total {
            return Err(Refusal::Total(self.max_total));
        }
        let mine = counts.by_client.get(&client).copied().unwrap_or(0);
        if let Some(cap) = self.per_client
            && mine >= cap
        {
            return Err(Refusal::PerClient(cap));
        }
        counts.total += 1;
        *counts.by_client.entry(client).or_default() += 1;
        Ok(Slot {
            limits: Arc::clone(self),
            client,
        })
    }
}

/// The soft `RLIMIT_NOFILE`, read from /proc so no unsafe FFI is needed.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(1024)
}
