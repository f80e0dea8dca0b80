//! Field columns skip segment chunks that no line of can pass a label
//! filter, and never change an answer: every query here runs with columns
//! off and on, and must give the same lines and numbers; where the skip
//! is sound it must skip, and where it is not (a stream label or metadata
//! of the field's name, a stage that changes what the filter sees, a
//! value that does not convert) the answers must still agree.
//!
//! One test function: the switch is process-wide.

use skald_logql::{Expr, parse_expr};
use skald_model::{Entry, Label, LabelSet, TenantId, Timestamp};
use skald_pipeline::Pipeline;
use skald_query::{
    Direction, LogQuery, MetricLimits, MetricOutput, MetricQuery, QueryStats, run_log_query,
    run_metric_query, set_field_columns,
};
use skald_store::{Store, StoreConfig, StreamBatch};

const LINES: i64 = 3_000;
const SECOND: i64 = 1_000_000_000;

fn worker_line(i: i64) -> String {
    let level = if (1000..1020).contains(&i) {
        "error"
    } else {
        "info"
    };
    let duration = if i == 2500 { 950 } else { i % 700 };
    let status = match i {
        1500 => "abc".to_string(),
        2000..2010 => "500".to_string(),
        _ => "200".to_string(),
    };
    format!("level={level} task=t{i} duration={duration}ms status={status} msg=\"task done\"")
}

fn api_line(i: i64) -> String {
    let level = match i {
        2200 => r#""error""#,
        // null gives the label an empty value.
        i if i % 97 == 0 => "null",
        _ => r#""info""#,
    };
    let code = if i == 2200 { 503 } else { 200 };
    format!(
        r#"{{"level":{level},"req":{{"status":{code},"path":"/api/{}"}},"took":"{}ms"}}"#,
        i % 40,
        i % 90
    )
}

fn store(dir: &std::path::Path) -> (Store, TenantId, i64) {
    let store = Store::open(StoreConfig {
        data_dir: dir.to_path_buf(),
        // Many small chunks, so that skipping shows.
        block_bytes: 4096,
        compact_fan_in: 0,
        ..StoreConfig::default()
    })
    .unwrap();
    let tenant = TenantId::new("t").unwrap();
    let t0 = Timestamp::now().0 - 3_600 * SECOND;
    let at = |i: i64| Timestamp(t0 + i * SECOND / 2);
    let stream = |labels: &str, line: &dyn Fn(i64) -> String| StreamBatch {
        labels: LabelSet::parse(labels).unwrap(),
        entries: (0..LINES).map(|i| Entry::new(at(i), line(i))).collect(),
    };
    let mut with_metadata = stream(r#"{job="meta"}"#, &|i| format!("task=t{i} duration=1ms"));
    // Metadata named like the field shows through on lines without it.
    with_metadata.entries[1700].metadata = vec![Label::new("level", "error")];
    store
        .push(
            &tenant,
            vec![
                stream(r#"{job="worker"}"#, &worker_line),
                stream(r#"{job="api"}"#, &api_line),
                // The stream has `level`: the field becomes `level_extracted`.
                stream(r#"{job="clash", level="x"}"#, &worker_line),
                // A numeric filter on `status` converts the stream's value,
                // which fails on every line: later numeric filters pass.
                stream(r#"{job="sclash", status="abc"}"#, &worker_line),
                with_metadata,
            ],
        )
        .unwrap();
    store.flush().unwrap();
    (store, tenant, t0)
}

fn lines(store: &Store, tenant: &TenantId, t0: i64, query: &str) -> (Vec<String>, QueryStats) {
    let Expr::Log(log) = parse_expr(query).unwrap() else {
        panic!("not a log query: {query}")
    };
    let pipeline = Pipeline::new(&log.pipeline).unwrap();
    let r = run_log_query(
        store,
        &LogQuery {
            tenant,
            selector: &log.selector,
            pipeline: &pipeline,
            start: Timestamp(t0),
            end: Timestamp(t0 + LINES * SECOND),
            limit: 5_000,
            direction: Direction::Forward,
            interval: 0,
        },
    )
    .unwrap();
    let got = r
        .streams
        .iter()
        .flat_map(|s| {
            s.entries
                .iter()
                .map(move |e| format!("{:?} {} {}", s.labels, e.ts.0, e.line))
        })
        .collect();
    (got, r.stats)
}

fn metric(store: &Store, tenant: &TenantId, t0: i64, query: &str) -> (String, QueryStats) {
    let expr = parse_expr(query).unwrap();
    let out = run_metric_query(
        store,
        &MetricQuery {
            tenant,
            expr: &expr,
            start: Timestamp(t0 + 300 * SECOND),
            end: Timestamp(t0 + LINES * SECOND),
            step: 300 * SECOND,
            limits: MetricLimits::default(),
        },
    );
    // An error (a conversion error reaching a series) must be the same
    // both ways too.
    let out = match out {
        Ok(out) => out,
        Err(e) => return (format!("error: {e}"), QueryStats::default()),
    };
    let shown = match &out.output {
        MetricOutput::Matrix(series) => format!("{series:?}"),
        MetricOutput::Scalar(points) => format!("{points:?}"),
    };
    (shown, out.stats)
}

/// Runs `query` both ways; returns (answer, chunks skipped without
/// columns, with them).
fn both(store: &Store, tenant: &TenantId, t0: i64, query: &str) -> (String, u64, u64) {
    let run = |on: bool| {
        set_field_columns(on);
        if query.starts_with('{') {
            let (l, s) = lines(store, tenant, t0, query);
            (l.join("\n"), s.chunks_skipped)
        } else {
            let (m, s) = metric(store, tenant, t0, query);
            (m, s.chunks_skipped)
        }
    };
    let (off, skipped_off) = run(false);
    let (on, skipped_on) = run(true);
    assert!(
        on == off,
        "{query}: columns changed the answer ({} lines with them, {} without)",
        on.lines().count(),
        off.lines().count()
    );
    (on, skipped_off, skipped_on)
}

#[test]
fn columns_skip_chunks_only_where_sound_and_never_change_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (store, tenant, t0) = store(dir.path());

    // Sound: the columns rule out most chunks.
    let skips = [
        (r#"{job="worker"} | logfmt | level="error""#, 20),
        (
            r#"{job="worker"} | logfmt | level="error" | duration > 100ms"#,
            20,
        ),
        (r#"{job="worker"} | logfmt | duration > 900ms"#, 1),
        (r#"{job="worker"} | logfmt | status >= 500"#, 11),
        (r#"{job="worker"} | logfmt | level=~"err.*|fatal""#, 20),
        (r#"{job="worker"} |= "task" | logfmt | status="500""#, 10),
        (r#"{job="worker"} | logfmt | missing="x""#, 0),
        (r#"{job="api"} | json | req_status=503"#, 1),
        (r#"{job="api"} | json | level="error" or level="fatal""#, 1),
        (r#"{job="api"} | json | took > 89ms"#, 0),
        (
            r#"sum by (level) (count_over_time({job="worker"} | logfmt | level!="info" [5m]))"#,
            20,
        ),
        // The value must be in the line (no escapes, no metadata in the
        // chunk): skipped by the trigram filters, whatever the parser.
        (r#"{job="clash"} | logfmt | level_extracted="error""#, 20),
        (r#"{job="worker"} | logfmt level | level="error""#, 20),
        (r#"{job="worker"} | json | level="error""#, 0),
        // Metadata named `level` shows through where the line lacks it:
        // its chunk is read.
        (r#"{job="meta"} | logfmt | level="error""#, 1),
        // "abc" does not convert: that line passes the first filter with
        // an error, and then every numeric filter; its chunk is read.
        (
            r#"{job="worker"} | logfmt | status > 300 | duration > 900ms"#,
            1,
        ),
    ];
    for (query, expect_lines) in skips {
        let (answer, off, on) = both(&store, &tenant, t0, query);
        assert!(
            on > off,
            "{query}: columns skipped {on} chunks, the filters alone {off}"
        );
        if query.starts_with('{') {
            let n = answer.lines().count();
            assert_eq!(n, expect_lines, "{query}");
        }
    }

    // Unsound or unhelpful: nothing more may be skipped, and the answers
    // (checked equal by `both`) must hold the lines that pass.
    let no_skips = [
        // `level` is a stream label: the filter sees "x" on every line.
        (r#"{job="clash"} | logfmt | level="x""#, LINES as usize),
        // Stages that change what the filter sees.
        (
            r#"{job="worker"} | logfmt | label_format level="error" | level="error""#,
            LINES as usize,
        ),
        (
            r#"{job="worker"} | logfmt | line_format "level=error" | logfmt | level="error""#,
            LINES as usize,
        ),
        (
            r#"{job="worker"} | line_format "level=error {{.task}}" | logfmt | level="error""#,
            LINES as usize,
        ),
        (
            r#"{job="worker"} | logfmt | drop level | level="""#,
            LINES as usize,
        ),
        (
            r#"{job="worker"} | logfmt | level!="error""#,
            LINES as usize - 20,
        ),
        (
            r#"{job="sclash"} | logfmt | status > 300 | duration > 900ms"#,
            LINES as usize,
        ),
        (
            r#"{job="clash"} | logfmt | level_extracted > 1 | duration > 900ms"#,
            LINES as usize,
        ),
    ];
    for (query, expect_lines) in no_skips {
        let (answer, off, on) = both(&store, &tenant, t0, query);
        assert_eq!(on, off, "{query}: columns skipped chunks unsoundly");
        assert_eq!(answer.lines().count(), expect_lines, "{query}");
    }

    // Metric queries over every line agree too.
    for query in [
        r#"sum by (level) (count_over_time({job="worker"} | logfmt [5m]))"#,
        r#"sum by (level) (count_over_time({job="api"} | json [5m]))"#,
        r#"sum by (job, level, req_status) (rate({job="api"} | json [5m]))"#,
        r#"sum by (req_path) (count_over_time({job="api"} | json [5m]))"#,
        r#"sum by (level, nothing) (count_over_time({job=~"worker|clash|meta"} | logfmt [5m]))"#,
        r#"sum by (level_extracted) (count_over_time({job="clash"} | logfmt [5m]))"#,
        r#"sum by (task) (count_over_time({job="worker"} | logfmt [5m]))"#,
        r#"sum by (status) (count_over_time({job="worker"} | logfmt | status > 250 [5m]))"#,
        r#"sum(count_over_time({job="worker"} | logfmt | __error__!="" [5m]))"#,
    ] {
        both(&store, &tenant, t0, query);
    }
    store.close().unwrap();
}

fn arb_line() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let key = prop_oneof![
        Just("level".to_string()),
        Just("job".to_string()),
        Just("a.b".to_string()),
        Just("1x".to_string()),
        Just(" sp ".to_string()),
        Just("__error__".to_string()),
        "[a-z_]{1,3}",
    ];
    let value = prop_oneof![
        Just("null".to_string()),
        Just("\"\"".to_string()),
        Just("{\"x\":1,\"y\":{\"z\":\"deep\"}}".to_string()),
        Just("[1,2]".to_string()),
        Just("\"a\\\"b\\u0041\"".to_string()),
        "-?[0-9]{1,3}(\\.[0-9])?",
        "\"[a-z =]{0,5}\"",
        "[a-z=\"]{0,4}",
    ];
    let pairs = proptest::collection::vec((key, value), 0..6);
    (pairs, any::<bool>()).prop_map(|(pairs, json)| {
        if json {
            let members: Vec<String> = pairs.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
            format!("{{{}}}", members.join(","))
        } else {
            let words: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={v}", k.trim()))
                .collect();
            words.join(" ")
        }
    })
}

proptest::proptest! {
    /// On any line the columns call JSON (or logfmt), the parser sets
    /// exactly the fields of the columns, with their values, and no error.
    #[test]
    fn columns_name_what_the_parsers_extract(line in arb_line()) {
        use skald_chunk::columns::{ColumnBuilder, ColumnDetail, FieldFormat, decode_column_set};
        let mut b = ColumnBuilder::new();
        b.add_line(&line, false);
        let mut bytes = Vec::new();
        b.finish(3, &mut bytes);
        let cols = decode_column_set(&bytes, ColumnDetail::Codes).unwrap();
        let stream = [Label::new("job", "x")];
        for (format, stage) in [(FieldFormat::Json, "json"), (FieldFormat::Logfmt, "logfmt")] {
            if !cols.covers_all(format) {
                continue;
            }
            let Expr::Log(log) = parse_expr(&format!("{{job=\"x\"}} | {stage}")).unwrap() else {
                unreachable!()
            };
            let pipeline = Pipeline::new(&log.pipeline).unwrap();
            let mut processor = pipeline.processor();
            let out = processor.process(0, &line, &stream, &[]).unwrap();
            let got: Vec<(String, String)> = out
                .labels
                .iter()
                .filter(|l| l.name != "job")
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            let mut want: Vec<(String, String)> = cols
                .columns
                .iter()
                .filter(|c| c.format == format)
                .map(|c| {
                    let value = c.dictionary.as_ref().unwrap().values[0].0.clone();
                    // A field named like a stream label is renamed.
                    let name = if c.name == "job" { "job_extracted".to_string() } else { c.name.clone() };
                    (name, value)
                })
                .collect();
            want.sort();
            proptest::prop_assert!(cols.keys_complete(format));
            proptest::prop_assert_eq!(got, want, "{}: {}", stage, line);
        }
    }
}
