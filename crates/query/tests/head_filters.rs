//! Needle searches skip head blocks by their trigram filters as they skip
//! segment chunks, with the same answers before and after a flush and
//! while the filters are still being built; the open block, which has no
//! filter, is always read.

use skald_logql::{Expr, parse_expr};
use skald_model::{Entry, LabelSet, TenantId, Timestamp};
use skald_pipeline::Pipeline;
use skald_query::{
    Direction, LogQuery, MetricLimits, MetricOutput, MetricQuery, QueryStats, run_log_query,
    run_metric_query,
};
use skald_store::{Store, StoreConfig, StreamBatch};

const LINES: i64 = 8_000;

/// 8000 lines of about 70 bytes (eight frozen 64 KiB head blocks and an
/// open one); `needle` in line 1234 (a frozen block) and `NeedleLast` in
/// the very last line (the open block).
fn store(dir: &std::path::Path) -> (Store, TenantId, i64) {
    let store = Store::open(StoreConfig {
        data_dir: dir.to_path_buf(),
        ..StoreConfig::default()
    })
    .unwrap();
    let tenant = TenantId::new("t").unwrap();
    let t0 = Timestamp::now().0 - 60_000_000_000;
    let entries = (0..LINES)
        .map(|i| {
            let word = match i {
                1234 => "needle",
                i if i == LINES - 1 => "NeedleLast",
                _ => "haystack",
            };
            Entry::new(
                Timestamp(t0 + i),
                format!("level=info msg=\"request {i} served\" word={word} path=/api/v1/items/{i}"),
            )
        })
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
    (store, tenant, t0)
}

fn lines(store: &Store, tenant: &TenantId, t0: i64, query: &str) -> (Vec<String>, QueryStats) {
    let Expr::Log(log) = parse_expr(query).unwrap() else {
        unreachable!()
    };
    let pipeline = Pipeline::new(&log.pipeline).unwrap();
    let r = run_log_query(
        store,
        &LogQuery {
            tenant,
            selector: &log.selector,
            pipeline: &pipeline,
            start: Timestamp(t0),
            end: Timestamp(t0 + LINES),
            limit: 100,
            direction: Direction::Backward,
            interval: 0,
        },
    )
    .unwrap();
    let got = r
        .streams
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| e.line.clone()))
        .collect();
    (got, r.stats)
}

fn count(store: &Store, tenant: &TenantId, t0: i64, query: &str) -> (f64, QueryStats) {
    let expr = parse_expr(query).unwrap();
    let out = run_metric_query(
        store,
        &MetricQuery {
            tenant,
            expr: &expr,
            start: Timestamp(t0 + LINES),
            end: Timestamp(t0 + LINES),
            step: 1_000_000_000,
            limits: MetricLimits::default(),
        },
    )
    .unwrap();
    let total = match &out.output {
        MetricOutput::Matrix(series) => series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .sum(),
        MetricOutput::Scalar(points) => points.iter().map(|p| p.1).sum(),
    };
    (total, out.stats)
}

#[test]
fn needle_searches_skip_frozen_head_blocks_and_still_read_the_open_one() {
    let dir = tempfile::tempdir().unwrap();
    let (store, tenant, t0) = store(dir.path());
    let metric = r#"sum(count_over_time({app="a"} |= "needle" [1m]))"#;
    let check = |when: &str, min_skipped: u64| {
        let (got, stats) = lines(&store, &tenant, t0, r#"{app="a"} |= "needle""#);
        assert_eq!(got.len(), 1, "{when}: {got:?}");
        assert!(got[0].contains("request 1234 "), "{when}: {got:?}");
        assert!(
            stats.chunks_ref >= min_skipped + 2 && stats.chunks_skipped == stats.chunks_ref - 2
                || min_skipped == 0,
            "{when}: the filters skipped only {} of {} sources",
            stats.chunks_skipped,
            stats.chunks_ref
        );
        // Case-insensitive: both lines, the second from the open block
        // (or, after the flush, from the segment).
        let (got, _) = lines(&store, &tenant, t0, r#"{app="a"} |~ "(?i)needle""#);
        assert_eq!(got.len(), 2, "{when}: {got:?}");
        let (got, _) = lines(&store, &tenant, t0, r#"{app="a"} |= "NeedleLast""#);
        assert_eq!(got.len(), 1, "{when}: {got:?}");
        let (n, stats) = count(&store, &tenant, t0, metric);
        assert_eq!(n, 1.0, "{when}");
        assert!(stats.chunks_skipped >= min_skipped, "{when}: {stats:?}");
        // A literal in every block skips nothing and finds everything.
        let (n, _) = count(
            &store,
            &tenant,
            t0,
            r#"sum(count_over_time({app="a"} |= "served" [1m]))"#,
        );
        assert_eq!(n, LINES as f64, "{when}");
    };
    // Filters are built in the background once a block is frozen; until
    // then blocks are read whole, with the same answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (got, stats) = lines(&store, &tenant, t0, r#"{app="a"} |= "needle""#);
        assert_eq!(got.len(), 1, "while filters are built: {got:?}");
        // Built for every frozen block: all skipped but the needle's, and
        // the open block is read.
        if stats.chunks_skipped + 2 == stats.chunks_ref {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the head filters were not built in a minute: {stats:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Every frozen block but the needle's is skipped; the open block is
    // read.
    check("in the head", 6);
    // The same answers from the segment (one chunk: nothing to skip).
    store.flush().unwrap();
    check("in a segment", 0);
}
