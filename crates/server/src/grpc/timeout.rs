//! The `grpc-timeout` a client sends with a call (gRPC over HTTP/2:
//! `grpc-timeout: <1..8 digits><H|M|S|m|u|n>`), enforced the way tonic's
//! own server does: the call's handler gets that long to answer (its
//! response headers; a stream then runs on), after which the handler is
//! dropped — which cancels a running query through its `CancelOnDrop` —
//! and the client gets DEADLINE_EXCEEDED. A malformed header is refused
//! with INVALID_ARGUMENT, naming it.
//!
//! Not here: the server's own `query_timeout`, which applies whatever the
//! client sends (the smaller of the two ends a query first).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// Parses a `grpc-timeout` value; `None` if it is malformed.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Middleware for the gRPC router: see the module documentation.
pub async fn enforce(req: Request, next: Next) -> Response {
    let Some(raw) = req.headers().get("grpc-timeout").cloned() else {
        return next.run(req).await;
    };
    let Some(limit) = raw.to_str().ok().and_then(parse_grpc_timeout) else {
        let shown = String::from_utf8_lossy(raw.as_bytes()).into_owned();
        return tonic::Status::invalid_argument(format!(
            "malformed grpc-timeout header {shown:?}: expected 1 to 8 digits and a unit (H, M, S, m, u or n)"
        ))
        .into_http::<axum::body::Body>()
        .into_response();
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => tonic::Status::deadline_exceeded(format!(
            "the call's deadline (grpc-timeout {}) passed before it was answered",
            raw.to_str().unwrap_or("?")
        ))
        .into_http::<axum::body::Body>()
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    /// A router whose one call takes 300 ms to answer, behind the
    /// middleware.
    fn slow() -> Router {
        Router::new()
            .route(
                "/skald.v1.LogService/QueryLogs",
                post(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "late"
                }),
            )
            .layer(axum::middleware::from_fn(enforce))
    }

    async fn call(timeout: Option<&str>) -> Response {
        let mut req = axum::http::Request::post("/skald.v1.LogService/QueryLogs")
            .header("content-type", "application/grpc");
        if let Some(t) = timeout {
            req = req.header("grpc-timeout", t);
        }
        slow()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn grpc_status(r: &Response) -> Option<&str> {
        r.headers().get("grpc-status").and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn a_call_past_its_grpc_timeout_is_deadline_exceeded() {
        let r = call(Some("5m")).await;
        assert_eq!(grpc_status(&r), Some("4"), "{:?}", r.headers());
        let message = r.headers()["grpc-message"].to_str().unwrap().to_string();
        assert!(message.contains("grpc-timeout"), "{message}");
        // A malformed header is refused, naming it.
        let r = call(Some("5s")).await;
        assert_eq!(grpc_status(&r), Some("3"), "{:?}", r.headers());
        // No header, or one longer than the call: the call's own answer.
        let r = call(None).await;
        assert_eq!(grpc_status(&r), None);
        let r = call(Some("1M")).await;
        assert_eq!(grpc_status(&r), None);
        let body = axum::body::to_bytes(r.into_body(), 100).await.unwrap();
        assert_eq!(&body[..], b"late");
    }

    #[test]
    fn parses_every_unit_and_refuses_malformed_values() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in [
            "",
            "S",
            "5",
            "5s",
            "123456789S",
            "-5S",
            "5 S",
            "1.5S",
            "5SS",
        ] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
