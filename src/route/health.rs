//! Parent health. Only a failure to *connect* to a parent counts against it: a parent that
//! answers our CONNECT with an error about the destination is alive (unlike Squid 5.7, which
//! counts every non-200 answer and declares a healthy parent dead: docs/squid-behaviour.md F9). A parent
//! marked down is probed in the background, so no client request is spent reviving it (Squid
//! sacrifices one: docs/squid-behaviour.md F7).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::egress::Egress;
use crate::config::Config;

/// How often a down parent is probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait for one probe's TCP handshake.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
pub struct PeerHealth {
    consecutive_failures: AtomicU32,
    /// Every connection failure counted (requests' and the start-up probe's), for metrics.
    failures_total: AtomicU64,
    down: AtomicBool,
    probing: AtomicBool,
}

impl PeerHealth {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Connection failures since this parent was configured (kept across reloads with it).
    pub fn failures_total(&self) -> u64 {
        self.failures_total.load(Ordering::Relaxed)
    }

    pub fn record_success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!("parent revived by a successful connection");
        }
    }

    /// Marks the parent down at once (start-up probe failed); true if it was up.
    pub fn mark_down(&self) -> bool {
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        !self.down.swap(true, Ordering::Relaxed)
    }

    /// Counts a connect failure; returns true when this failure marked the parent down.
    pub fn record_failure(&self, limit: u32) -> bool {
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        failures >= limit.max(1) && !self.down.swap(true, Ordering::Relaxed)
    }
}

/// Squid probes every parent at start-up; so do we, in the background, marking unreachable
/// ones down (their own probe revives them) so the first requests do not wait on them.
pub fn probe_at_start(egress: &Arc<Egress>, config: &Config) {
    for (index, peer) in config.peers.iter().enumerate() {
        let egress = Arc::clone(egress);
        let name = peer.name.clone();
        let host = peer.host.to_ascii_lowercase();
        let port = peer.http_port;
        tokio::spawn(async move {
            let Ok(addrs) = egress.resolver.resolve(&host).await else {
                return;
            };
            let sockets: Vec<SocketAddr> = addrs.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
            for addr in &sockets {
                if let Ok(Ok(_)) = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
                    return;
                }
            }
            let health = egress.health(index);
            if health.mark_down() {
                tracing::warn!(parent = %name, "parent unreachable at start-up; probing it in the background");
                spawn_probe(health, name, sockets);
            }
        });
    }
}

/// Probes `health`'s parent until a TCP connect succeeds, then marks it up. Stops early when
/// the config generation that owns `health` is gone (after a reload).
pub fn spawn_probe(health: &Arc<PeerHealth>, name: String, addrs: Vec<SocketAddr>) {
    if health.probing.swap(true, Ordering::Relaxed) {
        return;
    }
    let weak: Weak<PeerHealth> = Arc::downgrade(health);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(PROBE_INTERVAL).await;
            let Some(health) = weak.upgrade() else { return };
            if !health.is_down() {
                health.probing.store(false, Ordering::Relaxed);
                return;
            }
            for &addr in &addrs {
                let ok = matches!(
                    tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await,
                    Ok(Ok(_))
                );
                if ok {
                    health.consecutive_failures.store(0, Ordering::Relaxed);
                    health.down.store(false, Ordering::Relaxed);
                    health.probing.store(false, Ordering::Relaxed);
                    tracing::warn!(parent = %name, "parent is reachable again (background probe); back in use");
                    return;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_limit_th_consecutive_failure_marks_down() {
        let h = PeerHealth::default();
        for _ in 0..9 {
            assert!(!h.record_failure(10));
        }
        assert!(h.record_failure(10));
        assert!(h.is_down());
        assert!(!h.record_failure(10), "already down: reported once");
        h.record_success();
        assert!(!h.is_down());
        assert!(!h.record_failure(10), "count restarts after a success");
    }

    /// The metrics' total counts every failure, the start-up probe's included, and a success
    /// does not reset it.
    #[test]
    fn the_failure_total_counts_every_failure_and_survives_a_success() {
        let h = PeerHealth::default();
        assert_eq!(h.failures_total(), 0);
        assert!(h.mark_down());
        assert!(!h.mark_down(), "already down");
        h.record_success();
        for _ in 0..3 {
            h.record_failure(10);
        }
        assert_eq!(h.failures_total(), 5);
    }
}
