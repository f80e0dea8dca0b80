//! Input from outside must never panic the pipeline: arbitrary lines
//! through every parser, arbitrary templates and patterns at compile time.

use proptest::prelude::*;
use skald_logql::{Expr, parse_expr};
use skald_model::Label;
use skald_pipeline::Pipeline;
use skald_pipeline::pattern::Pattern;
use skald_pipeline::template::Template;

fn pipeline(q: &str) -> Pipeline {
    match parse_expr(q).unwrap() {
        Expr::Log(l) => Pipeline::new(&l.pipeline).unwrap(),
        _ => unreachable!(),
    }
}

proptest! {
    #[test]
    fn parsers_never_panic(line in "\\PC{0,64}|[{}\\[\\]\":,a-z0-9 =\\\\]{0,64}") {
        let stream = vec![Label::new("app", "x")];
        for q in [
            r#"{app="x"} | json"#,
            r#"{app="x"} | json a="b[0].c", d="[\"e\"]""#,
            r#"{app="x"} | logfmt --strict"#,
            r#"{app="x"} | logfmt --keep-empty"#,
            r#"{app="x"} | unpack | line_format "{{.a}} {{__line__}}""#,
            r#"{app="x"} | pattern "<a> <b>=<_>""#,
            r#"{app="x"} |> "<_>a<_>" or "x<_>" | decolorize"#,
            r#"{app="x"} |= ip("10.0.0.0/8")"#,
        ] {
            let p = pipeline(q);
            let mut proc = p.processor();
            let _ = proc.process(0, &line, &stream, &[]);
        }
    }

    #[test]
    fn templates_never_panic(src in "[{}. |a-z$()\"0-9:=-]{0,40}") {
        if let Ok(t) = Template::parse(&src) {
            struct D;
            impl skald_pipeline::template::Data for D {
                fn label(&self, _: &str) -> Option<&str> { Some("1") }
                fn labels(&self) -> Vec<(String, String)> { vec![("a".into(), "1".into())] }
                fn line(&self) -> &str { "line" }
                fn timestamp(&self) -> i64 { 0 }
            }
            let _ = t.execute(&D, &mut String::new());
        }
    }

    #[test]
    fn patterns_never_panic(p in "[<>_a-z ]{0,20}", line in "\\PC{0,40}") {
        if let Ok(p) = Pattern::parse(&p) {
            let _ = p.is_match(&line);
            let _ = p.extract(&line, |_, _| {});
        }
    }
}
