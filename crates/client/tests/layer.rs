//! The tracing layer end to end against the mock server.

mod common;

use common::Mock;
use skald_client::{Client, Config, LineFormat, LokiLayer};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

fn run(layer: impl Fn(Client) -> LokiLayer, emit: impl FnOnce()) -> Vec<common::Got> {
    let mock = Mock::start();
    let client = Client::new(Config::new(&mock.url)).unwrap();
    let subscriber = tracing_subscriber::registry().with(layer(client.clone()));
    tracing::subscriber::with_default(subscriber, emit);
    client.flush(Duration::from_secs(60)).unwrap();
    mock.delivered()
}

#[test]
fn events_become_entries_with_span_fields_and_no_promoted_labels() {
    let got = run(
        |c| LokiLayer::new(c).with_static_label("service", "api"),
        || {
            let span = tracing::info_span!("request", id = 42, path = "/a b");
            let _enter = span.enter();
            let inner = tracing::info_span!("db", table = "users");
            let _inner = inner.enter();
            tracing::warn!(user_id = "u1", "slow query");
        },
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].stream, r#"{level="warn", service="api"}"#);
    assert_eq!(
        got[0].line,
        r#"slow query request.id=42 request.path="/a b" db.table=users user_id=u1"#
    );
    let now = skald_client::Timestamp::now().0;
    assert!(got[0].ts > 0 && got[0].ts <= now);
}

#[test]
fn allow_listed_fields_become_labels_unless_denied() {
    let got = run(
        |c| {
            LokiLayer::new(c)
                .with_label_allow_list(["http.status", "request.id", "region"])
                .with_label_deny_list(["request.id"])
                .with_level_label(None)
        },
        || {
            let span = tracing::info_span!("request", id = 7);
            let _enter = span.enter();
            tracing::info!(http.status = 200, region = "eu", other = 1, "done");
        },
    );
    assert_eq!(got[0].stream, r#"{http_status="200", region="eu"}"#);
    assert_eq!(
        got[0].line,
        "done request.id=7 http.status=200 region=eu other=1"
    );
}

#[test]
fn json_lines_and_recorded_span_fields() {
    let got = run(
        |c| LokiLayer::new(c).with_line_format(LineFormat::Json),
        || {
            let span = tracing::info_span!("job", attempt = tracing::field::Empty);
            let _enter = span.enter();
            span.record("attempt", 3);
            tracing::error!(code = "E1", "failed \"hard\"");
        },
    );
    assert_eq!(got[0].stream, r#"{level="error"}"#);
    let line: serde_json::Value = serde_json::from_str(&got[0].line).unwrap();
    assert_eq!(
        line,
        serde_json::json!({"message": "failed \"hard\"", "job.attempt": "3", "code": "E1"})
    );
}

#[test]
fn the_http_stack_is_not_logged() {
    let got = run(LokiLayer::new, || {
        tracing::info!(target: "hyper::client", "connecting");
        tracing::info!(target: "hyperion", "kept");
    });
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].line, "kept");
}
