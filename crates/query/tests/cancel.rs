//! A query stops when its token says so: cancelled (the client went away)
//! or past its deadline (`query_timeout`), for log and metric queries,
//! over entries in the head and in segments.

use skald_logql::{Expr, parse_expr};
use skald_model::{Entry, LabelSet, TenantId, Timestamp};
use skald_pipeline::Pipeline;
use skald_query::{
    CancelToken, Direction, LogQuery, MetricLimits, MetricQuery, QueryError, run_log_query,
    run_metric_query,
};
use skald_store::{Store, StoreConfig, StreamBatch};
use std::time::Duration;

fn store(dir: &std::path::Path) -> (Store, TenantId, i64) {
    let store = Store::open(StoreConfig {
        data_dir: dir.to_path_buf(),
        ..StoreConfig::default()
    })
    .unwrap();
    let tenant = TenantId::new("t").unwrap();
    let t0 = Timestamp::now().0 - 60_000_000_000;
    for part in 0..2 {
        let entries = (0..100)
            .map(|i| Entry::new(Timestamp(t0 + part * 1000 + i), format!("line {part} {i}")))
            .collect();
        store
            .push(
                &tenant,
                vec![StreamBatch {
                    labels: LabelSet::parse(r#"{app="a"}"#).unwrap(),
                    entries,
                }],
            )
            .unwrap();
        if part == 0 {
            store.flush().unwrap();
        }
    }
    (store, tenant, t0)
}

fn run_both(store: &Store, tenant: &TenantId, t0: i64) -> [Result<(), QueryError>; 2] {
    let Expr::Log(log) = parse_expr(r#"{app="a"} |= "line""#).unwrap() else {
        unreachable!()
    };
    let pipeline = Pipeline::new(&log.pipeline).unwrap();
    let logs = run_log_query(
        store,
        &LogQuery {
            tenant,
            selector: &log.selector,
            pipeline: &pipeline,
            start: Timestamp(t0 - 1),
            end: Timestamp(t0 + 10_000),
            limit: 1000,
            direction: Direction::Forward,
            interval: 0,
        },
    )
    .map(|r| assert_eq!(r.streams[0].entries.len(), 200));
    let expr = parse_expr(r#"sum(count_over_time({app="a"}[1m]))"#).unwrap();
    let metric = run_metric_query(
        store,
        &MetricQuery {
            tenant,
            expr: &expr,
            start: Timestamp(t0 + 10_000),
            end: Timestamp(t0 + 10_000),
            step: 1_000_000_000,
            limits: MetricLimits::default(),
        },
    )
    .map(|_| ());
    [logs, metric]
}

#[test]
fn queries_stop_when_cancelled_or_past_their_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (store, tenant, t0) = store(dir.path());
    // No token, and a token with time left: the queries run.
    for r in run_both(&store, &tenant, t0) {
        r.unwrap();
    }
    let fine = CancelToken::new(Some(Duration::from_secs(3600)));
    for r in fine.scope(|| run_both(&store, &tenant, t0)) {
        r.unwrap();
    }
    // The client went away.
    let gone = CancelToken::new(None);
    drop(gone.guard());
    for r in gone.scope(|| run_both(&store, &tenant, t0)) {
        assert!(matches!(r, Err(QueryError::Cancelled)), "{r:?}");
    }
    // Past the deadline.
    let late = CancelToken::new(Some(Duration::ZERO));
    for r in late.scope(|| run_both(&store, &tenant, t0)) {
        let err = r.unwrap_err();
        assert!(matches!(err, QueryError::Timeout(_)), "{err:?}");
        assert!(err.to_string().contains("query_timeout"), "{err}");
    }
}
