//! The concrete sinks as the router sees them.

use crate::pipeline::router::{AuditOut, VendorOut};
use crate::pipeline::{AuditEvent, BoxFuture, VendorBatch};
use crate::sinks::audit::AuditSink;
use crate::sinks::otlp::VendorSink;

impl AuditOut for AuditSink {
    fn send_batch(&self, events: Vec<AuditEvent>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            AuditSink::send_batch(self, events)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn backpressure(&self) -> bool {
        AuditSink::backpressure(self)
    }
}

impl VendorOut for VendorSink {
    fn name(&self) -> &str {
        VendorSink::name(self)
    }

    fn send(&self, batch: VendorBatch) -> Result<(), String> {
        if !self.accepts(batch.signal()) {
            return Ok(());
        }
        VendorSink::send(self, batch).map_err(|r| r.label())
    }
}
