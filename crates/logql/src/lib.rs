//! LogQL, Loki's query language: lexer, parser, syntax tree and canonical
//! printer.
//!
//! [`parse_expr`] turns query text into an [`Expr`] or a positioned
//! [`ParseError`]; `Display` on the tree prints canonical LogQL that parses
//! back to the same tree. Every regex in a query is translated from Go's RE2
//! dialect to Rust's by [`translate_regex`] while parsing, so the tree holds
//! regexes ready to compile.
//!
//! How the parts fit: `lexer` makes tokens, `parser` builds the `ast` from
//! them (calling `regex` for each regex, `units` for durations and byte
//! sizes, `embedded` to check templates, patterns and IP ranges), `print`
//! writes the `ast` back.
//!
//! Input safety: query length and nesting depth are bounded, regexes are
//! compiled with a size limit, and no input makes the parser panic.
//!
//! Not here: any I/O, evaluation, or compiled forms of the pipeline (see
//! `skald-pipeline` and `skald-query`).

mod ast;
mod embedded;
mod error;
mod lexer;
mod parser;
mod print;
mod regex;
mod units;

pub use ast::{
    BinaryExpr, BinaryModifier, BinaryOp, CmpOp, Expr, ExtractParam, GroupModifier, Grouping,
    LabelFilter, LabelFormat, LabelFormatSource, LabelReplace, LabelSelection, LineFilter,
    LineFilterOp, LogExpr, LogRange, LogfmtParser, RangeAggregation, RangeOp, Stage, Unwrap,
    UnwrapConversion, VectorAggregation, VectorMatching, VectorOp,
};
pub use error::{ErrorKind, ParseError};
pub use parser::{MAX_BINARY_OPS, MAX_DEPTH, MAX_QUERY_BYTES, parse_expr};
pub use regex::{REGEX_SIZE_LIMIT, translate_regex};
