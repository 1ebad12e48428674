//! Labels: which fields may become label values, and the gate every value
//! passes before it reaches a series.
//!
//! A value is exported only if (1) its field is declared as a label, (2) it
//! passes the declared check (one of `values`, or `pattern` within
//! `max_len`), and (3) no redaction rule would change it, asked of the
//! engine both as the field's value (key rules such as `patient_name`) and as
//! bare text. Anything else is exported as [`OTHER`] and counted. Values
//! that pass are remembered (up to a bound) so the engine is asked once per
//! distinct value; values that fail are never kept.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use regex::Regex;

use super::config::LabelConfig;
use super::record::{normalise, Fields};
use super::registry::{Registry, SeriesRef};
use super::Problems;
use crate::{Engine, Scratch};

/// The value exported in place of a rejected one, and for the overflow
/// series.
pub const OTHER: &str = "other";
/// The value exported when the record lacks the label's field.
pub const NONE: &str = "none";

const DEFAULT_MAX_LEN: usize = 32;
const MAX_MAX_LEN: usize = 128;
/// Distinct passing values remembered per label.
const ADMITTED_CAP: usize = 1024;

/// The engine, asked whether a value holds anything a rule would redact.
pub(crate) struct Gate {
    engine: Arc<Engine>,
    scratch: Scratch,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("rules", &self.engine.rule_count())
            .finish()
    }
}

impl Gate {
    pub(crate) fn new(engine: Arc<Engine>) -> Gate {
        let scratch = engine.scratch();
        Gate { engine, scratch }
    }

    /// Whether the engine would leave `value` as it is: under its own
    /// field's key, under a person key (a bare name has no context to give
    /// it away), and as text.
    pub(crate) fn is_clean(&mut self, field: &str, value: &str) -> bool {
        if self.engine.field_rule(field, value).is_some()
            || self.engine.field_rule("name", value).is_some()
        {
            return false;
        }
        let bytes = value.as_bytes();
        let out = self.engine.redact(&mut self.scratch, bytes);
        // `redact` hands back the input slice itself when nothing matched.
        std::ptr::eq(out, bytes)
    }
}

enum Check {
    Values(HashSet<String>),
    Pattern(Regex, usize),
}

struct Label {
    name: String,
    /// The field as configured (for the engine's key rules).
    field: String,
    /// The field normalised (for lookup).
    key: String,
    check: Check,
    admitted: HashSet<String>,
    /// The label's series in `scrubs_signal_label_rejected_total`.
    rejected: SeriesRef,
}

/// The labels of one signal.
pub(crate) struct Labels {
    labels: Vec<Label>,
    /// Reused for each record's values.
    values: Vec<String>,
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.labels.iter().map(|l| &l.name))
            .finish()
    }
}

/// A metric or label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn valid_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

impl Labels {
    /// Compiles `cfgs` (at `path`, e.g. `signals.counters[0].labels`);
    /// registers each label's rejected-value series for `signal`.
    pub(crate) fn compile(
        cfgs: &[LabelConfig],
        path: &str,
        signal: &str,
        reg: &mut Registry,
        p: &mut Problems,
    ) -> Labels {
        let mut labels: Vec<Label> = Vec::with_capacity(cfgs.len());
        for (i, c) in cfgs.iter().enumerate() {
            let lp = format!("{path}[{i}]");
            let key = normalise(&c.field);
            if key.is_empty() {
                p.push(
                    &format!("{lp}.field"),
                    "has no letters or digits, or more than 48 after dropping the others",
                );
                continue;
            }
            let name = c.name.clone().unwrap_or_else(|| {
                c.field
                    .chars()
                    .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
                    .collect()
            });
            if !valid_name(&name) || name.starts_with("__") || name == "le" {
                p.push(
                    &format!("{lp}.name"),
                    "is not a usable label name ([a-zA-Z_][a-zA-Z0-9_]*, not `le`, not `__...`)",
                );
                continue;
            }
            if labels.iter().any(|l| l.name == name) {
                p.push(
                    &format!("{lp}.name"),
                    &format!("label `{name}` is given twice"),
                );
                continue;
            }
            let check = match (&c.values, &c.pattern) {
                (Some(vs), None) => {
                    if c.max_len.is_some() {
                        p.push(
                            &format!("{lp}.max_len"),
                            "goes with `pattern`, not `values`",
                        );
                        continue;
                    }
                    if vs.is_empty() {
                        p.push(&format!("{lp}.values"), "is empty");
                        continue;
                    }
                    if let Some(j) = vs.iter().position(|v| v == OTHER || v == NONE) {
                        p.push(
                            &format!("{lp}.values[{j}]"),
                            "`other` and `none` are reserved label values",
                        );
                        continue;
                    }
                    Check::Values(vs.iter().cloned().collect())
                }
                (None, Some(pat)) => {
                    let max = c.max_len.unwrap_or(DEFAULT_MAX_LEN);
                    if max == 0 || max > MAX_MAX_LEN {
                        p.push(
                            &format!("{lp}.max_len"),
                            &format!("must be between 1 and {MAX_MAX_LEN}"),
                        );
                        continue;
                    }
                    match Regex::new(&format!("^(?:{pat})$")) {
                        Ok(re) => Check::Pattern(re, max),
                        Err(_) => {
                            p.push(&format!("{lp}.pattern"), "is not a valid regex");
                            continue;
                        }
                    }
                }
                _ => {
                    p.push(&lp, "give exactly one of `values` and `pattern`");
                    continue;
                }
            };
            let rejected = reg.internal_series(super::LABEL_REJECTED, &[signal, &name]);
            labels.push(Label {
                name,
                field: c.field.clone(),
                key,
                check,
                admitted: HashSet::new(),
                rejected,
            });
        }
        Labels {
            values: vec![String::new(); labels.len()],
            labels,
        }
    }

    /// Forgets the values admitted so far (the engine changed).
    pub(crate) fn forget(&mut self) {
        for l in &mut self.labels {
            l.admitted.clear();
        }
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.labels.iter().map(|l| l.name.clone()).collect()
    }

    /// Normalised field names the labels read.
    pub(crate) fn fields(&self, out: &mut HashSet<String>) {
        out.extend(self.labels.iter().map(|l| l.key.clone()));
    }

    /// The record's label values, each checked; rejections are counted.
    pub(crate) fn resolve(
        &mut self,
        fields: &Fields,
        gate: &mut Gate,
        reg: &mut Registry,
    ) -> &[String] {
        for (l, out) in self.labels.iter_mut().zip(self.values.iter_mut()) {
            out.clear();
            let Some(v) = fields.get(&l.key) else {
                out.push_str(NONE);
                continue;
            };
            if l.admitted.contains(v) {
                out.push_str(v);
                continue;
            }
            let declared = match &l.check {
                Check::Values(vs) => vs.contains(v),
                Check::Pattern(re, max) => {
                    v.len() <= *max && v != OTHER && v != NONE && re.is_match(v)
                }
            };
            if declared && gate.is_clean(&l.field, v) {
                if l.admitted.len() < ADMITTED_CAP {
                    l.admitted.insert(v.to_owned());
                }
                out.push_str(v);
            } else {
                reg.inc_internal(l.rejected, 1);
                out.push_str(OTHER);
            }
        }
        &self.values
    }
}
