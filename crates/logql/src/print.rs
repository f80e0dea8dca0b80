//! The canonical printer: `Display` for the syntax tree.
//!
//! The output is LogQL that parses back to the same tree, in one spelling
//! per meaning: single spaces around pipeline operators, `, ` between
//! matchers, strings double-quoted with Go escapes, regexes in their
//! translated form, durations and byte sizes in their shortest exact unit.
//!
//! Not here: pretty-printing over several lines.

use crate::ast::{Expr, LineFilter, LogExpr, Stage};
use skald_model::Matcher;
use std::fmt::{self, Display, Write};

/// Writes `s` as a double-quoted Go string literal.
pub(crate) fn write_quoted(f: &mut impl Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 || c == '\u{7f}' => write!(f, "\\x{:02x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

pub(crate) struct Quoted<'a>(pub &'a str);

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_quoted(f, self.0)
    }
}

pub(crate) fn write_matchers(f: &mut fmt::Formatter<'_>, matchers: &[Matcher]) -> fmt::Result {
    for (i, m) in matchers.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{}{}{}", m.name, m.op.as_str(), Quoted(&m.value))?;
    }
    Ok(())
}

impl Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(l) => l.fmt(f),
        }
    }
}

impl Display for LogExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        write_matchers(f, &self.selector)?;
        f.write_char('}')?;
        for stage in &self.pipeline {
            write!(f, " {stage}")?;
        }
        Ok(())
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::LineFilter(l) => l.fmt(f),
        }
    }
}

impl Display for LineFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.as_str())?;
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(" or")?;
            }
            write!(f, " {}", Quoted(v))?;
        }
        Ok(())
    }
}
