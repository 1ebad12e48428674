//! Decode: what a source read, turned into the messages the engine sees.
//!
//! Two parts: the container runtime's log formats ([`container`]), since a
//! file source on a Kubernetes node reads lines that the runtime wrote with
//! its own prefix and split into parts; and the records those lines become
//! (`records`: the OTLP log records for vendors and the audit events'
//! payload), used by the route stage.

pub mod container;
pub(crate) mod records;
