//! Every query the builder prints parses with Skald's LogQL parser.

use proptest::prelude::*;
use skald_client::{LabelFilter, LogQl, LogQuery};

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,8}"
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
    ]
}

fn regex() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(".+".to_string()),
        Just("a|b".to_string()),
        Just("(foo|bar)[0-9]*".to_string()),
        Just("\\d+\\s".to_string()),
        "[a-z]{1,5}",
    ]
}

fn filter() -> impl Strategy<Value = LabelFilter> {
    let leaf = prop_oneof![
        (name(), text()).prop_map(|(n, v)| LabelFilter::eq(&n, &v)),
        (name(), text()).prop_map(|(n, v)| LabelFilter::ne(&n, &v)),
        (name(), regex()).prop_map(|(n, r)| LabelFilter::re(&n, &r)),
        (name(), regex()).prop_map(|(n, r)| LabelFilter::nre(&n, &r)),
        (name(), -1e6f64..1e6).prop_map(|(n, v)| LabelFilter::gt(&n, v)),
        (
            name(),
            any::<f64>().prop_filter("finite", |v| v.is_finite())
        )
            .prop_map(|(n, v)| LabelFilter::le(&n, v)),
        (name(), any::<i32>()).prop_map(|(n, v)| LabelFilter::num_eq(&n, f64::from(v))),
    ];
    leaf.prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.and(b)),
            (inner.clone(), inner).prop_map(|(a, b)| a.or(b)),
        ]
    })
}

#[derive(Debug, Clone)]
enum Step {
    Eq(String, String),
    Neq(String, String),
    Re(String, String),
    Nre(String, String),
    Contains(String),
    NotContains(String),
    Matches(String),
    NotMatches(String),
    Json,
    Logfmt,
    Filter(LabelFilter),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (name(), text()).prop_map(|(n, v)| Step::Eq(n, v)),
        (name(), text()).prop_map(|(n, v)| Step::Neq(n, v)),
        (name(), regex()).prop_map(|(n, v)| Step::Re(n, v)),
        (name(), regex()).prop_map(|(n, v)| Step::Nre(n, v)),
        text().prop_map(Step::Contains),
        text().prop_map(Step::NotContains),
        regex().prop_map(Step::Matches),
        regex().prop_map(Step::NotMatches),
        Just(Step::Json),
        Just(Step::Logfmt),
        filter().prop_map(Step::Filter),
    ]
}

fn apply(query: LogQuery, step: Step) -> LogQuery {
    match step {
        Step::Eq(n, v) => query.eq(&n, &v),
        Step::Neq(n, v) => query.neq(&n, &v),
        Step::Re(n, v) => query.re(&n, &v),
        Step::Nre(n, v) => query.nre(&n, &v),
        Step::Contains(t) => query.contains(&t),
        Step::NotContains(t) => query.not_contains(&t),
        Step::Matches(r) => query.matches(&r),
        Step::NotMatches(r) => query.not_matches(&r),
        Step::Json => query.json(),
        Step::Logfmt => query.logfmt(),
        Step::Filter(f) => query.label_filter(f),
    }
}

fn range() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            1u32..1000,
            prop::sample::select(vec!["ms", "s", "m", "h", "d", "w"])
        )
            .prop_map(|(n, u)| format!("{n}{u}")),
        (1u32..24, 1u32..60).prop_map(|(h, m)| format!("{h}h{m}m")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn log_queries_parse(
        app in text(),
        steps in prop::collection::vec(step(), 0..8),
    ) {
        let mut query = LogQl::selector().eq("app", &app);
        for s in steps {
            query = apply(query, s);
        }
        if let Ok(text) = query.build() {
            if let Err(e) = skald_logql::parse_expr(&text) {
                panic!("{text}\n{e}");
            }
        } else {
            // Only an empty app value may be refused (no anchoring matcher)
            // when every part is valid by construction.
            prop_assert!(app.is_empty(), "refused: {:?}", query.build());
        }
    }

    #[test]
    fn metric_queries_parse(
        app in "[a-z]{1,5}",
        steps in prop::collection::vec(step(), 0..5),
        range in range(),
        function in 0usize..4,
        aggregate in 0usize..5,
        by in prop::collection::vec(name(), 0..4),
        k in 1u32..10,
    ) {
        let mut query = LogQl::selector().eq("app", &app);
        for s in steps {
            query = apply(query, s);
        }
        let metric = match function {
            0 => query.rate(range.as_str()),
            1 => query.count_over_time(range.as_str()),
            2 => query.bytes_rate(range.as_str()),
            _ => query.bytes_over_time(range.as_str()),
        };
        let metric = match aggregate {
            0 => metric,
            1 => metric.sum_by(&by),
            2 => metric.sum_without(&by),
            3 => metric.sum().topk(k),
            _ => metric.max_by(&by),
        };
        let text = metric.build().unwrap();
        if let Err(e) = skald_logql::parse_expr(&text) {
            panic!("{text}\n{e}");
        }
    }
}
