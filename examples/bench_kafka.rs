//! Kafka helpers for the whole-process benchmarks
//! (`scripts/bench-sidecar.sh`):
//!
//! ```text
//! cargo run --release --example bench_kafka -- create BROKERS TOPIC [PARTITIONS]
//! cargo run --release --example bench_kafka -- count BROKERS TOPIC
//! cargo run --release --example bench_kafka -- delete BROKERS TOPIC
//! ```
//!
//! `create` makes the audit topic (replication factor 1,
//! `min.insync.replicas=1`: the dev broker has one node). `count` prints the
//! number of messages in the topic, the sum over partitions of high minus low
//! watermark (exact for scrubs' idempotent, non-transactional producer).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

fn fail(msg: String) -> ! {
    eprintln!("bench_kafka: {msg}");
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: bench_kafka create|count|delete BROKERS TOPIC [PARTITIONS]");
        std::process::exit(2);
    }
    let (cmd, brokers, topic) = (&args[0], &args[1], &args[2]);
    let timeout = Duration::from_secs(20);
    match cmd.as_str() {
        "create" | "delete" => {
            let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                .set("bootstrap.servers", brokers)
                .create()
                .unwrap_or_else(|e| fail(format!("admin client: {e}")));
            let opts = AdminOptions::new().operation_timeout(Some(timeout));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let res = if cmd == "create" {
                let parts: i32 = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(3);
                let t = NewTopic::new(topic, parts, TopicReplication::Fixed(1))
                    .set("min.insync.replicas", "1");
                rt.block_on(admin.create_topics(&[t], &opts))
            } else {
                rt.block_on(admin.delete_topics(&[topic.as_str()], &opts))
            };
            for r in res.unwrap_or_else(|e| fail(format!("{cmd} {topic} at {brokers}: {e}"))) {
                if let Err((t, e)) = r {
                    fail(format!("{cmd} {t}: {e}"));
                }
            }
        }
        "count" => {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", brokers)
                .set("group.id", "scrubs-bench-count")
                .set("enable.auto.commit", "false")
                .create()
                .unwrap_or_else(|e| fail(format!("consumer: {e}")));
            let md = c
                .fetch_metadata(Some(topic), timeout)
                .unwrap_or_else(|e| fail(format!("metadata {topic}: {e}")));
            let t = md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .unwrap_or_else(|| fail(format!("no topic {topic}")));
            if let Some(e) = t.error() {
                fail(format!("topic {topic}: {e:?}"));
            }
            let mut total = 0i64;
            for p in t.partitions() {
                let (lo, hi) = c
                    .fetch_watermarks(topic, p.id(), timeout)
                    .unwrap_or_else(|e| fail(format!("watermarks {topic}/{}: {e}", p.id())));
                total += hi - lo;
            }
            println!("{total}");
        }
        _ => fail(format!("unknown command {cmd}")),
    }
}
