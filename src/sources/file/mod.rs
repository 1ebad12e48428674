//! The `file` source: tails files matched by paths and globs, checkpoints
//! its progress, and follows rotation.
//!
//! # How files are followed
//!
//! Every `poll_interval` the globs are expanded, and at once when a read
//! reaches the end of a file whose path now names another file (it was
//! renamed and a new one created there). A file is identified by a
//! *fingerprint*, the SHA-256 of its first `fingerprint_bytes` bytes, not
//! by its path or inode alone: a renamed, moved or copied file keeps its
//! fingerprint, and a truncated or re-created one gets a new one. Files
//! shorter than `fingerprint_bytes` are read at once, identified by their
//! current (shorter) prefix and their inode until they are long enough.
//!
//! - **Rename and create** (`logrotate` default, kubelet): the renamed file
//!   is still open and is read to its end before its successor at the same
//!   path (they share a stream name, the path the file was first seen at);
//!   once it has not grown for `rotate_wait` and is no longer matched by
//!   the globs (or is deleted), its last unterminated line is emitted and
//!   it is closed.
//! - **Copytruncate**: after every read, and at every poll, the file's
//!   first bytes are checked against its fingerprint; a file that shrank
//!   below the read position or whose first bytes changed was truncated
//!   (even if it has meanwhile grown back to the same size). Only bytes
//!   read *before* a successful check are used, so no line of the new
//!   content is mistaken for the old, and the new content is read from
//!   offset 0: no line is ever read twice. If the copy is matched by the
//!   globs (`include: [/var/log/app.log*]`, `exclude: ["*.gz"]`), reading
//!   continues in the copy where it stopped: nothing is lost. Otherwise the
//!   lines written after the tail's last read and before the truncation
//!   exist only in the copy and are lost. A file that was growing at its
//!   last read is read again within 10 ms (then 20, 40, ... while it stays
//!   idle), an idle one within `poll_interval`, so that window is the last
//!   ~10 ms of output before the truncation while the tail keeps up (plus
//!   whatever backlog it had when it was behind). The lines the writer
//!   appends between logrotate's copy and its truncation are lost for every
//!   reader, scrubs included.
//! - **Restart**: each file's acknowledged offset is stored under its
//!   fingerprint; a restarted source finds each file by fingerprint (and
//!   inode, for short files) and resumes there. A file renamed out of the
//!   globs while scrubs was stopped cannot be found: include the rotated
//!   names in the globs to cover that.
//! - A file renamed out of the globs before any poll saw it cannot be found
//!   by a poller either: with very fast rotation, include rotated names.
//!
//! # Delivery
//!
//! Batches carry whole lines only; an unterminated last line waits for its
//! newline (and is left unread at shutdown), except in a rotated-away file
//! that stopped growing, where it is emitted before the file is closed.
//! The checkpoint only ever moves to the end of a batch the pipeline
//! acknowledged with `true`, in order; on `false` (or a dropped
//! acknowledgement) the file is read again from the acknowledged offset
//! after a back-off (100 ms doubling to 10 s). The checkpoint is written
//! (into a live slot, in place, without waiting for the disk) right after
//! acknowledgements arrive and before the next batch is read, and a durable
//! copy is written and fsynced in the background about every second (see
//! `checkpoint`). Up to
//! `max_inflight_batches` batches are in the pipeline at once, so that
//! redaction overlaps the wait for Kafka, but each carries a gate
//! (`LineBatch::earlier_committed`) that opens only once every earlier
//! batch is acknowledged and checkpointed, and the pipeline hands nothing
//! to a sink before it opens. After a `kill -9` the lines after the
//! checkpoint are read again, but at most one batch of them had reached a
//! sink (the one delivered and not yet checkpointed); none is lost. After a
//! power loss, about a second more (plus however long the disk took to
//! sync the last durable copy).
//!
//! The service writing the file is never blocked or slowed: when the
//! pipeline is slow, the bounded channel and the in-flight window fill and
//! the tail simply reads later; `scrubs_file_lag_bytes` reports how far
//! behind it is (bytes written and not yet acknowledged).
//!
//! `scrubs run` starts one tail per destination of a source
//! ([`FileSourceConfig::build`]):
//! the audit lane and one lane per vendor, each with its own checkpoint, so
//! that a vendor that makes its lane wait never holds back the audit fork
//! (see `crate::pipeline::lane`).

mod checkpoint;
mod config;
mod reader;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn, Instrument as _};

pub use self::config::{parse_bytes, parse_duration, FileSourceConfig, MultilineConfig, StartAt};
pub(crate) use self::reader::{Batch, Limits};

use self::checkpoint::{Entry, Loaded};
use self::reader::{hash, read_prefix, FileReader, Fill, Key, Multiline};
use crate::decode::container::LogFormat;
use crate::metrics::{Handle, Metrics};
use crate::pipeline::{Lane, LineBatch};
use crate::topology::{BuildError, Built, Context};

/// How long shutdown waits for the acknowledgement of batches in flight.
const SHUTDOWN_ACK_WAIT: Duration = Duration::from_secs(5);
/// Checkpoint entries of files not found for this long are forgotten.
const FORGET_AFTER_SECS: u64 = 24 * 3600;
/// Bytes compared to tell a copy of a file from a fingerprint collision.
const COPY_CHECK_BYTES: usize = 64 << 10;
/// How soon a file that was growing is read again.
const ACTIVE_RECHECK: Duration = Duration::from_millis(10);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Batches a vendor lane keeps in the pipeline at most: one being
/// delivered and one being redacted meanwhile. More would only hold memory
/// (the lane delivers one batch at a time, see the module doc).
const VENDOR_LANE_INFLIGHT: usize = 2;

impl FileSourceConfig {
    /// Starts one lane of the file source named by `cx` (see
    /// [`crate::pipeline::lane`]): its batches carry `lane` and go to
    /// `out`. Returns once the configuration is checked and the checkpoint
    /// loaded; the task runs until the shutdown signal of `cx` (then it
    /// waits briefly for acknowledgements, writes its checkpoint and ends)
    /// or until `out` is closed.
    ///
    /// The audit lane (or `Lane::All`), and a vendor lane marked primary,
    /// keep the source's checkpoint (`data_dir/checkpoints/<name>.json`) and
    /// its metrics; any other vendor lane keeps
    /// `checkpoints/vendors/<vendor>/<name>.json`, which starts as a copy of
    /// the source's checkpoint when it does not exist yet (so that adding a
    /// vendor, or upgrading from a scrubs without lanes, does not send the
    /// files again from their beginning), and reports its lag in
    /// `scrubs_vendor_lag_bytes{source,vendor}`. Two sources (or two
    /// processes) must not share a name and data directory.
    pub fn build(
        &self,
        cx: &Context,
        data_dir: &Path,
        lane: Lane,
        out: mpsc::Sender<LineBatch>,
    ) -> Result<Built<()>, BuildError> {
        let name = cx.name();
        let problems = self.validate(&format!("sources.{name}"));
        if !problems.is_empty() {
            return Err(BuildError::config(name, problems.join("; ")));
        }
        let main_path = checkpoint::path(data_dir, name);
        let (ckpt_path, primary) = match &lane {
            Lane::Vendor(l) if !l.primary => {
                (checkpoint::lane_path(data_dir, name, &l.vendor_name), false)
            }
            _ => (main_path.clone(), true),
        };
        if let Some(dir) = ckpt_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                BuildError::io(
                    name,
                    format!("source {name}: cannot create {}: {e}", dir.display()),
                )
            })?;
        }
        if !primary && !checkpoint::exists(&ckpt_path) && checkpoint::exists(&main_path) {
            checkpoint::copy(&main_path, &ckpt_path).map_err(|e| {
                BuildError::io(
                    name,
                    format!(
                        "source {name}: cannot copy {} to {}: {e}",
                        main_path.display(),
                        ckpt_path.display()
                    ),
                )
            })?;
        }
        let loaded = checkpoint::load(&ckpt_path).map_err(|e| {
            BuildError::io(
                name,
                format!("source {name}: cannot read {}: {e}", ckpt_path.display()),
            )
        })?;
        // A secondary lane's reads, lag and errors are not the source's:
        // they would count every line twice. Its lag is reported per vendor.
        let own_metrics;
        let counters_in = if primary {
            cx.metrics()
        } else {
            own_metrics = Metrics::new();
            &own_metrics
        };
        let generation = match &loaded {
            Loaded::Entries(_, generation) => *generation,
            _ => 0,
        };
        let mut tail = Tail::new(name.to_string(), self, loaded, counters_in)
            .map_err(|e| BuildError::config(name, e))?;
        tail.lane = lane.clone();
        let ckpt = Committer::new(ckpt_path, generation);
        let span = match &lane {
            Lane::Vendor(l) => tracing::info_span!("file", source = %name, vendor = %l.vendor_name),
            _ => tracing::info_span!("file", source = %name),
        };
        let max_inflight = match lane {
            Lane::Vendor(_) => self.max_inflight_batches.min(VENDOR_LANE_INFLIGHT),
            _ => self.max_inflight_batches,
        };
        let poll = self.poll_interval;
        let task = tokio::spawn(
            run(Box::new(tail), out, cx.shutdown(), ckpt, max_inflight, poll).instrument(span),
        );
        Ok(Built { handle: (), task })
    }
}

struct InFlight {
    id: u64,
    gen: u64,
    end: u64,
    rx: oneshot::Receiver<bool>,
    /// The next batch's `earlier_committed`, with the file it belongs to:
    /// released once this batch's acknowledgement is checkpointed.
    next: Option<(u64, oneshot::Sender<()>)>,
}

impl InFlight {
    /// Records the acknowledgement and returns the next batch's gate if it
    /// may go ahead once the checkpoint is written. After a refusal, a next
    /// batch of the same file is dropped (its gate errors): the file is read
    /// again from the checkpoint, so delivering it would send it twice. A
    /// batch of another file is unaffected and still released.
    fn settle(self, tail: &mut Tail, ok: bool) -> Option<oneshot::Sender<()>> {
        tail.on_ack(self.id, self.gen, self.end, ok, Instant::now());
        match self.next {
            Some((next_id, tx)) if ok || next_id != self.id => Some(tx),
            _ => None,
        }
    }
}

enum Event {
    Ack(bool),
    Tick,
    Shutdown,
    Closed,
    Permit(mpsc::OwnedPermit<LineBatch>),
}

async fn run(
    mut tail: Box<Tail>,
    out: mpsc::Sender<LineBatch>,
    mut shutdown: watch::Receiver<bool>,
    mut ckpt: Committer,
    max_inflight: usize,
    poll: Duration,
) {
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    // Gates of batches whose earlier batches are acknowledged; they open once
    // the checkpoint recording those acknowledgements is written.
    let mut released: Vec<oneshot::Sender<()>> = Vec::new();
    let mut next_tick = tokio::time::Instant::now();
    loop {
        // Acknowledgements that are already in, in order.
        while let Some(f) = inflight.front_mut() {
            let ok = match f.rx.try_recv() {
                Ok(ok) => ok,
                Err(oneshot::error::TryRecvError::Empty) => break,
                Err(oneshot::error::TryRecvError::Closed) => false,
            };
            let f = inflight.pop_front().expect("front exists");
            released.extend(f.settle(&mut tail, ok));
        }
        tail.report_lane_lag();
        ckpt.commit_then_open(&mut tail, released.drain(..)).await;
        if *shutdown.borrow() {
            break;
        }
        if tokio::time::Instant::now() >= next_tick || std::mem::take(&mut tail.rescan) {
            tail = match blocking(tail, |t| t.tick(Instant::now())).await {
                Some(t) => t,
                None => return,
            };
            next_tick = tokio::time::Instant::now() + poll;
            continue;
        }
        let want = inflight.len() < max_inflight && tail.has_work(Instant::now());
        let wake = match tail.next_wake() {
            Some(t) if !want => next_tick.min(tokio::time::Instant::from_std(t)),
            _ => next_tick,
        };
        let ev = {
            let front = inflight.front_mut().map(|f| &mut f.rx);
            tokio::select! {
                biased;
                _ = shutdown.changed() => Event::Shutdown,
                r = async { front.expect("guarded").await }, if front.is_some() => {
                    Event::Ack(r.unwrap_or(false))
                }
                p = out.clone().reserve_owned(), if want => match p {
                    Ok(p) => Event::Permit(p),
                    Err(_) => Event::Closed,
                },
                _ = tokio::time::sleep_until(wake) => Event::Tick,
            }
        };
        match ev {
            Event::Shutdown | Event::Closed => break,
            Event::Tick => {}
            Event::Ack(ok) => {
                // Committed and released at the top of the loop.
                let f = inflight.pop_front().expect("front exists");
                released.extend(f.settle(&mut tail, ok));
            }
            Event::Permit(permit) => {
                let (t, got) = match blocking_with(tail, |t| t.fill_next(Instant::now())).await {
                    Some(x) => x,
                    None => return,
                };
                tail = t;
                if let Some(b) = got {
                    let (ack, rx) = oneshot::channel();
                    tail.m
                        .lines
                        .fetch_add(b.batch.lines.len() as u64, Ordering::Relaxed);
                    tail.m
                        .bytes
                        .fetch_add(b.batch.bytes as u64, Ordering::Relaxed);
                    tail.m.cut.fetch_add(b.batch.cut, Ordering::Relaxed);
                    // Every batch before this one is checkpointed when none
                    // is in flight (acknowledgements are committed before
                    // the next batch is read); otherwise this one waits for
                    // the one before it.
                    let earlier_committed = inflight.back_mut().map(|prev| {
                        let (tx, rx) = oneshot::channel();
                        prev.next = Some((b.id, tx));
                        rx
                    });
                    permit.send(LineBatch {
                        source: tail.name.clone(),
                        stream: b.stream,
                        lines: b.batch.lines,
                        dropped_bytes: b.batch.dropped,
                        meta: b.batch.meta,
                        ack,
                        earlier_committed,
                        lane: tail.lane.clone(),
                    });
                    inflight.push_back(InFlight {
                        id: b.id,
                        gen: b.gen,
                        end: b.end,
                        rx,
                        next: None,
                    });
                }
            }
        }
    }
    // Shutdown: collect what acknowledgements come, each committed before
    // the next batch may be delivered (as while running), then stop.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_ACK_WAIT;
    while let Some(mut f) = inflight.pop_front() {
        let ok = match tokio::time::timeout_at(deadline, &mut f.rx).await {
            Ok(r) => r.unwrap_or(false),
            Err(_) => false,
        };
        let gate = f.settle(&mut tail, ok);
        ckpt.commit_then_open(&mut tail, gate).await;
    }
    ckpt.commit(&mut tail, true).await;
    debug!(source = %tail.name, "file source stopped");
}

/// Writes checkpoints (see `checkpoint` for the copies). After every
/// acknowledgement, and before the next batch may reach a sink, the new
/// checkpoint is written into a live slot in place: a copy into the page
/// cache, so a crashed process (`kill -9`) leaves a checkpoint covering
/// every acknowledged batch, without the lane waiting for the disk. The
/// durable copy is written in the background at most every
/// [`SYNC_INTERVAL`] (once the previous one has finished) and at shutdown,
/// which bounds what a power loss can take back to that interval plus the
/// time the disk takes to sync (lines read again, none lost).
struct Committer {
    path: PathBuf,
    live: Option<Box<checkpoint::Writer>>,
    /// The generation of the last checkpoint written (see `checkpoint`).
    generation: u64,
    /// The last checkpoint written, while the durable copy does not have
    /// it yet.
    undurable: Option<std::sync::Arc<Vec<u8>>>,
    /// The durable copy being written, if one is.
    durable: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    last_sync: Instant,
    warned: bool,
}

/// How often the durable copy of a checkpoint is written.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

impl Committer {
    fn new(path: PathBuf, generation: u64) -> Committer {
        Committer {
            live: None,
            path,
            generation,
            undurable: None,
            durable: None,
            last_sync: Instant::now(),
            warned: false,
        }
    }

    /// Writes the checkpoint if acknowledgements moved it, then opens the
    /// gates of the batches that waited for it: a batch reaches the sinks
    /// only once every earlier one is checkpointed (`earlier_committed`).
    async fn commit_then_open(
        &mut self,
        tail: &mut Tail,
        gates: impl IntoIterator<Item = oneshot::Sender<()>>,
    ) {
        if tail.dirty {
            self.commit(tail, false).await;
        } else if self.undurable.is_some() {
            // No acknowledgement since: the durable copy catches up with
            // the live slots once it is due, idle or not.
            self.sync(tail, false).await;
        }
        for gate in gates {
            let _ = gate.send(());
        }
    }

    /// Writes a live slot, and the durable copy when it is due (with
    /// `last`, at shutdown: now, waiting for it).
    async fn commit(&mut self, tail: &mut Tail, last: bool) {
        tail.dirty = false;
        self.generation += 1;
        let bytes = std::sync::Arc::new(tail.snapshot(self.generation));
        // The writer moves to the blocking thread and back; it is made at
        // the first write, and again after one was lost to a panic there.
        let mut live = self
            .live
            .take()
            .unwrap_or_else(|| Box::new(checkpoint::Writer::new(&self.path)));
        let b = bytes.clone();
        let res = match tokio::task::spawn_blocking(move || (live.write_live(&b), live)).await {
            Ok((res, live)) => {
                self.live = Some(live);
                res
            }
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        if let Err(e) = res {
            self.failed(tail, &e);
        }
        self.undurable = Some(bytes);
        self.sync(tail, last).await;
    }

    /// Writes the latest checkpoint as the durable copy when it is due and
    /// the previous durable write has finished (with `last`: now, waiting
    /// for both).
    async fn sync(&mut self, tail: &mut Tail, last: bool) {
        if let Some(h) = self.durable.take_if(|h| last || h.is_finished()) {
            match h.await {
                Ok(Ok(())) => self.warned = false,
                Ok(Err(e)) => self.failed(tail, &e),
                Err(e) => error!(source = %tail.name, error = %e, "checkpoint write failed"),
            }
        }
        let due = last || self.last_sync.elapsed() >= SYNC_INTERVAL;
        let ready = due && self.durable.is_none();
        let Some(bytes) = self.undurable.take_if(|_| ready) else {
            return;
        };
        self.last_sync = Instant::now();
        let p = self.path.clone();
        let h = tokio::task::spawn_blocking(move || checkpoint::write_atomic(&p, &bytes, true));
        if last {
            match h.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.failed(tail, &e),
                Err(e) => error!(source = %tail.name, error = %e, "checkpoint write failed"),
            }
        } else {
            self.durable = Some(h);
        }
    }

    /// Counts a failed checkpoint write, warns once per run of failures,
    /// and has the next acknowledgement write it again.
    fn failed(&mut self, tail: &mut Tail, e: &std::io::Error) {
        tail.m.ckpt_errors.fetch_add(1, Ordering::Relaxed);
        tail.dirty = true;
        if !self.warned {
            warn!(source = %tail.name, path = %self.path.display(), error = %e,
                "cannot write the file checkpoint; lines may be read again after a restart");
            self.warned = true;
        }
    }
}

/// Runs `f` on the state on a blocking thread (file I/O).
async fn blocking(
    tail: Box<Tail>,
    f: impl FnOnce(&mut Tail) + Send + 'static,
) -> Option<Box<Tail>> {
    blocking_with(tail, f).await.map(|(t, ())| t)
}

async fn blocking_with<R: Send + 'static>(
    mut tail: Box<Tail>,
    f: impl FnOnce(&mut Tail) -> R + Send + 'static,
) -> Option<(Box<Tail>, R)> {
    let name = tail.name.clone();
    match tokio::task::spawn_blocking(move || {
        let r = f(&mut tail);
        (tail, r)
    })
    .await
    {
        Ok(x) => Some(x),
        Err(e) => {
            error!(source = %name, error = %e, "file source failed; it stops");
            None
        }
    }
}

/// Per-source metric handles.
struct Counters {
    lines: Handle,
    bytes: Handle,
    lag: Handle,
    open: Handle,
    cut: Handle,
    rename: Handle,
    truncate: Handle,
    delete: Handle,
    nacks: Handle,
    read_errors: Handle,
    ckpt_errors: Handle,
    /// Lines that did not read under the file's runtime format, by reason.
    malformed_cri: Handle,
    malformed_docker: Handle,
}

impl Counters {
    fn new(m: &Metrics, name: &str) -> Counters {
        let s = [("source", name)];
        let rot = |kind: &str| {
            m.counter(
                "scrubs_file_rotations_total",
                "Rotations of tailed files seen, by kind (rename, truncate, delete).",
                &[("source", name), ("kind", kind)],
            )
        };
        let malformed = |reason: &str| {
            m.counter(
                "scrubs_file_malformed_lines_total",
                "Lines of a file in a container runtime's format (CRI, Docker) that did not read as one; passed on whole.",
                &[("source", name), ("reason", reason)],
            )
        };
        Counters {
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
            lag: m.gauge(
                "scrubs_file_lag_bytes",
                "Bytes written to tailed files and not yet acknowledged by the pipeline.",
                &s,
            ),
            open: m.gauge(
                "scrubs_file_open_files",
                "Files a file source holds open.",
                &s,
            ),
            cut: m.counter(
                crate::metrics::LINES_CUT,
                crate::metrics::LINES_CUT_HELP,
                &s,
            ),
            rename: rot("rename"),
            truncate: rot("truncate"),
            delete: rot("delete"),
            nacks: m.counter(
                "scrubs_source_nacks_total",
                "Batches the pipeline could not take, to be read again.",
                &s,
            ),
            read_errors: m.counter(
                "scrubs_file_read_errors_total",
                "Errors reading tailed files (retried).",
                &s,
            ),
            ckpt_errors: m.counter(
                "scrubs_file_checkpoint_errors_total",
                "Failed checkpoint writes.",
                &s,
            ),
            malformed_cri: malformed("not_cri"),
            malformed_docker: malformed("not_docker"),
        }
    }
}

/// Configuration in the form the tail uses.
struct Settings {
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
    start_at: StartAt,
    format: LogFormat,
    multiline: Option<(regex::bytes::Regex, usize, Duration)>,
    rotate_wait: Duration,
    recheck: Duration,
    poll: Duration,
    fp_bytes: usize,
    max_line: usize,
    chunk: usize,
    lim: Limits,
}

/// A copy of a tracked file (same first bytes, another inode).
#[derive(Debug, Clone)]
struct Alias {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

/// One file, by content.
struct Ident {
    key: Key,
    stream: String,
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// Acknowledged: the checkpoint offset.
    committed: u64,
    reader: Option<Box<FileReader>>,
    /// Found by the last scan.
    in_glob: bool,
    /// Bumped when the reader is rewound; older acknowledgements are stale.
    gen: u64,
    inflight: usize,
    maybe_data: bool,
    size: u64,
    last_growth: Instant,
    last_seen: u64,
    /// Rotated away and idle: emit the rest and close.
    finishing: bool,
    /// Nothing more to read; forgotten once its batches are acknowledged.
    done_reading: bool,
    /// The content is gone (truncated): it cannot be read again.
    gone: bool,
    retry_at: Option<Instant>,
    /// A file that was growing at its last read is looked at again soon,
    /// not only at the next poll: this narrows the copytruncate window and
    /// keeps latency low under bursty writers.
    recheck_at: Option<Instant>,
    /// The wait before that look: [`ACTIVE_RECHECK`] after a read that found
    /// new bytes, doubled after each look that found none, until it reaches
    /// `poll_interval` (then the poll alone looks at the file).
    recheck_wait: Duration,
    backoff: Duration,
    aliases: Vec<Alias>,
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ident")
            .field("key", &self.key)
            .field("path", &self.path)
            .field("committed", &self.committed)
            .field("open", &self.reader.is_some())
            .finish()
    }
}

impl Ident {
    fn dormant(key: Key, e: &Entry) -> Ident {
        Ident {
            key,
            stream: e.stream.clone(),
            path: PathBuf::from(&e.path),
            dev: e.dev,
            ino: e.ino,
            committed: e.offset,
            reader: None,
            in_glob: false,
            gen: 0,
            inflight: 0,
            maybe_data: false,
            size: 0,
            last_growth: Instant::now(),
            last_seen: e.last_seen,
            finishing: false,
            done_reading: false,
            gone: false,
            retry_at: None,
            recheck_at: None,
            recheck_wait: Duration::ZERO,
            backoff: Duration::ZERO,
            aliases: Vec::new(),
        }
    }

    fn is_dormant(&self) -> bool {
        self.reader.is_none() && !self.done_reading && !self.gone
    }
}

/// A file found by a scan.
struct Found {
    path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    /// Opened (and `head` read) for files not already tracked.
    file: Option<File>,
    head: Vec<u8>,
}

/// A batch read by [`Tail::fill_next`].
struct Out {
    id: u64,
    gen: u64,
    end: u64,
    stream: String,
    batch: Batch,
}

/// The tail's state: every file by content, and their readers.
struct Tail {
    name: String,
    s: Settings,
    idents: BTreeMap<u64, Ident>,
    by_key: HashMap<Key, u64>,
    by_inode: HashMap<(u64, u64), u64>,
    alias_inodes: HashMap<(u64, u64), u64>,
    next_id: u64,
    first_scan: bool,
    /// `start_at` applies: no checkpoint file existed.
    fresh: bool,
    dirty: bool,
    rr: u64,
    m: Counters,
    /// The destinations of this tail's batches.
    lane: Lane,
    /// A file read to its end is no longer the one at its path: it was
    /// rotated (renamed, and a new file created there). The globs are
    /// expanded again at once rather than at the next poll, which alone
    /// held the new file's first lines back by up to `poll_interval` at
    /// every rotation.
    rescan: bool,
}

impl fmt::Debug for Tail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tail")
            .field("name", &self.name)
            .field("files", &self.idents.len())
            .finish()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Tail {
    fn new(
        name: String,
        cfg: &FileSourceConfig,
        loaded: Loaded,
        metrics: &Metrics,
    ) -> Result<Tail, String> {
        let multiline = match &cfg.multiline {
            Some(m) => Some((
                regex::bytes::Regex::new(&m.start_pattern)
                    .map_err(|e| format!("source {name}: multiline.start_pattern: {e}"))?,
                m.max_lines,
                m.timeout,
            )),
            None => None,
        };
        let exclude = cfg
            .exclude
            .iter()
            .map(|g| {
                glob::Pattern::new(g).map_err(|e| format!("source {name}: exclude {g:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let s = Settings {
            include: cfg.include.clone(),
            exclude,
            start_at: cfg.start_at,
            format: cfg.format,
            multiline,
            rotate_wait: cfg.rotate_wait,
            recheck: cfg.poll_interval.min(ACTIVE_RECHECK),
            poll: cfg.poll_interval,
            fp_bytes: cfg.fingerprint_bytes,
            max_line: cfg.max_line_bytes,
            chunk: cfg.read_buffer,
            lim: Limits {
                max_lines: cfg.batch_max_lines,
                max_bytes: cfg.batch_max_bytes,
            },
        };
        let m = Counters::new(metrics, &name);
        let mut t = Tail {
            name,
            s,
            idents: BTreeMap::new(),
            by_key: HashMap::new(),
            by_inode: HashMap::new(),
            alias_inodes: HashMap::new(),
            next_id: 0,
            first_scan: true,
            fresh: false,
            dirty: false,
            rr: 0,
            m,
            lane: Lane::All,
            rescan: false,
        };
        match loaded {
            Loaded::Missing => t.fresh = true,
            Loaded::Corrupt { moved_to, error } => {
                error!(source = %t.name, moved_to = %moved_to.display(), error = %error,
                    "the file checkpoint is unreadable; every file is read from its beginning");
            }
            Loaded::Entries(entries, _) => {
                for e in entries {
                    let Some(key) = e.key() else { continue };
                    if t.by_key.contains_key(&key) {
                        continue;
                    }
                    let id = e.seq.max(t.next_id);
                    t.next_id = id + 1;
                    t.by_key.insert(key, id);
                    t.idents.insert(id, Ident::dormant(key, &e));
                }
            }
        }
        Ok(t)
    }

    fn snapshot(&self, generation: u64) -> Vec<u8> {
        let entries = self
            .idents
            .iter()
            .filter(|(_, i)| !i.gone)
            .map(|(&id, i)| {
                (
                    i.key,
                    Entry {
                        fingerprint: i.key.hex(),
                        fingerprint_len: i.key.len,
                        inode_bound: i.key.inode.is_some(),
                        dev: i.dev,
                        ino: i.ino,
                        offset: i.committed,
                        path: i.path.to_string_lossy().into_owned(),
                        stream: i.stream.clone(),
                        seq: id,
                        last_seen: i.last_seen,
                    },
                )
            })
            .collect();
        checkpoint::encode(&self.name, generation, entries)
    }

    fn new_multiline(&self) -> Option<Multiline> {
        self.s.multiline.as_ref().map(|(re, lines, timeout)| {
            Multiline::new(re.clone(), *lines, self.s.max_line, *timeout)
        })
    }

    fn new_reader(&self, file: File, key: Key, offset: u64) -> Box<FileReader> {
        Box::new(FileReader::new(
            file,
            key,
            self.s.fp_bytes,
            offset,
            self.s.max_line,
            self.s.chunk,
            self.s.format,
            self.new_multiline(),
        ))
    }

    // ---- acknowledgements ----------------------------------------------

    fn on_ack(&mut self, id: u64, gen: u64, end: u64, ok: bool, now: Instant) {
        let Some(i) = self.idents.get_mut(&id) else {
            return;
        };
        i.inflight = i.inflight.saturating_sub(1);
        if gen != i.gen {
            return;
        }
        if ok {
            if end != i.committed {
                i.committed = end;
                self.dirty = true;
            }
            i.backoff = Duration::ZERO;
            return;
        }
        self.m.nacks.fetch_add(1, Ordering::Relaxed);
        if i.gone || i.reader.is_none() {
            warn!(source = %self.name, path = %i.path.display(),
                "the pipeline refused a batch of a file that no longer exists; its lines are lost");
            return;
        }
        i.gen += 1;
        i.backoff = (i.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
        i.retry_at = Some(now + i.backoff);
        i.done_reading = false;
        i.maybe_data = true;
        if let Some(r) = &mut i.reader {
            r.rewind(i.committed);
        }
        debug!(source = %self.name, path = %i.path.display(), backoff = ?i.backoff,
            "batch not acknowledged; reading again from the checkpoint");
    }

    // ---- reading --------------------------------------------------------

    fn readable(i: &Ident, now: Instant) -> bool {
        i.reader.is_some()
            && !i.done_reading
            && !i.gone
            && (i.maybe_data || i.finishing || i.recheck_at.is_some_and(|t| t <= now))
            && i.retry_at.is_none_or(|t| t <= now)
    }

    /// When a file becomes readable by time alone (a re-check or a retry).
    fn next_wake(&self) -> Option<Instant> {
        self.idents
            .values()
            .filter(|i| i.reader.is_some() && !i.done_reading && !i.gone)
            .filter_map(|i| {
                let t = if i.maybe_data || i.finishing {
                    i.retry_at
                } else {
                    i.recheck_at
                };
                match (t, i.retry_at) {
                    (Some(t), Some(r)) => Some(t.max(r)),
                    (t, _) => t,
                }
            })
            .min()
    }

    /// The next file to read: round-robin over streams, and within a stream
    /// (a file and its rotated predecessors) the oldest file first.
    fn pick(&self, now: Instant) -> Option<u64> {
        let mut streams = HashSet::new();
        let mut first = None;
        let mut after = None;
        for (&id, i) in &self.idents {
            if !Self::readable(i, now) || !streams.insert(i.stream.as_str()) {
                continue;
            }
            if first.is_none() {
                first = Some(id);
            }
            if after.is_none() && id > self.rr {
                after = Some(id);
            }
        }
        after.or(first)
    }

    fn has_work(&self, now: Instant) -> bool {
        self.idents.values().any(|i| Self::readable(i, now))
    }

    fn fill_next(&mut self, now: Instant) -> Option<Out> {
        let id = self.pick(now)?;
        self.rr = id;
        let lim = self.s.lim;
        let i = self.idents.get_mut(&id)?;
        let r = i.reader.as_mut()?;
        let before = r.read_pos();
        let res = r.fill(&lim, now, i.finishing);
        if let Some((n, reason)) = r.take_malformed() {
            let c = if reason == "not_docker" {
                &self.m.malformed_docker
            } else {
                &self.m.malformed_cri
            };
            c.fetch_add(n, Ordering::Relaxed);
        }
        let mut f: Fill = match res {
            Ok(f) => f,
            Err(e) => {
                self.m.read_errors.fetch_add(1, Ordering::Relaxed);
                i.backoff = (i.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                i.retry_at = Some(now + i.backoff);
                warn!(source = %self.name, path = %i.path.display(), error = %e, "cannot read file; retrying");
                return None;
            }
        };
        i.retry_at = None;
        i.size = f.size;
        if r.read_pos() != before {
            i.last_growth = now;
        }
        let full = f.batch.is_full(&lim);
        i.recheck_at = None;
        if f.eof && !full {
            // A writer that pauses for a moment (bursts, GC, a busy core)
            // is looked at again after 10, 20, 40 ms... rather than only at
            // the next poll, which alone would add up to `poll_interval` to
            // the latency of the next burst's first lines.
            i.recheck_wait = if r.read_pos() != before {
                self.s.recheck
            } else {
                i.recheck_wait * 2
            };
            if !i.recheck_wait.is_zero() && i.recheck_wait < self.s.poll {
                i.recheck_at = Some(now + i.recheck_wait);
            } else {
                i.recheck_wait = Duration::ZERO;
            }
            i.maybe_data = false;
            if i.finishing {
                i.done_reading = true;
            }
            // One `stat` per read that reaches the end of a file still
            // taken to be at its path; after the rescan the file is at its
            // new name, or out of the globs, and is not looked at again.
            if i.in_glob && !i.finishing {
                self.rescan |=
                    std::fs::metadata(&i.path).is_ok_and(|m| (m.dev(), m.ino()) != (i.dev, i.ino));
            }
        }
        if let Some(k) = f.new_key {
            self.rekey(id, k);
        }
        if f.truncated {
            self.on_truncated(id, &mut f);
        }
        let i = self.idents.get_mut(&id)?;
        if f.batch.is_empty() {
            return None;
        }
        i.inflight += 1;
        Some(Out {
            id,
            gen: i.gen,
            end: f.end_offset,
            stream: i.stream.clone(),
            batch: f.batch,
        })
    }

    fn rekey(&mut self, id: u64, mut k: Key) {
        let Some(old) = self.idents.get(&id).map(|i| i.key) else {
            return;
        };
        if old == k {
            return;
        }
        if let Some(&other) = self.by_key.get(&k) {
            if other != id {
                let live = self.idents.get(&other).is_some_and(|o| !o.is_dormant());
                if live {
                    let i = &self.idents[&id];
                    k = k.bound(i.dev, i.ino);
                } else {
                    // A stale entry with the same content prefix.
                    self.idents.remove(&other);
                    self.by_key.remove(&k);
                }
            }
        }
        self.by_key.remove(&old);
        self.by_key.insert(k, id);
        if let Some(i) = self.idents.get_mut(&id) {
            i.key = k;
        }
        self.dirty = true;
    }

    /// The file was truncated (copytruncate) or rewritten. Continue in a
    /// copy of it if the globs match one; otherwise its content is gone.
    fn on_truncated(&mut self, id: u64, f: &mut Fill) {
        self.m.truncate.fetch_add(1, Ordering::Relaxed);
        let Some(i) = self.idents.get(&id) else {
            return;
        };
        let key = i.key;
        let (old_dev, old_ino) = (i.dev, i.ino);
        let read_pos = i.reader.as_ref().map_or(0, |r| r.read_pos());
        // Candidates: known copies, then anything the globs match now.
        let mut cands: Vec<Alias> = i.aliases.clone();
        for found in self.scan_paths() {
            if (found.dev, found.ino) != (old_dev, old_ino) {
                cands.push(Alias {
                    path: found.path,
                    dev: found.dev,
                    ino: found.ino,
                });
            }
        }
        for c in cands {
            let Ok(file) = File::open(&c.path) else {
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            if (meta.dev(), meta.ino()) != (c.dev, c.ino)
                || (meta.dev(), meta.ino()) == (old_dev, old_ino)
                || meta.len() < read_pos
                || self.by_inode.contains_key(&(meta.dev(), meta.ino()))
            {
                continue;
            }
            if !reader::verify(&file, &key).unwrap_or(false) {
                continue;
            }
            info!(source = %self.name, path = %c.path.display(),
                "file truncated (copytruncate); continuing in its copy");
            self.by_inode.remove(&(old_dev, old_ino));
            self.alias_inodes.remove(&(c.dev, c.ino));
            self.by_inode.insert((c.dev, c.ino), id);
            let i = self.idents.get_mut(&id).expect("exists");
            i.aliases.retain(|a| a.ino != c.ino || a.dev != c.dev);
            if let Some(r) = &mut i.reader {
                r.switch_file(file);
            }
            i.path = c.path;
            i.dev = c.dev;
            i.ino = c.ino;
            i.in_glob = true;
            i.maybe_data = true;
            self.dirty = true;
            return;
        }
        warn!(source = %self.name, path = %self.idents[&id].path.display(),
            "file truncated (copytruncate); lines written after the last read and before \
             the truncation are lost unless the copy is matched by the globs");
        let i = self.idents.get_mut(&id).expect("exists");
        if let Some(r) = &mut i.reader {
            r.flush_pending(&mut f.batch);
            f.end_offset = r.read_pos();
        }
        i.gone = true;
        i.done_reading = true;
        for a in std::mem::take(&mut i.aliases) {
            self.alias_inodes.remove(&(a.dev, a.ino));
        }
        // The inode now holds new content: the next scan starts it anew.
        self.by_inode.remove(&(old_dev, old_ino));
        self.dirty = true;
    }

    // ---- discovery --------------------------------------------------------

    /// The regular files the globs match now, deduplicated by inode.
    fn scan_paths(&self) -> Vec<Found> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: false,
            require_literal_leading_dot: false,
        };
        for pat in &self.s.include {
            let Ok(paths) = glob::glob_with(pat, opts) else {
                continue;
            };
            for p in paths.flatten() {
                if self.s.exclude.iter().any(|x| x.matches_path_with(&p, opts)) {
                    continue;
                }
                let Ok(meta) = std::fs::metadata(&p) else {
                    continue;
                };
                if !meta.is_file() || !seen.insert((meta.dev(), meta.ino())) {
                    continue;
                }
                out.push(Found {
                    path: p,
                    dev: meta.dev(),
                    ino: meta.ino(),
                    size: meta.len(),
                    file: None,
                    head: Vec::new(),
                });
            }
        }
        out
    }

    /// Scans, and opens and fingerprints the files not yet tracked.
    fn scan(&self) -> Vec<Found> {
        let head_len = self
            .idents
            .values()
            .filter(|i| i.is_dormant())
            .map(|i| i.key.len as usize)
            .max()
            .unwrap_or(0)
            .max(self.s.fp_bytes);
        let mut out = Vec::new();
        for mut f in self.scan_paths() {
            let known = |d, i| {
                self.by_inode.contains_key(&(d, i)) || self.alias_inodes.contains_key(&(d, i))
            };
            if known(f.dev, f.ino) {
                out.push(f);
                continue;
            }
            if f.size == 0 {
                continue;
            }
            let Ok(file) = File::open(&f.path) else {
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            f.dev = meta.dev();
            f.ino = meta.ino();
            f.size = meta.len();
            if known(f.dev, f.ino) {
                out.push(f);
                continue;
            }
            if f.size == 0 {
                continue;
            }
            match read_prefix(&file, head_len) {
                Ok(h) if !h.is_empty() => f.head = h,
                _ => continue,
            }
            f.file = Some(file);
            out.push(f);
        }
        out
    }

    /// Every `poll_interval`: discovery, rotation, idle files, metrics.
    fn tick(&mut self, now: Instant) {
        let found = self.scan();
        let wall = unix_now();
        let mut present: HashSet<u64> = HashSet::new();
        let mut alias_found = HashSet::new();
        let mut new_files = Vec::new();
        for f in found {
            if let Some(&id) = self.by_inode.get(&(f.dev, f.ino)) {
                present.insert(id);
                if let Some(i) = self.idents.get_mut(&id) {
                    if i.path != f.path {
                        if i.in_glob {
                            self.m.rename.fetch_add(1, Ordering::Relaxed);
                        }
                        i.path = f.path;
                        self.dirty = true;
                    }
                    i.in_glob = true;
                    i.last_seen = wall;
                }
                continue;
            }
            if self.alias_inodes.contains_key(&(f.dev, f.ino)) {
                alias_found.insert((f.dev, f.ino));
                continue;
            }
            new_files.push(f);
        }
        for f in new_files {
            if let Some(id) = self.discover(f, now, wall) {
                present.insert(id);
            }
        }
        self.first_scan = false;

        // Open files: rotation, growth, idleness.
        let mut lag = 0u64;
        let mut open = 0u64;
        let mut remove = Vec::new();
        for (&id, i) in self.idents.iter_mut() {
            let Some(r) = &mut i.reader else {
                if i.is_dormant() && wall.saturating_sub(i.last_seen) > FORGET_AFTER_SECS {
                    remove.push(id);
                }
                continue;
            };
            open += 1;
            if !present.contains(&id) && i.in_glob && !i.gone {
                i.in_glob = false;
                let deleted = r.nlink().map(|n| n == 0).unwrap_or(true);
                if deleted {
                    self.m.delete.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.m.rename.fetch_add(1, Ordering::Relaxed);
                }
                debug!(source = %self.name, path = %i.path.display(), deleted,
                    "file rotated away; reading it to its end");
            }
            if i.gone {
                if i.inflight == 0 {
                    remove.push(id);
                }
                continue;
            }
            if let Ok(size) = r.stat_size() {
                if size != i.size {
                    i.size = size;
                    i.last_growth = now;
                }
                // A changed size means data or a truncation; an unchanged
                // one may hide a truncation and rewrite to the same size,
                // which the fingerprint check at end of file finds.
                if size != r.read_pos() || !r.verify().unwrap_or(true) {
                    i.maybe_data = true;
                }
            }
            if r.multiline_pending() {
                i.maybe_data = true;
            }
            if !i.in_glob
                && !i.finishing
                && !i.maybe_data
                && now.duration_since(i.last_growth) >= self.s.rotate_wait
            {
                i.finishing = true;
            }
            if i.done_reading && i.inflight == 0 {
                remove.push(id);
                continue;
            }
            if !i.maybe_data {
                r.shrink();
            }
            lag += i.size.saturating_sub(i.committed);
        }
        for id in remove {
            self.forget(id);
        }
        // Drop copies no longer present.
        let idents = &mut self.idents;
        self.alias_inodes.retain(|&(d, ino), id| {
            let keep = alias_found.contains(&(d, ino));
            if !keep {
                if let Some(i) = idents.get_mut(id) {
                    i.aliases.retain(|a| (a.dev, a.ino) != (d, ino));
                }
            }
            keep
        });
        self.m.lag.store(lag, Ordering::Relaxed);
        self.m.open.store(open, Ordering::Relaxed);
        if let Lane::Vendor(l) = &self.lane {
            l.set_lag(lag);
        }
    }

    /// A vendor lane's unread bytes, after acknowledgements moved it on:
    /// the lane decides from it whether to skip (sizes are as of the last
    /// poll).
    fn report_lane_lag(&self) {
        if let Lane::Vendor(l) = &self.lane {
            let lag = self
                .idents
                .values()
                .filter(|i| i.reader.is_some() && !i.gone)
                .map(|i| i.size.saturating_sub(i.committed))
                .sum();
            l.set_lag(lag);
        }
    }

    fn forget(&mut self, id: u64) {
        if let Some(i) = self.idents.remove(&id) {
            if self.by_key.get(&i.key) == Some(&id) {
                self.by_key.remove(&i.key);
            }
            if self.by_inode.get(&(i.dev, i.ino)) == Some(&id) {
                self.by_inode.remove(&(i.dev, i.ino));
            }
            for a in &i.aliases {
                self.alias_inodes.remove(&(a.dev, a.ino));
            }
            self.dirty = true;
        }
    }

    /// A file the tail does not hold open: a checkpointed file coming back,
    /// a copy of an open file, or a new file.
    fn discover(&mut self, f: Found, now: Instant, wall: u64) -> Option<u64> {
        let file = f.file?;
        let fp = self.s.fp_bytes;
        let mut key = Key::of(&f.head, fp, f.dev, f.ino);

        // A copy of a file being read (copytruncate in progress, cp)?
        if key.inode.is_none() {
            if let Some(&other) = self.by_key.get(&key) {
                let o = &self.idents[&other];
                if !o.is_dormant() && !o.gone {
                    if let Some(r) = &o.reader {
                        // A copy has the same first bytes, unless the file
                        // was truncated right after being copied (then it
                        // no longer matches its own fingerprint: the next
                        // read finds the truncation and continues in the copy).
                        let truncated = !r.verify().unwrap_or(true);
                        if truncated || r.same_prefix(&file, COPY_CHECK_BYTES.min(f.size as usize))
                        {
                            self.alias_inodes.insert((f.dev, f.ino), other);
                            let o = self.idents.get_mut(&other).expect("exists");
                            o.aliases.push(Alias {
                                path: f.path,
                                dev: f.dev,
                                ino: f.ino,
                            });
                            return None;
                        }
                    }
                    warn!(source = %self.name, path = %f.path.display(),
                        "two files start with the same {fp} bytes; telling them apart by inode \
                         (raise fingerprint_bytes)");
                    key = key.bound(f.dev, f.ino);
                }
            }
        }

        // A checkpointed file?
        let mut matched = None;
        let mut rewritten = None;
        for (&id, i) in &self.idents {
            if !i.is_dormant() {
                continue;
            }
            let l = i.key.len as usize;
            let same_inode = (i.dev, i.ino) == (f.dev, f.ino);
            if f.head.len() >= l
                && hash(&f.head[..l]) == i.key.hash
                && i.key.inode.is_none_or(|_| same_inode)
            {
                matched = Some(id);
                break;
            }
            if same_inode && i.key.inode.is_some() {
                rewritten = Some(id);
            }
        }
        if let Some(id) = matched {
            let i = self.idents.get_mut(&id).expect("exists");
            let mut offset = i.committed;
            if offset > f.size {
                warn!(source = %self.name, path = %f.path.display(),
                    "file is shorter than its checkpoint; reading it from the beginning");
                offset = 0;
                i.committed = 0;
            }
            i.path = f.path;
            i.dev = f.dev;
            i.ino = f.ino;
            i.in_glob = true;
            i.maybe_data = true;
            i.size = f.size;
            i.last_growth = now;
            i.last_seen = wall;
            let stored = i.key;
            let r = self.new_reader(file, stored, offset);
            let i = self.idents.get_mut(&id).expect("exists");
            i.reader = Some(r);
            self.by_inode.insert((f.dev, f.ino), id);
            debug!(source = %self.name, path = %i.path.display(), offset, "resuming file at its checkpoint");
            let want = Key::of(&f.head, fp, f.dev, f.ino);
            if stored != want
                && (stored.len as usize != fp || (stored.inode.is_some() && want.inode.is_none()))
            {
                // Stored under an older or shorter fingerprint.
                if let Some(r) = &mut self.idents.get_mut(&id).expect("exists").reader {
                    r.set_key(want);
                }
                self.rekey(id, want);
            }
            self.dirty = true;
            return Some(id);
        }
        if let Some(id) = rewritten {
            // Same inode, other content: truncated or rewritten while stopped.
            self.forget(id);
        }

        // A new file.
        let start_at_end = self.first_scan && self.fresh && self.s.start_at == StartAt::End;
        let offset = if start_at_end { f.size } else { 0 };
        let mut r = self.new_reader(file, key, offset);
        if start_at_end && !r.ends_with_newline(f.size) {
            r.discard_first_line();
        }
        if let Some(&other) = self.by_key.get(&key) {
            // Only a stale entry can be left here.
            self.forget(other);
        }
        let id = self.next_id;
        self.next_id += 1;
        let stream = f.path.to_string_lossy().into_owned();
        debug!(source = %self.name, path = %stream, offset, "new file");
        self.idents.insert(
            id,
            Ident {
                key,
                stream,
                path: f.path,
                dev: f.dev,
                ino: f.ino,
                committed: offset,
                reader: Some(r),
                in_glob: true,
                gen: 0,
                inflight: 0,
                maybe_data: true,
                size: f.size,
                last_growth: now,
                last_seen: wall,
                finishing: false,
                done_reading: false,
                gone: false,
                retry_at: None,
                recheck_at: None,
                recheck_wait: Duration::ZERO,
                backoff: Duration::ZERO,
                aliases: Vec::new(),
            },
        );
        self.by_key.insert(key, id);
        self.by_inode.insert((f.dev, f.ino), id);
        self.dirty = true;
        Some(id)
    }
}
