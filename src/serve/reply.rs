//! Replies hopproxy generates itself: a status line, a short text/plain body that says what
//! happened and what to do, and an RFC 9209 `Proxy-Status` naming this proxy and the error
//! type, so a client (or `hopproxy trace`) can tell which hop failed and why.

use std::fmt::Write as _;
use std::time::SystemTime;

/// RFC 9209 section 2.3 error types used by hopproxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    HttpRequestError,
    HttpRequestDenied,
    DnsError,
    DestinationUnavailable,
    DestinationIpUnroutable,
    ConnectionRefused,
    ConnectionTimeout,
    ConnectionTerminated,
    ConnectionReadTimeout,
    ConnectionLimitReached,
    HttpResponseIncomplete,
    HttpProtocolError,
    HttpResponseHeaderSectionSize,
    TlsCertificateError,
    TlsProtocolError,
    ProxyInternalError,
}

impl ErrorType {
    pub fn token(self) -> &'static str {
        match self {
            ErrorType::HttpRequestError => "http_request_error",
            ErrorType::HttpRequestDenied => "http_request_denied",
            ErrorType::DnsError => "dns_error",
            ErrorType::DestinationUnavailable => "destination_unavailable",
            ErrorType::DestinationIpUnroutable => "destination_ip_unroutable",
            ErrorType::ConnectionRefused => "connection_refused",
            ErrorType::ConnectionTimeout => "connection_timeout",
            ErrorType::ConnectionTerminated => "connection_terminated",
            ErrorType::ConnectionReadTimeout => "connection_read_timeout",
            ErrorType::ConnectionLimitReached => "connection_limit_reached",
            ErrorType::HttpResponseIncomplete => "http_response_incomplete",
            ErrorType::HttpProtocolError => "http_protocol_error",
            ErrorType::HttpResponseHeaderSectionSize => "http_response_header_section_size",
            ErrorType::TlsCertificateError => "tls_certificate_error",
            ErrorType::TlsProtocolError => "tls_protocol_error",
            ErrorType::ProxyInternalError => "proxy_internal_error",
        }
    }
}

/// An error to answer with. `details` goes to the client; keep internal paths out of it.
#[derive(Debug, Clone)]
pub struct ProxyError {
    pub status: u16,
    pub error: ErrorType,
    pub details: String,
    /// The hop we failed to reach, for the `next-hop` parameter.
    pub next_hop: Option<String>,
    /// One sentence telling the operator what to check.
    pub hint: Option<&'static str>,
    /// Extra header fields (e.g. `Proxy-Authenticate` on a 407).
    pub headers: Vec<(&'static str, String)>,
    /// Further failed attempts of the same request (other next hops, or a retry), each its
    /// own `Proxy-Status` member after this one: RFC 9209 fields are lists.
    pub more: Vec<ProxyError>,
}

impl ProxyError {
    pub fn new(status: u16, error: ErrorType, details: impl Into<String>) -> ProxyError {
        ProxyError {
            status,
            error,
            details: details.into(),
            next_hop: None,
            hint: None,
            headers: Vec::new(),
            more: Vec::new(),
        }
    }

    pub fn with_next_hop(mut self, hop: impl Into<String>) -> ProxyError {
        self.next_hop = Some(hop.into());
        self
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> ProxyError {
        self.headers.push((name, value));
        self
    }

    pub fn with_hint(mut self, hint: &'static str) -> ProxyError {
        self.hint = Some(hint);
        self
    }
}

pub fn reason_phrase(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

/// An RFC 8941 string: quotes and backslashes escaped, non-printable bytes dropped.
pub fn sf_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

/// The list-member identifier for this proxy: a token when the host name is one, else a string.
pub fn sf_identifier(name: &str) -> String {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '*');
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:/".contains(c));
    if first_ok && rest_ok {
        name.to_string()
    } else {
        sf_string(name)
    }
}

/// The `Proxy-Status` value for an error generated here: its member, then one per further
/// failed attempt.
pub fn proxy_status_value(hostname: &str, error: &ProxyError) -> String {
    std::iter::once(error)
        .chain(&error.more)
        .map(|e| proxy_status_member(hostname, e))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `Proxy-Status` member for an error generated here.
pub fn proxy_status_member(hostname: &str, error: &ProxyError) -> String {
    let mut member = format!("{}; error={}", sf_identifier(hostname), error.error.token());
    if let Some(hop) = &error.next_hop {
        let _ = write!(member, "; next-hop={}", sf_string(hop));
    }
    let _ = write!(member, "; details={}", sf_string(&error.details));
    member
}

/// Renders the whole reply (head and body). Error replies always close the connection: bytes
/// the client sent behind a refused request cannot be trusted to start a new one.
pub fn render(hostname: &str, via_entry: &str, error: &ProxyError) -> Vec<u8> {
    let reason = reason_phrase(error.status);
    let mut body = format!(
        "{} {reason}\nhopproxy at {hostname}: {}: {}\n",
        error.status,
        error.error.token(),
        error.details
    );
    if let Some(hint) = error.hint {
        let _ = writeln!(body, "hint: {hint}");
    }
    let mut head = String::with_capacity(256 + body.len());
    let _ = write!(
        head,
        "HTTP/1.1 {} {reason}\r\nServer: hopproxy/{}\r\nDate: {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nProxy-Status: {}\r\nVia: {via_entry}\r\nConnection: close\r\n\r\n",
        error.status,
        env!("CARGO_PKG_VERSION"),
        httpdate::fmt_http_date(SystemTime::now()),
        body.len(),
        proxy_status_value(hostname, error),
    );
    // Extra fields go just before the blank line that ends the head.
    let extra: String = error
        .headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    head.insert_str(head.len() - 2, &extra);
    head.push_str(&body);
    head.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_status_is_a_structured_field() {
        let e = ProxyError::new(503, ErrorType::ConnectionRefused, "cannot connect to \"x\"")
            .with_next_hop("127.0.0.12:8080");
        assert_eq!(
            proxy_status_member("proxy1.lab", &e),
            r#"proxy1.lab; error=connection_refused; next-hop="127.0.0.12:8080"; details="cannot connect to \"x\"""#
        );
        assert_eq!(sf_identifier("10.0.0.1"), "\"10.0.0.1\"");
    }

    #[test]
    fn every_failed_attempt_is_a_member() {
        let mut e = ProxyError::new(502, ErrorType::ConnectionTerminated, "reset").with_next_hop("127.0.0.1:1");
        e.more
            .push(ProxyError::new(504, ErrorType::ConnectionReadTimeout, "silent").with_next_hop("127.0.0.2:2"));
        assert_eq!(
            proxy_status_value("p", &e),
            r#"p; error=connection_terminated; next-hop="127.0.0.1:1"; details="reset", p; error=connection_read_timeout; next-hop="127.0.0.2:2"; details="silent""#
        );
    }

    #[test]
    fn reply_has_length_and_closes() {
        let e = ProxyError::new(403, ErrorType::HttpRequestDenied, "denied").with_hint("check http_access");
        let bytes = render("p1", "1.1 p1 (hopproxy/0)", &e);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
        assert!(text.contains("\r\nProxy-Status: p1; error=http_request_denied; details=\"denied\"\r\n"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(body.contains("hint: check http_access"));
    }
}
