//! The LogQL syntax tree: what a query says, after parsing and validation.
//!
//! Regexes in the tree (label matchers, `|~` filters) are stored already
//! translated to Rust `regex` syntax by [`crate::translate_regex`], so the
//! stages that compile them need no knowledge of Go's dialect; the printer
//! writes that translated form, which reads back to the same tree.
//!
//! Not here: evaluation, or any compiled form (see `skald-pipeline` and
//! `skald-query`). Enums that LogQL will grow are `#[non_exhaustive]`.

use skald_model::Matcher;

/// A whole LogQL query.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Expr {
    /// A log query: a stream selector and a pipeline.
    Log(LogExpr),
}

/// `{app="api"} |= "error" ...`
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
    /// `|= "a"`, `!~ "b" or "c"`, ...
    LineFilter(LineFilter),
}

/// A line filter: an operator and one or more values joined by `or`.
///
/// A line passes a positive filter if it matches any of the values; for the
/// negated operators it must match none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFilter {
    pub op: LineFilterOp,
    /// The `or` chain, at least one value. For the regex operators each
    /// value is in Rust `regex` syntax (translated from Go's), unanchored.
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
}

impl LineFilterOp {
    pub fn as_str(self) -> &'static str {
        match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Regex => "|~",
            LineFilterOp::NotRegex => "!~",
        }
    }

    /// Whether a line passes when it does *not* match.
    pub fn is_negated(self) -> bool {
        matches!(self, LineFilterOp::NotContains | LineFilterOp::NotRegex)
    }
}
