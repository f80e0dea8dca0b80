//! Property tests: printing then parsing gives the same tree, and no input
//! makes the parser panic.

use proptest::prelude::*;
use skald_logql::{Expr, LineFilter, LineFilterOp, LogExpr, Stage, parse_expr, translate_regex};
use skald_model::{MatchOp, Matcher};

/// Go regexes from fragments, translated the way the parser does.
fn regex_value() -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(vec![
        "a",
        ".",
        "\\d",
        "\\W",
        "\\s",
        "\\b",
        "[a-z]",
        "[^\\d_]",
        "(?i)x",
        "(b|c)",
        "\\Q.*\\E",
        "x{2,3}",
        "y{,",
        "é",
        "\\.",
        "[[:alpha:]]",
        "\"",
        "\\\\",
        "$",
        "^",
    ]);
    prop::collection::vec(fragment, 1..5)
        .prop_map(|parts| translate_regex(&parts.concat()).expect("fragments form valid regexes"))
}

fn plain_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,6}",
        "\\PC{0,8}",
        prop::collection::vec(any::<char>(), 0..6).prop_map(|c| c.into_iter().collect()),
    ]
}

fn matcher() -> impl Strategy<Value = Matcher> {
    let name = "[a-zA-Z_][a-zA-Z0-9_]{0,6}";
    prop_oneof![
        (name, plain_value(), any::<bool>()).prop_map(|(n, v, eq)| {
            let op = if eq { MatchOp::Eq } else { MatchOp::Neq };
            Matcher::new(n, op, v).unwrap()
        }),
        (name, regex_value(), any::<bool>()).prop_map(|(n, v, re)| {
            let op = if re { MatchOp::Re } else { MatchOp::Nre };
            Matcher::new(n, op, v).unwrap()
        }),
    ]
}

fn line_filter() -> impl Strategy<Value = LineFilter> {
    prop_oneof![
        (
            prop::sample::select(vec![LineFilterOp::Contains, LineFilterOp::NotContains]),
            prop::collection::vec(plain_value(), 1..4)
        ),
        (
            prop::sample::select(vec![LineFilterOp::Regex, LineFilterOp::NotRegex]),
            prop::collection::vec(regex_value(), 1..4)
        ),
    ]
    .prop_map(|(op, values)| LineFilter { op, values })
}

fn log_expr() -> impl Strategy<Value = LogExpr> {
    (
        "[a-z]{1,4}",
        "[a-z]{1,4}",
        prop::collection::vec(matcher(), 0..4),
        prop::collection::vec(line_filter().prop_map(Stage::LineFilter), 0..5),
    )
        .prop_map(|(name, value, mut rest, pipeline)| {
            // One matcher that does not match the empty string.
            rest.insert(0, Matcher::new(name, MatchOp::Eq, value).unwrap());
            LogExpr {
                selector: rest,
                pipeline,
            }
        })
}

/// Text made of LogQL-ish fragments, to reach deeper into the parser than
/// random characters do.
fn query_soup() -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(vec![
        "{", "}", "(", ")", "[", "]", ",", "=", "!=", "=~", "!~", "|=", "|~", "|>", "!>", "|",
        "app", "or", "and", "by", "\"x\"", "`y`", "\"", "`", "5m", "1.5", "#", "\n", " ", "\\",
        "sum", "rate", "json", "logfmt", "unwrap", "offset", "==", ">", "+", "-", "--strict",
    ]);
    prop::collection::vec(fragment, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn print_then_parse_is_identity(log in log_expr()) {
        let expr = Expr::Log(log);
        let printed = expr.to_string();
        let parsed = parse_expr(&printed);
        prop_assert!(parsed.is_ok(), "{printed}: {:?}", parsed.err());
        let parsed = parsed.unwrap();
        prop_assert_eq!(&parsed, &expr, "printed as {}", printed);
        prop_assert_eq!(parsed.to_string(), printed);
    }

    #[test]
    fn random_text_never_panics(s in "\\PC{0,60}") {
        let _ = parse_expr(&s);
    }

    #[test]
    fn query_soup_never_panics(s in query_soup()) {
        if let Ok(expr) = parse_expr(&s) {
            let printed = expr.to_string();
            prop_assert_eq!(parse_expr(&printed).ok(), Some(expr), "printed as {}", printed);
        }
    }

    #[test]
    fn translate_regex_never_panics(s in "\\PC{0,20}") {
        if let Ok(t) = translate_regex(&s) {
            prop_assert_eq!(translate_regex(&t).ok(), Some(t));
        }
    }
}

#[test]
fn hostile_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}{{a=\"b\"}}{}", "(".repeat(10_000), ")".repeat(10_000));
    let e = parse_expr(&deep).unwrap_err();
    assert!(e.message.contains("nests deeper"), "{e}");
    let deep_regex = format!("{{a=~\"{}x{}\"}}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse_expr(&deep_regex).is_err());
    let long = format!("{{a=\"{}\"}}", "x".repeat(skald_logql::MAX_QUERY_BYTES));
    assert!(parse_expr(&long).unwrap_err().message.contains("limit"));
}
