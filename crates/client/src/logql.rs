//! A builder for LogQL queries whose output is always valid LogQL.
//!
//! ```
//! use skald_client::{LogQl, LabelFilter};
//! let query = LogQl::selector()
//!     .eq("app", "backend")
//!     .contains("error")
//!     .json()
//!     .label_filter(LabelFilter::ne("level", "debug"))
//!     .rate("5m")
//!     .sum_by(["level", "pod"])
//!     .build()
//!     .unwrap();
//! assert_eq!(
//!     query,
//!     r#"sum by (level, pod) (rate({app="backend"} |= "error" | json | level != "debug" [5m]))"#
//! );
//! ```
//!
//! Every name, string, regex and duration is checked or escaped as it is
//! added; the first problem is kept and returned by `build`, so a chain
//! never panics and never yields a query the server would refuse to parse.
//! Checked: label names (`[a-zA-Z_][a-zA-Z0-9_]*`), regexes (they must
//! parse), durations (`5m`, `1h30m`: whole numbers with `ms s m h d w y`),
//! finite numbers, and Loki's rule that a selector needs an `=` or `=~`
//! matcher that cannot match the empty string.
//!
//! Not here: the full language (binary operators, `unwrap`, `line_format`);
//! write those by hand.

use crate::entry::{is_valid_label_name, write_quoted};
use crate::error::{Error, Result};
use std::fmt::Write as _;
use std::time::Duration;

/// Entry point: `LogQl::selector()` starts a log query.
pub struct LogQl;

impl LogQl {
    pub fn selector() -> LogQuery {
        LogQuery::default()
    }
}

/// A log query: a stream selector and a pipeline.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    matchers: Vec<String>,
    /// Whether some matcher cannot match the empty string.
    anchored: bool,
    pipeline: String,
    error: Option<String>,
}

fn check_regex(regex: &str) -> std::result::Result<regex_syntax::hir::Hir, String> {
    regex_syntax::Parser::new()
        .parse(regex)
        .map_err(|e| format!("regex {regex:?} does not parse: {e}"))
}

impl LogQuery {
    fn fail(&mut self, message: String) {
        self.error.get_or_insert(message);
    }

    fn matcher(mut self, name: &str, op: &str, value: &str) -> Self {
        if !is_valid_label_name(name) {
            self.fail(format!("{name:?} is not a valid label name"));
            return self;
        }
        let regex = op == "=~" || op == "!~";
        if regex {
            match check_regex(value) {
                Ok(hir) => {
                    if op == "=~" && hir.properties().minimum_len().is_some_and(|n| n > 0) {
                        self.anchored = true;
                    }
                }
                Err(e) => {
                    self.fail(e);
                    return self;
                }
            }
        } else if op == "=" && !value.is_empty() {
            self.anchored = true;
        }
        let mut text = format!("{name}{op}");
        write_quoted(&mut text, value);
        self.matchers.push(text);
        self
    }

    /// `name="value"`.
    pub fn eq(self, name: &str, value: &str) -> Self {
        self.matcher(name, "=", value)
    }
    /// `name!="value"`.
    pub fn neq(self, name: &str, value: &str) -> Self {
        self.matcher(name, "!=", value)
    }
    /// `name=~"regex"`.
    pub fn re(self, name: &str, regex: &str) -> Self {
        self.matcher(name, "=~", regex)
    }
    /// `name!~"regex"`.
    pub fn nre(self, name: &str, regex: &str) -> Self {
        self.matcher(name, "!~", regex)
    }

    fn line_filter(mut self, op: &str, value: &str) -> Self {
        if (op == "|~" || op == "!~")
            && let Err(e) = check_regex(value)
        {
            self.fail(e);
            return self;
        }
        self.pipeline.push(' ');
        self.pipeline.push_str(op);
        self.pipeline.push(' ');
        write_quoted(&mut self.pipeline, value);
        self
    }

    /// `|= "text"`: lines containing `text`.
    pub fn contains(self, text: &str) -> Self {
        self.line_filter("|=", text)
    }
    /// `!= "text"`.
    pub fn not_contains(self, text: &str) -> Self {
        self.line_filter("!=", text)
    }
    /// `|~ "regex"`.
    pub fn matches(self, regex: &str) -> Self {
        self.line_filter("|~", regex)
    }
    /// `!~ "regex"`.
    pub fn not_matches(self, regex: &str) -> Self {
        self.line_filter("!~", regex)
    }

    /// `| json`.
    pub fn json(mut self) -> Self {
        self.pipeline.push_str(" | json");
        self
    }
    /// `| logfmt`.
    pub fn logfmt(mut self) -> Self {
        self.pipeline.push_str(" | logfmt");
        self
    }

    /// `| <filter>` on extracted labels.
    pub fn label_filter(mut self, filter: LabelFilter) -> Self {
        let mut text = String::new();
        match filter.write(&mut text) {
            Ok(()) => {
                self.pipeline.push_str(" | ");
                self.pipeline.push_str(&text);
            }
            Err(e) => self.fail(e),
        }
        self
    }

    fn range(self, function: &'static str, range: impl Into<Range>) -> MetricQuery {
        let range = range.into();
        let mut error = self.error.clone();
        let text = match (self.build(), range.0) {
            (Ok(log), Ok(range)) => format!("{function}({log} [{range}])"),
            (Err(e), _) => {
                error.get_or_insert(e.to_string());
                String::new()
            }
            (_, Err(e)) => {
                error.get_or_insert(e);
                String::new()
            }
        };
        MetricQuery { text, error }
    }

    /// `rate(<query> [range])`: entries per second.
    pub fn rate(self, range: impl Into<Range>) -> MetricQuery {
        self.range("rate", range)
    }
    /// `count_over_time(<query> [range])`.
    pub fn count_over_time(self, range: impl Into<Range>) -> MetricQuery {
        self.range("count_over_time", range)
    }
    /// `bytes_rate(<query> [range])`.
    pub fn bytes_rate(self, range: impl Into<Range>) -> MetricQuery {
        self.range("bytes_rate", range)
    }
    /// `bytes_over_time(<query> [range])`.
    pub fn bytes_over_time(self, range: impl Into<Range>) -> MetricQuery {
        self.range("bytes_over_time", range)
    }

    /// The query text, or the first problem found while building it.
    pub fn build(&self) -> Result<String> {
        if let Some(e) = &self.error {
            return Err(Error::LogQl(e.clone()));
        }
        if !self.anchored {
            return Err(Error::LogQl(
                "a selector needs an = or =~ matcher that cannot match the empty string".into(),
            ));
        }
        Ok(format!("{{{}}}{}", self.matchers.join(", "), self.pipeline))
    }
}

/// A comparison on a label extracted by the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelFilter {
    /// `name <op> "value"` with `=`, `!=`, `=~`, `!~`.
    Str {
        name: String,
        op: StrOp,
        value: String,
    },
    /// `name <op> number` with `==`, `!=`, `>`, `>=`, `<`, `<=`.
    Num { name: String, op: NumOp, value: f64 },
    /// `(a and b)`.
    And(Box<LabelFilter>, Box<LabelFilter>),
    /// `(a or b)`.
    Or(Box<LabelFilter>, Box<LabelFilter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOp {
    Eq,
    Ne,
    Re,
    Nre,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl LabelFilter {
    fn str(name: &str, op: StrOp, value: &str) -> LabelFilter {
        LabelFilter::Str {
            name: name.into(),
            op,
            value: value.into(),
        }
    }
    fn num(name: &str, op: NumOp, value: f64) -> LabelFilter {
        LabelFilter::Num {
            name: name.into(),
            op,
            value,
        }
    }
    pub fn eq(name: &str, value: &str) -> LabelFilter {
        Self::str(name, StrOp::Eq, value)
    }
    pub fn ne(name: &str, value: &str) -> LabelFilter {
        Self::str(name, StrOp::Ne, value)
    }
    pub fn re(name: &str, regex: &str) -> LabelFilter {
        Self::str(name, StrOp::Re, regex)
    }
    pub fn nre(name: &str, regex: &str) -> LabelFilter {
        Self::str(name, StrOp::Nre, regex)
    }
    pub fn gt(name: &str, value: f64) -> LabelFilter {
        Self::num(name, NumOp::Gt, value)
    }
    pub fn ge(name: &str, value: f64) -> LabelFilter {
        Self::num(name, NumOp::Ge, value)
    }
    pub fn lt(name: &str, value: f64) -> LabelFilter {
        Self::num(name, NumOp::Lt, value)
    }
    pub fn le(name: &str, value: f64) -> LabelFilter {
        Self::num(name, NumOp::Le, value)
    }
    pub fn num_eq(name: &str, value: f64) -> LabelFilter {
        Self::num(name, NumOp::Eq, value)
    }
    pub fn num_ne(name: &str, value: f64) -> LabelFilter {
        Self::num(name, NumOp::Ne, value)
    }
    pub fn and(self, other: LabelFilter) -> LabelFilter {
        LabelFilter::And(Box::new(self), Box::new(other))
    }
    pub fn or(self, other: LabelFilter) -> LabelFilter {
        LabelFilter::Or(Box::new(self), Box::new(other))
    }

    fn write(&self, out: &mut String) -> std::result::Result<(), String> {
        match self {
            LabelFilter::Str { name, op, value } => {
                if !is_valid_label_name(name) {
                    return Err(format!("{name:?} is not a valid label name"));
                }
                let op = match op {
                    StrOp::Eq => "=",
                    StrOp::Ne => "!=",
                    StrOp::Re => "=~",
                    StrOp::Nre => "!~",
                };
                if op.contains('~') {
                    check_regex(value)?;
                }
                let _ = write!(out, "{name} {op} ");
                write_quoted(out, value);
            }
            LabelFilter::Num { name, op, value } => {
                if !is_valid_label_name(name) {
                    return Err(format!("{name:?} is not a valid label name"));
                }
                if !value.is_finite() {
                    return Err(format!("{value} is not a finite number"));
                }
                let op = match op {
                    NumOp::Eq => "==",
                    NumOp::Ne => "!=",
                    NumOp::Gt => ">",
                    NumOp::Ge => ">=",
                    NumOp::Lt => "<",
                    NumOp::Le => "<=",
                };
                // Display never uses an exponent, which every LogQL lexer reads.
                let _ = write!(out, "{name} {op} {value}");
            }
            LabelFilter::And(a, b) | LabelFilter::Or(a, b) => {
                let word = if matches!(self, LabelFilter::And(..)) {
                    "and"
                } else {
                    "or"
                };
                out.push('(');
                a.write(out)?;
                let _ = write!(out, " {word} ");
                b.write(out)?;
                out.push(')');
            }
        }
        Ok(())
    }
}

/// A range for range aggregations: `"5m"`, `"1h30m"`, or a `Duration`.
#[derive(Debug, Clone)]
pub struct Range(std::result::Result<String, String>);

const RANGE_UNITS: &[&str] = &["ms", "s", "m", "h", "d", "w", "y"];

impl From<&str> for Range {
    fn from(text: &str) -> Range {
        let bad = || Err(format!("{text:?} is not a LogQL range like 5m or 1h30m"));
        let mut rest = text;
        let mut positive = false;
        if rest.is_empty() {
            return Range(bad());
        }
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Range(bad());
            }
            positive |= rest[..digits].bytes().any(|b| b != b'0');
            rest = &rest[digits..];
            // "ms" before "m".
            let Some(unit) = RANGE_UNITS.iter().find(|u| rest.starts_with(**u)) else {
                return Range(bad());
            };
            rest = &rest[unit.len()..];
        }
        if !positive {
            return Range(Err(format!("range {text:?} must be positive")));
        }
        Range(Ok(text.to_string()))
    }
}

impl From<String> for Range {
    fn from(text: String) -> Range {
        Range::from(text.as_str())
    }
}

impl From<Duration> for Range {
    fn from(duration: Duration) -> Range {
        let ms = duration.as_millis();
        if ms == 0 {
            return Range(Err("a range must be at least 1ms".into()));
        }
        if ms.is_multiple_of(1000) {
            Range(Ok(format!("{}s", ms / 1000)))
        } else {
            Range(Ok(format!("{ms}ms")))
        }
    }
}

/// A metric query: a range aggregation, optionally aggregated again.
#[derive(Debug, Clone)]
pub struct MetricQuery {
    text: String,
    error: Option<String>,
}

impl MetricQuery {
    fn aggregate<I, S>(mut self, op: &str, grouping: Option<(&str, I)>) -> MetricQuery
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        if self.error.is_some() {
            return self;
        }
        let mut clause = String::new();
        if let Some((word, labels)) = grouping {
            let mut names = Vec::new();
            for label in labels {
                let label = label.as_ref();
                if !is_valid_label_name(label) {
                    self.error = Some(format!("{label:?} is not a valid label name"));
                    return self;
                }
                names.push(label.to_string());
            }
            clause = format!(" {word} ({})", names.join(", "));
        }
        self.text = format!("{op}{clause} ({})", self.text);
        self
    }

    pub fn sum(self) -> MetricQuery {
        self.aggregate::<[&str; 0], &str>("sum", None)
    }
    /// `sum by (labels) (...)`.
    pub fn sum_by<I: IntoIterator<Item = S>, S: AsRef<str>>(self, labels: I) -> MetricQuery {
        self.aggregate("sum", Some(("by", labels)))
    }
    /// `sum without (labels) (...)`.
    pub fn sum_without<I: IntoIterator<Item = S>, S: AsRef<str>>(self, labels: I) -> MetricQuery {
        self.aggregate("sum", Some(("without", labels)))
    }
    pub fn avg_by<I: IntoIterator<Item = S>, S: AsRef<str>>(self, labels: I) -> MetricQuery {
        self.aggregate("avg", Some(("by", labels)))
    }
    pub fn min_by<I: IntoIterator<Item = S>, S: AsRef<str>>(self, labels: I) -> MetricQuery {
        self.aggregate("min", Some(("by", labels)))
    }
    pub fn max_by<I: IntoIterator<Item = S>, S: AsRef<str>>(self, labels: I) -> MetricQuery {
        self.aggregate("max", Some(("by", labels)))
    }
    pub fn count_by<I: IntoIterator<Item = S>, S: AsRef<str>>(self, labels: I) -> MetricQuery {
        self.aggregate("count", Some(("by", labels)))
    }
    /// `topk(k, ...)`.
    pub fn topk(mut self, k: u32) -> MetricQuery {
        if self.error.is_none() {
            self.text = format!("topk({k}, {})", self.text);
        }
        self
    }

    /// The query text, or the first problem found while building it.
    pub fn build(&self) -> Result<String> {
        match &self.error {
            Some(e) => Err(Error::LogQl(e.clone())),
            None => Ok(self.text.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_seed_query() {
        let q = LogQl::selector()
            .eq("app", "backend")
            .contains("error")
            .json()
            .rate("5m")
            .sum_by(["level", "pod"]);
        assert_eq!(
            q.build().unwrap(),
            r#"sum by (level, pod) (rate({app="backend"} |= "error" | json [5m]))"#
        );
    }

    #[test]
    fn problems_are_reported_not_printed() {
        assert!(LogQl::selector().build().is_err());
        assert!(LogQl::selector().neq("a", "b").build().is_err());
        assert!(LogQl::selector().re("a", ".*").build().is_err());
        assert!(LogQl::selector().re("a", ".+").build().is_ok());
        assert!(LogQl::selector().eq("a", "").build().is_err());
        assert!(LogQl::selector().eq("a-b", "x").build().is_err());
        assert!(LogQl::selector().eq("a", "x").matches("(").build().is_err());
        assert!(LogQl::selector().eq("a", "x").rate("5").build().is_err());
        assert!(LogQl::selector().eq("a", "x").rate("0m").build().is_err());
        assert!(LogQl::selector().eq("a", "x").rate("1h30m").build().is_ok());
        let nan = LabelFilter::gt("x", f64::NAN);
        assert!(
            LogQl::selector()
                .eq("a", "x")
                .label_filter(nan)
                .build()
                .is_err()
        );
        assert!(
            LogQl::selector()
                .eq("a", "x")
                .rate("1m")
                .sum_by(["bad-name"])
                .build()
                .is_err()
        );
    }

    #[test]
    fn durations_print_in_whole_units() {
        let q = LogQl::selector().eq("a", "x");
        assert!(
            q.clone()
                .rate(Duration::from_secs(300))
                .build()
                .unwrap()
                .ends_with("[300s])")
        );
        assert!(
            q.rate(Duration::from_millis(1500))
                .build()
                .unwrap()
                .ends_with("[1500ms])")
        );
    }
}
