//! Helpers shared by the integration tests: PHI to plant, files to append
//! to, a vendor endpoint, Kafka topics, `scrubs run` as a child process and
//! an HTTP client. One copy of each, so that the tests agree on them.
//!
//! Each test binary compiles its own copy of this module and uses only part
//! of it, so unused items are allowed here instead of warned about in every
//! binary that does not need them.
#![allow(dead_code)]

#[path = "bootstrap.rs"]
mod bootstrap;

use std::convert::Infallible;
use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::runtime::Runtime;

// ---------------------------------------------------------------- PHI

/// PHI planted in the input of the fail-closed and bad-input tests; none
/// may reach the vendor raw.
pub const CANARIES: &[&str] = &[
    "Maria Gonzalez",
    "219-09-9999",
    "maria.gonzalez@example.com",
    "(415) 555-0132",
    "48291734",
];

/// A logfmt line carrying every value of [`CANARIES`], numbered `i`.
pub fn phi_line(i: usize) -> String {
    phi_line_with(i, "")
}

/// [`phi_line`] with `extra` (more fields, each after a space) before the
/// number.
pub fn phi_line_with(i: usize, extra: &str) -> String {
    format!(
        r#"level=info msg="lookup" patient_name="Maria Gonzalez" ssn=219-09-9999 email=maria.gonzalez@example.com phone=(415) 555-0132 mrn=48291734{extra} i={i}"#
    )
}

/// A JSON line with PHI under keys, nested `depth` objects deep.
pub fn deep_json(depth: usize) -> String {
    format!(
        "{}{}{}",
        r#"{"a":"#.repeat(depth),
        r#"{"patient_name":"Maria Gonzalez","ssn":"219-09-9999","mrn":"48291734"}"#,
        "}".repeat(depth)
    )
}

/// An OTLP string value.
pub fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(v.to_string())),
    }
}

/// An OTLP attribute.
pub fn kv(k: &str, v: AnyValue) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(v),
        key_strindex: 0,
    }
}

/// OTLP attributes that are PHI by key: a name, an SSN, an email address
/// and a medical record number.
pub fn phi_attrs() -> Vec<KeyValue> {
    vec![
        kv("patient.name", s("Maria Gonzalez")),
        kv("patient.ssn", s("219-09-9999")),
        kv("email", s("maria.gonzalez@example.com")),
        kv("mrn", s("48291734")),
    ]
}

// ---------------------------------------------------------------- files

/// Appends `text` to the file at `path`, creating it if needed, in one
/// write.
pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Appends each of `lines` and a newline to the file at `path`, in one
/// write (see [`append`]).
pub fn append_lines<L: AsRef<str>>(path: &Path, lines: impl IntoIterator<Item = L>) {
    let mut text = String::new();
    for l in lines {
        text.push_str(l.as_ref());
        text.push('\n');
    }
    append(path, &text);
}

/// `data` gzipped (best compression), as a client sends a
/// `Content-Encoding: gzip` body.
pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

// ---------------------------------------------------------------- ports, Kafka

/// A port that was free a moment ago, for a server the test starts next.
///
/// Taken from below the kernel's ephemeral range (32768–60999 by default),
/// not from port 0: a port the kernel picked for us was also one it could
/// hand to any outgoing connection (to Kafka, to a vendor) in the moment
/// before the server binds it, which made tests fail now and then with
/// "Address already in use". Ports are tried in an order of their own per
/// process (pid and clock), and none is handed out twice in one process.
pub fn free_port() -> u16 {
    use std::sync::atomic::AtomicU32;
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let seed = || {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        (std::process::id().wrapping_mul(7919) ^ nanos) % SPAN
    };
    let _ = NEXT.compare_exchange(u32::MAX, seed(), Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..SPAN {
        // A stride coprime to SPAN visits every port once per cycle.
        let n = NEXT.fetch_add(7, Ordering::Relaxed) % SPAN;
        let port = (LOW + n) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The ports of one `scrubs run`: the vendor it exports to, its admin
/// endpoint and its OTLP receiver.
pub struct Ports {
    pub vendor: u16,
    pub admin: u16,
    pub http: u16,
    pub grpc: u16,
}

impl Ports {
    /// The vendor's port, and free ports for the rest.
    pub fn new(vendor: u16) -> Ports {
        Ports {
            vendor,
            admin: free_port(),
            http: free_port(),
            grpc: free_port(),
        }
    }
}

pub use self::bootstrap::bootstrap;

/// A topic name no other test or run uses: `scrubs-<name>-<pid>-<nanos>`.
pub fn unique_topic(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("scrubs-{name}-{}-{nanos}", std::process::id())
}

/// Creates a topic of `partitions` partitions on the dev broker; panics
/// with what to do when the broker cannot be reached.
pub fn create_topic(rt: &Runtime, name: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin client");
    let topic =
        NewTopic::new(name, partitions, TopicReplication::Fixed(1)).set("min.insync.replicas", "1");
    let res = rt
        .block_on(admin.create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        ))
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach Kafka at {} ({e}); run deploy/dev/kafka.sh start",
                bootstrap()
            )
        });
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

// ---------------------------------------------------------------- vendor

/// Serves HTTP/1.1 on a free port of 127.0.0.1, each request answered by
/// `handler`; returns the port.
pub fn serve<F, Fut>(rt: &Runtime, handler: F) -> u16
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let answer = handler(req);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    port
}

/// What the recording vendor received, decompressed and decoded.
#[derive(Default)]
pub struct Received {
    /// Every request body, decompressed (raw protobuf): canaries are
    /// searched in these bytes, so no field escapes the check.
    pub raw: Vec<Vec<u8>>,
    pub logs: Vec<LogRecord>,
    /// The string bodies of `logs`, in the order they came.
    pub bodies: Vec<String>,
    pub spans: Vec<Span>,
    /// Data points of gauges.
    pub data_points: usize,
}

impl Received {
    pub fn contains(&self, needle: &str) -> bool {
        let n = needle.as_bytes();
        self.raw.iter().any(|r| r.windows(n.len()).any(|w| w == n))
    }

    /// Decodes one request posted to `path` and keeps what it holds;
    /// returns the encoded success answer.
    pub fn record(&mut self, path: &str, raw: Vec<u8>) -> Vec<u8> {
        let reply = match path {
            "/v1/logs" => {
                let r = ExportLogsServiceRequest::decode(&raw[..]).unwrap();
                for rl in r.resource_logs {
                    for sl in rl.scope_logs {
                        for lr in sl.log_records {
                            if let Some(Value::StringValue(s)) =
                                lr.body.as_ref().and_then(|b| b.value.as_ref())
                            {
                                self.bodies.push(s.clone());
                            }
                            self.logs.push(lr);
                        }
                    }
                }
                ExportLogsServiceResponse::default().encode_to_vec()
            }
            "/v1/traces" => {
                let r = ExportTraceServiceRequest::decode(&raw[..]).unwrap();
                for rs in r.resource_spans {
                    for ss in rs.scope_spans {
                        self.spans.extend(ss.spans);
                    }
                }
                ExportTraceServiceResponse::default().encode_to_vec()
            }
            _ => {
                let r = ExportMetricsServiceRequest::decode(&raw[..]).unwrap();
                for rm in r.resource_metrics {
                    for sm in rm.scope_metrics {
                        for m in sm.metrics {
                            if let Some(Data::Gauge(ga)) = m.data {
                                self.data_points += ga.data_points.len();
                            }
                        }
                    }
                }
                ExportMetricsServiceResponse::default().encode_to_vec()
            }
        };
        self.raw.push(raw);
        reply
    }
}

/// An OTLP/HTTP vendor endpoint decoding logs, traces and metrics and
/// answering every request with success.
pub fn start_vendor(rt: &Runtime) -> (u16, Arc<Mutex<Received>>) {
    let got = Arc::new(Mutex::new(Received::default()));
    let store = got.clone();
    let port = serve(rt, move |req| {
        let store = store.clone();
        async move {
            let path = req.uri().path().to_string();
            let raw = read_body(req).await;
            let reply = store.lock().unwrap().record(&path, raw);
            Response::new(Full::new(Bytes::from(reply)))
        }
    });
    (port, got)
}

/// A vendor that answers every request after `delay`, with 503 while
/// `down` is set; records what it accepted.
pub struct SlowVendor {
    pub port: u16,
    pub got: Arc<Mutex<Received>>,
    pub down: Arc<AtomicBool>,
    pub requests: Arc<AtomicU64>,
}

pub fn slow_vendor(rt: &Runtime, delay: Duration) -> SlowVendor {
    let got = Arc::new(Mutex::new(Received::default()));
    let down = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let (store, is_down, count) = (got.clone(), down.clone(), requests.clone());
    let port = serve(rt, move |req| {
        let (store, is_down, count) = (store.clone(), is_down.clone(), count.clone());
        async move {
            count.fetch_add(1, Ordering::Relaxed);
            let path = req.uri().path().to_string();
            let raw = read_body(req).await;
            tokio::time::sleep(delay).await;
            if is_down.load(Ordering::Relaxed) {
                return Response::builder()
                    .status(503)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
            }
            let reply = store.lock().unwrap().record(&path, raw);
            Response::new(Full::new(Bytes::from(reply)))
        }
    });
    SlowVendor {
        port,
        got,
        down,
        requests,
    }
}

/// A request's body, inflated when it came with `Content-Encoding: gzip`.
pub async fn read_body(req: Request<Incoming>) -> Vec<u8> {
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let body = req.into_body().collect().await.unwrap().to_bytes();
    if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        body.to_vec()
    }
}

// ---------------------------------------------------------------- configuration

/// A `scrubs run` configuration: a file source `app`, optionally an OTLP
/// source and an audit fork to Kafka, and one vendor `test-vendor`. Each
/// test adds its own settings, one `key: value` a line, to the sections it
/// needs them in.
pub struct Sidecar<'a> {
    /// The file source's one `include` entry.
    pub include: String,
    /// File source settings after `poll_interval: 50ms`.
    pub file: &'a [&'a str],
    /// An OTLP source on `Ports::http` and `Ports::grpc` with these
    /// settings, or none.
    pub otlp: Option<&'a [&'a str]>,
    /// An audit fork, or none.
    pub audit: Option<Audit<'a>>,
    /// The vendor's `batch` settings, `max_wait: 50ms` unless a test
    /// needs others.
    pub vendor_batch: &'a str,
    /// Vendor settings after `batch`.
    pub vendor: &'a [&'a str],
    /// More entries of `vendors:`, each written as it is (a YAML list item
    /// starting `  - name: ...`), after the test vendor.
    pub more_vendors: &'a [&'a str],
    /// Top-level sections written as they are, before `shutdown`.
    pub extra: &'a str,
    pub drain_deadline: &'a str,
}

/// The audit fork of a [`Sidecar`]: records with `audit: "true"`, keyed by
/// `patient_id`.
pub struct Audit<'a> {
    pub brokers: String,
    pub topic: &'a str,
    /// `audit.kafka` settings after `spool_dir`.
    pub kafka: &'a [&'a str],
}

impl Default for Sidecar<'_> {
    fn default() -> Self {
        Sidecar {
            include: String::new(),
            file: &[],
            otlp: None,
            audit: None,
            vendor_batch: "max_wait: 50ms",
            vendor: &[],
            more_vendors: &[],
            extra: "",
            drain_deadline: "10s",
        }
    }
}

impl Sidecar<'_> {
    /// Writes the configuration to `dir/scrubs.yaml`, with `dir/data` as
    /// its data directory; returns its path.
    pub fn write(&self, dir: &Path, p: &Ports) -> PathBuf {
        let data = dir.join("data");
        let data = data.display();
        let lines = |settings: &[&str], indent: &str| -> String {
            settings.iter().map(|s| format!("{indent}{s}\n")).collect()
        };
        let mut cfg = format!(
            "data_dir: {data}\nsources:\n  app:\n    type: file\n    include: [\"{}\"]\n    poll_interval: 50ms\n{}",
            self.include,
            lines(self.file, "    "),
        );
        if let Some(otlp) = self.otlp {
            cfg.push_str(&format!(
                "  otlp:\n    type: otlp\n    http: {{ address: \"127.0.0.1:{}\" }}\n    grpc: {{ address: \"127.0.0.1:{}\" }}\n{}",
                p.http,
                p.grpc,
                lines(otlp, "    "),
            ));
        }
        if let Some(a) = &self.audit {
            cfg.push_str(&format!(
                "audit:\n  kafka:\n    brokers: \"{}\"\n    topic: {}\n    spool_dir: {data}/audit\n{}  select:\n    fields:\n      audit: [\"true\"]\n    key_field: patient_id\n",
                a.brokers,
                a.topic,
                lines(a.kafka, "    "),
            ));
        }
        cfg.push_str(&format!(
            "vendors:\n  - name: test-vendor\n    endpoint: http://127.0.0.1:{}\n    baa_covered: true\n    batch: {{ {} }}\n{}{}admin:\n  address: \"127.0.0.1:{}\"\n{}shutdown:\n  drain_deadline: {}\n",
            p.vendor,
            self.vendor_batch,
            lines(self.vendor, "    "),
            self.more_vendors.concat(),
            p.admin,
            self.extra,
            self.drain_deadline,
        ));
        let path = dir.join("scrubs.yaml");
        std::fs::write(&path, cfg).unwrap();
        path
    }
}

// ---------------------------------------------------------------- the process

/// A running `scrubs run` whose stderr is collected by a thread (so that a
/// chatty log never blocks it on a full pipe). Killed when dropped.
pub struct Scrubs {
    pub child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Scrubs {
    /// `scrubs run --config cfg` with `env` added to its environment;
    /// stdout is discarded.
    pub fn start(cfg: &Path, env: &[(&str, &str)]) -> Scrubs {
        Scrubs::spawn(cfg, env, false)
    }

    /// As [`Scrubs::start`], with stdout (which `run` does not use)
    /// collected with stderr, so that a check of the log covers it too.
    pub fn start_capturing_stdout(cfg: &Path, env: &[(&str, &str)]) -> Scrubs {
        Scrubs::spawn(cfg, env, true)
    }

    fn spawn(cfg: &Path, env: &[(&str, &str)], stdout: bool) -> Scrubs {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scrubs"));
        cmd.args(["run", "--config", cfg.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(if stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = vec![collect(child.stderr.take().unwrap(), stderr.clone())];
        if let Some(out) = child.stdout.take() {
            readers.push(collect(out, stderr.clone()));
        }
        Scrubs {
            child,
            stderr,
            readers,
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Everything written to stderr so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits (60 s at most) until the admin endpoint answers `path` with
    /// 200, failing at once if the process exits.
    pub fn wait_http(&mut self, admin: u16, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(admin, path).is_none_or(|r| r.0 != 200) {
            assert!(self.alive(), "scrubs exited: {}", self.log());
            assert!(Instant::now() < deadline, "{path} never answered 200");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until scrubs is ready (sources open, sinks healthy).
    pub fn wait_ready(&mut self, admin: u16) {
        self.wait_http(admin, "/readyz");
    }

    /// SIGTERM; the exit code (`None` if it had to be killed after 30 s)
    /// and everything written to stderr.
    pub fn stop(mut self) -> (Option<i32>, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(30);
        let mut code = None;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                code = s.code();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if code.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        (code, self.log())
    }

    /// A `/proc/<pid>/status` field in bytes (`VmHWM`, `VmRSS`).
    pub fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .expect("field in /proc/<pid>/status")
            * 1024
    }
}

impl Drop for Scrubs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The log is kept, not printed, while the test passes; a failing
        // test (a panic) shows it, through the harness's capture, below
        // its own message.
        if std::thread::panicking() {
            for r in self.readers.drain(..) {
                let _ = r.join();
            }
            eprintln!(
                "---- stderr of scrubs (pid {}) ----\n{}---- end of scrubs' stderr ----",
                self.child.id(),
                self.log()
            );
        }
    }
}

/// A thread appending everything read from `pipe` to `sink`.
fn collect(mut pipe: impl Read + Send + 'static, sink: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

// ---------------------------------------------------------------- HTTP client

/// A minimal HTTP/1.1 exchange with extra headers: status and body.
pub fn http_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let end = out.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = std::str::from_utf8(&out[..end])
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, out[end + 4..].to_vec()))
}

/// GET: status and body as text.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_with(port, "GET", path, &[], b"")
        .map(|(c, b)| (c, String::from_utf8_lossy(&b).into_owned()))
}

/// POST of an OTLP protobuf body: status and body.
pub fn post_proto(port: u16, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    http_with(
        port,
        "POST",
        path,
        &[("Content-Type", "application/x-protobuf")],
        body,
    )
    .expect("OTLP answers")
}

/// A series' value in Prometheus text (0 if absent).
pub fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Polls `done` every 100 ms; fails after `secs` seconds.
pub fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The audit events of `topic` that the service's records made: the flow
/// records every sidecar adds at its drain (stream `scrubs-flowmap`, see
/// `scrubs audit flowmap`) are left out. [`all_audit_messages`] keeps them.
pub fn audit_messages(
    topic: &str,
    idle: Duration,
) -> Vec<scrubs::sinks::audit::verify::RawMessage> {
    let flow = b"\"stream\":\"scrubs-flowmap\"";
    all_audit_messages(topic, idle)
        .into_iter()
        .filter(|m| {
            !m.payload
                .as_deref()
                .is_some_and(|p| p.windows(flow.len()).any(|w| w == flow))
        })
        .collect()
}

/// Every message of an audit topic on the test broker, read until the topic
/// has been idle for `idle`.
pub fn all_audit_messages(
    topic: &str,
    idle: Duration,
) -> Vec<scrubs::sinks::audit::verify::RawMessage> {
    use scrubs::sinks::audit::verify::{read_topic, RawMessage, TopicReadOptions};
    let mut messages = Vec::new();
    read_topic(
        &TopicReadOptions {
            brokers: bootstrap(),
            topic: topic.to_string(),
            properties: Vec::new(),
            idle_timeout: idle,
        },
        |partition, offset, key, value| {
            messages.push(RawMessage {
                partition,
                offset,
                key: key.map(<[u8]>::to_vec),
                payload: value.map(<[u8]>::to_vec),
            })
        },
    )
    .unwrap();
    messages
}
