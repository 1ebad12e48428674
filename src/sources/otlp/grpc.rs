//! OTLP/gRPC: the tonic services of `opentelemetry-proto`, served by our own
//! HTTP/2 connections so that request slots, wire-size limits and timeouts
//! apply before a message is buffered and decoded.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::codegen::Service;
use tonic::{Code, Status};

use super::status::RpcStatus;
use super::{Shared, Signal, Transport, BUSY_RETRY};
use crate::pipeline::{ExportOutcome, Rejection};

type GrpcBody = tonic::body::Body;

/// The three OTLP services, configured once.
pub(super) struct Services {
    logs: LogsServiceServer<Export>,
    traces: TraceServiceServer<Export>,
    metrics: MetricsServiceServer<Export>,
}

impl Services {
    pub(super) fn new(shared: Arc<Shared>) -> Services {
        let export = Arc::new(Export {
            shared: shared.clone(),
        });
        let max = shared.max_decompressed_bytes;
        // Responses are tiny; the limit only guards against a bug.
        let max_out = 1 << 20;
        Services {
            logs: LogsServiceServer::from_arc(export.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max_out),
            traces: TraceServiceServer::from_arc(export.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max_out),
            metrics: MetricsServiceServer::from_arc(export)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max_out),
        }
    }
}

/// A gRPC status carrying a `RetryInfo`, so clients know the error is
/// retryable and when to retry.
fn status_with_retry(code: Code, message: &str, after: Duration) -> Status {
    let details = RpcStatus::new(code as i32, message)
        .with_retry(after)
        .encode_to_vec();
    Status::with_details(code, message, Bytes::from(details))
}

/// Answers one gRPC request.
pub(super) async fn handle(
    shared: &Shared,
    services: &Services,
    req: Request<Incoming>,
) -> Response<GrpcBody> {
    let signal = match req.uri().path() {
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export" => Some(Signal::Logs),
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export" => Some(Signal::Traces),
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export" => Some(Signal::Metrics),
        _ => None,
    };
    let Some(signal) = signal else {
        shared.count_rejected("not_found");
        shared.count_request(Transport::Grpc, "unknown", code_name(Code::Unimplemented));
        return Status::unimplemented(
            "unknown method; OTLP/gRPC serves the logs, trace and metrics Export methods",
        )
        .into_http();
    };
    let Some(_permit) = shared.try_request() else {
        shared.count_rejected("busy");
        shared.count_request(
            Transport::Grpc,
            signal.name(),
            code_name(Code::ResourceExhausted),
        );
        return status_with_retry(
            Code::ResourceExhausted,
            "too many requests in progress; retry later",
            BUSY_RETRY,
        )
        .into_http();
    };
    let over = Arc::new(AtomicBool::new(false));
    let counted = Arc::new(AtomicU64::new(0));
    let req = req.map(|b| LimitedBody {
        inner: b,
        seen: 0,
        limit: shared.max_request_bytes as u64,
        over: over.clone(),
        counted: counted.clone(),
    });
    let fut = match signal {
        Signal::Logs => services.logs.clone().call(req),
        Signal::Traces => services.traces.clone().call(req),
        Signal::Metrics => services.metrics.clone().call(req),
    };
    let mut resp = match tokio::time::timeout(shared.request_timeout, fut).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(never)) => match never {},
        Err(_) => {
            shared.count_rejected("timeout");
            Status::deadline_exceeded("request not received and handled within request_timeout")
                .into_http()
        }
    };
    shared.count_bytes(
        Transport::Grpc,
        signal.name(),
        counted.load(Ordering::Relaxed),
    );

    // Errors are trailers-only responses: the status is in the headers.
    // Give tonic's own decode errors the codes OTLP asks for.
    let code = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32);
    let code = match code {
        None => Code::Ok,
        Some(Code::OutOfRange) => {
            // A message over max_decoding_message_size: OUT_OF_RANGE would
            // be retried forever; RESOURCE_EXHAUSTED without RetryInfo is not.
            shared.count_rejected("too_large");
            set_status(&mut resp, Code::ResourceExhausted);
            Code::ResourceExhausted
        }
        Some(Code::ResourceExhausted) if over.load(Ordering::Relaxed) => {
            shared.count_rejected("too_large");
            Code::ResourceExhausted
        }
        Some(Code::ResourceExhausted) if !has_details(&resp) => {
            // tonic's decompression limit.
            shared.count_rejected("decompressed_too_large");
            Code::ResourceExhausted
        }
        Some(Code::Internal) => {
            // Undecodable protobuf or gzip: bad data, not to be retried.
            shared.count_rejected("malformed");
            set_status(&mut resp, Code::InvalidArgument);
            Code::InvalidArgument
        }
        Some(c) => c,
    };
    shared.count_request(Transport::Grpc, signal.name(), code_name(code));
    resp
}

fn has_details<B>(resp: &Response<B>) -> bool {
    resp.headers().contains_key("grpc-status-details-bin")
}

fn set_status<B>(resp: &mut Response<B>, code: Code) {
    resp.headers_mut()
        .insert("grpc-status", HeaderValue::from(code as i32));
}

/// The metric label for a gRPC code.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A request body that counts its bytes and fails once more than `limit`
/// have arrived, with a status tonic passes on to the client.
struct LimitedBody {
    inner: Incoming,
    seen: u64,
    limit: u64,
    over: Arc<AtomicBool>,
    counted: Arc<AtomicU64>,
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.seen > this.limit {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    this.seen += n;
                    this.counted.fetch_add(n, Ordering::Relaxed);
                    if this.seen > this.limit {
                        this.over.store(true, Ordering::Relaxed);
                        let status = Status::resource_exhausted(format!(
                            "request larger than max_request_bytes ({} bytes)",
                            this.limit
                        ));
                        return Poll::Ready(Some(Err(Box::new(status))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The handler side of the three services.
struct Export {
    shared: Arc<Shared>,
}

impl Export {
    fn rejection(&self, r: Rejection) -> Status {
        match r {
            Rejection::Overloaded { retry_after } => {
                self.shared.count_rejected("overloaded");
                status_with_retry(
                    Code::ResourceExhausted,
                    "scrubs is over its memory or queue budget; retry later",
                    retry_after,
                )
            }
            Rejection::Unavailable { retry_after } => {
                self.shared.count_rejected("unavailable");
                status_with_retry(
                    Code::Unavailable,
                    "scrubs cannot make records durable right now; retry later",
                    retry_after,
                )
            }
            Rejection::Invalid(msg) => {
                self.shared.count_rejected("invalid");
                Status::invalid_argument(msg)
            }
        }
    }

    fn partial(&self, signal: Signal, out: &ExportOutcome) -> bool {
        self.shared.count_rejected_records(signal, out.rejected);
        out.rejected > 0 || !out.message.is_empty()
    }
}

#[tonic::async_trait]
impl LogsService for Export {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, Status> {
        let out = self
            .shared
            .handler
            .logs(request.into_inner())
            .await
            .map_err(|r| self.rejection(r))?;
        let partial = self.partial(Signal::Logs, &out);
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: partial.then_some(ExportLogsPartialSuccess {
                rejected_log_records: out.rejected,
                error_message: out.message,
            }),
        }))
    }
}

#[tonic::async_trait]
impl TraceService for Export {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, Status> {
        let out = self
            .shared
            .handler
            .traces(request.into_inner())
            .await
            .map_err(|r| self.rejection(r))?;
        let partial = self.partial(Signal::Traces, &out);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: partial.then_some(ExportTracePartialSuccess {
                rejected_spans: out.rejected,
                error_message: out.message,
            }),
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Export {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, Status> {
        let out = self
            .shared
            .handler
            .metrics(request.into_inner())
            .await
            .map_err(|r| self.rejection(r))?;
        let partial = self.partial(Signal::Metrics, &out);
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: partial.then_some(ExportMetricsPartialSuccess {
                rejected_data_points: out.rejected,
                error_message: out.message,
            }),
        }))
    }
}
