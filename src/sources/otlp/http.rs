//! OTLP/HTTP: one POST per export, binary protobuf or JSON, maybe gzipped.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::time::Instant;

use super::status::{code, RpcStatus};
use super::{Shared, Signal, Transport, BUSY_RETRY};
use crate::pipeline::{ExportOutcome, Rejection};

/// Bodies larger than this, and every gzipped body (a few bytes can inflate
/// to `max_decompressed_bytes`), are decoded on a blocking thread.
const INLINE_DECODE: usize = 64 * 1024;

/// JSON nested deeper than this is refused before it is parsed. OTLP itself
/// needs about ten levels and each level of a structured attribute about
/// four more; the redaction walk stops at 32 levels of those anyway.
const MAX_JSON_DEPTH: usize = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Proto,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Proto => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

type Body = Full<Bytes>;

/// An error answer: HTTP status, a `google.rpc.Status`, maybe a retry delay,
/// and the reason label for `scrubs_otlp_rejected_total`.
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    rpc: RpcStatus,
    retry_after: Option<Duration>,
    reason: &'static str,
}

impl Failure {
    fn new(
        status: StatusCode,
        code: i32,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Failure {
        Failure {
            status,
            rpc: RpcStatus::new(code, message),
            retry_after: None,
            reason,
        }
    }

    fn retry(mut self, after: Duration) -> Failure {
        self.retry_after = Some(after);
        self
    }
}

fn failure_response(f: Failure, enc: Encoding) -> Response<Body> {
    let body = match enc {
        Encoding::Proto => f.rpc.encode_to_vec(),
        Encoding::Json => f.rpc.to_json(),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = f.status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(enc.content_type()));
    if let Some(after) = f.retry_after {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(retry_secs(after)));
    }
    resp
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
fn retry_secs(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

/// Answers one OTLP/HTTP request.
pub(super) async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let deadline = Instant::now() + shared.request_timeout;
    let signal = match req.uri().path() {
        "/v1/logs" => Some(Signal::Logs),
        "/v1/traces" => Some(Signal::Traces),
        "/v1/metrics" => Some(Signal::Metrics),
        _ => None,
    };
    let signal_name = signal.map_or("unknown", Signal::name);
    // The encoding decides the error body format, so find it first.
    let enc = payload_encoding(&req);
    let reply_enc = *enc.as_ref().unwrap_or(&Encoding::Proto);
    let result = match (signal, enc) {
        (None, _) => Err(Failure::new(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            "not_found",
            "unknown path; OTLP/HTTP paths are /v1/logs, /v1/traces and /v1/metrics",
        )),
        (Some(_), _) if req.method() != Method::POST => Err(Failure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            code::UNIMPLEMENTED,
            "method",
            "OTLP/HTTP exports use POST",
        )),
        (Some(_), Err(f)) => Err(f),
        (Some(signal), Ok(enc)) => export(shared, signal, enc, req, deadline).await,
    };
    let resp = match result {
        Ok(resp) => resp,
        Err(f) => {
            shared.count_rejected(f.reason);
            let mut resp = failure_response(f, reply_enc);
            if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
                resp.headers_mut()
                    .insert(hyper::header::ALLOW, HeaderValue::from_static("POST"));
            }
            resp
        }
    };
    shared.count_request(Transport::Http, signal_name, resp.status().as_str());
    resp
}

/// The payload encoding named by `Content-Type`.
fn payload_encoding<B>(req: &Request<B>) -> Result<Encoding, Failure> {
    let unsupported = || {
        Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::INVALID_ARGUMENT,
            "content_type",
            "unsupported Content-Type; use application/x-protobuf or application/json",
        )
    };
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unsupported)?;
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/x-protobuf")
        || media.eq_ignore_ascii_case("application/protobuf")
    {
        Ok(Encoding::Proto)
    } else if media.eq_ignore_ascii_case("application/json") {
        Ok(Encoding::Json)
    } else {
        Err(unsupported())
    }
}

/// Reads, decodes and hands over one export request.
async fn export(
    shared: &Shared,
    signal: Signal,
    enc: Encoding,
    req: Request<Incoming>,
    deadline: Instant,
) -> Result<Response<Body>, Failure> {
    let gzip = match req.headers().get(CONTENT_ENCODING).map(|v| v.to_str()) {
        None => false,
        Some(Ok(v)) if v.trim().is_empty() || v.trim().eq_ignore_ascii_case("identity") => false,
        Some(Ok(v))
            if v.trim().eq_ignore_ascii_case("gzip") || v.trim().eq_ignore_ascii_case("x-gzip") =>
        {
            true
        }
        Some(_) => {
            return Err(Failure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_ARGUMENT,
                "content_encoding",
                "unsupported Content-Encoding; use gzip or none",
            ))
        }
    };
    let too_large = || {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::RESOURCE_EXHAUSTED,
            "too_large",
            format!(
                "request body larger than max_request_bytes ({} bytes)",
                shared.max_request_bytes
            ),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.max_request_bytes as u64) {
        return Err(too_large());
    }
    let Some(_permit) = shared.try_request() else {
        return Err(Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            code::RESOURCE_EXHAUSTED,
            "busy",
            "too many requests in progress; retry later",
        )
        .retry(BUSY_RETRY));
    };

    // The body, bounded in size and time.
    let mut body = req.into_body();
    let cap = declared
        .map_or(8 * 1024, |n| n as usize)
        .min(shared.max_request_bytes);
    let mut buf: Vec<u8> = Vec::with_capacity(cap);
    let mut received = 0u64;
    let read = loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => break Err(ReadError::Timeout),
            Ok(None) => break Ok(()),
            Ok(Some(Err(_))) => break Err(ReadError::Io),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    received += data.len() as u64;
                    if buf.len() + data.len() > shared.max_request_bytes {
                        break Err(ReadError::TooLarge);
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    };
    shared.count_bytes(Transport::Http, signal.name(), received);
    match read {
        Ok(()) => {}
        Err(ReadError::TooLarge) => return Err(too_large()),
        Err(ReadError::Timeout) => {
            return Err(Failure::new(
                StatusCode::REQUEST_TIMEOUT,
                code::DEADLINE_EXCEEDED,
                "timeout",
                "request body not received within request_timeout",
            ))
        }
        Err(ReadError::Io) => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                code::INVALID_ARGUMENT,
                "io",
                "request body could not be read",
            ))
        }
    }

    // Inflate and decode, off the async threads when large.
    let limit = shared.max_decompressed_bytes;
    let decoded = if gzip || buf.len() > INLINE_DECODE {
        match tokio::task::spawn_blocking(move || decode(signal, enc, gzip, buf, limit)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                code::INTERNAL,
                "internal",
                "request could not be decoded",
            )),
        }
    } else {
        decode(signal, enc, gzip, buf, limit)
    }?;

    // Hand it over, within what is left of the time budget.
    let fut = match decoded {
        Decoded::Logs(r) => shared.handler.logs(r),
        Decoded::Traces(r) => shared.handler.traces(r),
        Decoded::Metrics(r) => shared.handler.metrics(r),
    };
    let outcome = match tokio::time::timeout_at(deadline, fut).await {
        Ok(r) => r,
        Err(_) => {
            return Err(Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code::UNAVAILABLE,
                "timeout",
                "the pipeline did not accept the request within request_timeout",
            )
            .retry(BUSY_RETRY))
        }
    };
    match outcome {
        Ok(out) => {
            shared.count_rejected_records(signal, out.rejected);
            Ok(success(signal, enc, &out))
        }
        Err(Rejection::Overloaded { retry_after }) => Err(Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            code::RESOURCE_EXHAUSTED,
            "overloaded",
            "scrubs is over its memory or queue budget; retry later",
        )
        .retry(retry_after)),
        Err(Rejection::Unavailable { retry_after }) => Err(Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            "unavailable",
            "scrubs cannot make records durable right now; retry later",
        )
        .retry(retry_after)),
        Err(Rejection::Invalid(msg)) => Err(Failure::new(
            StatusCode::BAD_REQUEST,
            code::INVALID_ARGUMENT,
            "invalid",
            msg,
        )),
    }
}

enum ReadError {
    TooLarge,
    Timeout,
    Io,
}

pub(crate) enum Decoded {
    Logs(ExportLogsServiceRequest),
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

fn bad(reason: &'static str, message: String) -> Failure {
    Failure::new(
        StatusCode::BAD_REQUEST,
        code::INVALID_ARGUMENT,
        reason,
        message,
    )
}

/// Inflates (if gzipped) and decodes a body. Error messages describe the
/// problem and its position, never the content.
pub(crate) fn decode(
    signal: Signal,
    enc: Encoding,
    gzip: bool,
    body: Vec<u8>,
    limit: usize,
) -> Result<Decoded, Failure> {
    let payload = if gzip {
        match gunzip(&body, limit) {
            Ok(p) => p,
            Err(GunzipError::TooLarge) => {
                return Err(Failure::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    code::RESOURCE_EXHAUSTED,
                    "decompressed_too_large",
                    format!("request larger than max_decompressed_bytes ({limit} bytes) after gzip decompression"),
                ))
            }
            Err(GunzipError::Invalid(e)) => return Err(bad("malformed", format!("invalid gzip body: {e}"))),
        }
    } else {
        body
    };
    match enc {
        Encoding::Proto => {
            let err =
                |e: prost::DecodeError| bad("malformed", format!("invalid OTLP protobuf: {e}"));
            Ok(match signal {
                Signal::Logs => Decoded::Logs(
                    ExportLogsServiceRequest::decode(payload.as_slice()).map_err(err)?,
                ),
                Signal::Traces => Decoded::Traces(
                    ExportTraceServiceRequest::decode(payload.as_slice()).map_err(err)?,
                ),
                Signal::Metrics => Decoded::Metrics(
                    ExportMetricsServiceRequest::decode(payload.as_slice()).map_err(err)?,
                ),
            })
        }
        Encoding::Json => {
            if json_too_deep(&payload, MAX_JSON_DEPTH) {
                return Err(bad(
                    "malformed",
                    format!("invalid OTLP JSON: nested deeper than {MAX_JSON_DEPTH} levels"),
                ));
            }
            let err = |e: serde_json::Error| {
                let kind = match e.classify() {
                    serde_json::error::Category::Io => "read error",
                    serde_json::error::Category::Syntax => "syntax error",
                    serde_json::error::Category::Data => "value does not match the OTLP schema",
                    serde_json::error::Category::Eof => "unexpected end of input",
                };
                // serde_json's own message can quote the input; report only
                // the kind of error and where it is.
                bad(
                    "malformed",
                    format!(
                        "invalid OTLP JSON: {kind} at line {} column {}",
                        e.line(),
                        e.column()
                    ),
                )
            };
            Ok(match signal {
                Signal::Logs => Decoded::Logs(serde_json::from_slice(&payload).map_err(err)?),
                Signal::Traces => Decoded::Traces(serde_json::from_slice(&payload).map_err(err)?),
                Signal::Metrics => Decoded::Metrics(serde_json::from_slice(&payload).map_err(err)?),
            })
        }
    }
}

/// Whether JSON text nests objects and arrays deeper than `max` (strings
/// are skipped; malformed input is left for the parser to report).
fn json_too_deep(text: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for &b in text {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[derive(Debug)]
enum GunzipError {
    TooLarge,
    Invalid(std::io::Error),
}

/// Inflates gzip (one or more members) into at most `limit` bytes; stops
/// reading as soon as the output would pass the limit.
fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    let mut dec = flate2::read::MultiGzDecoder::new(data);
    let mut out: Vec<u8> = Vec::with_capacity((data.len() * 4).clamp(1024, limit.max(1024)));
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match dec.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(GunzipError::Invalid(e)),
        };
        if out.len() + n > limit {
            return Err(GunzipError::TooLarge);
        }
        if out.len() + n > out.capacity() {
            // Grow by doubling, but never past the limit.
            let want = (out.capacity() * 2).max(out.len() + n).min(limit);
            out.reserve_exact(want - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// The `200 OK` answer: an `Export*ServiceResponse`, with `partial_success`
/// set when records were rejected (or the handler has a warning).
fn success(signal: Signal, enc: Encoding, out: &ExportOutcome) -> Response<Body> {
    let partial = out.rejected > 0 || !out.message.is_empty();
    let msg = out.message.clone();
    let body: Vec<u8> = match (signal, enc) {
        (_, Encoding::Json) if !partial => b"{}".to_vec(),
        (Signal::Logs, _) => {
            let r = ExportLogsServiceResponse {
                partial_success: partial.then_some(ExportLogsPartialSuccess {
                    rejected_log_records: out.rejected,
                    error_message: msg,
                }),
            };
            encode(&r, enc)
        }
        (Signal::Traces, _) => {
            let r = ExportTraceServiceResponse {
                partial_success: partial.then_some(ExportTracePartialSuccess {
                    rejected_spans: out.rejected,
                    error_message: msg,
                }),
            };
            encode(&r, enc)
        }
        (Signal::Metrics, _) => {
            let r = ExportMetricsServiceResponse {
                partial_success: partial.then_some(ExportMetricsPartialSuccess {
                    rejected_data_points: out.rejected,
                    error_message: msg,
                }),
            };
            encode(&r, enc)
        }
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(enc.content_type()));
    resp
}

fn encode<M: Message + serde::Serialize>(m: &M, enc: Encoding) -> Vec<u8> {
    match enc {
        Encoding::Proto => m.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(m).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gunzip_limits() {
        let data = vec![b'a'; 100_000];
        assert_eq!(gunzip(&gz(&data), 100_000).unwrap(), data);
        assert!(matches!(
            gunzip(&gz(&data), 99_999),
            Err(GunzipError::TooLarge)
        ));
        assert!(matches!(
            gunzip(b"not gzip", 1000),
            Err(GunzipError::Invalid(_))
        ));
        // Two members.
        let mut two = gz(b"ab");
        two.extend(gz(b"cd"));
        assert_eq!(gunzip(&two, 10).unwrap(), b"abcd");
        // A bomb stops at the limit with bounded capacity.
        let bomb = gz(&vec![0u8; 50 << 20]);
        assert!(bomb.len() < 100 * 1024);
        assert!(matches!(gunzip(&bomb, 1 << 20), Err(GunzipError::TooLarge)));
    }

    #[test]
    fn json_depth() {
        assert!(!json_too_deep(br#"{"a":[{"b":"[[[[[["}]}"#, 3));
        assert!(json_too_deep(b"[[[[", 3));
        assert!(!json_too_deep(br#"["\"[[[["]"#, 1));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_secs(Duration::ZERO), 1);
        assert_eq!(retry_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_secs(Duration::from_secs(30)), 30);
    }

    #[test]
    fn json_errors_do_not_quote_input() {
        let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"Maria Gonzalez"}]}]}]}"#;
        let Err(f) = decode(Signal::Logs, Encoding::Json, false, body.to_vec(), 1 << 20) else {
            panic!("decoded");
        };
        assert_eq!(f.status, StatusCode::BAD_REQUEST);
        assert!(!f.rpc.message.contains("Maria"), "{}", f.rpc.message);
        assert!(f.rpc.message.contains("line 1"), "{}", f.rpc.message);
    }
}
