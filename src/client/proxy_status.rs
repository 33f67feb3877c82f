//! Reading a proxy's error answer: which proxy made it, and why.
//!
//! Sources, best first: `Proxy-Status` (RFC 9209; hopproxy sends
//! `proxy2.lab; error=connection_refused; details="…"`), Squid's `X-Squid-Error`, the first
//! `Via` entry (the proxy closest to the origin that handled the answer), and the
//! "Generated … by NAME (squid/…)" footer and "Connection to IP failed" line of Squid's pages.

use super::connect::ConnectReply;

/// One member of a Proxy-Status list.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProxyStatusEntry {
    pub proxy: String,
    pub params: Vec<(String, String)>,
}

impl ProxyStatusEntry {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a Proxy-Status field value (a structured-field list of items with parameters).
pub fn parse_proxy_status(value: &str) -> Vec<ProxyStatusEntry> {
    let mut entries = Vec::new();
    let chars: Vec<char> = value.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && (chars[*i] == ' ' || chars[*i] == '\t') {
            *i += 1;
        }
    };
    // A bare item: quoted string or token-ish run up to a delimiter.
    let item = |i: &mut usize| -> String {
        let mut out = String::new();
        if chars.get(*i) == Some(&'"') {
            *i += 1;
            while *i < chars.len() {
                match chars[*i] {
                    '\\' if *i + 1 < chars.len() => {
                        out.push(chars[*i + 1]);
                        *i += 2;
                    }
                    '"' => {
                        *i += 1;
                        break;
                    }
                    c => {
                        out.push(c);
                        *i += 1;
                    }
                }
            }
        } else {
            while *i < chars.len() && ![';', ',', '=', ' ', '\t'].contains(&chars[*i]) {
                out.push(chars[*i]);
                *i += 1;
            }
        }
        out
    };
    while i < chars.len() {
        skip_ws(&mut i);
        let mut entry = ProxyStatusEntry {
            proxy: item(&mut i),
            params: Vec::new(),
        };
        loop {
            skip_ws(&mut i);
            if chars.get(i) != Some(&';') {
                break;
            }
            i += 1;
            skip_ws(&mut i);
            let key = item(&mut i);
            let value = if chars.get(i) == Some(&'=') {
                i += 1;
                item(&mut i)
            } else {
                "?1".to_string()
            };
            entry.params.push((key, value));
        }
        // Skip anything unexpected up to the next member.
        while i < chars.len() && chars[i] != ',' {
            i += 1;
        }
        i += 1;
        if !entry.proxy.is_empty() {
            entries.push(entry);
        }
    }
    entries
}

/// The received-by names of a Via value, in order (first = closest to the origin).
pub fn via_names(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter_map(|part| part.split_whitespace().nth(1))
        .map(|name| name.to_string())
        .collect()
}

/// What an error answer says about who failed and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ErrorOrigin {
    /// Name of the proxy that generated the answer, when the answer says.
    pub proxy: Option<String>,
    /// RFC 9209 error type (from Proxy-Status, or mapped from Squid's error).
    pub error: Option<String>,
    pub details: Option<String>,
    /// Squid's `X-Squid-Error`, e.g. `ERR_CONNECT_FAIL 111`.
    pub squid_error: Option<String>,
    /// The address the proxy failed to connect to, when the answer names it.
    pub failed_address: Option<String>,
    /// A Squid error head whose body is missing although `Content-Length` announces one: Squid
    /// relays a parent's CONNECT error that way (docs/squid-behaviour.md B7r), so the answer is not the
    /// contacted proxy's own.
    pub relayed_from_parent: bool,
}

/// Reads who made an error answer and why.
pub fn error_origin(reply: &ConnectReply) -> ErrorOrigin {
    let mut origin = ErrorOrigin::default();
    if let Some(value) = reply.header("proxy-status") {
        let entries = parse_proxy_status(&value);
        // The first member with an error is the one closest to the failure.
        if let Some(e) = entries.iter().find(|e| e.param("error").is_some()).or(entries.first()) {
            origin.proxy = Some(e.proxy.clone());
            origin.error = e.param("error").map(str::to_string);
            origin.details = e.param("details").map(str::to_string);
            origin.failed_address = e.param("next-hop").map(str::to_string);
        }
    }
    if origin.proxy.is_none() {
        origin.proxy = reply.header("via").and_then(|v| via_names(&v).into_iter().next());
    }
    let body = reply.body_text();
    if origin.proxy.is_none()
        && let Some(end) = body.rfind(" (squid/")
    {
        // Squid's footer: "Generated <date> by proxy1.lab (squid/5.7)"; the name is the word before.
        let before = &body[..end];
        let start = before
            .rfind(|c: char| c.is_whitespace() || c == '>')
            .map_or(0, |i| i + 1);
        if start < end {
            origin.proxy = Some(before[start..].to_string());
        }
    }
    if let Some(start) = body.find("Connection to ") {
        let rest = &body[start + 14..];
        if let Some(end) = rest.find(" failed") {
            origin
                .failed_address
                .get_or_insert_with(|| rest[..end].trim().to_string());
        }
    }
    if let Some(squid) = reply.header("x-squid-error") {
        let announced = reply
            .header("content-length")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        origin.relayed_from_parent = announced > 0 && reply.body.is_empty();
        if origin.error.is_none() {
            origin.error = squid_error_type(&squid).map(str::to_string);
        }
        origin.squid_error = Some(squid);
    }
    if origin.error.is_none() {
        origin.error = match reply.status {
            403 => Some("http_request_denied"),
            407 => Some("proxy_auth_required"),
            504 => Some("connection_timeout"),
            _ => None,
        }
        .map(str::to_string);
    }
    origin
}

/// RFC 9209 type for a Squid error code.
fn squid_error_type(value: &str) -> Option<&'static str> {
    let mut words = value.split_whitespace();
    let code = words.next()?;
    let errno = words.next().unwrap_or("0");
    Some(match (code, errno) {
        ("ERR_CONNECT_FAIL", "110") => "connection_timeout",
        ("ERR_CONNECT_FAIL", "113") | ("ERR_CONNECT_FAIL", "101") => "destination_ip_unroutable",
        ("ERR_CONNECT_FAIL", _) => "connection_refused",
        ("ERR_DNS_FAIL", _) => "dns_error",
        // For CONNECT, Squid 5.7 answers an unresolvable name with 500 ERR_CANNOT_FORWARD (docs/squid-behaviour.md B7).
        ("ERR_CANNOT_FORWARD", _) => "destination_not_found",
        ("ERR_ACCESS_DENIED", _) => "http_request_denied",
        ("ERR_CACHE_ACCESS_DENIED", _) => "proxy_auth_required",
        ("ERR_READ_TIMEOUT", _) | ("ERR_CONNECT_TIMEOUT", _) => "connection_timeout",
        _ => return None,
    })
}

/// Words for an error type, as in "could not connect to X: connection refused".
pub fn describe(error: &str, target: &str) -> String {
    match error {
        "connection_refused" => format!("could not connect to {target}: connection refused"),
        "connection_timeout" => format!("timed out connecting to {target}"),
        "destination_ip_unroutable" => format!("has no route to {target}"),
        "destination_not_found" | "dns_error" => format!("could not resolve the name of {target}"),
        "destination_unavailable" => format!("found no usable next hop for {target}"),
        "http_request_denied" => format!("denied the request to {target} (its access rules)"),
        "proxy_auth_required" => format!("requires proxy authentication for {target}"),
        other => format!("failed to reach {target}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc9209_members() {
        let e =
            parse_proxy_status(r#"proxy2.lab; error=connection_refused; details="connect to 1.2.3.4:443: \"x\"", p1"#);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].proxy, "proxy2.lab");
        assert_eq!(e[0].param("error"), Some("connection_refused"));
        assert_eq!(e[0].param("details"), Some(r#"connect to 1.2.3.4:443: "x""#));
        assert_eq!(e[1].proxy, "p1");
    }

    #[test]
    fn via_names_in_order() {
        assert_eq!(
            via_names("1.1 proxy2.lab (squid/5.7), 1.1 proxy1.lab (hopproxy/0.1.0)"),
            ["proxy2.lab", "proxy1.lab"]
        );
    }

    #[test]
    fn squid_connect_fail_page() {
        let reply = ConnectReply {
            status: 503,
            reason: "Service Unavailable".into(),
            headers: vec![("X-Squid-Error".into(), "ERR_CONNECT_FAIL 111".into())],
            body: b"<p id=\"sysmsg\">Connection to 127.0.0.12 failed.</p> Generated Mon by proxy1.lab (squid/5.7)"
                .to_vec(),
        };
        let o = error_origin(&reply);
        assert_eq!(o.proxy.as_deref(), Some("proxy1.lab"));
        assert_eq!(o.error.as_deref(), Some("connection_refused"));
        assert_eq!(o.failed_address.as_deref(), Some("127.0.0.12"));
    }
}
