//! The budget all log queries' answers share (`max_inflight_response_bytes`):
//! a query that would hold more than what is left fails with `Busy`, one
//! that holds little never draws on it, and everything reserved is given
//! back however the query ended.

use skald_logql::{Expr, parse_expr};
use skald_model::{Entry, LabelSet, TenantId, Timestamp};
use skald_pipeline::Pipeline;
use skald_query::{
    AnswerBudget, Direction, HeldBytes, LogQuery, LogResult, QueryError, run_log_query_held,
};
use skald_store::{Store, StreamBatch};
use std::sync::Arc;

/// 200 lines of `{app="a"}`, half flushed to a segment, half in the head.
fn store() -> (Store, TenantId, i64) {
    let store = Store::in_memory().unwrap();
    let tenant = TenantId::new("t").unwrap();
    let t0 = Timestamp::now().0 - 60_000_000_000;
    for part in 0..2 {
        let entries = (0..100)
            .map(|i| Entry::new(Timestamp(t0 + part * 1000 + i), format!("line {part} {i}")))
            .collect();
        let labels = LabelSet::parse(r#"{app="a"}"#).unwrap();
        store
            .push(&tenant, vec![StreamBatch { labels, entries }])
            .unwrap();
        if part == 0 {
            store.flush().unwrap();
        }
    }
    (store, tenant, t0)
}

fn run(
    store: &Store,
    tenant: &TenantId,
    t0: i64,
    query: &str,
    interval: i64,
    budget: &Arc<AnswerBudget>,
) -> Result<LogResult, QueryError> {
    let Expr::Log(log) = parse_expr(query).unwrap() else {
        unreachable!()
    };
    let pipeline = Pipeline::new(&log.pipeline).unwrap();
    run_log_query_held(
        store,
        &LogQuery {
            tenant,
            selector: &log.selector,
            pipeline: &pipeline,
            start: Timestamp(t0 - 1),
            end: Timestamp(t0 + 10_000),
            limit: 200,
            direction: Direction::Backward,
            interval,
        },
        HeldBytes {
            max: 1 << 30,
            setting: "max_response_bytes",
            shared: Some(budget.clone()),
        },
    )
}

/// Each line made 64 KiB: 200 of them hold 12.5 MiB.
const BIG: &str = r#"{app="a"} | line_format "{{ repeat 65536 \"x\" }}""#;

#[test]
fn small_answers_never_draw_on_the_budget() {
    let (store, tenant, t0) = store();
    // A budget of nothing: small answers still pass.
    let budget = AnswerBudget::new(0);
    let r = run(&store, &tenant, t0, r#"{app="a"} |= "line""#, 0, &budget).unwrap();
    let lines: usize = r.streams.iter().map(|s| s.entries.len()).sum();
    assert_eq!(lines, 200);
    assert_eq!(budget.used(), 0);
}

#[test]
fn a_query_past_what_is_left_is_busy_and_gives_back_what_it_held() {
    let (store, tenant, t0) = store();
    let budget = AnswerBudget::new(8 << 20);
    for interval in [0, 1] {
        let err = run(&store, &tenant, t0, BIG, interval, &budget).unwrap_err();
        assert!(matches!(err, QueryError::Busy(_)), "{err:?}");
        assert!(
            err.to_string().contains("max_inflight_response_bytes"),
            "{err}"
        );
        assert_eq!(budget.used(), 0, "reservations given back");
    }
}

#[test]
fn within_the_budget_the_answer_is_whole_and_the_budget_is_given_back() {
    let (store, tenant, t0) = store();
    let budget = AnswerBudget::new(64 << 20);
    for interval in [0, 1] {
        let r = run(&store, &tenant, t0, BIG, interval, &budget).unwrap();
        let entries: Vec<_> = r.streams.iter().flat_map(|s| &s.entries).collect();
        assert_eq!(entries.len(), 200);
        assert!(entries.iter().all(|e| e.line.len() == 65536));
        assert_eq!(budget.used(), 0);
    }
}
