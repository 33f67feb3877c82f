//! Understanding the request target: a CONNECT authority or an absolute `http://` URL.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Lower-case host, trailing dot removed, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Scheme in upper case as the `proto` ACL sees it.
    pub proto: &'static str,
    /// Path and query (`/` when empty); empty for CONNECT.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("CONNECT target must be host:port")]
    BadAuthority,
    #[error("CONNECT target must not carry user information")]
    UserInfo,
    #[error("port must be 1-65535")]
    BadPort,
    #[error(
        "a proxy needs an absolute http:// URL (got origin-form); configure the client to use this host as a proxy"
    )]
    OriginForm,
    #[error("only http:// URLs are forwarded; https:// goes through CONNECT")]
    UnsupportedScheme,
    #[error("invalid host name")]
    BadHost,
}

/// Parses a CONNECT authority. A missing port means 443, as Squid 5.7 does (docs/squid-behaviour.md M2).
pub fn parse_connect(authority: &str) -> Result<Target, TargetError> {
    if authority.contains('@') {
        return Err(TargetError::UserInfo);
    }
    let (host, port) = split_host_port(authority)?;
    Ok(Target {
        host: normalize_host(host)?,
        port: port.unwrap_or(443),
        proto: "AUTHORITY",
        path: String::new(),
    })
}

/// Parses an absolute-form `http://host[:port]/path?query` URL.
pub fn parse_absolute(url: &str) -> Result<Target, TargetError> {
    if url.starts_with('/') || url == "*" {
        return Err(TargetError::OriginForm);
    }
    let (scheme, rest) = url.split_once("://").ok_or(TargetError::OriginForm)?;
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(TargetError::UnsupportedScheme);
    }
    let split_at = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split_at);
    if authority.contains('@') {
        return Err(TargetError::UserInfo);
    }
    let (host, port) = split_host_port(authority)?;
    let path = path.split('#').next().unwrap_or("");
    let path = if path.is_empty() {
        "/".to_string()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    Ok(Target {
        host: normalize_host(host)?,
        port: port.unwrap_or(80),
        proto: "HTTP",
        path,
    })
}

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), TargetError> {
    let (host, port_text) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(TargetError::BadAuthority)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or(TargetError::BadAuthority)?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => return Err(TargetError::BadAuthority),
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port_text {
        None | Some("") => None,
        Some(text) => {
            if !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 5 {
                return Err(TargetError::BadPort);
            }
            match text.parse::<u16>() {
                Ok(0) | Err(_) => return Err(TargetError::BadPort),
                Ok(p) => Some(p),
            }
        }
    };
    Ok((host, port))
}

/// Lower-cases the host and drops one trailing dot (see [`valid_host`]).
fn normalize_host(host: &str) -> Result<String, TargetError> {
    valid_host(host).map(str::to_ascii_lowercase)
}

/// The host without one trailing dot, when it is an IPv6 address or a name made of labels of
/// letters, digits, `-` and `_`, none empty and none longer than 63: `.api.example.com` or
/// `a..b` would otherwise pass a `dstdomain .example.com` check and reach DNS (Squid answers
/// 400). One pass over the bytes, no allocation: every request's host goes through here.
fn valid_host(host: &str) -> Result<&str, TargetError> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return Err(TargetError::BadHost);
    }
    if host.contains(':') {
        host.parse::<std::net::Ipv6Addr>().map_err(|_| TargetError::BadHost)?;
        return Ok(host);
    }
    let mut label = 0usize;
    for b in host.bytes() {
        match b {
            b'.' if label == 0 => return Err(TargetError::BadHost),
            b'.' => label = 0,
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' => {
                label += 1;
                if label > 63 {
                    return Err(TargetError::BadHost);
                }
            }
            _ => return Err(TargetError::BadHost),
        }
    }
    if label == 0 {
        Err(TargetError::BadHost)
    } else {
        Ok(host)
    }
}

/// The authority to log and to send: `host:port`, IPv6 in brackets.
pub fn authority(target: &Target) -> String {
    crate::route::dial::authority(&target.host, target.port)
}

/// Whether a `Host` field names the same authority as the absolute URL (RFC 9112 section
/// 3.2.2 lets a proxy ignore Host; disagreeing ones are refused instead, as they are a
/// classic way to make two hops disagree about the destination).
pub fn host_field_matches(target: &Target, host_field: &str) -> bool {
    match split_host_port(host_field.trim()) {
        Ok((host, port)) => {
            valid_host(host).is_ok_and(|h| h.eq_ignore_ascii_case(&target.host)) && port.unwrap_or(80) == target.port
        }
        Err(_) => false,
    }
}

/// The URL as logged and as sent to a parent: `http://host[:port]/path`, port omitted when 80.
pub fn absolute_url(target: &Target) -> String {
    use crate::route::dial::{push_host, push_port};
    let mut url = String::with_capacity(7 + target.host.len() + 8 + target.path.len());
    url.push_str("http://");
    push_host(&mut url, &target.host);
    if target.port != 80 {
        url.push(':');
        push_port(&mut url, target.port);
    }
    url.push_str(&target.path);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_targets() {
        let t = parse_connect("Ingress-Orange-SaaS.instana.io.:443").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("ingress-orange-saas.instana.io", 443));
        assert_eq!(parse_connect("example.com").unwrap().port, 443);
        assert_eq!(parse_connect("[::1]:8443").unwrap().host, "::1");
        for (bad, err) in [
            ("example.com:0", TargetError::BadPort),
            ("example.com:99999", TargetError::BadPort),
            ("example.com:x", TargetError::BadPort),
            ("user@example.com:443", TargetError::UserInfo),
            ("::1:443", TargetError::BadAuthority),
            ("exa mple.com:443", TargetError::BadHost),
            (":443", TargetError::BadHost),
            (".api.example.com:443", TargetError::BadHost),
            ("api..example.com:443", TargetError::BadHost),
            ("api.example.com..:443", TargetError::BadHost),
            (".:443", TargetError::BadHost),
        ] {
            assert_eq!(parse_connect(bad), Err(err), "{bad}");
        }
    }

    #[test]
    fn host_labels_are_checked_in_absolute_urls_too() {
        assert_eq!(parse_absolute("http://.example.com/"), Err(TargetError::BadHost));
        assert_eq!(parse_absolute("http://a..example.com/"), Err(TargetError::BadHost));
        let long_label = format!("http://{}.example.com/", "a".repeat(64));
        assert_eq!(parse_absolute(&long_label), Err(TargetError::BadHost));
        assert_eq!(
            parse_absolute("http://under_score.example.com./").unwrap().host,
            "under_score.example.com"
        );
    }

    #[test]
    fn absolute_urls() {
        let t = parse_absolute("http://Example.com/some/path?secret=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("example.com", 80, "/some/path?secret=1")
        );
        assert_eq!(parse_absolute("http://h:8080").unwrap().path, "/");
        assert_eq!(parse_absolute("http://h?q").unwrap().path, "/?q");
        assert_eq!(parse_absolute("http://[::1]:81/x").unwrap().host, "::1");
        assert_eq!(parse_absolute("/x"), Err(TargetError::OriginForm));
        assert_eq!(parse_absolute("https://h/"), Err(TargetError::UnsupportedScheme));
        assert_eq!(parse_absolute("http://u:p@h/"), Err(TargetError::UserInfo));
    }

    #[test]
    fn host_fields_compare_like_the_url_host() {
        let target = parse_absolute("http://api.example.com:8080/").unwrap();
        for (field, matches) in [
            ("api.example.com:8080", true),
            ("API.Example.COM.:8080", true),
            (" api.example.com:8080 ", true),
            ("api.example.com", false),
            ("api..example.com:8080", false),
            (".api.example.com:8080", false),
            ("api.example.org:8080", false),
            ("api.example.com:08080", true),
        ] {
            assert_eq!(host_field_matches(&target, field), matches, "{field:?}");
        }
        let v6 = parse_absolute("http://[::1]/").unwrap();
        assert!(host_field_matches(&v6, "[::1]"));
        // Addresses compare as written, as before: another spelling of ::1 is another host.
        assert!(!host_field_matches(&v6, "[0:0::1]:80"));
    }

    #[test]
    fn urls_and_authorities_are_written_back() {
        for (url, want) in [
            ("http://example.com/x?q", "http://example.com/x?q"),
            ("http://example.com:80/", "http://example.com/"),
            ("http://example.com:8080/", "http://example.com:8080/"),
            ("http://h:1", "http://h:1/"),
            ("http://h:65535/p", "http://h:65535/p"),
            ("http://[2001:db8::1]:10/", "http://[2001:db8::1]:10/"),
        ] {
            assert_eq!(absolute_url(&parse_absolute(url).unwrap()), want);
        }
        assert_eq!(authority(&parse_connect("Example.com:443").unwrap()), "example.com:443");
        assert_eq!(authority(&parse_connect("[::1]:9").unwrap()), "[::1]:9");
        assert_eq!(authority(&parse_connect("h:10000").unwrap()), "h:10000");
    }
}
