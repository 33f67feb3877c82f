//! `external_acl_type` at run time: the request line built from the type's format, the
//! result cache (`ttl`, `negative_ttl`, `cache`), and the helper pool behind it.
//!
//! Squid's rules, reproduced: each format value is URL-escaped and an empty one is sent as
//! `-`; the ACL's arguments replace `%DATA`, or follow the format values when there is no
//! `%DATA` (`-` when there are none, as Squid 5.7 sends); the whole line is the cache key. `OK` matches, `ERR` does not; both are cached.
//! Not reproduced: `grace=` (Squid refreshes entries in the background near their end;
//! hopproxy asks again when they expire). A `BH` reply or a helper that cannot answer is not
//! cached and the request is answered 503 — Squid's outcome for a broken helper depends on
//! the rule it sits in, which can let a request through that the helper would have refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::reply::escape;
use super::{HelperError, HelperSpec, Pool, Verdict};
use crate::http1::Header;

/// One entry of an `external_acl_type` format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatCode {
    /// `%LOGIN`, `%un`, `%ul`: the authenticated user (asks for credentials first).
    Login,
    /// `%SRC`, `%>a`: the client's address.
    Src,
    /// `%SRCPORT`, `%>p`.
    SrcPort,
    /// `%DST`, `%>rd`: the requested host.
    Dst,
    /// `%PROTO`, `%>rs`.
    Proto,
    /// `%PORT`, `%>rP`.
    Port,
    /// `%PATH`, `%>rp`.
    Path,
    /// `%METHOD`, `%>rm`, `%rm`.
    Method,
    /// `%URI`, `%>ru`, `%ru`.
    Uri,
    /// `%MYADDR`, `%>la`.
    MyAddr,
    /// `%MYPORT`, `%>lp`.
    MyPort,
    /// `%{Name}`, `%>{Name}`, `%>h{Name}`, `%>ha{Name}`: a request header's values.
    Header(String),
    /// `%DATA`: the ACL's arguments.
    Data,
}

/// The codes accepted, for hints.
pub const KNOWN_CODES: &str = "%LOGIN %un %ul %SRC %>a %SRCPORT %>p %DST %>rd %PROTO %>rs %PORT %>rP %PATH %>rp \
     %METHOD %>rm %rm %URI %>ru %ru %MYADDR %>la %MYPORT %>lp %{Header} %>{Header} %>ha{Header} %DATA";

/// Parses one format token (it starts with `%`).
pub fn parse_code(token: &str) -> Result<FormatCode, String> {
    let code = match token {
        "%LOGIN" | "%un" | "%ul" => FormatCode::Login,
        "%SRC" | "%>a" => FormatCode::Src,
        "%SRCPORT" | "%>p" => FormatCode::SrcPort,
        "%DST" | "%>rd" => FormatCode::Dst,
        "%PROTO" | "%>rs" => FormatCode::Proto,
        "%PORT" | "%>rP" => FormatCode::Port,
        "%PATH" | "%>rp" => FormatCode::Path,
        "%METHOD" | "%>rm" | "%rm" => FormatCode::Method,
        "%URI" | "%>ru" | "%ru" => FormatCode::Uri,
        "%MYADDR" | "%>la" => FormatCode::MyAddr,
        "%MYPORT" | "%>lp" => FormatCode::MyPort,
        "%DATA" => FormatCode::Data,
        other => {
            let name = ["%>ha{", "%>h{", "%>{", "%{"]
                .iter()
                .find_map(|prefix| other.strip_prefix(prefix))
                .and_then(|rest| rest.strip_suffix('}'))
                .filter(|name| !name.is_empty() && !name.contains(':'));
            match name {
                Some(name) => FormatCode::Header(name.to_string()),
                None => return Err(format!("format code '{other}' is not supported")),
            }
        }
    };
    Ok(code)
}

/// One `external_acl_type` line, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAclType {
    pub name: String,
    pub format: Vec<FormatCode>,
    /// How long an `OK` is remembered (`ttl=`, default one hour).
    pub ttl: Duration,
    /// How long an `ERR` is remembered (`negative_ttl=`, default `ttl`).
    pub negative_ttl: Duration,
    /// Entries kept at most (`cache=`; 0 = Squid's default, 262144).
    pub cache_size: usize,
    pub helper: HelperSpec,
}

impl ExternalAclType {
    pub fn needs_login(&self) -> bool {
        self.format.contains(&FormatCode::Login)
    }
}

/// What the format codes read from a request.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub user: Option<&'a str>,
    pub client: IpAddr,
    pub client_port: u16,
    pub host: &'a str,
    pub proto: &'a str,
    pub port: u16,
    pub path: &'a str,
    pub method: &'a str,
    pub url: &'a str,
    pub local_ip: Option<IpAddr>,
    pub local_port: u16,
    pub headers: &'a [Header],
}

/// The request line for `format` with the ACL's `args`.
pub fn request_line(format: &[FormatCode], args: &[String], inputs: &Inputs<'_>) -> String {
    let mut words: Vec<String> = Vec::with_capacity(format.len() + args.len());
    let escaped_args = || args.iter().map(|a| escape(a)).collect::<Vec<_>>();
    let mut data_used = false;
    for code in format {
        let value = match code {
            FormatCode::Login => inputs.user.unwrap_or_default().to_string(),
            FormatCode::Src => inputs.client.to_string(),
            FormatCode::SrcPort => inputs.client_port.to_string(),
            FormatCode::Dst => inputs.host.to_string(),
            FormatCode::Proto => inputs.proto.to_string(),
            FormatCode::Port => inputs.port.to_string(),
            FormatCode::Path => inputs.path.to_string(),
            FormatCode::Method => inputs.method.to_string(),
            FormatCode::Uri => inputs.url.to_string(),
            FormatCode::MyAddr => inputs.local_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            FormatCode::MyPort => inputs.local_port.to_string(),
            FormatCode::Header(name) => {
                let values: Vec<String> = inputs
                    .headers
                    .iter()
                    .filter(|h| h.is(name))
                    .map(|h| String::from_utf8_lossy(&h.value).into_owned())
                    .collect();
                values.join(", ")
            }
            FormatCode::Data => {
                data_used = true;
                let args = escaped_args();
                words.push(if args.is_empty() {
                    "-".to_string()
                } else {
                    args.join(" ")
                });
                continue;
            }
        };
        words.push(if value.is_empty() {
            "-".to_string()
        } else {
            escape(&value)
        });
    }
    if !data_used {
        // Squid 5.7 sends `-` for an ACL without arguments here too (observed).
        let args = escaped_args();
        if args.is_empty() {
            words.push("-".to_string());
        } else {
            words.extend(args);
        }
    }
    words.join(" ")
}

/// A helper's decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub matched: bool,
    /// `user=` from an `OK`: the user name the access log shows when no one authenticated.
    pub user: Option<String>,
}

/// The runtime of one `external_acl_type`: its pool and result cache.
pub struct External {
    pub settings: ExternalAclType,
    pool: Pool,
    cache: Mutex<HashMap<String, (Answer, Instant)>>,
}

/// Squid's default `cache=`.
const DEFAULT_CACHE: usize = 262_144;

impl External {
    pub fn new(settings: ExternalAclType) -> External {
        External {
            pool: Pool::new(settings.helper.clone()),
            settings,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Asks the helper (or the cache) about one request. `Err` carries why no decision was
    /// made (a `BH` reply, a full queue, a helper that keeps dying), for `Proxy-Status`.
    pub async fn lookup(&self, args: &[String], inputs: &Inputs<'_>) -> Result<Answer, String> {
        let line = request_line(&self.settings.format, args, inputs);
        let now = Instant::now();
        if let Some((answer, expires)) = self.lock().get(&line)
            && now < *expires
        {
            return Ok(answer.clone());
        }
        let name = &self.settings.name;
        let reply = self
            .pool
            .ask(line.clone())
            .await
            .map_err(|e: HelperError| format!("external ACL helper {name}: {e}"))?;
        let answer = match reply.verdict {
            Verdict::Ok => Answer {
                matched: true,
                user: reply.get("user").map(str::to_string),
            },
            Verdict::Err => Answer {
                matched: false,
                user: None,
            },
            Verdict::BrokenHelper => {
                let message = reply.message().unwrap_or("no message");
                tracing::warn!(helper = %name, "external ACL helper answered BH: {message}");
                return Err(format!("external ACL helper {name} answered BH"));
            }
        };
        let ttl = if answer.matched {
            self.settings.ttl
        } else {
            self.settings.negative_ttl
        };
        if !ttl.is_zero() {
            let limit = if self.settings.cache_size == 0 {
                DEFAULT_CACHE
            } else {
                self.settings.cache_size
            };
            let mut cache = self.lock();
            if cache.len() >= limit {
                cache.retain(|_, (_, expires)| now < *expires);
                if cache.len() >= limit {
                    cache.clear();
                }
            }
            cache.insert(line, (answer.clone(), now + ttl));
        }
        Ok(answer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Answer, Instant)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_lines() {
        let format: Vec<FormatCode> = ["%SRC", "%LOGIN", "%>rd", "%{User-Agent}", "%DATA", "%PORT"]
            .iter()
            .map(|t| parse_code(t).unwrap())
            .collect();
        let headers = vec![Header {
            name: "User-Agent".into(),
            value: b"curl/8 x".to_vec(),
        }];
        let inputs = Inputs {
            user: None,
            client: "127.0.0.1".parse().unwrap(),
            client_port: 5,
            host: "a.invalid",
            proto: "HTTP",
            port: 80,
            path: "/",
            method: "GET",
            url: "http://a.invalid/",
            local_ip: None,
            local_port: 3128,
            headers: &headers,
        };
        let line = request_line(&format, &["g 1".into(), "h".into()], &inputs);
        assert_eq!(line, "127.0.0.1 - a.invalid curl%2F8%20x g%201 h 80");
        assert!(parse_code("%XYZ").is_err());
        assert_eq!(request_line(&format[..1], &["x".into()], &inputs), "127.0.0.1 x");
        assert_eq!(request_line(&format[..1], &[], &inputs), "127.0.0.1 -");
    }
}
