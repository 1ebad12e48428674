//! Verification of the audit topic (`scrubs audit verify`).
//!
//! [`Verifier`] is pure: feed it every message of the topic (partition,
//! offset, key, value) and it reports, per chain (a stream of one scrubs
//! instance: the payload's `instance` and `stream`):
//!
//! - `gap`: sequence numbers missing between 0 and the highest one read
//!   (events deleted, or lost to a crash between sealing and delivery; a gap
//!   at the start can also be retention).
//! - `reorder`: within one partition, an event whose seq is lower than one
//!   before it (events of one stream in different partitions, which happens
//!   when events carry per-subject keys, have no relative order and are not
//!   compared).
//! - `duplicate`: the same seq more than once with identical content (a
//!   redelivery, or a copied message). `conflict`: the same seq with
//!   different content.
//! - `altered`: the stated hash does not match the content (or the message
//!   is not a scrubs audit payload at all).
//! - `broken_chain`: `prev_hash` is not the hash of the stream's previous
//!   event (an event was altered and its hash recomputed, or one was
//!   replaced), or not zeros at seq 0.
//!
//! Deleting the very last events of a stream leaves no trace in the topic
//! itself; compare the last seq per stream with scrubs' `chain.journal` when
//! that matters.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sha2::{Digest, Sha256};

use super::kafka::{base_config, partition_bounds, AuditClientContext};
use super::payload::{check_payload, ChainKey, ZERO_HASH};

/// One message of the audit topic.
#[derive(Clone)]
pub struct RawMessage {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

impl fmt::Debug for RawMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawMessage")
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("payload_bytes", &self.payload.as_ref().map(Vec::len))
            .finish()
    }
}

/// The kinds of problem verify reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    Gap,
    Reorder,
    Duplicate,
    Conflict,
    Altered,
    BrokenChain,
}

impl ProblemKind {
    /// The name printed after `problem=`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Gap => "gap",
            ProblemKind::Reorder => "reorder",
            ProblemKind::Duplicate => "duplicate",
            ProblemKind::Conflict => "conflict",
            ProblemKind::Altered => "altered",
            ProblemKind::BrokenChain => "broken_chain",
        }
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The stream, or `?` when the message could not be read at all.
    pub stream: String,
    /// The scrubs instance (chain id), or `?`.
    pub instance: String,
    /// The sequence number concerned (the first missing one for a gap).
    pub seq: Option<u64>,
    pub kind: ProblemKind,
    /// Positions and sequence numbers; never record content.
    pub detail: String,
}

fn quote(s: &str) -> Cow<'_, str> {
    if !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=')
    {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(serde_json::to_string(s).unwrap_or_else(|_| "\"?\"".into()))
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stream={} instance={} seq=",
            quote(&self.stream),
            quote(&self.instance)
        )?;
        match self.seq {
            Some(s) => write!(f, "{s}")?,
            None => f.write_str("-")?,
        }
        write!(f, " problem={} detail={}", self.kind.as_str(), self.detail)
    }
}

/// The result of a verification.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Messages read.
    pub events: u64,
    /// Distinct chains (instance, stream).
    pub streams: usize,
    /// Every problem, by stream then seq.
    pub problems: Vec<Problem>,
    /// Events of a keyed chain whose hash could not be checked because no
    /// chain key was given.
    pub unchecked_hashes: u64,
}

impl Report {
    /// No problems (hashes may still be unchecked: see `unchecked_hashes`).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// How many problems of a kind.
    pub fn count(&self, kind: ProblemKind) -> usize {
        self.problems.iter().filter(|p| p.kind == kind).count()
    }

    /// Problems other than identical re-sends: gaps, reordering,
    /// conflicting copies, altered events and broken chains, which mean
    /// events were lost, reordered, changed or forged.
    pub fn integrity_problems(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.kind != ProblemKind::Duplicate)
            .count()
    }

    /// `verified N events in S streams: K problems`, then, when there are
    /// any, which kind: identical re-sends (at-least-once delivery, no
    /// event lost or changed) apart from integrity problems, by kind.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "verified {} events in {} streams: {} problems",
            self.events,
            self.streams,
            self.problems.len()
        );
        if !self.problems.is_empty() {
            let dups = self.count(ProblemKind::Duplicate);
            let mut kinds = Vec::new();
            for k in [
                ProblemKind::Gap,
                ProblemKind::Reorder,
                ProblemKind::Conflict,
                ProblemKind::Altered,
                ProblemKind::BrokenChain,
            ] {
                let n = self.count(k);
                if n > 0 {
                    kinds.push(format!("{n} {}", k.as_str()));
                }
            }
            s.push_str(&format!(" ({dups} identical re-send(s), "));
            if kinds.is_empty() {
                s.push_str("no integrity problem)");
            } else {
                s.push_str(&format!(
                    "{} integrity problem(s): {})",
                    self.integrity_problems(),
                    kinds.join(", ")
                ));
            }
        }
        if self.unchecked_hashes > 0 {
            s.push_str(&format!(
                " ({} hashes not checked: keyed chain, no chain key given)",
                self.unchecked_hashes
            ));
        }
        s
    }
}

struct Entry {
    seq: u64,
    partition: i32,
    offset: i64,
    hash: [u8; 32],
    prev_hash: [u8; 32],
    /// SHA-256 of the whole value, to tell identical copies from conflicts.
    digest: [u8; 32],
    hash_ok: Option<bool>,
}

/// Accumulates messages and reports problems; see the module documentation.
pub struct Verifier {
    key: Option<ChainKey>,
    streams: HashMap<(String, String), Vec<Entry>>,
    events: u64,
    problems: Vec<Problem>,
    unchecked: u64,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("events", &self.events)
            .field("streams", &self.streams.len())
            .finish()
    }
}

impl Verifier {
    /// A verifier; give the chain key when the chain is keyed.
    pub fn new(key: Option<ChainKey>) -> Verifier {
        Verifier {
            key,
            streams: HashMap::new(),
            events: 0,
            problems: Vec::new(),
            unchecked: 0,
        }
    }

    /// Adds one message, in any order.
    pub fn push(
        &mut self,
        partition: i32,
        offset: i64,
        _key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) {
        self.events += 1;
        let Some(payload) = payload else {
            self.problems.push(Problem {
                stream: "?".into(),
                instance: "?".into(),
                seq: None,
                kind: ProblemKind::Altered,
                detail: format!("partition {partition} offset {offset}: message has no value"),
            });
            return;
        };
        match check_payload(payload, self.key.as_ref()) {
            Err(reason) => self.problems.push(Problem {
                stream: "?".into(),
                instance: "?".into(),
                seq: None,
                kind: ProblemKind::Altered,
                detail: format!("partition {partition} offset {offset}: {reason}"),
            }),
            Ok(c) => {
                if c.hash_ok.is_none() {
                    self.unchecked += 1;
                }
                self.streams
                    .entry((c.instance, c.stream))
                    .or_default()
                    .push(Entry {
                        seq: c.seq,
                        partition,
                        offset,
                        hash: c.hash,
                        prev_hash: c.prev_hash,
                        digest: Sha256::digest(payload).into(),
                        hash_ok: c.hash_ok,
                    });
            }
        }
    }

    /// Checks every stream and returns the report.
    pub fn finish(self) -> Report {
        let mut problems = self.problems;
        let mut names: Vec<_> = self.streams.keys().cloned().collect();
        names.sort();
        let streams = names.len();
        let mut all = self.streams;
        for name in names {
            let mut entries = all.remove(&name).unwrap_or_default();
            entries.sort_by_key(|e| (e.partition, e.offset));
            check_stream(&name.0, &name.1, &entries, &mut problems);
        }
        problems.sort_by(|a, b| {
            (a.stream.as_str(), a.instance.as_str(), a.seq, a.kind).cmp(&(
                b.stream.as_str(),
                b.instance.as_str(),
                b.seq,
                b.kind,
            ))
        });
        Report {
            events: self.events,
            streams,
            problems,
            unchecked_hashes: self.unchecked,
        }
    }
}

fn pos(e: &Entry) -> String {
    format!("{}/{}", e.partition, e.offset)
}

/// `entries` sorted by (partition, offset).
fn check_stream(instance: &str, stream: &str, entries: &[Entry], out: &mut Vec<Problem>) {
    let mut problem = |seq: u64, kind: ProblemKind, detail: String| {
        out.push(Problem {
            stream: stream.to_string(),
            instance: instance.to_string(),
            seq: Some(seq),
            kind,
            detail,
        })
    };
    // Altered: the stated hash does not match the content.
    for e in entries {
        if e.hash_ok == Some(false) {
            problem(
                e.seq,
                ProblemKind::Altered,
                format!(
                    "partition {} offset {}: hash does not match content",
                    e.partition, e.offset
                ),
            );
        }
    }
    // Reorder, within each partition.
    let mut part: Option<i32> = None;
    let mut max_seen: Option<(u64, i64)> = None;
    let mut seen: HashSet<u64> = HashSet::new();
    for e in entries {
        if part != Some(e.partition) {
            part = Some(e.partition);
            max_seen = None;
            seen.clear();
        }
        if let Some((max, at)) = max_seen {
            if e.seq < max && !seen.contains(&e.seq) {
                problem(
                    e.seq,
                    ProblemKind::Reorder,
                    format!(
                        "partition {} offset {}: seq {} after seq {max} (offset {at})",
                        e.partition, e.offset, e.seq
                    ),
                );
            }
        }
        seen.insert(e.seq);
        if max_seen.is_none_or(|(m, _)| e.seq > m) {
            max_seen = Some((e.seq, e.offset));
        }
    }
    // Duplicates and conflicts.
    let mut by_seq: BTreeMap<u64, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        by_seq.entry(e.seq).or_default().push(e);
    }
    for (seq, v) in &by_seq {
        if v.len() > 1 {
            let at: Vec<String> = v.iter().map(|e| pos(e)).collect();
            if v.iter().all(|e| e.digest == v[0].digest) {
                problem(
                    *seq,
                    ProblemKind::Duplicate,
                    format!(
                        "{} identical copies at partition/offset {}",
                        v.len(),
                        at.join(", ")
                    ),
                );
            } else {
                problem(
                    *seq,
                    ProblemKind::Conflict,
                    format!(
                        "{} different events claim this seq at partition/offset {}",
                        v.len(),
                        at.join(", ")
                    ),
                );
            }
        }
    }
    // Gaps.
    let mut expected = 0u64;
    for seq in by_seq.keys() {
        if *seq > expected {
            let n = seq - expected;
            let range = if n == 1 {
                format!("missing seq {expected} (1 event)")
            } else {
                format!("missing seq {expected}..{} ({n} events)", seq - 1)
            };
            let detail = if expected == 0 {
                format!("{range} before the first event read (deleted, or expired by retention)")
            } else {
                format!("{range} between seq {} and seq {seq}", expected - 1)
            };
            problem(expected, ProblemKind::Gap, detail);
        }
        expected = seq + 1;
    }
    // The chain.
    for (seq, v) in &by_seq {
        let prev_hashes: Option<Vec<[u8; 32]>> = if *seq == 0 {
            Some(vec![ZERO_HASH])
        } else {
            by_seq
                .get(&(seq - 1))
                .map(|p| p.iter().map(|e| e.hash).collect())
        };
        let Some(prev_hashes) = prev_hashes else {
            continue;
        };
        for e in v {
            if !prev_hashes.contains(&e.prev_hash) {
                let detail = if *seq == 0 {
                    format!(
                        "partition {} offset {}: prev_hash of seq 0 is not zeros",
                        e.partition, e.offset
                    )
                } else {
                    format!(
                        "partition {} offset {}: prev_hash does not match the hash of seq {}",
                        e.partition,
                        e.offset,
                        seq - 1
                    )
                };
                problem(*seq, ProblemKind::BrokenChain, detail);
            }
        }
    }
}

/// Verifies a list of messages (any order).
pub fn verify(messages: &[RawMessage], key: Option<&ChainKey>) -> Report {
    let mut v = Verifier::new(key.cloned());
    for m in messages {
        v.push(
            m.partition,
            m.offset,
            m.key.as_deref(),
            m.payload.as_deref(),
        );
    }
    v.finish()
}

/// How to read the audit topic.
#[derive(Debug, Clone)]
pub struct TopicReadOptions {
    /// Bootstrap servers.
    pub brokers: String,
    /// The audit topic.
    pub topic: String,
    /// Extra librdkafka properties (`security.protocol`, `sasl.*`, `ssl.*`).
    pub properties: Vec<(String, String)>,
    /// Give up when the broker answers nothing for this long before every
    /// partition has been read to its end offset.
    pub idle_timeout: Duration,
}

/// A consumer's settings for reading the topic from its start without
/// leaving a trace in the cluster: a fresh group id, no offset commits.
pub(crate) fn reader_config(
    brokers: &str,
    security: Option<&super::SecurityConfig>,
) -> Result<rdkafka::ClientConfig, String> {
    let mut c = base_config(brokers, "scrubs-audit-verify", security)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    c.set(
        "group.id",
        format!("scrubs-audit-verify-{}-{nanos}", std::process::id()),
    )
    .set("enable.auto.commit", "false")
    .set("enable.auto.offset.store", "false")
    .set("auto.offset.reset", "earliest")
    .set("fetch.max.bytes", "52428800");
    Ok(c)
}

/// Reads every partition of the topic from its first to its end offset (as
/// of the start of the read), calling `f(partition, offset, key, value)`
/// per message. Blocking. Returns how many messages were read.
pub fn read_topic(
    opts: &TopicReadOptions,
    f: impl FnMut(i32, i64, Option<&[u8]>, Option<&[u8]>),
) -> Result<u64, String> {
    let mut c = reader_config(&opts.brokers, None)?;
    for (k, v) in &opts.properties {
        c.set(k, v);
    }
    read_all_partitions(c, &opts.brokers, &opts.topic, opts.idle_timeout, f)
}

/// [`read_topic`] with the client's settings made by the caller (a fresh
/// group id, no commits, earliest offsets): reads every partition from its
/// first to its end offset as of the start. `brokers` only names them in
/// errors.
pub(crate) fn read_all_partitions(
    c: rdkafka::ClientConfig,
    brokers: &str,
    topic: &str,
    idle_timeout: Duration,
    mut f: impl FnMut(i32, i64, Option<&[u8]>, Option<&[u8]>),
) -> Result<u64, String> {
    let consumer: BaseConsumer<AuditClientContext> = c
        .create_with_context(AuditClientContext::default())
        .map_err(|e| format!("cannot create Kafka consumer: {e}"))?;
    let bounds = partition_bounds(&consumer, topic, idle_timeout)
        .map_err(|e| format!("{e} (brokers {brokers})"))?;
    let mut tpl = TopicPartitionList::new();
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for (p, low, high) in bounds {
        tpl.add_partition_offset(topic, p, Offset::Offset(low))
            .map_err(|e| format!("assigning partition {p}: {e}"))?;
        ends.insert(p, high);
    }
    if ends.is_empty() {
        return Ok(0);
    }
    consumer
        .assign(&tpl)
        .map_err(|e| format!("assigning partitions: {e}"))?;
    let mut n = 0u64;
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let p = m.partition();
                if let Some(end) = ends.get(&p).copied() {
                    if m.offset() < end {
                        f(p, m.offset(), m.key(), m.payload());
                        n += 1;
                    }
                    if m.offset() + 1 >= end {
                        ends.remove(&p);
                    }
                }
                last_progress = Instant::now();
            }
            Some(Err(e)) => return Err(format!("reading topic {}: {e}", topic)),
            None => {
                // Partitions whose position passed the end (control records).
                if let Ok(pos) = consumer.position() {
                    for el in pos.elements() {
                        if let (Offset::Offset(o), Some(end)) =
                            (el.offset(), ends.get(&el.partition()))
                        {
                            if o >= *end {
                                ends.remove(&el.partition());
                            }
                        }
                    }
                }
                if !ends.is_empty() && last_progress.elapsed() > idle_timeout {
                    return Err(format!(
                        "no progress reading topic {} for {:?} ({} partitions not read to the end, {n} messages read)",
                        topic,
                        idle_timeout,
                        ends.len()
                    ));
                }
            }
        }
    }
    Ok(n)
}

/// Reads the whole topic and verifies it. Blocking.
pub fn verify_topic(opts: &TopicReadOptions, key: Option<ChainKey>) -> Result<Report, String> {
    let mut v = Verifier::new(key);
    read_topic(opts, |p, o, k, val| v.push(p, o, k, val))?;
    Ok(v.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::AuditEvent;
    use crate::sinks::audit::payload::Sealer;

    fn stream_msgs(sealer: &mut Sealer, stream: &str, n: u64) -> Vec<RawMessage> {
        (0..n)
            .map(|i| {
                let s = sealer.seal(&AuditEvent {
                    source: "app".into(),
                    stream: stream.into(),
                    key: None,
                    time_unix_nano: i,
                    record: serde_json::json!({"line": format!("user 7 opened chart {i}")}),
                });
                RawMessage {
                    partition: 0,
                    offset: i as i64,
                    key: Some(s.key),
                    payload: Some(s.payload),
                }
            })
            .collect()
    }

    fn renumber(msgs: &mut [RawMessage]) {
        for (i, m) in msgs.iter_mut().enumerate() {
            m.offset = i as i64;
        }
    }

    fn kinds(r: &Report) -> Vec<(Option<u64>, &'static str)> {
        r.problems
            .iter()
            .map(|p| (p.seq, p.kind.as_str()))
            .collect()
    }

    #[test]
    fn clean_chain_is_clean() {
        let mut s = Sealer::new(None, "i1", HashMap::new());
        let mut msgs = stream_msgs(&mut s, "a", 10);
        let mut b = stream_msgs(&mut s, "b", 5);
        for m in &mut b {
            m.partition = 1;
        }
        msgs.extend(b);
        let r = verify(&msgs, None);
        assert!(r.is_clean(), "{:?}", r.problems);
        assert_eq!((r.events, r.streams), (15, 2));
        assert_eq!(r.summary(), "verified 15 events in 2 streams: 0 problems");
    }

    #[test]
    fn instances_have_separate_chains() {
        // Two sidecars, same stream name, same topic.
        let mut msgs = stream_msgs(
            &mut Sealer::new(None, "pod-a", HashMap::new()),
            "/var/log/app.log",
            5,
        );
        let mut b = stream_msgs(
            &mut Sealer::new(None, "pod-b", HashMap::new()),
            "/var/log/app.log",
            5,
        );
        for m in &mut b {
            m.offset += 5;
        }
        msgs.extend(b);
        let r = verify(&msgs, None);
        assert!(r.is_clean(), "{:?}", r.problems);
        assert_eq!(r.streams, 2);
        msgs.remove(7);
        let r = verify(&msgs, None);
        assert_eq!(kinds(&r), [(Some(2), "gap")]);
        assert_eq!(r.problems[0].instance, "pod-b");
    }

    #[test]
    fn gap() {
        let mut msgs = stream_msgs(&mut Sealer::new(None, "i1", HashMap::new()), "a", 10);
        msgs.remove(4);
        msgs.remove(4);
        renumber(&mut msgs);
        let r = verify(&msgs, None);
        assert_eq!(kinds(&r), [(Some(4), "gap")]);
        assert!(r.problems[0].detail.contains("missing seq 4..5 (2 events)"));
        // At the start.
        let mut msgs = stream_msgs(&mut Sealer::new(None, "i1", HashMap::new()), "a", 5);
        msgs.remove(0);
        assert_eq!(kinds(&verify(&msgs, None)), [(Some(0), "gap")]);
    }

    #[test]
    fn reorder() {
        let mut msgs = stream_msgs(&mut Sealer::new(None, "i1", HashMap::new()), "a", 10);
        msgs.swap(3, 6);
        renumber(&mut msgs);
        let r = verify(&msgs, None);
        // 6 moved before 4 and 5; 3 comes after 5: the later, lower ones.
        assert_eq!(
            kinds(&r),
            [
                (Some(3), "reorder"),
                (Some(4), "reorder"),
                (Some(5), "reorder")
            ]
        );
        let mut msgs = stream_msgs(&mut Sealer::new(None, "i1", HashMap::new()), "a", 10);
        msgs.swap(3, 4);
        renumber(&mut msgs);
        assert_eq!(kinds(&verify(&msgs, None)), [(Some(3), "reorder")]);
        // Different partitions are not ordered relative to each other.
        let mut msgs = stream_msgs(&mut Sealer::new(None, "i1", HashMap::new()), "a", 10);
        for m in msgs.iter_mut().filter(|m| m.offset % 2 == 0) {
            m.partition = 1;
        }
        msgs.reverse();
        assert!(verify(&msgs, None).is_clean());
    }

    #[test]
    fn duplicate_and_conflict() {
        let mut msgs = stream_msgs(&mut Sealer::new(None, "i1", HashMap::new()), "a", 10);
        let copy = msgs[5].clone();
        msgs.push(copy);
        renumber(&mut msgs);
        let r = verify(&msgs, None);
        assert_eq!(kinds(&r), [(Some(5), "duplicate")]);
        // Another event claiming seq 5 (a forked chain).
        let mut msgs = stream_msgs(&mut Sealer::new(None, "i1", HashMap::new()), "a", 10);
        let mut sealer = Sealer::new(None, "i1", HashMap::new());
        let _ = stream_msgs(&mut sealer, "a", 5);
        // Seq 5 again, different content, the right prev_hash.
        let alt = sealer.seal(&AuditEvent {
            source: "app".into(),
            stream: "a".into(),
            key: None,
            time_unix_nano: 5,
            record: serde_json::json!({"line": "something else"}),
        });
        msgs.push(RawMessage {
            partition: 0,
            offset: 0,
            key: None,
            payload: Some(alt.payload),
        });
        renumber(&mut msgs);
        let r = verify(&msgs, None);
        assert_eq!(kinds(&r), [(Some(5), "conflict")]);
    }

    #[test]
    fn altered() {
        let mut msgs = stream_msgs(&mut Sealer::new(None, "i1", HashMap::new()), "a", 10);
        let p = String::from_utf8(msgs[7].payload.take().unwrap()).unwrap();
        msgs[7].payload = Some(p.replace("chart 7", "chart 8").into_bytes());
        let r = verify(&msgs, None);
        assert_eq!(kinds(&r), [(Some(7), "altered")]);
        assert!(!r.problems[0].detail.contains("chart"));
        // Not a payload at all.
        msgs[2].payload = Some(b"{\"hello\":1}".to_vec());
        let r = verify(&msgs, None);
        assert!(kinds(&r).contains(&(None, "altered")));
        assert!(kinds(&r).contains(&(Some(2), "gap")));
    }

    #[test]
    fn broken_chain_when_hash_recomputed() {
        let mut msgs = stream_msgs(&mut Sealer::new(None, "i1", HashMap::new()), "a", 10);
        // Alter seq 4 and recompute its hash (possible without a chain key).
        let v: serde_json::Value =
            serde_json::from_slice(msgs[4].payload.as_ref().unwrap()).unwrap();
        let mut resealer = Sealer::new(
            None,
            "i1",
            [(
                "a".to_string(),
                crate::sinks::audit::payload::ChainHead {
                    seq: 3,
                    hash: crate::sinks::audit::payload::parse_hex(
                        v["prev_hash"].as_str().unwrap().as_bytes(),
                    )
                    .unwrap(),
                },
            )]
            .into(),
        );
        let forged = resealer.seal(&AuditEvent {
            source: "app".into(),
            stream: "a".into(),
            key: None,
            time_unix_nano: 4,
            record: serde_json::json!({"line": "nothing to see"}),
        });
        msgs[4].payload = Some(forged.payload);
        let r = verify(&msgs, None);
        assert_eq!(kinds(&r), [(Some(5), "broken_chain")]);
        // With a keyed chain, the forger without the key is caught at once.
        let key = ChainKey::from_bytes(vec![3; 32]).unwrap();
        let mut keyed = stream_msgs(
            &mut Sealer::new(Some(key.clone()), "i1", HashMap::new()),
            "a",
            3,
        );
        let forged = Sealer::new(None, "i1", HashMap::new()).seal(&AuditEvent {
            source: "app".into(),
            stream: "a".into(),
            key: None,
            time_unix_nano: 0,
            record: serde_json::json!({"line": "x"}),
        });
        keyed[0].payload = Some(forged.payload);
        let r = verify(&keyed, Some(&key));
        assert!(
            kinds(&r).contains(&(Some(0), "altered")),
            "{:?}",
            r.problems
        );
        let r = verify(&keyed[1..], None);
        assert_eq!(r.unchecked_hashes, 2);
    }

    #[test]
    fn problem_lines() {
        let p = Problem {
            stream: "/var/log/my app.log".into(),
            instance: "i1".into(),
            seq: Some(3),
            kind: ProblemKind::BrokenChain,
            detail: "x".into(),
        };
        assert_eq!(
            p.to_string(),
            "stream=\"/var/log/my app.log\" instance=i1 seq=3 problem=broken_chain detail=x"
        );
    }
}
