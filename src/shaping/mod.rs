//! Delay pools: Squid's token-bucket bandwidth shaping of the bytes sent to clients.
//!
//! A request goes into the first pool whose `delay_access` allows it (or into none). Its
//! shaper then holds the buckets that apply to it — the pool's aggregate, for classes 3 and 4
//! the client's /24 network, for classes 2 to 4 the client itself, for class 4 the
//! authenticated user (a request without one skips that bucket) — and a write to the client
//! may move only as many bytes as the emptiest of them holds. Buckets refill at their rate
//! (bytes per second) up to their size, continuously rather than in Squid's one-second
//! steps, so a shaped stream is smoother but averages the same rate.
//!
//! Buckets belong to the config generation: a reload starts every bucket afresh at
//! `delay_initial_bucket_level` (Squid rebuilds its pools on reconfigure too), while a
//! transfer that started before the reload keeps draining the buckets it started with.

mod bucket;
mod writer;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{BucketSpec, Config, DelayPool};
use crate::policy::{Action, RequestFacts};
use bucket::Bucket;
pub use writer::ShapedWriter;

/// Bytes a stalled writer waits for before it writes again, so a slow pool sends
/// packet-sized pieces rather than a trickle of tiny writes.
const MIN_GRANT: u64 = 1460;
/// Longest single wait, so a bucket that never refills (rate 0) is looked at again.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// The pools of one config generation, with their buckets.
#[derive(Default)]
pub struct Pools {
    pools: Vec<Arc<Pool>>,
}

struct Pool {
    spec: DelayPool,
    initial_percent: u8,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    aggregate: Bucket,
    /// Class 3: by the third octet of the client's IPv4 address.
    networks: HashMap<u8, Bucket>,
    /// Classes 2 to 4: by the last octet (class 2) or the last two octets (classes 3, 4).
    clients: HashMap<u16, Bucket>,
    /// Class 4: by user name.
    users: HashMap<String, Bucket>,
}

impl Pools {
    pub fn new(config: &Config) -> Pools {
        let now = Instant::now();
        let initial_percent = config.delay_pools.initial_level_percent;
        Pools {
            pools: config
                .delay_pools
                .pools
                .iter()
                .map(|spec| {
                    Arc::new(Pool {
                        buckets: Mutex::new(Buckets {
                            aggregate: Bucket::new(spec.aggregate, initial_percent, now),
                            networks: HashMap::new(),
                            clients: HashMap::new(),
                            users: HashMap::new(),
                        }),
                        spec: spec.clone(),
                        initial_percent,
                    })
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    /// The shaper for a request: the first pool whose `delay_access` allows it, or `None`
    /// (unshaped) when none does or no pool is configured. The client's address is the one
    /// ACLs see (`delay_pool_uses_indirect_client` on, Squid's default).
    pub fn assign(&self, config: &Config, facts: &RequestFacts<'_>) -> Option<Shaper> {
        if self.pools.is_empty() {
            return None;
        }
        let pool = self.pools.iter().find(|pool| {
            pool.spec
                .access
                .evaluate(&config.acls, facts)
                .is_some_and(|d| d.action == Action::Allow)
        })?;
        Some(Shaper::new(pool.clone(), facts.client, facts.user))
    }
}

/// A request's share of one pool: which of the pool's buckets it draws from.
#[derive(Clone)]
pub struct Shaper {
    pool: Arc<Pool>,
    network: Option<u8>,
    client: Option<u16>,
    user: Option<String>,
}

impl Shaper {
    fn new(pool: Arc<Pool>, client: IpAddr, user: Option<&str>) -> Shaper {
        // Per-network and per-client buckets are keyed by IPv4 octets, as in Squid; an IPv6
        // client draws from the aggregate bucket only.
        let octets = match client {
            IpAddr::V4(v4) => Some(v4.octets()),
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(|v4| v4.octets()),
        };
        let (network, client) = match (pool.spec.class, octets) {
            (2, Some(o)) => (None, Some(u16::from(o[3]))),
            (3 | 4, Some(o)) => (Some(o[2]), Some(u16::from_be_bytes([o[2], o[3]]))),
            _ => (None, None),
        };
        let user = user.filter(|_| pool.spec.user.is_some()).map(str::to_string);
        Shaper {
            pool,
            network,
            client,
            user,
        }
    }

    /// The pool's number, as the config names it.
    pub fn pool_number(&self) -> usize {
        self.pool.spec.number
    }

    /// Takes up to `want` bytes from every bucket that applies; when they hold too little,
    /// says how long to wait before asking again.
    pub fn take(&self, want: usize) -> Result<usize, Duration> {
        let now = Instant::now();
        let spec = &self.pool.spec;
        let initial = self.pool.initial_percent;
        let mut guard = self
            .pool
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Buckets {
            aggregate,
            networks,
            clients,
            users,
        } = &mut *guard;
        let mut applying: Vec<&mut Bucket> = Vec::with_capacity(4);
        applying.push(aggregate);
        if let (Some(key), Some(bucket)) = (self.network, spec.network) {
            applying.push(networks.entry(key).or_insert_with(|| Bucket::new(bucket, initial, now)));
        }
        if let (Some(key), Some(bucket)) = (self.client, spec.individual) {
            applying.push(clients.entry(key).or_insert_with(|| Bucket::new(bucket, initial, now)));
        }
        if let (Some(name), Some(bucket)) = (&self.user, spec.user) {
            // Looked up before inserting: the name is copied once per user, not per write.
            if !users.contains_key(name) {
                users.insert(name.clone(), Bucket::new(bucket, initial, now));
            }
            applying.extend(users.get_mut(name));
        }
        let want = want as u64;
        let mut available = u64::MAX;
        let mut need = want.clamp(1, MIN_GRANT);
        for bucket in applying.iter_mut() {
            if let Some(level) = bucket.refill(now) {
                available = available.min(level);
                // A small bucket could never hold a packet: half of it will do.
                need = need.min((bucket.size() / 2).max(1));
            }
        }
        if available >= need {
            let granted = want.min(available);
            for bucket in applying.iter_mut() {
                bucket.spend(granted);
            }
            return Ok(granted as usize);
        }
        let wait = applying
            .iter()
            .filter_map(|b| b.time_to(need))
            .max()
            .unwrap_or(MAX_WAIT);
        Err(wait.clamp(Duration::from_millis(1), MAX_WAIT))
    }
}

/// One line per pool for `check`: what it limits and who goes into it.
pub fn describe(pool: &DelayPool) -> String {
    let mut text = format!(
        "delay pool {} (class {}): aggregate {}",
        pool.number, pool.class, pool.aggregate
    );
    let mut part = |name: &str, bucket: Option<BucketSpec>| {
        if let Some(bucket) = bucket {
            text.push_str(&format!(", {name} {bucket}"));
        }
    };
    part("per /24 network", pool.network);
    part("per client", pool.individual);
    part("per user", pool.user);
    text.push_str("; shapes bytes sent to clients it takes (first pool whose delay_access allows)");
    text
}

#[cfg(test)]
mod tests;
