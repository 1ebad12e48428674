//! Sinks: where records go.
mod adapters;
pub mod audit;
pub mod otlp;
