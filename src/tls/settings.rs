//! TLS settings from squid.conf options, loaded into rustls configs when the config is read,
//! so a bad certificate or key is a `file:line:` error at load (and a rejected reload), never
//! a failure at the first connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};

use crate::client::tls::{provider, root_store};

/// `tls-min-version=`: rustls speaks TLS 1.2 and 1.3 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    #[default]
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// `1.0`, `1.1` and `1.2` all mean "1.2 and up" (older versions are never offered);
    /// `1.3` means 1.3 only.
    pub fn parse(text: &str) -> Result<TlsVersion, String> {
        match text {
            "1.0" | "1.1" | "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            other => Err(format!("'{other}' is not a TLS version (1.2 or 1.3)")),
        }
    }

    fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self {
            TlsVersion::Tls12 => rustls::ALL_VERSIONS,
            TlsVersion::Tls13 => TLS13_ONLY,
        }
    }
}

/// TLS on an `https_port`.
#[derive(Clone)]
pub struct ListenTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `clientca=` / `tls-cafile=`: demand a client certificate signed by one of these CAs.
    pub client_ca: Option<PathBuf>,
    pub min_version: TlsVersion,
    /// TLS 1.3 session tickets (resumption); `tls-options=NO_TICKET` turns them off, which
    /// Squid 5.7's GnuTLS build needs as a child (it fails on the ticket after the handshake).
    pub session_tickets: bool,
    /// `None` only when the config was read without its files (`check --syntax-only`).
    pub config: Option<Arc<ServerConfig>>,
}

/// TLS to a parent: `cache_peer … tls`.
#[derive(Clone)]
pub struct PeerTls {
    /// `tls-cafile=`; without it, the system's roots.
    pub ca_file: Option<PathBuf>,
    /// `tls-cert=` and `tls-key=` (the key defaults to the certificate file, as in Squid).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `tls-domain=`: the name the parent's certificate must carry; default the peer host.
    pub domain: Option<String>,
    pub min_version: TlsVersion,
    pub config: Option<Arc<ClientConfig>>,
}

impl PeerTls {
    pub fn server_name(&self, host: &str) -> Option<ServerName<'static>> {
        ServerName::try_from(self.domain.as_deref().unwrap_or(host).to_string()).ok()
    }
}

// Two settings are the same when they were written the same (the loaded configs cannot be
// compared; a reload loads them again anyway).
impl PartialEq for ListenTls {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.cert,
            &self.key,
            &self.client_ca,
            self.min_version,
            self.session_tickets,
        ) == (
            &other.cert,
            &other.key,
            &other.client_ca,
            other.min_version,
            other.session_tickets,
        )
    }
}
impl Eq for ListenTls {}
impl PartialEq for PeerTls {
    fn eq(&self, other: &Self) -> bool {
        (&self.ca_file, &self.cert, &self.key, &self.domain, self.min_version)
            == (
                &other.ca_file,
                &other.cert,
                &other.key,
                &other.domain,
                other.min_version,
            )
    }
}
impl Eq for PeerTls {}

impl std::fmt::Debug for ListenTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenTls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("client_ca", &self.client_ca)
            .field("min_version", &self.min_version)
            .field("session_tickets", &self.session_tickets)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls")
            .field("ca_file", &self.ca_file)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("domain", &self.domain)
            .field("min_version", &self.min_version)
            .finish_non_exhaustive()
    }
}

/// Why TLS settings could not be loaded: the message names the file, the hint what to fix.
#[derive(Debug)]
pub struct LoadError {
    pub message: String,
    pub hint: String,
}

fn load_error(message: impl Into<String>, hint: impl Into<String>) -> LoadError {
    LoadError {
        message: message.into(),
        hint: hint.into(),
    }
}

/// Every certificate in a PEM file (the first is the leaf, the rest its chain).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let hint = "give a PEM file with the certificate first, then its intermediates (-----BEGIN CERTIFICATE-----)";
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| load_error(format!("cannot read certificate file {}: {e}", path.display()), hint))?;
    if certs.is_empty() {
        return Err(load_error(
            format!("certificate file {} holds no certificate", path.display()),
            hint,
        ));
    }
    Ok(certs)
}

pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, LoadError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        load_error(
            format!("cannot read a private key from {}: {e}", path.display()),
            "give an unencrypted PEM private key (-----BEGIN PRIVATE KEY----- or RSA/EC PRIVATE KEY)",
        )
    })
}

fn roots(path: Option<&Path>) -> Result<rustls::RootCertStore, LoadError> {
    root_store(path).map_err(|e| {
        load_error(
            e.to_string(),
            "give a PEM file with the CA certificate(s) that signed the other side's certificate",
        )
    })
}

impl ListenTls {
    /// Reads the files and builds the rustls server config.
    pub fn load(mut self) -> Result<ListenTls, LoadError> {
        let certs = read_certs(&self.cert)?;
        let key = read_key(&self.key)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(self.min_version.versions())
            .map_err(|e| load_error(e.to_string(), "use tls-min-version=1.2 or 1.3"))?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(Some(ca))?), provider())
                    .build()
                    .map_err(|e| load_error(format!("client CA file {}: {e}", ca.display()), "give a PEM CA file"))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|e| {
            load_error(
                format!(
                    "certificate {} and key {} cannot be used: {e}",
                    self.cert.display(),
                    self.key.display()
                ),
                "the key must be the private key of the first certificate in the file",
            )
        })?;
        // Clients of a proxy port speak HTTP/1.1 to it (CONNECT and plain requests).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if !self.session_tickets {
            config.send_tls13_tickets = 0;
        }
        self.config = Some(Arc::new(config));
        Ok(self)
    }
}

impl PeerTls {
    pub fn load(mut self) -> Result<PeerTls, LoadError> {
        let roots = roots(self.ca_file.as_deref())?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(self.min_version.versions())
            .map_err(|e| load_error(e.to_string(), "use tls-min-version=1.2 or 1.3"))?
            .with_root_certificates(roots);
        let mut config = match (&self.cert, &self.key) {
            (Some(cert), key) => {
                let key_path = key.as_ref().unwrap_or(cert);
                let certs = read_certs(cert)?;
                let key = read_key(key_path)?;
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    load_error(
                        format!(
                            "client certificate {} and key {} cannot be used: {e}",
                            cert.display(),
                            key_path.display()
                        ),
                        "the key must be the private key of the first certificate in the file",
                    )
                })?
            }
            (None, Some(_)) => {
                return Err(load_error(
                    "tls-key= without tls-cert=",
                    "add tls-cert=FILE with the certificate that goes with the key",
                ));
            }
            (None, None) => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        self.config = Some(Arc::new(config));
        Ok(self)
    }
}
