//! Turning a failure to reach the next hop into the reply and the log fields.

use super::reply::{ErrorType, ProxyError};
use super::transaction::HopSeen;
use crate::route::dial::{ConnectFailure, FailureReason, HopFailure};
use crate::route::dns::ResolveError;
use crate::route::tunnel::TunnelError;
use crate::tls::TlsFailure;

/// The reply for a request that could not reach any next hop, and the hop to log.
pub fn describe(error: &TunnelError) -> (ProxyError, HopSeen) {
    let failures = match error {
        TunnelError::NoRoute => {
            let e = ProxyError::new(503, ErrorType::DestinationUnavailable, "no next hop may be used for this request")
                .with_hint("never_direct forbids going direct and no cache_peer is allowed for this request (check cache_peer_access)");
            return (e, HopSeen::NONE);
        }
        TunnelError::Failed(failures) => failures,
    };
    // The first failure is the most telling: later ones are fall-backs.
    let Some(first) = failures.first() else {
        return (
            ProxyError::new(503, ErrorType::DestinationUnavailable, "no next hop"),
            HopSeen::NONE,
        );
    };
    let summary = failures
        .iter()
        .map(HopFailure::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let (status, kind, hint) = classify(&first.reason);
    let mut reply = ProxyError::new(status, kind, summary);
    reply.hint = Some(hint);
    if let Some(addr) = first.addr {
        reply = reply.with_next_hop(addr.to_string());
    }
    let hop = match first.addr {
        Some(addr) => HopSeen::at(first.attempt, addr),
        None => HopSeen::NONE,
    };
    (reply, hop)
}

/// The reply member and log hop for one failed connect, on its own (a request that tried
/// several hops lists each as a `Proxy-Status` member).
pub fn describe_one(failure: &HopFailure) -> (ProxyError, HopSeen) {
    let (status, kind, hint) = classify(&failure.reason);
    let mut reply = ProxyError::new(status, kind, failure.to_string());
    reply.hint = Some(hint);
    match failure.addr {
        Some(addr) => (
            reply.with_next_hop(addr.to_string()),
            HopSeen::at(failure.attempt, addr),
        ),
        None => (reply, HopSeen::NONE),
    }
}

fn classify(reason: &FailureReason) -> (u16, ErrorType, &'static str) {
    match reason {
        FailureReason::Dns(ResolveError::NotFound(_)) => (
            502,
            ErrorType::DnsError,
            "the name does not resolve from this proxy (check the name, hosts_file and DNS)",
        ),
        FailureReason::Dns(ResolveError::Timeout) => (504, ErrorType::DnsError, "DNS did not answer in time"),
        FailureReason::Connect(ConnectFailure::Refused) => (
            503,
            ErrorType::ConnectionRefused,
            "nothing listens there: is the next hop running, and is the port right?",
        ),
        FailureReason::Connect(ConnectFailure::Timeout) => (
            504,
            ErrorType::ConnectionTimeout,
            "no answer: a firewall may drop the traffic, or the next hop is down",
        ),
        FailureReason::Connect(ConnectFailure::Unreachable) => (
            503,
            ErrorType::DestinationIpUnroutable,
            "no route from this proxy to the next hop",
        ),
        FailureReason::Connect(ConnectFailure::ClosedBeforeAnswer) => (
            502,
            ErrorType::ConnectionTerminated,
            "the next hop closed the connection without answering",
        ),
        FailureReason::Tls(TlsFailure::UnknownCa) => (
            502,
            ErrorType::TlsCertificateError,
            "the next hop's certificate is not signed by the CA in this proxy's tls-cafile=",
        ),
        FailureReason::Tls(TlsFailure::NameMismatch(_)) => (
            502,
            ErrorType::TlsCertificateError,
            "the next hop's certificate does not carry the name this proxy expects: set tls-domain= to the name in it, or reissue it",
        ),
        FailureReason::Tls(failure) if failure.is_certificate_error() => (
            502,
            ErrorType::TlsCertificateError,
            "the next hop's certificate did not verify",
        ),
        FailureReason::Tls(TlsFailure::CertificateRefused(_)) => (
            502,
            ErrorType::TlsProtocolError,
            "the next hop wants a client certificate it trusts: set tls-cert= and tls-key= on the cache_peer line",
        ),
        FailureReason::Tls(TlsFailure::Timeout) => (
            504,
            ErrorType::TlsProtocolError,
            "the next hop accepted the connection but did not complete a TLS handshake in time",
        ),
        FailureReason::Tls(_) => (
            502,
            ErrorType::TlsProtocolError,
            "the next hop does not speak TLS on that port as configured (is it an https_port?)",
        ),
        FailureReason::Connect(ConnectFailure::Other(_)) => (
            502,
            ErrorType::DestinationUnavailable,
            "the next hop could not be reached",
        ),
    }
}
