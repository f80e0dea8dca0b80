//! The per-line stages of a LogQL log pipeline, compiled once per query and
//! run over every candidate line, with Grafana Loki 3.x semantics.
//!
//! How the parts fit: [`Pipeline::new`] compiles the `Stage`s of a parsed
//! query (from `skald-logql`) into a list of steps; a [`LineProcessor`]
//! borrowed from it runs them over one line at a time, reusing its buffers.
//! Steps come from the modules named after the stages a Loki user knows:
//! [`line_filter`] (`|=`, `|~`, `|>`, `ip(...)`), `parsers` (`json`,
//! `logfmt`, `regexp`, `pattern`, `unpack`), `label_filter`, `format`
//! (`line_format`, `label_format`, on the Go-template engine in
//! [`template`]), `select` (`drop`, `keep`) and `decolorize`. The label set
//! a line carries, with Loki's rules for clashes and errors, lives in
//! [`labels`]; value conversions shared by filters and `unwrap` in
//! [`units`]; sample extraction for metric queries in [`unwrap`].
//!
//! ```
//! use skald_logql::{Expr, parse_expr};
//! use skald_model::Label;
//! use skald_pipeline::Pipeline;
//!
//! let query = r#"{app="api"} | logfmt | level="error" | line_format "{{.msg}}""#;
//! let Expr::Log(log) = parse_expr(query).unwrap() else { unreachable!() };
//! let pipeline = Pipeline::new(&log.pipeline).unwrap();
//! let mut processor = pipeline.processor();
//! let stream = [Label::new("app", "api")];
//! let out = processor
//!     .process(0, "level=error msg=boom", &stream, &[])
//!     .unwrap();
//! assert_eq!(out.line, "boom");
//! assert_eq!(out.labels.len(), 3); // app, level, msg
//! assert!(processor.process(0, "level=info msg=ok", &stream, &[]).is_none());
//! ```
//!
//! Not here: reading blocks, merging streams, aggregation (`skald-query`),
//! or parsing LogQL (`skald-logql`).

pub mod fields;
mod format;
pub mod ip;
pub mod label_filter;
pub mod labels;
pub mod line_filter;
pub mod parsers;
pub mod pattern;
mod pipeline;
pub mod select;
pub mod template;
pub mod units;
pub mod unwrap;

pub use line_filter::LineFilterChain;
pub use pipeline::{LineProcessor, Pipeline, Processed, Sample};
pub use unwrap::Unwrapper;

/// Why a pipeline could not be compiled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    #[error("invalid regex {pattern:?} in line filter: {reason}")]
    Regex { pattern: String, reason: String },
    #[error("{0}")]
    Pattern(String),
    #[error("{0}")]
    Ip(String),
    #[error("invalid {stage} stage: {reason}")]
    Stage { stage: String, reason: String },
    #[error("stage `{0}` is not supported")]
    Unsupported(String),
}
