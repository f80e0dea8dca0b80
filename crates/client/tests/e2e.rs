//! Against the real `skald` binary: push with the client, read back with
//! the query client.
//!
//! The binary is found (or built) as `common::server` says.

mod common;

use common::server::Server;
use skald_client::{
    Client, Config, Direction, Encoding, Endpoint, Entry, Error, Labels, LogQl, QueryClient,
    QueryResult, RangeQuery, TimeRange, Timestamp,
};
use std::time::Duration;

fn start_server() -> Server {
    Server::start()
}

#[test]
fn push_then_query_back_from_skald() {
    let server = start_server();
    let base = Timestamp::now().0 - 60_000_000_000;
    let info = Labels::new([("app", "e2e"), ("level", "info")]).unwrap();
    let warn = Labels::new([("app", "e2e"), ("level", "warn")]).unwrap();
    let json = Labels::new([("app", "e2e-json"), ("level", "info")]).unwrap();

    let protobuf_client = Client::new(Config::new(&server.url)).unwrap();
    for i in 0..1000i64 {
        let labels = if i % 4 == 0 { &warn } else { &info };
        protobuf_client
            .send(
                Entry::new(labels, format!("line {i} status={}", 200 + i % 3))
                    .at(Timestamp(base + i)),
            )
            .unwrap();
    }
    let mut config = Config::new(&server.url);
    config.encoding = Encoding::JsonGzip;
    let json_client = Client::new(config).unwrap();
    for i in 0..10i64 {
        json_client
            .send(Entry::new(&json, format!("json {i}")).at(Timestamp(base + i)))
            .unwrap();
    }
    protobuf_client.close(Duration::from_secs(60)).unwrap();
    json_client.close(Duration::from_secs(60)).unwrap();
    assert_eq!(protobuf_client.last_error(), None);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let query = QueryClient::new(Endpoint::new(&server.url)).unwrap();
        let window = RangeQuery {
            start: Some(Timestamp(base - 1)),
            end: Some(Timestamp(base + 10_000)),
            limit: Some(5000),
            direction: Some(Direction::Forward),
            ..RangeQuery::default()
        };
        let QueryResult::Streams(streams) =
            query.query_range(r#"{app="e2e"}"#, &window).await.unwrap()
        else {
            panic!("expected streams")
        };
        assert_eq!(streams.len(), 2);
        let mut all: Vec<(i64, String)> = streams
            .iter()
            .flat_map(|s| {
                s.entries
                    .iter()
                    .map(|e| (e.timestamp.0 - base, e.line.clone()))
            })
            .collect();
        all.sort();
        let expected: Vec<(i64, String)> = (0..1000i64)
            .map(|i| (i, format!("line {i} status={}", 200 + i % 3)))
            .collect();
        assert_eq!(all, expected);

        // A builder query; the server runs its line filters.
        let built = LogQl::selector()
            .eq("app", "e2e")
            .re("level", "warn|error")
            .contains("status=200")
            .not_contains("status=201")
            .build()
            .unwrap();
        let QueryResult::Streams(streams) = query.query_range(&built, &window).await.unwrap()
        else {
            panic!("expected streams")
        };
        let count: usize = streams.iter().map(|s| s.entries.len()).sum();
        let expected = (0..1000).filter(|i| i % 4 == 0 && i % 3 == 0).count();
        assert_eq!(count, expected, "{built}");

        let names = query.labels(&TimeRange::default()).await.unwrap();
        assert!(
            names.contains(&"app".to_string()) && names.contains(&"level".to_string()),
            "{names:?}"
        );
        let mut apps = query
            .label_values("app", &TimeRange::default())
            .await
            .unwrap();
        apps.sort();
        assert_eq!(apps, ["e2e", "e2e-json"]);
        let series = query
            .series(&[r#"{app="e2e-json"}"#], &TimeRange::default())
            .await
            .unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0]["level"], "info");

        // A metric query, built and run at an instant.
        let metric = LogQl::selector()
            .eq("app", "e2e")
            .count_over_time("1h")
            .sum_by(["level"])
            .build()
            .unwrap();
        let at = skald_client::InstantQuery {
            time: Some(Timestamp(base + 10_000)),
            ..Default::default()
        };
        match query.query(&metric, &at).await {
            Ok(QueryResult::Vector(samples)) => {
                let mut counts: Vec<(String, f64)> = samples
                    .iter()
                    .map(|s| (s.metric["level"].clone(), s.point.value))
                    .collect();
                counts.sort_by(|a, b| a.0.cmp(&b.0));
                assert_eq!(
                    counts,
                    [("info".to_string(), 750.0), ("warn".to_string(), 250.0)]
                );
            }
            // The server may not evaluate metric queries yet; it must say
            // so as an HTTP error, not a malformed answer.
            Err(Error::Status { .. }) => {}
            other => panic!("unexpected answer to {metric}: {other:?}"),
        }

        match query.tail(r#"{app="e2e"}"#, None, None).await {
            Err(Error::NotSupported(_)) => {}
            Ok(mut tail) => {
                // A server with tail: the first message must parse.
                if let Some(message) = tail.next().await {
                    message.unwrap();
                }
            }
            Err(e) => panic!("tail: {e}"),
        }
    });
}

/// Against a server with authentication on: the push client and the query
/// client with a bearer token push and read back their tenant's lines;
/// without a token, or with a token of another tenant, the push is
/// rejected (not retried) and reported, and the query fails with 401/403.
#[test]
fn the_client_pushes_and_queries_with_a_token_against_auth() {
    let server = Server::start_with_config("[auth]\nenabled = true\n");
    let writer = server.create_token("team-a", "push", "shipper");
    let reader = server.create_token("team-a", "read", "dashboards");
    let other = server.create_token("team-b", "push", "elsewhere");
    let base = Timestamp::now().0 - 60_000_000_000;
    let labels = Labels::new([("app", "auth-e2e")]).unwrap();

    let config_with = |auth: Option<skald_client::Auth>| {
        let mut config = Config::new(&server.url);
        config.endpoint.tenant = Some("team-a".into());
        config.endpoint.auth = auth;
        config
    };
    let client = Client::new(config_with(Some(skald_client::Auth::Bearer(writer)))).unwrap();
    for i in 0..100i64 {
        client
            .send(Entry::new(&labels, format!("authorised {i}")).at(Timestamp(base + i)))
            .unwrap();
    }
    client.close(Duration::from_secs(60)).unwrap();
    assert_eq!(client.last_error(), None);

    for (auth, status) in [(None, 401), (Some(skald_client::Auth::Bearer(other)), 403)] {
        let refused = Client::new(config_with(auth)).unwrap();
        refused
            .send(Entry::new(&labels, "refused").at(Timestamp(base + 500)))
            .unwrap();
        refused.close(Duration::from_secs(60)).unwrap();
        match refused.last_error() {
            Some(Error::Rejected { status: s, .. }) => assert_eq!(s, status),
            other => panic!("expected a rejection with {status}, got {other:?}"),
        }
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let window = RangeQuery {
            start: Some(Timestamp(base - 1)),
            end: Some(Timestamp(base + 10_000)),
            limit: Some(1000),
            direction: Some(Direction::Forward),
            ..RangeQuery::default()
        };
        let mut endpoint = Endpoint::new(&server.url);
        endpoint.tenant = Some("team-a".into());
        endpoint.auth = Some(skald_client::Auth::Bearer(reader));
        let query = QueryClient::new(endpoint.clone()).unwrap();
        let QueryResult::Streams(streams) = query
            .query_range(r#"{app="auth-e2e"}"#, &window)
            .await
            .unwrap()
        else {
            panic!("a log query answers streams");
        };
        let lines: Vec<String> = streams
            .iter()
            .flat_map(|s| s.entries.iter().map(|e| e.line.clone()))
            .collect();
        assert_eq!(lines.len(), 100, "{lines:?}");
        assert!(lines.iter().all(|l| l.starts_with("authorised ")));

        endpoint.auth = None;
        let anonymous = QueryClient::new(endpoint).unwrap();
        match anonymous.query_range(r#"{app="auth-e2e"}"#, &window).await {
            Err(Error::Status { status, .. }) => assert_eq!(status, 401),
            other => panic!("expected 401, got {other:?}"),
        }
    });
}
