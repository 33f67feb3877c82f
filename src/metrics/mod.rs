//! Metrics: one registry for the daemon's whole life (it outlives config reloads, so counters
//! never reset on SIGHUP), fed once per transaction where its access-log record is made.
//! Encoded in the Prometheus/OpenMetrics text format; serving it over HTTP is the exporter's
//! job, not this module's.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::log::{Record, ResultCode};

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

/// One ended transaction as the metrics see it: its log record plus what the log does not say.
pub struct Ended<'a> {
    pub record: &'a Record,
    /// Bytes forwarded from the client to the next hop (the log counts only the other way).
    pub bytes_to_upstream: u64,
    /// The `http_access` decision, when the transaction got as far as one.
    pub access: Option<Access>,
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
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    tunnels: Counter,
    bytes: Family<DirectionLabels, Counter>,
    access: Family<DecisionLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hopproxy");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Transactions ended (one per access-log record), by method, status class and hierarchy",
            requests.clone(),
        );
        let tunnels = Counter::default();
        registry.register(
            "tunnels",
            "CONNECT tunnels established (counted when they close)",
            tunnels.clone(),
        );
        let bytes = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "bytes",
            "Bytes relayed: to_client as the access log counts them; to_upstream for requests that got an answer",
            bytes.clone(),
        );
        let access = Family::<DecisionLabels, Counter>::default();
        registry.register("http_access", "http_access decisions", access.clone());
        Metrics {
            registry,
            requests,
            tunnels,
            bytes,
            access,
        }
    }

    /// Counts one ended transaction. Called exactly once per access-log record.
    pub fn transaction_ended(&self, ended: &Ended<'_>) {
        let record = ended.record;
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(&record.method),
                status_class: status_class(record.status),
                hierarchy: record.hierarchy.code(),
            })
            .inc();
        if record.result == ResultCode::Tunnel && record.status == 200 {
            self.tunnels.inc();
        }
        for (direction, n) in [("to_client", record.bytes), ("to_upstream", ended.bytes_to_upstream)] {
            if n > 0 {
                self.bytes.get_or_create(&DirectionLabels { direction }).inc_by(n);
            }
        }
        if let Some(access) = ended.access {
            self.access
                .get_or_create(&DecisionLabels {
                    decision: access.label(),
                })
                .inc();
        }
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Methods are client input: anything outside the common set shares one label, so a client
/// cannot grow the registry without bound.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .iter()
        .find(|m| m.eq_ignore_ascii_case(method))
        .copied()
        .unwrap_or(if method.is_empty() { "none" } else { "other" })
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, SystemTime};

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
            access: Some(Access::Allowed),
        });
        let denied = record("BREW", ResultCode::Denied, 403, 300, Hierarchy::None);
        metrics.transaction_ended(&Ended {
            record: &denied,
            bytes_to_upstream: 0,
            access: Some(Access::Denied),
        });
        let tunnel = record("CONNECT", ResultCode::Tunnel, 200, 4000, Hierarchy::FirstUpParent);
        metrics.transaction_ended(&Ended {
            record: &tunnel,
            bytes_to_upstream: 700,
            access: Some(Access::Allowed),
        });
        let text = metrics.encode();
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            r#"hopproxy_requests_total{method="GET",status_class="2xx",hierarchy="HIER_DIRECT"} 1"#,
            r#"hopproxy_requests_total{method="other",status_class="4xx",hierarchy="HIER_NONE"} 1"#,
            r#"hopproxy_requests_total{method="CONNECT",status_class="2xx",hierarchy="FIRSTUP_PARENT"} 1"#,
            "hopproxy_tunnels_total 1",
            r#"hopproxy_bytes_total{direction="to_client"} 4812"#,
            r#"hopproxy_bytes_total{direction="to_upstream"} 800"#,
            r#"hopproxy_http_access_total{decision="allow"} 2"#,
            r#"hopproxy_http_access_total{decision="deny"} 1"#,
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in:\n{text}");
        }
        assert_eq!(lines.last(), Some(&"# EOF"));
    }
}
