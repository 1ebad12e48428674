//! Kafka client settings shared by the audit producer, the topic check and
//! `scrubs audit verify`, and the start-up check of the topic's settings.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::{AuditConfig, SaslMechanism, SecurityConfig, SecurityProtocol};

/// Six years in milliseconds (6 × 365 days): the recommended `retention.ms`,
/// as in `deploy/kafka-audit-topic.properties`.
pub const RECOMMENDED_RETENTION_MS: i64 = 189_216_000_000;

/// Routes librdkafka's own logs and errors to `tracing`, at most one line
/// per facility or error code every 30 s (with the number suppressed), so a
/// long broker outage does not flood scrubs' log. librdkafka never logs
/// message keys or values (debug contexts are not enabled).
#[derive(Debug, Default)]
pub struct AuditClientContext {
    last: Mutex<HashMap<String, (Instant, u64)>>,
}

const LOG_EVERY: Duration = Duration::from_secs(30);

impl AuditClientContext {
    /// `Some(suppressed)` when a line for `key` may be logged now.
    fn allow(&self, key: &str) -> Option<u64> {
        let mut m = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match m.get_mut(key) {
            Some((last, n)) if now.duration_since(*last) < LOG_EVERY => {
                *n += 1;
                None
            }
            Some((last, n)) => {
                let suppressed = *n;
                *last = now;
                *n = 0;
                Some(suppressed)
            }
            None => {
                m.insert(key.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

impl ClientContext for AuditClientContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        if matches!(level, RDKafkaLogLevel::Debug) {
            tracing::debug!(target: "scrubs::audit::kafka", facility = fac, "{msg}");
            return;
        }
        let Some(suppressed) = self.allow(fac) else {
            return;
        };
        match level {
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "scrubs::audit::kafka", facility = fac, suppressed, "{msg}")
            }
            // scrubs decides what is an error (an event not made durable);
            // a broker connection failure is a warning.
            _ => {
                tracing::warn!(target: "scrubs::audit::kafka", facility = fac, suppressed, "{msg}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let key = format!("{:?}", error.rdkafka_error_code());
        if let Some(suppressed) = self.allow(&key) {
            tracing::warn!(target: "scrubs::audit::kafka", suppressed, "Kafka client error: {error}: {reason}");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for AuditClientContext {}

/// The partitions of `topic` that hold messages, each with its low and high
/// watermark (the first offset and the one after the last), read with
/// `consumer`. Blocking, each call bounded by `timeout`. `audit verify` and
/// the spool's read-back both start a read of the topic here.
pub(crate) fn partition_bounds(
    consumer: &BaseConsumer<AuditClientContext>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<(i32, i64, i64)>, String> {
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("metadata of topic {topic}: {e}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| format!("topic {topic} not found"))?;
    if let Some(err) = t.error() {
        return Err(format!("topic {topic}: {}", RDKafkaErrorCode::from(err)));
    }
    let mut bounds = Vec::new();
    for p in t.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), timeout)
            .map_err(|e| format!("end offsets of {topic} partition {}: {e}", p.id()))?;
        if high > low {
            bounds.push((p.id(), low, high));
        }
    }
    Ok(bounds)
}

/// The settings common to every client: brokers, client id, security.
pub(crate) fn base_config(
    brokers: &str,
    client_id: &str,
    security: Option<&SecurityConfig>,
) -> Result<ClientConfig, String> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", client_id)
        .set("socket.keepalive.enable", "true")
        // Reconnect within a second or two once a broker is back.
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "1000");
    c.set_log_level(RDKafkaLogLevel::Warning);
    if let Some(s) = security {
        let proto = match s.protocol {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        };
        c.set("security.protocol", proto);
        if let Some(m) = s.sasl_mechanism {
            c.set(
                "sasl.mechanism",
                match m {
                    SaslMechanism::Plain => "PLAIN",
                    SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
                    SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
                },
            );
        }
        if let Some(u) = &s.username {
            c.set("sasl.username", u);
        }
        if let Some(p) = &s.password {
            let secret = p
                .resolve()
                .map_err(|e| format!("audit.security.password: {e}"))?;
            c.set("sasl.password", secret.expose());
        }
        if let Some(p) = &s.ca_file {
            c.set("ssl.ca.location", p.to_string_lossy());
        }
        if let Some(p) = &s.cert_file {
            c.set("ssl.certificate.location", p.to_string_lossy());
        }
        if let Some(p) = &s.key_file {
            c.set("ssl.key.location", p.to_string_lossy());
        }
    }
    Ok(c)
}

/// The audit producer's settings: idempotent, acks=all, in-order.
pub(crate) fn producer_config(cfg: &AuditConfig) -> Result<ClientConfig, String> {
    let mut c = base_config(&cfg.brokers, &cfg.client_id, cfg.security.as_ref())?;
    let timeout_ms = cfg
        .delivery_timeout
        .as_millis()
        .clamp(100, u128::from(u32::MAX / 2)) as u64;
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        // A delivery report (success or failure) within delivery_timeout;
        // failed events go to the spool.
        .set("message.timeout.ms", timeout_ms.to_string())
        .set("request.timeout.ms", timeout_ms.min(30_000).to_string())
        // No linger: a file source hands one batch at a time to the sinks
        // (each waits for the previous one's checkpoint) and awaits its
        // delivery reports, so a linger would be added to every batch.
        // Messages still share requests: what queues while one request is
        // in flight goes in the next.
        .set("linger.ms", "0")
        .set("batch.num.messages", "10000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .set(
            "message.max.bytes",
            cfg.max_message_bytes.max(1000).to_string(),
        );
    Ok(c)
}

/// One way in which the audit topic is weaker than recommended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicWarning {
    /// The setting (`retention.ms`, `replication.factor`, ...).
    pub setting: String,
    /// Its current value.
    pub current: String,
    /// The recommended value.
    pub recommended: String,
}

impl fmt::Display for TopicWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {}; recommended {} (see deploy/kafka-audit-topic.properties)",
            self.setting, self.current, self.recommended
        )
    }
}

/// Compares topic settings (name → value) and the replication factor with
/// the recommendations of `deploy/kafka-audit-topic.properties`.
pub fn assess_topic(
    configs: &[(String, Option<String>)],
    replication_factor: Option<usize>,
) -> Vec<TopicWarning> {
    let get = |name: &str| {
        configs
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    };
    let mut out = Vec::new();
    let mut warn = |setting: &str, current: String, recommended: &str| {
        out.push(TopicWarning {
            setting: setting.into(),
            current,
            recommended: recommended.into(),
        })
    };
    if let Some(v) = get("retention.ms") {
        match v.parse::<i64>() {
            Ok(ms) if !(0..RECOMMENDED_RETENTION_MS).contains(&ms) => {}
            _ => warn(
                "retention.ms",
                v,
                "189216000000 (six years, 45 CFR 164.316(b)(2)) or more, or -1",
            ),
        }
    }
    if let Some(v) = get("retention.bytes") {
        if v.parse::<i64>().map(|b| b >= 0).unwrap_or(true) {
            warn("retention.bytes", v, "-1 (no size-based deletion)");
        }
    }
    if let Some(v) = get("cleanup.policy") {
        if v.split(',').any(|p| p.trim() == "compact") {
            warn(
                "cleanup.policy",
                v,
                "delete (compaction drops audit events sharing a key)",
            );
        }
    }
    if let Some(v) = get("min.insync.replicas") {
        if v.parse::<i64>().map(|n| n < 2).unwrap_or(true) {
            warn("min.insync.replicas", v, "2");
        }
    }
    if let Some(v) = get("unclean.leader.election.enable") {
        if v.trim() != "false" {
            warn("unclean.leader.election.enable", v, "false");
        }
    }
    if let Some(rf) = replication_factor {
        if rf < 3 {
            warn("replication.factor", rf.to_string(), "3");
        }
    }
    out
}

/// Reads the audit topic's settings and replication factor from the
/// cluster and returns how they fall short of the recommendations.
pub async fn check_topic(
    cfg: &AuditConfig,
    timeout: Duration,
) -> Result<Vec<TopicWarning>, String> {
    let client_cfg = base_config(&cfg.brokers, &cfg.client_id, cfg.security.as_ref())?;
    let admin: AdminClient<AuditClientContext> = client_cfg
        .create_with_context(AuditClientContext::default())
        .map_err(|e| format!("cannot create Kafka admin client: {e}"))?;
    let topic = cfg.topic.clone();
    let opts = AdminOptions::new().request_timeout(Some(timeout));
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(&topic)], &opts)
        .await
        .map_err(|e| format!("describing topic {topic}: {e}"))?;
    let mut configs = Vec::new();
    for r in results {
        let res = r.map_err(|code| format!("describing topic {topic}: {code}"))?;
        for e in res.entries {
            configs.push((e.name, e.value));
        }
    }
    let admin = std::sync::Arc::new(admin);
    let a = admin.clone();
    let t = topic.clone();
    let rf = tokio::task::spawn_blocking(move || -> Result<Option<usize>, String> {
        let md = a
            .inner()
            .fetch_metadata(Some(&t), timeout)
            .map_err(|e| format!("metadata of topic {t}: {e}"))?;
        let Some(mt) = md.topics().iter().find(|x| x.name() == t) else {
            return Ok(None);
        };
        if let Some(err) = mt.error() {
            return Err(format!(
                "metadata of topic {t}: {}",
                RDKafkaErrorCode::from(err)
            ));
        }
        Ok(mt.partitions().iter().map(|p| p.replicas().len()).min())
    })
    .await
    .map_err(|e| format!("metadata task: {e}"))??;
    Ok(assess_topic(&configs, rf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfgs(pairs: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect()
    }

    #[test]
    fn recommended_settings_are_quiet() {
        let c = cfgs(&[
            ("retention.ms", "189216000000"),
            ("retention.bytes", "-1"),
            ("cleanup.policy", "delete"),
            ("min.insync.replicas", "2"),
            ("unclean.leader.election.enable", "false"),
        ]);
        assert!(assess_topic(&c, Some(3)).is_empty());
        let inf = cfgs(&[("retention.ms", "-1")]);
        assert!(assess_topic(&inf, None).is_empty());
    }

    #[test]
    fn weak_settings_are_named() {
        let c = cfgs(&[
            ("retention.ms", "604800000"),
            ("cleanup.policy", "compact,delete"),
            ("min.insync.replicas", "1"),
            ("unclean.leader.election.enable", "true"),
        ]);
        let w = assess_topic(&c, Some(1));
        let names: Vec<_> = w.iter().map(|w| w.setting.as_str()).collect();
        assert_eq!(
            names,
            [
                "retention.ms",
                "cleanup.policy",
                "min.insync.replicas",
                "unclean.leader.election.enable",
                "replication.factor"
            ]
        );
        assert!(w[0].to_string().contains("189216000000"));
    }
}
