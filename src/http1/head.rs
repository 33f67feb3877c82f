//! Parsing request and response heads with httparse into owned values, and the header
//! rules a forwarding proxy applies (hop-by-hop removal, framing).

use super::body::BodyKind;
use super::conn::HeadError;

/// Most header fields we accept in one head; more is treated as too large (431).
pub const MAX_HEADERS: usize = 128;

#[derive(Debug, Clone)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

impl Header {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    pub fn value_str(&self) -> &str {
        std::str::from_utf8(&self.value).unwrap_or("")
    }
}

#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The method token exactly as sent.
    pub method: String,
    pub target: String,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Vec<Header>,
}

#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub version: u8,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<Header>,
}

fn own_headers(raw: &[httparse::Header<'_>]) -> Vec<Header> {
    raw.iter()
        .map(|h| Header {
            name: h.name.to_string(),
            value: h.value.to_vec(),
        })
        .collect()
}

fn map_error(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::Version => HeadError::Version,
        httparse::Error::TooManyHeaders => HeadError::TooManyFields { limit: MAX_HEADERS },
        other => HeadError::Malformed(other.to_string()),
    }
}

/// Rejects bytes httparse tolerates but a proxy must not pass on: NUL and bare CR in the head
/// (request smuggling vectors, RFC 9112 section 2.2).
fn check_head_bytes(head: &[u8]) -> Result<(), HeadError> {
    for (i, &b) in head.iter().enumerate() {
        if b == 0 {
            return Err(HeadError::Malformed("NUL byte in head".into()));
        }
        if b == b'\r' && head.get(i + 1) != Some(&b'\n') {
            return Err(HeadError::Malformed("bare CR in head".into()));
        }
    }
    Ok(())
}

pub fn parse_request(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    match req.parse(buf).map_err(map_error)? {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(len) => {
            check_head_bytes(&buf[..len])?;
            let head = RequestHead {
                method: req.method.unwrap_or_default().to_string(),
                target: req.path.unwrap_or_default().to_string(),
                version: req.version.unwrap_or(1),
                headers: own_headers(req.headers),
            };
            Ok(Some((head, len)))
        }
    }
}

pub fn parse_response(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut storage);
    match res.parse(buf).map_err(map_error)? {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(len) => {
            let head = ResponseHead {
                version: res.version.unwrap_or(1),
                status: res.code.unwrap_or(0),
                reason: res.reason.unwrap_or_default().to_string(),
                headers: own_headers(res.headers),
            };
            Ok(Some((head, len)))
        }
    }
}

/// Header fields that describe one connection, never forwarded (RFC 9110 section 7.6.1), plus
/// the fields named in `Connection`.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

pub fn is_hop_by_hop(name: &str, connection_tokens: &[String]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || connection_tokens.iter().any(|t| name.eq_ignore_ascii_case(t))
}

/// Lower-case tokens listed in every `Connection` (and `Proxy-Connection`) field.
pub fn connection_tokens(headers: &[Header]) -> Vec<String> {
    headers
        .iter()
        .filter(|h| h.is("connection") || h.is("proxy-connection"))
        .flat_map(|h| {
            h.value_str()
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// The framing field a `Connection` (or `Proxy-Connection`) field names, if any. Such a
/// request is refused: removing the field as hop-by-hop while the body is still sent would let
/// the next hop read the body as a second request, and no honest client asks for it.
pub fn framing_named_in_connection(headers: &[Header]) -> Option<&'static str> {
    let tokens = connection_tokens(headers);
    ["content-length", "transfer-encoding"]
        .into_iter()
        .find(|framing| tokens.iter().any(|t| t == framing))
}

/// Whether the client wants the connection kept open after this exchange.
pub fn wants_keep_alive(version: u8, headers: &[Header]) -> bool {
    let tokens = connection_tokens(headers);
    if tokens.iter().any(|t| t == "close") {
        return false;
    }
    version >= 1 || tokens.iter().any(|t| t == "keep-alive")
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FramingError {
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndChunked,
    #[error("invalid or repeated Content-Length")]
    BadLength,
    #[error("unsupported Transfer-Encoding (only chunked is accepted)")]
    BadTransferEncoding,
}

/// How a request's body is framed (RFC 9112 section 6.3). Ambiguous framing is an error, not
/// a guess: a proxy that guesses differently from the next hop enables request smuggling.
pub fn request_body_kind(headers: &[Header]) -> Result<BodyKind, FramingError> {
    message_body_kind(headers, false)
}

/// How a response's body is framed, given the request method and the status.
pub fn response_body_kind(method: &str, status: u16, headers: &[Header]) -> Result<BodyKind, FramingError> {
    if method.eq_ignore_ascii_case("HEAD") || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyKind::None);
    }
    message_body_kind(headers, true)
}

fn message_body_kind(headers: &[Header], is_response: bool) -> Result<BodyKind, FramingError> {
    let te: Vec<&Header> = headers.iter().filter(|h| h.is("transfer-encoding")).collect();
    let lengths: Vec<&Header> = headers.iter().filter(|h| h.is("content-length")).collect();
    if !te.is_empty() {
        if !lengths.is_empty() {
            return Err(FramingError::LengthAndChunked);
        }
        let codings: Vec<String> = te
            .iter()
            .flat_map(|h| {
                h.value_str()
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .collect();
        return match codings.as_slice() {
            [only] if only == "chunked" => Ok(BodyKind::Chunked),
            _ if is_response && codings.last().is_some_and(|c| c == "chunked") => Ok(BodyKind::Chunked),
            _ if is_response => Ok(BodyKind::UntilClose),
            _ => Err(FramingError::BadTransferEncoding),
        };
    }
    match lengths.as_slice() {
        [] if is_response => Ok(BodyKind::UntilClose),
        [] => Ok(BodyKind::None),
        [one] => {
            let text = one.value_str().trim();
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FramingError::BadLength);
            }
            let n: u64 = text.parse().map_err(|_| FramingError::BadLength)?;
            Ok(if n == 0 { BodyKind::None } else { BodyKind::Length(n) })
        }
        _ => Err(FramingError::BadLength),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> Vec<Header> {
        list.iter()
            .map(|(n, v)| Header {
                name: n.to_string(),
                value: v.as_bytes().to_vec(),
            })
            .collect()
    }

    #[test]
    fn request_framing() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Result<BodyKind, FramingError>);
        let cases: &[Case] = &[
            (&[], Ok(BodyKind::None)),
            (&[("Content-Length", "12")], Ok(BodyKind::Length(12))),
            (&[("content-length", "0")], Ok(BodyKind::None)),
            (&[("Transfer-Encoding", "chunked")], Ok(BodyKind::Chunked)),
            (
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "3")],
                Err(FramingError::LengthAndChunked),
            ),
            (
                &[("Content-Length", "3"), ("Content-Length", "3")],
                Err(FramingError::BadLength),
            ),
            (&[("Content-Length", "+3")], Err(FramingError::BadLength)),
            (&[("Content-Length", "abc")], Err(FramingError::BadLength)),
            (
                &[("Transfer-Encoding", "gzip, chunked")],
                Err(FramingError::BadTransferEncoding),
            ),
        ];
        for (list, expected) in cases {
            assert_eq!(&request_body_kind(&headers(list)), expected, "{list:?}");
        }
    }

    #[test]
    fn response_framing() {
        assert_eq!(response_body_kind("GET", 200, &[]), Ok(BodyKind::UntilClose));
        assert_eq!(
            response_body_kind("HEAD", 200, &headers(&[("Content-Length", "5")])),
            Ok(BodyKind::None)
        );
        assert_eq!(response_body_kind("GET", 304, &[]), Ok(BodyKind::None));
        assert_eq!(
            response_body_kind("GET", 200, &headers(&[("Content-Length", "5")])),
            Ok(BodyKind::Length(5))
        );
    }

    #[test]
    fn heads_with_nul_or_bare_cr_are_rejected() {
        assert!(parse_request(b"GET http://a/ HTTP/1.1\r\nX: a\0b\r\n\r\n").is_err());
        assert!(parse_request(b"GET http://a/ HTTP/1.1\r\nX: a\rb\r\n\r\n").is_err());
        assert!(
            parse_request(b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n")
                .unwrap()
                .is_some()
        );
        assert!(parse_request(b"CONNECT a:443 HTTP/1.1\nHost: a\n\n").unwrap().is_some());
    }

    #[test]
    fn framing_fields_named_in_connection_are_found() {
        assert_eq!(
            framing_named_in_connection(&headers(&[("Connection", "keep-alive, Content-Length")])),
            Some("content-length")
        );
        assert_eq!(
            framing_named_in_connection(&headers(&[("Proxy-Connection", "transfer-encoding")])),
            Some("transfer-encoding")
        );
        assert_eq!(
            framing_named_in_connection(&headers(&[("Connection", "keep-alive")])),
            None
        );
    }

    #[test]
    fn keep_alive_rules() {
        assert!(wants_keep_alive(1, &[]));
        assert!(!wants_keep_alive(0, &[]));
        assert!(wants_keep_alive(0, &headers(&[("Proxy-Connection", "Keep-Alive")])));
        assert!(!wants_keep_alive(1, &headers(&[("Connection", "close")])));
    }
}
