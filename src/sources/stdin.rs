//! The `stdin` source: lines from standard input (`service | scrubs`), in
//! batches, with the same bounded-line rules as the file tail: a line
//! longer than `max_line_bytes` is cut at the last delimiter before the
//! limit and the rest is skipped without being held in memory.
//!
//! There is no checkpoint: what was read cannot be read again, so the
//! lines of each batch are kept until the pipeline acknowledges it, and a
//! batch it refuses is sent again after a back-off (possibly after batches
//! read later). At end of input the last line is emitted even without a
//! newline, and the source waits for the outstanding acknowledgements.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn, Instrument as _};

use super::file::{Batch, Limits};
use crate::config::StdinConfig;
use crate::lines::LineBuf;
use crate::metrics::{Handle, Metrics};
use crate::pipeline::LineBatch;
use crate::topology::{BuildError, Built, Context};

/// How the stdin source forms batches.
#[derive(Clone, Copy, Debug)]
pub struct StdinBatching {
    /// The most lines in one batch.
    pub max_lines: usize,
    /// The most line bytes in one batch.
    pub max_bytes: usize,
    /// A batch that is not full is sent when no input arrives for this long.
    pub linger: Duration,
    /// Batches sent and not yet acknowledged.
    pub max_inflight: usize,
}

impl Default for StdinBatching {
    /// 1024 lines, 1 MiB, 50 ms, 4 in flight.
    fn default() -> StdinBatching {
        StdinBatching {
            max_lines: 1024,
            max_bytes: 1 << 20,
            linger: Duration::from_millis(50),
            max_inflight: 4,
        }
    }
}

/// The stream name of stdin batches.
pub const STREAM: &str = "stdin";

/// How long, at end of input or shutdown, acknowledgements are awaited.
const FINAL_ACK_WAIT: Duration = Duration::from_secs(10);
const READ_CHUNK: usize = 64 << 10;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl StdinConfig {
    /// Reads the process's standard input, as the source named by `cx`,
    /// into `out` until end of input or the shutdown signal of `cx`. Lines
    /// longer than `max_line_bytes` (the global `limits.max_record_bytes`)
    /// are cut. Nothing can fail: the `Result` is the shape every
    /// component's `build` has.
    pub fn build(
        &self,
        cx: &Context,
        max_line_bytes: usize,
        out: mpsc::Sender<LineBatch>,
    ) -> Result<Built<()>, BuildError> {
        // Standard input has no settings of its own (yet): a new one would
        // have to be handled here.
        let StdinConfig {} = self;
        let task = spawn_reader(
            cx,
            tokio::io::stdin(),
            max_line_bytes,
            StdinBatching::default(),
            out,
        );
        Ok(Built { handle: (), task })
    }
}

/// Reads any reader as the stdin source named by `cx` (stream name
/// `stdin`), until end of input or the shutdown signal of `cx`.
pub fn spawn_reader<R: AsyncRead + Unpin + Send + 'static>(
    cx: &Context,
    input: R,
    max_line_bytes: usize,
    batching: StdinBatching,
    out: mpsc::Sender<LineBatch>,
) -> JoinHandle<()> {
    let name = cx.name().to_string();
    let metrics = cx.metrics().clone();
    let shutdown = cx.shutdown();
    let span = tracing::info_span!("stdin", source = %name);
    tokio::spawn(
        async move {
            let mut s = Stdin::new(name, max_line_bytes, batching, out, &metrics);
            s.run(input, shutdown).await;
        }
        .instrument(span),
    )
}

struct Sent {
    lines: Vec<Vec<u8>>,
    dropped: Vec<u64>,
    rx: oneshot::Receiver<bool>,
}

struct Stdin {
    name: String,
    lb: LineBuf,
    lim: Limits,
    batching: StdinBatching,
    out: mpsc::Sender<LineBatch>,
    batch: Batch,
    inflight: VecDeque<Sent>,
    backoff: Duration,
    lines: Handle,
    bytes: Handle,
    cut: Handle,
    nacks: Handle,
}

impl Stdin {
    fn new(
        name: String,
        max_line_bytes: usize,
        batching: StdinBatching,
        out: mpsc::Sender<LineBatch>,
        m: &Metrics,
    ) -> Stdin {
        let s = [("source", name.as_str())];
        Stdin {
            lb: LineBuf::new(max_line_bytes.max(1), READ_CHUNK),
            lim: Limits {
                max_lines: batching.max_lines.max(1),
                max_bytes: batching.max_bytes.max(1),
            },
            batching,
            out,
            batch: Batch::default(),
            inflight: VecDeque::new(),
            backoff: Duration::ZERO,
            lines: m.counter(
                "scrubs_source_lines_total",
                "Lines (records, after multi-line joining) read by a source.",
                &s,
            ),
            bytes: m.counter(
                "scrubs_source_bytes_total",
                "Bytes of line content read by a source (newlines excluded).",
                &s,
            ),
            cut: m.counter(
                crate::metrics::LINES_CUT,
                crate::metrics::LINES_CUT_HELP,
                &s,
            ),
            nacks: m.counter(
                "scrubs_source_nacks_total",
                "Batches the pipeline could not take, to be read again.",
                &s,
            ),
            name,
        }
    }

    async fn run<R: AsyncRead + Unpin>(
        &mut self,
        mut input: R,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            let linger = !self.batch.is_empty();
            let space = self.lb.space();
            let read = tokio::select! {
                _ = shutdown.changed() => break,
                r = input.read(space) => Some(r),
                _ = tokio::time::sleep(self.batching.linger), if linger => None,
            };
            match read {
                None => {
                    if !self.flush().await {
                        return;
                    }
                }
                Some(Ok(0)) => {
                    if let Some(l) = self.lb.take_partial() {
                        self.batch.push(l.bytes.to_vec(), l.dropped);
                    }
                    break;
                }
                Some(Ok(n)) => {
                    self.lb.commit(n);
                    while let Some(l) = self.lb.next_line() {
                        self.batch.push(l.bytes.to_vec(), l.dropped);
                        if self.batch.is_full(&self.lim) && !self.flush().await {
                            return;
                        }
                    }
                }
                Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Some(Err(e)) => {
                    warn!(source = %self.name, error = %e, "cannot read standard input; stopping");
                    break;
                }
            }
        }
        // End of input or shutdown: send what is left, wait for the acks.
        if !self.flush().await {
            return;
        }
        let deadline = tokio::time::Instant::now() + FINAL_ACK_WAIT;
        while let Some(front) = self.inflight.front_mut() {
            let ok = match tokio::time::timeout_at(deadline, &mut front.rx).await {
                Ok(r) => r.unwrap_or(false),
                Err(_) => {
                    warn!(source = %self.name, batches = self.inflight.len(),
                        "stopping with unacknowledged stdin batches");
                    return;
                }
            };
            let sent = self.inflight.pop_front().expect("front exists");
            if !ok {
                self.nacks.fetch_add(1, Ordering::Relaxed);
                if tokio::time::Instant::now() + self.next_backoff() >= deadline {
                    warn!(source = %self.name, lines = sent.lines.len(),
                        "the pipeline refused stdin lines at shutdown; they are lost");
                    continue;
                }
                tokio::time::sleep(self.backoff).await;
                if !self.send(sent.lines, sent.dropped).await {
                    return;
                }
            }
        }
        debug!(source = %self.name, "stdin source stopped");
    }

    fn next_backoff(&mut self) -> Duration {
        self.backoff = (self.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
        self.backoff
    }

    /// Sends the current batch, if any. False when the pipeline is gone.
    async fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let b = std::mem::take(&mut self.batch);
        self.lines
            .fetch_add(b.lines.len() as u64, Ordering::Relaxed);
        self.bytes.fetch_add(b.bytes as u64, Ordering::Relaxed);
        self.cut.fetch_add(b.cut, Ordering::Relaxed);
        self.send(b.lines, b.dropped).await
    }

    /// Sends lines, keeping a copy until acknowledged; waits for room in
    /// the in-flight window first (re-sending refused batches).
    async fn send(&mut self, lines: Vec<Vec<u8>>, dropped: Vec<u64>) -> bool {
        let mut pending = vec![(lines, dropped)];
        while let Some((lines, dropped)) = pending.pop() {
            while self.inflight.len() >= self.batching.max_inflight.max(1) {
                let front = self.inflight.front_mut().expect("non-empty");
                let ok = (&mut front.rx).await.unwrap_or(false);
                let sent = self.inflight.pop_front().expect("front exists");
                if ok {
                    self.backoff = Duration::ZERO;
                } else {
                    self.nacks.fetch_add(1, Ordering::Relaxed);
                    let wait = self.next_backoff();
                    debug!(source = %self.name, ?wait, "stdin batch refused; sending it again");
                    tokio::time::sleep(wait).await;
                    pending.push((sent.lines, sent.dropped));
                }
            }
            let (ack, rx) = oneshot::channel();
            let batch = LineBatch {
                source: self.name.clone(),
                stream: STREAM.to_string(),
                lines: lines.clone(),
                dropped_bytes: dropped.clone(),
                meta: Vec::new(),
                ack,
                // Nothing is checkpointed: stdin cannot be read again.
                earlier_committed: None,
                lane: crate::pipeline::Lane::All,
            };
            if self.out.send(batch).await.is_err() {
                return false;
            }
            self.inflight.push_back(Sent { lines, dropped, rx });
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn batches_bounded_lines_and_retries() {
        let (mut w, r) = tokio::io::duplex(1 << 16);
        let (tx, mut rx) = mpsc::channel(4);
        let (_stop_tx, stop) = watch::channel(false);
        let m = Metrics::new();
        let h = spawn_reader(
            &Context::new("in", m.clone()).with_shutdown(stop),
            r,
            16,
            StdinBatching {
                max_lines: 2,
                ..StdinBatching::default()
            },
            tx,
        );
        w.write_all(b"a\nbb\n0123456789 0123456789 x\nlast")
            .await
            .unwrap();
        drop(w);
        let mut got = Vec::new();
        let mut refused = false;
        while let Some(b) = rx.recv().await {
            assert_eq!(b.stream, "stdin");
            if !refused {
                // Refuse the first batch: it must come again.
                refused = true;
                let _ = b.ack.send(false);
                continue;
            }
            for (l, d) in b.lines.iter().zip(&b.dropped_bytes) {
                got.push((String::from_utf8(l.clone()).unwrap(), *d));
            }
            let _ = b.ack.send(true);
        }
        h.await.unwrap();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("0123456789 ".to_string(), 12),
                ("a".to_string(), 0),
                ("bb".to_string(), 0),
                ("last".to_string(), 0),
            ]
        );
        assert_eq!(
            m.value("scrubs_source_truncated_lines_total", &[("source", "in")]),
            Some(1)
        );
        assert_eq!(
            m.value("scrubs_source_nacks_total", &[("source", "in")]),
            Some(1)
        );
    }
}
