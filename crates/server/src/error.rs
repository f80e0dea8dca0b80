//! The one place errors become HTTP statuses.
//!
//! Loki answers errors with a plain-text body holding the message, and so
//! do we: clients (logcli, Grafana, promtail) show that body to the user.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: message.into(),
        }
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
}

impl From<skald_store::StoreError> for ApiError {
    fn from(e: skald_store::StoreError) -> Self {
        match e {
            skald_store::StoreError::ShuttingDown => {
                ApiError::unavailable("the server is shutting down")
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::internal("the server could not store the push; see its log")
            }
        }
    }
}

impl From<skald_query::QueryError> for ApiError {
    fn from(e: skald_query::QueryError) -> Self {
        match e {
            skald_query::QueryError::Timeout(m) => ApiError {
                status: StatusCode::GATEWAY_TIMEOUT,
                message: m,
            },
            // Nobody reads the answer: the client went away.
            skald_query::QueryError::Cancelled => ApiError {
                status: StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                message: e.to_string(),
            },
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.message;
        body.push('\n');
        (
            self.status,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            body,
        )
            .into_response()
    }
}
