//! Metrics: one registry for the daemon's whole life (it outlives config reloads, so counters
//! never reset on SIGHUP), fed where a transaction ends and at the few events a log line does
//! not show (a policy decision, an auth check, a tunnel opening, a reload). Encoded in the
//! Prometheus text format; [`exporter`] serves it over HTTP.
//!
//! Cost on the hot path: atomics. The per-transaction series (requests by method, status class
//! and hierarchy; bytes by direction; decisions by rule) are looked up in their family once and
//! then kept in fixed slots indexed by their labels, so counting takes no lock and hashes
//! nothing. Labels whose values come from the config (rule lines, parent names) are `Arc<str>`
//! built once per config generation; labels from client input (the method) are folded into a
//! fixed set.

pub mod exporter;
mod process;
mod sources;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::log::{Record, ResultCode};
pub use sources::ParentSample;

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What `http_access` decided for a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed,
    Denied,
    /// Credentials were missing or wrong: answered 407.
    AuthRequired,
}

impl Access {
    fn label(self) -> &'static str {
        match self {
            Access::Allowed => "allow",
            Access::Denied => "deny",
            Access::AuthRequired => "auth_required",
        }
    }
}

/// The `http_access` decision counters of one config generation: one slot per rule line and
/// decision, plus the implicit default's, each filled on first use.
pub struct RuleCounters {
    /// `FILE:LINE` of each `http_access` line (see [`rule_label`]).
    labels: Vec<Arc<str>>,
    /// `labels.len() + 1` entries (the last: the implicit default), indexed by [`Access`].
    slots: Vec<[OnceLock<Counter>; 3]>,
}

impl RuleCounters {
    pub fn new(labels: Vec<Arc<str>>) -> RuleCounters {
        let slots = (0..=labels.len()).map(|_| Default::default()).collect();
        RuleCounters { labels, slots }
    }
}

/// The tunnel connect-time histograms of one config generation: one slot per parent plus
/// `direct`, each filled on first use.
pub struct HopTimers {
    /// The parents' names, by index in the config.
    labels: Vec<Arc<str>>,
    /// `labels.len() + 1` entries, the last for direct.
    slots: Vec<OnceLock<Histogram>>,
}

impl HopTimers {
    pub fn new(labels: Vec<Arc<str>>) -> HopTimers {
        let slots = (0..=labels.len()).map(|_| OnceLock::new()).collect();
        HopTimers { labels, slots }
    }
}

/// The result of checking a client's proxy credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthCheck {
    Accepted,
    /// No credentials (or another scheme): challenged.
    Missing,
    /// Wrong or malformed credentials.
    Rejected,
    /// The authentication helper could not answer (queue full, restarting, timeout).
    Unavailable,
}

impl AuthCheck {
    fn label(self) -> &'static str {
        match self {
            AuthCheck::Accepted => "accepted",
            AuthCheck::Missing => "missing",
            AuthCheck::Rejected => "rejected",
            AuthCheck::Unavailable => "unavailable",
        }
    }
}

/// One ended transaction as the metrics see it: its log record plus what the log does not say.
pub struct Ended<'a> {
    pub record: &'a Record,
    /// Bytes forwarded from the client to the next hop (the log counts only the other way).
    pub bytes_to_upstream: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    status_class: &'static str,
    hierarchy: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
    /// `FILE:LINE` of the deciding `http_access` line, or `implicit`.
    rule: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NextHopLabels {
    /// `direct`, or the `cache_peer` name.
    next_hop: Arc<str>,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Connect times from 1 ms to 30 s: a LAN parent answers in milliseconds, an origin abroad in
/// hundreds, a dead one at `connect_timeout`.
fn connect_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    tunnels: Counter,
    tunnels_open: Gauge,
    bytes: Family<DirectionLabels, Counter>,
    connect_duration: HistogramFamily<NextHopLabels>,
    access: Family<DecisionLabels, Counter>,
    auth: Family<ResultLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    /// `requests` series by [`request_slot`], filled on first use.
    request_slots: Box<[OnceLock<Counter>]>,
    /// `bytes` series: to_client, to_upstream.
    byte_slots: [OnceLock<Counter>; 2],
    sources: Arc<sources::Sources>,
    /// Shared label values, so a lookup never formats one.
    direct: Arc<str>,
    implicit: Arc<str>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector::new()));
        let sources = Arc::new(sources::Sources::default());
        let registry = root.sub_registry_with_prefix("hopproxy");
        registry.register_collector(Box::new(Arc::clone(&sources)));
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Transactions ended (one per access-log record), by method, status class and hierarchy",
            requests.clone(),
        );
        let tunnels = Counter::default();
        registry.register(
            "tunnels",
            "CONNECT tunnels established, counted when they close (as the access log does)",
            tunnels.clone(),
        );
        let tunnels_open = Gauge::default();
        registry.register(
            "tunnels_open",
            "CONNECT tunnels open now (from the 200 to the close)",
            tunnels_open.clone(),
        );
        let bytes = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "bytes",
            "Bytes relayed: to_client as the access log counts them; to_upstream from the client to the next hop",
            bytes.clone(),
        );
        let connect_duration: HistogramFamily<NextHopLabels> = Family::new_with_constructor(connect_histogram);
        registry.register(
            "connect_duration_seconds",
            "Time to establish a tunnel's upstream side (TCP connect, and the parent's answer to our CONNECT), by next hop",
            connect_duration.clone(),
        );
        let access = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "http_access",
            "http_access decisions, by decision and deciding rule (FILE:LINE, or implicit)",
            access.clone(),
        );
        let auth = Family::<ResultLabels, Counter>::default();
        registry.register("auth", "Proxy credential checks, by result", auth.clone());
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Config reloads (SIGHUP), by result: applied or rejected (the running config kept)",
            reloads.clone(),
        );
        // Series that exist from the start, so `increase()` sees their first event.
        for result in [
            AuthCheck::Accepted,
            AuthCheck::Missing,
            AuthCheck::Rejected,
            AuthCheck::Unavailable,
        ] {
            let _ = auth.get_or_create(&ResultLabels { result: result.label() });
        }
        for result in ["applied", "rejected"] {
            let _ = reloads.get_or_create(&ResultLabels { result });
        }
        Metrics {
            registry: root,
            requests,
            tunnels,
            tunnels_open,
            bytes,
            connect_duration,
            access,
            auth,
            reloads,
            request_slots: (0..REQUEST_SLOTS).map(|_| OnceLock::new()).collect(),
            byte_slots: Default::default(),
            sources,
            direct: Arc::from("direct"),
            implicit: Arc::from("implicit"),
        }
    }

    /// Counts one ended transaction. Called exactly once per access-log record.
    pub fn transaction_ended(&self, ended: &Ended<'_>) {
        let record = ended.record;
        let (method, status_class) = (method_index(&record.method), status_class_index(record.status));
        self.request_slots[request_slot(method, status_class, record.hierarchy)]
            .get_or_init(|| {
                self.requests.get_or_create_owned(&RequestLabels {
                    method: METHOD_LABELS[method],
                    status_class: STATUS_CLASS_LABELS[status_class],
                    hierarchy: record.hierarchy.code(),
                })
            })
            .inc();
        if record.result == ResultCode::Tunnel && record.status == 200 {
            self.tunnels.inc();
        }
        for (slot, direction, n) in [
            (0, "to_client", record.bytes),
            (1, "to_upstream", ended.bytes_to_upstream),
        ] {
            if n > 0 {
                self.byte_slots[slot]
                    .get_or_init(|| self.bytes.get_or_create_owned(&DirectionLabels { direction }))
                    .inc_by(n);
            }
        }
    }

    /// Counts an `http_access` decision; `rule` is the deciding line's index in `rules`,
    /// `None` for the implicit default.
    pub fn access_decided(&self, rules: &RuleCounters, access: Access, rule: Option<usize>) {
        let index = rule.filter(|&i| i < rules.labels.len()).unwrap_or(rules.labels.len());
        rules.slots[index][access as usize]
            .get_or_init(|| {
                self.access.get_or_create_owned(&DecisionLabels {
                    decision: access.label(),
                    rule: Arc::clone(rules.labels.get(index).unwrap_or(&self.implicit)),
                })
            })
            .inc();
    }

    pub fn auth_checked(&self, result: AuthCheck) {
        self.auth.get_or_create(&ResultLabels { result: result.label() }).inc();
    }

    pub fn config_reloaded(&self, applied: bool) {
        let result = if applied { "applied" } else { "rejected" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// A tunnel's upstream side is ready after `took`; `parent` is the parent's index in
    /// `hops`, `None` when direct.
    pub fn tunnel_connected(&self, hops: &HopTimers, parent: Option<usize>, took: Duration) {
        let index = parent.filter(|&i| i < hops.labels.len()).unwrap_or(hops.labels.len());
        hops.slots[index]
            .get_or_init(|| {
                self.connect_duration.get_or_create_owned(&NextHopLabels {
                    next_hop: Arc::clone(hops.labels.get(index).unwrap_or(&self.direct)),
                })
            })
            .observe(took.as_secs_f64());
    }

    /// A tunnel answered 200; it counts as open until the returned guard is dropped.
    pub fn tunnel_opened(&self) -> OpenTunnel {
        self.tunnels_open.inc();
        OpenTunnel(self.tunnels_open.clone())
    }

    /// Where `hopproxy_parent_up` and `hopproxy_parent_failures_total` are read at each scrape
    /// (the daemon's current parents; set once at start).
    pub fn watch_parents(&self, source: impl Fn() -> Vec<ParentSample> + Send + Sync + 'static) {
        self.sources.set_parents(Box::new(source));
    }

    /// Adds an access-log writer's lost-records counter to `hopproxy_log_records_dropped_total`.
    pub fn watch_log_drops(&self, counter: Arc<AtomicU64>) {
        self.sources.add_log_drops(counter);
    }

    /// The registry in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// The label a rule line gets in `hopproxy_http_access_total`: its `FILE:LINE`.
pub fn rule_label(origin: &crate::policy::Origin) -> Arc<str> {
    Arc::from(origin.to_string())
}

/// Held while a tunnel is open; lowers `hopproxy_tunnels_open` when dropped.
pub struct OpenTunnel(Gauge);

impl Drop for OpenTunnel {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Methods are client input: anything outside the common set shares one label, so a client
/// cannot grow the registry without bound.
/// The method label: the nine common methods, `other`, or `none` (no request line).
const METHOD_LABELS: [&str; 11] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other", "none",
];
const STATUS_CLASS_LABELS: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];
const HIERARCHIES: usize = 5;
const REQUEST_SLOTS: usize = METHOD_LABELS.len() * STATUS_CLASS_LABELS.len() * HIERARCHIES;

fn request_slot(method: usize, status_class: usize, hierarchy: crate::log::Hierarchy) -> usize {
    (method * STATUS_CLASS_LABELS.len() + status_class) * HIERARCHIES + hierarchy as usize
}

fn method_index(method: &str) -> usize {
    if method.is_empty() {
        return METHOD_LABELS.len() - 1;
    }
    METHOD_LABELS[..9]
        .iter()
        .position(|m| m.eq_ignore_ascii_case(method))
        .unwrap_or(9)
}

fn status_class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::atomic::Ordering;
    use std::time::SystemTime;

    use super::*;
    use crate::log::Hierarchy;

    fn record(method: &str, result: ResultCode, status: u16, bytes: u64, hierarchy: Hierarchy) -> Record {
        Record {
            end: SystemTime::now(),
            elapsed: Duration::from_millis(3),
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
            result,
            status,
            bytes,
            method: method.into(),
            url: "http://example.invalid/".into(),
            user: None,
            hierarchy,
            peer: None,
            content_type: None,
            details: Default::default(),
        }
    }

    #[test]
    fn an_ended_transaction_shows_in_the_encoded_registry() {
        let metrics = Metrics::new();
        let get = record("get", ResultCode::Miss, 200, 512, Hierarchy::Direct);
        metrics.transaction_ended(&Ended {
            record: &get,
            bytes_to_upstream: 100,
        });
        let denied = record("BREW", ResultCode::Denied, 403, 300, Hierarchy::None);
        metrics.transaction_ended(&Ended {
            record: &denied,
            bytes_to_upstream: 0,
        });
        let tunnel = record("CONNECT", ResultCode::Tunnel, 200, 4000, Hierarchy::FirstUpParent);
        metrics.transaction_ended(&Ended {
            record: &tunnel,
            bytes_to_upstream: 700,
        });
        let rules = RuleCounters::new(vec![Arc::from("squid.conf:7")]);
        metrics.access_decided(&rules, Access::Allowed, Some(0));
        // A reloaded config's counters for the same line add to the same series.
        let reloaded = RuleCounters::new(vec![Arc::from("squid.conf:7")]);
        metrics.access_decided(&reloaded, Access::Allowed, Some(0));
        metrics.access_decided(&rules, Access::Denied, None);
        metrics.auth_checked(AuthCheck::Rejected);
        metrics.config_reloaded(true);
        let hops = HopTimers::new(vec![Arc::from("edge")]);
        metrics.tunnel_connected(&hops, Some(0), Duration::from_millis(3));
        metrics.tunnel_connected(&hops, None, Duration::from_millis(3));
        let open = metrics.tunnel_opened();
        metrics.watch_parents(|| {
            vec![ParentSample {
                name: "edge".into(),
                up: false,
                failures: 4,
            }]
        });
        let drops = Arc::new(AtomicU64::new(0));
        metrics.watch_log_drops(Arc::clone(&drops));
        drops.store(2, Ordering::Relaxed);
        let text = metrics.encode();
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            r#"hopproxy_requests_total{method="GET",status_class="2xx",hierarchy="HIER_DIRECT"} 1"#,
            r#"hopproxy_requests_total{method="other",status_class="4xx",hierarchy="HIER_NONE"} 1"#,
            r#"hopproxy_requests_total{method="CONNECT",status_class="2xx",hierarchy="FIRSTUP_PARENT"} 1"#,
            "hopproxy_tunnels_total 1",
            "hopproxy_tunnels_open 1",
            r#"hopproxy_bytes_total{direction="to_client"} 4812"#,
            r#"hopproxy_bytes_total{direction="to_upstream"} 800"#,
            r#"hopproxy_http_access_total{decision="allow",rule="squid.conf:7"} 2"#,
            r#"hopproxy_http_access_total{decision="deny",rule="implicit"} 1"#,
            r#"hopproxy_auth_total{result="rejected"} 1"#,
            r#"hopproxy_config_reloads_total{result="applied"} 1"#,
            r#"hopproxy_connect_duration_seconds_count{next_hop="edge"} 1"#,
            r#"hopproxy_connect_duration_seconds_count{next_hop="direct"} 1"#,
            r#"hopproxy_parent_up{parent="edge"} 0"#,
            r#"hopproxy_parent_failures_total{parent="edge"} 4"#,
            "hopproxy_log_records_dropped_total 2",
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in:\n{text}");
        }
        assert!(text.contains("process_start_time_seconds "), "{text}");
        drop(open);
        assert!(metrics.encode().lines().any(|l| l == "hopproxy_tunnels_open 0"));
    }
}
