//! The proxy's upstream connections: telling a truncated body from a complete one, and
//! closing connections that sit idle in awc's pool.
//!
//! awc reports a body whose connection closed early (a chunked body without its last
//! chunk, a sized body short of its length) as a clean end of stream. A proxy must not:
//! the browser would take half an answer for a whole one. The proxy's connections are
//! therefore made through [`WatchedIo`], which notes on the polling thread when a read
//! hits end-of-file; [`watch`] tells whether that happened during one poll of the body.
//!
//! awc's pool closes an idle connection only when the next request to that host looks
//! for one: after a burst of streams, thousands of sockets (in CLOSE_WAIT once the
//! backend gives up on them) and their buffers stay until traffic comes back, and the
//! first request pays for closing them all. So every connection is registered with its
//! worker's reaper ([`reap_idle`]), which closes those idle for the keep-alive window
//! whether or not another request comes. A connection is busy from its first write (a
//! request) until the answer is done with: the proxy holds it ([`Hold`]) from the moment
//! the response head is read until its body has been passed on (or, with no body, at
//! once); idle means not busy and untouched for the window. awc would not reuse such a
//! connection anyway; when it looks at the closed one it gets an error and drops it.

use std::{
    cell::{Cell, RefCell},
    fmt, io,
    pin::Pin,
    rc::{Rc, Weak},
    task::{Context, Poll},
    time::Duration,
};

use actix_rt::net::{ActixStream, Ready, TcpStream};
use actix_service::{Service, ServiceExt};
use actix_tls::connect::{ConnectError, ConnectInfo, Connection};
use awc::http::Uri;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

thread_local! {
    static EOF_SEEN: Cell<bool> = const { Cell::new(false) };
    /// The connection read last on this thread (the one whose answer was just read).
    static LAST_READ: RefCell<Weak<ConnState>> = const { RefCell::new(Weak::new()) };
    /// This worker's connections, for the reaper.
    static CONNECTIONS: RefCell<Vec<Weak<ConnState>>> = const { RefCell::new(Vec::new()) };
    /// The reaper's clock: one tick per half keep-alive window.
    static TICK: Cell<u64> = const { Cell::new(0) };
    static REAPER_RUNNING: Cell<bool> = const { Cell::new(false) };
}

/// What the reaper knows of one connection.
pub struct ConnState {
    /// The socket; `None` once reaped.
    io: RefCell<Option<TcpStream>>,
    /// The reaper's tick at the last read or write.
    last_used: Cell<u64>,
    /// Busy: set by every write (a request) and by reads that wait; cleared only when a
    /// [`Hold`] on the answer is released (reads of a TLS handshake or of a response head
    /// do not make a connection idle).
    in_flight: Cell<bool>,
    /// Response bodies being passed on from this connection.
    held: Cell<u32>,
}

impl ConnState {
    fn used(&self) {
        self.last_used.set(TICK.with(Cell::get));
    }

    fn busy(&self) {
        self.used();
        self.in_flight.set(true);
    }
}

/// A body being passed on from a connection: the reaper leaves the connection alone,
/// however long the browser takes to read.
pub struct Hold(Rc<ConnState>);

impl Hold {
    /// Holds `conn` until dropped.
    pub fn new(conn: Rc<ConnState>) -> Self {
        conn.held.set(conn.held.get() + 1);
        Self(conn)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let held = self.0.held.get() - 1;
        self.0.held.set(held);
        // The answer is done with: idle time counts from now.
        if held == 0 {
            self.0.used();
            self.0.in_flight.set(false);
        }
    }
}

/// One poll of an upstream body: `f`'s result, whether a connection read hit EOF, and the
/// connection it read from (if it read).
pub fn watch<T>(f: impl FnOnce() -> T) -> (T, bool, Option<Rc<ConnState>>) {
    EOF_SEEN.with(|c| c.set(false));
    take_last_read();
    let out = f();
    (out, EOF_SEEN.with(|c| c.replace(false)), take_last_read())
}

/// The connection read last on this thread, if it is still open: right after awc's `send`
/// returns, the one whose response head was just read.
pub fn take_last_read() -> Option<Rc<ConnState>> {
    LAST_READ.with(|l| std::mem::take(&mut *l.borrow_mut())).upgrade()
}

/// A TCP stream that records reads returning end-of-file and its use, for the reaper.
pub struct WatchedIo(Rc<ConnState>);

impl fmt::Debug for WatchedIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchedIo")
            .field("open", &self.0.io.borrow().is_some())
            .finish()
    }
}

impl WatchedIo {
    fn new(io: TcpStream) -> Self {
        let state = Rc::new(ConnState {
            io: RefCell::new(Some(io)),
            last_used: Cell::new(TICK.with(Cell::get)),
            in_flight: Cell::new(true),
            held: Cell::new(0),
        });
        CONNECTIONS.with(|c| c.borrow_mut().push(Rc::downgrade(&state)));
        Self(state)
    }

    /// Runs `f` on the socket; a reaped connection is closed.
    fn with<T>(&self, closed: T, f: impl FnOnce(Pin<&mut TcpStream>) -> T) -> T {
        match self.0.io.borrow_mut().as_mut() {
            Some(io) => f(Pin::new(io)),
            None => closed,
        }
    }
}

/// What a reaped connection answers: an error (not end-of-file, which could pass for the
/// end of a body delimited by the connection's close).
fn closed_error<T>() -> Poll<io::Result<T>> {
    Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()))
}

impl AsyncRead for WatchedIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        // A reaped connection fails: awc's pool then drops it.
        let res = self.with(closed_error(), |io| io.poll_read(cx, buf));
        match res {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() == before && buf.remaining() > 0 {
                    EOF_SEEN.with(|c| c.set(true));
                }
                self.0.used();
                LAST_READ.with(|l| *l.borrow_mut() = Rc::downgrade(&self.0));
            }
            Poll::Ready(Err(_)) => self.0.used(),
            Poll::Pending => self.0.busy(),
        }
        res
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.0.busy();
        self.with(closed_error(), |io| io.poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.busy();
        self.with(Poll::Ready(Ok(())), |io| io.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(Poll::Ready(Ok(())), |io| io.poll_shutdown(cx))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.busy();
        self.with(closed_error(), |io| io.poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        self.0
            .io
            .borrow()
            .as_ref()
            .is_some_and(|io| io.is_write_vectored())
    }
}

impl ActixStream for WatchedIo {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        match self.0.io.borrow().as_ref() {
            Some(io) => ActixStream::poll_read_ready(io, cx),
            None => Poll::Ready(Ok(Ready::READABLE)),
        }
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        match self.0.io.borrow().as_ref() {
            Some(io) => ActixStream::poll_write_ready(io, cx),
            None => Poll::Ready(Ok(Ready::WRITABLE)),
        }
    }
}

/// The TCP connector of the proxy's awc client: the default one, yielding [`WatchedIo`]
/// with Nagle's algorithm off (as on the browser's side: see `startup`), so a streamed
/// upload's small chunks are not held back waiting for acknowledgements.
pub fn watched_connector(
) -> impl Service<ConnectInfo<Uri>, Response = Connection<Uri, WatchedIo>, Error = ConnectError> + Clone {
    actix_tls::connect::Connector::default()
        .service()
        .map(|c: Connection<Uri, TcpStream>| {
            let (io, c) = c.replace_io(());
            let _ = io.set_nodelay(true);
            c.replace_io(WatchedIo::new(io)).1
        })
}

/// Starts this worker's reaper (once per thread): every half `keepalive`, it closes the
/// connections idle for at least `keepalive`.
pub fn start_reaper(keepalive: Duration) {
    if REAPER_RUNNING.with(|r| r.replace(true)) {
        return;
    }
    // A floor, so that a keep-alive of 0 does not make the window a few milliseconds.
    let half = (keepalive / 2).max(Duration::from_millis(500));
    actix_rt::spawn(async move {
        let mut every = actix_rt::time::interval(half);
        // After a stalled worker, one tick, not a catch-up burst that would age every
        // connection at once.
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut settling = false;
        loop {
            every.tick().await;
            let tick = TICK.with(|t| {
                t.set(t.get() + 1);
                t.get()
            });
            let closed = reap_idle(tick);
            // After a burst, once its connections are closed (and a tick later, when the
            // browsers' connections have gone too), the freed memory goes back to the OS.
            if closed >= BURST || settling {
                give_back_memory();
            }
            settling = closed >= BURST;
        }
    });
}

/// Closing at least this many connections at once counts as the end of a burst.
const BURST: usize = 16;

/// Returns freed heap memory to the operating system: glibc keeps it otherwise, and a
/// burst of thousands of streams would leave the process that much larger for good. It
/// walks every arena, so the whole process does it at most once a second.
fn give_back_memory() {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = crate::clock::now();
    let last = LAST.load(Ordering::Relaxed);
    if now - last < 1
        || LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    malloc_trim();
}

#[allow(unsafe_code)]
fn malloc_trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers, only releases memory glibc holds free, and
    // is thread-safe (it locks each arena it trims).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Closes the connections idle since before `tick - 2` (at least two half-windows: the
/// whole keep-alive window) and forgets the ones awc has dropped. Returns how many it closed.
pub fn reap_idle(tick: u64) -> usize {
    CONNECTIONS.with(|all| {
        let mut closed = 0;
        all.borrow_mut().retain(|weak| {
            let Some(conn) = weak.upgrade() else {
                return false;
            };
            let idle = conn.held.get() == 0 && !conn.in_flight.get() && conn.last_used.get() + 2 < tick;
            if idle && conn.io.borrow_mut().take().is_some() {
                closed += 1;
            }
            // A closed connection stays registered until awc drops it (a few bytes).
            true
        });
        if closed > 0 {
            tracing::debug!(closed, "idle upstream connections closed");
        }
        closed
    })
}

#[cfg(test)]
mod tests {
    use actix_service::Service;
    use actix_tls::connect::ConnectInfo;

    use super::*;

    #[actix_web::test]
    async fn upstream_connections_send_small_writes_at_once() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let uri: Uri = format!("http://127.0.0.1:{port}/").parse().expect("uri");
        let conn = watched_connector()
            .call(ConnectInfo::new(uri))
            .await
            .expect("connect");
        let (io, _) = conn.into_parts();
        let nodelay = io.0.io.borrow().as_ref().map(|s| s.nodelay().expect("nodelay"));
        assert_eq!(nodelay, Some(true), "Nagle's algorithm must be off");
    }
}
