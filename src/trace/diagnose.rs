//! Naming the hop behind an error answer: the answer's own words, checked against each hop's name.

use super::report::ProxyErrorFacts;
use super::tracer::Tracer;
use crate::client::connect::{self, ConnectReply};
use crate::client::proxy_status::{describe, error_origin};

impl Tracer {
    /// Asks proxy `hop` for its own name with a request every proxy must refuse itself
    /// (CONNECT to port 0); its error answer names it. Costs one log line on that proxy.
    pub(super) async fn probe_name(&self, hop: usize) -> Option<String> {
        let mut stream = self.open_chain(hop).await?;
        let reply = connect::send_connect(
            &mut stream,
            "hopproxy-trace-name-probe.invalid:0",
            None,
            self.opts.step_timeout,
        )
        .await
        .ok()?;
        error_origin(&reply).proxy
    }

    /// Names the hop behind an error answer to the CONNECT sent to proxy `k` for `next`.
    pub(super) async fn diagnose(&mut self, k: usize, next: &str, next_label: &str, reply: ConnectReply) {
        let origin = error_origin(&reply);
        self.report.proxy_errors.push(ProxyErrorFacts {
            hop: k,
            status: reply.status,
            reason: reply.reason.clone(),
            proxy_status: reply.header("proxy-status"),
            via: reply.header("via"),
            x_squid_error: reply.header("x-squid-error"),
            origin: origin.clone(),
        });
        let error = origin.error.clone().unwrap_or_else(|| format!("http_{}", reply.status));
        let k_name = self.probe_name(k).await;
        let from_hop_k = match (&origin.proxy, &k_name) {
            _ if origin.relayed_from_parent => false,
            (None, _) => true,
            (Some(o), Some(kn)) => o.eq_ignore_ascii_case(kn),
            // Hop k did not name itself: assume the answer is its own.
            (Some(_), None) => true,
        };
        let details = origin.details.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
        let squid = origin
            .squid_error
            .as_deref()
            .map(|s| format!(" [{s}]"))
            .unwrap_or_default();
        let connectish = matches!(
            error.as_str(),
            "connection_refused" | "connection_timeout" | "destination_ip_unroutable"
        );
        if from_hop_k {
            let name = k_name.or(origin.proxy.clone());
            let label = self.hop_label(k, name.as_deref());
            if k < self.opts.proxies.len() && connectish {
                // We asked proxy k for proxy k+1's address: the next proxy is what is unreachable.
                let reason = format!("{label} {}{details}{squid}", describe(&error, next_label));
                let next_addr = self.opts.proxies[k].clone();
                self.fail(Some(k + 1), None, &error, reason);
                if let Some(f) = self.report.failure.as_mut() {
                    f.hop_address = Some(next_addr);
                }
                return;
            }
            let what = match &origin.failed_address {
                Some(addr) if !next.starts_with(addr.as_str()) && connectish => {
                    format!("{addr} (its next hop: a parent proxy, or the address of {next})")
                }
                _ => next_label.to_string(),
            };
            let reason = format!("{label} {}{details}{squid}", describe(&error, &what));
            self.fail(Some(k), name, &error, reason);
        } else {
            let name = origin.proxy.clone();
            let beyond = k + 1;
            let label = format!(
                "proxy {beyond} ({}, a parent of proxy {k})",
                name.as_deref().unwrap_or("unnamed")
            );
            let reason = format!("{label} {}{details}{squid}", describe(&error, next_label));
            self.fail(Some(beyond), name, &error, reason);
            if let Some(f) = self.report.failure.as_mut() {
                f.hop_address = None;
            }
        }
    }
}
