//! HTTP/1.1 message body framing (RFC 9112 section 6): copy exactly one body from a buffered
//! connection to a writer, chunk framing passed through unchanged.

use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::conn::BufConn;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
    /// A response without length: the body ends when the server closes.
    UntilClose,
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("peer closed the connection in the middle of a body")]
    Truncated,
    #[error("invalid chunk framing: {0}")]
    BadChunk(&'static str),
    #[error("no data for {0:?}")]
    Idle(Duration),
    #[error("reading body: {0}")]
    Read(std::io::Error),
    #[error("writing body: {0}")]
    Write(std::io::Error),
}

/// Longest chunk-size line (size + extensions) we accept; real ones are a few bytes.
const MAX_CHUNK_LINE: usize = 4096;

/// Copies one body of `kind` from `src` to `dst`; returns the bytes written to `dst`.
/// `idle` bounds each wait for more data.
pub async fn copy_body<W: AsyncWrite + Unpin>(
    src: &mut BufConn,
    dst: &mut W,
    kind: BodyKind,
    idle: Duration,
) -> Result<u64, BodyError> {
    let mut written = 0;
    copy_body_counted(src, dst, kind, idle, &mut written).await?;
    Ok(written)
}

/// [`copy_body`] that adds every byte written to `dst` to `written` as it goes, so a body cut
/// short still tells how much of it got through (the log's byte count).
pub async fn copy_body_counted<W: AsyncWrite + Unpin>(
    src: &mut BufConn,
    dst: &mut W,
    kind: BodyKind,
    idle: Duration,
    written: &mut u64,
) -> Result<(), BodyError> {
    match kind {
        BodyKind::None => Ok(()),
        BodyKind::Length(n) => copy_exact(src, dst, n, idle, written).await,
        BodyKind::Chunked => copy_chunked(src, dst, idle, written).await,
        BodyKind::UntilClose => copy_until_close(src, dst, idle, written).await,
    }
}

async fn fill(src: &mut BufConn, idle: Duration) -> Result<usize, BodyError> {
    match tokio::time::timeout(idle, src.fill()).await {
        Err(_) => Err(BodyError::Idle(idle)),
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(BodyError::Read(e)),
    }
}

async fn copy_exact<W: AsyncWrite + Unpin>(
    src: &mut BufConn,
    dst: &mut W,
    mut remaining: u64,
    idle: Duration,
    written: &mut u64,
) -> Result<(), BodyError> {
    while remaining > 0 {
        if src.buf.is_empty() && fill(src, idle).await? == 0 {
            return Err(BodyError::Truncated);
        }
        let take = (src.buf.len() as u64).min(remaining) as usize;
        let piece = src.buf.split_to(take);
        dst.write_all(&piece).await.map_err(BodyError::Write)?;
        remaining -= take as u64;
        *written += take as u64;
    }
    Ok(())
}

async fn copy_until_close<W: AsyncWrite + Unpin>(
    src: &mut BufConn,
    dst: &mut W,
    idle: Duration,
    written: &mut u64,
) -> Result<(), BodyError> {
    loop {
        if !src.buf.is_empty() {
            let piece = src.buf.split();
            dst.write_all(&piece).await.map_err(BodyError::Write)?;
            *written += piece.len() as u64;
        }
        if fill(src, idle).await? == 0 {
            return Ok(());
        }
    }
}

/// Reads one LF-terminated line (callers insist on CRLF) and removes it from the buffer, line ending included.
async fn take_line(src: &mut BufConn, idle: Duration) -> Result<bytes::BytesMut, BodyError> {
    loop {
        if let Some(at) = src.buf.iter().position(|&b| b == b'\n') {
            return Ok(src.buf.split_to(at + 1));
        }
        if src.buf.len() > MAX_CHUNK_LINE {
            return Err(BodyError::BadChunk("chunk-size line too long"));
        }
        if fill(src, idle).await? == 0 {
            return Err(BodyError::Truncated);
        }
    }
}

/// Parses a chunk-size line: hex digits, optional `;` extensions, CRLF. Stricter than the
/// grammar's tolerance on purpose: no white space around the size, no bare CR or LF and no
/// control bytes in the line, as Squid 5.7 requires. Two hops that read a lenient line
/// differently could disagree on where the body ends, which is request smuggling.
pub fn parse_chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    let line = line
        .strip_suffix(b"\r\n")
        .ok_or(BodyError::BadChunk("chunk-size line does not end with CRLF"))?;
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let (digits, extensions) = line.split_at(end);
    if digits.is_empty() || digits.len() > 16 {
        return Err(BodyError::BadChunk("chunk size missing or too long"));
    }
    if extensions.iter().any(|&b| is_forbidden_in_line(b)) {
        return Err(BodyError::BadChunk("control byte in chunk extension"));
    }
    let mut size: u64 = 0;
    for &b in digits {
        let digit = (b as char)
            .to_digit(16)
            .ok_or(BodyError::BadChunk("chunk size is not hexadecimal"))?;
        size = size
            .checked_mul(16)
            .ok_or(BodyError::BadChunk("chunk size overflows"))?
            + u64::from(digit);
    }
    Ok(size)
}

/// CR, LF and other control bytes (tab is field white space) inside a line.
fn is_forbidden_in_line(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// A trailer line, or the empty line that ends a chunked body: CRLF-terminated, no bare CR.
fn check_trailer_line(line: &[u8]) -> Result<(), BodyError> {
    let content = line
        .strip_suffix(b"\r\n")
        .ok_or(BodyError::BadChunk("trailer line does not end with CRLF"))?;
    if content.iter().any(|&b| is_forbidden_in_line(b)) {
        return Err(BodyError::BadChunk("control byte in trailer"));
    }
    Ok(())
}

async fn copy_chunked<W: AsyncWrite + Unpin>(
    src: &mut BufConn,
    dst: &mut W,
    idle: Duration,
    written: &mut u64,
) -> Result<(), BodyError> {
    loop {
        let line = take_line(src, idle).await?;
        let size = parse_chunk_size(&line)?;
        dst.write_all(&line).await.map_err(BodyError::Write)?;
        *written += line.len() as u64;
        if size == 0 {
            // Trailer fields, then the empty line that ends the message.
            loop {
                let trailer = take_line(src, idle).await?;
                check_trailer_line(&trailer)?;
                dst.write_all(&trailer).await.map_err(BodyError::Write)?;
                *written += trailer.len() as u64;
                if trailer.as_ref() == b"\r\n" {
                    return Ok(());
                }
            }
        }
        copy_exact(src, dst, size, idle, written).await?;
        let end = take_line(src, idle).await?;
        if end.as_ref() != b"\r\n" {
            return Err(BodyError::BadChunk("chunk data not followed by CRLF"));
        }
        dst.write_all(&end).await.map_err(BodyError::Write)?;
        *written += end.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a\r\n").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"0\r\n").unwrap(), 0);
        assert_eq!(parse_chunk_size(b"FF;name=value\r\n").unwrap(), 255);
        assert_eq!(parse_chunk_size(b"FF;name=\"a b\"\r\n").unwrap(), 255);
        let bad_lines: &[&[u8]] = &[
            b"\r\n",
            b"zz\r\n",
            b"-1\r\n",
            b"11111111111111111\r\n",
            b"1a",
            b"10\n",
            b" 10\r\n",
            b"10 \r\n",
            b"10\t\r\n",
            b"10;a\rb\r\n",
            b"10;a\0\r\n",
            b"10\r\r\n",
        ];
        for bad in bad_lines {
            assert!(parse_chunk_size(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
