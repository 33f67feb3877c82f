//! Establishing the upstream side of a CONNECT tunnel: direct, or by sending our own CONNECT
//! to a parent and reading its answer. Failover to the next parent happens only while no
//! parent has answered: an answer (even 403 or 503) is the parent speaking about the
//! destination, so it is relayed, not retried, and not counted against the parent.

use std::net::SocketAddr;
use std::time::Duration;

use super::dial::{
    ConnectFailure, Connected, Destination, FailureReason, HopFailure, connect_hop, note_parent_failure,
};
use super::egress::Egress;
use super::select::{Attempt, NextHop};
use crate::config::{Config, PeerLogin};
use crate::http1::head::parse_response;
use crate::http1::{BufConn, HeadError, ResponseHead};
use crate::policy::RequestFacts;

/// Largest answer head we accept from a parent.
const PARENT_HEAD_LIMIT: usize = 64 * 1024;

pub enum TunnelOutcome {
    /// The next hop is connected (and, for a parent, answered 200). `upstream.buf` holds any
    /// tunnel bytes that arrived right behind the parent's 200.
    Established {
        upstream: BufConn,
        addr: SocketAddr,
        attempt: Attempt,
    },
    /// A parent answered with something other than 2xx. `upstream.buf` starts with the body.
    ParentAnswered {
        upstream: BufConn,
        head: ResponseHead,
        addr: SocketAddr,
        attempt: Attempt,
    },
}

#[derive(Debug)]
pub enum TunnelError {
    /// No hop may be used (e.g. `never_direct` with no eligible parent).
    NoRoute,
    /// Every hop failed; the failures in the order tried.
    Failed(Vec<HopFailure>),
}

/// What to send a parent: the CONNECT head up to (not including) the final blank line, and
/// the client's own `Proxy-Authorization` for `login=PASSTHRU`.
pub struct ParentRequest<'a> {
    pub head: &'a [u8],
    pub client_proxy_auth: Option<&'a [u8]>,
}

pub async fn open(
    egress: &Egress,
    config: &Config,
    facts: &RequestFacts<'_>,
    plan: &[Attempt],
    destination: &Destination<'_>,
    parent_request: &ParentRequest<'_>,
) -> Result<TunnelOutcome, TunnelError> {
    if plan.is_empty() {
        return Err(TunnelError::NoRoute);
    }
    let mut failures = Vec::new();
    // forward_timeout: the time within which new attempts may start, as for plain HTTP.
    let forward_deadline = tokio::time::Instant::now() + config.forward_timeout;
    for &attempt in plan {
        if !failures.is_empty() && tokio::time::Instant::now() >= forward_deadline {
            break;
        }
        let connected = match connect_hop(egress, config, facts, attempt, destination, forward_deadline).await {
            Ok(c) => c,
            Err(failure) => {
                tracing::debug!("{failure}");
                failures.push(failure);
                continue;
            }
        };
        let NextHop::Parent(index) = attempt.hop else {
            let Connected { stream, addr, attempt } = connected;
            return Ok(TunnelOutcome::Established {
                upstream: BufConn::new(stream),
                addr,
                attempt,
            });
        };
        match handshake(egress, config, index, connected, parent_request).await {
            Ok(outcome) => return Ok(outcome),
            Err(failure) => failures.push(failure),
        }
    }
    Err(TunnelError::Failed(failures))
}

/// Sends our CONNECT to parent `index` and reads its answer.
async fn handshake(
    egress: &Egress,
    config: &Config,
    index: usize,
    connected: Connected,
    request: &ParentRequest<'_>,
) -> Result<TunnelOutcome, HopFailure> {
    let peer = &config.peers[index];
    let Connected { stream, addr, attempt } = connected;
    let mut upstream = BufConn::new(stream);
    let mut head = Vec::with_capacity(request.head.len() + 128);
    head.extend_from_slice(request.head);
    append_peer_login(&mut head, peer.login.as_ref(), request.client_proxy_auth);
    head.extend_from_slice(b"\r\n");
    let fail = |failure: ConnectFailure| {
        note_parent_failure(egress, config, index, &[addr], &failure);
        HopFailure {
            attempt,
            target: format!("parent {}", peer.name),
            addr: Some(addr),
            reason: FailureReason::Connect(failure),
        }
    };
    let tls_fail = |e: &std::io::Error| {
        let failure =
            crate::tls::TlsFailure::after_handshake(e, peer.tls.as_ref()?.domain.as_deref().unwrap_or(&peer.host))?;
        note_parent_failure(
            egress,
            config,
            index,
            &[addr],
            &ConnectFailure::Other(failure.to_string()),
        );
        Some(HopFailure {
            attempt,
            target: format!("parent {}", peer.name),
            addr: Some(addr),
            reason: FailureReason::Tls(failure),
        })
    };
    if let Err(e) = upstream.write_all(&head).await {
        return Err(tls_fail(&e).unwrap_or_else(|| fail(super::dial::classify(&e))));
    }
    // The parent may itself wait up to its connect_timeout for the origin.
    let answer_timeout = config.connect_timeout + config.peer_connect_timeout.min(Duration::from_secs(30));
    match upstream
        .read_head(PARENT_HEAD_LIMIT, answer_timeout, parse_response)
        .await
    {
        Ok((head, len)) if (200..300).contains(&head.status) => {
            let _ = upstream.buf.split_to(len);
            Ok(TunnelOutcome::Established {
                upstream,
                addr,
                attempt,
            })
        }
        Ok((head, len)) => {
            let _ = upstream.buf.split_to(len);
            Ok(TunnelOutcome::ParentAnswered {
                upstream,
                head,
                addr,
                attempt,
            })
        }
        Err(HeadError::Timeout { .. }) => Err(fail(ConnectFailure::Timeout)),
        Err(HeadError::ClosedEarly { .. }) => Err(fail(ConnectFailure::ClosedBeforeAnswer)),
        Err(HeadError::Io(e)) => Err(tls_fail(&e).unwrap_or_else(|| fail(super::dial::classify(&e)))),
        Err(other) => Err(fail(ConnectFailure::Other(format!(
            "invalid answer from parent: {other}"
        )))),
    }
}

/// Adds `Proxy-Authorization` for the parent: ours for `login=user:pass`, the client's for
/// `login=PASSTHRU`, none otherwise (a client's credentials are for us, not for the parent).
pub fn append_peer_login(head: &mut Vec<u8>, login: Option<&PeerLogin>, client_proxy_auth: Option<&[u8]>) {
    match login {
        Some(PeerLogin::Basic { user, password }) => {
            use base64::Engine as _;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            head.extend_from_slice(format!("Proxy-Authorization: Basic {token}\r\n").as_bytes());
        }
        Some(PeerLogin::PassThru) => {
            if let Some(value) = client_proxy_auth {
                head.extend_from_slice(b"Proxy-Authorization: ");
                head.extend_from_slice(value);
                head.extend_from_slice(b"\r\n");
            }
        }
        None => {}
    }
}
