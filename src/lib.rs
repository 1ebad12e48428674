/*!
scrubs keeps protected health information (PHI) out of operational
telemetry. It runs beside a service, reads its logs and OpenTelemetry
signals, forks audit-grade events unredacted to an in-boundary Kafka topic,
and exports everything else, scrubbed, to vendors covered by a Business
Associate Agreement.

This crate is the library behind the `scrubs` binary. Its core is the
redaction [`Engine`]: compile a [`RuleSet`] once, then redact many lines.

```
use scrubs::{Engine, RuleSet, PseudonymKey};

let rules = RuleSet::builtin().unwrap();
let engine = Engine::new(&rules, PseudonymKey::ephemeral()).unwrap();
let mut scratch = engine.scratch();

let line = b"GET /health 200 12ms";
// A clean line comes back as the same slice: no copy, no allocation.
assert!(std::ptr::eq(engine.redact(&mut scratch, line), &line[..]));

let out = engine.redact_str(&mut scratch, "callback 415-555-0132 for SSN 219-09-9999");
assert_eq!(out, "callback [REDACTED:PHONE] for SSN [REDACTED:SSN]");
```

Data flows source → decode → classify → redact → route → sinks, and the
modules follow that order: [`sources`], [`decode`] (including lines →
records), [`pipeline::classify`], `redact`, [`pipeline::route`] and
[`sinks`].
*/

#![deny(unsafe_code)]
#![deny(missing_debug_implementations)]
#![warn(rust_2018_idioms)]

pub mod admin;
pub mod config;
pub mod decode;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
pub mod lines;
pub mod logging;
pub mod metrics;
pub mod pipeline;
mod redact;
mod rules;
pub mod secret;
pub mod signals;
pub mod sinks;
pub mod sources;
pub mod topology;
pub mod units;

pub use crate::error::{Error, RuleProblem};
pub use crate::redact::{
    normalise_key, Action, Engine, ExampleFailure, FieldResult, PseudonymKey, RuleInfo, Scratch,
    Validator, MIN_KEY_BYTES,
};
pub use crate::rules::{Category, RuleSet};
