use thiserror::Error;

/// What can be wrong with a value coming from outside.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ModelError {
    #[error("invalid label name {name:?}: must match [a-zA-Z_][a-zA-Z0-9_]*")]
    InvalidLabelName { name: String },
    #[error("duplicate label name {name:?}")]
    DuplicateLabelName { name: String },
    #[error("empty label set: a stream needs at least one label")]
    EmptyLabelSet,
    #[error("invalid label set {input:?}: {reason}")]
    InvalidLabelSyntax { input: String, reason: String },
    #[error("invalid tenant id {tenant:?}: {reason}")]
    InvalidTenant { tenant: String, reason: String },
    #[error("invalid regex {pattern:?}: {reason}")]
    InvalidRegex { pattern: String, reason: String },
}
