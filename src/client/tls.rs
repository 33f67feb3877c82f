//! TLS client settings: one crypto provider, and trust in a CA file or the system roots.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, ConfigBuilder, RootCertStore, WantsVerifier};

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("reading CA file {path}: {message}")]
    CaFile { path: PathBuf, message: String },
    #[error("CA file {0} holds no certificate")]
    EmptyCaFile(PathBuf),
    #[error("no system root certificates could be loaded")]
    NoSystemRoots,
    #[error("building the TLS client config: {0}")]
    Config(#[from] rustls::Error),
}

/// The trust anchors: every certificate in `ca_file`, or the system's roots when none is given.
pub fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let err = |message: String| TlsSetupError::CaFile {
                path: path.to_path_buf(),
                message,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| err(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.to_string()))?;
            if certs.is_empty() {
                return Err(TlsSetupError::EmptyCaFile(path.to_path_buf()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| err(e.to_string()))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(TlsSetupError::NoSystemRoots);
            }
        }
    }
    Ok(roots)
}

/// The crate builds rustls with ring only; naming it avoids depending on a process default.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client config builder with [`provider`] and rustls' default protocol versions, waiting
/// for its certificate verifier (roots, or a custom verifier as trace uses).
pub fn client_builder() -> Result<ConfigBuilder<ClientConfig, WantsVerifier>, TlsSetupError> {
    Ok(ClientConfig::builder_with_provider(provider()).with_protocol_versions(rustls::DEFAULT_VERSIONS)?)
}

/// A client config with the given roots and ALPN offer.
pub fn client_config(roots: RootCertStore, alpn: &[&[u8]]) -> Result<ClientConfig, TlsSetupError> {
    let mut config = client_builder()?.with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Shorthand: roots from `ca_file` (or the system) and ALPN `h2`.
pub fn h2_client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsSetupError> {
    Ok(Arc::new(client_config(root_store(ca_file)?, &[b"h2"])?))
}
