//! Vendor export against real OTLP endpoints on 127.0.0.1: an OTLP/HTTP
//! server that decodes (and gunzips) what it receives, over plain HTTP and
//! TLS, and a tonic OTLP/gRPC server.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;
use scrubs::metrics::Metrics;
use scrubs::pipeline::VendorBatch;
use scrubs::sinks::otlp::{DropReason, VendorConfig, VendorSink};
use scrubs::topology::{Built, Context};
use tokio::net::TcpListener;

// ---------------------------------------------------------------- helpers

fn body_of(r: &LogRecord) -> String {
    match r.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}

/// A logs batch of `n` records with bodies `{prefix}-{i}`.
fn logs(prefix: &str, from: usize, n: usize, pad: usize) -> VendorBatch {
    let records = (from..from + n)
        .map(|i| LogRecord {
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "{prefix}-{i}{}",
                    "x".repeat(pad)
                ))),
            }),
            ..Default::default()
        })
        .collect();
    VendorBatch::Logs(vec![ResourceLogs {
        scope_logs: vec![ScopeLogs {
            log_records: records,
            ..Default::default()
        }],
        ..Default::default()
    }])
}

fn cfg(yaml: &str) -> VendorConfig {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("bad test config: {e}\n{yaml}"))
}

fn value(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> u64 {
    m.value(name, labels).unwrap_or(0)
}

fn dropped(m: &Metrics, vendor: &str, reason: &str) -> u64 {
    value(
        m,
        "scrubs_vendor_dropped_total",
        &[("vendor", vendor), ("reason", reason)],
    )
}

fn sent(m: &Metrics, vendor: &str) -> u64 {
    value(
        m,
        "scrubs_vendor_records_total",
        &[("vendor", vendor), ("signal", "logs"), ("result", "sent")],
    )
}

fn dropped_records(m: &Metrics, vendor: &str) -> u64 {
    value(
        m,
        "scrubs_vendor_records_total",
        &[
            ("vendor", vendor),
            ("signal", "logs"),
            ("result", "dropped"),
        ],
    )
}

/// A vendor sink on the configuration `yaml`, with metrics of its own.
fn start_sink(yaml: &str) -> (VendorSink, tokio::task::JoinHandle<()>, Arc<Metrics>) {
    let m = Metrics::new();
    let Built { handle: sink, task } = cfg(yaml).build(&Context::new("test", m.clone())).unwrap();
    (sink, task, m)
}

/// Waits (`within` at most) until `n` records of `vendor` were dropped for
/// `reason`; fails if they were not.
async fn wait_dropped(m: &Metrics, vendor: &str, reason: &str, n: u64, within: Duration) {
    assert!(
        wait_for(within, || dropped(m, vendor, reason) == n).await,
        "{vendor}: {} dropped for {reason}, want {n}",
        dropped(m, vendor, reason)
    );
}

/// Polls `cond` every 10 ms for up to `within`.
async fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

// ------------------------------------------------- an OTLP/HTTP endpoint

/// What the endpoint does with request number `n`.
#[derive(Clone, Copy, Debug)]
enum Plan {
    Ok,
    Status(u16, Option<&'static str>),
    Partial(i64),
    Hang,
}

/// One request as the endpoint saw it.
#[derive(Clone, Debug)]
struct Got {
    at: Instant,
    path: String,
    content_type: Option<String>,
    content_encoding: Option<String>,
    api_key: Option<String>,
    bodies: Vec<String>,
}

struct Endpoint {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Endpoint {
    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
    fn bodies(&self) -> Vec<String> {
        self.got().into_iter().flat_map(|g| g.bodies).collect()
    }
}

type PlanFn = Arc<dyn Fn(usize) -> Plan + Send + Sync>;

async fn handle(
    req: Request<Incoming>,
    n: usize,
    plan: Plan,
    got: Arc<Mutex<Vec<Got>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let at = Instant::now();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type");
    let content_encoding = header("content-encoding");
    let api_key = header("x-api-key");
    let path = req.uri().path().to_owned();
    if let Plan::Hang = plan {
        // Never answer; the client's timeout gives up.
        std::future::pending::<()>().await;
    }
    let raw = req.into_body().collect().await.unwrap().to_bytes();
    let proto = if content_encoding.as_deref() == Some("gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .expect("gzip body");
        out
    } else {
        raw.to_vec()
    };
    let decoded = ExportLogsServiceRequest::decode(&proto[..]).expect("protobuf body");
    let bodies = decoded
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(body_of)
        .collect();
    let _ = n;
    got.lock().unwrap().push(Got {
        at,
        path,
        content_type,
        content_encoding,
        api_key,
        bodies,
    });
    let resp = match plan {
        Plan::Ok => Response::new(Full::new(Bytes::from(
            ExportLogsServiceResponse::default().encode_to_vec(),
        ))),
        Plan::Partial(k) => Response::new(Full::new(Bytes::from(
            ExportLogsServiceResponse {
                partial_success: Some(ExportLogsPartialSuccess {
                    rejected_log_records: k,
                    error_message: "too old".into(),
                }),
            }
            .encode_to_vec(),
        ))),
        Plan::Status(code, retry_after) => {
            let mut r = Response::builder().status(code);
            if let Some(ra) = retry_after {
                r = r.header("retry-after", ra);
            }
            r.body(Full::new(Bytes::from_static(b"nope"))).unwrap()
        }
        Plan::Hang => unreachable!(),
    };
    Ok(resp)
}

/// Starts an OTLP/HTTP endpoint (TLS when `tls` is given).
async fn endpoint(plan: PlanFn, tls: Option<tokio_rustls::TlsAcceptor>) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (plan, got, count, tls) = (plan.clone(), g.clone(), count.clone(), tls.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    handle(req, n, plan(n), got.clone())
                });
                let conn = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(acc) => {
                        if let Ok(stream) = acc.accept(tcp).await {
                            let _ = conn.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                    None => {
                        let _ = conn.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                }
            });
        }
    });
    Endpoint { addr, got }
}

fn always(p: Plan) -> PlanFn {
    Arc::new(move |_| p)
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn happy_path_batches_gzips_and_sends_secret_header() {
    let ep = endpoint(always(Plan::Ok), None).await;
    let token = "tok-happy-7f3a9c";
    std::env::set_var("SCRUBS_TEST_VENDOR_KEY_HAPPY", token);
    let c = cfg(&format!(
        r#"
name: acme
endpoint: http://{}
baa_covered: true
headers:
  x-api-key: {{ env: SCRUBS_TEST_VENDOR_KEY_HAPPY }}
batch: {{ max_records: 10, max_wait: 100ms }}
"#,
        ep.addr
    ));
    assert!(c.validate("vendors[0]").is_empty());
    let m = Metrics::new();
    let Built { handle: sink, task } = c.build(&Context::new("test", m.clone())).unwrap();
    assert!(!format!("{sink:?} {c:?}").contains(token));
    sink.healthcheck().await.expect("healthy");
    let health_requests = ep.got().len();

    for i in 0..25 {
        sink.send(logs("ev", i, 1, 0)).unwrap();
    }
    assert!(wait_for(Duration::from_secs(5), || sent(&m, "acme") == 25).await);
    let got: Vec<Got> = ep.got().into_iter().skip(health_requests).collect();
    // Batched: 25 single-record sends become a few requests of at most 10.
    assert!(got.len() >= 3 && got.len() < 25, "{} requests", got.len());
    assert!(got
        .iter()
        .all(|g| !g.bodies.is_empty() && g.bodies.len() <= 10));
    for g in &got {
        assert_eq!(g.path, "/v1/logs");
        assert_eq!(g.content_type.as_deref(), Some("application/x-protobuf"));
        assert_eq!(g.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(g.api_key.as_deref(), Some(token));
    }
    let bodies: Vec<String> = got.iter().flat_map(|g| g.bodies.clone()).collect();
    let want: Vec<String> = (0..25).map(|i| format!("ev-{i}")).collect();
    assert_eq!(bodies, want, "every record, once, in order");
    assert_eq!(dropped_records(&m, "acme"), 0);
    assert_eq!(
        value(
            &m,
            "scrubs_vendor_requests_total",
            &[("vendor", "acme"), ("code", "200")]
        ),
        got.len() as u64
    );
    // Metrics carry names and counts, never the token.
    assert!(!m.render().contains(token));

    sink.shutdown(Duration::from_secs(2)).await;
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("task ends after shutdown")
        .unwrap();
    assert_eq!(
        value(&m, "scrubs_vendor_queue_bytes", &[("vendor", "acme")]),
        0
    );
}

#[tokio::test]
async fn server_error_is_retried_without_loss() {
    let ep = endpoint(
        Arc::new(|n| {
            if n == 0 {
                Plan::Status(500, None)
            } else {
                Plan::Ok
            }
        }),
        None,
    )
    .await;
    let (sink, _task, m) = start_sink(&format!(
        "name: v500\nendpoint: http://{}\nbaa_covered: true\ncompression: none\nbatch: {{ max_wait: 20ms }}\nretry: {{ initial_backoff: 50ms }}\n",
        ep.addr
    ));
    sink.send(logs("r", 0, 5, 0)).unwrap();
    assert!(wait_for(Duration::from_secs(5), || sent(&m, "v500") == 5).await);
    let got = ep.got();
    assert_eq!(got.len(), 2, "one failure, one retry");
    assert_eq!(got[0].bodies, got[1].bodies);
    assert_eq!(got[1].content_encoding, None, "compression: none");
    assert_eq!(dropped_records(&m, "v500"), 0);
    assert_eq!(
        value(&m, "scrubs_vendor_retries_total", &[("vendor", "v500")]),
        1
    );
    assert_eq!(
        value(
            &m,
            "scrubs_vendor_requests_total",
            &[("vendor", "v500"), ("code", "500")]
        ),
        1
    );
    sink.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let ep = endpoint(
        Arc::new(|n| {
            if n == 0 {
                Plan::Status(429, Some("1"))
            } else {
                Plan::Ok
            }
        }),
        None,
    )
    .await;
    // The backoff alone would retry within 10 ms.
    let (sink, _task, m) = start_sink(&format!(
        "name: v429\nendpoint: http://{}\nbaa_covered: true\nbatch: {{ max_wait: 10ms }}\nretry: {{ initial_backoff: 10ms, max_backoff: 10ms, max_elapsed: 10s }}\n",
        ep.addr
    ));
    sink.send(logs("r", 0, 2, 0)).unwrap();
    assert!(wait_for(Duration::from_secs(5), || sent(&m, "v429") == 2).await);
    let got = ep.got();
    assert_eq!(got.len(), 2);
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(3), "retried after {gap:?}");
    sink.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn retry_after_beyond_budget_gives_up_at_once() {
    let ep = endpoint(always(Plan::Status(503, Some("120"))), None).await;
    let (sink, _task, m) = start_sink(&format!(
        "name: vlong\nendpoint: http://{}\nbaa_covered: true\nbatch: {{ max_wait: 10ms }}\nretry: {{ max_elapsed: 5s }}\n",
        ep.addr
    ));
    sink.send(logs("r", 0, 4, 0)).unwrap();
    wait_dropped(&m, "vlong", "retry_exhausted", 4, Duration::from_secs(2)).await;
    assert_eq!(ep.got().len(), 1);
    sink.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn hanging_endpoint_times_out_retries_and_gives_up() {
    let ep = endpoint(always(Plan::Hang), None).await;
    let (sink, _task, m) = start_sink(&format!(
        "name: vhang\nendpoint: http://{}\nbaa_covered: true\ntimeout: 200ms\nbatch: {{ max_wait: 10ms }}\nretry: {{ initial_backoff: 20ms, max_backoff: 50ms, max_elapsed: 700ms }}\n",
        ep.addr
    ));
    let t0 = Instant::now();
    sink.send(logs("h", 0, 3, 0)).unwrap();
    wait_dropped(&m, "vhang", "retry_exhausted", 3, Duration::from_secs(5)).await;
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(600), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let timeouts = value(
        &m,
        "scrubs_vendor_requests_total",
        &[("vendor", "vhang"), ("code", "timeout")],
    );
    assert!(timeouts >= 2, "{timeouts} timed-out attempts");
    assert!(value(&m, "scrubs_vendor_retries_total", &[("vendor", "vhang")]) >= 1);
    assert_eq!(dropped_records(&m, "vhang"), 3);
    assert_eq!(sent(&m, "vhang"), 0);
    assert_eq!(
        value(&m, "scrubs_vendor_queue_bytes", &[("vendor", "vhang")]),
        0
    );
    sink.shutdown(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn full_queue_drops_at_once_and_counts() {
    let ep = endpoint(always(Plan::Hang), None).await;
    let (sink, _task, m) = start_sink(&format!(
        "name: vfull\nendpoint: http://{}\nbaa_covered: true\ntimeout: 30s\nbatch: {{ max_records: 1, max_bytes: 1KiB, max_wait: 10ms }}\nqueue: {{ max_bytes: 2KiB }}\n",
        ep.addr
    ));
    // About 300 bytes each: the first goes in flight and hangs, a few more
    // fill the queue, the rest are refused.
    let t0 = Instant::now();
    let mut refused = 0;
    for i in 0..40 {
        let t = Instant::now();
        match sink.send(logs("q", i, 1, 256)) {
            Ok(()) => {}
            Err(r) => {
                assert_eq!(r, DropReason::QueueFull);
                refused += 1;
            }
        }
        assert!(t.elapsed() < Duration::from_millis(50), "send blocked");
    }
    assert!(t0.elapsed() < Duration::from_millis(500));
    assert!(refused >= 30, "{refused} refused");
    assert_eq!(dropped(&m, "vfull", "queue_full"), refused);
    let queued = value(&m, "scrubs_vendor_queue_bytes", &[("vendor", "vfull")]);
    assert!(queued > 0 && queued <= 2048, "{queued}");
    assert_eq!(sink.queued_bytes(), queued);

    // Shutdown with a short deadline: what is left is counted, and every
    // record is accounted for.
    sink.shutdown(Duration::from_millis(200)).await;
    let shut = dropped(&m, "vfull", "shutdown");
    assert_eq!(shut, 40 - refused);
    assert_eq!(sent(&m, "vfull") + dropped_records(&m, "vfull"), 40);
    assert_eq!(
        value(&m, "scrubs_vendor_queue_bytes", &[("vendor", "vfull")]),
        0
    );
    assert!(ep.got().is_empty());
}

#[tokio::test]
async fn shutdown_flushes_a_partial_batch() {
    let ep = endpoint(always(Plan::Ok), None).await;
    let (sink, task, m) = start_sink(&format!(
        "name: vflush\nendpoint: http://{}/otlp/\nbaa_covered: true\nbatch: {{ max_wait: 30s }}\n",
        ep.addr
    ));
    sink.send(logs("f", 0, 3, 0)).unwrap();
    sink.send(logs("f", 3, 2, 0)).unwrap();
    let t0 = Instant::now();
    sink.shutdown(Duration::from_secs(5)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "did not wait for max_wait"
    );
    assert_eq!(sent(&m, "vflush"), 5);
    let got = ep.got();
    assert_eq!(got.len(), 1, "merged into one request");
    assert_eq!(got[0].path, "/otlp/v1/logs", "base URL path kept");
    assert_eq!(got[0].bodies.len(), 5);
    task.await.unwrap();
}

#[tokio::test]
async fn rejections_are_not_retried_and_partial_success_is_counted() {
    let plans = Arc::new(Mutex::new(VecDeque::from([
        Plan::Status(400, None),
        Plan::Partial(2),
    ])));
    let p = plans.clone();
    let ep = endpoint(
        Arc::new(move |_| p.lock().unwrap().pop_front().unwrap_or(Plan::Ok)),
        None,
    )
    .await;
    let (sink, _task, m) = start_sink(&format!(
        "name: vrej\nendpoint: http://{}/v1/logs\nbaa_covered: true\nbatch: {{ max_wait: 10ms }}\n",
        ep.addr
    ));
    assert!(sink.accepts("logs") && !sink.accepts("traces"));
    sink.send(logs("a", 0, 3, 0)).unwrap();
    wait_dropped(&m, "vrej", "rejected_400", 3, Duration::from_secs(3)).await;
    sink.send(logs("b", 0, 5, 0)).unwrap();
    assert!(wait_for(Duration::from_secs(3), || sent(&m, "vrej") == 3).await);
    assert_eq!(dropped(&m, "vrej", "partial_rejected"), 2);
    assert_eq!(ep.got().len(), 2, "a 400 is not retried");
    assert_eq!(
        ep.got()[0].path,
        "/v1/logs",
        "per-signal URL used as written"
    );
    assert_eq!(
        value(&m, "scrubs_vendor_retries_total", &[("vendor", "vrej")]),
        0
    );
    sink.shutdown(Duration::from_secs(1)).await;
}

// -------------------------------------------------------------------- TLS

struct TlsFixture {
    acceptor: tokio_rustls::TlsAcceptor,
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
    other_ca_file: std::path::PathBuf,
}

fn tls_fixture() -> TlsFixture {
    tls_fixture_alpn(b"http/1.1")
}

fn tls_fixture_alpn(alpn: &[u8]) -> TlsFixture {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let server = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("vendor-ca.pem");
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&ca_file, server.cert.pem()).unwrap();
    std::fs::write(&other_ca_file, other.cert.pem()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.signing_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![server.cert.der().clone()], key)
    .unwrap();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsFixture {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        _dir: dir,
        ca_file,
        other_ca_file,
    }
}

#[tokio::test]
async fn tls_with_ca_file_succeeds_and_without_it_fails_as_tls_error() {
    let fx = tls_fixture();
    let ep = endpoint(always(Plan::Ok), Some(fx.acceptor.clone())).await;
    let port = ep.addr.port();
    let m = Metrics::new();

    // The vendor's CA: delivered.
    let good = cfg(&format!(
        "name: tls-good\nendpoint: https://localhost:{port}\nbaa_covered: true\ntls: {{ ca_file: {} }}\nbatch: {{ max_wait: 10ms }}\n",
        fx.ca_file.display()
    ));
    let sink = good.build(&Context::new("test", m.clone())).unwrap().handle;
    sink.healthcheck().await.expect("healthy over TLS");
    sink.send(logs("t", 0, 4, 0)).unwrap();
    assert!(wait_for(Duration::from_secs(5), || sent(&m, "tls-good") == 4).await);
    assert!(ep.bodies().contains(&"t-3".to_string()));
    sink.shutdown(Duration::from_secs(1)).await;

    // Some other CA: the handshake fails, retried, then dropped as tls_error.
    let wrong = cfg(&format!(
        "name: tls-wrong\nendpoint: https://localhost:{port}\nbaa_covered: true\ntls: {{ ca_file: {} }}\nbatch: {{ max_wait: 10ms }}\nretry: {{ initial_backoff: 20ms, max_backoff: 50ms, max_elapsed: 300ms }}\n",
        fx.other_ca_file.display()
    ));
    let before = ep.got().len();
    let sink = wrong
        .build(&Context::new("test", m.clone()))
        .unwrap()
        .handle;
    let health = sink.healthcheck().await.unwrap_err();
    assert!(
        health.contains("tls-wrong") && health.contains("tls_error"),
        "{health}"
    );
    sink.send(logs("w", 0, 2, 0)).unwrap();
    wait_dropped(&m, "tls-wrong", "tls_error", 2, Duration::from_secs(5)).await;
    assert!(
        value(
            &m,
            "scrubs_vendor_requests_total",
            &[("vendor", "tls-wrong"), ("code", "tls_error")]
        ) >= 1
    );
    sink.shutdown(Duration::from_millis(100)).await;

    // No ca_file: the system roots do not know the test CA either.
    let none = cfg(&format!(
        "name: tls-none\nendpoint: https://localhost:{port}\nbaa_covered: true\nbatch: {{ max_wait: 10ms }}\nretry: {{ initial_backoff: 20ms, max_backoff: 50ms, max_elapsed: 200ms }}\n",
    ));
    match none.build(&Context::new("test", m.clone())) {
        Ok(Built { handle: sink, .. }) => {
            sink.send(logs("n", 0, 1, 0)).unwrap();
            assert!(
                wait_for(Duration::from_secs(5), || dropped(
                    &m,
                    "tls-none",
                    "tls_error"
                ) == 1)
                .await
            );
            sink.shutdown(Duration::from_millis(100)).await;
        }
        // A machine without a CA bundle refuses at startup instead.
        Err(e) => assert!(e.to_string().contains("no system root certificates"), "{e}"),
    }
    assert_eq!(
        ep.got().len(),
        before,
        "nothing reached the server unverified"
    );
}

/// Mutual TLS: a server that requires a client certificate signed by its
/// client CA gets scrubs' `cert_file` (with `key_file`) and takes the
/// batch; without them it refuses the connection and nothing arrives.
#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let server = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let client_ca =
        rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut client_params = rcgen::CertificateParams::new(vec!["scrubs".to_string()]).unwrap();
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &client_ca).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, cert_file, key_file) = (
        dir.path().join("vendor-ca.pem"),
        dir.path().join("client.pem"),
        dir.path().join("client.key"),
    );
    std::fs::write(&ca_file, server.cert.pem()).unwrap();
    std::fs::write(&cert_file, client.pem()).unwrap();
    std::fs::write(&key_file, client_key.serialize_pem()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client_ca.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.signing_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let ep = endpoint(always(Plan::Ok), Some(acceptor)).await;
    let port = ep.addr.port();
    let m = Metrics::new();

    let with = cfg(&format!(
        "name: mtls\nendpoint: https://localhost:{port}\nbaa_covered: true\ntls: {{ ca_file: {}, cert_file: {}, key_file: {} }}\nbatch: {{ max_wait: 10ms }}\n",
        ca_file.display(),
        cert_file.display(),
        key_file.display()
    ));
    let sink = with.build(&Context::new("test", m.clone())).unwrap().handle;
    sink.send(logs("c", 0, 2, 0)).unwrap();
    assert!(wait_for(Duration::from_secs(5), || sent(&m, "mtls") == 2).await);
    assert!(ep.bodies().contains(&"c-1".to_string()));
    sink.shutdown(Duration::from_secs(1)).await;

    // Without a client certificate the server refuses. With TLS 1.3 the
    // refusal can come after the client's side of the handshake is done,
    // so the drop reason may be tls_error or retry_exhausted; either way
    // nothing is delivered.
    let before = ep.got().len();
    let without = cfg(&format!(
        "name: no-cert\nendpoint: https://localhost:{port}\nbaa_covered: true\ntls: {{ ca_file: {} }}\nbatch: {{ max_wait: 10ms }}\nretry: {{ initial_backoff: 20ms, max_backoff: 50ms, max_elapsed: 300ms }}\n",
        ca_file.display()
    ));
    let sink = without
        .build(&Context::new("test", m.clone()))
        .unwrap()
        .handle;
    sink.send(logs("n", 0, 1, 0)).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || dropped_records(&m, "no-cert")
            == 1)
        .await
    );
    assert_eq!(sent(&m, "no-cert"), 0);
    assert_eq!(
        ep.got().len(),
        before,
        "accepted without a client certificate"
    );
    sink.shutdown(Duration::from_millis(100)).await;

    // A key that is not the certificate's is refused at start-up, naming
    // the fields.
    let other_key = dir.path().join("other.key");
    std::fs::write(
        &other_key,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let mismatched = cfg(&format!(
        "name: mismatched\nendpoint: https://localhost:{port}\nbaa_covered: true\ntls: {{ ca_file: {}, cert_file: {}, key_file: {} }}\n",
        ca_file.display(),
        cert_file.display(),
        other_key.display()
    ));
    let err = match mismatched.build(&Context::new("test", m.clone())) {
        Ok(_) => panic!("a key that does not match the certificate was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("tls.cert_file/key_file"), "{err}");

    // A CA file without a certificate: refused at start-up, naming the
    // field and the file.
    let no_ca = cfg(&format!(
        "name: no-ca\nendpoint: https://localhost:{port}\nbaa_covered: true\ntls: {{ ca_file: {} }}\n",
        key_file.display()
    ));
    let err = match no_ca.build(&Context::new("test", m.clone())) {
        Ok(_) => panic!("a CA file without certificates was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("tls.ca_file") && err.contains(&key_file.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn plain_http_to_tls_endpoint_is_a_clean_failure() {
    // An http:// URL pointed at a TLS port: counted, no hang, no panic.
    let fx = tls_fixture();
    let ep = endpoint(always(Plan::Ok), Some(fx.acceptor.clone())).await;
    let (sink, _t, m) = start_sink(&format!(
        "name: mismatch\nendpoint: http://{}\nbaa_covered: true\ntimeout: 500ms\nbatch: {{ max_wait: 10ms }}\nretry: {{ initial_backoff: 20ms, max_elapsed: 100ms }}\n",
        ep.addr
    ));
    sink.send(logs("m", 0, 1, 0)).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || dropped_records(&m, "mismatch")
            == 1)
        .await
    );
    sink.shutdown(Duration::from_millis(100)).await;
}

// ------------------------------------------------------------------- gRPC

/// One gRPC export as received: `x-api-key`, `grpc-encoding`, bodies.
type GrpcCall = (Option<String>, Option<String>, Vec<String>);

#[derive(Default, Clone)]
struct GrpcRecorder {
    calls: Arc<AtomicUsize>,
    got: Arc<Mutex<Vec<GrpcCall>>>,
}

#[tonic::async_trait]
impl LogsService for GrpcRecorder {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let md = request.metadata();
        let key = md
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let enc = md
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bodies = request
            .get_ref()
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .map(body_of)
            .collect();
        self.got.lock().unwrap().push((key, enc, bodies));
        if n == 0 {
            return Err(tonic::Status::unavailable("warming up"));
        }
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 1,
                error_message: "one too old".into(),
            }),
        }))
    }
}

#[tokio::test]
async fn grpc_export_retries_unavailable_and_counts_partial_success() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rec = GrpcRecorder::default();
    let svc = LogsServiceServer::new(rec.clone())
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    std::env::set_var("SCRUBS_TEST_VENDOR_KEY_GRPC", "grpc-secret-1");
    let (sink, _t, m) = start_sink(&format!(
        r#"
name: grpc-vendor
endpoint: http://{addr}
protocol: grpc
baa_covered: true
headers:
  x-api-key: {{ env: SCRUBS_TEST_VENDOR_KEY_GRPC }}
batch: {{ max_wait: 20ms }}
retry: {{ initial_backoff: 20ms }}
"#
    ));
    sink.send(logs("g", 0, 4, 0)).unwrap();
    assert!(wait_for(Duration::from_secs(5), || sent(&m, "grpc-vendor") == 3).await);
    assert_eq!(dropped(&m, "grpc-vendor", "partial_rejected"), 1);
    let got = rec.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    for (key, enc, bodies) in &got {
        assert_eq!(key.as_deref(), Some("grpc-secret-1"));
        assert_eq!(enc.as_deref(), Some("gzip"));
        assert_eq!(bodies, &vec!["g-0", "g-1", "g-2", "g-3"]);
    }
    assert_eq!(
        value(
            &m,
            "scrubs_vendor_requests_total",
            &[("vendor", "grpc-vendor"), ("code", "unavailable")]
        ),
        1
    );
    assert_eq!(
        value(
            &m,
            "scrubs_vendor_requests_total",
            &[("vendor", "grpc-vendor"), ("code", "ok")]
        ),
        1
    );
    sink.healthcheck().await.expect("gRPC healthcheck");
    sink.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn grpc_over_tls_with_ca_file() {
    let fx = tls_fixture_alpn(b"h2");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let rec = GrpcRecorder::default();
    // The first call answers UNAVAILABLE; let the recorder skip it.
    rec.calls.store(1, Ordering::SeqCst);
    let svc = LogsServiceServer::new(rec.clone());
    let acceptor = fx.acceptor.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, svc) = (acceptor.clone(), svc.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(
                        TokioIo::new(tls),
                        hyper_util::service::TowerToHyperService::new(svc),
                    )
                    .await;
                }
            });
        }
    });
    let (sink, _t, m) = start_sink(&format!(
        "name: grpc-tls\nendpoint: https://localhost:{port}\nprotocol: grpc\ncompression: none\nbaa_covered: true\ntls: {{ ca_file: {} }}\nbatch: {{ max_wait: 10ms }}\n",
        fx.ca_file.display()
    ));
    sink.send(logs("s", 0, 3, 0)).unwrap();
    // The recorder's partial success rejects one record.
    assert!(wait_for(Duration::from_secs(5), || sent(&m, "grpc-tls") == 2).await);
    let got = rec.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, None, "compression: none");
    assert_eq!(got[0].2, vec!["s-0", "s-1", "s-2"]);
    sink.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn grpc_connection_refused_is_connect_error() {
    // Bind and drop to find a port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (sink, _t, m) = start_sink(&format!(
        "name: grpc-down\nendpoint: http://127.0.0.1:{port}\nprotocol: grpc\nbaa_covered: true\nbatch: {{ max_wait: 10ms }}\nretry: {{ initial_backoff: 20ms, max_elapsed: 200ms }}\n"
    ));
    assert!(sink
        .healthcheck()
        .await
        .unwrap_err()
        .contains("connect_error"));
    sink.send(logs("d", 0, 2, 0)).unwrap();
    wait_dropped(&m, "grpc-down", "connect_error", 2, Duration::from_secs(5)).await;
    sink.shutdown(Duration::from_millis(100)).await;
}

// -------------------------------------------------------------------- BAA

#[tokio::test]
async fn vendor_without_baa_is_refused_by_validate_and_start() {
    let m = Metrics::new();
    for yaml in [
        "name: cheap-apm\nendpoint: https://apm.example\n",
        "name: cheap-apm\nendpoint: https://apm.example\nbaa_covered: false\n",
    ] {
        let c = cfg(yaml);
        let problems = c.validate("vendors[3]");
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert!(
            p.starts_with("vendors[3] (name \"cheap-apm\"): refused"),
            "{p}"
        );
        assert!(p.contains("baa_covered is not true"), "{p}");
        assert!(p.contains("Business Associate Agreement"), "{p}");

        let err = c
            .build(&Context::new("test", m.clone()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"cheap-apm\""), "{err}");
        assert!(err.contains("baa_covered is not true"), "{err}");
    }
    // Nothing was set up for it.
    assert!(!m.render().contains("cheap-apm"));
}

/// A request that waits for its answer must not hold back the next batch:
/// with the default `max_in_flight` (2) the second batch is delivered while
/// the first hangs; with `max_in_flight: 1` it waits behind it.
#[tokio::test]
async fn a_hanging_request_does_not_hold_back_the_next_batch() {
    for (in_flight, delivered_past_the_hang) in [(None, true), (Some(1), false)] {
        let plan: PlanFn = Arc::new(|n| if n == 0 { Plan::Hang } else { Plan::Ok });
        let ep = endpoint(plan, None).await;
        let extra = in_flight.map_or(String::new(), |k| format!("max_in_flight: {k}\n"));
        let (sink, _task, m) = start_sink(&format!(
            "name: vpar\nendpoint: http://{}\nbaa_covered: true\ntimeout: 30s\nbatch: {{ max_records: 1, max_wait: 10ms }}\n{extra}",
            ep.addr
        ));
        sink.send(logs("first", 0, 1, 0)).unwrap();
        // Let the first request reach the endpoint before the second is queued.
        tokio::time::sleep(Duration::from_millis(100)).await;
        sink.send(logs("second", 1, 1, 0)).unwrap();
        let arrived = wait_for(Duration::from_millis(1500), || sent(&m, "vpar") == 1).await;
        assert_eq!(
            arrived, delivered_past_the_hang,
            "max_in_flight {in_flight:?}"
        );
        if delivered_past_the_hang {
            assert_eq!(ep.bodies(), vec!["second-1".to_string()]);
        } else {
            assert!(ep.got().is_empty());
        }
        sink.shutdown(Duration::from_millis(100)).await;
        assert_eq!(sent(&m, "vpar") + dropped_records(&m, "vpar"), 2);
    }
}
