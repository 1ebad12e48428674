//! The replay task: probes the broker, reads the topic back, and replays
//! the spool in order, skipping what the topic already holds.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use tokio::sync::{mpsc, oneshot, watch};

use super::sink_metrics::SinkMetrics;
use super::spool::{self, SpoolReader};
use super::{
    payload, readback, topic_ready, AuditClientContext, AuditConfig, Reach, ReplayMsg, Shared,
    READ_BACK_SETTLE, REPLAY_WINDOW_BYTES, REPLAY_WINDOW_FRAMES,
};

pub(super) struct Replay {
    pub(super) cfg: AuditConfig,
    pub(super) instance: String,
    /// Spooled events the topic already holds (found by the read-back at
    /// the start of a replay): skipped.
    pub(super) held: readback::Held,
    pub(super) producer: FutureProducer<AuditClientContext>,
    pub(super) topic: Arc<str>,
    pub(super) dir: PathBuf,
    pub(super) reader: Arc<SpoolReader>,
    pub(super) cursor: u64,
    pub(super) shared: Arc<Shared>,
    pub(super) m: SinkMetrics,
    pub(super) to_writer: mpsc::Sender<ReplayMsg>,
    pub(super) stop: watch::Receiver<bool>,
}

impl Replay {
    pub(super) async fn run(mut self) {
        let mut backoff = Duration::from_millis(200);
        let mut broker_ok = false;
        let mut failing_since: Option<Instant> = None;
        let mut probe_warned: Option<Instant> = None;
        let reader = self.reader.clone();
        loop {
            if *self.stop.borrow() {
                return;
            }
            let end = self.shared.durable_len.load(Ordering::Acquire);
            if self.cursor >= end {
                if self.shared.spooling.load(Ordering::Relaxed) {
                    let (reply, rx) = oneshot::channel();
                    if self
                        .to_writer
                        .send(ReplayMsg::CaughtUp {
                            offset: self.cursor,
                            reply,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if rx.await == Ok(true) {
                        self.cursor = 0;
                        self.held = readback::Held::new();
                        broker_ok = false;
                        continue;
                    }
                }
                self.idle(Duration::from_millis(500)).await;
                continue;
            }
            if !broker_ok {
                let p = self.producer.clone();
                let t = self.topic.clone();
                match tokio::task::spawn_blocking(move || {
                    topic_ready(&p, &t, Duration::from_secs(1))
                })
                .await
                {
                    Ok(Ok(())) => {
                        self.shared.reach.send_replace(Reach::Up);
                        probe_warned = None;
                        // Events given up on after `ack_timeout` may still
                        // reach the topic until librdkafka reports on them;
                        // read the topic back only after that, so that none
                        // is missed. The probe comes first all the same, so
                        // that a shutdown learns whether Kafka answers.
                        if self.shared.unresolved.load(Ordering::Acquire) > 0 {
                            self.idle(Duration::from_millis(200)).await;
                            continue;
                        }
                        broker_ok = true;
                        // A broker that was frozen (not restarted) still
                        // holds produce requests in its sockets from before
                        // the outage, and stores them as it resumes, in
                        // parallel with answering the probe. Give it a
                        // moment, so that the read-back sees them.
                        tokio::select! {
                            _ = tokio::time::sleep(READ_BACK_SETTLE) => {}
                            _ = self.stop.changed() => return,
                        }
                        self.read_back(end).await;
                    }
                    Ok(Err(e)) => {
                        self.shared.reach.send_replace(Reach::Down);
                        // Say why the spool is not draining (a missing topic,
                        // an unreachable broker), then at most once a minute.
                        if probe_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                            probe_warned = Some(Instant::now());
                            tracing::warn!(
                                unreplayed_bytes = end - self.cursor,
                                "audit spool waiting for Kafka before replay: {e}"
                            );
                        }
                        self.idle(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                    Err(_) => return,
                }
            }
            let (from, r) = (self.cursor, reader.clone());
            let frames = match tokio::task::spawn_blocking(move || {
                r.read(from, end, REPLAY_WINDOW_FRAMES, REPLAY_WINDOW_BYTES)
            })
            .await
            {
                Ok(Ok(f)) => f,
                Ok(Err(e)) => {
                    tracing::error!(offset = from, "audit spool cannot be read for replay: {e}");
                    self.idle(Duration::from_secs(5)).await;
                    continue;
                }
                Err(_) => return,
            };
            let (sent, failure) = self.send_window(&frames).await;
            if sent > 0 {
                let new_cursor = frames[sent - 1].end;
                let dir = self.dir.clone();
                match tokio::task::spawn_blocking(move || spool::write_cursor(&dir, new_cursor))
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!("audit spool cursor cannot be written: {e}"),
                    Err(_) => return,
                }
                self.cursor = new_cursor;
                self.m.replayed.fetch_add(sent as u64, Ordering::Relaxed);
            }
            match failure {
                None => {
                    backoff = Duration::from_millis(200);
                    if let Some(t) = failing_since.take() {
                        tracing::info!(
                            after_secs = t.elapsed().as_secs(),
                            "audit replay to Kafka is making progress again"
                        );
                    }
                }
                Some(e) => {
                    if failing_since.is_none() {
                        failing_since = Some(Instant::now());
                        tracing::warn!(
                            replayed = sent,
                            "audit replay to Kafka failed; will retry: {e}"
                        );
                    }
                    broker_ok = false;
                    self.idle(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Reads the topic back before replaying the spool from the cursor to
    /// `end`, so that events Kafka already holds are skipped (see
    /// [`readback`]). On failure the replay goes on without skipping:
    /// at least once, and `audit verify` names identical re-sends.
    async fn read_back(&mut self, end: u64) {
        self.held.clear();
        let (reader, from) = (self.reader.clone(), self.cursor);
        let first_seq = match tokio::task::spawn_blocking(move || {
            let mut first: HashMap<String, u64> = HashMap::new();
            let mut at = from;
            while at < end {
                let frames = reader.read(at, end, REPLAY_WINDOW_FRAMES, REPLAY_WINDOW_BYTES)?;
                let Some(last) = frames.last() else {
                    break;
                };
                at = last.end;
                for f in frames {
                    first.entry(f.stream).or_insert(f.seq);
                }
            }
            Ok::<_, std::io::Error>(first)
        })
        .await
        {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                tracing::warn!("audit spool cannot be read before the replay's read-back: {e}");
                return;
            }
            Err(_) => return,
        };
        let since = spool::read_since(&self.dir);
        let (cfg, instance) = (self.cfg.clone(), self.instance.clone());
        let started = Instant::now();
        match tokio::task::spawn_blocking(move || {
            readback::read_back(&cfg, &instance, since, &first_seq)
        })
        .await
        {
            Ok(Ok(r)) => {
                if r.truncated {
                    tracing::warn!(
                        read = r.read,
                        held = r.held.len(),
                        "audit read-back before the replay stopped at its bound; later copies already in Kafka may be sent again (verify names them as duplicates)"
                    );
                }
                tracing::info!(
                    read = r.read,
                    held = r.held.len(),
                    millis = started.elapsed().as_millis() as u64,
                    "audit topic read back before the replay; spooled events it already holds will be skipped"
                );
                self.held = r.held;
            }
            Ok(Err(e)) => tracing::warn!(
                "audit topic cannot be read back before the replay; replaying everything (verify names identical re-sends): {e}"
            ),
            Err(_) => {}
        }
    }

    /// Produces frames in order, except those the topic already holds;
    /// returns how many leading frames were acknowledged (or skipped), and
    /// the first failure.
    async fn send_window(&self, frames: &[spool::Frame]) -> (usize, Option<String>) {
        let mut futs = Vec::with_capacity(frames.len());
        let mut failure = None;
        for f in frames {
            if !self.held.is_empty()
                && self.held.get(&(f.stream.clone(), f.seq)).copied()
                    == payload::stated_hash(&f.payload)
            {
                self.m.replay_skipped.fetch_add(1, Ordering::Relaxed);
                futs.push(None);
                continue;
            }
            let seq = f.seq.to_string();
            let headers = OwnedHeaders::new_with_capacity(2)
                .insert(Header {
                    key: "scrubs-stream",
                    value: Some(f.stream.as_bytes()),
                })
                .insert(Header {
                    key: "scrubs-seq",
                    value: Some(seq.as_bytes()),
                });
            let rec = FutureRecord::to(&self.topic)
                .key(&f.key[..])
                .payload(&f.payload[..])
                .headers(headers);
            match self.producer.send_result(rec) {
                Ok(fut) => futs.push(Some(fut)),
                Err((e, _)) => {
                    failure = Some(format!("producer refused a replayed event: {e}"));
                    break;
                }
            }
        }
        let mut ok = 0;
        let mut broken = failure.is_some();
        for fut in futs {
            let Some(fut) = fut else {
                // Skipped: already in the topic.
                if !broken {
                    ok += 1;
                }
                continue;
            };
            match fut.await {
                Ok(Ok(_)) if !broken => ok += 1,
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    if !broken {
                        broken = true;
                        // Do not let later frames overtake this one.
                        self.producer
                            .purge(PurgeConfig::default().queue().non_blocking());
                        failure = Some(e.to_string());
                    }
                }
                Err(_) => {
                    broken = true;
                    failure.get_or_insert_with(|| "delivery report dropped".into());
                }
            }
        }
        (ok, failure)
    }

    async fn idle(&mut self, d: Duration) {
        tokio::select! {
            _ = self.shared.spool_changed.notified() => {}
            _ = tokio::time::sleep(d) => {}
            _ = self.stop.changed() => {}
        }
    }
}
