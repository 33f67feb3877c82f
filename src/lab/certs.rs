//! Throw-away PKI for the lab: one CA and one leaf certificate for a DNS name, and more leaves
//! on demand (the proxies' certificates when the legs between them use TLS).
//!
//! Nothing here is meant to protect anything: keys live in memory and in the lab directory,
//! and vanish with it. The CA is what the agent (and curl) trust via `--ca-file`/`--cacert`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::client::tls::provider;

/// Why a lab PKI could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("building a TLS config: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    ClientTls(#[from] crate::client::tls::TlsSetupError),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// A CA and a leaf certificate (signed by that CA) for one DNS name, in memory.
pub struct Pki {
    /// Kept to issue more leaves (the proxies' certificates for TLS legs).
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    leaf_der: CertificateDer<'static>,
    leaf_pem: String,
    key_der: Vec<u8>,
    key_pem: String,
}

/// Where [`Pki::write`] put the PEM files.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    /// The CA certificate: give it to clients (`--ca-file`, `curl --cacert`).
    pub ca_cert: PathBuf,
    /// Leaf certificate followed by the CA certificate.
    pub leaf_chain: PathBuf,
    /// The leaf's private key (PKCS#8).
    pub leaf_key: PathBuf,
}

impl Pki {
    /// Makes a CA named `ca_name` and a leaf certificate for `dns_name` signed by it.
    pub fn generate(dns_name: &str, ca_name: &str) -> Result<Pki, CertError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name.push(DnType::CommonName, ca_name);
        ca_params
            .distinguished_name
            .push(DnType::OrganizationName, "hopproxy lab");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key)?;

        let leaf_key = KeyPair::generate()?;
        let mut leaf_params = CertificateParams::new(vec![dns_name.to_string()])?;
        leaf_params.distinguished_name.push(DnType::CommonName, dns_name);
        leaf_params.use_authority_key_identifier_extension = true;
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key)?;

        Ok(Pki {
            ca_der: ca.der().clone(),
            ca_pem: ca.pem(),
            leaf_der: leaf.der().clone(),
            leaf_pem: leaf.pem(),
            key_der: leaf_key.serialize_der(),
            key_pem: leaf_key.serialize_pem(),
            ca,
            ca_key,
        })
    }

    /// Issues another leaf for `dns_name` (its common name too) fit for both ends of a TLS
    /// leg, and writes `<stem>.pem` (leaf + CA) and `<stem>.key` into `dir`.
    pub fn issue(&self, dns_name: &str, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![dns_name.to_string()])?;
        params.distinguished_name.push(DnType::CommonName, dns_name);
        params.use_authority_key_identifier_extension = true;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let leaf = params.signed_by(&key, &self.ca, &self.ca_key)?;
        let cert = dir.join(format!("{stem}.pem"));
        let key_path = dir.join(format!("{stem}.key"));
        for (path, text) in [
            (&cert, format!("{}{}", leaf.pem(), self.ca_pem)),
            (&key_path, key.serialize_pem()),
        ] {
            std::fs::write(path, text).map_err(|source| CertError::Write {
                path: path.clone(),
                source,
            })?;
        }
        Ok((cert, key_path))
    }

    /// The CA certificate in PEM form.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate in DER form.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// Writes `ca.pem`, `<stem>.pem` (leaf + CA) and `<stem>.key` into `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<PkiFiles, CertError> {
        let files = PkiFiles {
            ca_cert: dir.join("ca.pem"),
            leaf_chain: dir.join(format!("{stem}.pem")),
            leaf_key: dir.join(format!("{stem}.key")),
        };
        let chain = format!("{}{}", self.leaf_pem, self.ca_pem);
        for (path, text) in [
            (&files.ca_cert, self.ca_pem.as_str()),
            (&files.leaf_chain, chain.as_str()),
            (&files.leaf_key, self.key_pem.as_str()),
        ] {
            std::fs::write(path, text).map_err(|source| CertError::Write {
                path: path.clone(),
                source,
            })?;
        }
        Ok(files)
    }

    /// A TLS 1.3-only server config presenting the leaf (and CA) with the given ALPN protocols.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, CertError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf_der.clone(), self.ca_der.clone()], key)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// A client config that trusts only this CA, offering the given ALPN protocols.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, CertError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        Ok(Arc::new(crate::client::tls::client_config(roots, alpn)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pki_builds_configs_and_writes_files() {
        let pki = Pki::generate("ingress-orange-saas.instana.io", "test CA").unwrap();
        pki.server_config(&[b"h2"]).unwrap();
        pki.client_config(&[b"h2"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = pki.write(dir.path(), "endpoint").unwrap();
        let chain = std::fs::read_to_string(&files.leaf_chain).unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(
            std::fs::read_to_string(&files.leaf_key)
                .unwrap()
                .contains("PRIVATE KEY")
        );
    }
}
