//! The one error type of this crate: a positioned parse error.
//!
//! Every failure — lexing, grammar, regex translation, validation such as
//! Loki's "at least one non-empty matcher" rule — is reported as a
//! [`ParseError`] carrying the byte offset into the query, a 1-based line
//! and column (columns count characters, not bytes) and a lowercase message
//! that says what was expected and what was found.

use thiserror::Error;

/// What kind of problem a [`ParseError`] reports, for callers that want to
/// react differently (all of them are client errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text does not follow LogQL's grammar (or a literal is malformed).
    Syntax,
    /// A regular expression is invalid, unsupported or too large.
    Regex,
    /// The query is well formed but refused, e.g. a selector whose matchers
    /// all match the empty string.
    Invalid,
    /// The query exceeds a size or nesting limit.
    TooComplex,
}

/// A positioned error in a LogQL query.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("parse error at line {line}, col {col}: {message}")]
pub struct ParseError {
    /// Byte offset into the query where the problem starts.
    pub pos: usize,
    /// 1-based line of `pos`.
    pub line: usize,
    /// 1-based column of `pos`, counted in characters.
    pub col: usize,
    /// What was expected and what was found, lowercase, no trailing period.
    pub message: String,
    pub kind: ErrorKind,
}

impl ParseError {
    /// Builds an error at byte offset `pos` of `src`, computing line and
    /// column. `pos` is clamped to the input and to a character boundary.
    pub(crate) fn at(src: &str, pos: usize, kind: ErrorKind, message: impl Into<String>) -> Self {
        let mut pos = pos.min(src.len());
        while !src.is_char_boundary(pos) {
            pos -= 1;
        }
        let before = &src[..pos];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        ParseError {
            pos,
            line,
            col,
            message: message.into(),
            kind,
        }
    }

    /// Moves an error found inside a sub-text (a regex inside a string
    /// literal) to the literal's position in the query.
    pub(crate) fn relocate(self, src: &str, pos: usize) -> Self {
        ParseError::at(src, pos, self.kind, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let src = "ab\né{x";
        let e = ParseError::at(src, src.find('{').unwrap(), ErrorKind::Syntax, "boom");
        assert_eq!((e.line, e.col), (2, 2));
        assert_eq!(e.to_string(), "parse error at line 2, col 2: boom");
        let e = ParseError::at(src, 1000, ErrorKind::Syntax, "end");
        assert_eq!((e.pos, e.line, e.col), (src.len(), 2, 4));
    }
}
