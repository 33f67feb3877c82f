//! Reads a TLS ClientHello from the first bytes of a tunnel: the server name (SNI) and the
//! offered ALPN protocols, nothing else. Pure and incremental: call [`parse`] with every byte
//! received so far; it says whether more are needed, whether they are not TLS at all, or what
//! is wrong with them.
//!
//! Hand-written rather than taken from `tls-parser` (nom-based, parses whole records and every
//! extension into owned types): a ClientHello may be split over several TLS records and any
//! number of TCP segments, and all that is wanted is two extensions under a hard size bound.
//! rustls parses ClientHellos only as a server, on a connection it terminates. The grammar
//! read here is small (RFC 8446 4.1.2, RFC 6066 3, RFC 7301 3.1) and fuzzed (fuzz/).
//!
//! Bounds: a handshake message over [`MAX_HELLO`] bytes is refused as [`HelloError::TooLarge`];
//! the caller never needs to buffer more than [`MAX_INPUT`] bytes. The only allocations are
//! the returned name and protocol list, and a copy of the message when it spans records.

/// The largest ClientHello accepted: one full TLS record (2^14 bytes). Real ones are well
/// under 2 KiB, post-quantum key shares included.
pub const MAX_HELLO: usize = 16 * 1024;
/// The most bytes of input a caller ever has to hold to get an answer: the hello, and a record
/// header for each of up to 32 records it may be split into.
pub const MAX_INPUT: usize = MAX_HELLO + 4 + 32 * RECORD_HEADER;

/// How long a client has, after the proxy's 200, to send its whole ClientHello. Clients send
/// it at once; one that sends nothing in this time is taken to speak a server-first protocol.
pub const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

const RECORD_HEADER: usize = 5;
const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const MAX_NAME: usize = 255;

/// What a ClientHello offers that tunnel rules look at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// The `host_name` of the server_name extension: lower-case, without a trailing dot.
    pub sni: Option<String>,
    /// The ALPN protocol names offered, in the client's order (`h2`, `http/1.1`, …). Bytes
    /// outside printable ASCII are shown as `?`.
    pub alpn: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The bytes so far are a valid beginning: read more.
    #[error("incomplete ClientHello")]
    Incomplete,
    /// The first bytes are not a TLS handshake record (plain HTTP, SSH, SSLv2, …).
    #[error("not TLS")]
    NotTls,
    /// TLS framing, but not a well-formed ClientHello.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    /// A ClientHello longer than [`MAX_HELLO`], or split into more records than
    /// [`MAX_INPUT`] leaves room for.
    #[error("ClientHello larger than {MAX_HELLO} bytes")]
    TooLarge,
}

/// Parses the ClientHello at the start of `input` (everything received so far).
pub fn parse(input: &[u8]) -> Result<ClientHello, HelloError> {
    // Decide "not TLS" from the first bytes alone, so a plain-text protocol is recognised
    // without waiting for more of it.
    match input {
        [] => return Err(HelloError::Incomplete),
        [first, ..] if *first != CONTENT_HANDSHAKE => return Err(HelloError::NotTls),
        [_, major, ..] if *major != 3 => return Err(HelloError::NotTls),
        [_, _, minor, ..] if *minor > 4 => return Err(HelloError::NotTls),
        _ => {}
    }
    // A first record that starts with the handshake header: its length is checked before
    // the rest of the record arrives, so an oversized hello is refused at once.
    if input.len() >= RECORD_HEADER + 4 && u16::from_be_bytes([input[3], input[4]]) >= 4 {
        handshake_len(&input[RECORD_HEADER..])?;
    }
    let first = records(input).next().ok_or(HelloError::Incomplete)??;
    if first.len() >= 4 {
        let len = handshake_len(first)?;
        if first.len() >= 4 + len {
            // The common case: the whole message in the first record, parsed in place.
            return client_hello(&first[4..4 + len]);
        }
    }
    let mut message = Vec::new();
    let mut total = None;
    for fragment in records(input) {
        let fragment = fragment?;
        message.extend_from_slice(fragment);
        if total.is_none() && message.len() >= 4 {
            total = Some(4 + handshake_len(&message)?);
            message.reserve_exact(total.unwrap_or(0).saturating_sub(message.len()));
        }
        if let Some(total) = total
            && message.len() >= total
        {
            return client_hello(&message[4..total]);
        }
    }
    if input.len() >= MAX_INPUT {
        return Err(HelloError::TooLarge);
    }
    Err(HelloError::Incomplete)
}

/// The length field of a handshake header, checked to be a bounded ClientHello.
fn handshake_len(message: &[u8]) -> Result<usize, HelloError> {
    if message[0] != HANDSHAKE_CLIENT_HELLO {
        return Err(HelloError::Malformed("first handshake message is not a ClientHello"));
    }
    let len = usize::from(message[1]) << 16 | usize::from(message[2]) << 8 | usize::from(message[3]);
    if 4 + len > MAX_HELLO {
        return Err(HelloError::TooLarge);
    }
    Ok(len)
}

/// The fragments of the complete handshake records at the start of `input`; stops at the
/// first incomplete record.
fn records(input: &[u8]) -> impl Iterator<Item = Result<&[u8], HelloError>> {
    let mut rest = input;
    std::iter::from_fn(move || {
        let header = rest.get(..RECORD_HEADER)?;
        if header[0] != CONTENT_HANDSHAKE {
            rest = &[];
            return Some(Err(HelloError::Malformed(
                "a non-handshake record inside the ClientHello",
            )));
        }
        if header[1] != 3 {
            rest = &[];
            return Some(Err(HelloError::Malformed("record version is not TLS")));
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 {
            rest = &[];
            return Some(Err(HelloError::Malformed("empty handshake record")));
        }
        if len > MAX_HELLO + 256 {
            rest = &[];
            return Some(Err(HelloError::Malformed("record longer than TLS allows")));
        }
        let fragment = rest.get(RECORD_HEADER..RECORD_HEADER + len)?;
        rest = &rest[RECORD_HEADER + len..];
        Some(Ok(fragment))
    })
}

/// A cursor over one message: every read is bounds-checked and says what was cut short.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        if self.bytes.len() < n {
            return Err(HelloError::Malformed(what));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, HelloError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, HelloError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let n = self.u8(what)?;
        self.take(usize::from(n), what)
    }

    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// The body of a ClientHello handshake message (without its 4-byte header).
fn client_hello(body: &[u8]) -> Result<ClientHello, HelloError> {
    let mut r = Reader { bytes: body };
    r.take(2 + 32, "ClientHello shorter than its version and random")?;
    if r.vec8("session id cut short")?.len() > 32 {
        return Err(HelloError::Malformed("session id longer than 32 bytes"));
    }
    let suites = r.vec16("cipher suites cut short")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(HelloError::Malformed("cipher suite list empty or of odd length"));
    }
    if r.vec8("compression methods cut short")?.is_empty() {
        return Err(HelloError::Malformed("no compression method"));
    }
    let mut hello = ClientHello::default();
    if r.is_empty() {
        // TLS 1.0-style hello without extensions.
        return Ok(hello);
    }
    let mut extensions = Reader {
        bytes: r.vec16("extensions cut short")?,
    };
    if !r.is_empty() {
        return Err(HelloError::Malformed("bytes after the extensions"));
    }
    let (mut seen_sni, mut seen_alpn) = (false, false);
    while !extensions.is_empty() {
        let kind = extensions.u16("extension type cut short")?;
        let data = extensions.vec16("extension cut short")?;
        match kind {
            EXT_SERVER_NAME => {
                if std::mem::replace(&mut seen_sni, true) {
                    return Err(HelloError::Malformed("two server_name extensions"));
                }
                hello.sni = server_name(data)?;
            }
            EXT_ALPN => {
                if std::mem::replace(&mut seen_alpn, true) {
                    return Err(HelloError::Malformed("two ALPN extensions"));
                }
                hello.alpn = alpn(data)?;
            }
            _ => {}
        }
    }
    Ok(hello)
}

/// RFC 6066 3: a list of (type, name); only `host_name` (0) is defined.
fn server_name(data: &[u8]) -> Result<Option<String>, HelloError> {
    let mut outer = Reader { bytes: data };
    let mut list = Reader {
        bytes: outer.vec16("server name list cut short")?,
    };
    if !outer.is_empty() {
        return Err(HelloError::Malformed("bytes after the server name list"));
    }
    let mut found = None;
    while !list.is_empty() {
        let kind = list.u8("server name type cut short")?;
        let name = list.vec16("server name cut short")?;
        if kind != 0 {
            continue;
        }
        if found.is_some() {
            return Err(HelloError::Malformed("two host names in server_name"));
        }
        found = Some(host_name(name)?);
    }
    Ok(found)
}

/// A DNS host name as RFC 6066 demands (ASCII, no trailing dot), lower-cased.
fn host_name(name: &[u8]) -> Result<String, HelloError> {
    let valid = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    if name.is_empty() || name.len() > MAX_NAME || !name.iter().all(valid) || name.ends_with(b".") {
        return Err(HelloError::Malformed("server name is not a host name"));
    }
    Ok(name.iter().map(|b| char::from(b.to_ascii_lowercase())).collect())
}

/// RFC 7301 3.1: a non-empty list of non-empty protocol names.
fn alpn(data: &[u8]) -> Result<Vec<String>, HelloError> {
    let mut outer = Reader { bytes: data };
    let mut list = Reader {
        bytes: outer.vec16("ALPN list cut short")?,
    };
    if !outer.is_empty() || list.is_empty() {
        return Err(HelloError::Malformed("ALPN list empty or followed by bytes"));
    }
    let mut protocols = Vec::new();
    while !list.is_empty() {
        let name = list.vec8("ALPN protocol cut short")?;
        if name.is_empty() {
            return Err(HelloError::Malformed("empty ALPN protocol name"));
        }
        let printable = |b: &u8| if b.is_ascii_graphic() { char::from(*b) } else { '?' };
        protocols.push(name.iter().map(printable).collect());
    }
    Ok(protocols)
}

/// Test and fuzz support: a minimal, well-formed ClientHello record for `sni` and `alpn`,
/// split into TLS records of at most `record_size` bytes of handshake data each.
pub fn build_client_hello(sni: Option<&str>, alpn: &[&str], padding: usize, record_size: usize) -> Vec<u8> {
    let mut extensions = Vec::new();
    if let Some(name) = sni {
        let entry_len = 3 + name.len();
        extensions.extend_from_slice(&EXT_SERVER_NAME.to_be_bytes());
        extensions.extend_from_slice(&((2 + entry_len) as u16).to_be_bytes());
        extensions.extend_from_slice(&(entry_len as u16).to_be_bytes());
        extensions.push(0);
        extensions.extend_from_slice(&(name.len() as u16).to_be_bytes());
        extensions.extend_from_slice(name.as_bytes());
    }
    if !alpn.is_empty() {
        let list: Vec<u8> = alpn
            .iter()
            .flat_map(|p| std::iter::once(p.len() as u8).chain(p.bytes()))
            .collect();
        extensions.extend_from_slice(&EXT_ALPN.to_be_bytes());
        extensions.extend_from_slice(&((2 + list.len()) as u16).to_be_bytes());
        extensions.extend_from_slice(&(list.len() as u16).to_be_bytes());
        extensions.extend_from_slice(&list);
    }
    if padding > 0 {
        // RFC 7685 padding extension (21).
        extensions.extend_from_slice(&21u16.to_be_bytes());
        extensions.extend_from_slice(&(padding as u16).to_be_bytes());
        extensions.resize(extensions.len() + padding, 0);
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01]);
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut message = vec![HANDSHAKE_CLIENT_HELLO];
    message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    message.extend_from_slice(&body);
    let mut out = Vec::new();
    for chunk in message.chunks(record_size.max(1)) {
        out.extend_from_slice(&[CONTENT_HANDSHAKE, 3, 1]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_and_alpn_from_one_record() {
        let hello = build_client_hello(Some("Api.Example.COM"), &["h2", "http/1.1"], 0, 16384);
        assert_eq!(
            parse(&hello),
            Ok(ClientHello {
                sni: Some("api.example.com".into()),
                alpn: vec!["h2".into(), "http/1.1".into()],
            })
        );
    }

    #[test]
    fn every_prefix_is_incomplete_and_the_whole_parses() {
        for record_size in [16384, 100, 7, 1] {
            let hello = build_client_hello(Some("a.example"), &["h2"], 40, record_size);
            for cut in 0..hello.len() {
                assert_eq!(
                    parse(&hello[..cut]),
                    Err(HelloError::Incomplete),
                    "cut {cut} of {record_size}"
                );
            }
            assert_eq!(parse(&hello).unwrap().sni.as_deref(), Some("a.example"));
        }
    }

    #[test]
    fn trailing_bytes_after_the_hello_are_ignored() {
        let mut hello = build_client_hello(None, &[], 0, 16384);
        hello.extend_from_slice(b"\x17\x03\x03\x00\x05early");
        assert_eq!(parse(&hello), Ok(ClientHello::default()));
    }

    #[test]
    fn not_tls_is_known_from_the_first_byte() {
        assert_eq!(parse(b"G"), Err(HelloError::NotTls));
        assert_eq!(parse(b"SSH-2.0-OpenSSH"), Err(HelloError::NotTls));
        assert_eq!(parse(b"\x16\x04"), Err(HelloError::NotTls));
        assert_eq!(parse(b"\x80\x2e\x01"), Err(HelloError::NotTls), "SSLv2 hello");
        assert_eq!(parse(b"\x16"), Err(HelloError::Incomplete));
    }

    #[test]
    fn oversized_hellos_are_refused_early() {
        let hello = build_client_hello(Some("a.example"), &[], MAX_HELLO, 16384);
        // The handshake header alone already says it is too long.
        assert_eq!(parse(&hello[..9]), Err(HelloError::TooLarge));
        // Split into too many tiny records: refused once MAX_INPUT bytes are in.
        let tiny = build_client_hello(Some("a.example"), &[], 4000, 1);
        assert_eq!(parse(&tiny[..MAX_INPUT]), Err(HelloError::TooLarge));
    }

    #[test]
    fn malformed_pieces_are_named() {
        let mut hello = build_client_hello(Some("a.example"), &[], 0, 16384);
        hello[5] = 2; // a ServerHello
        assert!(matches!(parse(&hello), Err(HelloError::Malformed(_))));
        let bad_name = build_client_hello(Some("a b"), &[], 0, 16384);
        assert_eq!(
            parse(&bad_name),
            Err(HelloError::Malformed("server name is not a host name"))
        );
        let mut alert_inside = build_client_hello(Some("a.example"), &[], 0, 20);
        alert_inside[25] = 21;
        assert!(matches!(parse(&alert_inside), Err(HelloError::Malformed(_))));
    }
}
