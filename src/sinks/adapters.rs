//! The concrete sinks as the route stage sees them.

use crate::pipeline::route::{AuditOut, Durable, HeldRoom, Hold, VendorOut};
use std::sync::Arc;

use crate::pipeline::{AuditEvent, BoxFuture, SharedBatch, VendorBatch};
use crate::sinks::audit::AuditSink;
use crate::sinks::otlp::{Held, QueueRoom, VendorSink};

impl AuditOut for AuditSink {
    fn submit(&self, events: Vec<AuditEvent>) -> BoxFuture<'_, Result<Durable, String>> {
        Box::pin(async move {
            let durable = AuditSink::submit(self, events)
                .await
                .map_err(|e| e.to_string())?;
            let durable: Durable =
                Box::pin(async move { durable.await.map_err(|e| e.to_string()) });
            Ok(durable)
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

    fn send_wait(&self, batch: VendorBatch) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            if !self.accepts(batch.signal()) {
                return true;
            }
            VendorSink::send_wait(self, batch).await
        })
    }

    fn failing_since(&self) -> Option<std::time::Instant> {
        VendorSink::failing_since(self)
    }

    fn send_crisis(&self, batch: VendorBatch) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.accepts(batch.signal()) {
                VendorSink::send_crisis(self, batch).await
            }
        })
    }

    fn hold_within(
        &self,
        batch: VendorBatch,
        wait: std::time::Duration,
        refuse: bool,
    ) -> BoxFuture<'_, Hold<'_>> {
        Box::pin(async move {
            if !self.accepts(batch.signal()) {
                return Hold::Nothing;
            }
            VendorSink::hold_within(self, batch, wait, refuse)
                .await
                .into()
        })
    }

    fn congested(&self) -> bool {
        VendorSink::congested(self)
    }

    fn send_shared(&self, batch: Arc<SharedBatch>) -> Result<(), String> {
        if !self.accepts(batch.batch().signal()) {
            return Ok(());
        }
        VendorSink::send_shared(self, &batch).map_err(|r| r.label())
    }

    fn hold_within_shared(
        &self,
        batch: Arc<SharedBatch>,
        wait: std::time::Duration,
        refuse: bool,
    ) -> BoxFuture<'_, Hold<'_>> {
        Box::pin(async move {
            if !self.accepts(batch.batch().signal()) {
                return Hold::Nothing;
            }
            VendorSink::hold_within_shared(self, &batch, wait, refuse)
                .await
                .into()
        })
    }

    fn send_crisis_shared(&self, batch: Arc<SharedBatch>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.accepts(batch.batch().signal()) {
                VendorSink::send_crisis_shared(self, &batch).await
            }
        })
    }
}

impl HeldRoom for QueueRoom<'_> {
    fn send(self: Box<Self>) {
        QueueRoom::send(*self)
    }
}

impl<'a> From<Held<'a>> for Hold<'a> {
    fn from(held: Held<'a>) -> Hold<'a> {
        match held {
            Held::Room(room) => Hold::Room(Box::new(room)),
            Held::Nothing => Hold::Nothing,
            Held::Full => Hold::Full,
        }
    }
}
