//! Handshakes on the proxy legs, and naming what went wrong in words an operator can act on
//! (RFC 9209 splits them into `tls_certificate_error` and `tls_protocol_error`).

use std::fmt;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError};
use tokio::net::TcpStream;

use super::settings::{ListenTls, PeerTls};
use super::stream::Stream;
use super::x509;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The other side's certificate is not signed by a CA we trust.
    UnknownCa,
    /// The certificate does not carry the name we expect.
    NameMismatch(String),
    /// Expired, not yet valid, revoked, malformed…
    BadCertificate(String),
    /// The other side sent no certificate where one is required.
    NoCertificate,
    /// The other side refused our certificate, or our lack of one (a TLS alert).
    CertificateRefused(String),
    /// Anything else in the handshake (versions, ciphers, not TLS at all, a close).
    Protocol(String),
    Timeout,
    /// The other side closed before sending anything.
    Closed,
}

impl TlsFailure {
    /// True for RFC 9209's `tls_certificate_error`: the next hop's certificate did not verify.
    pub fn is_certificate_error(&self) -> bool {
        matches!(
            self,
            TlsFailure::UnknownCa | TlsFailure::NameMismatch(_) | TlsFailure::BadCertificate(_)
        )
    }

    /// Names the failure behind an I/O error of a handshake (or of the first read after one:
    /// with TLS 1.3 a server refuses a client certificate only after the client finished).
    pub fn from_io(error: &std::io::Error, expected_name: &str) -> TlsFailure {
        match error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(e) => TlsFailure::from_rustls(e, expected_name),
            None if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                TlsFailure::Protocol("the connection closed during the TLS handshake (is it a TLS port?)".into())
            }
            None => TlsFailure::Protocol(error.to_string()),
        }
    }

    /// The TLS failure behind an error on an established TLS connection, if it is one (a
    /// TLS 1.3 server refuses a client certificate only after the client's handshake ended,
    /// so the refusal arrives at the first read).
    pub fn after_handshake(error: &std::io::Error, expected_name: &str) -> Option<TlsFailure> {
        let inner = error.get_ref()?.downcast_ref::<rustls::Error>()?;
        Some(TlsFailure::from_rustls(inner, expected_name))
    }

    pub fn from_rustls(error: &rustls::Error, expected_name: &str) -> TlsFailure {
        match error {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => TlsFailure::UnknownCa,
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    TlsFailure::NameMismatch(expected_name.to_string())
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    TlsFailure::BadCertificate("the certificate has expired".into())
                }
                other => TlsFailure::BadCertificate(format!("{other:?}")),
            },
            rustls::Error::NoCertificatesPresented => TlsFailure::NoCertificate,
            rustls::Error::AlertReceived(alert) => match alert {
                AlertDescription::CertificateRequired
                | AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::AccessDenied => TlsFailure::CertificateRefused(alert_name(*alert)),
                other => TlsFailure::Protocol(format!("the other side sent TLS alert {}", alert_name(*other))),
            },
            other => TlsFailure::Protocol(other.to_string()),
        }
    }
}

fn alert_name(alert: AlertDescription) -> String {
    // rustls' Debug names are CamelCase; the RFC's are snake_case.
    let debug = format!("{alert:?}");
    let mut out = String::new();
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out.replace("unknown_c_a", "unknown_ca")
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::UnknownCa => f.write_str("certificate signed by an unknown CA"),
            TlsFailure::NameMismatch(name) => write!(f, "certificate not valid for the name {name}"),
            TlsFailure::BadCertificate(why) => write!(f, "bad certificate: {why}"),
            TlsFailure::NoCertificate => f.write_str("no client certificate presented"),
            TlsFailure::CertificateRefused(alert) => {
                write!(f, "our client certificate was refused (TLS alert {alert})")
            }
            TlsFailure::Protocol(why) => write!(f, "TLS handshake failed: {why}"),
            TlsFailure::Timeout => f.write_str("TLS handshake timed out"),
            TlsFailure::Closed => f.write_str("the connection closed before the TLS handshake"),
        }
    }
}

/// The verified client certificate of an `https_port` connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The subject's common name (for `user_cert CN`).
    pub common_name: Option<String>,
    /// `CN=…, O=…` as logged by `%ssl::>cert_subject`.
    pub subject: String,
}

/// Server side of an `https_port` handshake, bounded by `timeout`.
pub async fn accept(
    tcp: TcpStream,
    tls: &ListenTls,
    timeout: Duration,
) -> Result<(Stream, Option<ClientCert>), TlsFailure> {
    let Some(config) = tls.config.clone() else {
        return Err(TlsFailure::Protocol("the port's certificate was not loaded".into()));
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let mut probe = [0u8; 1];
    match tokio::time::timeout(timeout, tcp.peek(&mut probe)).await {
        Err(_) => return Err(TlsFailure::Timeout),
        Ok(Ok(0)) | Ok(Err(_)) => return Err(TlsFailure::Closed),
        Ok(Ok(_)) => {}
    }
    let stream = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Err(_) => return Err(TlsFailure::Timeout),
        Ok(Err(e)) => {
            return Err(match TlsFailure::from_io(&e, "") {
                // Here the alert is the client's verdict on our certificate.
                TlsFailure::CertificateRefused(alert) => TlsFailure::Protocol(format!(
                    "the client refused this port's certificate (TLS alert {alert})"
                )),
                other => other,
            });
        }
        Ok(Ok(stream)) => stream,
    };
    let client_cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|der| {
            let summary = x509::summarize(der);
            ClientCert {
                common_name: x509::common_name(der),
                subject: summary.subject,
            }
        });
    Ok((Stream::TlsServer(Box::new(stream)), client_cert))
}

/// Client side of a `cache_peer … tls` handshake, bounded by `timeout`.
pub async fn connect(tcp: TcpStream, tls: &PeerTls, host: &str, timeout: Duration) -> Result<Stream, TlsFailure> {
    let expected = tls.domain.as_deref().unwrap_or(host).to_string();
    let Some(config) = tls.config.clone() else {
        return Err(TlsFailure::Protocol("the peer's TLS settings were not loaded".into()));
    };
    let name: ServerName<'static> = tls
        .server_name(host)
        .ok_or_else(|| TlsFailure::Protocol(format!("'{expected}' is not a valid TLS server name")))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Err(_) => Err(TlsFailure::Timeout),
        Ok(Err(e)) => Err(TlsFailure::from_io(&e, &expected)),
        Ok(Ok(stream)) => Ok(Stream::TlsClient(Box::new(stream))),
    }
}
