//! The TLS step of trace: finish the handshake whatever the certificate, and say what was wrong.
//!
//! The verifier asks webpki, records its verdict and accepts anyway, so trace can still show
//! the presented certificate and the ALPN result. Nothing is sent over such a session except
//! trace's own optional request, and only when the certificate was trusted.

use std::sync::{Arc, Mutex};

use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// webpki's verdict on the presented chain.
#[derive(Debug)]
pub struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    verdict: Mutex<Option<Result<(), rustls::Error>>>,
}

impl RecordingVerifier {
    pub fn new(roots: rustls::RootCertStore) -> Result<Arc<Self>, String> {
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crate::client::tls::provider())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(RecordingVerifier {
            inner,
            verdict: Mutex::new(None),
        }))
    }

    /// `None` when no certificate was checked (handshake failed before).
    pub fn verdict(&self) -> Option<Result<(), rustls::Error>> {
        self.verdict.lock().ok().and_then(|v| v.clone())
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = Some(result.map(|_| ()));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Whether `host` matches one of the certificate's DNS names (one leading `*.` label allowed).
pub fn name_matches(host: &str, dns_names: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    dns_names.iter().any(|name| {
        let name = name.to_ascii_lowercase();
        match name.strip_prefix("*.") {
            Some(suffix) => host.split_once('.').is_some_and(|(_, rest)| rest == suffix),
            None => name == host,
        }
    })
}
