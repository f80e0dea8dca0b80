//! The crate's one error type.
//!
//! Errors are `Clone` because the push pipeline hands the same error to the
//! `on_error` callback and keeps it as [`crate::Client::last_error`].

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong talking to Skald or Loki.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work (bad URL, header value, zero limits).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A label name or value that Loki would refuse.
    #[error("invalid label: {0}")]
    InvalidLabel(String),
    /// The server refused a push with a status that retrying cannot fix
    /// (a 4xx other than 429); the batch is dropped.
    #[error("push of {entries} entries rejected with status {status}: {body}")]
    Rejected {
        status: u16,
        entries: u64,
        body: String,
    },
    /// A push failed with a transient error and will be tried again after
    /// `retry_in`.
    #[error("push attempt {attempt} failed, retrying in {retry_in:?}: {cause}")]
    Retrying {
        attempt: u32,
        retry_in: Duration,
        cause: Box<Error>,
    },
    /// A push kept failing with transient errors until the retry budget was
    /// spent; the batch is dropped.
    #[error("push of {entries} entries failed after {attempts} attempts: {cause}")]
    RetriesExhausted {
        attempts: u32,
        entries: u64,
        cause: Box<Error>,
    },
    /// The server answered with an unexpected status (a query, or one push
    /// attempt).
    #[error("server answered status {status}: {body}")]
    Status { status: u16, body: String },
    /// No answer: connection refused or reset, timeout, DNS.
    #[error("network error: {0}")]
    Network(String),
    /// The client was closed; nothing more is accepted.
    #[error("client is closed")]
    Closed,
    /// The queue was full and the backpressure mode is `DropNew`.
    #[error("queue is full, entry dropped")]
    QueueFull,
    /// `flush` or `close` reached its deadline first.
    #[error("deadline reached with {pending} entries not yet delivered")]
    Timeout { pending: u64 },
    /// The disk queue could not be read or written.
    #[error("disk queue {}: {message}", path.display())]
    Disk { path: PathBuf, message: String },
    /// The server's answer was not what Loki's API promises.
    #[error("decoding server response: {0}")]
    Decode(String),
    /// The server does not offer this endpoint (it answered 404).
    #[error("{0} is not supported by the server")]
    NotSupported(&'static str),
    /// A gRPC call ended with a status other than OK (see
    /// [`GrpcCode`] for what each code means with Skald).
    #[error("server answered {code}: {message}")]
    Grpc { code: GrpcCode, message: String },
    /// A LogQL builder was given something that cannot be printed as valid
    /// LogQL.
    #[error("invalid LogQL: {0}")]
    LogQl(String),
}

impl Error {
    /// The gRPC status code, for errors from the gRPC client.
    pub fn grpc_code(&self) -> Option<GrpcCode> {
        match self {
            Error::Grpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn disk(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Error {
        Error::Disk {
            path: path.into(),
            message: err.to_string(),
        }
    }
}

/// gRPC status codes, as the server uses them (the proto's header lists
/// them): `InvalidArgument` names the wrong field, `NotFound` an unknown id,
/// `ResourceExhausted` a limit, `FailedPrecondition` an impossible state,
/// `Unavailable` a server shutting down or unreachable (retry),
/// `Unimplemented` a query kind not evaluated yet, `Internal` anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrpcCode {
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}

impl GrpcCode {
    /// The code's name as gRPC spells it (`INVALID_ARGUMENT`).
    pub fn as_str(self) -> &'static str {
        match self {
            GrpcCode::Cancelled => "CANCELLED",
            GrpcCode::Unknown => "UNKNOWN",
            GrpcCode::InvalidArgument => "INVALID_ARGUMENT",
            GrpcCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            GrpcCode::NotFound => "NOT_FOUND",
            GrpcCode::AlreadyExists => "ALREADY_EXISTS",
            GrpcCode::PermissionDenied => "PERMISSION_DENIED",
            GrpcCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            GrpcCode::FailedPrecondition => "FAILED_PRECONDITION",
            GrpcCode::Aborted => "ABORTED",
            GrpcCode::OutOfRange => "OUT_OF_RANGE",
            GrpcCode::Unimplemented => "UNIMPLEMENTED",
            GrpcCode::Internal => "INTERNAL",
            GrpcCode::Unavailable => "UNAVAILABLE",
            GrpcCode::DataLoss => "DATA_LOSS",
            GrpcCode::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// Whether the same call may succeed later unchanged: `UNAVAILABLE`,
    /// `RESOURCE_EXHAUSTED` (a rate, not a size, may be what was exhausted;
    /// the message says), `DEADLINE_EXCEEDED` and `ABORTED`.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            GrpcCode::Unavailable
                | GrpcCode::ResourceExhausted
                | GrpcCode::DeadlineExceeded
                | GrpcCode::Aborted
        )
    }
}

impl std::fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
