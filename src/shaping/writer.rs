//! An `AsyncWrite` that passes on only what its shaper grants, sleeping while the buckets
//! refill. Bytes granted but not yet written are kept for the next write.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::AsyncWrite;
use tokio::time::Sleep;

use super::Shaper;

pub struct ShapedWriter<W> {
    inner: W,
    shaper: Shaper,
    granted: usize,
    waiting: Option<Pin<Box<Sleep>>>,
}

impl<W> ShapedWriter<W> {
    pub fn new(inner: W, shaper: Shaper) -> ShapedWriter<W> {
        ShapedWriter {
            inner,
            shaper,
            granted: 0,
            waiting: None,
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for ShapedWriter<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        let this = &mut *self;
        while this.granted == 0 {
            if let Some(sleep) = this.waiting.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                this.waiting = None;
            }
            match this.shaper.take(buf.len()) {
                Ok(n) => this.granted = n,
                Err(wait) => this.waiting = Some(Box::pin(tokio::time::sleep(wait))),
            }
        }
        let allowed = buf.len().min(this.granted);
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..allowed]))?;
        this.granted -= written;
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
