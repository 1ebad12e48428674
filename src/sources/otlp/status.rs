//! The few `google.rpc` messages OTLP error responses carry, written by
//! hand: `opentelemetry-proto` does not ship them.

use std::time::Duration;

/// `google.rpc.Status`: the body of every OTLP/HTTP 4xx and 5xx response,
/// and the `grpc-status-details-bin` of a gRPC error.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct RpcStatus {
    /// A `google.rpc.Code` (gRPC status code). OTLP clients may ignore it.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// A developer-facing message, in English. Never event content.
    #[prost(string, tag = "2")]
    pub message: String,
    /// `google.protobuf.Any` details, such as a `RetryInfo`.
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ProtoAny {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// The type URL of `RetryInfo` in an `Any`.
pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// gRPC status codes used in `RpcStatus.code`.
pub mod code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const NOT_FOUND: i32 = 5;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
}

impl RpcStatus {
    /// A status with a code and message and no details.
    pub fn new(code: i32, message: impl Into<String>) -> RpcStatus {
        RpcStatus {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// Adds a `RetryInfo` detail.
    pub fn with_retry(mut self, after: Duration) -> RpcStatus {
        let info = RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                nanos: after.subsec_nanos() as i32,
            }),
        };
        self.details.push(ProtoAny {
            type_url: RETRY_INFO_TYPE.to_string(),
            value: prost::Message::encode_to_vec(&info),
        });
        self
    }

    /// The retry delay of a `RetryInfo` detail, if there is one.
    pub fn retry_delay(&self) -> Option<Duration> {
        let any = self
            .details
            .iter()
            .find(|d| d.type_url == RETRY_INFO_TYPE)?;
        let info: RetryInfo = prost::Message::decode(any.value.as_slice()).ok()?;
        let d = info.retry_delay?;
        Some(Duration::new(
            u64::try_from(d.seconds).ok()?,
            u32::try_from(d.nanos).ok()?,
        ))
    }

    /// The JSON form (`{"code":..,"message":..}`), for OTLP/JSON clients.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "code": self.code,
            "message": self.message,
        }))
        .unwrap_or_default()
    }
}
