//! Before the spool is replayed, the audit topic is read back to find the
//! spooled events that Kafka already holds, so that the replay skips them
//! and an outage leaves no duplicates (issue 15, item 7).
//!
//! Kafka can hold a spooled event when librdkafka stored it after scrubs
//! gave up waiting (`ack_timeout`, or a delivery timeout whose request the
//! broker still processed: a frozen broker reads its socket when it
//! resumes), or when a replay was cut short (crash, shutdown) after Kafka
//! took a window but before the replay cursor was written.
//!
//! What is read: every partition of the topic from the first message stamped
//! at or after the spool's `since` time (see `spool::read_since`) to its end
//! offset, as of the start of the read. A spool from a version that did not
//! write `since` reads the last [`FALLBACK_TAIL`] messages of each
//! partition. The read is bounded ([`MAX_MESSAGES`], [`MAX_TIME`]); past
//! either bound, what was found so far is skipped and the rest is replayed
//! (at least once: `audit verify` names any identical re-send, exit 0).
//!
//! A message counts as held when its payload names this instance, a stream
//! with events in the spool, a sequence number at or after that stream's
//! first one in the spool, and the same hash as the spooled frame.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;

use super::kafka::{base_config, partition_bounds, AuditClientContext};
use super::payload::stated_hash;
use super::AuditConfig;

/// Messages read per partition when the spool has no `since` time.
pub(crate) const FALLBACK_TAIL: i64 = 100_000;
/// The most messages one read-back reads.
pub(crate) const MAX_MESSAGES: u64 = 2_000_000;
/// The longest one read-back takes.
pub(crate) const MAX_TIME: Duration = Duration::from_secs(60);

/// The (stream, seq) pairs Kafka holds, with their hashes.
pub(crate) type Held = HashMap<(String, u64), [u8; 32]>;

/// What a read-back found.
#[derive(Debug, Default)]
pub(crate) struct ReadBack {
    /// Spool-range events of this instance already in the topic.
    pub held: Held,
    /// Messages read.
    pub read: u64,
    /// A bound cut the read short (some held events may be missed).
    pub truncated: bool,
}

/// The identifying members of a payload; the rest is skipped unparsed.
#[derive(Deserialize)]
struct Ident<'a> {
    #[serde(borrow)]
    instance: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    stream: std::borrow::Cow<'a, str>,
    seq: u64,
}

/// Reads the topic back (see the module documentation). `first_seq` maps
/// each stream with events in the spool to its first spooled sequence
/// number. Blocking.
pub(crate) fn read_back(
    cfg: &AuditConfig,
    instance: &str,
    since_ms: Option<i64>,
    first_seq: &HashMap<String, u64>,
) -> Result<ReadBack, String> {
    let mut out = ReadBack::default();
    if first_seq.is_empty() {
        return Ok(out);
    }
    let mut c = base_config(&cfg.brokers, &cfg.client_id, cfg.security.as_ref())?;
    c.set("group.id", format!("scrubs-audit-readback-{instance}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer<AuditClientContext> = c
        .create_with_context(AuditClientContext::default())
        .map_err(|e| format!("cannot create Kafka consumer: {e}"))?;
    let timeout = Duration::from_secs(5);
    let bounds: HashMap<i32, (i64, i64)> = partition_bounds(&consumer, &cfg.topic, timeout)?
        .into_iter()
        .map(|(p, low, high)| (p, (low, high)))
        .collect();
    let mut starts: HashMap<i32, i64> = HashMap::new();
    match since_ms {
        Some(ms) => {
            let mut q = TopicPartitionList::new();
            for p in bounds.keys() {
                q.add_partition_offset(&cfg.topic, *p, Offset::Offset(ms))
                    .map_err(|e| format!("partition {p}: {e}"))?;
            }
            let found = consumer
                .offsets_for_times(q, timeout)
                .map_err(|e| format!("offsets for time in {}: {e}", cfg.topic))?;
            for el in found.elements() {
                // No message at or after the time: nothing to read there.
                if let Offset::Offset(o) = el.offset() {
                    starts.insert(el.partition(), o);
                }
            }
        }
        None => {
            for (p, (low, high)) in &bounds {
                starts.insert(*p, (*high - FALLBACK_TAIL).max(*low));
            }
        }
    }
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for (p, start) in &starts {
        if let Some((low, high)) = bounds.get(p) {
            let start = (*start).max(*low);
            if start < *high {
                tpl.add_partition_offset(&cfg.topic, *p, Offset::Offset(start))
                    .map_err(|e| format!("partition {p}: {e}"))?;
                ends.insert(*p, *high);
            }
        }
    }
    if ends.is_empty() {
        return Ok(out);
    }
    consumer
        .assign(&tpl)
        .map_err(|e| format!("assigning partitions: {e}"))?;
    let began = Instant::now();
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        if out.read >= MAX_MESSAGES || began.elapsed() >= MAX_TIME {
            out.truncated = true;
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                let p = m.partition();
                let Some(end) = ends.get(&p).copied() else {
                    continue;
                };
                if m.offset() < end {
                    out.read += 1;
                    if let Some(payload) = m.payload() {
                        note(&mut out.held, instance, first_seq, payload);
                    }
                }
                if m.offset() + 1 >= end {
                    ends.remove(&p);
                }
            }
            Some(Err(e)) => return Err(format!("reading topic {}: {e}", cfg.topic)),
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
                if !ends.is_empty() && last_progress.elapsed() > timeout {
                    return Err(format!(
                        "no progress reading topic {} back for {timeout:?}",
                        cfg.topic
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// Keeps one message when it is a spool-range event of this instance.
/// Messages that are not scrubs payloads are ignored (verify names them).
pub(crate) fn note(
    held: &mut Held,
    instance: &str,
    first_seq: &HashMap<String, u64>,
    payload: &[u8],
) {
    let Ok(id) = serde_json::from_slice::<Ident<'_>>(payload) else {
        return;
    };
    if id.instance != instance {
        return;
    }
    let Some(first) = first_seq.get(id.stream.as_ref()) else {
        return;
    };
    if id.seq < *first {
        return;
    }
    if let Some(h) = stated_hash(payload) {
        held.insert((id.stream.into_owned(), id.seq), h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::AuditEvent;
    use crate::sinks::audit::payload::Sealer;

    fn ev(stream: &str, n: u64) -> AuditEvent {
        AuditEvent {
            source: "app".into(),
            stream: stream.into(),
            key: None,
            time_unix_nano: n,
            record: serde_json::json!({"line": format!("opened chart {n}")}),
        }
    }

    #[test]
    fn notes_only_this_instances_spool_range() {
        let mut mine = Sealer::new(None, "me", HashMap::new());
        let mut other = Sealer::new(None, "other", HashMap::new());
        let a: Vec<_> = (0..5).map(|n| mine.seal(&ev("a", n))).collect();
        let b = mine.seal(&ev("b", 0));
        let o = other.seal(&ev("a", 3));
        let first: HashMap<String, u64> = [("a".to_string(), 3)].into();
        let mut held = Held::new();
        for e in a.iter().chain([&b, &o]) {
            note(&mut held, "me", &first, &e.payload);
        }
        note(&mut held, "me", &first, b"not json");
        note(
            &mut held,
            "me",
            &first,
            br#"{"instance":"me","stream":"a","seq":"x"}"#,
        );
        let mut keys: Vec<_> = held.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, [("a".to_string(), 3), ("a".to_string(), 4)]);
        assert_eq!(held[&("a".to_string(), 4)], a[4].hash);
    }
}
