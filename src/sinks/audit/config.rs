//! The `audit:` section of the configuration and its validation.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::SecretSource;
use crate::units::deserialize_duration;

/// The `audit:` section of the configuration.
///
/// ```yaml
/// audit:
///   brokers: kafka-1.internal:9093,kafka-2.internal:9093
///   topic: phi-audit
///   spool_dir: /var/lib/scrubs/audit     # a persistent volume, not the container fs
///   spool_max_bytes: 268435456           # 256 MiB; then backpressure
///   delivery_timeout: 10s
///   chain_key_file: /etc/scrubs/audit-chain.key
///   spool_encryption_key_file: /etc/scrubs/secrets/spool.key
///   security:
///     protocol: sasl_ssl
///     sasl_mechanism: SCRAM-SHA-512
///     username: scrubs-audit
///     password: { env: SCRUBS_AUDIT_KAFKA_PASSWORD }
///     ca_file: /etc/scrubs/kafka-ca.pem
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Kafka bootstrap servers: a comma-separated list of `host:port`.
    pub brokers: String,
    /// The audit topic. It must exist (scrubs does not create it); create it
    /// with the settings of `deploy/kafka-audit-topic.properties`.
    pub topic: String,
    /// The Kafka client id (broker logs and quotas). Default `scrubs`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// How to authenticate and encrypt; omitted means plaintext without
    /// authentication (acceptable only inside a trusted network segment).
    #[serde(default)]
    pub security: Option<SecurityConfig>,
    /// Where audit events wait while Kafka is unreachable, plus the chain
    /// state that lets sequence numbers continue across restarts. Must be
    /// on a persistent volume: its contents are unredacted (mode 0700).
    pub spool_dir: PathBuf,
    /// The spool's size limit in bytes (default 256 MiB). When it is
    /// reached, new audit events are refused (sources stop reading, OTLP
    /// answers 503) until the spool has been replayed; nothing is dropped.
    /// Events already handed to Kafka whose delivery then fails are always
    /// spooled, so the file can exceed the limit by that in-flight window.
    #[serde(default = "default_spool_max_bytes")]
    pub spool_max_bytes: u64,
    /// How long Kafka may take to acknowledge an event before it is spooled
    /// instead (librdkafka `message.timeout.ms`). A duration such as `10s`,
    /// `500ms` or `2m`; a bare integer means seconds. Default `10s`.
    #[serde(
        default = "default_delivery_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub delivery_timeout: Duration,
    /// How long a source waits for Kafka's acknowledgement of its audit
    /// events before they are written to the fsynced spool instead and the
    /// source is answered (the file checkpoint advances, the OTLP request
    /// is answered 200). A broker that hangs without closing its
    /// connections (a long GC pause, a partition) otherwise holds every
    /// OTLP request until `delivery_timeout`, past the 10 s export timeout
    /// of the OpenTelemetry SDKs. The events Kafka was still working on are
    /// replayed from the spool; any that reached Kafka after all are
    /// skipped by the replay (it reads the topic back first). Default `2s`;
    /// at most `delivery_timeout` is used.
    #[serde(
        default = "default_ack_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub ack_timeout: Duration,
    /// The largest audit message (key plus JSON payload) in bytes; larger
    /// events are refused with an error rather than blocking the spool.
    /// Must not exceed the topic's `max.message.bytes`. Default 1000000.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// A file holding at least 32 secret bytes. When set, the chain hash is
    /// HMAC-SHA256 with this key, so someone with write access to the topic
    /// but without the key cannot recompute the chain after editing,
    /// removing or inserting events. Without it the hash is plain SHA-256:
    /// accidental damage and naive edits are detected, a determined
    /// attacker who rewrites the rest of the chain is not. Keep the key
    /// outside the audit topic's trust domain; `scrubs audit verify` needs it.
    #[serde(default)]
    pub chain_key_file: Option<PathBuf>,
    /// A file holding at least 32 secret bytes (a Kubernetes Secret mounted
    /// as a file) with which the spool is encrypted at rest
    /// (XChaCha20-Poly1305; see `spool.rs`): the spool holds unredacted
    /// events, and with the key kept off the spool's volume a copy of that
    /// volume reveals frame sizes only. Events spooled under one key are
    /// replayed only with that key: change it when `scrubs_audit_spool_bytes`
    /// is 0. Without it the spool is written in plain text and a warning is
    /// logged at start-up.
    #[serde(default)]
    pub spool_encryption_key_file: Option<PathBuf>,
    /// Check the topic's retention, replication and durability settings at
    /// start-up and log a warning for each that is weaker than recommended.
    /// Default true.
    #[serde(default = "default_true")]
    pub check_topic_config: bool,
}

/// Kafka security settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: SecurityProtocol,
    /// For `sasl_*`: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[serde(default)]
    pub sasl_mechanism: Option<SaslMechanism>,
    /// For `sasl_*`: the SASL user name.
    #[serde(default)]
    pub username: Option<String>,
    /// For `sasl_*`: the password, as `{ env: VAR }` or `{ file: PATH }`.
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// For `ssl`/`sasl_ssl`: a PEM file of CA certificates to trust
    /// (default: the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// For mutual TLS: the client certificate (PEM).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// For mutual TLS: the client private key (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// The Kafka security protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

/// The SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

fn default_client_id() -> String {
    "scrubs".into()
}
fn default_spool_max_bytes() -> u64 {
    256 << 20
}
fn default_delivery_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_max_message_bytes() -> usize {
    1_000_000
}
fn default_true() -> bool {
    true
}

impl AuditConfig {
    /// A configuration with defaults for everything optional.
    pub fn new(
        brokers: impl Into<String>,
        topic: impl Into<String>,
        spool_dir: impl Into<PathBuf>,
    ) -> AuditConfig {
        AuditConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            client_id: default_client_id(),
            security: None,
            spool_dir: spool_dir.into(),
            spool_max_bytes: default_spool_max_bytes(),
            delivery_timeout: default_delivery_timeout(),
            ack_timeout: default_ack_timeout(),
            max_message_bytes: default_max_message_bytes(),
            chain_key_file: None,
            spool_encryption_key_file: None,
            check_topic_config: true,
        }
    }

    /// Every problem in the section, each starting with its path
    /// (`audit.topic: ...`). Checks structure only; files are read at start.
    pub fn validate(&self) -> Vec<String> {
        self.validate_at("audit")
    }

    /// Like [`AuditConfig::validate`], with paths under `prefix` (for
    /// example `audit.kafka` gives `audit.kafka.topic: ...`).
    pub fn validate_at(&self, prefix: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.brokers.trim().is_empty() {
            p.push(format!(
                "{prefix}.brokers: must list at least one host:port"
            ));
        }
        for b in self
            .brokers
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
        {
            let ok = b
                .rsplit_once(':')
                .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok_and(|n| n > 0));
            if !ok {
                p.push(format!("{prefix}.brokers: '{b}' is not host:port"));
            }
        }
        if self.topic.is_empty() {
            p.push(format!("{prefix}.topic: must not be empty"));
        } else if self.topic.len() > 249
            || self.topic == "."
            || self.topic == ".."
            || !self
                .topic
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
        {
            p.push(format!(
                "{prefix}.topic: '{}' is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)",
                self.topic
            ));
        }
        if self.client_id.trim().is_empty() {
            p.push(format!("{prefix}.client_id: must not be empty"));
        }
        if self.spool_dir.as_os_str().is_empty() {
            p.push(format!(
                "{prefix}.spool_dir: must be set (a directory on a persistent volume)"
            ));
        }
        if self.spool_max_bytes < (1 << 20) {
            p.push(format!(
                "{prefix}.spool_max_bytes: {} is too small; at least 1048576 (1 MiB)",
                self.spool_max_bytes
            ));
        }
        if self.delivery_timeout < Duration::from_millis(100)
            || self.delivery_timeout > Duration::from_secs(3600)
        {
            p.push(format!(
                "{prefix}.delivery_timeout: must be between 100ms and 1h"
            ));
        }
        if self.ack_timeout < Duration::from_millis(100)
            || self.ack_timeout > Duration::from_secs(3600)
        {
            p.push(format!(
                "{prefix}.ack_timeout: must be between 100ms and 1h"
            ));
        }
        if !(1000..=100_000_000).contains(&self.max_message_bytes) {
            p.push(format!(
                "{prefix}.max_message_bytes: must be between 1000 and 100000000"
            ));
        }
        if u64::try_from(self.max_message_bytes).unwrap_or(u64::MAX) > self.spool_max_bytes {
            p.push(format!(
                "{prefix}.max_message_bytes: must not exceed {prefix}.spool_max_bytes"
            ));
        }
        if let Some(k) = &self.chain_key_file {
            if k.as_os_str().is_empty() {
                p.push(format!(
                    "{prefix}.chain_key_file: must not be empty when set"
                ));
            }
        }
        if let Some(k) = &self.spool_encryption_key_file {
            if k.as_os_str().is_empty() {
                p.push(format!(
                    "{prefix}.spool_encryption_key_file: must not be empty when set"
                ));
            }
        }
        if let Some(s) = &self.security {
            let sasl = matches!(
                s.protocol,
                SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
            );
            let tls = matches!(
                s.protocol,
                SecurityProtocol::Ssl | SecurityProtocol::SaslSsl
            );
            if sasl {
                if s.sasl_mechanism.is_none() {
                    p.push(format!("{prefix}.security.sasl_mechanism: required with sasl_* protocols (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"));
                }
                if s.username.as_deref().is_none_or(str::is_empty) {
                    p.push(format!(
                        "{prefix}.security.username: required with sasl_* protocols"
                    ));
                }
                if s.password.is_none() {
                    p.push(format!("{prefix}.security.password: required with sasl_* protocols ({{ env: VAR }} or {{ file: PATH }})"));
                }
                if s.sasl_mechanism == Some(SaslMechanism::Plain) && !tls {
                    p.push(format!("{prefix}.security.sasl_mechanism: PLAIN sends the password in clear text; use sasl_ssl"));
                }
            } else {
                if s.sasl_mechanism.is_some() {
                    p.push(format!("{prefix}.security.sasl_mechanism: only used with sasl_plaintext or sasl_ssl"));
                }
                if s.username.is_some() || s.password.is_some() {
                    p.push(format!("{prefix}.security.username/password: only used with sasl_plaintext or sasl_ssl"));
                }
            }
            if !tls && (s.ca_file.is_some() || s.cert_file.is_some() || s.key_file.is_some()) {
                p.push(format!(
                    "{prefix}.security.ca_file/cert_file/key_file: only used with ssl or sasl_ssl"
                ));
            }
            if s.cert_file.is_some() != s.key_file.is_some() {
                p.push(format!(
                    "{prefix}.security.cert_file and key_file: set both or neither"
                ));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ms").is_err());
    }

    #[test]
    fn config_defaults_and_validation() {
        let c: AuditConfig = serde_yaml::from_str(
            "brokers: k1:9092,k2:9092\ntopic: phi-audit\nspool_dir: /var/lib/scrubs/audit\ndelivery_timeout: 5s\n",
        )
        .unwrap();
        assert_eq!(c.client_id, "scrubs");
        assert_eq!(c.spool_max_bytes, 256 << 20);
        assert_eq!(c.delivery_timeout, Duration::from_secs(5));
        assert_eq!(c.ack_timeout, Duration::from_secs(2));
        assert!(c.check_topic_config);
        let short: AuditConfig =
            serde_yaml::from_str("brokers: k:1\ntopic: t\nspool_dir: /s\nack_timeout: 10ms\n")
                .unwrap();
        assert!(short
            .validate()
            .iter()
            .any(|m| m.starts_with("audit.ack_timeout:")));
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let secs: AuditConfig =
            serde_yaml::from_str("brokers: k:1\ntopic: t\nspool_dir: /s\ndelivery_timeout: 30\n")
                .unwrap();
        assert_eq!(secs.delivery_timeout, Duration::from_secs(30));
        assert!(serde_yaml::from_str::<AuditConfig>(
            "brokers: k:1\ntopic: t\nspool_dir: /s\nbogus: 1\n"
        )
        .is_err());

        let bad: AuditConfig = serde_yaml::from_str(
            "brokers: 'k1,'\ntopic: 'bad topic'\nspool_dir: ''\nspool_max_bytes: 10\n\
             security:\n  protocol: sasl_plaintext\n  sasl_mechanism: PLAIN\n  cert_file: /c\n",
        )
        .unwrap();
        let p = bad.validate();
        for path in [
            "audit.brokers",
            "audit.topic",
            "audit.spool_dir",
            "audit.spool_max_bytes",
            "audit.security.username",
            "audit.security.password",
            "audit.security.ca_file/cert_file/key_file",
            "audit.security.cert_file and key_file",
        ] {
            assert!(
                p.iter().any(|m| m.starts_with(path)),
                "{path} missing in {p:?}"
            );
        }
    }

    #[test]
    fn validate_at_a_prefix() {
        let mut c = AuditConfig::new("k:1", "", "/s");
        c.spool_max_bytes = 1;
        let p = c.validate_at("audit.kafka");
        assert!(
            p.contains(&"audit.kafka.topic: must not be empty".to_string()),
            "{p:?}"
        );
        assert!(p
            .iter()
            .any(|m| m.starts_with("audit.kafka.spool_max_bytes:")));
        assert!(c.validate().iter().all(|m| m.starts_with("audit.")));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c: AuditConfig = serde_yaml::from_str(
            "brokers: k:1\ntopic: t\nspool_dir: /s\nsecurity:\n  protocol: sasl_ssl\n  sasl_mechanism: SCRAM-SHA-512\n  username: u\n  password: { value: hunter2 }\n",
        )
        .unwrap();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
