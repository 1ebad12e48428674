//! The sequencer: the order in which line batches record their audit events.
//!
//! It is its own file because it is the one piece of the route stage that
//! is about ordering across workers rather than about one batch: several
//! workers redact line batches in parallel, and each takes a [`Ticket`]
//! where it dequeues its batch, so that the audit events are still queued
//! in source order (see [`super::route::Pipeline::process_lines`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Hands out turns in the order line batches were taken from the queue.
///
/// Several workers redact batches in parallel, but audit events must be recorded
/// in source order: per-key order in Kafka and each stream's hash chain
/// depend on it. A worker takes a ticket when it takes a batch, redacts, then
/// waits for its turn only to queue the batch's audit events; the turn passes
/// on as soon as they are queued (durability is awaited after). A ticket that
/// is dropped without its turn (an early return) still passes the turn on,
/// so one batch can never stall the others.
#[derive(Debug, Default)]
pub struct Sequencer {
    state: Mutex<SeqState>,
    turn: Notify,
}

#[derive(Debug, Default)]
struct SeqState {
    issued: u64,
    next: u64,
    done: BTreeSet<u64>,
}

impl Sequencer {
    /// The next ticket. Take it where batches are dequeued, under the same
    /// lock, so ticket order is queue order.
    pub fn ticket(self: &Arc<Self>) -> Ticket {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let n = st.issued;
        st.issued += 1;
        Ticket {
            seq: self.clone(),
            n,
            finished: false,
        }
    }
}

/// A place in the [`Sequencer`]'s order.
#[derive(Debug)]
pub struct Ticket {
    seq: Arc<Sequencer>,
    n: u64,
    finished: bool,
}

impl Ticket {
    /// Waits until every earlier ticket has finished.
    pub async fn wait_turn(&self) {
        loop {
            let notified = self.seq.turn.notified();
            tokio::pin!(notified);
            // Register before checking, so a finish in between is not missed.
            notified.as_mut().enable();
            if self
                .seq
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .next
                == self.n
            {
                return;
            }
            notified.await;
        }
    }

    /// Passes the turn on (at once if this ticket's turn has come, otherwise
    /// as soon as the earlier tickets finish).
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let mut st = self.seq.state.lock().unwrap_or_else(|e| e.into_inner());
        st.done.insert(self.n);
        loop {
            let next = st.next;
            if !st.done.remove(&next) {
                break;
            }
            st.next += 1;
        }
        drop(st);
        self.seq.turn.notify_waiters();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Regression (e2e "order per key" flake): two workers finished their
    /// batches out of order and queued the later batch's audit events first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tickets_queue_audit_work_in_dequeue_order_whatever_the_finish_order() {
        let seq = Arc::new(Sequencer::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let tickets: Vec<Ticket> = (0..6).map(|_| seq.ticket()).collect();
        let mut tasks = Vec::new();
        // Later tickets finish their "redaction" first.
        for (i, mut t) in tickets.into_iter().enumerate() {
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(60 - 10 * i as u64)).await;
                t.wait_turn().await;
                order.lock().unwrap().push(i);
                t.finish();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn a_dropped_ticket_passes_its_turn_on() {
        let seq = Arc::new(Sequencer::default());
        let first = seq.ticket();
        let second = seq.ticket();
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), second.wait_turn())
            .await
            .expect("the turn passed on");
    }
}
