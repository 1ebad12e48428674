//! Vendor export configuration: one entry of the `vendors:` list.
//!
//! ```yaml
//! vendors:
//!   - name: acme-apm                  # metric label and log name
//!     endpoint: https://otlp.acme.example:4318   # base URL, /v1/<signal> appended
//!     protocol: http                  # http (OTLP/HTTP protobuf) or grpc
//!     baa_covered: true               # REQUIRED: a signed BAA covers this vendor
//!     headers:
//!       x-api-key: { env: ACME_API_KEY }          # or { file: /run/secrets/acme }
//!       x-tenant: telehealth-prod                 # plain value (not a secret)
//!     tls:
//!       ca_file: /etc/scrubs/acme-ca.pem          # replaces the system roots
//!       cert_file: /etc/scrubs/client.pem         # client certificate (mTLS)
//!       key_file: /etc/scrubs/client.key
//!       insecure_skip_verify: false               # never in production
//!     compression: gzip               # gzip (default) or none
//!     timeout: 10s                    # per request attempt
//!     signals: [logs, traces, metrics]
//!     batch: { max_records: 4096, max_bytes: 1MiB, max_wait: 200ms }
//!     queue: { max_bytes: 8MiB, max_batches: 4096 }
//!     retry: { initial_backoff: 100ms, max_backoff: 5s, max_elapsed: 60s }
//!     max_in_flight: 2                # requests under way at once
//!     allow:                          # optional: only these keys keep their values
//!       keys: [level, msg, service.name, http.*]
//!       unstructured: withhold        # withhold (default) or keep
//! ```

use crate::units::{deserialize_bytes, deserialize_duration};
pub use crate::units::{parse_bytes, parse_duration};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use hyper::http::uri::Uri;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::allow::AllowConfig;
use crate::secret::SecretSource;

/// The citation used when a vendor without a BAA is refused.
const BAA_REASON: &str = "scrubs only exports to vendors covered by a Business Associate \
                          Agreement (45 CFR 164.502(e)); set baa_covered: true only once \
                          a signed BAA covers this vendor";

/// One vendor that receives scrubbed telemetry over OTLP.
///
/// Every record that reaches a vendor has already been redacted; the vendor
/// must still be covered by a Business Associate Agreement, because
/// redaction is a safeguard, not a guarantee.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorConfig {
    /// The vendor's name: used in metric labels (`vendor="..."`) and logs.
    /// Letters, digits, `_`, `-` and `.`, at most 64 characters.
    pub name: String,

    /// Where to send. For `protocol: http` this is a base URL such as
    /// `https://otlp.vendor.example:4318` (or with a path prefix,
    /// `https://vendor.example/otlp`) and `/v1/logs`, `/v1/traces` and
    /// `/v1/metrics` are appended per signal, as the OTLP exporter
    /// specification does for `OTEL_EXPORTER_OTLP_ENDPOINT`. A URL that
    /// already ends in one of those paths is a per-signal endpoint (like
    /// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`): it is used as written, and only
    /// for that signal. For `protocol: grpc` it is `https://host:4317` with
    /// no path. Credentials in the URL (`user:pass@`) are refused: put them
    /// in `headers` as a secret.
    pub endpoint: String,

    /// `http` (OTLP/HTTP with protobuf bodies; `http/protobuf` is accepted
    /// too) or `grpc`. Default `http`.
    #[serde(default)]
    pub protocol: Protocol,

    /// Extra request headers (gRPC metadata), typically the vendor's API
    /// key. A value is a plain string, or a secret: `{ env: VAR }` or
    /// `{ file: /path }` (trailing newlines trimmed). scrubs logs header
    /// names only, never values.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderValue>,

    /// TLS settings for an `https://` endpoint. Without them, the server
    /// certificate is checked against the system's root certificates.
    #[serde(default)]
    pub tls: Option<TlsConfig>,

    /// `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: Compression,

    /// Must be `true`: the operator's statement that a signed Business
    /// Associate Agreement covers this vendor. A vendor without it is
    /// refused at startup, and no record is ever sent to it.
    #[serde(default)]
    pub baa_covered: bool,

    /// How long one request attempt may take, connection and TLS handshake
    /// included (`"500ms"`, `"10s"`, `"1m"`). Default `10s`.
    #[serde(default = "default_timeout", deserialize_with = "deserialize_duration")]
    pub timeout: Duration,

    /// How records are grouped into requests.
    #[serde(default)]
    pub batch: BatchConfig,

    /// The bounded queue in front of this vendor.
    #[serde(default)]
    pub queue: QueueConfig,

    /// Retries of failed requests.
    #[serde(default)]
    pub retry: RetryConfig,

    /// How many requests to this vendor may be under way at once, each with
    /// its retries (1 to 64). While one waits for the vendor's answer the
    /// next batch is compressed and sent, so a vendor a round trip away
    /// still gets the full rate. Batches may then arrive out of order, which
    /// OTLP allows. Default 2.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,

    /// Which signals this vendor receives: any of `logs`, `traces`,
    /// `metrics`. Default: all of them, or only the endpoint's signal when
    /// `endpoint` is a per-signal URL.
    #[serde(default)]
    pub signals: Option<Vec<Signal>>,

    /// An allow-list (minimum necessary, 45 CFR 164.502(b)): when set, only
    /// the listed keys of structured records (JSON and logfmt log bodies,
    /// map bodies, attributes at every level) keep their values, as the
    /// engine redacted them; every other value is replaced by `[WITHHELD]`
    /// and counted in `scrubs_vendor_values_withheld_total`. Unset: every
    /// key passes (after redaction). See [`super::allow`].
    #[serde(default)]
    pub allow: Option<AllowConfig>,
    /// How far this vendor's lane of a file source may fall behind before
    /// it skips (see `lag_limit` in README).
    #[serde(default)]
    pub lag_limit: LagLimitConfig,
}

/// The bound on a vendor's lag behind a file source. A file source reads
/// its files once per vendor and waits for a slow vendor (the file is the
/// buffer) until one of these is passed; then that vendor's lane skips
/// ahead, counting every line it skips in
/// `scrubs_vendor_dropped_total{reason="vendor_lag_limit"}`, until its lag
/// is back under half of `max_bytes` and the vendor answers again.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LagLimitConfig {
    /// Unread bytes of a source's files (rotated files included) past which
    /// the lane skips. Default 1 GiB: about 5 million ordinary lines, more
    /// than an hour of a busy pod, and small next to the disk a node keeps
    /// for container logs. `0` for no limit.
    #[serde(deserialize_with = "deserialize_bytes")]
    pub max_bytes: u64,
    /// How long the vendor may fail every attempt (retryable errors,
    /// timeouts, refused connections) before the lane skips. Default `1h`:
    /// operational telemetry older than that is rarely worth a backlog, and
    /// an outage of a SaaS endpoint shorter than that is delivered whole.
    /// `0s` for no limit.
    #[serde(deserialize_with = "deserialize_duration")]
    pub max_failing: Duration,
}

impl Default for LagLimitConfig {
    fn default() -> Self {
        LagLimitConfig {
            max_bytes: 1 << 30,
            max_failing: Duration::from_secs(3600),
        }
    }
}

impl fmt::Debug for VendorConfig {
    // The endpoint without its query string (which may carry a key); header
    // values are hidden by `HeaderValue`'s own Debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VendorConfig")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint_for_logs())
            .field("protocol", &self.protocol)
            .field("headers", &self.headers)
            .field("tls", &self.tls)
            .field("compression", &self.compression)
            .field("baa_covered", &self.baa_covered)
            .field("timeout", &self.timeout)
            .field("batch", &self.batch)
            .field("queue", &self.queue)
            .field("retry", &self.retry)
            .field("max_in_flight", &self.max_in_flight)
            .field("signals", &self.signals)
            .field("allow", &self.allow)
            .field("lag_limit", &self.lag_limit)
            .finish()
    }
}

/// The wire protocol of a vendor endpoint.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// OTLP/HTTP with binary protobuf bodies (port 4318 by convention).
    #[default]
    #[serde(alias = "http/protobuf")]
    Http,
    /// OTLP/gRPC (port 4317 by convention).
    Grpc,
}

/// Request body compression.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// gzip (`Content-Encoding: gzip`, or gRPC's `grpc-encoding: gzip`).
    #[default]
    Gzip,
    /// No compression.
    None,
}

/// An OpenTelemetry signal.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Log records.
    Logs,
    /// Spans.
    Traces,
    /// Metrics.
    Metrics,
}

impl Signal {
    /// All signals.
    pub const ALL: [Signal; 3] = [Signal::Logs, Signal::Traces, Signal::Metrics];

    /// `logs`, `traces` or `metrics`, as in [`crate::pipeline::VendorBatch::signal`].
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
        }
    }

    /// The OTLP/HTTP path for this signal.
    pub fn http_path(self) -> &'static str {
        match self {
            Signal::Logs => "/v1/logs",
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
        }
    }

    /// The OTLP/gRPC method path for this signal.
    pub fn grpc_path(self) -> &'static str {
        match self {
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A header value: a plain string, or a secret read from the environment or
/// a file when the sink starts.
///
/// Written as a string (`x-tenant: prod`) or as a [`SecretSource`]
/// (`authorization: { env: VENDOR_TOKEN }`, `{ file: /run/secrets/t }`).
/// Its `Debug` output never shows a value, plain or secret.
#[derive(Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// A literal value, sent as written. Use only for values that are not
    /// secrets (tenant ids, dataset names).
    Plain(String),
    /// A secret, resolved at startup.
    Secret(SecretSource),
}

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Plain values are not meant to be secrets, but operators paste
            // tokens in the wrong place: never print them.
            HeaderValue::Plain(v) => write!(f, "HeaderValue(inline, {} bytes)", v.len()),
            HeaderValue::Secret(s) => write!(f, "HeaderValue({s:?})"),
        }
    }
}

impl<'de> Deserialize<'de> for HeaderValue {
    // Untagged in effect (a string, or a secret map), written by hand so a
    // typo such as `{ evn: X }` gets the secret's own error message rather
    // than serde's "did not match any variant".
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HeaderValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, or a secret such as { env: VAR } or { file: PATH }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HeaderValue, E> {
                Ok(HeaderValue::Plain(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<HeaderValue, E> {
                Ok(HeaderValue::Plain(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HeaderValue, E> {
                Ok(HeaderValue::Plain(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HeaderValue, E> {
                Ok(HeaderValue::Plain(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<HeaderValue, E> {
                Ok(HeaderValue::Plain(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HeaderValue, A::Error> {
                SecretSource::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(HeaderValue::Secret)
            }
        }
        d.deserialize_any(V)
    }
}

/// TLS settings for an `https://` endpoint.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of CA certificates that sign the vendor's server
    /// certificate. When set it REPLACES the system roots (pinning the
    /// vendor's CA); when unset the system roots are used.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for vendors that require mutual TLS.
    /// Needs `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Skip server certificate verification. Default `false`. This lets
    /// anyone on the network path read the telemetry: for local testing
    /// only. scrubs logs a warning at startup when it is set.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// How records are grouped into export requests. A request is sent when it
/// reaches `max_records` or `max_bytes`, or `max_wait` after its first
/// record arrived, whichever comes first. Batches of different signals are
/// never mixed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Records (log records, spans, metrics) per request. Default 4096
    /// (with `max_bytes`, whichever comes first): the fixed cost of a request
    /// (a round trip, a gzip stream, the vendor's decoding) is paid per
    /// request, and at 512 the exporter kept up with about half as many
    /// records a second (benches/RESULTS.md).
    pub max_records: usize,
    /// Protobuf bytes per request, before compression (`"1MiB"`,
    /// `"512KiB"` or a number of bytes). Default 1 MiB. A single input
    /// batch larger than this is sent on its own, not split.
    #[serde(deserialize_with = "deserialize_bytes")]
    pub max_bytes: u64,
    /// How long a partial batch waits for more records. Default `200ms`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_records: 4096,
            max_bytes: 1 << 20,
            max_wait: Duration::from_millis(200),
        }
    }
}

/// The bounded queue in front of a vendor. It holds batches waiting to be
/// sent, being sent and being retried; when it is full, new batches are
/// dropped (counted with reason `queue_full`) and the caller is never
/// blocked.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Protobuf bytes held for this vendor (`"64MiB"`). Default 8 MiB:
    /// with the OTLP receiver's in-flight budget and the file batches in
    /// flight this keeps scrubs under 64 MB when input outruns a vendor (a
    /// sixth of a second of the most one core can export, or ~7 minutes of
    /// an ordinary pod's 20 KB/s). Raise it to ride out longer vendor
    /// outages, at that cost in memory.
    #[serde(deserialize_with = "deserialize_bytes")]
    pub max_bytes: u64,
    /// Input batches held for this vendor. Default 4096.
    pub max_batches: usize,
    /// Protobuf bytes held back for crisis records (988 hand-offs, crisis
    /// escalations; see `signals.crisis`), above `max_bytes`: a full queue
    /// never drops them, and only they may use this room. Default 2 MiB.
    #[serde(deserialize_with = "deserialize_bytes")]
    pub crisis_reserve_bytes: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_bytes: 8 << 20,
            max_batches: 4096,
            crisis_reserve_bytes: 2 << 20,
        }
    }
}

/// Retries with exponential backoff and full jitter. Retried: HTTP 408,
/// 429, 500, 502, 503, 504; gRPC UNAVAILABLE, RESOURCE_EXHAUSTED,
/// DEADLINE_EXCEEDED, ABORTED, CANCELLED, OUT_OF_RANGE, DATA_LOSS; timeouts,
/// connection and TLS failures. A `Retry-After` header (seconds or HTTP
/// date) or gRPC `RetryInfo` sets the wait instead of the backoff.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// The first backoff (before jitter). Default `100ms`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub initial_backoff: Duration,
    /// The longest backoff (before jitter). Default `5s`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub max_backoff: Duration,
    /// Give up on a batch this long after its first attempt began (no new
    /// attempt starts after it; one under way may run for up to `timeout`).
    /// A wait the vendor asks for that would end past it gives up at once.
    /// `0s` disables retries. Default `60s`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub max_elapsed: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_in_flight() -> usize {
    2
}

/// The most requests a vendor may have under way at once.
const MAX_IN_FLIGHT: usize = 64;

/// Header names scrubs sets itself and an operator may not override.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "host",
    "te",
    "connection",
    "grpc-encoding",
    "grpc-accept-encoding",
    "grpc-timeout",
];

impl VendorConfig {
    /// The refusal for a vendor not flagged `baa_covered: true`, naming it.
    pub fn baa_refusal(&self, path: &str) -> String {
        format!(
            "{path} (name {:?}): refused: baa_covered is not true; {BAA_REASON}",
            self.name
        )
    }

    /// The signals this vendor receives (see [`VendorConfig::signals`]).
    pub fn effective_signals(&self) -> Vec<Signal> {
        if let Some(s) = &self.signals {
            let mut s = s.clone();
            s.sort();
            s.dedup();
            return s;
        }
        match self.per_signal_endpoint() {
            Some(sig) => vec![sig],
            None => Signal::ALL.to_vec(),
        }
    }

    /// For `protocol: http`, the signal whose path the endpoint already ends
    /// in, if any.
    pub fn per_signal_endpoint(&self) -> Option<Signal> {
        if self.protocol != Protocol::Http {
            return None;
        }
        let uri: Uri = self.endpoint.parse().ok()?;
        let path = uri.path().trim_end_matches('/');
        Signal::ALL
            .into_iter()
            .find(|s| path.ends_with(s.http_path()))
    }

    /// Every problem with this entry, each prefixed with its config path
    /// (`path` is the entry's own, e.g. `vendors[1]`). Empty when valid.
    /// Does not read secrets; checks that TLS files exist.
    pub fn validate(&self, path: &str) -> Vec<String> {
        let mut p = Vec::new();
        if !self.baa_covered {
            p.push(self.baa_refusal(path));
        }
        if self.name.is_empty() {
            p.push(format!("{path}.name: must not be empty"));
        } else if self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            p.push(format!(
                "{path}.name: {:?} must be 1-64 letters, digits, '_', '-' or '.'",
                self.name
            ));
        }
        self.validate_endpoint(path, &mut p);
        if !(1..=MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            p.push(format!(
                "{path}.max_in_flight: {} must be 1 to {MAX_IN_FLIGHT}",
                self.max_in_flight
            ));
        }
        for (name, value) in &self.headers {
            let hp = format!("{path}.headers.{name}");
            match hyper::http::header::HeaderName::from_bytes(name.as_bytes()) {
                Err(_) => p.push(format!("{hp}: not a valid header name")),
                Ok(h) => {
                    if RESERVED_HEADERS.contains(&h.as_str()) {
                        p.push(format!("{hp}: set by scrubs itself, cannot be configured"));
                    }
                    if self.protocol == Protocol::Grpc && h.as_str().ends_with("-bin") {
                        p.push(format!("{hp}: binary gRPC metadata is not supported"));
                    }
                }
            }
            match value {
                HeaderValue::Plain(v) => {
                    if hyper::http::HeaderValue::from_str(v).is_err() {
                        p.push(format!(
                            "{hp}: value has characters not allowed in a header"
                        ));
                    }
                }
                HeaderValue::Secret(src) => {
                    if let Some(problem) = src.check() {
                        p.push(format!("{hp}: {problem}"));
                    } else if src.env.as_deref() == Some("") {
                        p.push(format!("{hp}: env: needs a variable name"));
                    }
                }
            }
        }
        if let Some(tls) = &self.tls {
            let tp = format!("{path}.tls");
            if self.endpoint.trim_start().starts_with("http://") {
                p.push(format!(
                    "{tp}: set, but endpoint is http://; use https:// for TLS"
                ));
            }
            match (&tls.cert_file, &tls.key_file) {
                (Some(_), None) => p.push(format!("{tp}.key_file: required with cert_file")),
                (None, Some(_)) => p.push(format!("{tp}.cert_file: required with key_file")),
                _ => {}
            }
            // Whether the files exist and hold PEM is checked with the rest
            // of the environment (src/config/environment.rs), which
            // `validate --no-environment` skips.
            if tls.insecure_skip_verify && tls.ca_file.is_some() {
                p.push(format!(
                    "{tp}: ca_file and insecure_skip_verify together make no sense; drop insecure_skip_verify"
                ));
            }
        }
        if self.timeout.is_zero() {
            p.push(format!("{path}.timeout: must be more than 0"));
        }
        if self.batch.max_records == 0 {
            p.push(format!("{path}.batch.max_records: must be at least 1"));
        }
        if self.batch.max_bytes < 1024 {
            p.push(format!("{path}.batch.max_bytes: must be at least 1KiB"));
        }
        if self.batch.max_wait > Duration::from_secs(60) {
            p.push(format!("{path}.batch.max_wait: at most 1m"));
        }
        if self.queue.max_batches == 0 {
            p.push(format!("{path}.queue.max_batches: must be at least 1"));
        }
        if self.queue.max_bytes < self.batch.max_bytes {
            p.push(format!(
                "{path}.queue.max_bytes: must be at least batch.max_bytes ({} bytes)",
                self.batch.max_bytes
            ));
        }
        if self.retry.initial_backoff.is_zero() {
            p.push(format!("{path}.retry.initial_backoff: must be more than 0"));
        }
        if self.retry.max_backoff < self.retry.initial_backoff {
            p.push(format!(
                "{path}.retry.max_backoff: must be at least retry.initial_backoff"
            ));
        }
        if let Some(allow) = &self.allow {
            p.extend(allow.validate(&format!("{path}.allow")));
        }
        if let Some(sigs) = &self.signals {
            if sigs.is_empty() {
                p.push(format!(
                    "{path}.signals: empty; list at least one of logs, traces, metrics (or remove the vendor)"
                ));
            }
            if let Some(only) = self.per_signal_endpoint() {
                if sigs.iter().any(|s| *s != only) {
                    p.push(format!(
                        "{path}.signals: endpoint ends in {}, a per-signal URL, so signals can only be [{}]; use the base URL to send several signals",
                        only.http_path(),
                        only.as_str()
                    ));
                }
            }
        }
        p
    }

    fn validate_endpoint(&self, path: &str, p: &mut Vec<String>) {
        let ep = format!("{path}.endpoint");
        let uri: Uri = match self.endpoint.parse() {
            Ok(u) => u,
            Err(e) => {
                p.push(format!("{ep}: not a URL: {e}"));
                return;
            }
        };
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            Some(s) => {
                p.push(format!(
                    "{ep}: scheme {s:?} not supported; use https:// or http://"
                ));
            }
            None => {
                p.push(format!(
                    "{ep}: needs a scheme, e.g. https://{}",
                    self.endpoint
                ));
                return;
            }
        }
        let Some(auth) = uri.authority() else {
            p.push(format!("{ep}: needs a host"));
            return;
        };
        if auth.as_str().contains('@') {
            p.push(format!(
                "{ep}: credentials in the URL are refused (they would reach logs); put them in headers as {{ env: VAR }} or {{ file: PATH }}"
            ));
        }
        if auth.host().is_empty() {
            p.push(format!("{ep}: needs a host"));
        }
        if self.protocol == Protocol::Grpc {
            if uri.path() != "/" && !uri.path().is_empty() {
                p.push(format!(
                    "{ep}: a gRPC endpoint has no path (got {:?}); write scheme://host:port",
                    uri.path()
                ));
            }
            if uri.query().is_some() {
                p.push(format!("{ep}: a gRPC endpoint has no query string"));
            }
        }
    }

    /// The URL for one signal (protocol `http`): the endpoint as written if
    /// it is a per-signal URL, otherwise the base URL with `/v1/<signal>`
    /// appended to its path.
    pub fn signal_url(&self, signal: Signal) -> Result<Uri, String> {
        let uri: Uri = self
            .endpoint
            .parse()
            .map_err(|e| format!("endpoint is not a URL: {e}"))?;
        if self.per_signal_endpoint().is_some() {
            return Ok(uri);
        }
        let mut parts = uri.into_parts();
        let (path, query) = match &parts.path_and_query {
            Some(pq) => (pq.path().trim_end_matches('/').to_owned(), pq.query()),
            None => (String::new(), None),
        };
        let pq = match query {
            Some(q) => format!("{path}{}?{q}", signal.http_path()),
            None => format!("{path}{}", signal.http_path()),
        };
        parts.path_and_query = Some(pq.parse().map_err(|e| format!("bad endpoint path: {e}"))?);
        Uri::from_parts(parts).map_err(|e| format!("bad endpoint: {e}"))
    }

    /// The endpoint for logs: scheme, host, port and path, without the
    /// query string (which may carry a key).
    pub fn endpoint_for_logs(&self) -> String {
        match self.endpoint.parse::<Uri>() {
            Ok(u) => format!(
                "{}://{}{}",
                u.scheme_str().unwrap_or("?"),
                u.authority().map(|a| a.as_str()).unwrap_or(""),
                u.path()
            ),
            Err(_) => "(invalid URL)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> VendorConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration(" 2h ").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(parse_duration("10 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("512 KiB").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("2MB").unwrap(), 2_000_000);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("3 apples").is_err());
    }

    #[test]
    fn defaults_and_parsing() {
        let c = cfg("name: acme\nendpoint: https://otlp.acme.example\nbaa_covered: true\n");
        assert_eq!(c.protocol, Protocol::Http);
        assert_eq!(c.compression, Compression::Gzip);
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.batch.max_records, 4096);
        assert_eq!(c.batch.max_bytes, 1 << 20);
        assert_eq!(c.batch.max_wait, Duration::from_millis(200));
        assert_eq!(c.queue.max_bytes, 8 << 20);
        assert_eq!(c.retry.max_elapsed, Duration::from_secs(60));
        assert_eq!(c.effective_signals(), Signal::ALL.to_vec());
        assert!(
            c.validate("vendors[0]").is_empty(),
            "{:?}",
            c.validate("vendors[0]")
        );

        let c = cfg(r#"
name: acme
endpoint: https://otlp.acme.example:4318/otlp/
protocol: http/protobuf
baa_covered: true
timeout: 2s
batch: { max_bytes: 256KiB, max_wait: 50ms }
headers:
  x-api-key: { env: ACME_KEY }
  x-tenant: prod
  x-num: 42
"#);
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.batch.max_bytes, 256 << 10);
        assert_eq!(c.batch.max_records, 4096);
        assert_eq!(
            c.headers["x-api-key"],
            HeaderValue::Secret(SecretSource {
                env: Some("ACME_KEY".into()),
                ..Default::default()
            })
        );
        assert_eq!(c.headers["x-num"], HeaderValue::Plain("42".into()));
        assert_eq!(
            c.signal_url(Signal::Logs).unwrap().to_string(),
            "https://otlp.acme.example:4318/otlp/v1/logs"
        );
        assert_eq!(
            c.signal_url(Signal::Metrics).unwrap().to_string(),
            "https://otlp.acme.example:4318/otlp/v1/metrics"
        );
    }

    #[test]
    fn header_values_never_in_debug() {
        let c = cfg(r#"
name: acme
endpoint: https://otlp.acme.example
baa_covered: true
headers:
  authorization: "Bearer hunter2-plain"
  x-api-key: { value: hunter2-inline }
"#);
        let c = VendorConfig {
            endpoint: "https://otlp.acme.example/v1/logs?api_key=hunter2-query".into(),
            ..c
        };
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("authorization"));
    }

    #[test]
    fn typo_in_secret_is_reported() {
        let e = serde_yaml::from_str::<VendorConfig>(
            "name: a\nendpoint: http://x\nbaa_covered: true\nheaders: { k: { evn: X } }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("evn"), "{e}");
        let e = serde_yaml::from_str::<VendorConfig>(
            "name: a\nendpoint: http://x\nbaa_covered: true\nbogus: 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn per_signal_endpoint() {
        let c = cfg("name: a\nendpoint: http://c:4318/v1/logs\nbaa_covered: true\n");
        assert_eq!(c.per_signal_endpoint(), Some(Signal::Logs));
        assert_eq!(c.effective_signals(), vec![Signal::Logs]);
        assert_eq!(
            c.signal_url(Signal::Logs).unwrap().to_string(),
            "http://c:4318/v1/logs"
        );
        assert!(c.validate("v").is_empty());
        let c = cfg(
            "name: a\nendpoint: http://c:4318/v1/logs\nbaa_covered: true\nsignals: [logs, traces]\n",
        );
        let p = c.validate("vendors[0]");
        assert!(
            p.iter()
                .any(|m| m.starts_with("vendors[0].signals: endpoint ends in /v1/logs")),
            "{p:?}"
        );
    }

    #[test]
    fn baa_refusal_names_vendor_and_reason() {
        let c = cfg("name: cheap-logs\nendpoint: https://x.example\n");
        let p = c.validate("vendors[1]");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("vendors[1] (name \"cheap-logs\"): refused: baa_covered is not true")
        );
        assert!(p[0].contains("Business Associate Agreement"));
        assert!(p[0].contains("164.502(e)"));
        let c = cfg("name: cheap-logs\nendpoint: https://x.example\nbaa_covered: false\n");
        assert_eq!(c.validate("vendors[1]").len(), 1);
    }

    #[test]
    fn all_problems_reported_with_paths() {
        let c = cfg(r#"
name: "bad name"
endpoint: ftp://user:pw@x.example/
protocol: grpc
baa_covered: true
timeout: 0s
headers:
  content-type: text/plain
  "bad header": x
tls: { cert_file: /nonexistent/cert.pem }
batch: { max_records: 0 }
queue: { max_bytes: 10 }
retry: { initial_backoff: 2s, max_backoff: 1s }
signals: []
"#);
        let p = c.validate("vendors[2]");
        let has = |s: &str| p.iter().any(|m| m.starts_with(s));
        assert!(has("vendors[2].name:"), "{p:?}");
        assert!(has("vendors[2].endpoint: scheme \"ftp\""), "{p:?}");
        assert!(has("vendors[2].endpoint: credentials in the URL"), "{p:?}");
        assert!(
            has("vendors[2].headers.content-type: set by scrubs"),
            "{p:?}"
        );
        assert!(has("vendors[2].headers.bad header: not a valid"), "{p:?}");
        assert!(has("vendors[2].tls.key_file: required"), "{p:?}");
        assert!(has("vendors[2].timeout:"), "{p:?}");
        assert!(has("vendors[2].batch.max_records:"), "{p:?}");
        assert!(has("vendors[2].queue.max_bytes:"), "{p:?}");
        assert!(has("vendors[2].retry.max_backoff:"), "{p:?}");
        assert!(has("vendors[2].signals: empty"), "{p:?}");
        // The URL's password is not echoed.
        assert!(!p.iter().any(|m| m.contains("pw@")), "{p:?}");
    }

    #[test]
    fn allow_block_is_parsed_and_checked_with_its_path() {
        let c = cfg(
            "name: a\nendpoint: http://c:4318\nbaa_covered: true\nallow: { keys: [level, http.*], unstructured: keep }\n",
        );
        assert!(c.validate("vendors[0]").is_empty());
        assert_eq!(c.allow.as_ref().unwrap().keys, ["level", "http.*"]);
        let c = cfg("name: a\nendpoint: http://c:4318\nbaa_covered: true\nallow: { keys: [] }\n");
        let p = c.validate("vendors[1]");
        assert!(p[0].starts_with("vendors[1].allow.keys: empty"), "{p:?}");
        let c = cfg(
            "name: a\nendpoint: http://c:4318\nbaa_covered: true\nallow: { keys: [ok, 'a*b'] }\n",
        );
        let p = c.validate("vendors[1]");
        assert!(
            p[0].starts_with("vendors[1].allow.keys[1]: bad glob"),
            "{p:?}"
        );
        let e = serde_yaml::from_str::<VendorConfig>(
            "name: a\nendpoint: http://x\nbaa_covered: true\nallow: { keys: [a], mode: strict }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("mode"), "{e}");
    }

    #[test]
    fn grpc_endpoint_has_no_path() {
        let c =
            cfg("name: a\nendpoint: https://x:4317/v1/logs\nprotocol: grpc\nbaa_covered: true\n");
        assert!(c.validate("v").iter().any(|m| m.contains("no path")));
        let c = cfg("name: a\nendpoint: https://x:4317\nprotocol: grpc\nbaa_covered: true\n");
        assert!(c.validate("v").is_empty());
    }
}
