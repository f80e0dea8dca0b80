//! Label filters: `| level="error"`, `| status >= 500`, `| latency > 1s`,
//! `| size > 1KB`, `| addr = ip("10.0.0.0/8")`, combined with `and`, `or`
//! (and `,`, which the parser reads as `and`).
//!
//! Loki's rules, kept here:
//! - string matchers compare the label's value, the empty string when the
//!   label is missing; `__error__` is matched like any label, so
//!   `| __error__=""` keeps lines without errors;
//! - a numeric, duration or bytes filter drops lines without the label;
//!   when the value does not convert it keeps the line and sets
//!   `__error__="LabelFilterErr"` (the conversion message in
//!   `__error_details__`);
//! - on a line that already has an error only string matchers can drop it:
//!   the other filters let it through.

use crate::ip::IpMatcher;
use crate::labels::{LabelsBuilder, errors};
use crate::units;
use skald_logql::{CmpOp, LabelFilter};
use skald_model::Matcher;

#[derive(Debug)]
pub enum CompiledLabelFilter {
    Matcher(Matcher),
    Number {
        name: String,
        op: CmpOp,
        value: f64,
    },
    Duration {
        name: String,
        op: CmpOp,
        value: i64,
    },
    Bytes {
        name: String,
        op: CmpOp,
        value: u64,
    },
    Ip {
        name: String,
        negated: bool,
        range: IpMatcher,
    },
    And(Vec<CompiledLabelFilter>),
    Or(Vec<CompiledLabelFilter>),
}

fn compare<T: PartialOrd>(op: CmpOp, a: T, b: T) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Neq => a != b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
    }
}

impl CompiledLabelFilter {
    pub fn new(filter: &LabelFilter) -> Result<CompiledLabelFilter, String> {
        Ok(match filter {
            LabelFilter::Matcher(m) => CompiledLabelFilter::Matcher(m.clone()),
            LabelFilter::Number { name, op, value } => CompiledLabelFilter::Number {
                name: name.clone(),
                op: *op,
                value: *value,
            },
            LabelFilter::Duration { name, op, value } => CompiledLabelFilter::Duration {
                name: name.clone(),
                op: *op,
                value: *value,
            },
            LabelFilter::Bytes { name, op, value } => CompiledLabelFilter::Bytes {
                name: name.clone(),
                op: *op,
                value: *value,
            },
            LabelFilter::Ip {
                name,
                negated,
                range,
            } => CompiledLabelFilter::Ip {
                name: name.clone(),
                negated: *negated,
                range: IpMatcher::parse(range)?,
            },
            LabelFilter::And(items) => {
                CompiledLabelFilter::And(items.iter().map(Self::new).collect::<Result<_, _>>()?)
            }
            LabelFilter::Or(items) => {
                CompiledLabelFilter::Or(items.iter().map(Self::new).collect::<Result<_, _>>()?)
            }
            other => return Err(format!("label filter {other:?} is not supported")),
        })
    }

    /// Calls `f` with the name of every label the filter reads.
    pub fn for_each_name(&self, f: &mut impl FnMut(&str)) {
        self.for_each_name_ref(&mut |name| f(name))
    }

    /// Like [`CompiledLabelFilter::for_each_name`], lending the names for
    /// as long as the filter lives.
    pub fn for_each_name_ref<'a>(&'a self, f: &mut impl FnMut(&'a str)) {
        match self {
            CompiledLabelFilter::Matcher(m) => f(&m.name),
            CompiledLabelFilter::Number { name, .. }
            | CompiledLabelFilter::Duration { name, .. }
            | CompiledLabelFilter::Bytes { name, .. }
            | CompiledLabelFilter::Ip { name, .. } => f(name),
            CompiledLabelFilter::And(items) | CompiledLabelFilter::Or(items) => {
                items.iter().for_each(|i| i.for_each_name_ref(f))
            }
        }
    }

    /// Whether the line passes; may record a conversion error.
    pub fn process(&self, labels: &mut LabelsBuilder) -> bool {
        match self {
            CompiledLabelFilter::Matcher(m) => m.matches_value(labels.get(&m.name).unwrap_or("")),
            CompiledLabelFilter::Number { name, op, value } => {
                convert_and_compare(labels, name, units::parse_float, |v| {
                    compare(*op, v, *value)
                })
            }
            CompiledLabelFilter::Duration { name, op, value } => {
                convert_and_compare(labels, name, units::parse_duration, |v| {
                    compare(*op, v, *value)
                })
            }
            CompiledLabelFilter::Bytes { name, op, value } => {
                convert_and_compare(labels, name, units::parse_bytes, |v| {
                    compare(*op, v, *value)
                })
            }
            CompiledLabelFilter::Ip {
                name,
                negated,
                range,
            } => {
                let hit = labels.get(name).is_some_and(|v| range.matches_value(v));
                hit != *negated
            }
            CompiledLabelFilter::And(items) => items.iter().all(|f| f.process(labels)),
            CompiledLabelFilter::Or(items) => items.iter().any(|f| f.process(labels)),
        }
    }
}

fn convert_and_compare<T>(
    labels: &mut LabelsBuilder,
    name: &str,
    convert: impl Fn(&str) -> Result<T, String>,
    test: impl Fn(T) -> bool,
) -> bool {
    if labels.has_err() {
        return true;
    }
    let Some(raw) = labels.get(name) else {
        return false;
    };
    match convert(raw) {
        Ok(v) => test(v),
        Err(e) => {
            labels.set_error(errors::LABEL_FILTER, &e);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_model::{Label, MatchOp};

    fn labels(pairs: &[(&str, &str)]) -> LabelsBuilder {
        let stream: Vec<Label> = pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect();
        let mut b = LabelsBuilder::default();
        b.reset(&stream, &[]);
        b
    }

    fn num(name: &str, op: CmpOp, value: f64) -> LabelFilter {
        LabelFilter::Number {
            name: name.into(),
            op,
            value,
        }
    }

    fn eq(name: &str, value: &str) -> LabelFilter {
        LabelFilter::Matcher(Matcher::new(name, MatchOp::Eq, value).unwrap())
    }

    fn run(f: &LabelFilter, b: &mut LabelsBuilder) -> bool {
        CompiledLabelFilter::new(f).unwrap().process(b)
    }

    #[test]
    fn docs_example_and_or() {
        // | duration >= 20ms or size == 20kb and method!~"2.."
        let f = LabelFilter::or(
            LabelFilter::Duration {
                name: "duration".into(),
                op: CmpOp::Ge,
                value: 20_000_000,
            },
            LabelFilter::and(
                LabelFilter::Bytes {
                    name: "size".into(),
                    op: CmpOp::Eq,
                    value: 20_000,
                },
                LabelFilter::Matcher(Matcher::new("method", MatchOp::Nre, "2..").unwrap()),
            ),
        );
        assert!(run(
            &f,
            &mut labels(&[("duration", "25ms"), ("method", "GET")])
        ));
        assert!(run(
            &f,
            &mut labels(&[("duration", "5ms"), ("size", "20kB"), ("method", "GET")])
        ));
        assert!(!run(
            &f,
            &mut labels(&[("duration", "5ms"), ("size", "20kB"), ("method", "200")])
        ));
        assert!(!run(
            &f,
            &mut labels(&[("duration", "5ms"), ("size", "2kB")])
        ));
    }

    #[test]
    fn numbers_missing_labels_and_errors() {
        let f = num("status", CmpOp::Ge, 500.0);
        assert!(run(&f, &mut labels(&[("status", "503")])));
        assert!(!run(&f, &mut labels(&[("status", "200")])));
        assert!(!run(&f, &mut labels(&[("other", "1")])));
        let mut b = labels(&[("status", "oops")]);
        assert!(run(&f, &mut b));
        assert_eq!(b.get("__error__"), Some("LabelFilterErr"));
        assert_eq!(
            b.get("__error_details__"),
            Some("strconv.ParseFloat: parsing \"oops\": invalid syntax")
        );
        // An errored line passes numeric filters but not `__error__=""`.
        let mut b = labels(&[("status", "200")]);
        b.set_error("JSONParserErr", "x");
        assert!(run(&f, &mut b));
        assert!(!run(&eq("__error__", ""), &mut b));
        assert!(run(&eq("__error__", ""), &mut labels(&[("a", "b")])));
        assert!(run(&eq("missing", ""), &mut labels(&[("a", "b")])));
    }

    #[test]
    fn durations_bytes_and_ips() {
        let d = LabelFilter::Duration {
            name: "latency".into(),
            op: CmpOp::Gt,
            value: 1_000_000_000,
        };
        assert!(run(&d, &mut labels(&[("latency", "1.5s")])));
        assert!(!run(&d, &mut labels(&[("latency", "900ms")])));
        let mut b = labels(&[("latency", "12")]);
        assert!(run(&d, &mut b));
        assert_eq!(b.err(), Some("LabelFilterErr"));
        let s = LabelFilter::Bytes {
            name: "size".into(),
            op: CmpOp::Gt,
            value: 1000,
        };
        assert!(run(&s, &mut labels(&[("size", "1.5KB")])));
        assert!(!run(&s, &mut labels(&[("size", "999")])));
        let ip = LabelFilter::Ip {
            name: "addr".into(),
            negated: false,
            range: "10.0.0.0/8".into(),
        };
        assert!(run(&ip, &mut labels(&[("addr", "10.1.2.3")])));
        assert!(!run(&ip, &mut labels(&[("addr", "11.1.2.3")])));
        let not_ip = LabelFilter::Ip {
            name: "addr".into(),
            negated: true,
            range: "10.0.0.0/8".into(),
        };
        assert!(run(&not_ip, &mut labels(&[("addr", "11.1.2.3")])));
    }
}
