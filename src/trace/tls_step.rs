//! The TLS step through the tunnel: handshake whatever the certificate, then judge trust,
//! name and ALPN.

use std::sync::Arc;
use std::time::Instant;

use rustls::ClientConnection;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::report::{Step, TlsFacts};
use super::tls_probe::{self, RecordingVerifier};
use super::tracer::Tracer;
use crate::client::tls;
use crate::tls::{Stream, x509};

impl Tracer {
    /// TLS with the target through the tunnel, the verdict on its certificate, ALPN, and the
    /// optional request.
    pub(super) async fn tls_and_request(&mut self, stream: Stream) {
        let host = self
            .opts
            .target_host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let started = Instant::now();
        let Some((tls, verifier)) = self.handshake(stream, &host, started).await else {
            return;
        };
        let facts = observe(tls.get_ref().1, &verifier, &host);
        let (trusted, name_ok) = (facts.trusted, facts.name_matches);
        let detail = format!(
            "TLS handshake with {host}: {}, subject {}, issuer {}, {}, {}",
            facts.version,
            facts.subject,
            facts.issuer,
            if trusted { "trusted" } else { "NOT trusted" },
            if name_ok { "name matches" } else { "name does NOT match" }
        );
        self.report.tls = Some(facts.clone());
        self.step("tls", trusted && name_ok, started, detail);
        if !trusted {
            let why = facts.verifier_error.unwrap_or_default();
            let trust = match &self.opts.ca_file {
                Some(p) => format!("the CA in {}", p.display()),
                None => "the system roots".to_string(),
            };
            let reason = format!(
                "the certificate presented for {host} (issuer {}) is not trusted by {trust} ({why}): possible TLS interception by a proxy",
                facts.issuer
            );
            self.fail(None, None, "tls_untrusted", reason);
            return;
        }
        if !name_ok {
            let reason = format!(
                "the certificate presented for {host} is for {:?}, not {host}",
                facts.dns_names
            );
            self.fail(None, None, "tls_name_mismatch", reason);
            return;
        }
        let alpn = facts.alpn;
        let alpn_ok = alpn.as_deref() == Some("h2");
        self.report.steps.push(Step {
            step: "alpn".into(),
            ok: alpn_ok,
            ms: 0.0,
            detail: format!("ALPN: {}", alpn.as_deref().unwrap_or("none")),
        });
        if self.opts.request {
            self.request(tls, alpn_ok).await;
        }
        if !alpn_ok && self.report.failure.is_none() {
            let reason = format!(
                "{} does not offer HTTP/2 (ALPN {}); the agent needs h2",
                self.report.target,
                alpn.as_deref().unwrap_or("none")
            );
            self.fail(None, None, "no_h2", reason);
        }
    }

    /// The handshake, accepting any certificate (the verifier records what webpki thought of
    /// it); `None` after recording the failure.
    async fn handshake(
        &mut self,
        stream: Stream,
        host: &str,
        started: Instant,
    ) -> Option<(TlsStream<Stream>, Arc<RecordingVerifier>)> {
        let roots = match tls::root_store(self.opts.ca_file.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                self.step("tls", false, started, e.to_string());
                self.fail(None, None, "tls_setup", e.to_string());
                return None;
            }
        };
        let verifier = match RecordingVerifier::new(roots) {
            Ok(v) => v,
            Err(e) => {
                self.fail(None, None, "tls_setup", e);
                return None;
            }
        };
        let mut config = match tls::client_builder() {
            Ok(b) => b
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_no_client_auth(),
            Err(e) => {
                self.fail(None, None, "tls_setup", e.to_string());
                return None;
            }
        };
        // Offer both so a missing h2 is reported as such rather than as a handshake failure.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let Ok(name) = ServerName::try_from(host.to_string()) else {
            self.fail(
                None,
                None,
                "tls_setup",
                format!("'{host}' is not a valid TLS server name"),
            );
            return None;
        };
        let handshake = TlsConnector::from(Arc::new(config)).connect(name, stream);
        match tokio::time::timeout(self.opts.step_timeout, handshake).await {
            Ok(Ok(tls)) => Some((tls, verifier)),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                // The tunnel was up (200) and closed on our ClientHello without one byte of a
                // ServerHello: what a proxy checking server names does when it terminates.
                self.step("tls", false, started, format!("TLS handshake with {host}: {e}"));
                self.fail(
                    None,
                    None,
                    "tls_tunnel_terminated",
                    format!(
                        "the tunnel closed right after our ClientHello (SNI {host}, ALPN h2, http/1.1) without an answer: \
                         a proxy on the way checks TLS server names (ssl_bump terminate, tunnel_sni_must_match) and \
                         refused {host}, or the server closed; the proxy's access log says TCP_DENIED/200 when it refused"
                    ),
                );
                None
            }
            Ok(Err(e)) => {
                self.step("tls", false, started, format!("TLS handshake with {host}: {e}"));
                self.fail(
                    None,
                    None,
                    "tls_protocol_error",
                    format!("the TLS handshake with {host} failed: {e}"),
                );
                None
            }
            Err(_) => {
                self.step(
                    "tls",
                    false,
                    started,
                    format!("TLS handshake with {host}: no answer in time"),
                );
                self.fail(
                    None,
                    None,
                    "tls_timeout",
                    format!("no TLS answer from {host} through the tunnel"),
                );
                None
            }
        }
    }
}

/// What the finished handshake shows: the certificate, webpki's verdict, the name, ALPN.
fn observe(conn: &ClientConnection, verifier: &RecordingVerifier, host: &str) -> TlsFacts {
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| x509::summarize(c))
        .unwrap_or_default();
    let version = conn
        .protocol_version()
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_string();
    let alpn = conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).to_string());
    let name_matches = tls_probe::name_matches(host, &cert.dns_names);
    // A name mismatch is reported on its own; the chain itself is still trusted.
    let (trusted, verifier_error) = match verifier.verdict() {
        Some(Ok(())) => (true, None),
        Some(Err(
            e @ rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            ),
        )) => (true, Some(e.to_string())),
        Some(Err(e)) => (false, Some(e.to_string())),
        None => (false, Some("no certificate was checked".into())),
    };
    TlsFacts {
        version,
        subject: cert.subject,
        issuer: cert.issuer,
        dns_names: cert.dns_names,
        trusted,
        name_matches,
        verifier_error,
        alpn,
    }
}
