//! Telling a truncated upstream body from a complete one.
//!
//! awc reports a body whose connection closed early (a chunked body without its last
//! chunk, a sized body short of its length) as a clean end of stream. A proxy must not:
//! the browser would take half an answer for a whole one. The proxy's connections are
//! therefore made through [`WatchedIo`], which notes on the polling thread when a read
//! hits end-of-file; [`watch`] tells whether that happened during one poll of the body.

use std::{
    cell::Cell,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use actix_rt::net::{ActixStream, Ready, TcpStream};
use actix_service::{Service, ServiceExt};
use actix_tls::connect::{ConnectError, ConnectInfo, Connection};
use awc::http::Uri;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

thread_local! {
    static EOF_SEEN: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (one poll of an upstream body) and reports whether a connection read hit EOF.
pub fn watch<T>(f: impl FnOnce() -> T) -> (T, bool) {
    EOF_SEEN.with(|c| c.set(false));
    let out = f();
    (out, EOF_SEEN.with(|c| c.replace(false)))
}

/// A TCP stream that records reads returning end-of-file.
#[derive(Debug)]
pub struct WatchedIo(TcpStream);

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() == before && buf.remaining() > 0 {
            EOF_SEEN.with(|c| c.set(true));
        }
        res
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl ActixStream for WatchedIo {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_read_ready(&self.0, cx)
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_write_ready(&self.0, cx)
    }
}

/// The TCP connector of the proxy's awc client: the default one, yielding [`WatchedIo`].
pub fn watched_connector(
) -> impl Service<ConnectInfo<Uri>, Response = Connection<Uri, WatchedIo>, Error = ConnectError> + Clone {
    actix_tls::connect::Connector::default()
        .service()
        .map(|c: Connection<Uri, TcpStream>| {
            let (io, c) = c.replace_io(());
            c.replace_io(WatchedIo(io)).1
        })
}
