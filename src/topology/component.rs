//! What every component is built from ([`Context`]) and the one error a
//! build can fail with ([`BuildError`]).
//!
//! A source or sink is a configuration struct with a `build` method taking
//! a [`Context`]: the component's name, the process's metrics and the
//! shutdown signal, which every component needs and which used to be passed
//! positionally, in a different order, to each spawn function. What only
//! one component needs (the queue a source feeds, the handler of the OTLP
//! receiver) stays an argument of its own `build`.

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// What a component is built with: its name, the metrics it registers its
/// series in and the signal that tells it to stop.
#[derive(Clone, Debug)]
pub struct Context {
    name: String,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    /// The sender of a context made without a shutdown signal, kept so
    /// that its receiver never reads as stopped (components take a dropped
    /// sender for a shutdown).
    _never: Option<Arc<watch::Sender<bool>>>,
}

impl Context {
    /// A context for the component `name` that is never told to stop
    /// (until [`Context::with_shutdown`] gives it a signal).
    pub fn new(name: impl Into<String>, metrics: Arc<Metrics>) -> Context {
        let (tx, rx) = watch::channel(false);
        Context {
            name: name.into(),
            metrics,
            shutdown: rx,
            _never: Some(Arc::new(tx)),
        }
    }

    /// The same context, stopped when `shutdown` turns `true` or its
    /// sender is dropped.
    pub fn with_shutdown(self, shutdown: watch::Receiver<bool>) -> Context {
        Context {
            shutdown,
            _never: None,
            ..self
        }
    }

    /// The same context for another component: the metrics and shutdown
    /// signal are shared.
    pub fn named(&self, name: impl Into<String>) -> Context {
        Context {
            name: name.into(),
            ..self.clone()
        }
    }

    /// The component's name (a source's key in `sources`, a vendor's
    /// `name`); it labels its metrics and names it in its errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// A receiver of the shutdown signal.
    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

/// A built component: the handle its users keep and the task that runs it
/// (which ends once the component has stopped).
#[derive(Debug)]
pub struct Built<T> {
    /// What the rest of the process uses the component through (`()` for
    /// a source, which only feeds its queue).
    pub handle: T,
    /// The component's task.
    pub task: JoinHandle<()>,
}

/// Why a component could not be built. Its message names the component
/// (or the setting) and the problem; it never holds event content, and
/// secrets are named by where they come from, never shown.
pub struct BuildError {
    component: Box<str>,
    kind: Kind,
    message: Box<str>,
}

/// What went wrong, kept private so that new kinds are not a breaking
/// change; callers that must tell them apart use the predicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The configuration is invalid or refused.
    Config,
    /// A file, directory or socket could not be used.
    Io,
    /// The rules or the pseudonym key could not be loaded.
    Rules,
    /// The process could not run the component (no runtime, no thread).
    Runtime,
}

impl BuildError {
    fn new(component: &str, kind: Kind, message: impl Into<String>) -> BuildError {
        BuildError {
            component: component.into(),
            kind,
            message: message.into().into_boxed_str(),
        }
    }

    /// The configuration of `component` is invalid or refused; `message`
    /// says why (and names the component or its setting).
    pub(crate) fn config(component: &str, message: impl Into<String>) -> BuildError {
        BuildError::new(component, Kind::Config, message)
    }

    /// A file, directory or socket of `component` could not be used.
    pub(crate) fn io(component: &str, message: impl Into<String>) -> BuildError {
        BuildError::new(component, Kind::Io, message)
    }

    /// The rules or the key could not be loaded.
    pub(crate) fn rules(err: &crate::Error) -> BuildError {
        BuildError::new("rules", Kind::Rules, err.to_string())
    }

    /// The process could not run `component`.
    pub(crate) fn runtime(component: &str, message: impl Into<String>) -> BuildError {
        BuildError::new(component, Kind::Runtime, message)
    }

    /// An error of the crate's own, from building `component`, said as
    /// `message`.
    pub(crate) fn from_error(
        component: &str,
        err: &crate::Error,
        message: impl Into<String>,
    ) -> BuildError {
        let kind = if err.is_io() { Kind::Io } else { Kind::Config };
        BuildError::new(component, kind, message)
    }

    /// The component that could not be built (`admin`, `audit`, a source's
    /// or vendor's name, `rules`).
    pub fn component(&self) -> &str {
        &self.component
    }

    /// Whether the configuration was invalid or refused (as opposed to a
    /// file, socket or runtime that could not be used).
    pub fn is_config(&self) -> bool {
        self.kind == Kind::Config || self.kind == Kind::Rules
    }

    /// Whether a file, directory or socket could not be used.
    pub fn is_io(&self) -> bool {
        self.kind == Kind::Io
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildError")
            .field("component", &self.component)
            .field("kind", &self.kind)
            .field("message", &self.message)
            .finish()
    }
}

impl std::error::Error for BuildError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_message_and_the_component_is_kept() {
        let e = BuildError::config("vendor-a", "vendor \"vendor-a\": refused");
        assert_eq!(e.to_string(), "vendor \"vendor-a\": refused");
        assert_eq!(e.component(), "vendor-a");
        assert!(e.is_config());
        assert!(!e.is_io());
        let e = BuildError::io("admin", "admin: cannot bind");
        assert!(e.is_io());
        assert!(!e.is_config());
    }
}
