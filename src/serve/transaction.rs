//! What a transaction is: the context every request on one client connection shares, the
//! log fields a handler fills in, and the one way a transaction ends — answered (or not),
//! logged exactly once, and counted in the metrics at that same point.
//!
//! Handlers (`connect`, `forward`, `policy`) build on this module; the dispatcher (`client`)
//! builds on the handlers. Nothing here knows about either.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::reply::{self, ProxyError};
use crate::http1::BufConn;
use crate::http1::Header;
use crate::log::{Details, Hierarchy, Record, ResultCode};
use crate::metrics::{Ended, Metrics};
use crate::policy::{AclRef, RequestFacts};
use crate::route::select::Attempt;
use crate::state::Generation;

/// How long a refused client gets to read our reply before the socket is closed.
const LINGER: Duration = Duration::from_secs(2);

/// What every transaction on one client connection shares.
pub struct ClientCtx {
    pub generation: Arc<Generation>,
    pub client_ip: IpAddr,
    pub client_port: u16,
    pub local_port: u16,
    /// The local address the client connected to (`myip`/`localip` ACLs).
    pub local_ip: Option<IpAddr>,
    /// Connections open from the client's address when this one was accepted, itself
    /// included (`maxconn` ACLs).
    pub client_connections: usize,
    /// The client certificate an `https_port` verified (`user_cert` ACLs, `%ssl::>cert_subject`).
    pub client_cert: Option<Arc<crate::tls::failure::ClientCert>>,
    pub shutdown: watch::Receiver<bool>,
    /// The daemon's one registry; it outlives the generation.
    pub metrics: Arc<Metrics>,
}

/// The parts of a log record a handler fills in when a transaction ends; the request's own
/// fields (method, URL, user) come from its [`Transaction`].
pub struct Outcome {
    pub result: ResultCode,
    pub status: u16,
    pub bytes: u64,
    pub hierarchy: Hierarchy,
    pub peer: Option<SocketAddr>,
    pub content_type: Option<String>,
    /// Bytes forwarded from the client to the next hop (metrics only; the log does not say).
    pub bytes_to_upstream: u64,
}

impl Outcome {
    /// A reply generated here before any next hop was contacted.
    pub fn local(result: ResultCode, status: u16, bytes: usize) -> Outcome {
        Outcome {
            result,
            status,
            bytes: bytes as u64,
            hierarchy: Hierarchy::None,
            peer: None,
            content_type: Some("text/plain".into()),
            bytes_to_upstream: 0,
        }
    }

    /// A CONNECT that reached its next hop: `status` is ours (200) or the parent's answer.
    pub fn tunnel(status: u16, bytes: u64, attempt: Attempt, addr: SocketAddr) -> Outcome {
        Outcome {
            result: ResultCode::Tunnel,
            status,
            bytes,
            hierarchy: attempt.hierarchy,
            peer: Some(addr),
            content_type: None,
            bytes_to_upstream: 0,
        }
    }
}

/// Which next hop a failed transaction had reached, for the log's hierarchy and peer fields.
#[derive(Debug, Clone, Copy)]
pub struct HopSeen {
    pub hierarchy: Hierarchy,
    pub peer: Option<SocketAddr>,
}

impl HopSeen {
    /// Failed before any next hop was involved.
    pub const NONE: HopSeen = HopSeen {
        hierarchy: Hierarchy::None,
        peer: None,
    };

    pub fn at(attempt: Attempt, addr: SocketAddr) -> HopSeen {
        HopSeen {
            hierarchy: attempt.hierarchy,
            peer: Some(addr),
        }
    }
}

/// How a transaction failed: the reply to send (none when the client is gone or never sent
/// a whole head), the log's result tag, and the next hop it had reached.
pub struct Failure {
    pub reply: Option<ProxyError>,
    pub result: ResultCode,
    pub hop: HopSeen,
}

impl Failure {
    /// Refused here before any next hop was involved (`NONE_NONE`, as Squid logs requests it
    /// never forwarded).
    pub fn refused(reply: ProxyError) -> Failure {
        Failure {
            reply: Some(reply),
            result: ResultCode::None,
            hop: HopSeen::NONE,
        }
    }

    /// Ended without a reply (the client is gone, or sent no whole head).
    pub fn unanswered(result: ResultCode, hop: HopSeen) -> Failure {
        Failure {
            reply: None,
            result,
            hop,
        }
    }
}

/// One request from its head to its log record. It is consumed by [`Transaction::finish`] or
/// [`Transaction::fail`], so a transaction is logged once and only once.
pub struct Transaction<'c> {
    ctx: &'c ClientCtx,
    start: Instant,
    method: String,
    url: String,
    /// The proxy-auth user (verified, or the one that failed), for the log's user field.
    user: Option<String>,
    /// The indirect client (`follow_x_forwarded_for`) the log shows instead of the peer
    /// (`log_uses_indirect_client on`, Squid's default).
    client: Option<IpAddr>,
    /// What only custom log formats read.
    details: Details,
}

impl<'c> Transaction<'c> {
    /// `url` is what the log shows until the request is understood (the raw target, or an
    /// `error:` token); [`Transaction::set_url`] replaces it.
    pub fn new(ctx: &'c ClientCtx, start: Instant, method: &str, url: &str) -> Transaction<'c> {
        Transaction {
            ctx,
            start,
            method: method.to_string(),
            url: url.to_string(),
            user: None,
            client: None,
            details: Details {
                client_port: ctx.client_port,
                local: ctx.local_ip.map(|ip| SocketAddr::new(ip, ctx.local_port)),
                client_cert_subject: ctx.client_cert.as_ref().map(|c| c.subject.clone()),
                ..Details::default()
            },
        }
    }

    /// The request head, for the log: its version and size always, its fields only when a
    /// configured log format reads them.
    pub fn request_head(&mut self, version: u8, method: &str, target: &str, headers: &[Header]) {
        self.details.version = Some(version);
        // The head as a client writes it (`METHOD target HTTP/1.x`, `Name: value` lines);
        // the parser does not keep the raw length.
        let fields: usize = headers.iter().map(|h| h.name.len() + h.value.len() + 4).sum();
        self.details.request_size = (method.len() + target.len() + 12 + fields + 2) as u64;
        if self.ctx.generation.log_needs.request_headers {
            self.details.request_headers = loggable(headers);
        }
    }

    /// The next hop's answer, for the log (`%<Hs`, `%<h`).
    pub fn upstream_answered(&mut self, status: u16, headers: &[Header]) {
        self.details.upstream_status = Some(status);
        if self.ctx.generation.log_needs.reply_headers {
            self.details.reply_headers = loggable(headers);
        }
    }

    pub fn ctx(&self) -> &'c ClientCtx {
        self.ctx
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SNI read from a tunnel's ClientHello, for `%ssl::>sni`.
    pub fn set_sni(&mut self, sni: Option<String>) {
        self.details.sni = sni;
    }

    pub fn set_url(&mut self, url: String) {
        self.url = url;
    }

    /// Records the user the `http_access` decision saw (the decision itself is counted where
    /// it is made).
    pub fn decided(&mut self, user: Option<String>) {
        self.user = user;
    }

    /// Logs `client` instead of the connection's peer (an indirect client).
    pub fn set_client(&mut self, client: IpAddr) {
        if client != self.ctx.client_ip {
            self.client = Some(client);
        }
    }

    /// The single failure path: sends the failure's reply, if any, and logs. The caller then
    /// closes the client connection with [`close_gracefully`], so the line is logged before
    /// the client sees the end of the reply and the linger is not counted in its elapsed time.
    pub async fn fail(self, client: &mut BufConn, failure: Failure) {
        self.fail_after(client, failure, 0).await;
    }

    /// [`Transaction::fail`] after `sent` bytes already went to the client (a tunnel's 200).
    pub async fn fail_after(self, client: &mut BufConn, failure: Failure, sent: u64) {
        let Failure { reply, result, hop } = failure;
        let (status, bytes, content_type) = match &reply {
            Some(error) => (
                error.status,
                sent + self.ctx.send_reply(client, error).await as u64,
                Some("text/plain".into()),
            ),
            None => (0, sent, None),
        };
        self.finish(Outcome {
            result,
            status,
            bytes,
            hierarchy: hop.hierarchy,
            peer: hop.peer,
            content_type,
            bytes_to_upstream: 0,
        });
    }

    /// Ends the transaction: its one access-log record, and the metrics fed from it.
    pub fn finish(self, outcome: Outcome) {
        let ctx = self.ctx;
        let mut details = self.details;
        details.peer_port = outcome.peer.map(|a| a.port());
        let record = Record {
            end: SystemTime::now(),
            elapsed: self.start.elapsed(),
            client: self.client.unwrap_or(ctx.client_ip),
            result: outcome.result,
            status: outcome.status,
            bytes: outcome.bytes,
            method: self.method,
            url: self.url,
            user: self.user,
            hierarchy: outcome.hierarchy,
            peer: outcome.peer.map(|a| a.ip()),
            content_type: outcome.content_type,
            details,
        };
        let generation = &ctx.generation;
        let strip_query = generation.config.strip_query_terms;
        // The native line is rendered at most once, however many files take it, and the last
        // file that takes it gets it without a copy (usually the only one).
        let mut native: Option<String> = None;
        let mut native_pending: Option<&crate::log::LogSender> = None;
        for output in &generation.logs {
            if output.acls.is_empty() || ctx.log_acls_match(&output.acls, &record.method, &record.url) {
                match &output.format {
                    crate::log::Format::Native => {
                        if let Some(earlier) = native_pending.replace(&output.sender) {
                            earlier.send(native.get_or_insert_with(|| record.render(strip_query)).clone());
                        }
                    }
                    custom => output.sender.send(custom.render(&record, strip_query)),
                }
            }
        }
        if let Some(last) = native_pending {
            last.send(native.unwrap_or_else(|| record.render(strip_query)));
        }
        ctx.metrics.transaction_ended(&Ended {
            record: &record,
            bytes_to_upstream: outcome.bytes_to_upstream,
        });
    }
}

impl ClientCtx {
    /// `access_log … acl…`: ACLs are evaluated on what the record knows (client, method and
    /// the destination from the URL).
    fn log_acls_match(&self, acls: &[AclRef], method: &str, url: &str) -> bool {
        let target = if method.eq_ignore_ascii_case("CONNECT") {
            super::target::parse_connect(url).ok()
        } else {
            super::target::parse_absolute(url).ok()
        };
        let (host, port, proto, path) = match &target {
            Some(t) => (t.host.as_str(), t.port, t.proto, t.path.as_str()),
            None => ("", 0, "", ""),
        };
        let method = method.to_ascii_uppercase();
        let facts = RequestFacts {
            client: self.client_ip,
            method: &method,
            proto,
            host,
            port,
            path,
            dst_addrs: &[],
            host_aliases: &[],
            local_port: self.local_port,
            user: None,
            more: crate::policy::MoreFacts::default(),
        };
        let set = &self.generation.config.acls;
        acls.iter().all(|r| set.get(r.acl).kind.matches(&facts) != r.negated)
    }

    /// Sends an error reply; returns the bytes written.
    async fn send_reply(&self, client: &mut BufConn, error: &ProxyError) -> usize {
        let g = &self.generation;
        tracing::debug!(client = %self.client_ip, status = error.status, error = error.error.token(), "{}", error.details);
        let bytes = reply::render(&g.hostname, &g.via_entry, error);
        let _ = client.write_all(&bytes).await;
        bytes.len()
    }
}

fn loggable(headers: &[Header]) -> Vec<(String, Vec<u8>)> {
    headers.iter().map(|h| (h.name.clone(), h.value.clone())).collect()
}

/// Half-closes and drains what the client still sends for a moment, so our reply is not lost
/// to a reset caused by unread bytes.
pub async fn close_gracefully(stream: &mut crate::tls::Stream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let deadline = Instant::now() + LINGER;
    for _ in 0..64 {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => continue,
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::Path;

    use super::*;

    /// A context whose generation logs nowhere, over a registry the test reads back.
    fn context(metrics: Arc<Metrics>) -> ClientCtx {
        let config = crate::config::parse_str(
            "http_port 127.0.61.1:3128\nvisible_hostname test.invalid\n",
            Path::new("test.conf"),
        )
        .map_err(|d| format!("{d:?}"))
        .expect("a valid config")
        .config;
        let generation = Generation::new(Arc::new(config), None, Vec::new()).expect("a generation");
        ClientCtx {
            generation: Arc::new(generation),
            client_ip: IpAddr::V4(Ipv4Addr::new(127, 0, 61, 2)),
            client_port: 40000,
            local_port: 3128,
            local_ip: None,
            client_connections: 1,
            client_cert: None,
            shutdown: watch::channel(false).1,
            metrics,
        }
    }

    #[test]
    fn an_outcome_is_counted_where_the_transaction_ends() {
        let metrics = Arc::new(Metrics::new());
        let ctx = context(Arc::clone(&metrics));
        let mut tx = Transaction::new(&ctx, Instant::now(), "GET", "http://example.invalid/");
        tx.decided(None);
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 61, 3)), 80);
        tx.finish(Outcome {
            result: ResultCode::Miss,
            status: 204,
            bytes: 120,
            hierarchy: Hierarchy::Direct,
            peer: Some(peer),
            content_type: None,
            bytes_to_upstream: 77,
        });
        let text = metrics.encode();
        for expected in [
            r#"hopproxy_requests_total{method="GET",status_class="2xx",hierarchy="HIER_DIRECT"} 1"#,
            r#"hopproxy_bytes_total{direction="to_client"} 120"#,
            r#"hopproxy_bytes_total{direction="to_upstream"} 77"#,
            "hopproxy_tunnels_total 0",
        ] {
            assert!(text.lines().any(|l| l == expected), "missing {expected:?} in:\n{text}");
        }
    }
}
