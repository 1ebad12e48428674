//! The signals' own registry: counters, gauges and explicit-bucket
//! histograms with checked labels, rendered as Prometheus text and as an
//! OTLP `ExportMetricsServiceRequest` from the same numbers.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point::Value as NumberValue, AggregationTemporality, Gauge,
    Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::labels::OTHER;

/// A series: (family, series) indices.
pub(crate) type SeriesRef = (usize, usize);

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

struct Series {
    labels: Vec<String>,
    value: u64,
    /// Histograms: per-bucket (not cumulative) counts, `bounds.len() + 1`.
    buckets: Vec<u64>,
    sum: f64,
}

struct Family {
    name: String,
    help: String,
    kind: Kind,
    label_names: Vec<String>,
    bounds: Vec<f64>,
    series: Vec<Series>,
    index: HashMap<Vec<String>, usize>,
    max_series: usize,
    /// The series with every label `other`, once made.
    overflow: Option<usize>,
}

/// The registry. Label values reach it only through `labels::Labels`.
pub(crate) struct Registry {
    families: Vec<Family>,
    by_name: HashMap<String, usize>,
    start_unix_nano: u64,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("families", &self.families.len())
            .field(
                "series",
                &self.families.iter().map(|f| f.series.len()).sum::<usize>(),
            )
            .finish()
    }
}

fn unix_nanos_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            families: Vec::new(),
            by_name: HashMap::new(),
            start_unix_nano: unix_nanos_now(),
        }
    }

    /// Adds a family; `Err` if the name is taken.
    pub(crate) fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        label_names: Vec<String>,
        bounds: Vec<f64>,
        max_series: usize,
    ) -> Result<usize, String> {
        if self.by_name.contains_key(name) {
            return Err(format!("metric `{name}` is defined twice"));
        }
        let id = self.families.len();
        self.families.push(Family {
            name: name.to_owned(),
            help: help.to_owned(),
            kind,
            label_names,
            bounds,
            series: Vec::new(),
            index: HashMap::new(),
            max_series,
            overflow: None,
        });
        self.by_name.insert(name.to_owned(), id);
        // A family without labels shows its zero from the start.
        if self.families[id].label_names.is_empty() {
            self.series(id, &[]);
        }
        Ok(id)
    }

    /// The series of `fam` with these label values, made if new. Beyond the
    /// family's cap, the all-`other` series; the bool says so.
    pub(crate) fn series(&mut self, fam: usize, values: &[String]) -> (SeriesRef, bool) {
        let f = &mut self.families[fam];
        if let Some(&i) = f.index.get(values) {
            return ((fam, i), false);
        }
        let all_other = values.iter().all(|v| v == OTHER);
        if f.series.len() >= f.max_series && !all_other {
            let i = match f.overflow {
                Some(i) => i,
                None => {
                    let labels = vec![OTHER.to_owned(); values.len()];
                    let i = push_series(f, labels);
                    f.overflow = Some(i);
                    i
                }
            };
            return ((fam, i), true);
        }
        let i = push_series(f, values.to_vec());
        if all_other {
            f.overflow = Some(i);
        }
        ((fam, i), false)
    }

    /// The series of an internal family (created on first use), labelled
    /// by configuration names only.
    pub(crate) fn internal_series(&mut self, name: &'static str, values: &[&str]) -> SeriesRef {
        let fam = match self.by_name.get(name) {
            Some(&f) => f,
            None => {
                let (help, kind, labels): (&str, Kind, &[&str]) = super::internal_family(name);
                self.family(
                    name,
                    help,
                    kind,
                    labels.iter().map(|s| s.to_string()).collect(),
                    Vec::new(),
                    usize::MAX,
                )
                .expect("internal names are not configurable")
            }
        };
        let values: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        self.series(fam, &values).0
    }

    pub(crate) fn inc(&mut self, (f, s): SeriesRef, n: u64) {
        self.families[f].series[s].value += n;
    }

    pub(crate) fn inc_internal(&mut self, r: SeriesRef, n: u64) {
        self.inc(r, n)
    }

    pub(crate) fn set(&mut self, (f, s): SeriesRef, v: u64) {
        self.families[f].series[s].value = v;
    }

    pub(crate) fn observe(&mut self, (f, s): SeriesRef, v: f64) {
        let fam = &mut self.families[f];
        // The first bucket whose upper bound is >= v (Prometheus `le`).
        let b = fam.bounds.partition_point(|&ub| ub < v);
        let se = &mut fam.series[s];
        se.buckets[b] += 1;
        se.value += 1;
        se.sum += v;
    }

    /// A counter or gauge's value (tests, health).
    pub(crate) fn value(&self, name: &str, labels: &[&str]) -> Option<u64> {
        let f = &self.families[*self.by_name.get(name)?];
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        f.index.get(&key).map(|&i| f.series[i].value)
    }

    /// A family's total over its series (count, for histograms).
    pub(crate) fn total(&self, name: &str) -> u64 {
        self.by_name
            .get(name)
            .map(|&f| self.families[f].series.iter().map(|s| s.value).sum())
            .unwrap_or(0)
    }

    /// A histogram's per-bucket counts summed over its series.
    pub(crate) fn buckets(&self, name: &str) -> Option<Vec<u64>> {
        let f = &self.families[*self.by_name.get(name)?];
        let mut out = vec![0; f.bounds.len() + 1];
        for s in &f.series {
            for (o, b) in out.iter_mut().zip(&s.buckets) {
                *o += b;
            }
        }
        Some(out)
    }

    #[cfg(test)]
    pub(crate) fn series_count(&self, name: &str) -> usize {
        self.by_name
            .get(name)
            .map(|&f| self.families[f].series.len())
            .unwrap_or(0)
    }

    pub(crate) fn render_prometheus(&self, out: &mut String) {
        let mut order: Vec<&Family> = self.families.iter().collect();
        order.sort_by(|a, b| a.name.cmp(&b.name));
        for f in order {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {} {kind}", f.name);
            for s in &f.series {
                if f.kind != Kind::Histogram {
                    out.push_str(&f.name);
                    write_labels(out, &f.label_names, &s.labels, None);
                    let _ = writeln!(out, " {}", s.value);
                    continue;
                }
                let mut cum = 0;
                for (i, c) in s.buckets.iter().enumerate() {
                    cum += c;
                    let le = match f.bounds.get(i) {
                        Some(b) => format_f64(*b),
                        None => "+Inf".to_owned(),
                    };
                    let _ = write!(out, "{}_bucket", f.name);
                    write_labels(out, &f.label_names, &s.labels, Some(&le));
                    let _ = writeln!(out, " {cum}");
                }
                let _ = write!(out, "{}_sum", f.name);
                write_labels(out, &f.label_names, &s.labels, None);
                let _ = writeln!(out, " {}", format_f64(s.sum));
                let _ = write!(out, "{}_count", f.name);
                write_labels(out, &f.label_names, &s.labels, None);
                let _ = writeln!(out, " {}", s.value);
            }
        }
    }

    pub(crate) fn to_otlp(
        &self,
        resource: &BTreeMap<String, String>,
    ) -> ExportMetricsServiceRequest {
        let now = unix_nanos_now();
        let start = self.start_unix_nano;
        let cumulative = AggregationTemporality::Cumulative as i32;
        let attrs = |f: &Family, s: &Series| -> Vec<KeyValue> {
            f.label_names
                .iter()
                .zip(&s.labels)
                .map(|(k, v)| kv(k, v))
                .collect()
        };
        let mut metrics = Vec::with_capacity(self.families.len());
        for f in &self.families {
            let data = match f.kind {
                Kind::Counter | Kind::Gauge => {
                    let points = f
                        .series
                        .iter()
                        .map(|s| NumberDataPoint {
                            attributes: attrs(f, s),
                            start_time_unix_nano: if f.kind == Kind::Counter { start } else { 0 },
                            time_unix_nano: now,
                            value: Some(NumberValue::AsInt(s.value.min(i64::MAX as u64) as i64)),
                            ..Default::default()
                        })
                        .collect();
                    if f.kind == Kind::Counter {
                        Data::Sum(Sum {
                            data_points: points,
                            aggregation_temporality: cumulative,
                            is_monotonic: true,
                        })
                    } else {
                        Data::Gauge(Gauge {
                            data_points: points,
                        })
                    }
                }
                Kind::Histogram => Data::Histogram(Histogram {
                    data_points: f
                        .series
                        .iter()
                        .map(|s| HistogramDataPoint {
                            attributes: attrs(f, s),
                            start_time_unix_nano: start,
                            time_unix_nano: now,
                            count: s.value,
                            sum: Some(s.sum),
                            bucket_counts: s.buckets.clone(),
                            explicit_bounds: f.bounds.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    aggregation_temporality: cumulative,
                }),
            };
            metrics.push(Metric {
                name: f.name.clone(),
                description: f.help.clone(),
                data: Some(data),
                ..Default::default()
            });
        }
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: resource.iter().map(|(k, v)| kv(k, v)).collect(),
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "scrubs.signals".to_owned(),
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                        ..Default::default()
                    }),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }
}

fn push_series(f: &mut Family, labels: Vec<String>) -> usize {
    let i = f.series.len();
    f.index.insert(labels.clone(), i);
    f.series.push(Series {
        labels,
        value: 0,
        buckets: if f.kind == Kind::Histogram {
            vec![0; f.bounds.len() + 1]
        } else {
            Vec::new()
        },
        sum: 0.0,
    });
    i
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.to_owned(),
        value: Some(AnyValue {
            value: Some(AnyValueKind::StringValue(v.to_owned())),
        }),
        ..Default::default()
    }
}

fn format_f64(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".to_owned()
    } else {
        format!("{v}")
    }
}

fn escape_help(h: &str) -> String {
    h.replace('\\', "\\\\").replace('\n', "\\n")
}

fn write_labels(out: &mut String, names: &[String], values: &[String], le: Option<&str>) {
    if names.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in names.iter().zip(values) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{k}=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if let Some(le) = le {
        if !first {
            out.push(',');
        }
        let _ = write!(out, "le=\"{le}\"");
    }
    out.push('}');
}
