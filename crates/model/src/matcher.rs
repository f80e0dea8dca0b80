//! Label matchers: the `name op "value"` parts of a stream selector.

use crate::ModelError;
use crate::labels::{LabelSet, write_quoted};
use regex::Regex;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `=~`, the regex fully anchored as in Loki
    Re,
    /// `!~`
    Nre,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::Neq => "!=",
            MatchOp::Re => "=~",
            MatchOp::Nre => "!~",
        }
    }
}

/// One label matcher. A missing label matches as the empty value, as in
/// Prometheus and Loki: `{a!="x"}` matches streams without `a`.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl Matcher {
    /// Regexes larger than this when compiled are refused: a query must not
    /// be able to make us build an enormous automaton.
    pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

    /// Builds a matcher. For regex operators `value` must already be in Rust
    /// `regex` syntax (LogQL's RE2 dialect is translated by `skald-logql`);
    /// it is anchored at both ends here.
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Self, ModelError> {
        let value = value.into();
        let regex = match op {
            MatchOp::Re | MatchOp::Nre => Some(
                regex::RegexBuilder::new(&format!("^(?s:{value})$"))
                    .size_limit(Self::REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| ModelError::InvalidRegex {
                        pattern: value.clone(),
                        reason: e.to_string(),
                    })?,
            ),
            MatchOp::Eq | MatchOp::Neq => None,
        };
        Ok(Matcher {
            name: name.into(),
            op,
            value,
            regex,
        })
    }

    /// Whether a label value (empty when the label is absent) matches.
    pub fn matches_value(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Neq => v != self.value,
            MatchOp::Re => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::Nre => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.matches_value(labels.get(&self.name).unwrap_or(""))
    }

    /// Whether this matcher accepts a stream lacking the label. A selector
    /// made only of such matchers would select everything, which Loki
    /// refuses.
    pub fn matches_empty(&self) -> bool {
        self.matches_value("")
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.name, self.op.as_str())?;
        write_quoted(f, &self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_are_anchored_and_absent_is_empty() {
        let ls = LabelSet::parse(r#"{app="api-server"}"#).unwrap();
        assert!(
            !Matcher::new("app", MatchOp::Re, "api")
                .unwrap()
                .matches(&ls)
        );
        assert!(
            Matcher::new("app", MatchOp::Re, "api.*")
                .unwrap()
                .matches(&ls)
        );
        assert!(
            Matcher::new("env", MatchOp::Neq, "prod")
                .unwrap()
                .matches(&ls)
        );
        assert!(Matcher::new("env", MatchOp::Eq, "").unwrap().matches(&ls));
        assert!(
            Matcher::new("a", MatchOp::Re, ".*")
                .unwrap()
                .matches_empty()
        );
        assert!(
            !Matcher::new("a", MatchOp::Re, ".+")
                .unwrap()
                .matches_empty()
        );
        assert!(Matcher::new("a", MatchOp::Re, "(").is_err());
    }
}
