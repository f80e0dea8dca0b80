//! Property tests: printing then parsing gives the same tree, and no input
//! makes the parser panic.

use proptest::prelude::*;
use skald_logql::{
    BinaryExpr, BinaryModifier, BinaryOp, CmpOp, Expr, ExtractParam, GroupModifier, Grouping,
    LabelFilter, LabelFormat, LabelFormatSource, LabelReplace, LabelSelection, LineFilter,
    LineFilterOp, LogExpr, LogRange, LogfmtParser, RangeAggregation, RangeOp, Stage, Unwrap,
    UnwrapConversion, VectorAggregation, VectorMatching, VectorOp, parse_expr, translate_regex,
};
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
        "\\x{41}",
        "\\pL",
        "[\\p{Greek}\\S]",
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

fn label_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_]{0,6}",
        prop::sample::select(vec![
            "json", "or", "and", "by", "unwrap", "offset", "ip", "inf"
        ])
        .prop_map(String::from),
    ]
}

fn line_filter() -> impl Strategy<Value = LineFilter> {
    let pattern = prop::sample::select(vec!["<_> error", "a <x> b", "<_>", "x < y", "\"<q>\""]);
    let ip = prop::sample::select(vec!["10.0.0.1", "10.0.0.0/8", "::1", "1.2.3.4-1.2.3.9"]);
    prop_oneof![
        (
            prop::sample::select(vec![LineFilterOp::Contains, LineFilterOp::NotContains]),
            prop::collection::vec(plain_value(), 1..4)
        ),
        (
            prop::sample::select(vec![LineFilterOp::Regex, LineFilterOp::NotRegex]),
            prop::collection::vec(regex_value(), 1..4)
        ),
        (
            prop::sample::select(vec![LineFilterOp::Pattern, LineFilterOp::NotPattern]),
            prop::collection::vec(pattern.prop_map(String::from), 1..3)
        ),
        (
            prop::sample::select(vec![LineFilterOp::Ip, LineFilterOp::NotIp]),
            prop::collection::vec(ip.prop_map(String::from), 1..3)
        ),
    ]
    .prop_map(|(op, values)| LineFilter { op, values })
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i32..1000).prop_map(f64::from),
        any::<f64>().prop_filter("not nan", |n| !n.is_nan()),
        Just(f64::INFINITY),
        Just(0.25),
    ]
}

fn cmp_op() -> impl Strategy<Value = CmpOp> {
    prop::sample::select(vec![
        CmpOp::Eq,
        CmpOp::Neq,
        CmpOp::Gt,
        CmpOp::Ge,
        CmpOp::Lt,
        CmpOp::Le,
    ])
}

fn label_filter_leaf() -> impl Strategy<Value = LabelFilter> {
    prop_oneof![
        matcher().prop_map(LabelFilter::Matcher),
        (label_name(), cmp_op(), finite()).prop_map(|(name, op, value)| LabelFilter::Number {
            name,
            op,
            value
        }),
        (
            label_name(),
            cmp_op(),
            any::<i64>().prop_filter("not min", |n| *n != i64::MIN)
        )
            .prop_map(|(name, op, value)| LabelFilter::Duration { name, op, value }),
        (label_name(), cmp_op(), any::<u64>()).prop_map(|(name, op, value)| LabelFilter::Bytes {
            name,
            op,
            value
        }),
        (label_name(), any::<bool>()).prop_map(|(name, negated)| LabelFilter::Ip {
            name,
            negated,
            range: "10.0.0.0/8".into()
        }),
    ]
}

fn label_filter() -> impl Strategy<Value = LabelFilter> {
    label_filter_leaf().prop_recursive(3, 12, 3, |inner| {
        (prop::collection::vec(inner, 2..4), any::<bool>()).prop_map(|(items, and)| {
            let combine = if and {
                LabelFilter::and
            } else {
                LabelFilter::or
            };
            let mut it = items.into_iter();
            let first = it.next().expect("at least two");
            it.fold(first, combine)
        })
    })
}

fn extract_params() -> impl Strategy<Value = Vec<ExtractParam>> {
    prop::collection::vec(
        (label_name(), prop::option::of(plain_value()))
            .prop_map(|(label, expr)| ExtractParam { label, expr }),
        0..3,
    )
}

fn label_selections() -> impl Strategy<Value = Vec<LabelSelection>> {
    prop::collection::vec(
        prop_oneof![
            label_name().prop_map(LabelSelection::Name),
            matcher().prop_map(LabelSelection::Matching),
        ],
        1..3,
    )
}

fn stage() -> impl Strategy<Value = Stage> {
    let template = prop::sample::select(vec![
        "{{.a}}",
        "x",
        "{{if .a}}{{.b}}{{else}}c{{end}}",
        "\"{{ \"}}\" }}\"",
    ]);
    prop_oneof![
        3 => line_filter().prop_map(Stage::LineFilter),
        1 => extract_params().prop_map(Stage::Json),
        1 => (any::<bool>(), any::<bool>(), extract_params()).prop_map(|(strict, keep_empty, params)| {
            Stage::Logfmt(LogfmtParser { strict, keep_empty, params })
        }),
        1 => Just(Stage::Regexp(translate_regex(r"(?P<x>\d+)").unwrap())),
        1 => Just(Stage::Pattern("<ip> - <_> <x>".into())),
        1 => Just(Stage::Unpack),
        1 => Just(Stage::Decolorize),
        3 => label_filter().prop_map(Stage::LabelFilter),
        1 => template.clone().prop_map(|t| Stage::LineFormat(t.into())),
        1 => prop::collection::vec(
            (label_name(), prop_oneof![
                label_name().prop_map(LabelFormatSource::Rename),
                template.prop_map(|t| LabelFormatSource::Template(t.into())),
            ]),
            1..3,
        )
        .prop_map(|items| {
            let mut seen = std::collections::HashSet::new();
            Stage::LabelFormat(
                items
                    .into_iter()
                    .filter(|(dst, _)| seen.insert(dst.clone()))
                    .map(|(dst, src)| LabelFormat { dst, src })
                    .collect(),
            )
        }),
        1 => label_selections().prop_map(Stage::Drop),
        1 => label_selections().prop_map(Stage::Keep),
    ]
}

/// Drops the one pipeline shape that cannot print faithfully (see
/// `Stage::Drop`): a drop/keep ending in a bare name before `!=`/`!~`.
fn printable(pipeline: Vec<Stage>) -> Vec<Stage> {
    let mut out: Vec<Stage> = Vec::new();
    for stage in pipeline {
        let negated_filter = matches!(
            &stage,
            Stage::LineFilter(f) if matches!(
                f.op,
                LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotIp
            )
        );
        let after_bare_name = matches!(
            out.last(),
            Some(Stage::Drop(items) | Stage::Keep(items))
                if matches!(items.last(), Some(LabelSelection::Name(_)))
        );
        if negated_filter && after_bare_name {
            continue;
        }
        out.push(stage);
    }
    out
}

fn log_expr() -> impl Strategy<Value = LogExpr> {
    (
        "[a-z]{1,4}",
        "[a-z]{1,4}",
        prop::collection::vec(matcher(), 0..3),
        prop::collection::vec(stage(), 0..5),
    )
        .prop_map(|(name, value, mut rest, pipeline)| {
            // One matcher that does not match the empty string.
            rest.insert(0, Matcher::new(name, MatchOp::Eq, value).unwrap());
            LogExpr {
                selector: rest,
                pipeline: printable(pipeline),
            }
        })
}

fn duration() -> impl Strategy<Value = i64> {
    prop_oneof![Just(60_000_000_000i64), 1i64..1_000_000_000_000_000,]
}

fn grouping() -> impl Strategy<Value = Grouping> {
    (any::<bool>(), prop::collection::vec(label_name(), 0..3))
        .prop_map(|(without, labels)| Grouping { without, labels })
}

fn range_aggregation() -> impl Strategy<Value = Expr> {
    let unwrap = (
        prop::sample::select(vec![
            UnwrapConversion::None,
            UnwrapConversion::Duration,
            UnwrapConversion::DurationSeconds,
            UnwrapConversion::Bytes,
        ]),
        label_name(),
        prop::collection::vec(label_filter(), 0..2),
    )
        .prop_map(|(conversion, label, post_filters)| Unwrap {
            conversion,
            label,
            post_filters,
        });
    (
        prop::sample::select(RangeOp::ALL.to_vec()),
        log_expr(),
        prop::option::of(unwrap),
        duration(),
        prop_oneof![Just(0i64), duration(), duration().prop_map(|d| -d)],
        prop::option::of(grouping()),
        0.0f64..1.0,
    )
        .prop_map(|(op, log, unwrap, range, offset, grouping, q)| {
            let unwrap = if op.requires_unwrap() {
                Some(unwrap.unwrap_or(Unwrap {
                    conversion: UnwrapConversion::None,
                    label: "x".into(),
                    post_filters: Vec::new(),
                }))
            } else if op.allows_unwrap() {
                unwrap
            } else {
                None
            };
            Expr::RangeAggregation(RangeAggregation {
                op,
                param: (op == RangeOp::QuantileOverTime).then_some(q),
                range: LogRange {
                    log,
                    unwrap,
                    range,
                    offset,
                },
                grouping: grouping.filter(|_| op.allows_grouping()),
            })
        })
}

fn is_scalar(e: &Expr) -> bool {
    match e {
        Expr::Literal(_) => true,
        Expr::Binary(b) => is_scalar(&b.lhs) && is_scalar(&b.rhs),
        _ => false,
    }
}

fn binary_op() -> impl Strategy<Value = BinaryOp> {
    use BinaryOp::*;
    prop::sample::select(vec![
        Add, Sub, Mul, Div, Mod, Pow, Eq, Neq, Gt, Ge, Lt, Le, And, Or, Unless,
    ])
}

fn metric_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        3 => range_aggregation(),
        1 => finite().prop_map(Expr::Literal),
        1 => finite().prop_map(Expr::Vector),
    ];
    leaf.prop_recursive(3, 16, 2, |inner| {
        prop_oneof![
            (
                prop::sample::select(VectorOp::ALL.to_vec()),
                inner.clone(),
                prop::option::of(grouping()),
                1u32..100,
            )
                .prop_map(|(op, inner, grouping, k)| {
                    Expr::VectorAggregation(VectorAggregation {
                        op,
                        param: op.takes_param().then_some(f64::from(k)),
                        inner: Box::new(inner),
                        grouping: grouping.filter(|_| op.allows_grouping()),
                    })
                }),
            (
                binary_op(),
                inner.clone(),
                inner.clone(),
                any::<bool>(),
                prop::option::of((any::<bool>(), prop::collection::vec(label_name(), 0..2))),
                prop::option::of((any::<bool>(), prop::collection::vec(label_name(), 0..2))),
            )
                .prop_map(|(op, lhs, rhs, return_bool, matching, group)| {
                    let scalars = (is_scalar(&lhs), is_scalar(&rhs));
                    let any_scalar = scalars.0 || scalars.1;
                    let op = if op.is_set() && any_scalar {
                        BinaryOp::Add
                    } else {
                        op
                    };
                    let matching = matching
                        .filter(|_| !any_scalar)
                        .map(|(on, labels)| VectorMatching { on, labels });
                    let group = group
                        .filter(|_| matching.is_some() && !op.is_set())
                        .map(|(left, labels)| GroupModifier { left, labels });
                    let return_bool =
                        op.is_comparison() && (return_bool || (scalars.0 && scalars.1));
                    Expr::Binary(BinaryExpr {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                        modifier: BinaryModifier {
                            return_bool,
                            matching,
                            group,
                        },
                    })
                }),
            (inner, label_name(), plain_value(), regex_value()).prop_map(
                |(inner, dst, replacement, regex)| {
                    Expr::LabelReplace(LabelReplace {
                        inner: Box::new(inner),
                        src: dst.clone(),
                        dst,
                        replacement,
                        regex,
                    })
                }
            ),
        ]
    })
}

/// Text made of regex-ish fragments, Go's and Rust's.
fn regex_soup() -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(vec![
        "a",
        "\\",
        "\\Q",
        "\\E",
        "{",
        "}",
        "{2}",
        "{1,",
        "[",
        "]",
        "[^",
        "^",
        "-",
        "&&",
        "--",
        "~~",
        "\\x{41}",
        "\\x4",
        "\\p{L}",
        "\\pN",
        "\\d",
        "\\D",
        "\\w",
        "\\W",
        "\\s",
        "\\S",
        "\\b",
        "\\B",
        "(?i)",
        "(?-u:",
        "(?P<n>",
        "(?:",
        "(",
        ")",
        "|",
        "*",
        "+",
        "?",
        ":",
        "[:alpha:]",
        "[:^digit:]",
        "\\1",
        "\\0",
        "\\12",
        "\\z",
        "\\A",
        ".",
        "é",
        "\\n",
        "\\t",
    ]);
    prop::collection::vec(fragment, 0..12).prop_map(|parts| parts.concat())
}

/// Text made of LogQL-ish fragments, to reach deeper into the parser than
/// random characters do.
fn query_soup() -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(vec![
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        ",",
        "=",
        "!=",
        "=~",
        "!~",
        "|=",
        "|~",
        "|>",
        "!>",
        "|",
        "app",
        "or",
        "and",
        "by",
        "\"x\"",
        "`y`",
        "\"",
        "`",
        "5m",
        "1.5",
        "#",
        "\n",
        " ",
        "\\",
        "sum",
        "rate",
        "json",
        "logfmt",
        "unwrap",
        "offset",
        "==",
        ">",
        "+",
        "-",
        "--strict",
        "count_over_time",
        "quantile_over_time",
        "topk",
        "without",
        "on",
        "ignoring",
        "group_left",
        "bool",
        "ip",
        "(\"10.0.0.1\")",
        "line_format",
        "label_format",
        "drop",
        "keep",
        "regexp",
        "pattern",
        "\"<a> <_>\"",
        "\"(?P<x>.)\"",
        "\"{{.a}}\"",
        "1e3",
        "0x1f",
        "1KB",
        "-",
        "^",
        "*",
        "/",
        "%",
        "<=",
        "vector",
        "label_replace",
        "unless",
        "duration",
        "bytes",
        "Inf",
        "NaN",
        "__error__",
        "{a=\"b\"}",
        "[5m]",
        "offset 1h",
    ]);
    prop::collection::vec(fragment, 0..40).prop_map(|parts| parts.concat())
}

fn check_round_trip(expr: Expr) -> Result<(), TestCaseError> {
    let printed = expr.to_string();
    let parsed = parse_expr(&printed);
    prop_assert!(parsed.is_ok(), "{printed}: {}", parsed.unwrap_err());
    let parsed = parsed.unwrap();
    prop_assert_eq!(&parsed, &expr, "printed as {}", printed);
    prop_assert_eq!(parsed.to_string(), printed);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn log_queries_print_then_parse_to_themselves(log in log_expr()) {
        check_round_trip(Expr::Log(log))?;
    }

    #[test]
    fn metric_queries_print_then_parse_to_themselves(expr in metric_expr()) {
        check_round_trip(expr)?;
    }

    #[test]
    fn random_text_never_panics(s in "\\PC{0,60}") {
        let _ = parse_expr(&s);
    }

    #[test]
    fn query_soup_never_panics(s in query_soup()) {
        if let Ok(expr) = parse_expr(&s) {
            // Compared as text: NaN literals are not equal to themselves.
            let printed = expr.to_string();
            let again = parse_expr(&printed).map(|e| e.to_string());
            prop_assert_eq!(again.as_ref(), Ok(&printed), "from {:?}", s);
        }
    }

    #[test]
    fn regex_soup_translates_to_a_fixed_point(s in regex_soup()) {
        if let Ok(t) = translate_regex(&s) {
            prop_assert_eq!(translate_regex(&t).ok(), Some(t), "from {:?}", s);
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
    let nested_sums = format!(
        "{}count_over_time({{a=\"b\"}}[1m]){}",
        "sum(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert!(parse_expr(&nested_sums).is_err());
    let nested_filters = format!(
        "{{a=\"b\"}} | {}x=\"y\"{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert!(parse_expr(&nested_filters).is_err());
    let long_chain = format!("vector(1){}", " + vector(1)".repeat(5_000));
    let e = parse_expr(&long_chain).unwrap_err();
    assert!(e.message.contains("binary operators"), "{e}");
    let power_tower = format!("vector(1){}", " ^ 2".repeat(5_000));
    assert!(parse_expr(&power_tower).is_err());
    let long_filter_chain = format!("{{a=\"b\"}} | x=\"1\"{}", " or x=\"1\"".repeat(5_000));
    let printed = parse_expr(&long_filter_chain).unwrap().to_string();
    assert!(parse_expr(&printed).is_ok(), "flat chains have no depth");
    let long = format!("{{a=\"{}\"}}", "x".repeat(skald_logql::MAX_QUERY_BYTES));
    assert!(parse_expr(&long).unwrap_err().message.contains("limit"));
}
