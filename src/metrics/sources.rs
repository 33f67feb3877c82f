//! Metrics read at scrape time from state that lives elsewhere: parent health (route's, per
//! config generation) and the access-log writers' lost-record counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// One `cache_peer` as the metrics show it.
pub struct ParentSample {
    pub name: String,
    pub up: bool,
    /// Connection failures to this parent since it was configured (kept across reloads while
    /// the parent keeps its name and host).
    pub failures: u64,
}

type ParentSource = Box<dyn Fn() -> Vec<ParentSample> + Send + Sync>;

#[derive(Default)]
pub struct Sources {
    parents: OnceLock<ParentSource>,
    /// Every writer's counter, retired ones included, so the total never goes down.
    log_drops: Mutex<Vec<Arc<AtomicU64>>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

impl Sources {
    pub fn set_parents(&self, source: ParentSource) {
        let _ = self.parents.set(source);
    }

    pub fn add_log_drops(&self, counter: Arc<AtomicU64>) {
        let mut all = self.log_drops.lock().unwrap_or_else(|e| e.into_inner());
        if !all.iter().any(|c| Arc::ptr_eq(c, &counter)) {
            all.push(counter);
        }
    }
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let dropped: u64 = {
            let all = self.log_drops.lock().unwrap_or_else(|e| e.into_inner());
            all.iter().map(|c| c.load(Ordering::Relaxed)).sum()
        };
        let counter = ConstCounter::new(dropped);
        counter.encode(encoder.encode_descriptor(
            "log_records_dropped",
            "Access-log records lost (queue full or disk failing), all files together.",
            None,
            MetricType::Counter,
        )?)?;

        let parents = self.parents.get().map(|source| source()).unwrap_or_default();
        let mut up = encoder.encode_descriptor(
            "parent_up",
            "1 when the cache_peer is in use, 0 while it is marked down (connect failures) and probed.",
            None,
            MetricType::Gauge,
        )?;
        for p in &parents {
            ConstGauge::new(i64::from(p.up)).encode(up.encode_family(&[("parent", p.name.as_str())])?)?;
        }
        let mut failures = encoder.encode_descriptor(
            "parent_failures",
            "Connection failures to the cache_peer (refused, timed out, closed before answering).",
            None,
            MetricType::Counter,
        )?;
        for p in &parents {
            ConstCounter::new(p.failures).encode(failures.encode_family(&[("parent", p.name.as_str())])?)?;
        }
        Ok(())
    }
}
