//! A TCP stream with a read-ahead buffer: request/response heads are read into the buffer, and
//! whatever arrived behind a head (a body, or tunnel bytes sent before our 200) stays there.

use std::time::Duration;

use crate::tls::Stream;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a head could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("connection closed before a complete head")]
    ClosedEarly { received: usize },
    #[error("head larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("more than {limit} header fields")]
    TooManyFields { limit: usize },
    #[error("timed out waiting for a complete head")]
    Timeout { received: usize },
    #[error("malformed head: {0}")]
    Malformed(String),
    #[error("unsupported HTTP version")]
    Version,
    #[error("i/o error reading head: {0}")]
    Io(#[from] std::io::Error),
}

pub struct BufConn {
    pub stream: Stream,
    pub buf: BytesMut,
}

/// Reads at least this much per syscall; heads are small, bodies are copied in these steps.
const READ_CHUNK: usize = 16 * 1024;

impl BufConn {
    pub fn new(stream: impl Into<Stream>) -> BufConn {
        BufConn {
            stream: stream.into(),
            buf: BytesMut::new(),
        }
    }

    /// Reads more bytes into the buffer; returns how many (0 = EOF).
    pub async fn fill(&mut self) -> std::io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Reads until `parse` reports a complete head of `n` bytes, which it returns, leaving the
    /// bytes behind it in the buffer. `parse` returns `Ok(None)` while the head is partial.
    pub async fn read_head<T>(
        &mut self,
        limit: usize,
        timeout: Duration,
        mut parse: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, HeadError>,
    ) -> Result<(T, usize), HeadError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if !self.buf.is_empty() {
                let window = &self.buf[..self.buf.len().min(limit)];
                if let Some(done) = parse(window)? {
                    return Ok(done);
                }
                if self.buf.len() >= limit {
                    return Err(HeadError::TooLarge { limit });
                }
            }
            let received = self.buf.len();
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Err(_) => return Err(HeadError::Timeout { received }),
                Ok(Ok(0)) => return Err(HeadError::ClosedEarly { received }),
                // A TLS peer that closes without close_notify has closed all the same.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(HeadError::ClosedEarly { received });
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(HeadError::Io(e)),
            }
        }
    }

    /// Writes all of `data` to the stream.
    pub async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(data).await?;
        self.stream.flush().await
    }
}
