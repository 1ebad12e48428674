//! The audit sink against a real Kafka broker.
//!
//! Needs a broker: `deploy/dev/kafka.sh start` (or set
//! `SCRUBS_KAFKA_BOOTSTRAP`). Without one every test fails, never skips.
//! Each test creates its own topics, so they run in parallel.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use scrubs::metrics::Metrics;
use scrubs::pipeline::AuditEvent;
use scrubs::sinks::audit::payload::{check_payload, ChainHead, Sealer};
use scrubs::sinks::audit::verify::read_topic;
use scrubs::sinks::audit::{
    check_topic, verify, verify_topic, AuditConfig, AuditError, AuditSink, ProblemKind, RawMessage,
    TopicReadOptions,
};
use scrubs::topology::Context;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

#[path = "support/bootstrap.rs"]
mod bootstrap;
use bootstrap::bootstrap;

/// Fails (never skips) when no broker answers.
async fn require_broker() -> String {
    init_logs();
    let b = bootstrap();
    let ok = matches!(
        tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(&b)).await,
        Ok(Ok(_))
    );
    assert!(
        ok,
        "no Kafka broker at {b}: run `deploy/dev/kafka.sh start` first (or set SCRUBS_KAFKA_BOOTSTRAP)"
    );
    b
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("scrubs-audit-test-{name}-{}-{nanos}", std::process::id())
}

async fn create_topic(brokers: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let topic =
        NewTopic::new(name, partitions, TopicReplication::Fixed(1)).set("min.insync.replicas", "1");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let res = admin
        .create_topics([&topic], &opts)
        .await
        .expect("create_topics");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e:?}"));
    }
}

fn event(stream: &str, n: u64, key: Option<String>) -> AuditEvent {
    AuditEvent {
        source: "app".into(),
        stream: stream.into(),
        key,
        time_unix_nano: 1_700_000_000_000_000_000 + n,
        record: serde_json::json!({"line": format!("PHI-{stream}-{n} Dr. Smith opened chart of patient"), "n": n}),
    }
}

/// The dev broker, a new topic of `partitions` partitions named after
/// `name` on it, and a directory for the sink's spool.
async fn fresh_topic(name: &str, partitions: i32) -> (String, String, tempfile::TempDir) {
    let brokers = require_broker().await;
    let topic = unique(name);
    create_topic(&brokers, &topic, partitions).await;
    (brokers, topic, tempfile::tempdir().unwrap())
}

/// Sends events `seqs` of `stream` (no key) in one batch.
async fn send_events(sink: &AuditSink, stream: &str, seqs: std::ops::Range<u64>) {
    sink.send_batch(seqs.map(|n| event(stream, n, None)).collect())
        .await
        .unwrap();
}

fn config(brokers: &str, topic: &str, dir: &std::path::Path) -> AuditConfig {
    let mut c = AuditConfig::new(brokers, topic, dir);
    c.delivery_timeout = Duration::from_secs(5);
    c.check_topic_config = false;
    c
}

async fn read_all(brokers: &str, topic: &str) -> Vec<RawMessage> {
    let opts = opts(brokers, topic);
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        read_topic(&opts, |partition, offset, key, payload| {
            out.push(RawMessage {
                partition,
                offset,
                key: key.map(<[u8]>::to_vec),
                payload: payload.map(<[u8]>::to_vec),
            })
        })
        .expect("read topic");
        out
    })
    .await
    .unwrap()
}

fn opts(brokers: &str, topic: &str) -> TopicReadOptions {
    TopicReadOptions {
        brokers: brokers.into(),
        topic: topic.into(),
        properties: Vec::new(),
        idle_timeout: Duration::from_secs(10),
    }
}

/// Per stream: the seqs in (partition, offset) order, and per partition.
fn seqs_by_stream(msgs: &[RawMessage]) -> BTreeMap<String, Vec<(i32, u64)>> {
    let mut sorted: Vec<_> = msgs.iter().collect();
    sorted.sort_by_key(|m| (m.partition, m.offset));
    let mut out: BTreeMap<String, Vec<(i32, u64)>> = BTreeMap::new();
    for m in sorted {
        let c = check_payload(m.payload.as_ref().unwrap(), None).expect("payload");
        assert_eq!(c.hash_ok, Some(true));
        out.entry(c.stream).or_default().push((m.partition, c.seq));
    }
    out
}

/// Every seq 0..n exactly once, increasing within each partition.
fn assert_complete_in_order(stream: &str, seqs: &[(i32, u64)], n: u64) {
    let mut all: Vec<u64> = seqs.iter().map(|(_, s)| *s).collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..n).collect::<Vec<_>>(),
        "stream {stream}: not every seq exactly once"
    );
    let mut last: HashMap<i32, u64> = HashMap::new();
    for (p, s) in seqs {
        if let Some(prev) = last.insert(*p, *s) {
            assert!(
                prev < *s,
                "stream {stream}: seq {s} after {prev} in partition {p}"
            );
        }
    }
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// scrubs' own logs, captured to check they never carry record content, and
// shown only when a test fails: the expected warnings of the outage tests
// (broker unreachable, spooling) would otherwise fill the terminal. They are
// kept in memory rather than printed through the test harness's capture,
// which only sees output from the test's own threads, not librdkafka's.
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("scrubs=debug,info"))
            .with_ansi(false)
            .with_writer(move || LogBuf(writer.clone()))
            .try_init();
        // A failing test (a panic) prints the logs so far after its own
        // message; the tests of this binary run in parallel, so they are
        // those of every test, in time order.
        let logs = buf.clone();
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            // try_lock: a panic while the buffer is held must not deadlock.
            if let Ok(logs) = logs.try_lock() {
                eprintln!(
                    "---- scrubs' logs so far (all tests of this binary) ----\n{}---- end of scrubs' logs ----",
                    String::from_utf8_lossy(&logs)
                );
            }
        }));
        buf
    });
}

fn assert_logs_clean() {
    let logs = String::from_utf8_lossy(&LOGS.get().unwrap().lock().unwrap()).to_string();
    assert!(!logs.contains("PHI-"), "record content in scrubs' logs");
    assert!(!logs.contains("patient-"), "a message key in scrubs' logs");
}

// ---------------------------------------------------------------------------
// (a) delivery: 1,000 events over 3 streams
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_every_event_once_in_order_with_a_valid_chain() {
    let (brokers, topic, dir) = fresh_topic("deliver", 3).await;
    let metrics = Metrics::new();
    let sink = config(&brokers, &topic, dir.path())
        .build(&Context::new("audit", metrics.clone()))
        .await
        .unwrap();
    sink.healthcheck().await.expect("healthcheck");

    let streams = ["/var/log/a.log", "/var/log/b.log", "otlp"];
    let mut batch = Vec::new();
    let mut sent = 0u64;
    let t0 = Instant::now();
    for n in 0..1000u64 {
        // Per-subject keys spread each stream over the 3 partitions.
        batch.push(event(
            streams[(n % 3) as usize],
            n,
            Some(format!("patient-{}", n % 11)),
        ));
        if batch.len() == 100 {
            sink.send_batch(std::mem::take(&mut batch)).await.unwrap();
            sent += 100;
        }
    }
    assert_eq!(sent, 1000);
    eprintln!("1000 events delivered in {:?}", t0.elapsed());
    assert_eq!(
        metrics.value("scrubs_audit_events_total", &[("result", "delivered")]),
        Some(1000)
    );
    assert_eq!(
        metrics.value("scrubs_audit_delivery_latency_seconds_count", &[]),
        Some(1000)
    );
    assert!(!sink.spooling());
    sink.clone().shutdown(Duration::from_secs(5)).await;
    assert!(sink.send(event("x", 0, None)).await == Err(AuditError::Closed));

    let msgs = read_all(&brokers, &topic).await;
    assert_eq!(msgs.len(), 1000);
    let partitions: std::collections::HashSet<i32> = msgs.iter().map(|m| m.partition).collect();
    assert_eq!(partitions.len(), 3, "keys should spread over partitions");
    let by = seqs_by_stream(&msgs);
    assert_eq!(by.len(), 3);
    assert_complete_in_order(streams[0], &by[streams[0]], 334);
    assert_complete_in_order(streams[1], &by[streams[1]], 333);
    assert_complete_in_order(streams[2], &by[streams[2]], 333);
    // The message key is the event key.
    for m in &msgs {
        let v: serde_json::Value = serde_json::from_slice(m.payload.as_ref().unwrap()).unwrap();
        let n = v["record"]["n"].as_u64().unwrap();
        assert_eq!(
            m.key.as_deref(),
            Some(format!("patient-{}", n % 11).as_bytes())
        );
    }
    let report = verify(&msgs, None);
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(
        report.summary(),
        "verified 1000 events in 3 streams: 0 problems"
    );
    // Same through the Kafka reader.
    let o = opts(&brokers, &topic);
    let r2 = tokio::task::spawn_blocking(move || verify_topic(&o, None))
        .await
        .unwrap()
        .unwrap();
    assert!(r2.is_clean() && r2.events == 1000);

    // The start-up topic check names what is weaker than recommended.
    let warnings = check_topic(
        &config(&brokers, &topic, dir.path()),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let names: Vec<&str> = warnings.iter().map(|w| w.setting.as_str()).collect();
    for s in ["retention.ms", "min.insync.replicas", "replication.factor"] {
        assert!(names.contains(&s), "{s} not named in {names:?}");
    }
    assert_logs_clean();
}

// ---------------------------------------------------------------------------
// (b) tampering is detected and named
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_deleted_altered_reordered_duplicated_and_forged_events() {
    let brokers = require_broker().await;
    let source = unique("tamper-src");
    let target = unique("tamper");
    create_topic(&brokers, &source, 1).await;
    create_topic(&brokers, &target, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = config(&brokers, &source, dir.path())
        .build(&Context::new("audit", Metrics::new()))
        .await
        .unwrap();
    send_events(&sink, "s", 0..60).await;
    sink.shutdown(Duration::from_secs(5)).await;
    let mut msgs = read_all(&brokers, &source).await;
    msgs.sort_by_key(|m| m.offset);
    assert_eq!(msgs.len(), 60);
    assert!(verify(&msgs, None).is_clean());

    let payloads: Vec<Vec<u8>> = msgs.iter().map(|m| m.payload.clone().unwrap()).collect();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for (seq, p) in payloads.iter().enumerate() {
        match seq {
            10 => {} // deleted
            20 => {
                // altered record, hash left as it was
                let s = String::from_utf8(p.clone())
                    .unwrap()
                    .replace("Dr. Smith", "Dr. Jones");
                out.push(s.into_bytes());
            }
            30 => out.push(payloads[31].clone()), // 30 and 31 swapped
            31 => out.push(payloads[30].clone()),
            40 => {
                out.push(p.clone());
                out.push(p.clone()); // duplicated
            }
            50 => {
                // altered with its hash recomputed (possible without a chain key)
                let prev = check_payload(&payloads[49], None).unwrap();
                let head = ChainHead {
                    seq: 49,
                    hash: prev.hash,
                };
                let mut forger =
                    Sealer::new(None, &prev.instance, [("s".to_string(), head)].into());
                let mut ev = event("s", 50, None);
                ev.record = serde_json::json!({"line": "nothing happened"});
                out.push(forger.seal(&ev).payload);
            }
            _ => out.push(p.clone()),
        }
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .create()
        .unwrap();
    for p in &out {
        producer
            .send(
                FutureRecord::<[u8], _>::to(&target).payload(p),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    let o = opts(&brokers, &target);
    let report = tokio::task::spawn_blocking(move || verify_topic(&o, None))
        .await
        .unwrap()
        .unwrap();
    let found: Vec<(Option<u64>, ProblemKind)> =
        report.problems.iter().map(|p| (p.seq, p.kind)).collect();
    for p in &report.problems {
        eprintln!("{p}");
    }
    assert_eq!(
        found,
        [
            (Some(10), ProblemKind::Gap),
            (Some(20), ProblemKind::Altered),
            (Some(30), ProblemKind::Reorder),
            (Some(40), ProblemKind::Duplicate),
            (Some(51), ProblemKind::BrokenChain),
        ]
    );
    assert_eq!(report.events, 60);
    assert_eq!(
        report.summary(),
        "verified 60 events in 1 streams: 5 problems (1 identical re-send(s), 4 integrity problem(s): 1 gap, 1 reorder, 1 altered, 1 broken_chain)"
    );
    let lines: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert!(lines[0].starts_with("stream=s instance="));
    assert!(lines[0].contains(" seq=10 problem=gap detail=missing seq 10 (1 event)"));
    assert!(lines
        .iter()
        .all(|l| !l.contains("Smith") && !l.contains("PHI-")));
    assert_logs_clean();
}

// ---------------------------------------------------------------------------
// (c) outage: spool, backpressure, replay in order
// ---------------------------------------------------------------------------

/// A TCP forwarder that can be started late on a reserved port: the
/// "broker" the sink bootstraps from is down until it starts.
async fn forward(port: u16, to: String) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let to = to.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_spools_applies_backpressure_and_replays_in_order() {
    let (brokers, topic, dir) = fresh_topic("outage", 1).await;
    let port = closed_port();
    let mut cfg = config(&format!("127.0.0.1:{port}"), &topic, dir.path());
    cfg.delivery_timeout = Duration::from_secs(1);
    cfg.spool_max_bytes = 1 << 20;
    let metrics = Metrics::new();
    let sink = cfg
        .build(&Context::new("audit", metrics.clone()))
        .await
        .unwrap();

    // Kafka unreachable: events resolve once fsynced to the spool.
    let big = |stream: &str, n: u64| {
        let mut e = event(stream, n, Some(format!("patient-{n}")));
        e.record["pad"] = serde_json::Value::String("x".repeat(2000));
        e
    };
    let t0 = Instant::now();
    sink.send(big("a", 0)).await.expect("spooled");
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "first event waits for the delivery timeout"
    );
    assert!(sink.spooling());
    let mut accepted = [1u64, 0]; // per stream a, b
    let mut refused = false;
    let mut n = 1;
    while n < 2000 {
        let evs: Vec<_> = (n..n + 20)
            .map(|i| if i % 2 == 0 { big("a", i) } else { big("b", i) })
            .collect();
        match sink.send_batch(evs).await {
            Ok(()) => {
                accepted[0] += 10;
                accepted[1] += 10;
            }
            Err(AuditError::Backpressure) => {
                refused = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
        n += 20;
    }
    assert!(refused, "the 1 MiB spool never filled");
    assert!(sink.backpressure());
    assert_eq!(metrics.value("scrubs_audit_spool_full", &[]), Some(1));
    let spooled = metrics
        .value("scrubs_audit_events_total", &[("result", "spooled")])
        .unwrap();
    assert_eq!(spooled, accepted[0] + accepted[1]);
    assert!(metrics.value("scrubs_audit_spool_bytes", &[]).unwrap() > 900_000);
    assert_eq!(
        metrics.value("scrubs_audit_spool_limit_bytes", &[]),
        Some(1 << 20)
    );
    assert_eq!(
        sink.send(big("a", 9999)).await,
        Err(AuditError::Backpressure)
    );

    // The broker comes back.
    let fwd = forward(port, brokers.clone()).await;
    let s = sink.clone();
    wait_for(
        "the spool to be replayed",
        Duration::from_secs(30),
        move || !s.spooling(),
    )
    .await;
    assert!(!sink.backpressure());
    assert_eq!(metrics.value("scrubs_audit_spool_full", &[]), Some(0));
    assert_eq!(metrics.value("scrubs_audit_spool_bytes", &[]), Some(0));
    assert_eq!(
        metrics.value("scrubs_audit_replayed_total", &[]),
        Some(spooled)
    );
    // Direct delivery again, continuing both chains.
    sink.send_batch(
        (0..10)
            .map(|i| event(if i % 2 == 0 { "a" } else { "b" }, 5000 + i, None))
            .collect(),
    )
    .await
    .unwrap();
    assert_eq!(
        metrics.value("scrubs_audit_events_total", &[("result", "delivered")]),
        Some(10)
    );
    sink.shutdown(Duration::from_secs(5)).await;

    let msgs = read_all(&brokers, &topic).await;
    let by = seqs_by_stream(&msgs);
    assert_complete_in_order("a", &by["a"], accepted[0] + 5);
    assert_complete_in_order("b", &by["b"], accepted[1] + 5);
    let report = verify(&msgs, None);
    assert!(report.is_clean(), "{:?}", report.problems);
    fwd.abort();
    assert_logs_clean();
}

/// Spools `n` events of stream "a" while the sink's broker port is closed,
/// and returns them spooled (the sink is in spool mode).
async fn spool_while_down(sink: &AuditSink, metrics: &Metrics, n: u64) {
    sink.send_batch((0..n).map(|i| event("a", i, None)).collect())
        .await
        .expect("spooled");
    assert!(sink.spooling());
    assert_eq!(
        metrics.value("scrubs_audit_events_total", &[("result", "spooled")]),
        Some(n)
    );
}

fn spool_file_len(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("audit.spool"))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Issue 11, item 2: a pod's spool lives on an `emptyDir` and is gone
/// when the pod is deleted, so a shutdown whose Kafka answers again must
/// deliver what the spool holds before it returns, not leave it for a
/// next start that never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_spool_to_kafka_when_the_broker_answers() {
    let (brokers, topic, dir) = fresh_topic("shutdown-drain", 1).await;
    let port = closed_port();
    let mut cfg = config(&format!("127.0.0.1:{port}"), &topic, dir.path());
    cfg.delivery_timeout = Duration::from_secs(1);
    let metrics = Metrics::new();
    let sink = cfg
        .build(&Context::new("audit", metrics.clone()))
        .await
        .unwrap();
    spool_while_down(&sink, &metrics, 300).await;
    assert!(spool_file_len(dir.path()) > 0);

    // The broker comes back, and the pod is told to stop straight away:
    // the replay is still in its backoff, nothing replayed yet.
    let fwd = forward(port, brokers.clone()).await;
    let t0 = Instant::now();
    sink.shutdown(Duration::from_secs(25)).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(25), "shutdown took {took:?}");

    assert_eq!(
        metrics.value("scrubs_audit_replayed_total", &[]),
        Some(300),
        "shutdown returned before the spool was replayed"
    );
    assert_eq!(spool_file_len(dir.path()), 0, "the spool was not emptied");
    assert_eq!(metrics.value("scrubs_audit_spooling", &[]), Some(0));
    let msgs = read_all(&brokers, &topic).await;
    let by = seqs_by_stream(&msgs);
    assert_complete_in_order("a", &by["a"], 300);
    let report = verify(&msgs, None);
    assert!(report.is_clean(), "{:?}", report.problems);
    fwd.abort();
    assert_logs_clean();
}

/// The other half of issue 11, item 2: with Kafka down, waiting for the
/// spool to drain would only hold the pod until its deadline; shutdown
/// returns at once and the events stay spooled for the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_kafka_down_keeps_the_spool_and_returns_quickly() {
    let (_brokers, topic, dir) = fresh_topic("shutdown-down", 1).await;
    let port = closed_port();
    let mut cfg = config(&format!("127.0.0.1:{port}"), &topic, dir.path());
    cfg.delivery_timeout = Duration::from_secs(1);
    let metrics = Metrics::new();
    let sink = cfg
        .build(&Context::new("audit", metrics.clone()))
        .await
        .unwrap();
    spool_while_down(&sink, &metrics, 50).await;
    let spooled = spool_file_len(dir.path());
    assert!(spooled > 0);

    let t0 = Instant::now();
    sink.shutdown(Duration::from_secs(20)).await;
    let took = t0.elapsed();
    // A fresh probe (1 s timeout) and the producer's flush, not the 20 s
    // deadline.
    assert!(
        took < Duration::from_secs(5),
        "shutdown with Kafka down took {took:?}"
    );
    assert_eq!(spool_file_len(dir.path()), spooled, "the spool changed");
    assert_eq!(metrics.value("scrubs_audit_replayed_total", &[]), Some(0));
    assert_logs_clean();
}

/// The spool encrypted at rest (`spool_encryption_key_file`): events
/// spooled while Kafka is down are unreadable on disk, survive a restart,
/// are refused without their key, and are all replayed, in order and with
/// valid chains, once Kafka is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_spool_holds_no_plaintext_and_replays_everything_after_an_outage() {
    let (brokers, topic, dir) = fresh_topic("encrypted-spool", 1).await;
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("spool.key");
    std::fs::write(&key, b"0123456789abcdef0123456789abcdef-spool\n").unwrap();
    let port = closed_port();
    let mut cfg = config(&format!("127.0.0.1:{port}"), &topic, dir.path());
    cfg.delivery_timeout = Duration::from_secs(1);
    cfg.spool_encryption_key_file = Some(key);
    let metrics = Metrics::new();
    let sink = cfg
        .build(&Context::new("audit", metrics.clone()))
        .await
        .unwrap();
    for batch in 0..5u64 {
        let evs = (batch * 20..batch * 20 + 20)
            .map(|n| {
                let stream = if n % 2 == 0 { "a" } else { "b" };
                event(stream, n / 2, Some(format!("patient-{n}")))
            })
            .collect();
        sink.send_batch(evs).await.expect("spooled");
    }
    assert_eq!(
        metrics.value("scrubs_audit_events_total", &[("result", "spooled")]),
        Some(100)
    );
    sink.shutdown(Duration::from_secs(2)).await;

    // At rest: frames, no record, stream or key in the clear.
    let raw = std::fs::read(dir.path().join("audit.spool")).unwrap();
    assert!(
        raw.len() > 100 * 150,
        "100 events spooled: {} bytes",
        raw.len()
    );
    let readable = |needle: &str| raw.windows(needle.len()).any(|w| w == needle.as_bytes());
    for needle in [
        "PHI-a-",
        "PHI-b-",
        "Dr. Smith",
        "patient-",
        "\"line\"",
        "prev_hash",
    ] {
        assert!(!readable(needle), "{needle} readable in the spool file");
    }

    // Without the key the sink does not start, and says which key it needs.
    let mut no_key = cfg.clone();
    no_key.spool_encryption_key_file = None;
    let err = match no_key.build(&Context::new("audit", Metrics::new())).await {
        Ok(_) => panic!("started without the spool's key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("key id"), "{err}");

    // Kafka is back: a restarted sink replays everything.
    let fwd = forward(port, brokers.clone()).await;
    let metrics = Metrics::new();
    let sink = cfg
        .build(&Context::new("audit", metrics.clone()))
        .await
        .unwrap();
    let s = sink.clone();
    wait_for(
        "the encrypted spool to be replayed",
        Duration::from_secs(30),
        move || !s.spooling(),
    )
    .await;
    assert_eq!(metrics.value("scrubs_audit_replayed_total", &[]), Some(100));
    assert_eq!(metrics.value("scrubs_audit_spool_bytes", &[]), Some(0));
    sink.shutdown(Duration::from_secs(5)).await;

    let msgs = read_all(&brokers, &topic).await;
    let by = seqs_by_stream(&msgs);
    assert_complete_in_order("a", &by["a"], 50);
    assert_complete_in_order("b", &by["b"], 50);
    let report = verify(&msgs, None);
    assert!(report.is_clean(), "{:?}", report.problems);
    // The topic (inside the boundary) gets the records as they were.
    let lines: usize = msgs
        .iter()
        .filter(|m| {
            let p = m.payload.as_ref().unwrap();
            p.windows(9).any(|w| w == b"Dr. Smith")
        })
        .count();
    assert_eq!(lines, 100);
    fwd.abort();
    assert_logs_clean();
}

/// The outage scenario above with the spool encrypted: the limit is reached
/// (frames are larger by key id, nonce and tag), backpressure applies, and
/// the replay task reads the encrypted frames back while the process runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_spool_applies_backpressure_and_replays_in_order() {
    let (brokers, topic, dir) = fresh_topic("encrypted-outage", 1).await;
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("spool.key");
    std::fs::write(&key, [0x42u8; 32]).unwrap();
    let port = closed_port();
    let mut cfg = config(&format!("127.0.0.1:{port}"), &topic, dir.path());
    cfg.delivery_timeout = Duration::from_secs(1);
    cfg.spool_max_bytes = 1 << 20;
    cfg.spool_encryption_key_file = Some(key);
    let metrics = Metrics::new();
    let sink = cfg
        .build(&Context::new("audit", metrics.clone()))
        .await
        .unwrap();
    let big = |n: u64| {
        let stream = if n.is_multiple_of(2) { "a" } else { "b" };
        let mut e = event(stream, n / 2, Some(format!("patient-{n}")));
        e.record["pad"] = serde_json::Value::String("x".repeat(2000));
        e
    };
    let mut accepted = 0u64;
    loop {
        let evs: Vec<_> = (accepted..accepted + 20).map(big).collect();
        match sink.send_batch(evs).await {
            Ok(()) => accepted += 20,
            Err(AuditError::Backpressure) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(accepted < 5000, "the 1 MiB spool never filled");
    }
    assert!(sink.backpressure());
    assert_eq!(metrics.value("scrubs_audit_spool_full", &[]), Some(1));
    let raw = std::fs::read(dir.path().join("audit.spool")).unwrap();
    assert!(raw.len() > 900_000);
    assert!(
        !raw.windows(7).any(|w| w == b"Dr. Smi"),
        "plaintext in the spool"
    );

    let fwd = forward(port, brokers.clone()).await;
    let s = sink.clone();
    wait_for(
        "the spool to be replayed",
        Duration::from_secs(30),
        move || !s.spooling(),
    )
    .await;
    assert!(!sink.backpressure());
    assert_eq!(
        metrics.value("scrubs_audit_replayed_total", &[]),
        Some(accepted)
    );
    sink.shutdown(Duration::from_secs(5)).await;
    let msgs = read_all(&brokers, &topic).await;
    let by = seqs_by_stream(&msgs);
    assert_complete_in_order("a", &by["a"], accepted / 2);
    assert_complete_in_order("b", &by["b"], accepted / 2);
    let report = verify(&msgs, None);
    assert!(report.is_clean(), "{:?}", report.problems);
    fwd.abort();
    assert_logs_clean();
}

// ---------------------------------------------------------------------------
// (d) restarts continue the chains
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_continue_sequence_numbers_and_chains() {
    let (brokers, topic, dir) = fresh_topic("restart", 2).await;
    let cfg = config(&brokers, &topic, dir.path());

    let sink = cfg
        .build(&Context::new("audit", Metrics::new()))
        .await
        .unwrap();
    send_events(&sink, "r", 0..10).await;
    send_events(&sink, "q", 0..5).await;
    sink.shutdown(Duration::from_secs(5)).await;

    // A second run over the same spool_dir continues at seq 10 / 5.
    let sink = cfg
        .build(&Context::new("audit", Metrics::new()))
        .await
        .unwrap();
    send_events(&sink, "r", 10..20).await;
    sink.shutdown(Duration::from_secs(5)).await;

    // A third run that cannot reach Kafka spools, and the fourth replays
    // that spool at start before delivering its own events.
    let mut down = cfg.clone();
    down.brokers = format!("127.0.0.1:{}", closed_port());
    down.delivery_timeout = Duration::from_secs(1);
    let sink = down
        .build(&Context::new("audit", Metrics::new()))
        .await
        .unwrap();
    send_events(&sink, "r", 20..30).await;
    send_events(&sink, "q", 5..8).await;
    assert!(sink.spooling());
    sink.shutdown(Duration::from_secs(2)).await;

    let metrics = Metrics::new();
    let sink = cfg
        .build(&Context::new("audit", metrics.clone()))
        .await
        .unwrap();
    assert!(
        sink.spooling(),
        "starts by replaying the previous run's spool"
    );
    send_events(&sink, "r", 30..35).await;
    let s = sink.clone();
    wait_for(
        "the spool to be replayed",
        Duration::from_secs(30),
        move || !s.spooling(),
    )
    .await;
    assert_eq!(metrics.value("scrubs_audit_replayed_total", &[]), Some(18));
    sink.shutdown(Duration::from_secs(5)).await;

    let msgs = read_all(&brokers, &topic).await;
    let by = seqs_by_stream(&msgs);
    assert_complete_in_order("r", &by["r"], 35);
    assert_complete_in_order("q", &by["q"], 8);
    let instances: std::collections::HashSet<String> = msgs
        .iter()
        .map(|m| {
            check_payload(m.payload.as_ref().unwrap(), None)
                .unwrap()
                .instance
        })
        .collect();
    assert_eq!(instances.len(), 1, "one spool_dir, one instance");
    let report = verify(&msgs, None);
    assert!(report.is_clean(), "{:?}", report.problems);

    // Another sidecar (its own spool_dir) writing the same stream name to
    // the same topic has its own chain.
    let other_dir = tempfile::tempdir().unwrap();
    let sink = config(&brokers, &topic, other_dir.path())
        .build(&Context::new("audit", Metrics::new()))
        .await
        .unwrap();
    send_events(&sink, "r", 0..3).await;
    sink.shutdown(Duration::from_secs(5)).await;
    let report = verify(&read_all(&brokers, &topic).await, None);
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!((report.events, report.streams), (46, 3));
    assert_logs_clean();
}

// ---------------------------------------------------------------------------
// Throughput with delivery awaited
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_with_delivery_awaited() {
    let (brokers, topic, dir) = fresh_topic("throughput", 3).await;
    let metrics = Metrics::new();
    let sink = config(&brokers, &topic, dir.path())
        .build(&Context::new("audit", metrics.clone()))
        .await
        .unwrap();
    // Warm up (producer id, connections).
    sink.send(event("warm", 0, None)).await.unwrap();
    const SENDERS: u64 = 4;
    const PER_SENDER: u64 = 10_000;
    const BATCH: u64 = 500;
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move {
            let stream = format!("/var/log/pod-{s}.log");
            for b in 0..PER_SENDER / BATCH {
                let evs = (b * BATCH..(b + 1) * BATCH)
                    .map(|n| event(&stream, n, Some(format!("patient-{}", n % 97))))
                    .collect();
                sink.send_batch(evs).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let total = SENDERS * PER_SENDER;
    let rate = total as f64 / secs;
    eprintln!("audit throughput: {total} events in {secs:.2}s = {rate:.0} events/s (delivery awaited, debug build)");
    assert_eq!(
        metrics.value("scrubs_audit_events_total", &[("result", "delivered")]),
        Some(total + 1)
    );
    assert!(rate > 2_000.0, "{rate:.0} events/s");
    sink.shutdown(Duration::from_secs(5)).await;
}

// ---------------------------------------------------------------------------
// The broker stops under traffic (slow: a private broker; run with --ignored)
// ---------------------------------------------------------------------------

/// Stops the private broker when the test ends, however it ends.
struct PrivateBroker {
    state: tempfile::TempDir,
    port: u16,
    pid: u32,
}

impl PrivateBroker {
    fn script() -> String {
        format!("{}/deploy/dev/kafka.sh", env!("CARGO_MANIFEST_DIR"))
    }

    /// kafka.sh on the private state dir; with a port, that port and the
    /// next (else kafka.sh chooses free ones at start and records them in
    /// the state dir, where `stop` finds them).
    fn command(state: &std::path::Path, port: Option<u16>, arg: &str) -> std::process::Command {
        let mut c = std::process::Command::new(Self::script());
        c.arg(arg)
            .env("SCRUBS_KAFKA_STATE", state)
            .env_remove("SCRUBS_KAFKA_PORT")
            .env_remove("SCRUBS_KAFKA_CONTROLLER_PORT");
        if let Some(port) = port {
            c.env("SCRUBS_KAFKA_PORT", port.to_string())
                .env("SCRUBS_KAFKA_CONTROLLER_PORT", (port + 1).to_string());
        }
        c
    }

    fn start(port: Option<u16>) -> PrivateBroker {
        let state = tempfile::tempdir().unwrap();
        let out = Self::command(state.path(), port, "start").output().unwrap();
        assert!(
            out.status.success(),
            "private broker did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("bootstrap=127.0.0.1:")?.parse().ok())
            .expect("kafka.sh start prints bootstrap=HOST:PORT");
        let pid = std::fs::read_to_string(state.path().join("kafka.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        PrivateBroker { state, port, pid }
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {}", self.pid);
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.pid.to_string()])
            .status();
        let _ = Self::command(self.state.path(), Some(self.port), "stop").output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts a private Kafka broker and pauses it; run with --ignored"]
async fn broker_stopped_under_traffic_loses_nothing() {
    init_logs();
    // A port of its own when given (tests/faults/run.sh passes
    // SCRUBS_AUDIT_PRIVATE_PORT through), else a free one.
    let port: Option<u16> = std::env::var("SCRUBS_AUDIT_PRIVATE_PORT")
        .ok()
        .and_then(|p| p.parse().ok());
    let pause = Duration::from_secs(
        std::env::var("SCRUBS_AUDIT_PAUSE_SECS")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(10),
    );
    let broker = PrivateBroker::start(port);
    let brokers = format!("127.0.0.1:{}", broker.port);
    let topic = unique("pause");
    create_topic(&brokers, &topic, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&brokers, &topic, dir.path());
    cfg.delivery_timeout = Duration::from_secs(2);
    cfg.spool_max_bytes = 64 << 20;
    let metrics = Metrics::new();
    let sink = cfg
        .build(&Context::new("audit", metrics.clone()))
        .await
        .unwrap();

    // Steady traffic over 3 streams, ~2,000 events/s.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (sink, stop) = (sink.clone(), stop.clone());
        tokio::spawn(async move {
            let streams = ["/var/log/a.log", "/var/log/b.log", "otlp"];
            let mut n = 0u64;
            let mut refused = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let evs: Vec<_> = (n..n + 30)
                    .map(|i| {
                        event(
                            streams[(i % 3) as usize],
                            i,
                            Some(format!("patient-{}", i % 13)),
                        )
                    })
                    .collect();
                match sink.send_batch(evs).await {
                    Ok(()) => n += 30,
                    Err(AuditError::Backpressure) => refused += 1,
                    Err(e) => panic!("{e}"),
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            (n, refused)
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = metrics
        .value("scrubs_audit_events_total", &[("result", "delivered")])
        .unwrap();
    assert!(before > 0);
    broker.signal("-STOP");
    tokio::time::sleep(pause).await;
    assert!(
        sink.spooling(),
        "events should be spooling while the broker is stopped"
    );
    broker.signal("-CONT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, refused) = traffic.await.unwrap();
    let s = sink.clone();
    wait_for(
        "the spool to be replayed",
        Duration::from_secs(60),
        move || !s.spooling(),
    )
    .await;
    sink.shutdown(Duration::from_secs(5)).await;
    let spooled = metrics
        .value("scrubs_audit_events_total", &[("result", "spooled")])
        .unwrap();
    let replayed = metrics.value("scrubs_audit_replayed_total", &[]).unwrap();
    eprintln!("sent {sent} (refused batches {refused}), delivered before stop {before}, spooled {spooled}, replayed {replayed}");
    assert!(spooled > 0 && replayed == spooled);

    let msgs = read_all(&brokers, &topic).await;
    let report = verify(&msgs, None);
    for p in &report.problems {
        eprintln!("{p}");
    }
    // At least once: a request the stopped broker had already received may
    // be written and also replayed from the spool (an identical duplicate).
    // Nothing else is acceptable.
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.kind == ProblemKind::Duplicate),
        "{:?}",
        report.problems
    );
    let mut per_stream: BTreeMap<String, std::collections::BTreeSet<u64>> = BTreeMap::new();
    for m in &msgs {
        let c = check_payload(m.payload.as_ref().unwrap(), None).unwrap();
        per_stream.entry(c.stream).or_default().insert(c.seq);
    }
    let total: u64 = per_stream.values().map(|s| s.len() as u64).sum();
    assert_eq!(total, sent, "every accepted event is in the topic");
    for (stream, seqs) in &per_stream {
        assert_eq!(
            *seqs.iter().next_back().unwrap() + 1,
            seqs.len() as u64,
            "{stream}: gap"
        );
    }
    eprintln!(
        "{} messages for {sent} events ({} duplicates)",
        msgs.len(),
        report.count(ProblemKind::Duplicate)
    );
    assert_logs_clean();
    drop(broker);
}
