//! The writer task: seals events in arrival order, hands them to Kafka,
//! spools what Kafka does not acknowledge, and at shutdown waits for the
//! spool to drain when Kafka answers.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer, PurgeConfig};
use tokio::sync::{mpsc, oneshot, watch};

use super::payload::{payload_overhead, ChainHead, SealedEvent, Sealer};
use super::sink_metrics::SinkMetrics;
use super::spool::{self, encode_frame, frame_len, Journal, SpoolFile};
use super::{
    AuditClientContext, AuditError, Cmd, Reach, ReplayMsg, Shared, MAX_CMDS_PER_ROUND,
    MAX_IN_FLIGHT,
};

pub(super) struct InFlight {
    fut: DeliveryFuture,
    ev: SealedEvent,
    req: u64,
    sent: Instant,
}

pub(super) struct Pending {
    remaining: usize,
    error: Option<AuditError>,
    ack: oneshot::Sender<Result<(), AuditError>>,
}

pub(super) struct Writer {
    pub(super) rx: mpsc::Receiver<Cmd>,
    pub(super) replay_rx: mpsc::Receiver<ReplayMsg>,
    pub(super) producer: FutureProducer<AuditClientContext>,
    pub(super) topic: Arc<str>,
    pub(super) dir: PathBuf,
    pub(super) sealer: Sealer,
    pub(super) journal: Arc<Mutex<Journal>>,
    pub(super) spool: Arc<Mutex<SpoolFile>>,
    pub(super) spool_len: u64,
    pub(super) shared: Arc<Shared>,
    pub(super) m: SinkMetrics,
    /// Events go to the spool, not to Kafka.
    pub(super) spooling: bool,
    /// Handed to Kafka, in sealing order.
    pub(super) inflight: VecDeque<InFlight>,
    /// Events whose delivery failed, in sealing order (spooled first).
    pub(super) failed: Vec<(SealedEvent, u64)>,
    /// Events sealed in spool mode, after every in-flight event.
    pub(super) parked: Vec<(SealedEvent, u64)>,
    pub(super) reqs: HashMap<u64, Pending>,
    pub(super) next_req: u64,
    pub(super) done_reqs: Vec<u64>,
    pub(super) max_message_bytes: usize,
    pub(super) spool_max: u64,
    /// When shutting down: the deadline.
    pub(super) closing: Option<Instant>,
    pub(super) shutdown_waiters: Vec<oneshot::Sender<()>>,
    pub(super) full_logged: bool,
    /// `ack_timeout`, at most `delivery_timeout`.
    pub(super) ack_timeout: Duration,
    /// `delivery_timeout`: how long before an event handed to Kafka can
    /// still be stored (the start of the replay's read-back).
    pub(super) delivery_timeout: Duration,
}

/// Polls the oldest in-flight delivery.
struct Head<'a>(&'a mut VecDeque<InFlight>);

impl Future for Head<'_> {
    type Output = <DeliveryFuture as Future>::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.0.front_mut() {
            Some(f) => Pin::new(&mut f.fut).poll(cx),
            None => Poll::Pending,
        }
    }
}

impl Writer {
    pub(super) async fn run(mut self, stop_replay: watch::Sender<bool>) {
        let mut rx_open = true;
        loop {
            if self.inflight.is_empty() && (!self.failed.is_empty() || !self.parked.is_empty()) {
                self.flush_spool().await;
            }
            self.ack_done();
            if !rx_open
                && self.inflight.is_empty()
                && self.failed.is_empty()
                && self.parked.is_empty()
            {
                break;
            }
            let take = rx_open && self.inflight.len() < MAX_IN_FLIGHT;
            let deadline = self
                .closing
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            // The oldest event's ack budget. Not while closing: then the
            // shutdown deadline decides what is spooled.
            let ack_deadline = match (&self.closing, self.inflight.front()) {
                (None, Some(f)) => Some(f.sent + self.ack_timeout),
                _ => None,
            };
            tokio::select! {
                biased;
                r = Head(&mut self.inflight), if !self.inflight.is_empty() => {
                    self.on_delivery(r);
                    self.drain_ready();
                }
                cmd = self.rx.recv(), if take => match cmd {
                    None => rx_open = false,
                    Some(c) => {
                        let mut cmds = vec![c];
                        while cmds.len() < MAX_CMDS_PER_ROUND {
                            match self.rx.try_recv() {
                                Ok(c) => cmds.push(c),
                                Err(_) => break,
                            }
                        }
                        self.handle(cmds).await;
                    }
                },
                Some(msg) = self.replay_rx.recv() => self.on_replay(msg).await,
                _ = tokio::time::sleep_until(ack_deadline.unwrap_or(deadline).into()), if ack_deadline.is_some() => {
                    self.abandon_inflight();
                }
                _ = tokio::time::sleep_until(deadline.into()), if self.closing.is_some() && !self.inflight.is_empty() => {
                    // Out of time: spool what Kafka has not acknowledged (it
                    // may still arrive: at least once).
                    tracing::warn!(events = self.inflight.len(), "audit shutdown deadline reached; spooling unacknowledged events");
                    self.enter_spool_mode("shutdown deadline");
                    while let Some(f) = self.inflight.pop_front() {
                        self.failed.push((f.ev, f.req));
                    }
                }
            }
        }
        if let Some(deadline) = self.closing {
            self.drain_spool(deadline).await;
        }
        let _ = stop_replay.send(true);
        let producer = self.producer.clone();
        let left = self
            .closing
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(1));
        let _ = tokio::task::spawn_blocking(move || producer.flush(left)).await;
        for w in self.shutdown_waiters.drain(..) {
            let _ = w.send(());
        }
        tracing::info!("audit sink stopped");
    }

    /// At shutdown, with every event durable: if the spool still holds
    /// events and Kafka answers, keeps the replay going until it has caught
    /// up (the spool is then truncated) or `deadline` passes. A pod deleted
    /// with its spool on an `emptyDir` loses what is left in it, so the
    /// remaining grace period is spent delivering it. If the broker is down
    /// (a fresh probe fails) it returns at once: waiting would only delay
    /// the exit, and the next start with the same `spool_dir` replays.
    async fn drain_spool(&mut self, deadline: Instant) {
        if !self.spooling {
            return;
        }
        let mut reach = self.shared.reach.subscribe();
        self.shared.reach.send_replace(Reach::Unknown);
        reach.mark_unchanged();
        // Wake the replay from its backoff so that it probes now.
        self.shared.spool_changed.notify_one();
        tracing::info!(
            bytes = self.spool_len,
            "audit spool holds events at shutdown; replaying them to Kafka before exit if it answers"
        );
        loop {
            if !self.spooling {
                tracing::info!("audit spool drained to Kafka before exit");
                return;
            }
            if *reach.borrow_and_update() == Reach::Down {
                tracing::warn!(
                    bytes = self.spool_len,
                    "Kafka is unreachable at shutdown; audit events stay in the spool for the next start"
                );
                return;
            }
            tokio::select! {
                msg = self.replay_rx.recv() => match msg {
                    Some(msg) => self.on_replay(msg).await,
                    None => return,
                },
                r = reach.changed() => if r.is_err() {
                    return;
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    tracing::warn!(
                        bytes = self.spool_len,
                        "audit shutdown deadline reached while replaying the spool; the rest stays in the spool for the next start"
                    );
                    return;
                }
            }
        }
    }

    fn enter_spool_mode(&mut self, why: &str) {
        if self.spooling {
            return;
        }
        self.spooling = true;
        self.shared.spooling.store(true, Ordering::Relaxed);
        self.m.spooling.store(1, Ordering::Relaxed);
        // Fail the queued (not yet sent) messages now, so none of them is
        // delivered after an earlier event that goes to the spool.
        self.producer
            .purge(PurgeConfig::default().queue().non_blocking());
        tracing::warn!(
            spool = %self.dir.join(spool::SPOOL_FILE).display(),
            "audit events are being spooled locally: {why}; they will be replayed in order when Kafka is back"
        );
    }

    /// Kafka has not acknowledged the oldest event within `ack_timeout`
    /// (a hung broker keeps its connections open, so librdkafka would wait
    /// for `delivery_timeout`): everything in flight goes to the spool, so
    /// that sources are answered within the budget. librdkafka may still
    /// store those events; a task follows their delivery reports, and the
    /// replay waits for them and then skips what the topic already holds.
    fn abandon_inflight(&mut self) {
        let Some(front) = self.inflight.front() else {
            return;
        };
        let why = format!(
            "Kafka did not acknowledge seq {} of stream {} within audit.kafka.ack_timeout ({} ms)",
            front.ev.seq,
            front.ev.stream,
            self.ack_timeout.as_millis()
        );
        self.enter_spool_mode(&why);
        self.m.ack_timeouts.fetch_add(1, Ordering::Relaxed);
        let mut futs = Vec::with_capacity(self.inflight.len());
        while let Some(f) = self.inflight.pop_front() {
            futs.push(f.fut);
            self.failed.push((f.ev, f.req));
        }
        let n = futs.len() as u64;
        self.shared.unresolved.fetch_add(n, Ordering::AcqRel);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            for f in futs {
                let _ = f.await;
            }
            shared.unresolved.fetch_sub(n, Ordering::AcqRel);
            shared.spool_changed.notify_one();
        });
    }

    fn on_delivery(&mut self, r: <DeliveryFuture as Future>::Output) {
        let Some(f) = self.inflight.pop_front() else {
            return;
        };
        match r {
            Ok(Ok(_)) => {
                self.m.delivered.fetch_add(1, Ordering::Relaxed);
                self.m.observe_latency(f.sent.elapsed());
                self.finish_one(f.req, None);
            }
            Ok(Err((e, _msg))) => {
                let why = format!(
                    "Kafka did not acknowledge seq {} of stream {} ({e})",
                    f.ev.seq, f.ev.stream
                );
                self.enter_spool_mode(&why);
                self.failed.push((f.ev, f.req));
            }
            Err(_) => {
                self.enter_spool_mode("the Kafka producer dropped a delivery report");
                self.failed.push((f.ev, f.req));
            }
        }
    }

    /// Handles further deliveries that are already complete.
    fn drain_ready(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..50_000 {
            let Some(front) = self.inflight.front_mut() else {
                break;
            };
            match Pin::new(&mut front.fut).poll(&mut cx) {
                Poll::Ready(r) => self.on_delivery(r),
                Poll::Pending => break,
            }
        }
    }

    fn finish_one(&mut self, req: u64, err: Option<AuditError>) {
        if let Some(p) = self.reqs.get_mut(&req) {
            p.remaining -= 1;
            if err.is_some() && p.error.is_none() {
                p.error = err;
            }
            if p.remaining == 0 {
                self.done_reqs.push(req);
            }
        }
    }

    fn ack_done(&mut self) {
        for id in self.done_reqs.drain(..) {
            if let Some(p) = self.reqs.remove(&id) {
                let _ = p.ack.send(match p.error {
                    Some(e) => Err(e),
                    None => Ok(()),
                });
            }
        }
    }

    fn pending_spool_bytes(&self) -> u64 {
        self.failed
            .iter()
            .chain(&self.parked)
            .map(|(e, _)| frame_len(e) as u64)
            .sum()
    }

    async fn handle(&mut self, cmds: Vec<Cmd>) {
        // Heads before this round, to roll back if the journal fails.
        let mut before: HashMap<String, Option<ChainHead>> = HashMap::new();
        let mut accepted: Vec<(u64, Vec<SealedEvent>)> = Vec::new();
        let mut round_bytes = 0u64;
        for cmd in cmds {
            let (events, ack) = match cmd {
                Cmd::Send { events, ack } => (events, ack),
                Cmd::Shutdown { deadline, done } => {
                    self.closing = Some(deadline);
                    self.shutdown_waiters.push(done);
                    // Take what is already queued, refuse anything newer.
                    self.rx.close();
                    continue;
                }
            };
            let mut records = Vec::with_capacity(events.len());
            let mut too_large = None;
            let mut est = 0u64;
            for ev in &events {
                let rec = serde_json::to_vec(&ev.record).expect("a JSON value serialises");
                let size = rec.len()
                    + payload_overhead(ev)
                    + ev.key.as_ref().map_or(ev.stream.len(), String::len);
                if size > self.max_message_bytes {
                    too_large = Some(size);
                    break;
                }
                est += (size + 32) as u64;
                records.push(rec);
            }
            if let Some(bytes) = too_large {
                tracing::warn!(
                    stream = %events[0].stream,
                    bytes,
                    limit = self.max_message_bytes,
                    "audit event refused: larger than audit.max_message_bytes"
                );
                self.m
                    .refused
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                let _ = ack.send(Err(AuditError::TooLarge {
                    bytes,
                    limit: self.max_message_bytes,
                }));
                continue;
            }
            if self.spooling {
                let used = self.spool_len + self.pending_spool_bytes() + round_bytes;
                // An empty spool takes any batch, so a large one cannot wait forever.
                if used > 0 && used + est > self.spool_max {
                    self.set_full(true);
                    self.m
                        .refused
                        .fetch_add(events.len() as u64, Ordering::Relaxed);
                    let _ = ack.send(Err(AuditError::Backpressure));
                    continue;
                }
                round_bytes += est;
            }
            let mut sealed = Vec::with_capacity(events.len());
            for (ev, rec) in events.iter().zip(&records) {
                if !before.contains_key(&ev.stream) {
                    before.insert(ev.stream.clone(), self.sealer.head(&ev.stream));
                }
                sealed.push(self.sealer.seal_raw(ev, rec));
            }
            let id = self.next_req;
            self.next_req += 1;
            self.reqs.insert(
                id,
                Pending {
                    remaining: sealed.len(),
                    error: None,
                    ack,
                },
            );
            accepted.push((id, sealed));
        }
        if accepted.is_empty() {
            return;
        }
        // Write-ahead: persist the new chain heads before any event can
        // reach Kafka or the spool.
        let heads: Vec<(String, ChainHead)> = before
            .keys()
            .filter_map(|s| self.sealer.head(s).map(|h| (s.clone(), h)))
            .collect();
        let journal = self.journal.clone();
        let res = tokio::task::spawn_blocking(move || {
            journal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .append(&heads)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        if let Err(e) = res {
            for (s, h) in before {
                self.sealer.set_head(&s, h);
            }
            let msg = format!("{}: {e}", self.dir.join(spool::JOURNAL_FILE).display());
            tracing::error!("audit chain journal cannot be written; events refused: {msg}");
            for (id, sealed) in accepted {
                self.m
                    .failed
                    .fetch_add(sealed.len() as u64, Ordering::Relaxed);
                if let Some(p) = self.reqs.remove(&id) {
                    let _ = p.ack.send(Err(AuditError::Io(msg.clone())));
                }
            }
            return;
        }
        for (id, sealed) in accepted {
            for ev in sealed {
                if self.spooling {
                    self.parked.push((ev, id));
                } else {
                    self.enqueue(ev, id);
                }
            }
        }
    }

    fn enqueue(&mut self, ev: SealedEvent, req: u64) {
        let seq = ev.seq.to_string();
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header {
                key: "scrubs-stream",
                value: Some(ev.stream.as_bytes()),
            })
            .insert(Header {
                key: "scrubs-seq",
                value: Some(seq.as_bytes()),
            });
        let record = FutureRecord::to(&self.topic)
            .key(&ev.key[..])
            .payload(&ev.payload[..])
            .headers(headers);
        match self.producer.send_result(record) {
            Ok(fut) => self.inflight.push_back(InFlight {
                fut,
                ev,
                req,
                sent: Instant::now(),
            }),
            Err((e, _)) => {
                let why = format!(
                    "the Kafka producer refused seq {} of stream {} ({e})",
                    ev.seq, ev.stream
                );
                self.enter_spool_mode(&why);
                // Sealed after everything in flight: spooled after it.
                self.parked.push((ev, req));
            }
        }
    }

    fn set_full(&mut self, full: bool) {
        self.shared.backpressure.store(full, Ordering::Relaxed);
        self.m.spool_full.store(u64::from(full), Ordering::Relaxed);
        if full && !self.full_logged {
            self.full_logged = true;
            tracing::warn!(
                spool_bytes = self.spool_len,
                limit = self.spool_max,
                "audit spool is full; refusing new audit events (backpressure) until Kafka is back and the spool is replayed"
            );
        } else if !full && self.full_logged {
            self.full_logged = false;
            tracing::info!("audit spool has room again; backpressure released");
        }
    }

    /// Appends failed then parked events to the spool, fsyncs, acknowledges.
    async fn flush_spool(&mut self) {
        let mut items: Vec<(SealedEvent, u64)> = std::mem::take(&mut self.failed);
        items.append(&mut self.parked);
        let mut buf = Vec::with_capacity(items.iter().map(|(e, _)| frame_len(e)).sum());
        for (ev, _) in &items {
            encode_frame(ev, &mut buf);
        }
        let spool = self.spool.clone();
        // When the spool starts afresh, note how far back Kafka may hold
        // copies of what it is about to take: an event goes to the spool at
        // most `delivery_timeout` after it was handed to Kafka (a minute
        // more for clocks, should the topic stamp messages with the
        // broker's time). The replay reads the topic back from there.
        let since = (self.spool_len == 0).then(|| {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            now_ms - self.delivery_timeout.as_millis() as i64 - 60_000
        });
        let dir = self.dir.clone();
        let res = tokio::task::spawn_blocking(move || {
            if let Some(ms) = since {
                spool::write_since(&dir, ms)?;
            }
            let mut s = spool.lock().unwrap_or_else(|e| e.into_inner());
            s.append(&buf).map(|_| s.len())
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match res {
            Ok(len) => {
                self.spool_len = len;
                self.shared.durable_len.store(len, Ordering::Release);
                self.shared.spool_changed.notify_one();
                self.m.spool_bytes.store(len, Ordering::Relaxed);
                self.m
                    .spooled
                    .fetch_add(items.len() as u64, Ordering::Relaxed);
                if len >= self.spool_max {
                    self.set_full(true);
                }
                for (_, req) in items {
                    self.finish_one(req, None);
                }
            }
            Err(e) => {
                let msg = format!("{}: {e}", self.dir.join(spool::SPOOL_FILE).display());
                let first = &items[0].0;
                tracing::error!(
                    events = items.len(),
                    stream = %first.stream,
                    first_seq = first.seq,
                    "audit spool cannot be written; these events are not durable and their sequence numbers will show as a gap: {msg}"
                );
                self.m
                    .failed
                    .fetch_add(items.len() as u64, Ordering::Relaxed);
                for (_, req) in items {
                    self.finish_one(req, Some(AuditError::Io(msg.clone())));
                }
            }
        }
    }

    async fn on_replay(&mut self, msg: ReplayMsg) {
        let ReplayMsg::CaughtUp { offset, reply } = msg;
        let idle = self.inflight.is_empty() && self.failed.is_empty() && self.parked.is_empty();
        if !(self.spooling && idle && offset == self.spool_len) {
            let _ = reply.send(false);
            return;
        }
        let spool = self.spool.clone();
        let res = tokio::task::spawn_blocking(move || {
            spool.lock().unwrap_or_else(|e| e.into_inner()).truncate()
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        if let Err(e) = res {
            tracing::error!(
                "audit spool replayed but cannot be truncated ({}: {e}); staying in spool mode",
                self.dir.display()
            );
            let _ = reply.send(false);
            return;
        }
        self.spool_len = 0;
        self.shared.durable_len.store(0, Ordering::Release);
        self.m.spool_bytes.store(0, Ordering::Relaxed);
        self.spooling = false;
        self.shared.spooling.store(false, Ordering::Relaxed);
        self.m.spooling.store(0, Ordering::Relaxed);
        self.set_full(false);
        tracing::info!("audit spool replayed; delivering audit events directly to Kafka again");
        let _ = reply.send(true);
    }
}
