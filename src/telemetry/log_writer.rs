//! Where log lines go: request threads append each line to a shared buffer in memory, and
//! a thread of its own writes the buffer to stdout every few milliseconds. A request never
//! makes a system call or wakes a thread for its line (a channel whose writer sleeps until
//! a line comes costs a wake-up, a context switch and a `write` per line), and a slow log
//! pipe never stalls a request: past [`MAX_BUFFERED`] bytes, lines are dropped and counted.
//! Idle, the thread wakes every [`EVERY`] to find nothing: that is the price of senders
//! that never wake it.

use std::{
    io::{self, Write},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    thread::JoinHandle,
    time::Duration,
};

use tracing_subscriber::fmt::MakeWriter;

/// How often the buffer is written out: the most a line waits.
const EVERY: Duration = Duration::from_millis(20);

/// Most bytes held for a slow pipe (about 100,000 lines); further lines are dropped.
const MAX_BUFFERED: usize = 16 << 20;

/// Memory a buffer keeps between batches.
const KEPT_CAPACITY: usize = 1 << 20;

#[derive(Default)]
struct Shared {
    lines: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn lines(&self) -> MutexGuard<'_, Vec<u8>> {
        // A thread that panicked mid-append leaves at worst part of a line.
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `MakeWriter` of the log layer: appends each formatted line to the buffer.
#[derive(Clone)]
pub struct BatchedStdout(Arc<Shared>);

/// Writes what is left and stops the writing thread when dropped (keep it for the life of
/// the program).
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// The writer and the guard of its thread (`None` if the thread cannot be started).
pub fn batched_stdout() -> Option<(BatchedStdout, LogGuard)> {
    let shared = Arc::new(Shared::default());
    let for_thread = shared.clone();
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_out(&for_thread, &mut io::stdout()))
        .ok()?;
    Some((
        BatchedStdout(shared.clone()),
        LogGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

/// The writing thread: every [`EVERY`], writes what was gathered and reports what was
/// dropped (through the log itself, so in its format).
fn write_out(shared: &Shared, out: &mut impl Write) {
    let mut batch = Vec::new();
    loop {
        let stopping = shared.stop.load(Ordering::Acquire);
        let dropped = write_batch(shared, &mut batch, out);
        if dropped > 0 {
            tracing::warn!(dropped, "log lines dropped: the log output was too slow");
        }
        if stopping {
            // The warning above, if any, is still to be written.
            write_batch(shared, &mut batch, out);
            return;
        }
        std::thread::park_timeout(EVERY);
    }
}

/// Swaps the gathered lines for `batch` (emptied, its memory kept) and writes them; returns
/// how many lines were dropped since the last call.
fn write_batch(shared: &Shared, batch: &mut Vec<u8>, out: &mut impl Write) -> u64 {
    std::mem::swap(&mut *shared.lines(), batch);
    let dropped = shared.dropped.swap(0, Ordering::Relaxed);
    if !batch.is_empty() {
        // Nowhere to report a failed write to: the lines are lost, as they would be.
        let _ = out.write_all(batch).and_then(|()| out.flush());
        batch.clear();
        // A burst for a slow pipe leaves no lasting 16 MiB behind.
        batch.shrink_to(KEPT_CAPACITY);
    }
    dropped
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let Some(t) = self.thread.take() else { return };
        t.thread().unpark();
        // A log pipe nobody reads must not hold up the exit: wait a second at most.
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            let _ = t.join();
        }
    }
}

/// One line's writer.
pub struct Line<'a>(&'a Shared);

impl Write for Line<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut lines = self.0.lines();
        if lines.len() + line.len() > MAX_BUFFERED {
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            lines.extend_from_slice(line);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStdout {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_written_whole_in_order_and_overflow_is_counted() {
        let shared = Shared::default();
        let mut line = Line(&shared);
        line.write_all(b"one\n").expect("write");
        line.write_all(b"two\n").expect("write");
        let big = vec![b'x'; MAX_BUFFERED];
        line.write_all(&big).expect("a dropped line is not an error");
        let (mut batch, mut out) = (Vec::new(), Vec::new());
        assert_eq!(write_batch(&shared, &mut batch, &mut out), 1, "one line dropped");
        assert_eq!(out, b"one\ntwo\n");
        assert_eq!(write_batch(&shared, &mut batch, &mut out), 0, "counted once");
        assert_eq!(out, b"one\ntwo\n", "nothing new");
    }
}
