//! The gRPC LogService against the real binary: one test per RPC, plus a
//! streaming push with back-pressure, an export job watched while it
//! runs, and a delete that makes data vanish everywhere.

mod common;

use common::{Server, day_ago, now_ns};
use serde_json::json;
use skald_server::grpc::proto;
use skald_server::grpc::proto::log_service_client::LogServiceClient;
use tonic::transport::Channel;

type Client = LogServiceClient<Channel>;

async fn client(s: &Server) -> Client {
    LogServiceClient::connect(s.grpc_url())
        .await
        .expect("connecting over gRPC")
        .max_decoding_message_size(64 * 1024 * 1024)
}

fn label(name: &str, value: &str) -> proto::Label {
    proto::Label {
        name: name.into(),
        value: value.into(),
    }
}

fn stream(labels: &[(&str, &str)], lines: &[(i64, &str)]) -> proto::Stream {
    proto::Stream {
        labels: labels.iter().map(|(n, v)| label(n, v)).collect(),
        entries: lines
            .iter()
            .map(|(ts, l)| proto::Entry {
                timestamp_ns: *ts,
                line: l.to_string(),
                structured_metadata: vec![],
            })
            .collect(),
    }
}

async fn push(c: &mut Client, streams: Vec<proto::Stream>) -> proto::PushResponse {
    c.push_log_batch(proto::PushLogBatchRequest { streams })
        .await
        .unwrap()
        .into_inner()
}

async fn lines(c: &mut Client, query: &str, limit: u32) -> Vec<String> {
    let r = c
        .query_logs(proto::QueryLogsRequest {
            query: query.into(),
            start_ns: day_ago().parse().unwrap(),
            end_ns: now_ns() + 1_000_000_000,
            limit,
            direction: proto::Direction::Forward as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let mut out: Vec<(i64, String)> = r
        .streams
        .into_iter()
        .flat_map(|s| s.entries)
        .map(|e| (e.timestamp_ns, e.line))
        .collect();
    out.sort();
    out.into_iter().map(|(_, l)| l).collect()
}

#[test]
fn push_log_stores_one_entry_and_names_bad_fields() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let now = now_ns();
        let r = c
            .push_log(proto::PushLogRequest {
                labels: vec![label("app", "one")],
                entry: Some(proto::Entry {
                    timestamp_ns: now,
                    line: "hello".into(),
                    structured_metadata: vec![label("trace_id", "abc")],
                }),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((r.accepted, r.rejected), (1, 0));
        assert_eq!(lines(&mut c, r#"{app="one"}"#, 10).await, ["hello"]);

        let err = c
            .push_log(proto::PushLogRequest {
                labels: vec![label("1bad", "x")],
                entry: Some(proto::Entry::default()),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("labels"), "{}", err.message());
        let err = c
            .push_log(proto::PushLogRequest {
                labels: vec![label("app", "x")],
                entry: None,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().starts_with("entry"), "{}", err.message());
    });
}

#[test]
fn push_log_batch_accepts_partially_and_counts() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let now = now_ns();
        let r = push(
            &mut c,
            vec![
                stream(&[("app", "a")], &[(now, "a1"), (now + 1, "a2")]),
                stream(&[("1bad", "x")], &[(now, "refused")]),
                // Far too old: rejected by the store's limits.
                stream(&[("app", "b")], &[(1_000_000_000, "ancient"), (now, "b1")]),
            ],
        )
        .await;
        assert_eq!(r.accepted, 3, "{r:?}");
        assert_eq!(r.rejected, 2, "{r:?}");
        assert_eq!(r.rejections.len(), 2);
        assert_eq!(
            lines(&mut c, r#"{app=~"a|b"}"#, 10).await,
            ["a1", "b1", "a2"]
        );
    });
}

#[test]
fn push_simple_log_builds_the_stream() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let r = c
            .push_simple_log(proto::PushSimpleLogRequest {
                message: "user logged in".into(),
                service: "auth".into(),
                level: "info".into(),
                labels: [("env".to_string(), "prod".to_string())].into(),
                timestamp_ns: 0,
                fields: [("user_id".to_string(), "42".to_string())].into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.accepted, 1);
        assert_eq!(
            lines(&mut c, r#"{service="auth", level="info", env="prod"}"#, 10).await,
            ["user logged in"]
        );
        let err = c
            .push_simple_log(proto::PushSimpleLogRequest {
                message: "x".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().starts_with("service"), "{}", err.message());
    });
}

/// A million entries over one client stream, in messages of 1000; each
/// message is stored before the next is read, so a fast client is held
/// back by HTTP/2 flow control. Every entry must be acknowledged and
/// counted by the store.
#[test]
fn push_log_stream_stores_everything_acknowledged() {
    const MESSAGES: usize = 1000;
    const PER: usize = 1000;
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let base = now_ns() - 3_600_000_000_000;
        let started = std::time::Instant::now();
        let outgoing = async_stream_of(base, MESSAGES, PER);
        let r = c.push_log_stream(outgoing).await.unwrap().into_inner();
        let took = started.elapsed();
        assert_eq!(r.messages, MESSAGES as u64);
        assert_eq!(r.accepted, (MESSAGES * PER) as u64, "{r:?}");
        eprintln!(
            "streamed {} entries in {:.2?} ({:.0} entries/s)",
            MESSAGES * PER,
            took,
            (MESSAGES * PER) as f64 / took.as_secs_f64()
        );
        let stats = c
            .get_statistics(proto::GetStatisticsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stats.total.unwrap().entries, (MESSAGES * PER) as u64);
    });
}

fn async_stream_of(
    base: i64,
    messages: usize,
    per: usize,
) -> impl tokio_stream::Stream<Item = proto::PushLogBatchRequest> + Send + 'static {
    use tokio_stream::StreamExt;
    tokio_stream::iter(0..messages).map(move |m| proto::PushLogBatchRequest {
        streams: vec![proto::Stream {
            labels: vec![label("app", "stream"), label("part", &(m % 4).to_string())],
            entries: (0..per)
                .map(|i| {
                    let n = m * per + i;
                    proto::Entry {
                        timestamp_ns: base + n as i64 * 1000,
                        line: format!("entry {n} with some text to make it a realistic line"),
                        structured_metadata: vec![],
                    }
                })
                .collect(),
        }],
    })
}

#[test]
fn push_log_stream_broken_keeps_received_messages() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let base = now_ns() - 60_000_000_000;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let call = tokio::spawn(async move {
            c.push_log_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        });
        for m in 0..3 {
            tx.send(proto::PushLogBatchRequest {
                streams: vec![stream(&[("app", "broken")], &[(base + m, "kept")])],
            })
            .await
            .unwrap();
        }
        // Let the server take them, then break the call without half-closing.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        call.abort();
        let _ = call.await;
        let mut c = client(&s).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let got = lines(&mut c, r#"{app="broken"}"#, 10).await;
            if got.len() == 3 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "got {got:?}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        drop(tx);
    });
}

#[test]
fn query_logs_filters_limits_and_refuses_bad_input() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let now = now_ns();
        push(
            &mut c,
            vec![stream(
                &[("app", "q")],
                &[
                    (now - 3, "GET /a 200"),
                    (now - 2, "GET /b 500"),
                    (now - 1, "POST /c 500"),
                ],
            )],
        )
        .await;
        assert_eq!(
            lines(&mut c, r#"{app="q"} |= "500""#, 10).await,
            ["GET /b 500", "POST /c 500"]
        );
        let r = c
            .query_logs(proto::QueryLogsRequest {
                query: r#"{app="q"}"#.into(),
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.streams[0].entries[0].line, "POST /c 500",
            "backward by default"
        );
        assert!(r.stats.unwrap().streams >= 1);
        let err = c
            .query_logs(proto::QueryLogsRequest {
                query: r#"{app="q""#.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().starts_with("query"), "{}", err.message());
        let err = c
            .query_logs(proto::QueryLogsRequest {
                query: r#"{app="q"}"#.into(),
                limit: 1_000_000,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    });
}

#[test]
fn query_range_answers_metric_queries_or_says_why_not() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let err = c
            .query_range(proto::QueryRangeRequest {
                query: r#"{app="q"}"#.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        match c
            .query_range(proto::QueryRangeRequest {
                query: r#"count_over_time({app="q"}[1m])"#.into(),
                ..Default::default()
            })
            .await
        {
            Ok(_) => {}
            Err(e) => assert_eq!(e.code(), tonic::Code::Unimplemented, "{e}"),
        }
    });
}

#[test]
fn query_stats_estimates_and_runs() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let now = now_ns();
        push(
            &mut c,
            vec![stream(
                &[("app", "st")],
                &[(now - 2, "one"), (now - 1, "two")],
            )],
        )
        .await;
        let r = c
            .query_stats(proto::QueryStatsRequest {
                query: r#"{app="st"}"#.into(),
                run_limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((r.streams, r.entries), (1, 2), "{r:?}");
        assert_eq!(r.bytes, 6);
        assert_eq!(r.run.unwrap().entries_returned, 2);
    });
}

#[test]
fn labels_and_values() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let now = now_ns();
        push(
            &mut c,
            vec![
                stream(&[("app", "x"), ("env", "prod")], &[(now, "1")]),
                stream(&[("app", "y")], &[(now, "2")]),
            ],
        )
        .await;
        let names = c
            .get_labels(proto::GetLabelsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .names;
        assert_eq!(names, ["app", "env"]);
        let names = c
            .get_labels(proto::GetLabelsRequest {
                query: r#"{app="y"}"#.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .names;
        assert_eq!(names, ["app"]);
        let values = c
            .get_label_values(proto::GetLabelValuesRequest {
                name: "app".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .values;
        assert_eq!(values, ["x", "y"]);
        let err = c
            .get_label_values(proto::GetLabelValuesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    });
}

#[test]
fn validate_labels_reports_errors_and_cardinality_warnings() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let r = c
            .validate_labels(proto::ValidateLabelsRequest {
                labels: vec![
                    label("app", "api"),
                    label("__name__", "x"),
                    label("bad-name", "x"),
                    label("request_id", "123e4567-e89b-12d3-a456-426614174000"),
                    label("client", "10.1.2.3"),
                    label("user", "123456"),
                    label(&"n".repeat(2000), "x"),
                ],
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!r.valid);
        let codes: Vec<(String, String)> = r
            .problems
            .iter()
            .map(|p| (p.name.clone(), p.code.clone()))
            .collect();
        for want in [
            ("__name__", "reserved_name"),
            ("bad-name", "invalid_name"),
            ("request_id", "high_cardinality"),
            ("client", "high_cardinality"),
            ("user", "high_cardinality"),
        ] {
            assert!(
                codes.contains(&(want.0.into(), want.1.into())),
                "{want:?} in {codes:?}"
            );
        }
        assert!(codes.iter().any(|(_, c)| c == "name_too_long"), "{codes:?}");
        let ok = c
            .validate_labels(proto::ValidateLabelsRequest {
                labels: vec![label("env", "prod"), label("app", "api")],
            })
            .await
            .unwrap()
            .into_inner();
        assert!(ok.valid && ok.problems.is_empty(), "{ok:?}");
        assert_eq!(ok.normalized, r#"{app="api", env="prod"}"#);
    });
}

#[test]
fn list_streams_pages_and_stream_info() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let now = now_ns();
        let streams: Vec<proto::Stream> = (0..5)
            .map(|i| {
                stream(
                    &[("app", "ls"), ("n", &i.to_string())],
                    &[(now - 10 + i, "a"), (now + i, "bb")],
                )
            })
            .collect();
        push(&mut c, streams).await;
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let r = c
                .list_streams(proto::ListStreamsRequest {
                    selector: r#"{app="ls"}"#.into(),
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.total, 5);
            seen.extend(r.streams);
            if r.next_page_token.is_empty() {
                break;
            }
            token = r.next_page_token;
        }
        assert_eq!(seen.len(), 5);
        let first = &seen[0];
        let info = c
            .get_stream_info(proto::GetStreamInfoRequest {
                stream_id: first.stream_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.entries, 2);
        assert_eq!(info.bytes, 3);
        assert_eq!(info.first_entry_ns, now - 10);
        assert_eq!(info.last_entry_ns, now);
        let by_labels = c
            .get_stream_info(proto::GetStreamInfoRequest {
                labels: first.labels.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(by_labels.stream_id, first.stream_id);
        let err = c
            .get_stream_info(proto::GetStreamInfoRequest {
                labels: vec![label("app", "missing")],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
    });
}

#[test]
fn delete_stream_hides_data_from_queries_labels_series_and_statistics() {
    let mut s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let now = now_ns();
        push(
            &mut c,
            vec![
                stream(&[("app", "keep")], &[(now - 2, "keep me")]),
                stream(
                    &[("app", "gone"), ("secret", "yes")],
                    &[(now - 2, "drop me"), (now - 1, "me too")],
                ),
                stream(
                    &[("app", "some")],
                    &[(now - 2, "password=1"), (now - 1, "fine")],
                ),
            ],
        )
        .await;
        let r = c
            .delete_stream(proto::DeleteStreamRequest {
                query: r#"{app="gone"}"#.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!r.request_id.is_empty());
        c.delete_stream(proto::DeleteStreamRequest {
            query: r#"{app="some"} |= "password""#.into(),
            ..Default::default()
        })
        .await
        .unwrap();

        assert!(lines(&mut c, r#"{app="gone"}"#, 10).await.is_empty());
        assert_eq!(lines(&mut c, r#"{app="some"}"#, 10).await, ["fine"]);
        assert_eq!(lines(&mut c, r#"{app="keep"}"#, 10).await, ["keep me"]);
        let names = c
            .get_labels(proto::GetLabelsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .names;
        assert_eq!(names, ["app"], "the deleted stream's label is gone");
        let series = tokio::task::block_in_place(|| {
            s.get_json(
                "/loki/api/v1/series",
                &[("match[]", r#"{app=~".+"}"#), ("start", &day_ago())],
            )
        });
        assert_eq!(series["data"].as_array().unwrap().len(), 2, "{series}");
        let stats = c
            .get_statistics(proto::GetStatisticsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stats.total.unwrap().streams, 2);

        // Loki's API lists both requests, and survives a restart.
        let listed = tokio::task::block_in_place(|| s.get_json("/loki/api/v1/delete", &[]));
        assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
        assert_eq!(listed[0]["status"], "received");
        tokio::task::block_in_place(|| s.restart());
        let mut c = client(&s).await;
        assert!(lines(&mut c, r#"{app="gone"}"#, 10).await.is_empty());
        assert_eq!(lines(&mut c, r#"{app="some"}"#, 10).await, ["fine"]);

        let err = c
            .delete_stream(proto::DeleteStreamRequest {
                query: r#"{app="x"} | json"#.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    });
}

#[test]
fn export_logs_streams_in_chunks_and_resumes_from_a_cursor() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let now = now_ns() - 10_000_000_000;
        let entries: Vec<(i64, String)> = (0..250)
            .map(|i| (now + (i / 3) as i64, format!("line {i:03}")))
            .collect();
        let refs: Vec<(i64, &str)> = entries.iter().map(|(t, l)| (*t, l.as_str())).collect();
        push(&mut c, vec![stream(&[("app", "ex")], &refs)]).await;

        let mut got = Vec::new();
        let mut cursor = String::new();
        let mut calls = 0;
        loop {
            calls += 1;
            let mut rx = c
                .export_logs(proto::ExportLogsRequest {
                    query: r#"{app="ex"}"#.into(),
                    chunk_size: 40,
                    cursor: cursor.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            // Take two chunks, then resume from the cursor in a new call.
            let mut done = false;
            for _ in 0..2 {
                let Some(m) = rx.message().await.unwrap() else {
                    break;
                };
                for st in m.streams {
                    got.extend(st.entries.into_iter().map(|e| e.line));
                }
                cursor = m.cursor;
                if m.done {
                    done = true;
                    break;
                }
            }
            if done {
                break;
            }
            assert!(calls < 20);
        }
        let want: Vec<String> = entries.into_iter().map(|(_, l)| l).collect();
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, want);
        assert_eq!(got.len(), 250, "no repeats");
    });
}

fn with_tenant<T>(tenant: &str, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("x-scope-orgid", tenant.parse().unwrap());
    r
}

/// Every line of a streamed export over `tenants`, in the order sent,
/// resumed from the cursor after each chunk, with its `__tenant_id__`.
async fn export_all(c: &mut Client, tenants: &str, query: &str) -> Vec<(String, String)> {
    let mut got = Vec::new();
    let mut cursor = String::new();
    for _ in 0..50 {
        let mut rx = c
            .export_logs(with_tenant(
                tenants,
                proto::ExportLogsRequest {
                    query: query.into(),
                    start_ns: day_ago().parse().unwrap(),
                    chunk_size: 7,
                    cursor: cursor.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let m = rx.message().await.unwrap().expect("a chunk");
        for st in m.streams {
            let tenant = st
                .labels
                .iter()
                .find(|l| l.name == "__tenant_id__")
                .map(|l| l.value.clone())
                .unwrap_or_default();
            got.extend(st.entries.into_iter().map(|e| (tenant.clone(), e.line)));
        }
        cursor = m.cursor;
        if m.done {
            return got;
        }
    }
    panic!("the export never finished: {got:?}");
}

/// `X-Scope-OrgID: a|b` on a streamed export reads both tenants, as a
/// multi-tenant query does: each stream labelled with its tenant, the
/// chunks cut from both merged in time order, resumable from the cursor
/// across entries of both tenants at the same timestamp. A job (one
/// tenant's file) refuses several tenants.
#[test]
fn export_logs_reads_several_tenants() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let t0 = now_ns() - 10_000_000_000;
        for tenant in ["ta", "tb"] {
            let lines: Vec<(i64, String)> = (0..20)
                .map(|i| (t0 + (i / 4) as i64, format!("{tenant} {i:02}")))
                .collect();
            let refs: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
            c.push_log_batch(with_tenant(
                tenant,
                proto::PushLogBatchRequest {
                    streams: vec![stream(&[("app", "mt")], &refs)],
                },
            ))
            .await
            .unwrap();
        }

        let both = export_all(&mut c, "ta|tb", r#"{app="mt"}"#).await;
        assert_eq!(both.len(), 40, "each line once: {both:?}");
        let mut seen: Vec<&(String, String)> = both.iter().collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 40, "no repeats: {both:?}");
        for (tenant, line) in &both {
            assert!(line.starts_with(tenant.as_str()), "{tenant}: {line}");
        }
        // Oldest first across both tenants.
        let order: Vec<i64> = both
            .iter()
            .map(|(_, l)| l[3..].parse::<i64>().unwrap() / 4)
            .collect();
        assert!(order.windows(2).all(|w| w[0] <= w[1]), "{both:?}");

        // `__tenant_id__` in the selector picks the tenant.
        let b = export_all(&mut c, "ta|tb", r#"{app="mt", __tenant_id__="tb"}"#).await;
        assert_eq!(b.len(), 20);
        assert!(b.iter().all(|(t, _)| t == "tb"), "{b:?}");
        // One tenant: no label, as before.
        let a = export_all(&mut c, "ta", r#"{app="mt"}"#).await;
        assert_eq!(a.len(), 20);
        assert!(a.iter().all(|(t, l)| t.is_empty() && l.starts_with("ta")));

        let err = start_export(&mut c, "ta|tb", "both.ndjson")
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("single tenant"), "{err:?}");
    });
}

#[test]
fn export_job_reports_progress_and_writes_every_line() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let base = now_ns() - 3_600_000_000_000;
        const N: usize = 20_000;
        for b in 0..(N / 2000) {
            let entries: Vec<(i64, String)> = (b * 2000..(b + 1) * 2000)
                .map(|i| (base + i as i64 * 1_000_000, format!("export \"line\", {i}")))
                .collect();
            let refs: Vec<(i64, &str)> = entries.iter().map(|(t, l)| (*t, l.as_str())).collect();
            push(&mut c, vec![stream(&[("app", "job")], &refs)]).await;
        }
        for (format, gzip, name) in [
            (proto::ExportFormat::Ndjson, false, "out.ndjson"),
            (proto::ExportFormat::Csv, true, "out.csv.gz"),
            (proto::ExportFormat::Json, false, "out.json"),
        ] {
            let mut rx = c
                .export_logs(proto::ExportLogsRequest {
                    query: r#"{app="job"}"#.into(),
                    start_ns: base,
                    chunk_size: 100,
                    destination: Some(proto::ExportDestination {
                        path: name.into(),
                        format: format as i32,
                        gzip,
                    }),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let job = rx.message().await.unwrap().unwrap().job_id;
            assert!(!job.is_empty());
            let mut seen_running = false;
            let status = loop {
                let st = c
                    .get_export_status(proto::GetExportStatusRequest {
                        job_id: job.clone(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                if st.state == proto::export_status::State::Running as i32 {
                    seen_running = true;
                    assert!(st.percent <= 100.0);
                }
                if st.state == proto::export_status::State::Completed as i32 {
                    break st;
                }
                assert_ne!(
                    st.state,
                    proto::export_status::State::Failed as i32,
                    "{st:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            };
            assert_eq!(status.entries, N as u64);
            assert_eq!(status.percent, 100.0);
            eprintln!(
                "{name}: seen running: {seen_running}, {} bytes",
                status.bytes
            );
            let path = s.data_dir().join("exports").join("fake").join(name);
            assert_eq!(status.path, path.display().to_string());
            let raw = std::fs::read(&path).unwrap();
            assert_eq!(raw.len() as u64, status.bytes);
            let text = if gzip {
                use std::io::Read;
                let mut out = String::new();
                flate2::read::GzDecoder::new(&raw[..])
                    .read_to_string(&mut out)
                    .unwrap();
                out
            } else {
                String::from_utf8(raw).unwrap()
            };
            match format {
                proto::ExportFormat::Ndjson => {
                    for (i, l) in text.lines().enumerate() {
                        let v: serde_json::Value = serde_json::from_str(l).unwrap();
                        assert_eq!(v["line"], format!("export \"line\", {i}"));
                        assert_eq!(v["timestamp_ns"], base + i as i64 * 1_000_000);
                        assert_eq!(v["labels"]["app"], "job");
                    }
                    assert_eq!(text.lines().count(), N);
                }
                proto::ExportFormat::Csv => {
                    let mut it = text.lines();
                    assert_eq!(it.next(), Some("timestamp_ns,labels,line"));
                    for (i, l) in it.enumerate() {
                        let want = format!(
                            "{},\"{{app=\"\"job\"\"}}\",\"export \"\"line\"\", {i}\"",
                            base + i as i64 * 1_000_000
                        );
                        assert_eq!(l, want);
                    }
                    assert_eq!(text.lines().count(), N + 1);
                }
                proto::ExportFormat::Json => {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let a = v.as_array().unwrap();
                    assert_eq!(a.len(), N);
                    for (i, e) in a.iter().enumerate() {
                        assert_eq!(e["line"], format!("export \"line\", {i}"));
                    }
                }
            }
        }
        let err = c
            .get_export_status(proto::GetExportStatusRequest {
                job_id: "nope".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
    });
}

#[test]
fn statistics_quota_and_health() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let now = now_ns();
        push(
            &mut c,
            vec![stream(&[("app", "m")], &[(now - 1, "12345"), (now, "678")])],
        )
        .await;
        let st = c
            .get_statistics(proto::GetStatisticsRequest::default())
            .await
            .unwrap()
            .into_inner();
        let total = st.total.unwrap();
        assert_eq!((total.streams, total.entries, total.bytes_raw), (1, 2, 8));
        assert_eq!(total.oldest_entry_ns, now - 1);
        assert_eq!(total.newest_entry_ns, now);
        assert_eq!(st.tenants.len(), 1);
        assert_eq!(st.tenants[0].tenant, "fake");
        assert!(st.ingestion_entries_per_second > 0.0);

        let q = c
            .get_user_quota(proto::GetUserQuotaRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(q.tenant, "fake");
        assert_eq!((q.streams, q.entries), (1, 2));
        assert!(q.max_query_limit > 0 && q.max_line_bytes > 0);

        let mut other = tonic::Request::new(proto::GetUserQuotaRequest {});
        other
            .metadata_mut()
            .insert("x-scope-orgid", "team-b".parse().unwrap());
        let q = c.get_user_quota(other).await.unwrap().into_inner();
        assert_eq!((q.tenant.as_str(), q.streams), ("team-b", 0));

        let h = c
            .health_check(proto::HealthCheckRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            h.status,
            proto::health_check_response::ServingStatus::Serving as i32
        );
        assert_eq!(h.storage_status, "ok");
        assert!(!h.version.is_empty());
    });
}

#[test]
fn standard_health_and_reflection_are_served() {
    let s = Server::start();
    rt().block_on(async {
        let channel = Channel::from_shared(s.grpc_url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );

        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let mut refl = ServerReflectionClient::new(channel);
        let req = tonic_reflection::pb::v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut resp = refl
            .server_reflection_info(tokio_stream::once(req))
            .await
            .unwrap()
            .into_inner();
        let msg = resp.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
            panic!("unexpected reflection answer {msg:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(
            names.contains(&"skald.v1.LogService".to_string()),
            "{names:?}"
        );
    });
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_message_over_the_size_limit_is_resource_exhausted_naming_the_limit() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        // One line over 64 MiB: the message is refused before any handler.
        let big = "x".repeat(64 * 1024 * 1024 + 1);
        let err = c
            .push_log_batch(proto::PushLogBatchRequest {
                streams: vec![stream(&[("app", "big")], &[(now_ns(), &big)])],
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
        assert!(
            err.message().contains(&(64 * 1024 * 1024).to_string()),
            "names the limit: {}",
            err.message()
        );
        // The server is fine afterwards.
        let r = push(
            &mut c,
            vec![stream(&[("app", "small")], &[(now_ns(), "ok")])],
        )
        .await;
        assert_eq!(r.accepted, 1);
    });
}

fn export_request(tenant: &str, path: &str) -> tonic::Request<proto::ExportLogsRequest> {
    let mut r = tonic::Request::new(proto::ExportLogsRequest {
        query: r#"{app="exp"}"#.into(),
        start_ns: day_ago().parse().unwrap(),
        destination: Some(proto::ExportDestination {
            path: path.into(),
            format: proto::ExportFormat::Ndjson as i32,
            gzip: false,
        }),
        ..Default::default()
    });
    r.metadata_mut()
        .insert("x-scope-orgid", tenant.parse().unwrap());
    r
}

async fn start_export(c: &mut Client, tenant: &str, path: &str) -> Result<String, tonic::Status> {
    let mut rx = c
        .export_logs(export_request(tenant, path))
        .await?
        .into_inner();
    Ok(rx.message().await?.expect("a job id").job_id)
}

async fn export_status(
    c: &mut Client,
    tenant: &str,
    job: &str,
) -> Result<proto::ExportStatus, tonic::Status> {
    let mut r = tonic::Request::new(proto::GetExportStatusRequest { job_id: job.into() });
    r.metadata_mut()
        .insert("x-scope-orgid", tenant.parse().unwrap());
    Ok(c.get_export_status(r).await?.into_inner())
}

async fn wait_export(c: &mut Client, tenant: &str, job: &str) -> proto::ExportStatus {
    loop {
        let st = export_status(c, tenant, job).await.unwrap();
        if st.state == proto::export_status::State::Completed as i32
            || st.state == proto::export_status::State::Failed as i32
        {
            return st;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// `ExportLogs` with a destination once wrote wherever `destination.path`
/// pointed (an absolute path created or truncated any file the server could
/// write). Export files now go only to `<data_dir>/exports/<tenant>/`,
/// under a plain file name, created new without following links.
#[test]
fn export_files_stay_in_their_tenant_directory() {
    let mut s = Server::start();
    let outside = s.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let victim = outside.join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    rt().block_on(async {
        let mut c = client(&s).await;
        let now = now_ns();
        let mut r = tonic::Request::new(proto::PushLogBatchRequest {
            streams: vec![stream(
                &[("app", "exp")],
                &[(now - 2, "one"), (now - 1, "two")],
            )],
        });
        r.metadata_mut()
            .insert("x-scope-orgid", "t1".parse().unwrap());
        c.push_log_batch(r).await.unwrap();

        // Every escape is refused, naming the rule, and touches nothing.
        let absolute = victim.display().to_string();
        for (path, rule) in [
            (absolute.as_str(), "absolute path"),
            ("../victim.txt", "without '/'"),
            ("..", "'..'"),
            ("sub/x.ndjson", "without '/'"),
            (".hidden", "start with '.'"),
        ] {
            let err = start_export(&mut c, "t1", path).await.unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{path}: {err:?}");
            assert!(
                err.message().contains("destination.path"),
                "{path}: {err:?}"
            );
            assert!(err.message().contains(rule), "{path}: {err:?}");
        }

        // A symbolic link planted in the tenant's export directory is not
        // followed, and an existing file is not overwritten.
        let dir = s.data_dir().join("exports").join("t1");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("planted.ndjson")).unwrap();
        let err = start_export(&mut c, "t1", "planted.ndjson")
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("symbolic link"), "{err:?}");
        std::fs::write(dir.join("existing.ndjson"), "old\n").unwrap();
        let err = start_export(&mut c, "t1", "existing.ndjson")
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("already exists"), "{err:?}");
        assert_eq!(
            std::fs::read_to_string(dir.join("existing.ndjson")).unwrap(),
            "old\n"
        );

        // A tenant directory replaced by a link to elsewhere is refused too.
        std::os::unix::fs::symlink(&outside, s.data_dir().join("exports").join("t2")).unwrap();
        let err = start_export(&mut c, "t2", "x.ndjson").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(!outside.join("x.ndjson").exists());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");

        // A good name lands in the tenant's directory; the job is the
        // tenant's alone.
        let job = start_export(&mut c, "t1", "good.ndjson").await.unwrap();
        let st = wait_export(&mut c, "t1", &job).await;
        assert_eq!(
            st.state,
            proto::export_status::State::Completed as i32,
            "{st:?}"
        );
        assert_eq!(st.entries, 2);
        assert_eq!(
            std::fs::read_to_string(dir.join("good.ndjson"))
                .unwrap()
                .lines()
                .count(),
            2
        );
        let err = export_status(&mut c, "t3", &job).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert!(!err.message().contains("t1"), "{err:?}");
    });

    // The status survives a restart.
    s.restart();
    rt().block_on(async {
        let mut c = client(&s).await;
        let jobs: Vec<_> = std::fs::read_dir(s.data_dir().join("export_jobs").join("t1"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        let job = jobs[0].file_stem().unwrap().to_string_lossy().to_string();
        let st = export_status(&mut c, "t1", &job).await.unwrap();
        assert_eq!(
            st.state,
            proto::export_status::State::Completed as i32,
            "{st:?}"
        );
        assert_eq!((st.entries, st.percent), (2, 100.0));
    });
}

/// Finished jobs are dropped after `export_retention_hours` (here 0: at
/// the next start), with their files; `max_export_jobs` caps a tenant's
/// running jobs (here 1).
#[test]
fn export_jobs_expire_and_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("skald.toml");
    std::fs::write(&config, "[http]\nexport_retention_hours = 0\n").unwrap();
    let mut s = Server::start_with(&["--config", config.to_str().unwrap()]);
    let file = s.data_dir().join("exports").join("t1").join("gone.ndjson");
    let job = rt().block_on(async {
        let mut c = client(&s).await;
        let job = start_export(&mut c, "t1", "gone.ndjson").await.unwrap();
        let st = wait_export(&mut c, "t1", &job).await;
        assert_eq!(
            st.state,
            proto::export_status::State::Completed as i32,
            "{st:?}"
        );
        assert!(file.exists());
        job
    });
    s.restart();
    rt().block_on(async {
        let mut c = client(&s).await;
        let err = export_status(&mut c, "t1", &job).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
    });
    assert!(!file.exists());

    // One running job at a time: enough lines that a job is still
    // running when the next requests arrive, a few milliseconds later.
    std::fs::write(&config, "[http]\nmax_export_jobs = 1\n").unwrap();
    s.restart();
    let t = now_ns() - 60_000_000_000;
    for part in 0..10 {
        let values: Vec<_> = (0..5000)
            .map(|i| {
                json!([
                    (t + part * 5000 + i).to_string(),
                    format!("export line {part} {i} {}", "x".repeat(200))
                ])
            })
            .collect();
        let r = s.push_json_tenant(
            "t1",
            &json!({"streams": [{"stream": {"app": "exp"}, "values": values}]}),
        );
        assert_eq!(r.status(), 204);
    }
    rt().block_on(async {
        let mut c = client(&s).await;
        let mut refused = Vec::new();
        for n in 0..8 {
            if let Err(err) = start_export(&mut c, "t1", &format!("capped-{n}.ndjson")).await {
                refused.push(err);
            }
        }
        assert!(
            !refused.is_empty(),
            "8 exports of 50,000 lines all ran at once"
        );
        for err in refused {
            assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
            assert!(err.message().contains("max_export_jobs"), "{err:?}");
        }
    });
}

/// A client's `grpc-timeout` reaches the server's check (its unit test
/// covers the deadline itself, which a tonic client also enforces on its
/// side): a malformed header is refused with INVALID_ARGUMENT naming it,
/// and a generous one changes nothing.
#[test]
fn grpc_timeout_headers_are_checked_by_the_real_binary() {
    let s = Server::start();
    rt().block_on(async {
        let mut c = client(&s).await;
        let r = push(&mut c, vec![stream(&[("app", "t")], &[(now_ns(), "one")])]).await;
        assert_eq!(r.accepted, 1);
        let query = || proto::QueryLogsRequest {
            query: r#"{app="t"}"#.into(),
            start_ns: day_ago().parse().unwrap(),
            end_ns: now_ns() + 1_000_000_000,
            limit: 10,
            direction: proto::Direction::Backward as i32,
        };
        let mut req = tonic::Request::new(query());
        req.metadata_mut()
            .insert("grpc-timeout", "5s".parse().unwrap());
        let err = c.query_logs(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
        assert!(err.message().contains("grpc-timeout"), "{}", err.message());

        let mut req = tonic::Request::new(query());
        req.set_timeout(std::time::Duration::from_secs(60));
        let r = c.query_logs(req).await.unwrap().into_inner();
        assert_eq!(r.streams.len(), 1);
    });
}
