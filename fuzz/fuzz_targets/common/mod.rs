//! Shared by the pipeline targets: runs a LogQL log pipeline over lines.

use skald_logql::{Expr, parse_expr};
use skald_model::Label;
use skald_pipeline::Pipeline;

/// `text` as a LogQL double-quoted string.
#[allow(dead_code)] // Each target includes this module; only some quote.
pub fn quote(text: &str) -> String {
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

/// Parses `{app="fuzz"} <stages>` and runs it over `lines`; a query that
/// does not parse or build is skipped (the parser has its own target).
pub fn run(stages: &str, lines: &[&str]) {
    let Ok(Expr::Log(log)) = parse_expr(&format!("{{app=\"fuzz\"}} {stages}")) else {
        return;
    };
    let Ok(pipeline) = Pipeline::new(&log.pipeline) else {
        return;
    };
    let stream = vec![Label::new("app", "fuzz")];
    let metadata = vec![Label::new("trace_id", "abc")];
    let mut proc = pipeline.processor();
    for line in lines {
        let _ = proc.process(1_704_067_200_000_000_000, line, &stream, &metadata);
    }
}
