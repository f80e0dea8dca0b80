//! Evaluation semantics of metric queries, over entries held in memory
//! (the same range and expression code the store path runs).

use crate::QueryError;
use crate::eval::{Evaluator, Grid};
use crate::metric::{MetricOutput, Series, to_output};
use crate::range::{RangePlan, run_in_memory};
use skald_logql::parse_expr;
use skald_model::{Entry, Label, Timestamp};

const S: i64 = 1_000_000_000;

type Streams = Vec<(Vec<Label>, Vec<Entry>)>;

fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    let mut v: Vec<Label> = pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect();
    v.sort();
    v
}

/// A stream with one entry per (second, line).
fn stream(pairs: &[(&str, &str)], lines: &[(i64, &str)]) -> (Vec<Label>, Vec<Entry>) {
    (
        labels(pairs),
        lines
            .iter()
            .map(|(t, l)| Entry::new(Timestamp(t * S), *l))
            .collect(),
    )
}

fn run(
    q: &str,
    data: &Streams,
    start: i64,
    end: i64,
    step: i64,
) -> Result<MetricOutput, QueryError> {
    run_limited(q, data, start, end, step, 500)
}

fn run_limited(
    q: &str,
    data: &Streams,
    start: i64,
    end: i64,
    step: i64,
    max_series: usize,
) -> Result<MetricOutput, QueryError> {
    run_with_limits(q, data, (start, end, step), max_series, 10_000)
}

fn run_with_limits(
    q: &str,
    data: &Streams,
    (start, end, step): (i64, i64, i64),
    max_series: usize,
    max_inner_series: usize,
) -> Result<MetricOutput, QueryError> {
    let expr = parse_expr(q).unwrap();
    let grid = Grid::new(start * S, end * S, step * S);
    let mut range = |agg: &skald_logql::RangeAggregation,
                     pushdown: Option<&skald_logql::Grouping>,
                     limit: usize| {
        let plan = RangePlan::new(agg, &grid, pushdown, limit)?;
        run_in_memory(&plan, &grid, data)
    };
    let value = Evaluator {
        grid,
        range: &mut range,
        max_inner_series,
    }
    .eval(&expr, max_series)?;
    to_output(value, &grid, &expr, max_series)
}

fn matrix(out: MetricOutput) -> Vec<Series> {
    match out {
        MetricOutput::Matrix(m) => m,
        other => panic!("expected a matrix, got {other:?}"),
    }
}

/// Points as (seconds, value).
fn points(s: &Series) -> Vec<(i64, f64)> {
    s.points.iter().map(|&(t, v)| (t / S, v)).collect()
}

fn app_x() -> Streams {
    vec![stream(
        &[("app", "x")],
        &[(1, "a"), (2, "bb"), (3, "ccc"), (10, "dddd"), (11, "e")],
    )]
}

#[test]
fn count_over_time_windows_are_left_open_right_closed() {
    // Windows of 10s at 10, 20: (0, 10] holds 1, 2, 3, 10; (10, 20] holds 11.
    let m = matrix(run(r#"count_over_time({app="x"}[10s])"#, &app_x(), 10, 20, 10).unwrap());
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].labels, labels(&[("app", "x")]));
    assert_eq!(points(&m[0]), vec![(10, 4.0), (20, 1.0)]);
}

#[test]
fn steps_start_at_start_and_stop_at_or_before_end() {
    let m = matrix(run(r#"count_over_time({app="x"}[5s])"#, &app_x(), 3, 14, 4).unwrap());
    // Steps 3, 7, 11 (15 > 14): (-2, 3] = 3 lines, (2, 7] = 1, (6, 11] = 2.
    assert_eq!(points(&m[0]), vec![(3, 3.0), (7, 1.0), (11, 2.0)]);
}

#[test]
fn rate_bytes_and_offset() {
    let data = app_x();
    let m = matrix(run(r#"rate({app="x"}[10s])"#, &data, 10, 10, 1).unwrap());
    assert_eq!(points(&m[0]), vec![(10, 0.4)]);
    let m = matrix(run(r#"bytes_over_time({app="x"}[10s])"#, &data, 10, 10, 1).unwrap());
    assert_eq!(points(&m[0]), vec![(10, 10.0)]);
    let m = matrix(run(r#"bytes_rate({app="x"}[10s])"#, &data, 10, 10, 1).unwrap());
    assert_eq!(points(&m[0]), vec![(10, 1.0)]);
    // offset 10s at t=20 reads (0, 10].
    let m = matrix(
        run(
            r#"count_over_time({app="x"}[10s] offset 10s)"#,
            &data,
            20,
            20,
            1,
        )
        .unwrap(),
    );
    assert_eq!(points(&m[0]), vec![(20, 4.0)]);
}

fn latencies() -> Streams {
    vec![
        stream(
            &[("app", "api"), ("pod", "a")],
            &[(1, "latency=1"), (2, "latency=4"), (3, "latency=2")],
        ),
        stream(&[("app", "api"), ("pod", "b")], &[(2, "latency=10")]),
    ]
}

#[test]
fn unwrapped_range_aggregations() {
    let d = latencies();
    let q = |f: &str| {
        let text = format!(r#"{f}({{app="api"}} | logfmt | unwrap latency [10s])"#);
        let m = matrix(run(&text, &d, 10, 10, 1).unwrap());
        m.iter()
            .map(|s| {
                (
                    s.labels
                        .iter()
                        .find(|l| l.name == "pod")
                        .unwrap()
                        .value
                        .clone(),
                    s.points[0].1,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        q("sum_over_time"),
        vec![("a".into(), 7.0), ("b".into(), 10.0)]
    );
    assert_eq!(q("avg_over_time")[0].1, 7.0 / 3.0);
    assert_eq!(q("min_over_time")[0].1, 1.0);
    assert_eq!(q("max_over_time")[0].1, 4.0);
    assert_eq!(q("first_over_time")[0].1, 1.0);
    assert_eq!(q("last_over_time")[0].1, 2.0);
    let var = q("stdvar_over_time")[0].1;
    assert!((var - 14.0 / 9.0).abs() < 1e-12, "{var}");
    assert!((q("stddev_over_time")[0].1 - var.sqrt()).abs() < 1e-12);
    let m = matrix(
        run(
            r#"quantile_over_time(0.5, {app="api"} | logfmt | unwrap latency [10s]) by (app)"#,
            &d,
            10,
            10,
            1,
        )
        .unwrap(),
    );
    // Grouped by app: values 1, 2, 4, 10; the median interpolates 2 and 4.
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].labels, labels(&[("app", "api")]));
    assert_eq!(m[0].points[0].1, 3.0);
}

#[test]
fn vector_aggregations_and_topk() {
    let d = latencies();
    let base = r#"count_over_time({app="api"}[10s])"#;
    let one = |q: String| matrix(run(&q, &d, 10, 10, 1).unwrap());
    assert_eq!(one(format!("sum({base})"))[0].points[0].1, 4.0);
    assert_eq!(
        one(format!("sum by (app) ({base})"))[0].labels,
        labels(&[("app", "api")])
    );
    assert_eq!(one(format!("avg({base})"))[0].points[0].1, 2.0);
    assert_eq!(one(format!("max({base})"))[0].points[0].1, 3.0);
    assert_eq!(one(format!("min({base})"))[0].points[0].1, 1.0);
    assert_eq!(one(format!("count({base})"))[0].points[0].1, 2.0);
    assert_eq!(one(format!("stdvar({base})"))[0].points[0].1, 1.0);
    assert_eq!(one(format!("stddev({base})"))[0].points[0].1, 1.0);
    let without = one(format!("sum without (pod) ({base})"));
    assert_eq!(without[0].labels, labels(&[("app", "api")]));
    let top = one(format!("topk(1, {base})"));
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].labels, labels(&[("app", "api"), ("pod", "a")]));
    let bottom = one(format!("bottomk(1, {base})"));
    assert_eq!(bottom[0].labels, labels(&[("app", "api"), ("pod", "b")]));
    let sorted = one(format!("sort({base})"));
    assert_eq!(sorted[0].points[0].1, 1.0);
    let desc = one(format!("sort_desc({base})"));
    assert_eq!(desc[0].points[0].1, 3.0);
}

#[test]
fn sum_by_parsed_label_is_pushed_down_and_equal() {
    let d = vec![stream(
        &[("app", "x")],
        &[
            (1, r#"{"level":"info"}"#),
            (2, r#"{"level":"error"}"#),
            (3, r#"{"level":"info"}"#),
        ],
    )];
    let m = matrix(
        run(
            r#"sum by (level) (count_over_time({app="x"} | json [10s]))"#,
            &d,
            10,
            10,
            1,
        )
        .unwrap(),
    );
    let got: Vec<(String, f64)> = m
        .iter()
        .map(|s| (s.labels[0].value.clone(), s.points[0].1))
        .collect();
    assert_eq!(got, vec![("error".into(), 1.0), ("info".into(), 2.0)]);
}

#[test]
fn binary_operators() {
    let d = latencies();
    let scalar = |q: &str| match run(q, &d, 10, 10, 1).unwrap() {
        MetricOutput::Scalar(p) => p[0].1,
        other => panic!("{other:?}"),
    };
    assert_eq!(scalar("1 + 2 * 3"), 7.0);
    assert_eq!(scalar("2 ^ 3 ^ 2"), 512.0);
    assert_eq!(scalar("7 % 4"), 3.0);
    assert_eq!(scalar("1 > bool 2"), 0.0);
    let m = matrix(run("vector(1) + vector(1)", &d, 10, 10, 1).unwrap());
    assert_eq!(m[0].labels, vec![]);
    assert_eq!(m[0].points[0].1, 2.0);

    let c = r#"count_over_time({app="api"}[10s])"#;
    let m = matrix(run(&format!("{c} > 1"), &d, 10, 10, 1).unwrap());
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].points[0].1, 3.0, "filtering keeps the vector's value");
    let m = matrix(run(&format!("{c} > bool 1"), &d, 10, 10, 1).unwrap());
    assert_eq!(
        m.iter().map(|s| s.points[0].1).collect::<Vec<_>>(),
        vec![1.0, 0.0]
    );
    let m = matrix(run(&format!("{c} * 2"), &d, 10, 10, 1).unwrap());
    assert_eq!(m[0].points[0].1, 6.0);
    // One-to-one on all labels.
    let m = matrix(run(&format!("{c} / {c}"), &d, 10, 10, 1).unwrap());
    assert_eq!(m.len(), 2);
    assert!(m.iter().all(|s| s.points[0].1 == 1.0));
    // Many-to-one with group_left: each pod divided by the app total.
    let q = format!("{c} / on (app) group_left sum by (app) ({c})");
    let m = matrix(run(&q, &d, 10, 10, 1).unwrap());
    assert_eq!(
        m.iter().map(|s| s.points[0].1).collect::<Vec<_>>(),
        vec![0.75, 0.25]
    );
    assert_eq!(m[0].labels, labels(&[("app", "api"), ("pod", "a")]));
    // Without group_left, the many side is an error.
    let err = run(&format!("{c} / on (app) sum by (app) ({c})"), &d, 10, 10, 1).unwrap_err();
    assert!(err.to_string().contains("many-to-one"), "{err}");
    // `on` keeps only the matching labels.
    let q = format!("sum by (app) ({c}) - on (app) sum by (app) ({c})");
    let m = matrix(run(&q, &d, 10, 10, 1).unwrap());
    assert_eq!(m[0].labels, labels(&[("app", "api")]));
}

#[test]
fn set_operators() {
    let d = latencies();
    let c = r#"count_over_time({app="api"}[10s])"#;
    let count = |q: String| matrix(run(&q, &d, 10, 10, 1).unwrap()).len();
    assert_eq!(count(format!("{c} and {c} > 1")), 1);
    assert_eq!(count(format!("{c} unless {c} > 1")), 1);
    assert_eq!(count(format!("({c} > 1) or {c}")), 2);
    assert_eq!(count(format!("{c} and on () vector(1)")), 2);
}

#[test]
fn label_replace_and_absent() {
    let d = latencies();
    let q = r#"label_replace(count_over_time({app="api"}[10s]), "p", "pod-$1", "pod", "(.*)")"#;
    let m = matrix(run(q, &d, 10, 10, 1).unwrap());
    assert_eq!(
        m[0].labels,
        labels(&[("app", "api"), ("p", "pod-a"), ("pod", "a")])
    );
    let m = matrix(run(r#"absent_over_time({app="api"}[10s])"#, &d, 10, 30, 10).unwrap());
    // Lines at 1-3s: present at 10, absent at 20 and 30.
    assert_eq!(m[0].labels, labels(&[("app", "api")]));
    assert_eq!(points(&m[0]), vec![(20, 1.0), (30, 1.0)]);
}

#[test]
fn pipeline_errors_fail_unless_filtered() {
    let d = vec![stream(
        &[("app", "x")],
        &[(1, "not json"), (2, r#"{"a":"b"}"#)],
    )];
    let err = run(r#"count_over_time({app="x"} | json [10s])"#, &d, 10, 10, 1).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("pipeline error: 'JSONParserErr'"), "{msg}");
    let m = matrix(
        run(
            r#"count_over_time({app="x"} | json | __error__="" [10s])"#,
            &d,
            10,
            10,
            1,
        )
        .unwrap(),
    );
    assert_eq!(points(&m[0]), vec![(10, 1.0)]);
    // Pushed down into a sum, the error still fails the query.
    let err = run(
        r#"sum(count_over_time({app="x"} | json [10s]))"#,
        &d,
        10,
        10,
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("JSONParserErr"));
}

#[test]
fn series_limit() {
    let d: Streams = (0..5)
        .map(|i| stream(&[("app", "x"), ("i", &i.to_string())], &[(1, "l")]))
        .collect();
    let q = r#"count_over_time({app="x"}[10s])"#;
    let err = run_limited(q, &d, 10, 10, 1, 3).unwrap_err();
    assert!(err.to_string().contains("maximum of series (3)"), "{err}");
    // Aggregated below the limit, the same data is fine.
    let m = matrix(run_limited(&format!("sum({q})"), &d, 10, 10, 1, 3).unwrap());
    assert_eq!(m[0].points[0].1, 5.0);
}

#[test]
fn the_series_limit_inside_an_aggregation_is_named_as_such() {
    let d: Streams = (0..5)
        .map(|i| stream(&[("app", "x"), ("i", &i.to_string())], &[(1, "l")]))
        .collect();
    // The result would be one series; what `max` aggregates is five, over
    // an inner bound of three. The message must not pass that bound off
    // as the result limit (500).
    let q = r#"max(count_over_time({app="x"}[10s]))"#;
    let err = run_with_limits(q, &d, (10, 10, 1), 500, 3)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("maximum of series (3) inside the query"),
        "{err}"
    );
    assert!(err.contains("max_query_series"), "{err}");
    assert!(!err.contains("for a single query"), "{err}");
    let q = r#"count_over_time({app="x"}[10s]) * 2"#;
    let err = run_with_limits(q, &d, (10, 10, 1), 500, 3)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("maximum of series (3) inside the query"),
        "{err}"
    );
    // The result limit keeps Loki's wording and names its own number.
    let err = run_with_limits(r#"count_over_time({app="x"}[10s])"#, &d, (10, 10, 1), 2, 10)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("maximum of series (2) reached for a single query"),
        "{err}"
    );
}

#[test]
fn series_limit_is_per_step() {
    // Five series inside the aggregation over the range, but only one at
    // any step (as paths with request ids come and go): the limit on what
    // an aggregation holds counts one step's series, as Loki evaluates.
    let d: Streams = (0..5)
        .map(|i| stream(&[("app", "x"), ("i", &i.to_string())], &[(10 * i + 1, "l")]))
        .collect();
    let q = r#"max(count_over_time({app="x"}[5s]))"#;
    let m = matrix(run_with_limits(q, &d, (0, 50, 5), 500, 3).unwrap());
    assert_eq!(m[0].points.len(), 5);
    // Wider windows put three series in one step: over a limit of two.
    let q = r#"max(count_over_time({app="x"}[25s]))"#;
    let err = run_with_limits(q, &d, (0, 50, 5), 500, 2).unwrap_err();
    assert!(err.to_string().contains("maximum of series (2)"), "{err}");
    // More than four times the limit over the range: refused, to bound
    // memory, with its own message.
    let d: Streams = (0..20)
        .map(|i| stream(&[("app", "x"), ("i", &i.to_string())], &[(2 * i + 1, "l")]))
        .collect();
    let q = r#"max(count_over_time({app="x"}[1s]))"#;
    let err = run_with_limits(q, &d, (0, 50, 1), 500, 3).unwrap_err();
    assert!(
        err.to_string().contains("held over the query range"),
        "{err}"
    );
}

#[test]
fn rate_counter_extrapolates_like_prometheus() {
    // A counter rising by 1 per second, sampled every second across the
    // whole window: the rate is 1/s.
    let lines: Vec<(i64, String)> = (1..=10).map(|t| (t, format!("c={t}"))).collect();
    let refs: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
    let d = vec![stream(&[("app", "x")], &refs)];
    let m = matrix(
        run(
            r#"rate_counter({app="x"} | logfmt | unwrap c [10s])"#,
            &d,
            10,
            10,
            1,
        )
        .unwrap(),
    );
    let v = m[0].points[0].1;
    assert!((v - 1.0).abs() < 1e-9, "{v}");
}

#[test]
fn series_keys_are_unambiguous() {
    // Label values may hold any text, separators included: a series keyed
    // by joined names and values would merge these two.
    let d = vec![
        stream(&[("x", "a\u{ff}y\u{ff}b")], &[(1, "l")]),
        stream(&[("x", "a"), ("y", "b")], &[(1, "l"), (2, "l")]),
    ];
    let m = matrix(run(r#"count_over_time({x=~".+"}[5s])"#, &d, 5, 5, 1).unwrap());
    let got: Vec<(Vec<Label>, f64)> = m.into_iter().map(|s| (s.labels, s.points[0].1)).collect();
    assert_eq!(
        got,
        vec![
            (
                labels(&[("x", "a")])
                    .into_iter()
                    .chain(labels(&[("y", "b")]))
                    .collect(),
                2.0
            ),
            (labels(&[("x", "a\u{ff}y\u{ff}b")]), 1.0),
        ]
    );
}

#[test]
fn topk_keeps_k_series_among_ties() {
    // A hundred series with the same count: topk(2) keeps exactly two (the
    // candidates of a step are pruned as they pile up; ties must not let
    // a third through).
    let d: Streams = (0..100)
        .map(|i| stream(&[("app", "x"), ("i", &i.to_string())], &[(1, "l")]))
        .collect();
    let m = matrix(run(r#"topk(2, count_over_time({app="x"}[5s]))"#, &d, 5, 5, 1).unwrap());
    assert_eq!(m.len(), 2, "{m:?}");
}
