//! The OTLP receiver over real sockets: OTLP/HTTP (protobuf and JSON) and
//! OTLP/gRPC, hostile input (gzip bombs, oversized, malformed, slow
//! clients), backpressure answers, and the OpenTelemetry Rust SDK as a client.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
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
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use scrubs::metrics::Metrics;
use scrubs::pipeline::{BoxFuture, ExportOutcome, OtlpHandler, Rejection};
use scrubs::sources::otlp::{
    GrpcConfig, HttpConfig, OtlpAddrs, OtlpConfig, RpcStatus, BUSY_IDLE_TIMEOUT,
};
use scrubs::topology::{Built, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use support::gz;

// ---------------------------------------------------------------- handler

#[derive(Clone, Debug)]
enum Mode {
    Accept,
    Overloaded(Duration),
    Unavailable(Duration),
    Partial(i64, &'static str),
    Invalid(&'static str),
    Sleep(Duration),
}

#[derive(Default)]
struct Seen {
    logs: Vec<ExportLogsServiceRequest>,
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
}

struct TestHandler {
    mode: Mutex<Mode>,
    seen: Mutex<Seen>,
}

impl TestHandler {
    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    fn answer(&self) -> BoxFuture<'static, Result<ExportOutcome, Rejection>> {
        let mode = self.mode.lock().unwrap().clone();
        Box::pin(async move {
            match mode {
                Mode::Accept => Ok(ExportOutcome::default()),
                Mode::Overloaded(retry_after) => Err(Rejection::Overloaded { retry_after }),
                Mode::Unavailable(retry_after) => Err(Rejection::Unavailable { retry_after }),
                Mode::Partial(n, m) => Ok(ExportOutcome {
                    rejected: n,
                    message: m.to_string(),
                }),
                Mode::Invalid(m) => Err(Rejection::Invalid(m.to_string())),
                Mode::Sleep(d) => {
                    tokio::time::sleep(d).await;
                    Ok(ExportOutcome::default())
                }
            }
        })
    }

    fn logs_seen(&self) -> Vec<ExportLogsServiceRequest> {
        self.seen.lock().unwrap().logs.clone()
    }
}

impl OtlpHandler for TestHandler {
    fn logs(
        &self,
        req: ExportLogsServiceRequest,
    ) -> BoxFuture<'static, Result<ExportOutcome, Rejection>> {
        self.seen.lock().unwrap().logs.push(req);
        self.answer()
    }
    fn traces(
        &self,
        req: ExportTraceServiceRequest,
    ) -> BoxFuture<'static, Result<ExportOutcome, Rejection>> {
        self.seen.lock().unwrap().traces.push(req);
        self.answer()
    }
    fn metrics(
        &self,
        req: ExportMetricsServiceRequest,
    ) -> BoxFuture<'static, Result<ExportOutcome, Rejection>> {
        self.seen.lock().unwrap().metrics.push(req);
        self.answer()
    }
}

struct Rx {
    http: SocketAddr,
    grpc: SocketAddr,
    handler: Arc<TestHandler>,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn start(tweak: impl FnOnce(&mut OtlpConfig)) -> Rx {
    let mut cfg = OtlpConfig {
        http: Some(HttpConfig {
            address: "127.0.0.1:0".into(),
        }),
        grpc: Some(GrpcConfig {
            address: "127.0.0.1:0".into(),
        }),
        ..OtlpConfig::default()
    };
    tweak(&mut cfg);
    let handler = Arc::new(TestHandler {
        mode: Mutex::new(Mode::Accept),
        seen: Mutex::new(Seen::default()),
    });
    let metrics = Metrics::new();
    let (stop, rx) = watch::channel(false);
    let cx = Context::new("otlp", metrics.clone()).with_shutdown(rx);
    let Built {
        handle: OtlpAddrs { http, grpc },
        task,
    } = cfg
        .build(&cx, handler.clone() as Arc<dyn OtlpHandler>)
        .await
        .expect("receiver starts");
    let (http, grpc) = (http.expect("http bound"), grpc.expect("grpc bound"));
    assert_ne!(http.port(), 0);
    assert_ne!(grpc.port(), 0);
    Rx {
        http,
        grpc,
        handler,
        metrics,
        stop,
        task,
    }
}

// ---------------------------------------------------------------- payloads

fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(v.into())),
    }
}

fn kv(k: &str, v: AnyValue) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(v),
        key_strindex: 0,
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", s("checkout"))],
        ..Default::default()
    })
}

fn logs_req(body: &str) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 1,
                    body: Some(s(body)),
                    trace_id: vec![7; 16],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

fn traces_req() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: "GET /health".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

fn metrics_req() -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "queue.depth".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            value: Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(3)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// The OTLP/JSON examples from opentelemetry-proto (`examples/*.json`).
const LOGS_JSON: &str = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},"scopeLogs":[{"scope":{"name":"my.library","version":"1.0.0","attributes":[{"key":"my.scope.attribute","value":{"stringValue":"some scope attribute"}}]},"logRecords":[{"timeUnixNano":"1544712660300000000","observedTimeUnixNano":"1544712660300000000","severityNumber":10,"severityText":"Information","traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","body":{"stringValue":"Example log record"},"attributes":[{"key":"string.attribute","value":{"stringValue":"some string"}},{"key":"boolean.attribute","value":{"boolValue":true}},{"key":"int.attribute","value":{"intValue":"10"}},{"key":"double.attribute","value":{"doubleValue":637.704}},{"key":"array.attribute","value":{"arrayValue":{"values":[{"stringValue":"many"},{"stringValue":"values"}]}}},{"key":"map.attribute","value":{"kvlistValue":{"values":[{"key":"some.map.key","value":{"stringValue":"some value"}}]}}}]}]}]}]}"#;
const TRACE_JSON: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},"scopeSpans":[{"scope":{"name":"my.library","version":"1.0.0","attributes":[{"key":"my.scope.attribute","value":{"stringValue":"some scope attribute"}}]},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"EEE19B7EC3C1B173","name":"I'm a server span","startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","kind":2,"attributes":[{"key":"my.span.attr","value":{"stringValue":"some value"}}]}]}]}]}"#;
const METRICS_JSON: &str = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},"scopeMetrics":[{"scope":{"name":"my.library","version":"1.0.0","attributes":[{"key":"my.scope.attribute","value":{"stringValue":"some scope attribute"}}]},"metrics":[{"name":"my.counter","unit":"1","description":"I am a Counter","sum":{"aggregationTemporality":1,"isMonotonic":true,"dataPoints":[{"asDouble":5,"startTimeUnixNano":"1544712660300000000","timeUnixNano":"1544712660300000000","attributes":[{"key":"my.counter.attr","value":{"stringValue":"some value"}}]}]}},{"name":"my.gauge","unit":"1","description":"I am a Gauge","gauge":{"dataPoints":[{"asDouble":10,"timeUnixNano":"1544712660300000000","attributes":[{"key":"my.gauge.attr","value":{"stringValue":"some value"}}]}]}},{"name":"my.histogram","unit":"1","description":"I am a Histogram","histogram":{"aggregationTemporality":1,"dataPoints":[{"startTimeUnixNano":"1544712660300000000","timeUnixNano":"1544712660300000000","count":"2","sum":2,"bucketCounts":["1","1"],"explicitBounds":[1],"min":0,"max":2,"attributes":[{"key":"my.histogram.attr","value":{"stringValue":"some value"}}]}]}},{"name":"my.exponential.histogram","unit":"1","description":"I am an Exponential Histogram","exponentialHistogram":{"aggregationTemporality":1,"dataPoints":[{"startTimeUnixNano":"1544712660300000000","timeUnixNano":"1544712660300000000","count":"3","sum":10,"scale":0,"zeroCount":"1","positive":{"offset":1,"bucketCounts":["0","2"]},"min":0,"max":5,"zeroThreshold":0,"attributes":[{"key":"my.exponential.histogram.attr","value":{"stringValue":"some value"}}]}]}}]}]}]}"#;

// ---------------------------------------------------------------- raw HTTP

const PROTO: &str = "application/x-protobuf";
const JSON: &str = "application/json";

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `google.rpc.Status` of an error response, protobuf or JSON.
    fn rpc(&self) -> RpcStatus {
        if self.header("content-type") == Some(JSON) {
            let v: serde_json::Value = serde_json::from_slice(&self.body).expect("JSON status");
            RpcStatus::new(
                v["code"].as_i64().unwrap_or(0) as i32,
                v["message"].as_str().expect("message").to_string(),
            )
        } else {
            RpcStatus::decode(self.body.as_slice()).expect("protobuf status")
        }
    }
}

/// Parses a complete response from `buf`, if it is complete.
fn parse(buf: &[u8]) -> Option<Resp> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body = buf.get(end + 4..end + 4 + len)?.to_vec();
    Some(Resp {
        status,
        headers,
        body,
    })
}

/// Reads one response, tolerating a reset after it has arrived.
async fn read_response(s: &mut TcpStream) -> Option<Resp> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(r) = parse(&buf) {
            return Some(r);
        }
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return parse(&buf),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no response within 10s"),
        }
    }
}

fn head(
    method: &str,
    addr: SocketAddr,
    path: &str,
    ct: Option<&str>,
    ce: Option<&str>,
    len: Option<usize>,
) -> String {
    let mut h = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(ct) = ct {
        h += &format!("Content-Type: {ct}\r\n");
    }
    if let Some(ce) = ce {
        h += &format!("Content-Encoding: {ce}\r\n");
    }
    if let Some(len) = len {
        h += &format!("Content-Length: {len}\r\n");
    }
    h + "\r\n"
}

async fn post_with(addr: SocketAddr, path: &str, ct: &str, ce: Option<&str>, body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = head("POST", addr, path, Some(ct), ce, Some(body.len())).into_bytes();
    req.extend_from_slice(body);
    let _ = s.write_all(&req).await;
    read_response(&mut s).await.expect("a response")
}

async fn post(addr: SocketAddr, path: &str, ct: &str, body: &[u8]) -> Resp {
    post_with(addr, path, ct, None, body).await
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------- HTTP tests

#[tokio::test]
async fn http_protobuf_on_all_three_paths() {
    let rx = start(|_| {}).await;
    let r = post(
        rx.http,
        "/v1/logs",
        PROTO,
        &logs_req("GET /health 200").encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some(PROTO));
    let resp = ExportLogsServiceResponse::decode(r.body.as_slice()).unwrap();
    assert!(resp.partial_success.is_none());

    let r = post(rx.http, "/v1/traces", PROTO, &traces_req().encode_to_vec()).await;
    assert_eq!(r.status, 200);
    assert!(ExportTraceServiceResponse::decode(r.body.as_slice())
        .unwrap()
        .partial_success
        .is_none());
    let r = post(
        rx.http,
        "/v1/metrics",
        "application/x-protobuf; charset=binary",
        &metrics_req().encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(ExportMetricsServiceResponse::decode(r.body.as_slice())
        .unwrap()
        .partial_success
        .is_none());

    // An empty request is a valid (empty) export.
    let r = post(rx.http, "/v1/logs", PROTO, b"").await;
    assert_eq!(r.status, 200);

    let seen = rx.handler.seen.lock().unwrap();
    assert_eq!(seen.logs.len(), 2);
    assert_eq!(seen.logs[0], logs_req("GET /health 200"));
    assert_eq!(seen.traces, vec![traces_req()]);
    assert_eq!(seen.metrics, vec![metrics_req()]);
    drop(seen);
    assert_eq!(
        rx.metrics.value(
            "scrubs_otlp_requests_total",
            &[("transport", "http"), ("signal", "logs"), ("code", "200")]
        ),
        Some(2)
    );
    assert!(rx.metrics.sum("scrubs_otlp_request_bytes_total") > 0);
}

#[tokio::test]
async fn http_json_spec_examples_on_all_three_paths() {
    let rx = start(|_| {}).await;
    for (path, body) in [
        ("/v1/logs", LOGS_JSON),
        ("/v1/traces", TRACE_JSON),
        ("/v1/metrics", METRICS_JSON),
    ] {
        let r = post(rx.http, path, JSON, body.as_bytes()).await;
        assert_eq!(
            r.status,
            200,
            "{path}: {r:?} {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.header("content-type"), Some(JSON));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(v.get("partialSuccess").is_none(), "{v}");
    }
    let seen = rx.handler.seen.lock().unwrap();
    // Hex ids, lowerCamelCase names, int64 as strings, typed AnyValues.
    let lr = &seen.logs[0].resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(
        lr.trace_id,
        [
            0x5B, 0x8E, 0xFF, 0xF7, 0x98, 0x03, 0x81, 0x03, 0xD2, 0x69, 0xB6, 0x33, 0x81, 0x3F,
            0xC6, 0x0C
        ]
    );
    assert_eq!(lr.span_id, [0xEE, 0xE1, 0x9B, 0x7E, 0xC3, 0xC1, 0xB1, 0x74]);
    assert_eq!(lr.time_unix_nano, 1544712660300000000);
    assert_eq!(lr.severity_number, 10);
    assert_eq!(lr.body, Some(s("Example log record")));
    let attr = |k: &str| {
        lr.attributes
            .iter()
            .find(|a| a.key == k)
            .unwrap()
            .value
            .clone()
            .unwrap()
            .value
            .unwrap()
    };
    assert_eq!(attr("int.attribute"), Value::IntValue(10));
    assert_eq!(attr("boolean.attribute"), Value::BoolValue(true));
    assert_eq!(attr("double.attribute"), Value::DoubleValue(637.704));
    assert!(
        matches!(attr("map.attribute"), Value::KvlistValue(KeyValueList { ref values }) if values[0].key == "some.map.key")
    );
    let span = &seen.traces[0].resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.kind, 2);
    assert_eq!(
        span.parent_span_id,
        [0xEE, 0xE1, 0x9B, 0x7E, 0xC3, 0xC1, 0xB1, 0x73]
    );
    assert_eq!(span.end_time_unix_nano, 1544712661000000000);
    let ms = &seen.metrics[0].resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(ms.len(), 4);
    assert!(
        matches!(ms[0].data, Some(metric::Data::Sum(ref s)) if s.is_monotonic && s.data_points.len() == 1)
    );
    assert!(
        matches!(ms[2].data, Some(metric::Data::Histogram(ref h)) if h.data_points[0].bucket_counts == [1, 1])
    );
}

#[tokio::test]
async fn json_unknown_fields_are_ignored() {
    let rx = start(|_| {}).await;
    let body = r#"{"resourceLogs":[{"futureField":1,"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"},"newThing":{"a":[1]}}]}]}],"extra":true}"#;
    let r = post(rx.http, "/v1/logs", JSON, body.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[tokio::test]
async fn gzip_is_accepted() {
    let rx = start(|_| {}).await;
    let body = gz(&logs_req("gzipped").encode_to_vec());
    let r = post_with(rx.http, "/v1/logs", PROTO, Some("gzip"), &body).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = post_with(
        rx.http,
        "/v1/traces",
        JSON,
        Some("gzip"),
        &gz(TRACE_JSON.as_bytes()),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(rx.handler.logs_seen()[0], logs_req("gzipped"));
    // Corrupt gzip is bad data.
    let r = post_with(
        rx.http,
        "/v1/logs",
        PROTO,
        Some("gzip"),
        b"\x1f\x8b\x08\x00garbage",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.rpc().message.contains("gzip"), "{:?}", r.rpc());
}

#[tokio::test]
async fn small_gzip_bomb_is_refused_fast() {
    let rx = start(|c| {
        c.max_request_bytes = 64 * 1024;
        c.max_decompressed_bytes = 256 * 1024;
    })
    .await;
    let bomb = gz(&vec![0u8; 1 << 20]);
    assert!(bomb.len() < 2048, "bomb is {} bytes", bomb.len());
    let t = Instant::now();
    let r = post_with(rx.http, "/v1/logs", PROTO, Some("gzip"), &bomb).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(
        r.rpc().message.contains("max_decompressed_bytes"),
        "{:?}",
        r.rpc()
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // JSON requests get a JSON status.
    let r = post_with(rx.http, "/v1/logs", JSON, Some("gzip"), &bomb).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.header("content-type"), Some(JSON));
    assert_eq!(r.rpc().code, 8);
    assert!(rx.handler.logs_seen().is_empty());
    assert_eq!(
        rx.metrics.value(
            "scrubs_otlp_rejected_total",
            &[("reason", "decompressed_too_large")]
        ),
        Some(2)
    );
}

#[tokio::test]
async fn gigabyte_gzip_bomb_does_not_grow_memory() {
    // 64 gzip members of 16 MiB of zeros: about 1 GiB inflated from about
    // 1 MiB on the wire, under the default limits.
    let rx = start(|_| {}).await;
    let member = gz(&vec![0u8; 16 << 20]);
    let bomb: Vec<u8> = std::iter::repeat_n(member.as_slice(), 64)
        .flatten()
        .copied()
        .collect();
    assert!(bomb.len() < 4 << 20, "bomb is {} bytes", bomb.len());
    let before = peak_rss_kib();
    let t = Instant::now();
    let r = post_with(rx.http, "/v1/logs", PROTO, Some("gzip"), &bomb).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(
        r.rpc().message.contains("max_decompressed_bytes"),
        "{:?}",
        r.rpc()
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 256, "peak RSS grew by {grown_mib} MiB");
}

#[tokio::test]
async fn oversized_request_is_413_without_reading_it() {
    let rx = start(|c| c.max_request_bytes = 64 * 1024).await;
    // Declared too large: answered from the headers alone.
    let mut s = TcpStream::connect(rx.http).await.unwrap();
    s.write_all(
        head(
            "POST",
            rx.http,
            "/v1/logs",
            Some(PROTO),
            None,
            Some(10 << 20),
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let r = read_response(&mut s).await.expect("response");
    assert_eq!(r.status, 413);
    assert!(r.rpc().message.contains("max_request_bytes"));

    // Chunked, no length: cut off once past the limit.
    let mut s = TcpStream::connect(rx.http).await.unwrap();
    let mut h = format!(
        "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: {PROTO}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..17 {
        h.extend_from_slice(format!("{:x}\r\n", 4096).as_bytes());
        h.extend_from_slice(&[0u8; 4096]);
        h.extend_from_slice(b"\r\n");
    }
    s.write_all(&h).await.unwrap();
    let r = read_response(&mut s).await.expect("response");
    assert_eq!(r.status, 413);
    assert!(rx.handler.logs_seen().is_empty());
}

#[tokio::test]
async fn malformed_payloads_are_400_with_a_message() {
    let rx = start(|_| {}).await;
    let r = post(
        rx.http,
        "/v1/logs",
        PROTO,
        b"\xff\xff\xff\xff garbage \x00\x01",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some(PROTO));
    let st = r.rpc();
    assert_eq!(st.code, 3);
    assert!(st.message.contains("invalid OTLP protobuf"), "{st:?}");

    let r = post(rx.http, "/v1/traces", JSON, br#"{"resourceSpans": [ {"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some(JSON));
    assert!(
        r.rpc().message.contains("invalid OTLP JSON"),
        "{:?}",
        r.rpc()
    );

    // Wrong types; the message must not quote the value.
    let r = post(
        rx.http,
        "/v1/logs",
        JSON,
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"SSN 219-09-9999"}]}]}]}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(!r.rpc().message.contains("219"), "{:?}", r.rpc());

    // Nesting deep enough to threaten the stack is refused, not parsed.
    let mut deep = String::from(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":"#);
    for _ in 0..2000 {
        deep.push_str(r#"{"arrayValue":{"values":["#);
    }
    let r = post(rx.http, "/v1/logs", JSON, deep.as_bytes()).await;
    assert_eq!(r.status, 400);

    // Deep protobuf nesting hits prost's recursion limit.
    let mut v = s("leaf");
    for _ in 0..200 {
        v = AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![kv("k", v)],
            })),
        };
    }
    let mut req = logs_req("x");
    req.resource_logs[0].scope_logs[0].log_records[0].body = Some(v);
    let r = post(rx.http, "/v1/logs", PROTO, &req.encode_to_vec()).await;
    assert_eq!(r.status, 400);
    // Forget the deep value without a deep recursive drop on this stack.
    std::mem::forget(req);

    assert!(rx.handler.logs_seen().is_empty());
    assert!(rx.handler.seen.lock().unwrap().traces.is_empty());
    assert_eq!(
        rx.metrics
            .value("scrubs_otlp_rejected_total", &[("reason", "malformed")]),
        Some(5)
    );
}

#[tokio::test]
async fn moderately_nested_json_is_decoded() {
    // 25 levels of structured body: within the JSON depth limit, and must
    // not overflow the stack of a debug build.
    let rx = start(|_| {}).await;
    let mut body = String::from(r#"{"stringValue":"leaf"}"#);
    for _ in 0..25 {
        body = format!(r#"{{"kvlistValue":{{"values":[{{"key":"k","value":{body}}}]}}}}"#);
    }
    let json =
        format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{body}}}]}}]}}]}}"#);
    let r = post(rx.http, "/v1/logs", JSON, json.as_bytes()).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
}

#[tokio::test]
async fn unsupported_content_type_and_encoding_are_415() {
    let rx = start(|_| {}).await;
    let r = post(rx.http, "/v1/logs", "text/plain", b"hello").await;
    assert_eq!(r.status, 415);
    assert!(r.rpc().message.contains("Content-Type"));
    let mut s = TcpStream::connect(rx.http).await.unwrap();
    s.write_all(head("POST", rx.http, "/v1/logs", None, None, Some(0)).as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await.unwrap().status, 415);
    let r = post_with(rx.http, "/v1/logs", PROTO, Some("br"), b"x").await;
    assert_eq!(r.status, 415);
    assert!(r.rpc().message.contains("Content-Encoding"));
}

#[tokio::test]
async fn wrong_path_and_method() {
    let rx = start(|_| {}).await;
    assert_eq!(post(rx.http, "/v1/profiles", PROTO, b"").await.status, 404);
    let mut s = TcpStream::connect(rx.http).await.unwrap();
    s.write_all(head("GET", rx.http, "/v1/logs", None, None, None).as_bytes())
        .await
        .unwrap();
    let r = read_response(&mut s).await.unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
}

#[tokio::test]
async fn overloaded_and_unavailable_carry_retry_after() {
    let rx = start(|_| {}).await;
    let body = logs_req("x").encode_to_vec();
    rx.handler.set(Mode::Overloaded(Duration::from_secs(7)));
    let r = post(rx.http, "/v1/logs", PROTO, &body).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.rpc().code, 8);

    rx.handler
        .set(Mode::Unavailable(Duration::from_millis(2500)));
    let r = post(rx.http, "/v1/traces", JSON, TRACE_JSON.as_bytes()).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(r.rpc().code, 14);

    rx.handler.set(Mode::Invalid("record 3 has no timestamp"));
    let r = post(rx.http, "/v1/logs", PROTO, &body).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.rpc().message, "record 3 has no timestamp");
    assert!(r.header("retry-after").is_none());

    assert_eq!(
        rx.metrics.value(
            "scrubs_otlp_requests_total",
            &[("transport", "http"), ("signal", "logs"), ("code", "429")]
        ),
        Some(1)
    );
    assert_eq!(
        rx.metrics
            .value("scrubs_otlp_rejected_total", &[("reason", "overloaded")]),
        Some(1)
    );
    assert_eq!(
        rx.metrics
            .value("scrubs_otlp_rejected_total", &[("reason", "unavailable")]),
        Some(1)
    );
}

#[tokio::test]
async fn partial_success_is_reported() {
    let rx = start(|_| {}).await;
    rx.handler
        .set(Mode::Partial(2, "2 records dropped: redaction budget"));
    let r = post(rx.http, "/v1/logs", PROTO, &logs_req("x").encode_to_vec()).await;
    assert_eq!(r.status, 200);
    let ps = ExportLogsServiceResponse::decode(r.body.as_slice())
        .unwrap()
        .partial_success
        .expect("partial_success set");
    assert_eq!(ps.rejected_log_records, 2);
    assert_eq!(ps.error_message, "2 records dropped: redaction budget");

    let r = post(rx.http, "/v1/metrics", JSON, METRICS_JSON.as_bytes()).await;
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedDataPoints"], 2, "{v}");
    assert_eq!(
        v["partialSuccess"]["errorMessage"],
        "2 records dropped: redaction budget"
    );
    let parsed: ExportMetricsServiceResponse = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(parsed.partial_success.unwrap().rejected_data_points, 2);
    assert_eq!(
        rx.metrics
            .value("scrubs_otlp_rejected_records_total", &[("signal", "logs")]),
        Some(2)
    );
}

#[tokio::test]
async fn too_many_requests_at_once_get_429() {
    let rx = start(|c| c.max_concurrent_requests = 1).await;
    rx.handler.set(Mode::Sleep(Duration::from_millis(1500)));
    let body = logs_req("x").encode_to_vec();
    let addr = rx.http;
    let b2 = body.clone();
    let first = tokio::spawn(async move { post(addr, "/v1/logs", PROTO, &b2).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = post(rx.http, "/v1/logs", PROTO, &body).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(first.await.unwrap().status, 200);
    // The slot is free again.
    rx.handler.set(Mode::Accept);
    assert_eq!(post(rx.http, "/v1/logs", PROTO, &body).await.status, 200);
}

#[tokio::test]
async fn slow_body_is_cut_off_with_408() {
    let rx = start(|c| c.request_timeout = Duration::from_millis(1500)).await;
    let s = TcpStream::connect(rx.http).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let t = Instant::now();
    wr.write_all(head("POST", rx.http, "/v1/logs", Some(PROTO), None, Some(100)).as_bytes())
        .await
        .unwrap();
    let writer = tokio::spawn(async move {
        for _ in 0..100 {
            if wr.write_all(b"\x0a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut buf)).await;
    let took = t.elapsed();
    writer.abort();
    let r = parse(&buf).expect("a 408 response");
    assert_eq!(r.status, 408);
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(rx.handler.logs_seen().is_empty());
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let rx = start(|c| c.request_timeout = Duration::from_millis(1000)).await;
    let s = TcpStream::connect(rx.http).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let t = Instant::now();
    let writer = tokio::spawn(async move {
        for b in b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n" {
            if wr.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut buf = Vec::new();
    let res = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut buf)).await;
    let took = t.elapsed();
    writer.abort();
    assert!(res.is_ok(), "connection still open after 10s");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // A silent connection is closed too.
    let mut s = TcpStream::connect(rx.http).await.unwrap();
    let t = Instant::now();
    let mut b = [0u8; 64];
    let res = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await;
    assert!(res.is_ok() && t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn connections_are_bounded() {
    let rx = start(|c| c.max_connections = 2).await;
    // Two connections busy: each has sent a request's headers and holds
    // back its body, so a request is in flight on both.
    let busy = head("POST", rx.http, "/v1/logs", Some(PROTO), None, Some(10)).into_bytes();
    let mut a = TcpStream::connect(rx.http).await.unwrap();
    a.write_all(&busy).await.unwrap();
    let mut b = TcpStream::connect(rx.http).await.unwrap();
    b.write_all(&busy).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // With no idle connection to close, the third is closed as soon as it
    // is accepted.
    let mut c = TcpStream::connect(rx.http).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(matches!(n, Ok(0) | Err(_)));
    assert_eq!(
        rx.metrics
            .value("scrubs_otlp_rejected_total", &[("reason", "connections")]),
        Some(1)
    );
    // The first two still work.
    for s in [&mut a, &mut b] {
        s.write_all(&[0u8; 10]).await.unwrap();
        assert!(read_response(s).await.is_some());
    }
}

/// Hundreds of idle connections (a client that opens them and sends
/// nothing) at the default limit of 256: a real client still gets through
/// at once, each time by closing the connection idle longest, and the idle
/// ones are closed within seconds because the limit is near.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_lock_out_a_client() {
    let rx = start(|_| {}).await;
    let mut idle = Vec::new();
    for i in 0..256 {
        idle.push(TcpStream::connect(rx.http).await.unwrap());
        if i == 0 {
            // The first is the oldest by a margin.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = logs_req("order shipped").encode_to_vec();
    for i in 0..20 {
        let t = Instant::now();
        let r = post(rx.http, "/v1/logs", PROTO, &body).await;
        assert_eq!(r.status, 200, "client {i}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "client {i}: {:?}",
            t.elapsed()
        );
    }
    let closed = rx
        .metrics
        .value("scrubs_otlp_idle_connections_closed_total", &[])
        .unwrap_or(0);
    assert!(closed >= 1, "{closed} idle connections closed");
    assert_eq!(
        rx.metrics
            .value("scrubs_otlp_rejected_total", &[("reason", "connections")]),
        None
    );
    // The oldest idle connection was the first closed.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(1), idle[0].read(&mut buf))
        .await
        .expect("the longest-idle connection was closed");
    assert!(matches!(n, Ok(0) | Err(_)));
    // Near the limit (three quarters of it), idle connections are closed
    // after BUSY_IDLE_TIMEOUT, not after idle_timeout (2 minutes), until
    // the listener is below three quarters again: room for 64 clients.
    tokio::time::sleep(BUSY_IDLE_TIMEOUT + Duration::from_secs(3)).await;
    let mut closed_now = 0;
    for s in idle.iter_mut().skip(1) {
        if let Ok(n) = tokio::time::timeout(Duration::from_millis(2), s.read(&mut buf)).await {
            assert!(matches!(n, Ok(0) | Err(_)));
            closed_now += 1;
        }
    }
    assert!(
        (255 - 191..255).contains(&closed_now),
        "{closed_now} of 255 idle connections closed near the limit"
    );
}

#[tokio::test]
async fn silent_grpc_connection_is_closed() {
    let rx = start(|c| {
        c.request_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut s = TcpStream::connect(rx.grpc).await.unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let res = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(res.is_ok(), "still open after 10s");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[tokio::test]
async fn shutdown_stops_the_listeners() {
    let rx = start(|c| c.request_timeout = Duration::from_secs(1)).await;
    assert_eq!(post(rx.http, "/v1/logs", PROTO, b"").await.status, 200);
    // An idle keep-alive connection must not hold up shutdown.
    let _idle = TcpStream::connect(rx.http).await.unwrap();
    rx.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.task)
        .await
        .expect("receiver stops within 5s")
        .unwrap();
    assert!(TcpStream::connect(rx.http).await.is_err());
    assert!(TcpStream::connect(rx.grpc).await.is_err());
}

#[tokio::test]
async fn bad_config_is_refused() {
    let (_tx, rx) = watch::channel(false);
    let handler = Arc::new(TestHandler {
        mode: Mutex::new(Mode::Accept),
        seen: Mutex::new(Seen::default()),
    });
    let cfg = OtlpConfig {
        max_request_bytes: 0,
        ..OtlpConfig::default()
    };
    let cx = Context::new("otlp", Metrics::new()).with_shutdown(rx);
    let err = cfg.build(&cx, handler).await.unwrap_err();
    assert!(err.is_config(), "{err:?}");
    assert_eq!(err.component(), "otlp");
    let err = err.to_string();
    assert!(err.contains("max_request_bytes"), "{err}");
}

// ---------------------------------------------------------------- gRPC tests

async fn grpc_client(addr: SocketAddr) -> LogsServiceClient<tonic::transport::Channel> {
    LogsServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
}

#[tokio::test]
async fn grpc_export_reaches_the_handler() {
    let rx = start(|_| {}).await;
    let mut client = grpc_client(rx.grpc).await;
    let resp = client
        .export(logs_req("over grpc"))
        .await
        .expect("export")
        .into_inner();
    assert!(resp.partial_success.is_none());
    // gzip too.
    let mut gz_client = grpc_client(rx.grpc)
        .await
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    gz_client
        .export(logs_req("gzipped grpc"))
        .await
        .expect("gzip export");
    let seen = rx.handler.logs_seen();
    assert_eq!(seen, vec![logs_req("over grpc"), logs_req("gzipped grpc")]);

    rx.handler.set(Mode::Partial(1, "one dropped"));
    let resp = client.export(logs_req("x")).await.unwrap().into_inner();
    assert_eq!(resp.partial_success.unwrap().rejected_log_records, 1);
    assert_eq!(
        rx.metrics.value(
            "scrubs_otlp_requests_total",
            &[("transport", "grpc"), ("signal", "logs"), ("code", "OK")]
        ),
        Some(3)
    );
    assert!(
        rx.metrics
            .value(
                "scrubs_otlp_request_bytes_total",
                &[("transport", "grpc"), ("signal", "logs")]
            )
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn grpc_rejections_map_to_status_codes() {
    let rx = start(|_| {}).await;
    let mut client = grpc_client(rx.grpc).await;

    rx.handler.set(Mode::Overloaded(Duration::from_secs(5)));
    let st = client.export(logs_req("x")).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::ResourceExhausted);
    let details = RpcStatus::decode(st.details()).expect("status details");
    assert_eq!(details.retry_delay(), Some(Duration::from_secs(5)));

    rx.handler.set(Mode::Unavailable(Duration::from_secs(2)));
    let st = client.export(logs_req("x")).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::Unavailable);
    assert_eq!(
        RpcStatus::decode(st.details()).unwrap().retry_delay(),
        Some(Duration::from_secs(2))
    );

    rx.handler.set(Mode::Invalid("bad"));
    let st = client.export(logs_req("x")).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        rx.metrics.value(
            "scrubs_otlp_requests_total",
            &[
                ("transport", "grpc"),
                ("signal", "logs"),
                ("code", "RESOURCE_EXHAUSTED")
            ]
        ),
        Some(1)
    );
}

#[tokio::test]
async fn grpc_limits() {
    let rx = start(|c| {
        c.max_request_bytes = 64 * 1024;
        c.max_decompressed_bytes = 256 * 1024;
    })
    .await;
    // Over the wire limit, uncompressed.
    let mut client = grpc_client(rx.grpc).await;
    let big = logs_req(&"a".repeat(128 * 1024));
    let st = client.export(big).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::ResourceExhausted, "{st:?}");
    // Small on the wire, too large inflated.
    let mut gz_client = grpc_client(rx.grpc)
        .await
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let bomb = logs_req(&"a".repeat(1 << 20));
    let st = gz_client.export(bomb).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::ResourceExhausted, "{st:?}");
    assert!(rx.handler.logs_seen().is_empty());
    assert_eq!(
        rx.metrics
            .value("scrubs_otlp_rejected_total", &[("reason", "too_large")]),
        Some(1)
    );
    assert_eq!(
        rx.metrics.value(
            "scrubs_otlp_rejected_total",
            &[("reason", "decompressed_too_large")]
        ),
        Some(1)
    );
    // Still serving.
    client.export(logs_req("ok")).await.expect("small export");
}

#[tokio::test]
async fn grpc_malformed_is_invalid_argument() {
    // A hand-made gRPC frame with a garbage protobuf, over raw HTTP/2.
    let rx = start(|_| {}).await;
    let stream = TcpStream::connect(rx.grpc).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let garbage = b"\xff\xff\xff\xff\x0f";
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(garbage.len() as u32).to_be_bytes());
    frame.extend_from_slice(garbage);
    let req = hyper::Request::post(format!(
        "http://{}/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        rx.grpc
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(http_body_util::Full::new(bytes::Bytes::from(frame)))
    .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(status.as_deref(), Some("3"), "{:?}", resp.headers());
    assert!(rx.handler.logs_seen().is_empty());
}

// ---------------------------------------------------------------- the SDK

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_sdk_http_exporter_delivers_a_log() {
    use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
    use opentelemetry_otlp::WithExportConfig;

    let rx = start(|_| {}).await;
    let endpoint = format!("http://{}/v1/logs", rx.http);
    // The SDK's blocking HTTP client and batch processor run on their own
    // threads; keep them off the runtime's.
    tokio::task::spawn_blocking(move || {
        let exporter = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .with_timeout(Duration::from_secs(5))
            .build()
            .expect("exporter");
        let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("sdk-test")
                    .build(),
            )
            .with_batch_exporter(exporter)
            .build();
        let logger = provider.logger("scrubs-test");
        let mut rec = logger.create_log_record();
        rec.set_body("hello from the sdk".into());
        rec.set_severity_number(Severity::Info);
        logger.emit(rec);
        provider.force_flush().expect("flush");
        provider.shutdown().expect("shutdown");
    })
    .await
    .unwrap();

    let seen = rx.handler.logs_seen();
    assert_eq!(seen.len(), 1, "one export");
    let rl = &seen[0].resource_logs[0];
    let service = rl
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|a| a.key == "service.name")
        .unwrap();
    assert_eq!(service.value, Some(s("sdk-test")));
    let lr = &rl.scope_logs[0].log_records[0];
    assert_eq!(lr.body, Some(s("hello from the sdk")));
    assert_eq!(lr.severity_number, 9);
}
