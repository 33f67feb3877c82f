//! The TLS options of `https_port` and `cache_peer … tls`, in Squid's spellings (the
//! `tls-` names of Squid 4+ and the older `cert=`, `sslcert=`… ones).

use std::path::PathBuf;

use crate::tls::settings::LoadError;
use crate::tls::{ListenTls, PeerTls, TlsVersion};

/// An `https_port` line's TLS options while they are read.
#[derive(Default)]
pub struct TlsDraft {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    min_version: TlsVersion,
    no_tickets: bool,
}

pub enum HttpsOption {
    Taken,
    Invalid(String, &'static str),
    Ignored(&'static str),
    /// Not a TLS option: the `http_port` rules apply.
    NotTls,
}

const RUSTLS_CHOOSES: &str =
    "hopproxy's TLS library (rustls) offers only modern ciphers, versions and options; nothing to tune";

/// One option of an `https_port` line.
pub fn https_option(draft: &mut TlsDraft, text: &str) -> HttpsOption {
    let Some((key, value)) = text.split_once('=') else {
        return match text {
            "sslflags" | "tls-flags" => HttpsOption::Invalid("needs a value".into(), "remove it"),
            _ => HttpsOption::NotTls,
        };
    };
    if value.is_empty() {
        return HttpsOption::Invalid("needs a value".into(), "write OPTION=VALUE");
    }
    match key {
        "tls-cert" | "cert" => draft.cert = Some(PathBuf::from(value)),
        "tls-key" | "key" => draft.key = Some(PathBuf::from(value)),
        // Both name the CAs client certificates must chain to; either demands one.
        "clientca" | "tls-cafile" | "cafile" => draft.client_ca = Some(PathBuf::from(value)),
        "tls-min-version" => match TlsVersion::parse(value) {
            Ok(version) => draft.min_version = version,
            Err(message) => return HttpsOption::Invalid(message, "use tls-min-version=1.2 or 1.3"),
        },
        // Squid's OpenSSL flags, `:`- or `,`-separated; only NO_TICKET has a rustls counterpart.
        "options" | "tls-options" if value.split([':', ',']).any(|f| f == "NO_TICKET") => {
            draft.no_tickets = true;
        }
        "cipher" | "options" | "tls-options" | "dhparams" | "tls-dh" | "sslcontext" | "tls-context" | "sslflags"
        | "tls-flags" => return HttpsOption::Ignored(RUSTLS_CHOOSES),
        _ => return HttpsOption::NotTls,
    }
    HttpsOption::Taken
}

impl TlsDraft {
    /// The listener's settings, with the files read unless `syntax_only`.
    pub fn finish(self, syntax_only: bool) -> Result<ListenTls, LoadError> {
        let Some(cert) = self.cert else {
            return Err(LoadError {
                message: "needs a certificate".into(),
                hint: "https_port [ADDRESS:]PORT tls-cert=CERT.pem tls-key=KEY.pem [clientca=CA.pem]".into(),
            });
        };
        // Squid: without a key file, the certificate file holds the key too.
        let key = self.key.unwrap_or_else(|| cert.clone());
        let tls = ListenTls {
            cert,
            key,
            client_ca: self.client_ca,
            min_version: self.min_version,
            session_tickets: !self.no_tickets,
            config: None,
        };
        if syntax_only { Ok(tls) } else { tls.load() }
    }
}

/// A `cache_peer` line's TLS options while they are read.
#[derive(Default)]
pub struct PeerTlsDraft {
    enabled: bool,
    /// Options given without `tls`/`ssl`: an error, as they would silently do nothing.
    orphans: Vec<String>,
    tls: Option<PeerTls>,
}

pub enum PeerOption {
    Taken,
    Invalid(String, &'static str),
    Ignored(&'static str),
    NotTls,
}

impl PeerTlsDraft {
    fn settings(&mut self) -> &mut PeerTls {
        self.tls.get_or_insert_with(|| PeerTls {
            ca_file: None,
            cert: None,
            key: None,
            domain: None,
            min_version: TlsVersion::default(),
            config: None,
        })
    }

    /// One option of a `cache_peer` line.
    pub fn option(&mut self, text: &str) -> PeerOption {
        let (key, value) = match text.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (text, None),
        };
        match (key, value) {
            ("tls" | "ssl", None) => {
                self.enabled = true;
                self.settings();
                return PeerOption::Taken;
            }
            (_, Some("")) => return PeerOption::Invalid("needs a value".into(), "write OPTION=VALUE"),
            ("tls-cafile" | "sslcafile", Some(v)) => self.settings().ca_file = Some(PathBuf::from(v)),
            ("tls-cert" | "sslcert", Some(v)) => self.settings().cert = Some(PathBuf::from(v)),
            ("tls-key" | "sslkey", Some(v)) => self.settings().key = Some(PathBuf::from(v)),
            ("tls-domain" | "ssldomain", Some(v)) => self.settings().domain = Some(v.to_string()),
            ("tls-min-version", Some(v)) => match TlsVersion::parse(v) {
                Ok(version) => self.settings().min_version = version,
                Err(message) => return PeerOption::Invalid(message, "use tls-min-version=1.2 or 1.3"),
            },
            ("tls-capath" | "sslcapath" | "tls-crlfile" | "sslcrlfile", Some(_)) => {
                return PeerOption::Invalid(
                    "is not supported by hopproxy".into(),
                    "put the CA certificates in one PEM file and give it with tls-cafile=",
                );
            }
            ("tls-cipher" | "sslcipher" | "tls-options" | "ssloptions" | "tls-flags" | "sslflags", Some(_))
            | ("tls-no-default-ca" | "tls-no-npn", None) => return PeerOption::Ignored(RUSTLS_CHOOSES),
            _ => return PeerOption::NotTls,
        }
        self.orphans.push(text.to_string());
        PeerOption::Taken
    }

    /// The parent's TLS settings (`None` without `tls`), with the files read unless
    /// `syntax_only`.
    pub fn finish(self, syntax_only: bool) -> Result<Option<PeerTls>, LoadError> {
        if !self.enabled {
            return match self.orphans.first() {
                Some(option) => Err(LoadError {
                    message: format!("'{option}' without 'tls' does nothing"),
                    hint: "add the 'tls' option to speak TLS to this parent".into(),
                }),
                None => Ok(None),
            };
        }
        let Some(tls) = self.tls else { return Ok(None) };
        if syntax_only {
            Ok(Some(tls))
        } else {
            tls.load().map(Some)
        }
    }
}
