//! The gRPC client against the real `skald` binary: every LogService
//! operation at least once with valid input, checked against what was
//! pushed, and once with invalid input, checked for its status code and a
//! message naming what was wrong. Each test starts its own server (found or
//! built as `common::server` says), so tests run in parallel undisturbed.

#![cfg(feature = "grpc")]

mod common;

use common::free_port;
use common::server::Server;
use futures_util::StreamExt;
use skald_client::grpc::{GrpcClient, pb};
use skald_client::{
    Direction, Endpoint, Error, GrpcCode, QueryClient, QueryResult, RangeQuery, Timestamp,
};
use std::time::Duration;

const SECOND: i64 = 1_000_000_000;

async fn connect(server: &Server) -> GrpcClient {
    GrpcClient::connect(Endpoint::new(&server.grpc_url))
        .await
        .unwrap()
}

async fn connect_as(server: &Server, tenant: &str) -> GrpcClient {
    let mut endpoint = Endpoint::new(&server.grpc_url);
    endpoint.tenant = Some(tenant.to_string());
    GrpcClient::connect(endpoint).await.unwrap()
}

/// Asserts `result` is a gRPC error with `code` whose message contains
/// `needle` (the field or thing the server names).
#[track_caller]
fn assert_status<T: std::fmt::Debug>(
    result: skald_client::Result<T>,
    code: GrpcCode,
    needle: &str,
) {
    match result {
        Err(Error::Grpc { code: got, message }) => {
            assert_eq!(got, code, "message: {message}");
            assert!(
                message.contains(needle),
                "{code} message {message:?} should mention {needle:?}"
            );
        }
        other => panic!("expected {code} mentioning {needle:?}, got {other:?}"),
    }
}

/// Every (labels, line) of a query's answer, in the order given.
fn lines(streams: &[pb::Stream]) -> Vec<String> {
    streams
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| e.line.clone()))
        .collect()
}

/// Lines across streams, ordered by timestamp.
fn lines_by_time(streams: &[pb::Stream]) -> Vec<String> {
    let mut all: Vec<(i64, String)> = streams
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| (e.timestamp_ns, e.line.clone())))
        .collect();
    all.sort();
    all.into_iter().map(|(_, line)| line).collect()
}

fn label<'a>(labels: &'a [pb::Label], name: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|l| l.name == name)
        .map(|l| l.value.as_str())
}

async fn query(
    client: &GrpcClient,
    q: &str,
    limit: u32,
    direction: pb::Direction,
) -> Vec<pb::Stream> {
    client
        .query_logs(pb::QueryLogsRequest {
            query: q.into(),
            limit,
            direction: direction as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .streams
}

#[tokio::test]
async fn push_log_stores_one_entry_and_refuses_bad_input() {
    let server = Server::start();
    let client = connect(&server).await;
    let t = Timestamp::now().0;
    let request = pb::PushLogRequest {
        labels: pb::labels([("suite", "push"), ("app", "api")]),
        entry: Some(pb::Entry::new(t, "hello world").with_metadata("request_id", "r-1")),
    };
    let pushed = client.push_log(request.clone()).await.unwrap();
    assert_eq!((pushed.accepted, pushed.rejected), (1, 0));
    assert!(pushed.accepted_bytes >= "hello world".len() as u64);

    let streams = query(&client, r#"{suite="push"}"#, 10, pb::Direction::Backward).await;
    assert_eq!(streams.len(), 1);
    assert_eq!(label(&streams[0].labels, "app"), Some("api"));
    let entry = &streams[0].entries[0];
    assert_eq!(
        (entry.timestamp_ns, entry.line.as_str()),
        (t, "hello world")
    );
    assert_eq!(
        entry.structured_metadata,
        vec![pb::Label::new("request_id", "r-1")]
    );

    // The same entry again is a duplicate, not a second entry.
    let again = client.push_log(request).await.unwrap();
    assert_eq!(again.accepted + again.duplicates, 1);
    assert_eq!(again.accepted, 0);
    let streams = query(&client, r#"{suite="push"}"#, 10, pb::Direction::Backward).await;
    assert_eq!(lines(&streams), ["hello world"]);

    // A single push with a bad label name is refused outright, naming it.
    assert_status(
        client
            .push_log(pb::PushLogRequest {
                labels: pb::labels([("bad-name", "x")]),
                entry: Some(pb::Entry::new(0, "line")),
            })
            .await,
        GrpcCode::InvalidArgument,
        "bad-name",
    );
    // No entry at all is not a push.
    assert_status(
        client
            .push_log(pb::PushLogRequest {
                labels: pb::labels([("suite", "push")]),
                entry: None,
            })
            .await,
        GrpcCode::InvalidArgument,
        "entry",
    );
}

#[tokio::test]
async fn push_log_batch_stores_valid_streams_and_rejects_the_rest() {
    let server = Server::start();
    let client = connect(&server).await;
    let t = Timestamp::now().0 - SECOND;
    let pushed = client
        .push_log_batch(pb::PushLogBatchRequest {
            streams: vec![
                pb::Stream::new(
                    pb::labels([("suite", "batch"), ("app", "a")]),
                    vec![pb::Entry::new(t, "a1"), pb::Entry::new(t + 1, "a2")],
                ),
                pb::Stream::new(
                    pb::labels([("suite", "batch"), ("app", "b")]),
                    vec![
                        pb::Entry::new(t + 2, "b1").with_metadata("k", "v"),
                        pb::Entry::new(t + 3, "b2"),
                    ],
                ),
            ],
        })
        .await
        .unwrap();
    assert_eq!((pushed.accepted, pushed.rejected), (4, 0));
    let forward = query(
        &client,
        r#"{suite="batch", app="a"}"#,
        10,
        pb::Direction::Forward,
    )
    .await;
    assert_eq!(lines(&forward), ["a1", "a2"]);
    let backward = query(
        &client,
        r#"{suite="batch", app="a"}"#,
        10,
        pb::Direction::Backward,
    )
    .await;
    assert_eq!(lines(&backward), ["a2", "a1"]);
    let all = query(&client, r#"{suite="batch"}"#, 10, pb::Direction::Forward).await;
    assert_eq!(lines_by_time(&all), ["a1", "a2", "b1", "b2"]);

    // One valid stream, one with an invalid label name and one with a
    // reserved one: only the valid one is stored.
    let partial = client
        .push_log_batch(pb::PushLogBatchRequest {
            streams: vec![
                pb::Stream::new(
                    pb::labels([("suite", "partial")]),
                    vec![pb::Entry::new(0, "fine")],
                ),
                pb::Stream::new(
                    pb::labels([("0bad", "x"), ("suite", "partial")]),
                    vec![pb::Entry::new(0, "refused")],
                ),
                pb::Stream::new(
                    pb::labels([("__reserved", "x"), ("suite", "partial")]),
                    vec![pb::Entry::new(0, "refused"), pb::Entry::new(1, "refused")],
                ),
            ],
        })
        .await
        .unwrap();
    assert_eq!((partial.accepted, partial.rejected), (1, 3));
    assert_eq!(partial.rejections.len(), 2);
    assert_eq!(partial.rejections.iter().map(|r| r.entries).sum::<u64>(), 3);
    let stored = query(&client, r#"{suite="partial"}"#, 10, pb::Direction::Forward).await;
    assert_eq!(lines(&stored), ["fine"]);
}

#[tokio::test]
async fn push_log_stream_totals_every_message() {
    let server = Server::start();
    let client = connect(&server).await;
    let t = Timestamp::now().0 - SECOND;
    // From an async stream ...
    let messages = futures_util::stream::iter(0..20).map(move |i| pb::PushLogBatchRequest {
        streams: vec![pb::Stream::new(
            pb::labels([("suite", "stream")]),
            vec![pb::Entry::new(t + i, format!("msg {i}"))],
        )],
    });
    let pushed = client.push_log_stream(messages).await.unwrap();
    assert_eq!(
        (pushed.messages, pushed.accepted, pushed.rejected),
        (20, 20, 0)
    );
    let stored = query(&client, r#"{suite="stream"}"#, 100, pb::Direction::Forward).await;
    let expected: Vec<String> = (0..20).map(|i| format!("msg {i}")).collect();
    assert_eq!(lines(&stored), expected);

    // ... and from an iterator, one message invalid.
    let pushed = client
        .push_log_stream_iter(vec![
            pb::PushLogBatchRequest {
                streams: vec![pb::Stream::new(
                    pb::labels([("0bad", "x")]),
                    vec![pb::Entry::new(0, "nope")],
                )],
            },
            pb::PushLogBatchRequest {
                streams: vec![pb::Stream::new(
                    pb::labels([("suite", "stream-iter")]),
                    vec![pb::Entry::new(0, "yes")],
                )],
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        (pushed.messages, pushed.accepted, pushed.rejected),
        (2, 1, 1)
    );
    assert!(pushed.rejections[0].reason.contains("0bad"), "{pushed:?}");
    let stored = query(
        &client,
        r#"{suite="stream-iter"}"#,
        10,
        pb::Direction::Forward,
    )
    .await;
    assert_eq!(lines(&stored), ["yes"]);
}

#[tokio::test]
async fn push_simple_log_builds_the_stream_and_requires_a_service() {
    let server = Server::start();
    let client = connect(&server).await;
    let pushed = client
        .push_simple_log(pb::PushSimpleLogRequest {
            message: "user logged in".into(),
            service: "svc-simple".into(),
            level: "info".into(),
            labels: [("env".to_string(), "test".to_string())].into(),
            fields: [("user_id".to_string(), "42".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pushed.accepted, 1);
    let streams = query(
        &client,
        r#"{service="svc-simple", level="info", env="test"}"#,
        10,
        pb::Direction::Backward,
    )
    .await;
    assert_eq!(lines(&streams), ["user logged in"]);
    assert_eq!(
        streams[0].entries[0].structured_metadata,
        vec![pb::Label::new("user_id", "42")]
    );

    assert_status(
        client
            .push_simple_log(pb::PushSimpleLogRequest {
                message: "no service".into(),
                ..Default::default()
            })
            .await,
        GrpcCode::InvalidArgument,
        "service",
    );
}

/// Six info and three error lines ten seconds ago, a millisecond apart.
async fn seed_levels(client: &GrpcClient, suite: &str) -> i64 {
    let t = Timestamp::now().0 - 10 * SECOND;
    let mut streams = Vec::new();
    for (level, n) in [("info", 6), ("error", 3)] {
        let entries = (0..n)
            // Error lines a nanosecond after the info lines: no ties.
            .map(|i| {
                pb::Entry::new(
                    t + i * 1_000_000 + i64::from(level == "error"),
                    format!("{level} line {i}"),
                )
            })
            .collect();
        streams.push(pb::Stream::new(
            pb::labels([("suite", suite), ("level", level)]),
            entries,
        ));
    }
    let pushed = client
        .push_log_batch(pb::PushLogBatchRequest { streams })
        .await
        .unwrap();
    assert_eq!(pushed.accepted, 9);
    t
}

#[tokio::test]
async fn query_logs_filters_limits_and_refuses_bad_queries() {
    let server = Server::start();
    let client = connect(&server).await;
    let t = seed_levels(&client, "q").await;
    let errors = client
        .query_logs(pb::QueryLogsRequest {
            query: r#"{suite="q"} |= "error""#.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut found = lines(&errors.streams);
    found.sort();
    assert_eq!(found, ["error line 0", "error line 1", "error line 2"]);
    let stats = errors.stats.unwrap();
    assert!(stats.lines_processed >= 3, "{stats:?}");
    assert_eq!(stats.entries_returned, 3);

    let limited = query(&client, r#"{suite="q"}"#, 4, pb::Direction::Forward).await;
    assert_eq!(
        lines_by_time(&limited),
        ["info line 0", "error line 0", "info line 1", "error line 1"]
    );
    // A window that holds nothing.
    let empty = client
        .query_logs(pb::QueryLogsRequest {
            query: r#"{suite="q"}"#.into(),
            start_ns: t - 2 * SECOND,
            end_ns: t - SECOND,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(lines(&empty.streams).is_empty());

    let bad = |query: &str, limit: u32| pb::QueryLogsRequest {
        query: query.into(),
        limit,
        ..Default::default()
    };
    assert_status(
        client.query_logs(bad(r#"{suite="q""#, 0)).await,
        GrpcCode::InvalidArgument,
        "query",
    );
    assert_status(
        client.query_logs(bad("", 0)).await,
        GrpcCode::InvalidArgument,
        "query",
    );
    assert_status(
        client.query_logs(bad(r#"{suite="q"}"#, 1_000_000)).await,
        GrpcCode::ResourceExhausted,
        "limit",
    );
    assert_status(
        client
            .query_logs(pb::QueryLogsRequest {
                query: r#"{suite="q"}"#.into(),
                start_ns: t,
                end_ns: t - SECOND,
                ..Default::default()
            })
            .await,
        GrpcCode::InvalidArgument,
        "start_ns",
    );
}

#[tokio::test]
async fn query_range_counts_per_level_and_refuses_bad_queries() {
    let server = Server::start();
    let client = connect(&server).await;
    seed_levels(&client, "range").await;
    let result = client
        .query_range(pb::QueryRangeRequest {
            query: r#"sum by (level) (count_over_time({suite="range"}[1h]))"#.into(),
            step_ns: 60 * SECOND,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut peaks: Vec<(String, f64)> = result
        .series
        .iter()
        .map(|s| {
            let peak = s.samples.iter().map(|x| x.value).fold(0.0, f64::max);
            (label(&s.labels, "level").unwrap().to_string(), peak)
        })
        .collect();
    peaks.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        peaks,
        [("error".to_string(), 3.0), ("info".to_string(), 6.0)]
    );
    assert_status(
        client
            .query_range(pb::QueryRangeRequest {
                query: "sum(rate(".into(),
                ..Default::default()
            })
            .await,
        GrpcCode::InvalidArgument,
        "query",
    );
}

#[tokio::test]
async fn queries_over_the_servers_limits_are_refused() {
    let server =
        Server::start_with_config("[http]\nmax_query_series = 1\nmax_query_bytes_read = 80\n");
    let client = connect(&server).await;
    seed_levels(&client, "limits").await;
    // Three series (one per line number) where one is allowed.
    assert_status(
        client
            .query_range(pb::QueryRangeRequest {
                query: r#"count_over_time({suite="limits", level="error"} | regexp "line (?P<i>\\d)" [1h])"#
                    .into(),
                step_ns: 60 * SECOND,
                ..Default::default()
            })
            .await,
        GrpcCode::ResourceExhausted,
        "maximum of series (1)",
    );
    // Nine lines of a dozen bytes (102 in all): over 80 to read.
    assert_status(
        client
            .query_range(pb::QueryRangeRequest {
                query: r#"sum(count_over_time({suite="limits"}[1h]))"#.into(),
                step_ns: 60 * SECOND,
                ..Default::default()
            })
            .await,
        GrpcCode::ResourceExhausted,
        "would read too many bytes (query: 1",
    );
    assert_status(
        client
            .query_logs(pb::QueryLogsRequest {
                query: r#"{suite="limits"} |= "line""#.into(),
                ..Default::default()
            })
            .await,
        GrpcCode::ResourceExhausted,
        "limit: 80 B",
    );
    // A log query without filters stops at its limit: not refused.
    let found = client
        .query_logs(pb::QueryLogsRequest {
            query: r#"{suite="limits", level="error"}"#.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(lines(&found.streams).len(), 3);
    // One stream's bytes are within the limit.
    let found = client
        .query_logs(pb::QueryLogsRequest {
            query: r#"{suite="limits", level="error"} |= "line""#.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(lines(&found.streams).len(), 3);
}

#[tokio::test]
async fn tail_logs_sends_history_then_live_entries() {
    let server = Server::start();
    let client = connect(&server).await;
    let labels = pb::labels([("suite", "tail")]);
    client
        .push_log(pb::PushLogRequest {
            labels: labels.clone(),
            entry: Some(pb::Entry::new(0, "before")),
        })
        .await
        .unwrap();
    let mut tail = client
        .tail_logs(pb::TailLogsRequest {
            query: r#"{suite="tail"}"#.into(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let pusher = client.clone();
    let push_later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        pusher
            .push_log(pb::PushLogRequest {
                labels,
                entry: Some(pb::Entry::new(0, "live entry")),
            })
            .await
            .unwrap();
    });
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|l| l == "live entry") {
        let message = tokio::time::timeout_at(deadline, tail.next())
            .await
            .expect("live entry within 30 s")
            .expect("tail ended early")
            .unwrap();
        seen.extend(lines(&message.streams));
    }
    push_later.await.unwrap();
    assert_eq!(seen, ["before", "live entry"]);
    drop(tail);

    // A bad query fails the call or the stream's first message.
    let outcome = match client
        .tail_logs(pb::TailLogsRequest {
            query: "{broken".into(),
            ..Default::default()
        })
        .await
    {
        Err(e) => Err(e),
        Ok(mut stream) => stream.message().await,
    };
    assert_status(outcome, GrpcCode::InvalidArgument, "query");
}

#[tokio::test]
async fn query_stats_estimates_and_runs() {
    let server = Server::start();
    let client = connect(&server).await;
    seed_levels(&client, "stats").await;
    let estimate = client
        .query_stats(pb::QueryStatsRequest {
            query: r#"{suite="stats"}"#.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((estimate.streams, estimate.entries), (2, 9));
    assert!(estimate.run.is_none());
    let run = client
        .query_stats(pb::QueryStatsRequest {
            query: r#"{suite="stats", level="error"}"#.into(),
            run_limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(run.run.unwrap().entries_returned, 3);
    assert_status(
        client
            .query_stats(pb::QueryStatsRequest {
                query: "not logql".into(),
                ..Default::default()
            })
            .await,
        GrpcCode::InvalidArgument,
        "query",
    );
}

#[tokio::test]
async fn labels_values_and_validation() {
    let server = Server::start();
    let client = connect(&server).await;
    client
        .push_log_batch(pb::PushLogBatchRequest {
            streams: ["one", "two"]
                .map(|v| {
                    pb::Stream::new(
                        pb::labels([("suite", "labels"), ("color", v)]),
                        vec![pb::Entry::new(0, v)],
                    )
                })
                .to_vec(),
        })
        .await
        .unwrap();
    let names = client
        .get_labels(pb::GetLabelsRequest::default())
        .await
        .unwrap()
        .names;
    assert_eq!(names, ["color", "suite"]);
    let values = client
        .get_label_values(pb::GetLabelValuesRequest {
            name: "color".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .values;
    assert_eq!(values, ["one", "two"]);
    let narrowed = client
        .get_label_values(pb::GetLabelValuesRequest {
            name: "color".into(),
            query: r#"{color="one"}"#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .values;
    assert_eq!(narrowed, ["one"]);
    assert_status(
        client
            .get_label_values(pb::GetLabelValuesRequest::default())
            .await,
        GrpcCode::InvalidArgument,
        "name",
    );
    assert_status(
        client
            .get_labels(pb::GetLabelsRequest {
                query: "{oops".into(),
                ..Default::default()
            })
            .await,
        GrpcCode::InvalidArgument,
        "query",
    );

    let ok = client
        .validate_labels(pb::ValidateLabelsRequest {
            labels: pb::labels([("app", "api"), ("env", "prod")]),
        })
        .await
        .unwrap();
    assert!(ok.valid && ok.problems.is_empty(), "{ok:?}");
    assert!(ok.normalized.contains(r#"app="api""#), "{ok:?}");
    let bad = client
        .validate_labels(pb::ValidateLabelsRequest {
            labels: pb::labels([
                ("__name", "x"),
                ("bad-name", "y"),
                ("client_ip", "10.1.2.3"),
            ]),
        })
        .await
        .unwrap();
    assert!(!bad.valid);
    let mut found: Vec<(String, String, i32)> = bad
        .problems
        .iter()
        .map(|p| (p.name.clone(), p.code.clone(), p.severity))
        .collect();
    found.sort();
    let error = pb::label_problem::Severity::Error as i32;
    let warning = pb::label_problem::Severity::Warning as i32;
    assert_eq!(
        found,
        [
            ("__name".to_string(), "reserved_name".to_string(), error),
            ("bad-name".to_string(), "invalid_name".to_string(), error),
            (
                "client_ip".to_string(),
                "high_cardinality".to_string(),
                warning
            ),
        ]
    );
    let empty = client
        .validate_labels(pb::ValidateLabelsRequest::default())
        .await
        .unwrap();
    assert!(!empty.valid);
    assert!(empty.problems.iter().any(|p| p.code == "no_labels"));
}

#[tokio::test]
async fn streams_list_info_and_delete() {
    let server = Server::start();
    let client = connect(&server).await;
    let t = Timestamp::now().0 - SECOND;
    for app in ["a", "b", "c"] {
        client
            .push_log_batch(pb::PushLogBatchRequest {
                streams: vec![pb::Stream::new(
                    pb::labels([("suite", "streams"), ("app", app)]),
                    vec![
                        pb::Entry::new(t, format!("{app}-1")),
                        pb::Entry::new(t + 1, format!("{app}-2")),
                    ],
                )],
            })
            .await
            .unwrap();
    }
    let page = client
        .list_streams(pb::ListStreamsRequest {
            selector: r#"{suite="streams"}"#.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 3);
    assert!(page.next_page_token.is_empty());
    let mut apps: Vec<&str> = page
        .streams
        .iter()
        .map(|s| label(&s.labels, "app").unwrap())
        .collect();
    apps.sort();
    assert_eq!(apps, ["a", "b", "c"]);

    // Page by page, the same streams.
    let mut token = String::new();
    let mut paged = Vec::new();
    loop {
        let page = client
            .list_streams(pb::ListStreamsRequest {
                selector: r#"{suite="streams"}"#.into(),
                page_size: 1,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.streams.len() <= 1);
        paged.extend(page.streams.into_iter().map(|s| s.stream_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut all: Vec<String> = page.streams.iter().map(|s| s.stream_id.clone()).collect();
    all.sort();
    paged.sort();
    assert_eq!(paged, all);

    let info = client
        .get_stream_info(pb::GetStreamInfoRequest {
            labels: pb::labels([("suite", "streams"), ("app", "a")]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(info.entries, 2);
    assert_eq!((info.first_entry_ns, info.last_entry_ns), (t, t + 1));
    assert_eq!(info.stream_id.len(), 16);
    assert_eq!(label(&info.labels, "app"), Some("a"));
    let by_id = client
        .get_stream_info(pb::GetStreamInfoRequest {
            stream_id: info.stream_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_id, info);

    let deleted = client
        .delete_stream(pb::DeleteStreamRequest {
            query: r#"{suite="streams", app="a"}"#.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!deleted.request_id.is_empty());
    assert_eq!(deleted.status, "received");
    let left = query(&client, r#"{suite="streams"}"#, 100, pb::Direction::Forward).await;
    let mut left = lines(&left);
    left.sort();
    assert_eq!(left, ["b-1", "b-2", "c-1", "c-2"]);

    assert_status(
        client
            .get_stream_info(pb::GetStreamInfoRequest {
                labels: pb::labels([("suite", "streams"), ("app", "missing")]),
                ..Default::default()
            })
            .await,
        GrpcCode::NotFound,
        "stream",
    );
    assert_status(
        client
            .get_stream_info(pb::GetStreamInfoRequest {
                stream_id: "0123456789abcdef".into(),
                ..Default::default()
            })
            .await,
        GrpcCode::NotFound,
        "0123456789abcdef",
    );
    assert_status(
        client
            .get_stream_info(pb::GetStreamInfoRequest {
                stream_id: "not-hex".into(),
                ..Default::default()
            })
            .await,
        GrpcCode::InvalidArgument,
        "stream_id",
    );
    assert_status(
        client
            .list_streams(pb::ListStreamsRequest {
                selector: "{bad".into(),
                ..Default::default()
            })
            .await,
        GrpcCode::InvalidArgument,
        "selector",
    );
    assert_status(
        client
            .delete_stream(pb::DeleteStreamRequest::default())
            .await,
        GrpcCode::InvalidArgument,
        "query",
    );
}

#[tokio::test]
async fn export_streams_chunks_resumes_and_runs_jobs() {
    const N: i64 = 25;
    let server = Server::start();
    let client = connect(&server).await;
    let t = Timestamp::now().0 - 5 * SECOND;
    let pushed = client
        .push_log_batch(pb::PushLogBatchRequest {
            streams: vec![
                pb::Stream::new(
                    pb::labels([("suite", "export"), ("app", "x")]),
                    (0..N)
                        .step_by(2)
                        .map(|i| pb::Entry::new(t + i, format!("e{i}")))
                        .collect(),
                ),
                pb::Stream::new(
                    pb::labels([("suite", "export"), ("app", "y")]),
                    (1..N)
                        .step_by(2)
                        .map(|i| pb::Entry::new(t + i, format!("e{i}")))
                        .collect(),
                ),
            ],
        })
        .await
        .unwrap();
    assert_eq!(pushed.accepted, N as u64);

    let request = pb::ExportLogsRequest {
        query: r#"{suite="export"}"#.into(),
        chunk_size: 10,
        ..Default::default()
    };
    let mut export = client.export_logs(request.clone()).await.unwrap();
    let mut chunks = Vec::new();
    while let Some(chunk) = export.message().await.unwrap() {
        chunks.push(chunk);
    }
    assert_eq!(chunks.len(), 3);
    assert!(chunks[2].done && !chunks[0].done && !chunks[1].done);
    assert_eq!(chunks[2].entries_sent, N as u64);
    // Oldest first, within and across chunks.
    let exported: Vec<String> = chunks
        .iter()
        .flat_map(|c| lines_by_time(&c.streams))
        .collect();
    let expected: Vec<String> = (0..N).map(|i| format!("e{i}")).collect();
    assert_eq!(exported, expected);

    // Resuming after the first chunk gives the rest, nothing repeated.
    let rest: Vec<pb::ExportLogsResponse> = client
        .export_logs(pb::ExportLogsRequest {
            cursor: chunks[0].cursor.clone(),
            ..request
        })
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    let rest: Vec<String> = rest
        .iter()
        .flat_map(|c| lines_by_time(&c.streams))
        .collect();
    assert_eq!(rest, expected[10..]);

    // A background job writing a file.
    let mut started = client
        .export_logs(pb::ExportLogsRequest {
            query: r#"{suite="export"}"#.into(),
            destination: Some(pb::ExportDestination {
                path: "suite-export.ndjson".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let job_id = started.message().await.unwrap().unwrap().job_id;
    assert!(!job_id.is_empty());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = client
            .get_export_status(pb::GetExportStatusRequest {
                job_id: job_id.clone(),
            })
            .await
            .unwrap();
        let state = pb::export_status::State::try_from(status.state).unwrap();
        if matches!(
            state,
            pb::export_status::State::Completed | pb::export_status::State::Failed
        ) {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "export job stuck: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        status.state,
        pb::export_status::State::Completed as i32,
        "{}",
        status.error
    );
    assert_eq!(status.entries, N as u64);
    assert_eq!(status.percent, 100.0);
    assert!(status.finished_ns > 0 && status.bytes > 0);
    let written = std::fs::read_to_string(&status.path).unwrap();
    assert_eq!(
        written.lines().filter(|l| !l.trim().is_empty()).count(),
        N as usize
    );

    let outcome = match client
        .export_logs(pb::ExportLogsRequest {
            query: "{nope".into(),
            ..Default::default()
        })
        .await
    {
        Err(e) => Err(e),
        Ok(mut stream) => stream.message().await,
    };
    assert_status(outcome, GrpcCode::InvalidArgument, "query");
    assert_status(
        client
            .get_export_status(pb::GetExportStatusRequest {
                job_id: "no-such-job".into(),
            })
            .await,
        GrpcCode::NotFound,
        "no-such-job",
    );
}

#[tokio::test]
async fn statistics_quota_and_health_per_tenant() {
    let server = Server::start();
    let client = connect_as(&server, "tenant-a").await;
    let t = Timestamp::now().0 - SECOND;
    let pushed = client
        .push_log_batch(pb::PushLogBatchRequest {
            streams: vec![
                pb::Stream::new(
                    pb::labels([("a", "1")]),
                    vec![pb::Entry::new(t, "x"), pb::Entry::new(t + 1, "y")],
                ),
                pb::Stream::new(pb::labels([("a", "2")]), vec![pb::Entry::new(t, "z")]),
            ],
        })
        .await
        .unwrap();
    assert_eq!(pushed.accepted, 3);
    let mine = client
        .get_statistics(pb::GetStatisticsRequest {
            tenant: "tenant-a".into(),
        })
        .await
        .unwrap();
    assert_eq!(mine.tenants.len(), 1);
    let tenant = &mine.tenants[0];
    assert_eq!(
        (tenant.tenant.as_str(), tenant.streams, tenant.entries),
        ("tenant-a", 2, 3)
    );
    assert!(tenant.bytes_raw >= 3);
    let everyone = client
        .get_statistics(pb::GetStatisticsRequest::default())
        .await
        .unwrap();
    assert!(everyone.tenants.iter().any(|t| t.tenant == "tenant-a"));
    assert!(everyone.total.unwrap().entries >= 3);

    let quota = client.get_user_quota().await.unwrap();
    assert_eq!(quota.tenant, "tenant-a");
    assert_eq!(quota.max_query_limit, 5000);
    // Loki's default max_line_size, 256KB written as Loki reads it.
    assert_eq!(quota.max_line_bytes, 256_000);
    assert_eq!((quota.streams, quota.entries), (2, 3));

    let health = client.health_check().await.unwrap();
    assert_eq!(
        health.status,
        pb::health_check_response::ServingStatus::Serving as i32
    );
    assert!(!health.version.is_empty());
    assert_eq!(
        (health.storage_status.as_str(), health.corrupt_files),
        ("ok", 0)
    );

    // Tenants do not see each other.
    let other = connect_as(&server, "tenant-b").await;
    assert!(
        query(&other, r#"{a="1"}"#, 10, pb::Direction::Forward)
            .await
            .is_empty()
    );
    assert_eq!(other.get_user_quota().await.unwrap().entries, 0);

    // Invalid: a tenant name the server refuses, in the request or the
    // metadata; a server that is not there.
    assert_status(
        client
            .get_statistics(pb::GetStatisticsRequest {
                tenant: "a/b".into(),
            })
            .await,
        GrpcCode::InvalidArgument,
        "tenant",
    );
    let bad_tenant = connect_as(&server, "a/b").await;
    assert_status(
        bad_tenant.get_user_quota().await,
        GrpcCode::InvalidArgument,
        "x-scope-orgid",
    );
    let mut nowhere = Endpoint::new(format!("http://127.0.0.1:{}", free_port()));
    nowhere.request_timeout = Duration::from_secs(5);
    assert!(matches!(
        GrpcClient::connect(nowhere.clone()).await,
        Err(Error::Network(_))
    ));
    let lazy = GrpcClient::connect_lazy(nowhere).unwrap();
    assert_status(lazy.health_check().await, GrpcCode::Unavailable, "");
}

/// What one client pushes, the other reads: gRPC in, Loki's HTTP API out,
/// and the other way round.
#[tokio::test]
async fn grpc_and_http_clients_read_each_others_entries() {
    let server = Server::start();
    let client = connect(&server).await;
    let t = Timestamp::now().0 - 10 * SECOND;
    client
        .push_log_batch(pb::PushLogBatchRequest {
            streams: vec![pb::Stream::new(
                pb::labels([("app", "cross"), ("from", "grpc")]),
                (0..5)
                    .map(|i| pb::Entry::new(t + i, format!("grpc {i}")))
                    .collect(),
            )],
        })
        .await
        .unwrap();
    let http = QueryClient::new(Endpoint::new(&server.url)).unwrap();
    let window = RangeQuery {
        start: Some(Timestamp(t - SECOND)),
        end: Some(Timestamp(t + SECOND)),
        limit: Some(100),
        direction: Some(Direction::Forward),
        ..RangeQuery::default()
    };
    let QueryResult::Streams(streams) = http
        .query_range(r#"{app="cross", from="grpc"}"#, &window)
        .await
        .unwrap()
    else {
        panic!("expected streams");
    };
    let read: Vec<(i64, String)> = streams
        .iter()
        .flat_map(|s| {
            s.entries
                .iter()
                .map(|e| (e.timestamp.0 - t, e.line.clone()))
        })
        .collect();
    let expected: Vec<(i64, String)> = (0..5).map(|i| (i, format!("grpc {i}"))).collect();
    assert_eq!(read, expected);

    let pusher = skald_client::Client::new(skald_client::Config::new(&server.url)).unwrap();
    let labels = skald_client::Labels::new([("app", "cross"), ("from", "http")]).unwrap();
    for i in 0..5 {
        pusher
            .send(skald_client::Entry::new(&labels, format!("http {i}")).at(Timestamp(t + i)))
            .unwrap();
    }
    tokio::task::spawn_blocking(move || pusher.close(Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    let streams = query(
        &client,
        r#"{app="cross", from="http"}"#,
        100,
        pb::Direction::Forward,
    )
    .await;
    let expected: Vec<String> = (0..5).map(|i| format!("http {i}")).collect();
    assert_eq!(lines(&streams), expected);
    assert_eq!(streams[0].entries[0].timestamp_ns, t);
}

#[tokio::test]
async fn analysis_patterns_error_groups_anomalies_and_report() {
    let server = Server::start();
    let client = connect_as(&server, "analysis").await;
    // Forty minutes of steady lines, a refused connection a minute, then a
    // burst of a new exception five minutes ago.
    let now = Timestamp::now().0;
    let mut entries = Vec::new();
    for minute in (6..=40i64).rev() {
        for i in 0..20 {
            entries.push(pb::Entry::new(
                now - minute * 60 * SECOND + i * SECOND,
                format!("level=info GET /items/{i} took {}ms", 10 + i),
            ));
        }
        entries.push(pb::Entry::new(
            now - minute * 60 * SECOND + 30 * SECOND,
            format!("level=error db 10.0.0.{minute}:5432 connection refused"),
        ));
    }
    for i in 0..12 {
        entries.push(pb::Entry::new(
            now - 300 * SECOND + i * SECOND,
            format!("java.lang.IllegalStateException: bad state {i}"),
        ));
    }
    let total = entries.len() as u64;
    let pushed = client
        .push_log_batch(pb::PushLogBatchRequest {
            streams: vec![pb::Stream::new(pb::labels([("app", "shop")]), entries)],
        })
        .await
        .unwrap();
    assert_eq!(pushed.accepted, total);
    let shop = r#"{app="shop"}"#.to_string();

    let patterns = client
        .list_patterns(pb::ListPatternsRequest {
            query: shop.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .patterns;
    assert_eq!(patterns[0].pattern, "level=<_> GET <_> took <_>");
    assert_eq!(patterns[0].level, "info");
    assert_eq!(patterns[0].count, 35 * 20);
    let sampled: u64 = patterns[0].samples.iter().map(|s| s.count).sum();
    assert_eq!(sampled, patterns[0].count);

    let groups = client
        .list_error_groups(pb::ListErrorGroupsRequest {
            query: shop.clone(),
            start_ns: now - 400 * SECOND,
            examples: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .groups;
    let exception = groups.iter().find(|g| g.category == "exception").unwrap();
    assert_eq!(exception.exception, "java.lang.IllegalStateException");
    assert_eq!(exception.count, 12);
    assert!(exception.is_new);
    assert_eq!(exception.examples.len(), 1);
    assert_eq!(label(&exception.streams[0].labels, "app"), Some("shop"));
    let refused = groups
        .iter()
        .find(|g| g.category == "connection_refused")
        .unwrap();
    assert!(!refused.is_new, "seen before the range: {refused:?}");
    assert_eq!(refused.fingerprint.len(), 16);

    let found = client
        .list_anomalies(pb::ListAnomaliesRequest {
            query: shop.clone(),
            window_ns: 60 * SECOND,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.window_ns, 60 * SECOND);
    assert!(found.windows_judged > 0);
    let new = found
        .anomalies
        .iter()
        .find(|a| a.kind == "new_pattern")
        .unwrap_or_else(|| panic!("{:#?}", found.anomalies));
    assert!(new.pattern.contains("IllegalStateException"));
    assert_eq!(new.baseline.as_ref().unwrap().source, "none");
    assert!(!new.evidence.is_empty());

    let report = client
        .analyze_logs(pb::AnalyzeLogsRequest {
            query: shop.clone(),
            top_patterns: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(report.lines, total);
    assert_eq!(report.error_lines, 35 + 12);
    assert_eq!(report.patterns.len(), 2);
    let took = &report.patterns[0].numbers[0];
    assert_eq!((took.name.as_str(), took.unit.as_str()), ("took", "ms"));
    assert_eq!((took.p50, took.p99), (19.0, 29.0));
    assert!(report.error_groups.iter().any(|g| g.is_new));
    assert_eq!(report.anomaly_count, report.anomalies.len() as u64);
    let hourly: u64 = report.hourly.iter().map(|h| h.lines).sum();
    assert_eq!(hourly, total);

    // Bad input: a clear status naming the field.
    let bad = pb::ListPatternsRequest {
        query: "{app=".into(),
        ..Default::default()
    };
    assert_status(
        client.list_patterns(bad).await,
        GrpcCode::InvalidArgument,
        "query",
    );
    let long = pb::ListErrorGroupsRequest {
        query: shop.clone(),
        start_ns: 1,
        ..Default::default()
    };
    assert_status(
        client.list_error_groups(long).await,
        GrpcCode::ResourceExhausted,
        "time range",
    );
    let negative = pb::ListAnomaliesRequest {
        query: shop.clone(),
        window_ns: -1,
        ..Default::default()
    };
    assert_status(
        client.list_anomalies(negative).await,
        GrpcCode::InvalidArgument,
        "window_ns",
    );
    let metric = pb::AnalyzeLogsRequest {
        query: "sum(rate({app=\"shop\"}[1m]))".into(),
        ..Default::default()
    };
    assert_status(
        client.analyze_logs(metric).await,
        GrpcCode::InvalidArgument,
        "query",
    );
    // Another tenant has none of it; an unknown stream gives empty lists.
    let other = connect_as(&server, "someone-else").await;
    let none = other
        .list_error_groups(pb::ListErrorGroupsRequest {
            query: shop.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.groups.is_empty());
}
