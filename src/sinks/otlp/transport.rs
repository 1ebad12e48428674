//! One export attempt over OTLP/HTTP or OTLP/gRPC, and what its outcome
//! means for retrying.
//!
//! Both protocols send the same protobuf bytes, encoded once per batch, so
//! a retry costs no re-encoding. Nothing here logs a request or response
//! body: a vendor's error message may quote the telemetry it refused.

use std::error::Error as StdError;
use std::io;
use std::time::{Duration, SystemTime};

use bytes::{Buf, BufMut, Bytes};
use http_body_util::{BodyExt, Full, Limited};
use hyper::http::header::{self, HeaderMap};
use hyper::http::uri::{PathAndQuery, Uri};
use hyper::http::{Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use super::config::{Compression, Protocol, Signal, VendorConfig};
use super::tls;
use crate::pipeline::VendorBatch;

/// The most of a response body read (partial-success responses are tiny).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

const USER_AGENT: &str = concat!("scrubs/", env!("CARGO_PKG_VERSION"));

type Https = tls::Connector;

/// Why an attempt failed, for the final drop reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailClass {
    /// The vendor answered with a status (HTTP or gRPC).
    Status,
    /// No answer within the timeout (the vendor may have the data).
    Timeout,
    /// TCP connection or name resolution failed: nothing was sent.
    Connect,
    /// TLS handshake failed (certificate, protocol): nothing was sent.
    Tls,
    /// The connection broke during the request.
    Transport,
}

/// The outcome of one attempt.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// Accepted; `rejected` records were refused (OTLP partial success).
    Accepted { code: String, rejected: u64 },
    /// Failed in a way that may succeed later.
    Retry {
        code: String,
        class: FailClass,
        retry_after: Option<Duration>,
        detail: String,
    },
    /// Refused for good (a 4xx other than 408/429, a non-retryable gRPC
    /// code): `code` goes into the drop reason `rejected_<code>`.
    Reject { code: String },
}

impl Attempt {
    /// The `code` label of `scrubs_vendor_requests_total`.
    pub(crate) fn code(&self) -> &str {
        match self {
            Attempt::Accepted { code, .. }
            | Attempt::Retry { code, .. }
            | Attempt::Reject { code } => code,
        }
    }
}

/// Encodes a batch as its OTLP export request.
pub(crate) fn encode(batch: VendorBatch) -> Vec<u8> {
    match batch {
        VendorBatch::Logs(resource_logs) => {
            ExportLogsServiceRequest { resource_logs }.encode_to_vec()
        }
        VendorBatch::Traces(resource_spans) => {
            ExportTraceServiceRequest { resource_spans }.encode_to_vec()
        }
        VendorBatch::Metrics(resource_metrics) => {
            ExportMetricsServiceRequest { resource_metrics }.encode_to_vec()
        }
    }
}

/// Records rejected according to an export response body (0 if none, or if
/// the body is not a protobuf response).
fn rejected_in(signal: Signal, body: &[u8]) -> u64 {
    let n = match signal {
        Signal::Logs => ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| p.rejected_log_records),
        Signal::Traces => ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| p.rejected_spans),
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| p.rejected_data_points),
    };
    n.unwrap_or(0).max(0) as u64
}

/// Parses `Retry-After`: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Whether an HTTP status is worth retrying. The OTLP specification lists
/// 429, 502, 503 and 504; 408 and 500 are added because vendors' load
/// balancers return them for transient faults.
fn http_retryable(s: StatusCode) -> bool {
    matches!(s.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// Whether a gRPC code is worth retrying (the OTLP specification's list,
/// with RESOURCE_EXHAUSTED always retried).
fn grpc_retryable(c: Code) -> bool {
    matches!(
        c,
        Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unavailable
            | Code::DataLoss
            | Code::ResourceExhausted
    )
}

/// A gRPC code as a label: `unavailable`, `invalid_argument`, ...
fn grpc_code_label(c: Code) -> &'static str {
    match c {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// Looks through an error's source chain (including errors wrapped in
/// `io::Error`, whose `source()` skips them) for a TLS error.
fn find_tls_error(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    let mut depth = 0;
    while let Some(e) = cur {
        depth += 1;
        if depth > 32 {
            break;
        }
        if let Some(h) = e.downcast_ref::<tls::HandshakeError>() {
            return Some(h.to_string());
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if let Some(inner) = io.get_ref() {
                cur = Some(inner);
                continue;
            }
        }
        cur = e.source();
    }
    None
}

fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cur: Option<&'a (dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

/// The innermost message of an error chain: our own transport errors
/// ("Connection refused", "certificate verify failed: self-signed
/// certificate"), never a response body.
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Classifies a transport error (no response was received).
fn transport_failure(err: &(dyn StdError + 'static)) -> Attempt {
    if let Some(detail) = find_tls_error(err) {
        return Attempt::Retry {
            code: "tls_error".into(),
            class: FailClass::Tls,
            retry_after: None,
            detail,
        };
    }
    let connect = find::<hyper_util::client::legacy::Error>(err).is_some_and(|e| e.is_connect());
    let (code, class) = if connect {
        ("connect_error", FailClass::Connect)
    } else {
        ("transport_error", FailClass::Transport)
    };
    Attempt::Retry {
        code: code.into(),
        class,
        retry_after: None,
        detail: root_cause(err),
    }
}

fn timed_out(timeout: Duration) -> Attempt {
    Attempt::Retry {
        code: "timeout".into(),
        class: FailClass::Timeout,
        retry_after: None,
        detail: format!("no answer within {timeout:?}"),
    }
}

/// The client side of one vendor.
pub(crate) struct Transport {
    kind: Kind,
    headers: HeaderMap,
    compression: Compression,
    timeout: Duration,
}

enum Kind {
    Http {
        client: Client<Https, Full<Bytes>>,
        urls: [Option<Uri>; 3],
    },
    Grpc {
        client: Client<Https, tonic::body::Body>,
        origin: Uri,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header names only.
        let names: Vec<&str> = self.headers.keys().map(|k| k.as_str()).collect();
        f.debug_struct("Transport")
            .field("grpc", &matches!(self.kind, Kind::Grpc { .. }))
            .field("headers", &names)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Transport {
    /// Builds the client: TLS, connector, and the per-signal URLs.
    pub(crate) fn new(cfg: &VendorConfig, headers: HeaderMap) -> Result<Transport, String> {
        let uri: Uri = cfg
            .endpoint
            .parse()
            .map_err(|e| format!("endpoint is not a URL: {e}"))?;
        let https = uri.scheme_str() == Some("https");
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(cfg.timeout));
        let alpn = match cfg.protocol {
            Protocol::Http => tls::Alpn::Http,
            Protocol::Grpc => tls::Alpn::Grpc,
        };
        let conn = tls::Connector::new(http, https, cfg.tls.as_ref(), alpn)?;
        let kind = match cfg.protocol {
            Protocol::Http => {
                let client = Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .pool_idle_timeout(Duration::from_secs(30))
                    .build(conn);
                let mut urls: [Option<Uri>; 3] = [None, None, None];
                for s in cfg.effective_signals() {
                    urls[s.index()] = Some(cfg.signal_url(s)?);
                }
                Kind::Http { client, urls }
            }
            Protocol::Grpc => {
                let client = Client::builder(TokioExecutor::new())
                    .http2_only(true)
                    .timer(TokioTimer::new())
                    .pool_timer(TokioTimer::new())
                    .http2_keep_alive_interval(Duration::from_secs(30))
                    .pool_idle_timeout(Duration::from_secs(30))
                    .build(conn);
                let mut parts = uri.into_parts();
                parts.path_and_query = Some(PathAndQuery::from_static("/"));
                let origin = Uri::from_parts(parts).map_err(|e| format!("endpoint: {e}"))?;
                Kind::Grpc { client, origin }
            }
        };
        Ok(Transport {
            kind,
            headers,
            compression: cfg.compression,
            timeout: cfg.timeout,
        })
    }

    /// Prepares a request body once per batch from the encoded requests
    /// `parts`, whose concatenation is the merged request: gzip for
    /// OTLP/HTTP (gRPC compresses its own frames). gzip reads the parts in
    /// turn, so they are only concatenated when sent uncompressed.
    pub(crate) fn prepare(&self, parts: Vec<Bytes>) -> Bytes {
        let len: usize = parts.iter().map(Bytes::len).sum();
        match (&self.kind, self.compression) {
            (Kind::Http { .. }, Compression::Gzip) => {
                use std::io::Write as _;
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(len / 4 + 64),
                    flate2::Compression::fast(),
                );
                for part in &parts {
                    // Writing to a Vec cannot fail.
                    let _ = enc.write_all(part);
                }
                enc.finish()
                    .map(Bytes::from)
                    .unwrap_or_else(|_| Bytes::new())
            }
            // One part is sent as it is: no copy, even when other vendors
            // hold the same bytes.
            _ => match <[Bytes; 1]>::try_from(parts) {
                Ok([one]) => one,
                Err(parts) => Bytes::from(parts.concat()),
            },
        }
    }

    /// One attempt, bounded by the configured timeout.
    pub(crate) async fn attempt(&self, signal: Signal, body: Bytes) -> Attempt {
        match &self.kind {
            Kind::Http { client, urls } => {
                let Some(url) = &urls[signal.index()] else {
                    return Attempt::Reject {
                        code: "signal_not_configured".into(),
                    };
                };
                self.http_attempt(client, url, signal, body).await
            }
            Kind::Grpc { client, origin } => self.grpc_attempt(client, origin, signal, body).await,
        }
    }

    async fn http_attempt(
        &self,
        client: &Client<Https, Full<Bytes>>,
        url: &Uri,
        signal: Signal,
        body: Bytes,
    ) -> Attempt {
        let mut req = Request::post(url.clone())
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .header(header::USER_AGENT, USER_AGENT);
        if self.compression == Compression::Gzip {
            req = req.header(header::CONTENT_ENCODING, "gzip");
        }
        let mut req = match req.body(Full::new(body)) {
            Ok(r) => r,
            Err(_) => {
                return Attempt::Reject {
                    code: "bad_request".into(),
                }
            }
        };
        for (k, v) in &self.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        let exchange = async {
            let resp = match client.request(req).await {
                Ok(r) => r,
                Err(e) => return transport_failure(&e),
            };
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            // Read (a bounded amount of) the body so the connection can be
            // reused; only a success body is looked at.
            let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let code = status.as_u16().to_string();
            if status.is_success() {
                Attempt::Accepted {
                    code,
                    rejected: rejected_in(signal, &body),
                }
            } else if http_retryable(status) {
                Attempt::Retry {
                    detail: format!("HTTP {code}"),
                    code,
                    class: FailClass::Status,
                    retry_after,
                }
            } else {
                Attempt::Reject { code }
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(a) => a,
            Err(_) => timed_out(self.timeout),
        }
    }

    async fn grpc_attempt(
        &self,
        client: &Client<Https, tonic::body::Body>,
        origin: &Uri,
        signal: Signal,
        body: Bytes,
    ) -> Attempt {
        let mut grpc = tonic::client::Grpc::with_origin(client.clone(), origin.clone())
            .accept_compressed(CompressionEncoding::Gzip);
        if self.compression == Compression::Gzip {
            grpc = grpc.send_compressed(CompressionEncoding::Gzip);
        }
        let mut req = tonic::Request::from_parts(
            MetadataMap::from_headers(self.headers.clone()),
            tonic::Extensions::default(),
            body,
        );
        req.set_timeout(self.timeout);
        let exchange = async {
            if let Err(e) = grpc.ready().await {
                return transport_failure(&e);
            }
            let path = PathAndQuery::from_static(signal.grpc_path());
            match grpc.unary(req, path, RawCodec).await {
                Ok(resp) => Attempt::Accepted {
                    code: "ok".into(),
                    rejected: rejected_in(signal, resp.get_ref()),
                },
                Err(status) => grpc_failure(&status),
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(a) => a,
            Err(_) => timed_out(self.timeout),
        }
    }
}

fn grpc_failure(status: &Status) -> Attempt {
    // A status made from a transport error carries it as its source.
    if let Some(src) = StdError::source(status) {
        let is_transport = find_tls_error(src).is_some()
            || find::<hyper_util::client::legacy::Error>(src).is_some()
            || find::<hyper::Error>(src).is_some()
            || find::<io::Error>(src).is_some();
        if is_transport {
            return transport_failure(src);
        }
    }
    let code = status.code();
    let label = grpc_code_label(code).to_string();
    if grpc_retryable(code) {
        Attempt::Retry {
            detail: format!("gRPC {label}"),
            code: label,
            class: FailClass::Status,
            retry_after: grpc_retry_delay(status.details()),
        }
    } else {
        Attempt::Reject { code: label }
    }
}

// google.rpc.Status and google.rpc.RetryInfo, for the retry delay a gRPC
// server may attach to UNAVAILABLE or RESOURCE_EXHAUSTED.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

fn grpc_retry_delay(details: &[u8]) -> Option<Duration> {
    if details.is_empty() {
        return None;
    }
    let st = RpcStatus::decode(details).ok()?;
    st.details
        .iter()
        .find(|a| a.type_url.ends_with("google.rpc.RetryInfo"))
        .and_then(|a| RetryInfo::decode(a.value.as_slice()).ok())
        .and_then(|r| r.retry_delay)
        .map(|d| {
            Duration::from_secs(d.seconds.max(0) as u64)
                + Duration::from_nanos(d.nanos.clamp(0, 999_999_999) as u64)
        })
}

/// A codec that sends pre-encoded protobuf bytes and returns the response
/// message's bytes, decoded by the caller per signal.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

#[derive(Debug, Clone, Copy, Default)]
struct RawEncoder;

#[derive(Debug, Clone, Copy, Default)]
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worker hands `prepare` the queued requests of a merged batch
    /// separately; the body must be their concatenation, gzipped or not.
    #[tokio::test]
    async fn prepare_joins_the_parts_of_a_merged_batch() {
        use std::io::Read as _;
        let parts = vec![
            Bytes::from_static(b"first "),
            Bytes::new(),
            Bytes::from_static(b"second"),
        ];
        for (compression, gzip) in [("none", false), ("gzip", true)] {
            let cfg: VendorConfig = serde_yaml::from_str(&format!(
                "name: v\nendpoint: http://127.0.0.1:1\nbaa_covered: true\ncompression: {compression}\n"
            ))
            .unwrap();
            let t = Transport::new(&cfg, HeaderMap::new()).unwrap();
            let body = t.prepare(parts.clone());
            let plain = if gzip {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .unwrap();
                out
            } else {
                body.to_vec()
            };
            assert_eq!(plain, b"first second", "compression: {compression}");
            assert_eq!(
                t.prepare(vec![Bytes::from_static(b"one")]).len() == 3,
                !gzip
            );
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retryable_statuses() {
        for s in [408u16, 429, 500, 502, 503, 504] {
            assert!(http_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400u16, 401, 403, 404, 413, 501] {
            assert!(!http_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        assert!(grpc_retryable(Code::Unavailable));
        assert!(grpc_retryable(Code::ResourceExhausted));
        assert!(!grpc_retryable(Code::InvalidArgument));
        assert!(!grpc_retryable(Code::Unauthenticated));
    }

    #[test]
    fn grpc_retry_info_is_read() {
        let info = RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: 2,
                nanos: 500_000_000,
            }),
        };
        let st = RpcStatus {
            code: 14,
            details: vec![ProtoAny {
                type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                value: info.encode_to_vec(),
            }],
        };
        assert_eq!(
            grpc_retry_delay(&st.encode_to_vec()),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(grpc_retry_delay(&[]), None);
    }

    #[test]
    fn partial_success_is_read() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
        let r = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 3,
                error_message: "too old".into(),
            }),
        };
        assert_eq!(rejected_in(Signal::Logs, &r.encode_to_vec()), 3);
        assert_eq!(rejected_in(Signal::Logs, b""), 0);
        assert_eq!(rejected_in(Signal::Logs, b"{\"json\":1}"), 0);
    }
}
