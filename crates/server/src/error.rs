//! How a [`ServiceError`] becomes an HTTP response (its status comes from
//! [`crate::service::ErrorCode::statuses`], the one mapping).
//!
//! Loki answers errors with a plain-text body holding the message, and so
//! do we: clients (logcli, Grafana, promtail) show that body to the user.
//! A 401 carries `WWW-Authenticate`, so browsers and Grafana ask for
//! credentials.

use crate::service::{ErrorCode, ServiceError};
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The HTTP handlers' error: the service layer's.
pub type ApiError = ServiceError;

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let mut body = self.message;
        body.push('\n');
        let status = self.code.http_status();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response();
        if self.code == ErrorCode::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(crate::service::auth::CHALLENGE),
            );
        }
        response
    }
}
