//! A small Prometheus registry: counters and gauges with labels, rendered
//! in the text exposition format.
//!
//! Handles are `Arc<AtomicU64>`, looked up once and then bumped with a
//! relaxed atomic add, so the hot path takes no lock. Labels carry rule ids,
//! categories, source and sink names, and reasons: never event content.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A counter or gauge value.
pub type Handle = Arc<AtomicU64>;

/// Records not delivered to a vendor, labelled `vendor` and `reason`. The
/// vendor sinks count their own drops (queue full, refused, ...); the
/// pipeline counts records it could not redact (`redaction_failed`,
/// `redaction_limit`) under the same name.
pub const VENDOR_DROPPED: &str = "scrubs_vendor_dropped_total";

/// The help text of [`VENDOR_DROPPED`] (the same as the vendor sinks').
pub const VENDOR_DROPPED_HELP: &str = "Records not delivered to a vendor, by reason.";

/// Lines longer than a source's limit, cut at it, labelled `source`. Every
/// line source (stdin, the file tail) counts its cuts under this one name,
/// as it counts its lines and bytes under `scrubs_source_lines_total` and
/// `scrubs_source_bytes_total`.
pub const LINES_CUT: &str = "scrubs_source_truncated_lines_total";

/// The help text of [`LINES_CUT`].
pub const LINES_CUT_HELP: &str = "Lines longer than max_line_bytes, cut at the limit.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

#[derive(Debug)]
struct Family {
    kind: Kind,
    help: &'static str,
    series: BTreeMap<Vec<(String, String)>, Handle>,
}

/// Appends more families to the rendered text (the derived signals,
/// whose series are kept elsewhere).
type Renderer = Box<dyn Fn(&mut String) + Send + Sync>;

/// The process's metrics.
#[derive(Default)]
pub struct Metrics {
    families: Mutex<BTreeMap<&'static str, Family>>,
    renderers: Mutex<Vec<Renderer>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Metrics")
            .field("families", &fams.len())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Adds families rendered by `f` after this registry's own, on every
    /// [`Metrics::render`] (for series this registry does not hold).
    pub fn add_renderer(&self, f: impl Fn(&mut String) + Send + Sync + 'static) {
        self.renderers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(f));
    }

    /// A new, empty registry.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    fn handle(
        &self,
        kind: Kind,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
    ) -> Handle {
        let mut fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let fam = fams.entry(name).or_insert_with(|| Family {
            kind,
            help,
            series: BTreeMap::new(),
        });
        let key: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        fam.series.entry(key).or_default().clone()
    }

    /// A monotonically increasing counter; `name` should end in `_total`.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
    ) -> Handle {
        self.handle(Kind::Counter, name, help, labels)
    }

    /// A gauge (set or add/sub).
    pub fn gauge(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Handle {
        self.handle(Kind::Gauge, name, help, labels)
    }

    /// Adds to a counter without keeping the handle.
    pub fn add(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)], n: u64) {
        self.counter(name, help, labels)
            .fetch_add(n, Ordering::Relaxed);
    }

    /// The current value of a series, if it exists (for tests and health).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        let fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let fam = fams.get(name)?;
        let key: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        fam.series.get(&key).map(|h| h.load(Ordering::Relaxed))
    }

    /// The sum of every series of a family.
    pub fn sum(&self, name: &str) -> u64 {
        let fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        fams.get(name)
            .map(|f| f.series.values().map(|h| h.load(Ordering::Relaxed)).sum())
            .unwrap_or(0)
    }

    /// Every series of a family with its labels and current value (for the
    /// flow record, which reads counters by source and category).
    pub fn series(&self, name: &str) -> Vec<(Vec<(String, String)>, u64)> {
        let fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        fams.get(name)
            .map(|f| {
                f.series
                    .iter()
                    .map(|(l, h)| (l.clone(), h.load(Ordering::Relaxed)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Renders the Prometheus text format.
    pub fn render(&self) -> String {
        let fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::with_capacity(4096);
        for (name, fam) in fams.iter() {
            let _ = writeln!(out, "# HELP {name} {}", fam.help);
            let kind = match fam.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, h) in &fam.series {
                out.push_str(name);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape(v));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", h.load(Ordering::Relaxed));
            }
        }
        drop(fams);
        for r in self
            .renderers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            r(&mut out);
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::new();
        m.add(
            "scrubs_records_in_total",
            "Records read.",
            &[("source", "app")],
            3,
        );
        m.gauge("scrubs_queue_depth", "Queued.", &[("sink", "v")])
            .store(7, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("# TYPE scrubs_records_in_total counter"));
        assert!(text.contains("scrubs_records_in_total{source=\"app\"} 3"));
        assert!(text.contains("scrubs_queue_depth{sink=\"v\"} 7"));
        assert_eq!(
            m.value("scrubs_records_in_total", &[("source", "app")]),
            Some(3)
        );
    }
}
