//! `POST /otlp/v1/logs` through the router (no socket): protobuf and
//! gzip-compressed JSON bodies are stored for the tenant that sent them and
//! read back with LogQL; bad bodies get their status and store nothing;
//! Drilldown's endpoints answer per tenant.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::Value;
use skald_model::Timestamp;
use skald_server::{AppState, IngestConfig, ServerConfig, app};
use skald_store::{FsyncMode, Store, StoreConfig};
use std::io::Write;
use std::sync::Arc;
use tower::ServiceExt;

fn router(dir: &std::path::Path) -> (axum::Router, Arc<Store>) {
    let store = Arc::new(
        Store::open(StoreConfig {
            data_dir: dir.to_path_buf(),
            fsync: FsyncMode::Interval,
            compact_fan_in: 0,
            ..StoreConfig::default()
        })
        .expect("open store"),
    );
    let state = Arc::new(AppState {
        ingest: IngestConfig::loki_defaults(),
        ..AppState::build(store.clone(), ServerConfig::default()).expect("state")
    });
    (app(state), store)
}

fn string(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    })
}

fn request(service: &str, line: &str, ts: i64) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: string(service),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: ts as u64,
                    severity_number: 17,
                    severity_text: "ERROR".into(),
                    body: string(line),
                    trace_id: vec![0x5b; 16],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn send(router: &axum::Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let response = router.clone().oneshot(req).await.expect("response");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body.to_vec())
}

fn post(tenant: &str, content_type: &str, encoding: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut b = Request::builder()
        .method("POST")
        .uri("/otlp/v1/logs")
        .header("x-scope-orgid", tenant)
        .header("content-type", content_type);
    if let Some(e) = encoding {
        b = b.header("content-encoding", e);
    }
    b.body(Body::from(body)).expect("request")
}

fn get(tenant: &str, path: &str, params: &[(&str, &str)]) -> Request<Body> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    Request::builder()
        .uri(format!("{path}?{}", q.finish()))
        .header("x-scope-orgid", tenant)
        .body(Body::empty())
        .expect("request")
}

#[tokio::test]
async fn otlp_bodies_are_stored_per_tenant_and_bad_ones_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (router, store) = router(dir.path());
    let now = Timestamp::now().0;

    let proto = request("checkout", "payment failed", now - 2_000_000_000).encode_to_vec();
    let (status, body) = send(&router, post("a", "application/x-protobuf", None, proto)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(
        ExportLogsServiceResponse::decode(body.as_slice()).is_ok(),
        "answer in the request's encoding"
    );

    let json = serde_json::to_vec(&request("cart", "cart saved", now - 1_000_000_000)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&json).unwrap();
    let (status, body) = send(
        &router,
        post("b", "application/json", Some("gzip"), gz.finish().unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));

    let start = (now - 3_600_000_000_000).to_string();
    let lines = |tenant: &'static str, query: &'static str| {
        let router = router.clone();
        let start = start.clone();
        async move {
            let (status, body) = send(
                &router,
                get(
                    tenant,
                    "/loki/api/v1/query_range",
                    &[("query", query), ("start", &start)],
                ),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
            let v: Value = serde_json::from_slice(&body).unwrap();
            v["data"]["result"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s["values"].as_array().unwrap().clone())
                .map(|e| e[1].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    let trace = r#"{service_name="checkout"} | trace_id="5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b" | detected_level="error""#;
    assert_eq!(lines("a", trace).await, vec!["payment failed"]);
    assert!(lines("b", trace).await.is_empty(), "tenant b sees tenant a");
    assert_eq!(
        lines("b", r#"{service_name="cart"} | severity_text="ERROR""#).await,
        vec!["cart saved"]
    );

    // Drilldown, per tenant.
    let (_, body) = send(
        &router,
        get("a", "/loki/api/v1/detected_labels", &[("start", &start)]),
    )
    .await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"detectedLabels": [{"label": "service_name", "cardinality": 1}]})
    );
    let (_, body) = send(
        &router,
        get(
            "b",
            "/loki/api/v1/detected_field/severity_text/values",
            &[("query", r#"{service_name=~".+"}"#), ("start", &start)],
        ),
    )
    .await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v, serde_json::json!({"values": ["ERROR"], "limit": 1000}));

    // Bad bodies: their status, a reason, nothing stored.
    for (content_type, encoding, body, want, text) in [
        (
            "application/x-protobuf",
            None,
            b"\xff\xff\xff".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid OTLP protobuf body",
        ),
        (
            "application/json",
            None,
            b"[1]".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid OTLP JSON body",
        ),
        (
            "text/plain",
            None,
            b"x".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content type",
        ),
        (
            "application/json",
            Some("br"),
            b"x".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content encoding",
        ),
        (
            "application/json",
            Some("gzip"),
            b"nope".to_vec(),
            StatusCode::BAD_REQUEST,
            "gzip",
        ),
    ] {
        let (status, body) = send(&router, post("c", content_type, encoding, body)).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, want, "{content_type} {encoding:?}: {body}");
        assert!(body.contains(text), "{content_type} {encoding:?}: {body}");
    }
    let c = skald_model::TenantId::new("c").unwrap();
    assert!(
        store
            .label_names(&c, Timestamp(0), Timestamp(i64::MAX))
            .is_empty()
    );
    store.close().expect("close");
}
