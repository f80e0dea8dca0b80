//! Runs the end-to-end cases in `cases.txt` (see the file for the format)
//! through `skald-logql`'s parser and the pipeline.

use skald_logql::{Expr, parse_expr};
use skald_model::{Label, LabelSet};
use skald_pipeline::{Pipeline, Unwrapper};

const DEFAULT_TS: i64 = 1_612_325_106_789_000_000;

fn unescape(s: &str) -> String {
    s.replace("\\x1b", "\x1b")
        .replace("\\n", "\n")
        .replace("\\t", "\t")
}

fn labels(text: &str) -> Vec<Label> {
    if text == "{}" {
        return Vec::new();
    }
    LabelSet::parse(text)
        .unwrap_or_else(|e| panic!("bad labels {text}: {e}"))
        .into_labels()
}

fn show(labels: &[Label]) -> String {
    if labels.is_empty() {
        return "{}".into();
    }
    LabelSet::from_trusted(labels.to_vec()).to_string()
}

#[test]
fn cases() {
    let text = include_str!("cases.txt");
    let mut count = 0;
    for case in text.split("\n---\n") {
        let mut fields = std::collections::HashMap::new();
        for line in case.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (k, v) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("bad line {line:?}"));
            fields.insert(k, v);
        }
        let query = fields["query"];
        let stream = labels(fields["stream"]);
        let metadata = fields
            .get("metadata")
            .map(|m| labels(m))
            .unwrap_or_default();
        let ts = fields.get("ts").map_or(DEFAULT_TS, |t| t.parse().unwrap());
        let line = unescape(fields["line"]);
        let expr = parse_expr(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        let (stages, unwrap) = match &expr {
            Expr::Log(log) => (log.pipeline.clone(), None),
            Expr::RangeAggregation(agg) => {
                (agg.range.log.pipeline.clone(), agg.range.unwrap.clone())
            }
            other => panic!("unexpected query {other:?}"),
        };
        let pipeline = Pipeline::new(&stages).unwrap_or_else(|e| panic!("{query}: {e}"));
        let mut proc = pipeline.processor();
        // Run twice so reused buffers are exercised.
        for _ in 0..2 {
            let (got_line, got_labels, got_value) = match &unwrap {
                None => match proc.process(ts, &line, &stream, &metadata) {
                    None => (None, String::new(), None),
                    Some(p) => (Some(p.line.to_string()), show(p.labels), None),
                },
                Some(u) => {
                    let unwrapper = Unwrapper::new(u).unwrap();
                    match proc.process_sample(ts, &line, &stream, &metadata, &unwrapper) {
                        None => (None, String::new(), None),
                        Some(s) => (None, show(s.labels), Some(s.value)),
                    }
                }
            };
            match fields.get("out") {
                Some(&"filtered") => {
                    assert!(
                        got_line.is_none() && got_value.is_none(),
                        "{query}: expected the line to be filtered out, got {got_line:?} {got_labels}"
                    );
                    continue;
                }
                Some(out) => {
                    assert_eq!(got_line.as_deref(), Some(unescape(out).as_str()), "{query}")
                }
                None => {}
            }
            if let Some(v) = fields.get("value") {
                assert_eq!(got_value, Some(v.parse::<f64>().unwrap()), "{query}");
            }
            assert_eq!(got_labels, fields["labels"], "{query}");
        }
        count += 1;
    }
    assert!(count >= 30, "only {count} cases ran");
}

#[test]
fn introspection() {
    let stages = |q: &str| match parse_expr(q).unwrap() {
        Expr::Log(l) => l.pipeline,
        _ => unreachable!(),
    };
    let p = Pipeline::new(&stages(r#"{a="b"} |= "x" |~ "y" != "z""#)).unwrap();
    assert!(p.is_line_filters_only());
    assert!(!p.can_change_labels());
    assert!(!p.can_change_line());
    assert_eq!(p.leading_filters().len(), 3);
    // A regex of a plain literal requires it as `|=` does.
    assert_eq!(
        p.required(),
        &[vec!["x".to_string()], vec!["y".to_string()]]
    );

    let p = Pipeline::new(&stages(
        r#"{a="b"} |= "x" | json |= "y" | line_format "{{.a}}" |= "z""#,
    ))
    .unwrap();
    assert!(p.can_change_labels());
    assert!(p.can_change_line());
    assert_eq!(p.leading_filters().len(), 1);
    assert_eq!(
        p.required(),
        &[vec!["x".to_string()], vec!["y".to_string()]]
    );

    let p = Pipeline::new(&stages(r#"{a="b"} | decolorize"#)).unwrap();
    assert!(!p.can_change_labels());
    assert!(p.can_change_line());
}

#[test]
fn unchanged_lines_and_labels_are_borrowed() {
    let Expr::Log(log) = parse_expr(r#"{a="b"} |= "x""#).unwrap() else {
        unreachable!()
    };
    let pipeline = Pipeline::new(&log.pipeline).unwrap();
    let mut proc = pipeline.processor();
    let stream = labels(r#"{a="b"}"#);
    let line = String::from("has x");
    let p = proc.process(0, &line, &stream, &[]).unwrap();
    assert!(std::ptr::eq(p.line, line.as_str()));
    assert!(std::ptr::eq(p.labels, stream.as_slice()));
    assert!(!p.line_changed && !p.labels_changed);
    assert_eq!(p.label_set().unwrap().to_string(), r#"{a="b"}"#);
}

#[test]
fn compile_errors_are_clear() {
    let Expr::Log(log) = parse_expr(r#"{a="b"} | line_format "{{ nope .x }}""#).unwrap() else {
        unreachable!()
    };
    let err = Pipeline::new(&log.pipeline).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid line_format stage: invalid line_format: template: function \"nope\" not defined"
    );
}

#[test]
fn pipelines_are_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Pipeline>();
    assert_send_sync::<Unwrapper>();
}
