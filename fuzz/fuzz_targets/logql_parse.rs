//! Feeds arbitrary text to the LogQL parser. Nothing may panic or hang; a
//! query that parses must print to canonical LogQL that parses again and
//! prints the same (parse -> print -> parse is the identity); a log
//! pipeline that parses is built and run over one line.
//!
//! `logql.dict` holds every keyword, operator, function and template
//! function of the grammar, so the fuzzer reaches all of it quickly:
//! `cargo +nightly fuzz run logql_parse -- -dict=fuzz/logql.dict`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skald_logql::{Expr, parse_expr};
use skald_model::Label;
use skald_pipeline::Pipeline;

fuzz_target!(|data: &[u8]| {
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
    if let Ok(pipeline) = Pipeline::new(stages) {
        let stream = vec![Label::new("app", "fuzz")];
        let metadata = vec![Label::new("trace_id", "abc")];
        let mut proc = pipeline.processor();
        for line in [
            r#"{"level":"info","a":{"b":[1,2]},"msg":"x y"}"#,
            "level=error msg=\"quoted value\" took=12ms size=3KB",
            "10.0.0.1 - - [01/Jan/2024] \"GET / HTTP/1.1\" 200 512",
            text,
        ] {
            let _ = proc.process(1_704_067_200_000_000_000, line, &stream, &metadata);
        }
    }
});
