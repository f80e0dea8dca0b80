//! The LogQL syntax tree: what a query says, after parsing and validation.
//!
//! Two families of expressions, as in Loki: log queries ([`LogExpr`]: a
//! stream selector and a pipeline of [`Stage`]s) and metric queries (range
//! aggregations over a [`LogRange`], vector aggregations, binary operations,
//! literals, `vector()` and `label_replace()`).
//!
//! Regexes in the tree (label matchers, `|~` filters, `regexp` stages,
//! `label_replace`) are stored already translated to Rust `regex` syntax by
//! [`crate::translate_regex`], so the stages that compile them need no
//! knowledge of Go's dialect; the printer writes that translated form,
//! which reads back to the same tree. Templates (`line_format`,
//! `label_format`), patterns and JSON paths are kept as written.
//!
//! The tree is normalised so that one meaning has one tree: parentheses are
//! not kept (the printer adds those the precedence needs), `and`/`or`
//! chains of label filters are flat, durations are nanoseconds.
//!
//! Not here: evaluation, or any compiled form (see `skald-pipeline` and
//! `skald-query`). Enums that LogQL may grow are `#[non_exhaustive]`.

use skald_model::Matcher;

/// A whole LogQL query.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Expr {
    /// A log query: a stream selector and a pipeline.
    Log(LogExpr),
    /// `rate({app="api"}[5m])`, `quantile_over_time(0.99, ... | unwrap x [1m]) by (a)`
    RangeAggregation(RangeAggregation),
    /// `sum by (a) (...)`, `topk(5, ...)`
    VectorAggregation(VectorAggregation),
    /// `a + b`, `a > bool 5`, `a / on (x) group_left b`
    Binary(BinaryExpr),
    /// A number: `5`, `-1.5`, `Inf`.
    Literal(f64),
    /// `vector(1)`
    Vector(f64),
    /// `label_replace(expr, "dst", "replacement", "src", "regex")`
    LabelReplace(LabelReplace),
}

impl Expr {
    /// Whether this is a log query (as opposed to a metric query).
    pub fn is_log(&self) -> bool {
        matches!(self, Expr::Log(_))
    }

    /// The range aggregations of a metric query, left to right.
    pub fn range_aggregations(&self) -> Vec<&RangeAggregation> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            match e {
                Expr::RangeAggregation(r) => out.push(r),
                Expr::VectorAggregation(v) => stack.push(&v.inner),
                Expr::LabelReplace(l) => stack.push(&l.inner),
                Expr::Binary(b) => {
                    stack.push(&b.rhs);
                    stack.push(&b.lhs);
                }
                Expr::Log(_) | Expr::Literal(_) | Expr::Vector(_) => {}
            }
        }
        out
    }
}

/// `{app="api"} |= "error" | json | level="error"`
#[derive(Debug, Clone, PartialEq)]
pub struct LogExpr {
    /// The stream selector's matchers, in query order. At least one of them
    /// does not match the empty string.
    pub selector: Vec<Matcher>,
    /// The stages after the selector, in order.
    pub pipeline: Vec<Stage>,
}

/// One stage of a log pipeline.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Stage {
    /// `|= "a"`, `!~ "b" or "c"`, `|> "<_> error"`, `|= ip("10.0.0.0/8")`
    LineFilter(LineFilter),
    /// `| json` or `| json a="b.c[0]", d`
    Json(Vec<ExtractParam>),
    /// `| logfmt`, `| logfmt --strict --keep-empty a, b="c"`
    Logfmt(LogfmtParser),
    /// `| regexp "(?P<name>...)"`: the translated regex, with at least one
    /// named group.
    Regexp(String),
    /// `| pattern "<ip> - <_>"`: the pattern as written.
    Pattern(String),
    /// `| unpack`
    Unpack,
    /// `| level="error" and duration > 1s`
    LabelFilter(LabelFilter),
    /// `| line_format "{{.msg}}"`: the Go template as written.
    LineFormat(String),
    /// `| label_format dst=src, other="{{.x}}"`
    LabelFormat(Vec<LabelFormat>),
    /// `| drop a, b="c"`
    ///
    /// As in Loki, `| drop a != "x"` reads as the matcher `a!="x"`: a drop
    /// (or keep) ending in a bare name cannot be followed directly by a
    /// `!=` or `!~` line filter in the printed form, which then reads back
    /// differently.
    Drop(Vec<LabelSelection>),
    /// `| keep a, b="c"`
    Keep(Vec<LabelSelection>),
    /// `| decolorize`
    Decolorize,
}

/// A line filter: an operator and one or more values joined by `or`.
///
/// A line passes a positive filter if it matches any of the values; for the
/// negated operators it must match none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFilter {
    pub op: LineFilterOp,
    /// The `or` chain, at least one value. For the regex operators each
    /// value is in Rust `regex` syntax (translated from Go's), unanchored;
    /// for the pattern operators a pattern (`<_> error <_>`); for the IP
    /// operators an address, CIDR range or `a-b` range.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LineFilterOp {
    /// `|=`
    Contains,
    /// `!=`
    NotContains,
    /// `|~`
    Regex,
    /// `!~`
    NotRegex,
    /// `|>`
    Pattern,
    /// `!>`
    NotPattern,
    /// `|= ip("...")`
    Ip,
    /// `!= ip("...")`
    NotIp,
}

impl LineFilterOp {
    /// The operator as written, without the `ip(...)` of the IP forms.
    pub fn as_str(self) -> &'static str {
        match self {
            LineFilterOp::Contains | LineFilterOp::Ip => "|=",
            LineFilterOp::NotContains | LineFilterOp::NotIp => "!=",
            LineFilterOp::Regex => "|~",
            LineFilterOp::NotRegex => "!~",
            LineFilterOp::Pattern => "|>",
            LineFilterOp::NotPattern => "!>",
        }
    }

    /// Whether a line passes when it does *not* match.
    pub fn is_negated(self) -> bool {
        matches!(
            self,
            LineFilterOp::NotContains
                | LineFilterOp::NotRegex
                | LineFilterOp::NotPattern
                | LineFilterOp::NotIp
        )
    }
}

/// A label a `json` or `logfmt` stage extracts: `name` alone (the field of
/// that name) or `name="expression"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractParam {
    pub label: String,
    /// The JSON path (`a.b[0]`) or logfmt key, as written; `None` for the
    /// bare form.
    pub expr: Option<String>,
}

/// `| logfmt --strict --keep-empty a, b="c"`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogfmtParser {
    /// `--strict`: stop at the first malformed pair.
    pub strict: bool,
    /// `--keep-empty`: keep standalone keys as empty labels.
    pub keep_empty: bool,
    /// Labels to extract; all of them when empty.
    pub params: Vec<ExtractParam>,
}

/// One `label_format` assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFormat {
    pub dst: String,
    pub src: LabelFormatSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelFormatSource {
    /// `dst=src`: rename.
    Rename(String),
    /// `dst="{{.a}}-{{.b}}"`: a Go template, as written.
    Template(String),
}

/// A label named by `drop` or `keep`: by name alone, or only when its
/// value matches.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelSelection {
    Name(String),
    Matching(Matcher),
}

/// A label filter expression.
///
/// Normalised: an `And` holds no `And` directly, an `Or` no `Or`, and both
/// hold at least two operands. Build them with [`LabelFilter::and`] and
/// [`LabelFilter::or`] to keep it so.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LabelFilter {
    /// `name="v"`, `name!="v"`, `name=~"re"`, `name!~"re"` (regexes
    /// translated, anchored by the matcher).
    Matcher(Matcher),
    /// `status >= 500`
    Number {
        name: String,
        op: CmpOp,
        value: f64,
    },
    /// `duration > 1.5s`; nanoseconds.
    Duration {
        name: String,
        op: CmpOp,
        value: i64,
    },
    /// `size > 10KB`; bytes.
    Bytes {
        name: String,
        op: CmpOp,
        value: u64,
    },
    /// `addr = ip("10.0.0.0/8")`, `addr != ip(...)`
    Ip {
        name: String,
        negated: bool,
        range: String,
    },
    And(Vec<LabelFilter>),
    Or(Vec<LabelFilter>),
}

impl LabelFilter {
    /// `a and b`, flattening nested `and`s.
    pub fn and(a: LabelFilter, b: LabelFilter) -> LabelFilter {
        let mut items = match a {
            LabelFilter::And(v) => v,
            other => vec![other],
        };
        match b {
            LabelFilter::And(v) => items.extend(v),
            other => items.push(other),
        }
        LabelFilter::And(items)
    }

    /// `a or b`, flattening nested `or`s.
    pub fn or(a: LabelFilter, b: LabelFilter) -> LabelFilter {
        let mut items = match a {
            LabelFilter::Or(v) => v,
            other => vec![other],
        };
        match b {
            LabelFilter::Or(v) => items.extend(v),
            other => items.push(other),
        }
        LabelFilter::Or(items)
    }
}

/// A numeric comparison in a label filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Neq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Neq => "!=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        }
    }
}

/// A range aggregation: `op([param,] log-range) [by|without (...)]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeAggregation {
    pub op: RangeOp,
    /// The φ of `quantile_over_time`; `None` for the others.
    pub param: Option<f64>,
    pub range: LogRange,
    /// Only for the unwrapped aggregations that allow it
    /// (`avg`, `min`, `max`, `stdvar`, `stddev`, `quantile`, `first`,
    /// `last` `_over_time`).
    pub grouping: Option<Grouping>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RangeOp {
    Rate,
    RateCounter,
    CountOverTime,
    BytesRate,
    BytesOverTime,
    AbsentOverTime,
    SumOverTime,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    StdvarOverTime,
    StddevOverTime,
    QuantileOverTime,
    FirstOverTime,
    LastOverTime,
}

impl RangeOp {
    pub const ALL: [RangeOp; 15] = [
        RangeOp::Rate,
        RangeOp::RateCounter,
        RangeOp::CountOverTime,
        RangeOp::BytesRate,
        RangeOp::BytesOverTime,
        RangeOp::AbsentOverTime,
        RangeOp::SumOverTime,
        RangeOp::AvgOverTime,
        RangeOp::MinOverTime,
        RangeOp::MaxOverTime,
        RangeOp::StdvarOverTime,
        RangeOp::StddevOverTime,
        RangeOp::QuantileOverTime,
        RangeOp::FirstOverTime,
        RangeOp::LastOverTime,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RangeOp::Rate => "rate",
            RangeOp::RateCounter => "rate_counter",
            RangeOp::CountOverTime => "count_over_time",
            RangeOp::BytesRate => "bytes_rate",
            RangeOp::BytesOverTime => "bytes_over_time",
            RangeOp::AbsentOverTime => "absent_over_time",
            RangeOp::SumOverTime => "sum_over_time",
            RangeOp::AvgOverTime => "avg_over_time",
            RangeOp::MinOverTime => "min_over_time",
            RangeOp::MaxOverTime => "max_over_time",
            RangeOp::StdvarOverTime => "stdvar_over_time",
            RangeOp::StddevOverTime => "stddev_over_time",
            RangeOp::QuantileOverTime => "quantile_over_time",
            RangeOp::FirstOverTime => "first_over_time",
            RangeOp::LastOverTime => "last_over_time",
        }
    }

    pub fn from_name(name: &str) -> Option<RangeOp> {
        RangeOp::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// Whether the log range must `| unwrap` a label.
    pub fn requires_unwrap(self) -> bool {
        !matches!(
            self,
            RangeOp::Rate
                | RangeOp::CountOverTime
                | RangeOp::BytesRate
                | RangeOp::BytesOverTime
                | RangeOp::AbsentOverTime
        )
    }

    /// Whether the log range may `| unwrap` a label.
    pub fn allows_unwrap(self) -> bool {
        !matches!(
            self,
            RangeOp::CountOverTime | RangeOp::BytesRate | RangeOp::BytesOverTime
        )
    }

    /// Whether `by`/`without` may follow.
    pub fn allows_grouping(self) -> bool {
        self.requires_unwrap() && !matches!(self, RangeOp::SumOverTime | RangeOp::RateCounter)
    }
}

/// The log query a range aggregation reads, with its window.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRange {
    pub log: LogExpr,
    /// `| unwrap label` and the label filters after it.
    pub unwrap: Option<Unwrap>,
    /// The window, `[5m]`, in nanoseconds; positive.
    pub range: i64,
    /// `offset 1h`, in nanoseconds; 0 when absent.
    pub offset: i64,
}

/// `| unwrap duration(latency) | __error__=""`
#[derive(Debug, Clone, PartialEq)]
pub struct Unwrap {
    pub conversion: UnwrapConversion,
    pub label: String,
    /// Label filters after the unwrap, each a `| ...` stage.
    pub post_filters: Vec<LabelFilter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnwrapConversion {
    /// The value as a float.
    None,
    /// `duration(x)`, `duration_seconds(x)`: a Go duration, in seconds.
    Duration,
    DurationSeconds,
    /// `bytes(x)`: a byte size, in bytes.
    Bytes,
}

/// `by (a, b)` or `without (c)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

/// `op [grouping] ([param,] expr)`.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorAggregation {
    pub op: VectorOp,
    /// The k of `topk`/`bottomk`: a positive integer.
    pub param: Option<f64>,
    pub inner: Box<Expr>,
    pub grouping: Option<Grouping>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VectorOp {
    Sum,
    Avg,
    Min,
    Max,
    Stddev,
    Stdvar,
    Count,
    Topk,
    Bottomk,
    Sort,
    SortDesc,
}

impl VectorOp {
    pub const ALL: [VectorOp; 11] = [
        VectorOp::Sum,
        VectorOp::Avg,
        VectorOp::Min,
        VectorOp::Max,
        VectorOp::Stddev,
        VectorOp::Stdvar,
        VectorOp::Count,
        VectorOp::Topk,
        VectorOp::Bottomk,
        VectorOp::Sort,
        VectorOp::SortDesc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VectorOp::Sum => "sum",
            VectorOp::Avg => "avg",
            VectorOp::Min => "min",
            VectorOp::Max => "max",
            VectorOp::Stddev => "stddev",
            VectorOp::Stdvar => "stdvar",
            VectorOp::Count => "count",
            VectorOp::Topk => "topk",
            VectorOp::Bottomk => "bottomk",
            VectorOp::Sort => "sort",
            VectorOp::SortDesc => "sort_desc",
        }
    }

    pub fn from_name(name: &str) -> Option<VectorOp> {
        VectorOp::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// Whether the aggregation takes a leading parameter (`topk(5, ...)`).
    pub fn takes_param(self) -> bool {
        matches!(self, VectorOp::Topk | VectorOp::Bottomk)
    }

    /// Whether `by`/`without` may be given.
    pub fn allows_grouping(self) -> bool {
        !matches!(self, VectorOp::Sort | VectorOp::SortDesc)
    }
}

/// `lhs op [bool] [on|ignoring (...)] [group_left|group_right (...)] rhs`
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryExpr {
    pub op: BinaryOp,
    pub lhs: Box<Expr>,
    pub rhs: Box<Expr>,
    pub modifier: BinaryModifier,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BinaryModifier {
    /// `bool`: comparisons return 0/1 instead of filtering.
    pub return_bool: bool,
    /// `on (...)` / `ignoring (...)`
    pub matching: Option<VectorMatching>,
    /// `group_left (...)` / `group_right (...)`; only with `matching`.
    pub group: Option<GroupModifier>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorMatching {
    /// `on` when true, `ignoring` when false.
    pub on: bool,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupModifier {
    /// `group_left` when true, `group_right` when false.
    pub left: bool,
    /// Labels to copy from the "one" side.
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Neq,
    Gt,
    Ge,
    Lt,
    Le,
    And,
    Or,
    Unless,
}

impl BinaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
            BinaryOp::Eq => "==",
            BinaryOp::Neq => "!=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Unless => "unless",
        }
    }

    /// Binding power, as in Prometheus: `or` < `and unless` < comparisons
    /// < `+ -` < `* / %` < `^`.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And | BinaryOp::Unless => 2,
            BinaryOp::Eq
            | BinaryOp::Neq
            | BinaryOp::Gt
            | BinaryOp::Ge
            | BinaryOp::Lt
            | BinaryOp::Le => 3,
            BinaryOp::Add | BinaryOp::Sub => 4,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 5,
            BinaryOp::Pow => 6,
        }
    }

    /// `^` groups to the right; everything else to the left.
    pub fn is_right_associative(self) -> bool {
        self == BinaryOp::Pow
    }

    pub fn is_comparison(self) -> bool {
        self.precedence() == 3
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Unless)
    }
}

/// `label_replace(inner, "dst", "replacement", "src", "regex")`
#[derive(Debug, Clone, PartialEq)]
pub struct LabelReplace {
    pub inner: Box<Expr>,
    pub dst: String,
    /// May refer to groups as `$1` or `${name}`.
    pub replacement: String,
    pub src: String,
    /// Translated to Rust syntax; anchored at both ends when evaluated.
    pub regex: String,
}
