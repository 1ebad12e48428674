//! The PHI redaction engine.
//!
//! Build once, search many times: [`Engine::new`] compiles every rule into a
//! handful of matchers (one word table for keywords, context words and regex
//! gates; one hash table of structured keys; one table of numeric
//! shapes; one multi-pattern regex; the name dictionaries), reporting every bad
//! rule at once. Redaction is then infallible and synchronous.
//!
//! # Cost
//!
//! A line is read by at most four passes, each linear in its length: the
//! literal scan over its words, a structure scan (JSON or `key=value`), a tokenizer
//! that feeds the digit-run scanner, the token patterns and the name
//! dictionaries, and the multi-pattern regex, which only runs when one of its
//! gate literals occurred. A clean line is returned as the input slice: no
//! copy and no allocation, with scratch space reused from [`Scratch`].

mod address;
mod class;
mod engine;
mod fold_table;
mod formats;
mod literals;
mod names;
mod numeric;
pub(crate) mod otlp;
mod prose;
mod pseudonym;
mod script;
// The one module allowed `unsafe`: SSE2 intrinsics, each block with its
// safety argument.
#[allow(unsafe_code)]
pub(crate) mod simd;
mod structure;
mod validate;

pub use engine::{Action, Engine, ExampleFailure, FieldResult, RuleInfo, Scratch};
pub use pseudonym::{PseudonymKey, MIN_KEY_BYTES};
pub use structure::normalise_key;
// The audit classifier reads a line's `key=value` pairs with the engine's
// scanner, so that both stages see the same pairs in the same line.
pub(crate) use structure::{scan_pairs, Pair};
pub use validate::Validator;
