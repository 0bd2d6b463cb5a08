//! Streaming bodies through the proxy: the upstream's response body with an idle
//! timeout and optional SSE heartbeats, and the browser's request body with a size cap.

use std::{
    cell::Cell,
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use actix_web::rt::time::{sleep_until, Sleep};
use bytes::Bytes;
use futures_util::Stream;

/// Why a streamed body was cut.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The upstream failed or closed the connection mid-body.
    #[error("upstream body failed: {0}")]
    Upstream(String),
    /// No bytes for longer than the idle timeout.
    #[error("upstream silent for {0:?}")]
    Idle(Duration),
    /// The browser sent more than the route allows.
    #[error("request body over {0} bytes")]
    TooLarge(usize),
    /// The session was signed out or revoked while the stream was open.
    #[error("the session ended")]
    SessionEnded,
    /// The browser's request body failed.
    #[error("request body failed: {0}")]
    Client(String),
}

/// The upstream response body, passed on chunk by chunk as it arrives.
pub struct UpstreamBody<S> {
    inner: S,
    idle: Duration,
    last_chunk: Instant,
    last_sent: Instant,
    /// One timer for whichever comes first: the idle deadline, the next heartbeat, the next
    /// session check. Made on the first wait: most JSON bodies arrive whole and never wait.
    timer: Option<Pin<Box<Sleep>>>,
    heartbeat: Option<Duration>,
    /// The last three bytes passed on, to tell whether an event has just ended.
    tail: [u8; 3],
    bytes: u64,
    finished: bool,
    eof_is_truncation: bool,
    log_end: bool,
    span: tracing::Span,
    on_close: Option<Box<dyn FnOnce(u64, bool)>>,
    revalidate: Option<Revalidate>,
    /// Keeps the connection from the idle reaper while the body is passed on.
    hold: Option<super::upstream_io::Hold>,
}

/// A periodic check that the stream's session still exists, so that a sign-out or
/// revocation anywhere (any replica) also ends the streams already open.
struct Revalidate {
    every: Duration,
    next: Instant,
    check: Box<dyn Fn() -> futures_util::future::LocalBoxFuture<'static, bool>>,
    pending: Option<futures_util::future::LocalBoxFuture<'static, bool>>,
}

const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

impl<S> UpstreamBody<S> {
    /// Wraps `inner`; `heartbeat` only for `text/event-stream` bodies.
    pub fn new(inner: S, idle: Duration, heartbeat: Option<Duration>) -> Self {
        let now = Instant::now();
        Self {
            inner,
            idle,
            last_chunk: now,
            last_sent: now,
            timer: None,
            heartbeat,
            tail: *b"\n\n\n",
            bytes: 0,
            finished: false,
            eof_is_truncation: false,
            log_end: false,
            span: tracing::Span::current(),
            on_close: None,
            revalidate: None,
            hold: None,
        }
    }

    /// Every `every`, runs `check`; when it answers false the stream is cut.
    pub fn revalidate(
        mut self,
        every: Duration,
        check: impl Fn() -> futures_util::future::LocalBoxFuture<'static, bool> + 'static,
    ) -> Self {
        self.revalidate = Some(Revalidate {
            every,
            next: Instant::now() + every,
            check: Box::new(check),
            pending: None,
        });
        self
    }

    /// Treats a connection EOF at the end of the body as truncation (chunked or sized
    /// bodies end by framing, never by the connection closing).
    pub fn eof_is_truncation(mut self, framed: bool) -> Self {
        self.eof_is_truncation = framed;
        self
    }

    /// Logs the end of a completed body at info level (for event streams: their end is news;
    /// a JSON body's is already told by the request's response line).
    pub fn log_end(mut self, info: bool) -> Self {
        self.log_end = info;
        self
    }

    /// Keeps the connection the body comes from busy until the body is done with.
    pub fn hold(mut self, hold: Option<super::upstream_io::Hold>) -> Self {
        self.hold = hold;
        self
    }

    /// Calls `f(bytes, completed)` when the body is dropped (finished, failed or abandoned).
    pub fn on_close(mut self, f: impl FnOnce(u64, bool) + 'static) -> Self {
        self.on_close = Some(Box::new(f));
        self
    }

    /// Heartbeats go only between events, never inside one.
    fn at_event_boundary(&self) -> bool {
        // A blank line ends an event; lines end in LF, CRLF or CR. A lone CRLF is only the
        // end of a line: a heartbeat after `data: a\r\n` would dispatch a partial event.
        let t = &self.tail;
        t.ends_with(b"\n\n") || t.ends_with(b"\r\r") || t.ends_with(b"\n\r\n")
    }

    /// Polls a session check under way; true when it found the session gone. When it finds
    /// the session, the next check is due `every` from now.
    fn check_ended(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(r) = &mut self.revalidate else {
            return false;
        };
        let Some(Poll::Ready(alive)) = r.pending.as_mut().map(|p| p.as_mut().poll(cx)) else {
            return false;
        };
        r.pending = None;
        r.next = Instant::now() + r.every;
        if let Some(t) = &mut self.timer {
            if r.next < t.deadline().into_std() {
                t.as_mut().reset(r.next.into());
            }
        }
        !alive
    }
}

impl<S> Drop for UpstreamBody<S> {
    fn drop(&mut self) {
        let (bytes, finished) = (self.bytes, self.finished);
        self.span.in_scope(|| {
            if finished && self.log_end {
                tracing::info!(bytes, "response body sent");
            } else if finished {
                tracing::debug!(bytes, "response body sent");
            } else {
                tracing::info!(
                    bytes,
                    "response body not completed (client left or upstream failed)"
                );
            }
        });
        if let Some(f) = self.on_close.take() {
            f(bytes, finished);
        }
    }
}

impl<S, E> Stream for UpstreamBody<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, StreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let (polled, eof, conn) = super::upstream_io::watch(|| Pin::new(&mut this.inner).poll_next(cx));
        if let (None, Some(conn)) = (&this.hold, conn) {
            this.hold = Some(super::upstream_io::Hold::new(conn));
        }
        match polled {
            Poll::Ready(Some(Ok(chunk))) => {
                // Timers are re-armed lazily when they fire: a chunk costs one clock read.
                this.last_chunk = Instant::now();
                this.last_sent = this.last_chunk;
                this.bytes += chunk.len() as u64;
                let keep = chunk.len().min(3);
                this.tail.rotate_left(keep);
                this.tail[3 - keep..].copy_from_slice(&chunk[chunk.len() - keep..]);
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(Some(Err(e))) => {
                let msg = e.to_string();
                this.span
                    .in_scope(|| tracing::warn!(error = %msg, "upstream body failed; aborting the response"));
                return Poll::Ready(Some(Err(StreamError::Upstream(msg))));
            }
            Poll::Ready(None) if eof && this.eof_is_truncation => {
                this.span.in_scope(|| {
                    tracing::warn!(
                        "upstream closed the connection before the end of the body; aborting the response"
                    )
                });
                return Poll::Ready(Some(Err(StreamError::Upstream("truncated body".into()))));
            }
            Poll::Ready(None) => {
                this.finished = true;
                // awc has the connection back: from now on it may idle.
                this.hold = None;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        loop {
            if this.check_ended(cx) {
                this.span
                    .in_scope(|| tracing::info!("session ended; cutting its open stream"));
                return Poll::Ready(Some(Err(StreamError::SessionEnded)));
            }
            if let Some(t) = &mut this.timer {
                if t.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            // The timer fired (or there is none yet): deadlines moved by chunks since it was
            // set are read now, so a chunk costs one clock read and no timer update.
            let now = Instant::now();
            let idle_at = this.last_chunk + this.idle;
            if now >= idle_at {
                let idle = this.idle;
                this.span
                    .in_scope(|| tracing::warn!(?idle, "upstream idle timeout; aborting the response"));
                return Poll::Ready(Some(Err(StreamError::Idle(idle))));
            }
            let mut next = idle_at;
            if let Some(r) = &mut this.revalidate {
                if r.pending.is_none() {
                    if now >= r.next {
                        r.pending = Some((r.check)());
                        continue;
                    }
                    next = next.min(r.next);
                }
            }
            if let Some(every) = this.heartbeat {
                let due = this.last_sent + every;
                if now >= due && this.at_event_boundary() {
                    this.last_sent = now;
                    return Poll::Ready(Some(Ok(Bytes::from_static(KEEP_ALIVE))));
                }
                // Due but mid-event: look again shortly.
                next = next.min(if now >= due {
                    now + Duration::from_millis(50)
                } else {
                    due
                });
            }
            match &mut this.timer {
                Some(t) => t.as_mut().reset(next.into()),
                None => this.timer = Some(Box::pin(sleep_until(next.into()))),
            }
        }
    }
}

/// The browser's request body, cut with an error once it exceeds `limit`.
pub struct LimitedBody<S> {
    inner: S,
    limit: usize,
    seen: usize,
    overflowed: Rc<Cell<bool>>,
}

impl<S> LimitedBody<S> {
    /// Wraps `inner`; `overflowed` is set when the limit is crossed.
    pub fn new(inner: S, limit: usize, overflowed: Rc<Cell<bool>>) -> Self {
        Self {
            inner,
            limit,
            seen: 0,
            overflowed,
        }
    }
}

impl<S, E> Stream for LimitedBody<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, StreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.seen += chunk.len();
                if this.seen > this.limit {
                    this.overflowed.set(true);
                    return Poll::Ready(Some(Err(StreamError::TooLarge(this.limit))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(StreamError::Client(e.to_string())))),
            other => other.map(|o| o.map(|r| r.map_err(|e| StreamError::Client(e.to_string())))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{stream, StreamExt};

    fn chunks(parts: &[&'static str]) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p.as_bytes())))
                .collect::<Vec<_>>(),
        )
    }

    #[actix_web::test]
    async fn chunks_pass_unchanged_and_in_order() {
        let body = UpstreamBody::new(
            chunks(&["data: 1\n\n", "data: 2\n\n"]),
            Duration::from_secs(5),
            None,
        );
        let got: Vec<_> = body.map(|c| c.expect("chunk")).collect().await;
        assert_eq!(got, vec![Bytes::from("data: 1\n\n"), Bytes::from("data: 2\n\n")]);
    }

    #[actix_web::test]
    async fn silent_upstream_hits_the_idle_timeout() {
        let silent = stream::pending::<Result<Bytes, String>>();
        let mut body = UpstreamBody::new(silent, Duration::from_millis(50), None);
        assert!(matches!(body.next().await, Some(Err(StreamError::Idle(_)))));
    }

    #[actix_web::test]
    async fn heartbeats_only_between_events() {
        // Half an event, then silence: no heartbeat may be inserted mid-event.
        let half = chunks(&["data: {\"a\":"]).chain(stream::pending());
        let mut body = UpstreamBody::new(half, Duration::from_millis(300), Some(Duration::from_millis(20)));
        assert_eq!(
            body.next().await.expect("chunk").expect("ok"),
            Bytes::from("data: {\"a\":")
        );
        assert!(matches!(body.next().await, Some(Err(StreamError::Idle(_)))));

        // A CRLF ends a line, not the event.
        let line = chunks(&["data: {\"a\":1}\r", "\n"]).chain(stream::pending());
        let mut body = UpstreamBody::new(line, Duration::from_millis(300), Some(Duration::from_millis(20)));
        body.next().await.expect("chunk").expect("ok");
        body.next().await.expect("chunk").expect("ok");
        assert!(matches!(body.next().await, Some(Err(StreamError::Idle(_)))));

        for ending in ["\n\n", "\r\n\r\n", "\r\r", "\n\r\n"] {
            let event = format!("data: 1{ending}");
            let ended = stream::iter([Ok::<_, String>(Bytes::from(event))]).chain(stream::pending());
            let mut body =
                UpstreamBody::new(ended, Duration::from_millis(300), Some(Duration::from_millis(20)));
            body.next().await.expect("chunk").expect("ok");
            assert_eq!(
                body.next().await.expect("hb").expect("ok"),
                Bytes::from_static(KEEP_ALIVE),
                "after {ending:?}"
            );
        }

        let whole = chunks(&["data: 1\n\n"]).chain(stream::pending());
        let mut body = UpstreamBody::new(whole, Duration::from_millis(300), Some(Duration::from_millis(20)));
        body.next().await.expect("chunk").expect("ok");
        assert_eq!(
            body.next().await.expect("hb").expect("ok"),
            Bytes::from_static(KEEP_ALIVE)
        );
    }

    #[actix_web::test]
    async fn a_quiet_stream_gets_heartbeats_until_a_check_finds_the_session_gone() {
        // One timer serves all three deadlines: heartbeats (20 ms) must keep coming between
        // session checks (every 60 ms, each taking 10 ms), and the third check cuts the
        // stream long before the idle timeout.
        let checks = Rc::new(Cell::new(0u32));
        let counted = checks.clone();
        let quiet = chunks(&["data: 1\n\n"]).chain(stream::pending());
        let mut body = UpstreamBody::new(quiet, Duration::from_secs(5), Some(Duration::from_millis(20)))
            .revalidate(Duration::from_millis(60), move || {
                let n = counted.get() + 1;
                counted.set(n);
                Box::pin(async move {
                    actix_web::rt::time::sleep(Duration::from_millis(10)).await;
                    n < 3
                })
            });
        let started = Instant::now();
        body.next().await.expect("event").expect("ok");
        let mut heartbeats = 0;
        let end = loop {
            match body.next().await.expect("item") {
                Ok(b) if b == Bytes::from_static(KEEP_ALIVE) => heartbeats += 1,
                other => break other,
            }
        };
        assert!(matches!(end, Err(StreamError::SessionEnded)), "{end:?}");
        assert_eq!(checks.get(), 3);
        assert!(heartbeats >= 5, "{heartbeats} heartbeats");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[actix_web::test]
    async fn request_bodies_over_the_limit_fail() {
        let flag = Rc::new(Cell::new(false));
        let mut body = LimitedBody::new(chunks(&["12345", "67890"]), 8, flag.clone());
        assert!(body.next().await.expect("first").is_ok());
        assert!(matches!(body.next().await, Some(Err(StreamError::TooLarge(8)))));
        assert!(flag.get());
    }
}
