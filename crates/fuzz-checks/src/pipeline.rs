//! LogQL and the log pipeline: the parser, templates, `pattern`
//! expressions, and log lines through the `json` and `logfmt` stages.

use skald_logql::{Expr, parse_expr};
use skald_model::Label;
use skald_pipeline::Pipeline;
use skald_pipeline::pattern::Pattern;

const TS: i64 = 1_704_067_200_000_000_000;

/// `text` as a LogQL double-quoted string.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds the pipeline of `stages` and runs it over `lines`.
fn run_stages(stages: &[skald_logql::Stage], lines: &[&str]) {
    let Ok(pipeline) = Pipeline::new(stages) else {
        return;
    };
    let stream = vec![Label::new("app", "fuzz")];
    let metadata = vec![Label::new("trace_id", "abc")];
    let mut proc = pipeline.processor();
    for line in lines {
        let _ = proc.process(TS, line, &stream, &metadata);
    }
}

/// Parses `{app="fuzz"} <stages>` and runs it over `lines`; a query that
/// does not parse or build is skipped (the parser has its own check).
fn run(stages: &str, lines: &[&str]) {
    if let Ok(Expr::Log(log)) = parse_expr(&format!("{{app=\"fuzz\"}} {stages}")) {
        run_stages(&log.pipeline, lines);
    }
}

/// Arbitrary text to the LogQL parser: no panic or hang; a query that
/// parses prints to canonical LogQL that parses again and prints the same
/// (parse -> print -> parse is the identity); the pipeline of a log query
/// is built and run over a few lines.
pub fn logql_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = parse_expr(text) else {
        return;
    };
    let printed = expr.to_string();
    let again = parse_expr(&printed)
        .unwrap_or_else(|e| panic!("printed query does not parse: {printed:?}: {e}"));
    assert_eq!(again.to_string(), printed, "printing is not stable");

    let stages = match &expr {
        Expr::Log(log) => &log.pipeline,
        Expr::RangeAggregation(agg) => &agg.range.log.pipeline,
        _ => return,
    };
    run_stages(
        stages,
        &[
            r#"{"level":"info","a":{"b":[1,2]},"msg":"x y"}"#,
            "level=error msg=\"quoted value\" took=12ms size=3KB",
            "10.0.0.1 - - [01/Jan/2024] \"GET / HTTP/1.1\" 200 512",
            text,
        ],
    );
}

/// Arbitrary `line_format` / `label_format` templates over a parsed
/// logfmt and JSON line: no panic, no hang.
pub fn template(data: &[u8]) {
    let Ok(template) = std::str::from_utf8(data) else {
        return;
    };
    let lines = [
        "level=error msg=\"quoted value\" took=12ms size=3KB n=-4.5",
        r#"{"level":"info","a":{"b":[1,2]},"msg":"x y"}"#,
    ];
    let quoted = quote(template);
    run(&format!("| logfmt | line_format {quoted}"), &lines);
    run(&format!("| json | label_format out={quoted}"), &lines);
}

/// An arbitrary `pattern` expression matched against an arbitrary line
/// (the input split at its first NUL byte): no panic, and a line the
/// strict filter (`|>`, `is_match`) takes, the lenient parser (`extract`)
/// takes too, but for the empty line, which the parser never takes and
/// the filter takes for the empty pattern (both as in Loki). The converse
/// need not hold: the parser, as Loki's, accepts a line whose later
/// literals are missing and leaves their captures unset.
pub fn pattern(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (pattern, line) = text.split_once('\0').unwrap_or((&text, "GET /a 200 12ms"));
    let Ok(p) = Pattern::parse(pattern) else {
        return;
    };
    let mut found = 0usize;
    let matched = p.extract(line, |_, _| found += 1);
    assert!(
        matched || line.is_empty() || !p.is_match(line),
        "the |> filter takes a line the pattern parser refuses"
    );
    let _ = p.names().count();
}

/// Arbitrary lines through `| json` (whole line and with extraction
/// paths) and a label filter: no panic, no hang.
pub fn json_parse(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    run("| json", &[&line]);
    run(
        r#"| json a="a", b="b.c[0]", d="[1].x" | a != "" or b > 1"#,
        &[&line],
    );
}

/// Arbitrary lines through `| logfmt` (lenient and `--strict`) and a
/// duration filter: no panic, no hang.
pub fn logfmt_parse(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    run("| logfmt", &[&line]);
    run("| logfmt --strict --keep-empty | duration > 1s", &[&line]);
}
