//! The `logfmt` parser: `key=value key2="quoted value"` pairs become labels.
//!
//! Keys are runs of characters above space other than `=` and `"`; values
//! are either quoted (with Go escapes: `\"`, `\\`, `\n`, `\t`, `\r`,
//! `\uXXXX`) or run to the next space. As in Loki:
//!
//! - by default a malformed pair is skipped and parsing goes on after the
//!   next space; with `--strict` parsing stops there and the line gets
//!   `__error__="LogfmtParserErr"` with the position in
//!   `__error_details__`;
//! - a pair without a value (`key` or `key=`) is only extracted, as an
//!   empty label, with `--keep-empty`;
//! - names are sanitised, and with parameters only the listed keys are
//!   extracted (`| logfmt host, ip="remote_addr"`), matched as written.

use crate::labels::{LabelsBuilder, errors, sanitize_label_name};

#[derive(Debug)]
pub struct LogfmtParser {
    strict: bool,
    keep_empty: bool,
    /// `(label, key)`; empty for "every key".
    params: Vec<(String, String)>,
    /// Labels the rest of the query reads; `None` for all.
    projection: Option<super::Projection>,
}

use skald_fields::logfmt::Pairs;

impl LogfmtParser {
    pub fn new(spec: &skald_logql::LogfmtParser) -> LogfmtParser {
        LogfmtParser {
            strict: spec.strict,
            keep_empty: spec.keep_empty,
            params: spec
                .params
                .iter()
                .map(|p| {
                    (
                        p.label.clone(),
                        p.expr.clone().unwrap_or_else(|| p.label.clone()),
                    )
                })
                .collect(),
            projection: None,
        }
    }

    /// Sets only the labels of `projection` from now on.
    pub fn project(&mut self, projection: super::Projection) {
        self.projection = Some(projection);
    }

    /// Whether this parser sets a label for every pair with a value and
    /// nothing else (no parameters, no `--keep-empty`); `--strict` only
    /// differs on lines with a malformed pair.
    pub fn extracts_every_field(&self) -> bool {
        self.params.is_empty() && !self.keep_empty
    }

    pub fn process(&self, line: &str, labels: &mut LabelsBuilder, name: &mut String) {
        for pair in Pairs::new(line) {
            let pair = match pair {
                Ok(p) => p,
                Err(e) if self.strict => {
                    labels.set_error(errors::LOGFMT, &e);
                    return;
                }
                Err(_) => continue,
            };
            if pair.value.is_empty() && !self.keep_empty {
                continue;
            }
            if self.params.is_empty() {
                sanitize_label_name(pair.key, name);
                if !name.is_empty() && self.projection.as_ref().is_none_or(|p| p.wants(name)) {
                    labels.set_parsed(name, &pair.value);
                }
                continue;
            }
            for (label, key) in &self.params {
                if key == pair.key {
                    labels.set_parsed(label, &pair.value);
                }
            }
        }
    }
}

/// Writes one pair in logfmt, quoting the value when it needs it.
#[cfg(test)]
pub(crate) fn write_pair(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(key);
    out.push('=');
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c <= ' ' || c == '=' || c == '"' || c == '\\');
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use skald_logql::ExtractParam;
    use skald_model::Label;

    fn run(
        strict: bool,
        keep_empty: bool,
        params: &[(&str, &str)],
        line: &str,
    ) -> Vec<(String, String)> {
        let spec = skald_logql::LogfmtParser {
            strict,
            keep_empty,
            params: params
                .iter()
                .map(|(l, e)| ExtractParam {
                    label: l.to_string(),
                    expr: (!e.is_empty()).then(|| e.to_string()),
                })
                .collect(),
        };
        let mut b = LabelsBuilder::default();
        b.reset(&[Label::new("app", "api")], &[]);
        LogfmtParser::new(&spec).process(line, &mut b, &mut String::new());
        let mut out = Vec::new();
        b.write_to(&mut out);
        out.into_iter()
            .filter(|l| l.name != "app")
            .map(|l| (l.name, l.value))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn the_docs_example() {
        let line = r#"at=info method=GET path=/ host=grafana.net fwd="124.133.124.161" service=8ms status=200"#;
        assert_eq!(
            run(false, false, &[], line),
            pairs(&[
                ("at", "info"),
                ("fwd", "124.133.124.161"),
                ("host", "grafana.net"),
                ("method", "GET"),
                ("path", "/"),
                ("service", "8ms"),
                ("status", "200"),
            ])
        );
        assert_eq!(
            run(false, false, &[("host", ""), ("fwd_ip", "fwd")], line),
            pairs(&[("fwd_ip", "124.133.124.161"), ("host", "grafana.net")])
        );
    }

    #[test]
    fn empty_values_and_standalone_keys() {
        let line = r#"msg="hello" standalone empty= app=x"#;
        assert_eq!(
            run(false, false, &[], line),
            pairs(&[("app_extracted", "x"), ("msg", "hello")])
        );
        assert_eq!(
            run(false, true, &[], line),
            pairs(&[
                ("app_extracted", "x"),
                ("empty", ""),
                ("msg", "hello"),
                ("standalone", ""),
            ])
        );
    }

    #[test]
    fn malformed_pairs() {
        let line = r#"a=1 =bad b="unterminated"x c=3 d=e=f g=4"#;
        assert_eq!(
            run(false, false, &[], line),
            pairs(&[("a", "1"), ("b", "unterminated"), ("c", "3"), ("g", "4")])
        );
        let strict = run(true, false, &[], line);
        assert_eq!(
            strict,
            pairs(&[
                ("__error__", "LogfmtParserErr"),
                (
                    "__error_details__",
                    "logfmt syntax error at pos 5 : unexpected '='"
                ),
                ("a", "1"),
            ])
        );
        assert_eq!(
            run(false, false, &[], r#"k="a\"b\\c\n" weird.key-name=1"#),
            pairs(&[("k", "a\"b\\c\n"), ("weird_key_name", "1")])
        );
    }

    proptest! {
        #[test]
        fn round_trip(fields in proptest::collection::btree_map("[a-z][a-z0-9_]{0,8}", "\\PC{1,12}", 0..6)) {
            let mut line = String::new();
            for (k, v) in &fields {
                write_pair(&mut line, k, v);
            }
            let parsed: std::collections::BTreeMap<String, String> = Pairs::new(&line)
                .map(|p| p.map(|p| (p.key.to_string(), p.value.into_owned())))
                .collect::<Result<_, _>>()
                .unwrap();
            prop_assert_eq!(parsed, fields);
        }
    }
}
