#![allow(dead_code)] // each target uses one function
//! The bodies of the fuzz targets, shared with `tests/fuzz_regressions.rs` (which includes
//! this file with `#[path]`), so a crashing input is replayed through exactly the same code.
//! Each function must never panic for any input; the assertions are the oracles.

use std::cell::RefCell;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use hopproxy::http1::body::{BodyKind, copy_body, parse_chunk_size};
use hopproxy::http1::conn::BufConn;
use hopproxy::http1::head::{
    connection_tokens, parse_request, parse_response, request_body_kind, response_body_kind, wants_keep_alive,
};
use hopproxy::serve::proxy_protocol::{self, V2_MAX};
use hopproxy::serve::target::{absolute_url, authority, host_field_matches, parse_absolute, parse_connect};

/// Request-head parser, framing and target parsing (what serve does with a client's head).
pub fn request_head(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        targets(text);
    }
    let Ok(Some((head, len))) = parse_request(data) else {
        return;
    };
    assert!(len <= data.len(), "head length {len} beyond input {}", data.len());
    let _ = request_body_kind(&head.headers);
    let _ = wants_keep_alive(head.version, &head.headers);
    let _ = connection_tokens(&head.headers);
    targets(&head.target);
    if !head.method.eq_ignore_ascii_case("CONNECT")
        && let Ok(target) = parse_absolute(&head.target)
    {
        for header in head.headers.iter().filter(|h| h.is("host")) {
            let _ = host_field_matches(&target, header.value_str());
        }
    }
}

/// Both target forms, with a round trip: what we log and send must parse back to the same.
fn targets(text: &str) {
    if let Ok(target) = parse_connect(text) {
        let again = authority(&target);
        assert_eq!(
            parse_connect(&again).as_ref(),
            Ok(&target),
            "CONNECT {text:?} → {again:?}"
        );
    }
    if let Ok(target) = parse_absolute(text) {
        let again = absolute_url(&target);
        assert_eq!(parse_absolute(&again).as_ref(), Ok(&target), "URL {text:?} → {again:?}");
    }
}

thread_local! {
    /// A runtime and a `BufConn` whose socket is already at EOF: `copy_body` then reads only
    /// what the harness puts in `buf`, with no refactor of `http1` needed.
    static EOF_CONN: RefCell<Option<(tokio::runtime::Runtime, BufConn)>> = const { RefCell::new(None) };
}

fn eof_conn() -> (tokio::runtime::Runtime, BufConn) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let conn = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        drop(server); // the peer is gone: every fill() returns 0
        BufConn::new(client)
    });
    (runtime, conn)
}

/// The chunked-body decoder: `parse_chunk_size` on the raw input, then `copy_body` with
/// `BodyKind::Chunked` over the input. A body that ends cleanly must be passed through
/// byte for byte (chunk framing is forwarded unchanged) and leave the rest in the buffer.
pub fn chunked_body(data: &[u8]) {
    let _ = parse_chunk_size(data);
    EOF_CONN.with(|cell| {
        let mut slot = cell.borrow_mut();
        let (runtime, conn) = slot.get_or_insert_with(eof_conn);
        conn.buf = BytesMut::from(data);
        let mut out: Vec<u8> = Vec::new();
        let result = runtime.block_on(copy_body(conn, &mut out, BodyKind::Chunked, Duration::from_secs(5)));
        if let Ok(written) = result {
            assert_eq!(written, out.len() as u64, "count differs from bytes written");
            assert_eq!(&out[..], &data[..out.len()], "body not passed through unchanged");
            assert_eq!(&conn.buf[..], &data[out.len()..], "bytes after the body were lost");
        }
        conn.buf.clear();
    });
}

/// What a forwarding hop does with a next hop's answer: the response-head parser, the framing
/// decision for a GET and a HEAD, and, for a chunked answer, the chunked decoder over the bytes
/// behind the head (the same pass-through oracle as `chunked_body`).
pub fn response_head(data: &[u8]) {
    let Ok(Some((head, len))) = parse_response(data) else {
        return;
    };
    assert!(len <= data.len(), "head length {len} beyond input {}", data.len());
    let _ = connection_tokens(&head.headers);
    let head_kind = response_body_kind("HEAD", head.status, &head.headers);
    assert_eq!(head_kind, Ok(BodyKind::None), "a HEAD answer never has a body");
    if let Ok(BodyKind::Chunked) = response_body_kind("GET", head.status, &head.headers) {
        chunked_body(&data[len..]);
    }
}

/// The PROXY protocol header reader (`http_port … require-proxy-header`): a complete header
/// lies within the input and the size bound, parses the same on its own, and every shorter
/// prefix of it waits for more bytes (never a verdict on a partial header).
pub fn proxy_header(data: &[u8]) {
    let Ok(Some((carried, len))) = proxy_protocol::parse(data) else {
        return;
    };
    assert!(len <= data.len() && len <= V2_MAX, "header length {len}");
    assert_eq!(proxy_protocol::parse(&data[..len]), Ok(Some((carried, len))));
    for cut in (0..len).step_by(len / 64 + 1) {
        assert_eq!(proxy_protocol::parse(&data[..cut]), Ok(None), "prefix of {cut} bytes");
    }
}

/// Where fuzzed configs pretend to live: a directory that does not exist, so relative
/// `include`, ACL-file and password-file paths read nothing.
const LABEL: &str = "/nonexistent-hopproxy-fuzz/fuzz.conf";

/// True when the text could make the parser read a real file (an absolute path after
/// `include`, a quoted ACL value file, an `auth_param` password file): such inputs are
/// skipped, so the fuzzer never reads /dev/zero or the machine's files. Continuation lines
/// glue pieces together, so separators are squeezed out before looking.
pub fn touches_files(text: &str) -> bool {
    if !text.contains('/') {
        return false;
    }
    let squeezed: String = text
        .chars()
        .filter(|c| !matches!(c, '\\' | '\n' | '\r' | ' ' | '\t'))
        .collect::<String>()
        .to_ascii_lowercase();
    squeezed.contains("include") || squeezed.contains('"') || squeezed.contains("auth_param")
}

/// The squid.conf parser and the effective-policy lint on what it accepts.
pub fn config_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if touches_files(&text) {
        return;
    }
    if let Ok(loaded) = hopproxy::config::parse_str(&text, Path::new(LABEL)) {
        let _ = hopproxy::analysis::lint::lint(&loaded.config);
    }
}

/// ClientHello parser: never panics; the answer for the whole input agrees with the answer for
/// every prefix (a prefix of a complete hello is Incomplete or the same hello, never an error
/// the whole does not have), and the name it returns is a lower-case host name.
pub fn client_hello(data: &[u8]) {
    use hopproxy::tls_hello::{HelloError, MAX_INPUT, parse};
    let data = &data[..data.len().min(MAX_INPUT + 64)];
    let whole = parse(data);
    if let Ok(hello) = &whole {
        if let Some(name) = &hello.sni {
            assert!(!name.is_empty() && name.len() <= 255, "name length {}", name.len());
            assert!(
                !name.bytes().any(|b| b.is_ascii_uppercase()),
                "name not lower-case: {name}"
            );
        }
        // Splitting the same bytes anywhere must not change the outcome once all are in.
        for cut in [1, data.len() / 2, data.len().saturating_sub(1)] {
            match parse(&data[..cut.min(data.len())]) {
                Ok(prefix) => assert_eq!(&prefix, hello, "a prefix parsed differently"),
                Err(HelloError::Incomplete) => {}
                Err(e) => panic!("prefix of a valid hello failed with {e}"),
            }
        }
    }
    if data.len() >= MAX_INPUT {
        assert_ne!(
            whole,
            Err(HelloError::Incomplete),
            "still incomplete after MAX_INPUT bytes"
        );
    }
}
