//! Why audit events were not recorded.

use std::fmt;

/// Why audit events were not recorded. No variant carries event content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditError {
    /// The spool is full (Kafka has been unreachable for a while): nothing
    /// was recorded; the caller must not advance and should retry later
    /// (sources pause, OTLP answers 503).
    Backpressure,
    /// An event is larger than `max_message_bytes`; nothing of the batch
    /// was recorded.
    TooLarge {
        /// The event's approximate message size.
        bytes: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The sink is shut down.
    Closed,
    /// The events could not be made durable (the spool or journal could not
    /// be written); the caller must not advance. The message names paths
    /// and OS errors only.
    Io(String),
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditError::Backpressure => f.write_str("audit spool is full; retry later"),
            AuditError::TooLarge { bytes, limit } => {
                write!(
                    f,
                    "audit event of about {bytes} bytes exceeds audit.max_message_bytes ({limit})"
                )
            }
            AuditError::Closed => f.write_str("audit sink is shut down"),
            AuditError::Io(m) => write!(f, "audit events not durable: {m}"),
        }
    }
}

impl std::error::Error for AuditError {}
