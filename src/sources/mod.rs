//! Sources: where records come from.
pub mod file;
pub mod otlp;
pub mod stdin;
