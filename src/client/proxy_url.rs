//! Proxy addresses as tools take them: `HOST:PORT`, `http://HOST:PORT`, or `https://HOST:PORT`
//! for a proxy that speaks TLS (an `https_port`), with the trust and client certificate
//! (curl's `--proxy-cacert`, `--proxy-cert`, `--proxy-key`) for that leg.

use std::path::PathBuf;

use crate::tls::{PeerTls, TlsVersion};

/// One proxy as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub host: String,
    pub port: u16,
    /// `https://`: TLS to this proxy.
    pub tls: bool,
}

impl ProxyUrl {
    pub fn parse(text: &str) -> Result<ProxyUrl, String> {
        let (tls, rest) = match text.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some(("http", rest)) => (false, rest),
            Some((scheme, _)) => return Err(format!("'{text}': a proxy is http:// or https://, not {scheme}://")),
            None => (false, text),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_start_matches('[').trim_end_matches(']'), p.parse::<u16>().ok()?)))
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| format!("'{text}' is not [https://]HOST:PORT"))?;
        Ok(ProxyUrl {
            host: host.to_string(),
            port,
            tls,
        })
    }

    /// `host:port` (IPv6 in brackets).
    pub fn authority(&self) -> String {
        super::connect::authority(&self.host, self.port)
    }
}

/// The files for a TLS leg to a proxy: CA (else the system roots), client certificate and key.
#[derive(Debug, Clone, Default)]
pub struct ProxyTlsFiles {
    pub ca_file: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl ProxyTlsFiles {
    /// The loaded settings (the same code a `cache_peer … tls` parent uses), or why not.
    pub fn load(&self) -> Result<PeerTls, String> {
        PeerTls {
            ca_file: self.ca_file.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            domain: None,
            min_version: TlsVersion::default(),
            config: None,
        }
        .load()
        .map_err(|e| format!("{} ({})", e.message, e.hint))
    }
}

/// The TLS leg to an `https://` proxy (curl's option names).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProxyTlsArgs {
    /// Trust this CA (PEM) for the https:// proxy instead of the system roots.
    #[arg(long = "proxy-cacert", value_name = "PEM")]
    pub proxy_ca_file: Option<PathBuf>,
    /// Present this client certificate (PEM, chain after it) to the https:// proxy.
    #[arg(long = "proxy-cert", value_name = "PEM")]
    pub proxy_cert: Option<PathBuf>,
    /// The private key of --proxy-cert (default: the --proxy-cert file).
    #[arg(long = "proxy-key", value_name = "PEM")]
    pub proxy_key: Option<PathBuf>,
}

impl ProxyTlsArgs {
    /// The loaded TLS settings when `tls` (the proxy URL is https://); an error names the file.
    pub fn settings(&self, tls: bool) -> Result<Option<crate::tls::PeerTls>, String> {
        if !tls {
            if self.proxy_ca_file.is_some() || self.proxy_cert.is_some() || self.proxy_key.is_some() {
                return Err("--proxy-cacert/--proxy-cert/--proxy-key need an https:// proxy".into());
            }
            return Ok(None);
        }
        let files = ProxyTlsFiles {
            ca_file: self.proxy_ca_file.clone(),
            cert: self.proxy_cert.clone(),
            key: self.proxy_key.clone(),
        };
        files.load().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        let p = ProxyUrl::parse("https://proxy1.example:3129/").unwrap();
        assert_eq!((p.host.as_str(), p.port, p.tls), ("proxy1.example", 3129, true));
        let p = ProxyUrl::parse("http://[::1]:8080").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.tls, p.authority()),
            ("::1", 8080, false, "[::1]:8080".into())
        );
        assert!(!ProxyUrl::parse("10.0.0.1:3128").unwrap().tls);
        assert!(ProxyUrl::parse("socks5://h:1").is_err());
        assert!(ProxyUrl::parse("https://h").is_err());
    }
}
