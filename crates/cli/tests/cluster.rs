//! Several `skald serve` processes as one cluster: two ingest nodes, a
//! query node and a compactor over one S3 server (`s3s-fs`, in this
//! process) and one PostgreSQL catalog (started for the test). Every
//! acknowledged entry is read back from the query node at once, before and
//! after flushes; an ingest node killed with SIGKILL is reported in the
//! answers' warnings until it is back, and then nothing acknowledged is
//! missing; compaction runs while queries do, and no answer misses or
//! repeats an entry. Label and series answers include streams only the
//! ingest nodes' heads hold.

mod common;
#[path = "../../store/tests/common/postgres.rs"]
mod postgres;
#[path = "../../store/tests/common/s3.rs"]
mod s3;

use common::{Server, day_ago, now_ns};
use postgres::Postgres;
use s3::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

struct Cluster {
    env: Vec<(&'static str, String)>,
    args: Vec<String>,
}

impl Cluster {
    /// Nodes over the bucket of `s3` and the PostgreSQL catalog `catalog`.
    fn over(s3: &S3Server, catalog: String) -> Cluster {
        Cluster {
            env: vec![
                ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
                ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
                ("AWS_ENDPOINT_URL", s3.endpoint.clone()),
            ],
            args: vec![
                "--storage".into(),
                format!("s3://{BUCKET}/skald"),
                "--catalog".into(),
                catalog,
            ],
        }
    }

    fn node(&self, target: &str) -> Server {
        self.node_with(target, &[])
    }

    fn node_with(&self, target: &str, extra: &[&str]) -> Server {
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend(["--target", target]);
        args.extend(extra);
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Server::start_with_env(&args, &env)
    }
}

/// Pushes `n` lines to `{app="<app>"}` through `node`; returns them.
fn push(node: &Server, app: &str, batch: &str, n: usize) -> Vec<String> {
    let t0 = now_ns() - 3_600_000_000_000;
    let lines: Vec<String> = (0..n).map(|i| format!("{app} {batch} line {i}")).collect();
    let values: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| json!([(t0 + i as i64).to_string(), l]))
        .collect();
    let r = node.push_json(&json!({"streams": [{"stream": {"app": app}, "values": values}]}));
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    lines
}

/// Every line of both apps and the answer's warnings, from `node`.
fn read(node: &Server) -> (Vec<String>, Vec<String>) {
    let v = node.get_json(
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{app=~"a|b"}"#),
            ("start", &day_ago()),
            ("limit", "5000"),
        ],
    );
    let mut lines: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .map(|e| e[1].as_str().unwrap().to_string())
        .collect();
    lines.sort();
    let warnings = v["warnings"]
        .as_array()
        .map(|w| w.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    (lines, warnings)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn two_ingest_nodes_a_query_node_and_a_compactor_serve_one_data_set() {
    let Some(pg) = Postgres::start() else { return };
    let catalog = pg.create_database("cluster");
    let s3 = S3Server::start();
    let cluster = Cluster::over(&s3, catalog.clone());
    let mut a = cluster.node("ingest");
    let mut b = cluster.node("ingest");
    let query = cluster.node("query");
    let mut acked: Vec<String> = Vec::new();

    // Acknowledged on either ingest node: in the query node's next answer.
    acked.extend(push(&a, "a", "first", 100));
    acked.extend(push(&b, "b", "first", 100));
    assert_eq!(read(&query), (sorted(acked.clone()), vec![]));

    // Streams that exist only in the ingest nodes' heads are in label and
    // series answers too.
    let since = day_ago();
    let v = query.get_json("/loki/api/v1/label/app/values", &[("start", &since)]);
    assert_eq!(v["data"], json!(["a", "b"]), "{v}");
    let v = query.get_json("/loki/api/v1/labels", &[("start", &since)]);
    assert_eq!(v["data"], json!(["app"]), "{v}");
    let v = query.get_json(
        "/loki/api/v1/series",
        &[("match[]", r#"{app=~"a|b"}"#), ("start", &since)],
    );
    assert_eq!(v["data"], json!([{"app": "a"}, {"app": "b"}]), "{v}");

    // Another tenant's head entries reach only that tenant's reads.
    let other = json!({"streams": [{"stream": {"app": "a"}, "values": [[now_ns().to_string(), "other tenant"]]}]});
    assert!(a.push_json_tenant("other", &other).status().is_success());
    assert_eq!(read(&query), (sorted(acked.clone()), vec![]));
    let v: Value = reqwest::blocking::Client::new()
        .get(query.url("/loki/api/v1/query_range"))
        .header("X-Scope-OrgID", "other")
        .query(&[("query", r#"{app="a"}"#), ("start", &day_ago())])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        v["data"]["result"][0]["values"][0][1], "other tenant",
        "{v}"
    );
    assert_eq!(
        v["data"]["result"][0]["values"].as_array().unwrap().len(),
        1
    );

    // The query node takes no pushes, and says so.
    let r = query.push_json(
        &json!({"streams": [{"stream": {"app": "q"}, "values": [[now_ns().to_string(), "x"]]}]}),
    );
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(r.text().unwrap().contains("--target query"));

    // A flushed head is read from the bucket instead, and a node that
    // stopped cleanly is no longer asked.
    assert!(a.stop().success());
    assert_eq!(read(&query), (sorted(acked.clone()), vec![]));
    a.start_again();
    acked.extend(push(&a, "a", "second", 100));
    assert_eq!(read(&query), (sorted(acked.clone()), vec![]));

    // An ingest node killed: its unflushed entries are missing, and the
    // answer says so; back from its WAL, nothing is missing.
    acked.extend(push(&b, "b", "second", 100));
    b.kill9();
    let (lines, warnings) = read(&query);
    assert_eq!(lines.len(), acked.len() - 200, "{warnings:?}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&format!("ingest node {}", b.url("").trim_end_matches('/'))),
        "{warnings:?}"
    );
    assert!(
        warnings[0].contains("entries it has not flushed yet are missing"),
        "{warnings:?}"
    );
    b.start_again();
    assert_eq!(read(&query), (sorted(acked.clone()), vec![]));

    // More flushes, until the tenant has segments to compact; then a
    // compactor merges them while the query node answers.
    for round in 0..2 {
        for (app, node) in [("a", &mut a), ("b", &mut b)] {
            acked.extend(push(node, app, &format!("round {round}"), 50));
            assert!(node.stop().success());
            node.start_again();
        }
    }
    let listed = "SELECT count(*) FROM skald_segments WHERE removed_at IS NULL";
    assert!(pg.count("cluster", listed) >= 4);
    let compactor = cluster.node("compact");
    let removed = "SELECT count(*) FROM skald_segments WHERE removed_at IS NOT NULL";
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut answers = 0;
    let mut after = 0;
    let expected = sorted(acked.clone());
    while after < 5 {
        assert_eq!(read(&query), (expected.clone(), vec![]), "answer {answers}");
        answers += 1;
        if pg.count("cluster", removed) > 0 {
            after += 1;
        }
        assert!(Instant::now() < deadline, "no compaction within 2 minutes");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(compactor.log().contains("joined the cluster"));
    // Every node reads the same.
    assert_eq!(read(&a), (expected.clone(), vec![]));
    assert_eq!(read(&b), (expected.clone(), vec![]));

    // A node silent for minutes (its host gone: an address nothing
    // answers at) is not asked, and the answer says so; one silent for
    // longer than --forget-node-after (an hour) leaves the catalog.
    let (silent, gone) = ("http://192.0.2.1:3100", "http://192.0.2.2:3100");
    pg.execute(
        "cluster",
        &format!(
            "INSERT INTO skald_nodes (address, target, node, heartbeat_at) VALUES
             ('{silent}', 'ingest', 'n1', now() - interval '5 minutes'),
             ('{gone}', 'ingest', 'n2', now() - interval '2 hours')"
        ),
    );
    let (lines, warnings) = read(&query);
    assert_eq!(lines, expected);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings.iter().all(|w| w.contains("no heartbeat for")),
        "{warnings:?}"
    );
    let (lines, warnings) = read(&query);
    assert_eq!(lines, expected);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains(silent), "{warnings:?}");
    let nodes = "SELECT count(*) FROM skald_nodes WHERE address LIKE 'http://192.0.2.%'";
    assert_eq!(pg.count("cluster", nodes), 1);
    assert!(query.log().contains("removed a silent ingest node"));
}

#[test]
fn a_query_node_reads_heads_with_its_cluster_token_and_nothing_else_does() {
    let Some(pg) = Postgres::start() else { return };
    let catalog = pg.create_database("auth");
    let s3 = S3Server::start();
    let cluster = Cluster::over(&s3, catalog.clone());
    let ingest = cluster.node_with("ingest", &["--auth"]);
    // Tokens live in the catalog: made once, valid on every node.
    let place = ["--catalog", catalog.as_str()];
    let push_token = common::create_token_in(&place, "acme", "push", "pusher");
    let cluster_token = common::create_token_in(&place, "*", "admin", "cluster");
    let other_token = common::create_token_in(&place, "other", "read", "other");
    let http = reqwest::blocking::Client::new();
    // The running server picks the new tokens up within a second.
    common::wait_until("tokens loaded", || {
        http.get(ingest.url("/loki/api/v1/labels"))
            .bearer_auth(&cluster_token)
            .header("X-Scope-OrgID", "acme")
            .send()
            .unwrap()
            .status()
            == 200
    });
    let body = json!({"streams": [{"stream": {"app": "a"}, "values": [[now_ns().to_string(), "secret line"]]}]});
    let r = http
        .post(ingest.url("/loki/api/v1/push"))
        .bearer_auth(&push_token)
        .header("X-Scope-OrgID", "acme")
        .json(&body)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());

    let trusted = cluster.node_with("query", &["--cluster-token", &cluster_token]);
    let stranger = cluster.node("query");
    let ask = |node: &Server| -> Value {
        let r = http
            .get(node.url("/loki/api/v1/query_range"))
            .header("X-Scope-OrgID", "acme")
            .query(&[("query", r#"{app="a"}"#), ("start", &day_ago())])
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    };
    let v = ask(&trusted);
    assert_eq!(v["data"]["result"][0]["values"][0][1], "secret line", "{v}");
    assert!(v.get("warnings").is_none(), "{v}");
    let v = ask(&stranger);
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 0, "{v}");
    assert!(v["warnings"][0].as_str().unwrap().contains("401"), "{v}");

    // The endpoint itself: a read of that tenant, nothing less.
    let heads = |token: Option<&str>| {
        let mut r = http
            .get(ingest.url("/skald/internal/v1/heads"))
            .header("X-Scope-OrgID", "acme")
            .query(&[("query", r#"{app="a"}"#)]);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!(heads(None), 401);
    assert_eq!(heads(Some(&other_token)), 403);
    assert_eq!(heads(Some(&push_token)), 403);
    assert_eq!(heads(Some(&cluster_token)), 200);
    // The live tail endpoint: the same rule (its answer starts at once).
    let tail = |token: Option<&str>| {
        let mut r = http
            .get(ingest.url("/skald/internal/v1/tail"))
            .header("X-Scope-OrgID", "acme")
            .query(&[("query", r#"{app="a"}"#)]);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!(tail(None), 401);
    assert_eq!(tail(Some(&other_token)), 403);
    assert_eq!(tail(Some(&push_token)), 403);
    assert_eq!(tail(Some(&cluster_token)), 200);
}

#[test]
fn tokens_in_the_catalog_are_valid_on_every_node_until_revoked_on_any() {
    let Some(pg) = Postgres::start() else { return };
    let catalog = pg.create_database("tokens");
    let s3 = S3Server::start();
    let cluster = Cluster::over(&s3, catalog.clone());
    let place = ["--catalog", catalog.as_str()];
    let early = common::create_token_in(&place, "acme", "read", "early");
    let one = cluster.node_with("all", &["--auth"]);
    let two = cluster.node_with("query", &["--auth"]);
    let http = reqwest::blocking::Client::new();
    let status = |node: &Server, token: &str| {
        http.get(node.url("/loki/api/v1/labels"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    // Made before the nodes started: valid on both at once.
    assert_eq!(status(&one, &early), 200);
    assert_eq!(status(&two, &early), 200);
    // Made while they run: valid on both within a few seconds, without a
    // restart; the same name again is refused and changes nothing.
    let late = common::create_token_in(&place, "acme", "read", "late");
    common::wait_until("a new token valid on both nodes", || {
        status(&one, &late) == 200 && status(&two, &late) == 200
    });
    let again = Command::new(env!("CARGO_BIN_EXE_skald"))
        .args(["token", "create", "--catalog", &catalog])
        .args(["--tenant", "acme", "--role", "admin", "--name", "late"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(again.stdout.is_empty());
    let why = String::from_utf8_lossy(&again.stderr);
    assert!(why.contains("a token named \"late\" exists"), "{why}");
    // Listed without the token itself.
    let list = Command::new(env!("CARGO_BIN_EXE_skald"))
        .args(["token", "list", "--catalog", &catalog])
        .output()
        .unwrap();
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(list.status.success() && listed.contains("early") && listed.contains("late"));
    assert!(!listed.contains(&late["skald_".len() + 17..]), "{listed}");
    // Revoked once: refused by every node.
    let revoke = Command::new(env!("CARGO_BIN_EXE_skald"))
        .args(["token", "revoke", "--catalog", &catalog, "early"])
        .output()
        .unwrap();
    assert!(revoke.status.success(), "{revoke:?}");
    common::wait_until("a revoked token refused by both nodes", || {
        status(&one, &early) == 401 && status(&two, &early) == 401
    });
    assert_eq!(status(&one, &late), 200);
    // The nodes' data directories hold no token file.
    assert!(!one.data_dir().join("tokens.json").exists());
}

/// A live tail (Loki's websocket) on `node`, read without a runtime.
struct WsTail(
    tokio_tungstenite::tungstenite::WebSocket<
        tokio_tungstenite::tungstenite::stream::MaybeTlsStream<std::net::TcpStream>,
    >,
);

impl WsTail {
    fn open(node: &Server, query: &str) -> WsTail {
        let url = format!(
            "ws://127.0.0.1:{}/loki/api/v1/tail?query={}&limit=100&start={}",
            node.http,
            common::urlencode(query),
            day_ago()
        );
        let (ws, _) = tokio_tungstenite::tungstenite::connect(url).unwrap();
        if let tokio_tungstenite::tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        }
        WsTail(ws)
    }

    /// The lines of the next message; empty after a second without one.
    fn lines(&mut self) -> Vec<String> {
        use tokio_tungstenite::tungstenite::{Error, Message};
        let text = match self.0.read() {
            Ok(Message::Text(t)) => t,
            Ok(_) => return Vec::new(),
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => return Vec::new(),
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => return Vec::new(),
            Err(e) => panic!("tail: {e}"),
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["values"].as_array().unwrap().clone())
            .map(|e| e[1].as_str().unwrap().to_string())
            .collect()
    }

    /// Reads until every line of `want` came (in any order), at most
    /// `within`; fails on a line twice.
    fn expect(&mut self, want: &[String], within: Duration) {
        let deadline = Instant::now() + within;
        let mut got: Vec<String> = Vec::new();
        while got.len() < want.len() {
            assert!(
                Instant::now() < deadline,
                "tail: got {got:?}, want {want:?}"
            );
            got.extend(self.lines());
        }
        assert_eq!(sorted(got), sorted(want.to_vec()));
    }
}

#[test]
fn a_live_tail_on_a_query_node_follows_every_ingest_node() {
    let Some(pg) = Postgres::start() else { return };
    let catalog = pg.create_database("tail");
    let s3 = S3Server::start();
    let cluster = Cluster::over(&s3, catalog);
    let a = cluster.node("ingest");
    let mut b = cluster.node("ingest");
    let query = cluster.node("query");

    // History from the heads, then what either node is pushed.
    let early = push(&a, "a", "early", 3);
    let mut tail = WsTail::open(&query, r#"{app=~"a|b"}"#);
    tail.expect(&early, Duration::from_secs(10));
    let mut live = push(&a, "a", "live", 5);
    live.extend(push(&b, "b", "live", 5));
    tail.expect(&live, Duration::from_secs(10));

    // An ingest node that restarts is followed again once it is back;
    // entries it took meanwhile are read by queries, not necessarily
    // tailed.
    b.kill9();
    b.start_again();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut round = 0;
    'back: loop {
        assert!(
            Instant::now() < deadline,
            "the restarted node is not followed"
        );
        let sent = push(&b, "b", &format!("after restart {round}"), 1);
        round += 1;
        for _ in 0..2 {
            let lines = tail.lines();
            assert!(
                lines.iter().all(|l| l.starts_with("b after restart")),
                "{lines:?}"
            );
            if lines.contains(&sent[0]) {
                break 'back;
            }
        }
    }
    // And a line of each node after that, exactly once.
    let mut more = push(&a, "a", "last", 1);
    more.extend(push(&b, "b", "last", 1));
    tail.expect(&more, Duration::from_secs(10));
}

#[test]
fn an_export_job_started_on_one_node_is_found_on_every_node() {
    use skald_server::grpc::proto;
    use skald_server::grpc::proto::log_service_client::LogServiceClient;
    let Some(pg) = Postgres::start() else { return };
    let catalog = pg.create_database("exports");
    let s3 = S3Server::start();
    let cluster = Cluster::over(&s3, catalog);
    let one = cluster.node("all");
    let two = cluster.node("query");
    push(&one, "a", "export", 50);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut c1 = LogServiceClient::connect(one.grpc_url()).await.unwrap();
        let mut c2 = LogServiceClient::connect(two.grpc_url()).await.unwrap();
        let mut rx = c1
            .export_logs(proto::ExportLogsRequest {
                query: r#"{app="a"}"#.into(),
                start_ns: day_ago().parse().unwrap(),
                destination: Some(proto::ExportDestination {
                    path: "out.jsonl".into(),
                    format: proto::ExportFormat::Json as i32,
                    gzip: false,
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let job = rx.message().await.unwrap().unwrap().job_id;
        let status = |id: &str, tenant: Option<&str>| {
            let mut request = tonic::Request::new(proto::GetExportStatusRequest {
                job_id: id.to_string(),
            });
            if let Some(t) = tenant {
                request
                    .metadata_mut()
                    .insert("x-scope-orgid", t.parse().unwrap());
            }
            request
        };
        // The other node answers the job's status, up to its end.
        let deadline = Instant::now() + Duration::from_secs(30);
        let done = loop {
            let st = c2.get_export_status(status(&job, None)).await.unwrap();
            let st = st.into_inner();
            assert_ne!(
                st.state,
                proto::export_status::State::Failed as i32,
                "{st:?}"
            );
            if st.state == proto::export_status::State::Completed as i32 {
                break st;
            }
            assert!(Instant::now() < deadline, "not completed: {st:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(done.entries, 50);
        assert!(done.path.ends_with("out.jsonl"), "{done:?}");
        assert!(done.finished_ns > 0);
        // Another tenant's, or an unknown id: not found on any node.
        for c in [&mut c1, &mut c2] {
            let e = c.get_export_status(status(&job, Some("other"))).await;
            assert_eq!(e.unwrap_err().code(), tonic::Code::NotFound);
            let e = c.get_export_status(status("0123456789abcdef", None)).await;
            assert_eq!(e.unwrap_err().code(), tonic::Code::NotFound);
        }
    });
}
