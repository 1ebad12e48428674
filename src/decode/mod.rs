//! Decode: what a source read, turned into the messages the engine sees.
//!
//! Today this is the container runtime's log formats ([`container`]): a
//! file source on a Kubernetes node reads lines that the runtime wrote with
//! its own prefix and split into parts.

pub mod container;
