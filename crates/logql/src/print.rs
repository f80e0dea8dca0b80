//! The canonical printer: `Display` for the syntax tree.
//!
//! The output is LogQL that parses back to the same tree, in one spelling
//! per meaning: single spaces around pipeline and binary operators, `, `
//! between list items, strings double-quoted with Go escapes, regexes in
//! their translated form, durations and byte sizes in their shortest exact
//! unit, grouping before the arguments of vector aggregations
//! (`sum by (a) (...)`), parentheses only where precedence needs them,
//! `and` for every conjunction of label filters.
//!
//! Not here: pretty-printing over several lines.

use crate::ast::{
    BinaryExpr, CmpOp, Expr, ExtractParam, Grouping, LabelFilter, LabelFormatSource,
    LabelSelection, LineFilter, LineFilterOp, LogExpr, LogRange, RangeAggregation, Stage, Unwrap,
    UnwrapConversion, VectorAggregation,
};
use crate::parser::STANDALONE_STAGES;
use crate::units::{format_bytes, format_duration};
use skald_model::{MatchOp, Matcher};
use std::fmt::{self, Display, Formatter, Write};

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

struct Quoted<'a>(&'a str);

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_quoted(f, self.0)
    }
}

/// A number as LogQL reads it back: `5`, `0.25`, `-Inf`, `NaN`.
struct Number(f64);

impl Display for Number {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n.is_nan() {
            f.write_str("NaN")
        } else if n.is_infinite() {
            f.write_str(if n > 0.0 { "Inf" } else { "-Inf" })
        } else {
            write!(f, "{n}")
        }
    }
}

fn write_matcher(f: &mut Formatter<'_>, m: &Matcher) -> fmt::Result {
    write!(f, "{}{}{}", m.name, m.op.as_str(), Quoted(&m.value))
}

fn write_list<T>(
    f: &mut Formatter<'_>,
    items: &[T],
    mut each: impl FnMut(&mut Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        each(f, item)?;
    }
    Ok(())
}

fn write_labels(f: &mut Formatter<'_>, labels: &[String]) -> fmt::Result {
    f.write_char('(')?;
    write_list(f, labels, |f, l| f.write_str(l))?;
    f.write_char(')')
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(l) => l.fmt(f),
            Expr::RangeAggregation(r) => r.fmt(f),
            Expr::VectorAggregation(v) => v.fmt(f),
            Expr::Binary(b) => b.fmt(f),
            Expr::Literal(n) => Number(*n).fmt(f),
            Expr::Vector(n) => write!(f, "vector({})", Number(*n)),
            Expr::LabelReplace(l) => write!(
                f,
                "label_replace({}, {}, {}, {}, {})",
                l.inner,
                Quoted(&l.dst),
                Quoted(&l.replacement),
                Quoted(&l.src),
                Quoted(&l.regex)
            ),
        }
    }
}

impl Display for LogExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        write_list(f, &self.selector, write_matcher)?;
        f.write_char('}')?;
        for stage in &self.pipeline {
            write!(f, " {stage}")?;
        }
        Ok(())
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::LineFilter(l) => l.fmt(f),
            Stage::Json(params) => {
                f.write_str("| json")?;
                write_params(f, params)
            }
            Stage::Logfmt(p) => {
                f.write_str("| logfmt")?;
                if p.strict {
                    f.write_str(" --strict")?;
                }
                if p.keep_empty {
                    f.write_str(" --keep-empty")?;
                }
                write_params(f, &p.params)
            }
            Stage::Regexp(r) => write!(f, "| regexp {}", Quoted(r)),
            Stage::Pattern(p) => write!(f, "| pattern {}", Quoted(p)),
            Stage::Unpack => f.write_str("| unpack"),
            Stage::LabelFilter(l) if starts_like_a_stage(l) => write!(f, "| ({l})"),
            Stage::LabelFilter(l) => write!(f, "| {l}"),
            Stage::LineFormat(t) => write!(f, "| line_format {}", Quoted(t)),
            Stage::LabelFormat(items) => {
                f.write_str("| label_format ")?;
                write_list(f, items, |f, item| {
                    write!(f, "{}=", item.dst)?;
                    match &item.src {
                        LabelFormatSource::Rename(src) => f.write_str(src),
                        LabelFormatSource::Template(t) => Quoted(t).fmt(f),
                    }
                })
            }
            Stage::Drop(items) => {
                f.write_str("| drop ")?;
                write_list(f, items, write_selection)
            }
            Stage::Keep(items) => {
                f.write_str("| keep ")?;
                write_list(f, items, write_selection)
            }
            Stage::Decolorize => f.write_str("| decolorize"),
        }
    }
}

/// Whether a label filter printed after `|` would read as a stage and a
/// line filter: `| json!="x"` is the `json` stage and `!= "x"`.
fn starts_like_a_stage(filter: &LabelFilter) -> bool {
    let mut first = filter;
    while let LabelFilter::And(items) | LabelFilter::Or(items) = first {
        match items.first() {
            Some(item) => first = item,
            None => return false,
        }
    }
    let name = match first {
        LabelFilter::Matcher(m) if matches!(m.op, MatchOp::Neq | MatchOp::Nre) => &m.name,
        LabelFilter::Number { name, op, .. }
        | LabelFilter::Duration { name, op, .. }
        | LabelFilter::Bytes { name, op, .. }
            if *op == CmpOp::Neq =>
        {
            name
        }
        LabelFilter::Ip {
            name,
            negated: true,
            ..
        } => name,
        _ => return false,
    };
    STANDALONE_STAGES.contains(&name.as_str())
}

fn write_params(f: &mut Formatter<'_>, params: &[ExtractParam]) -> fmt::Result {
    if params.is_empty() {
        return Ok(());
    }
    f.write_char(' ')?;
    write_list(f, params, |f, p| {
        f.write_str(&p.label)?;
        match &p.expr {
            Some(e) => write!(f, "={}", Quoted(e)),
            None => Ok(()),
        }
    })
}

fn write_selection(f: &mut Formatter<'_>, s: &LabelSelection) -> fmt::Result {
    match s {
        LabelSelection::Name(n) => f.write_str(n),
        LabelSelection::Matching(m) => write_matcher(f, m),
    }
}

impl Display for LineFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.as_str())?;
        let ip = matches!(self.op, LineFilterOp::Ip | LineFilterOp::NotIp);
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(" or")?;
            }
            if ip {
                write!(f, " ip({})", Quoted(v))?;
            } else {
                write!(f, " {}", Quoted(v))?;
            }
        }
        Ok(())
    }
}

impl Display for LabelFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LabelFilter::Matcher(m) => write_matcher(f, m),
            LabelFilter::Number { name, op, value } => {
                write!(f, "{name} {} {}", op.as_str(), Number(*value))
            }
            LabelFilter::Duration { name, op, value } => {
                write!(f, "{name} {} {}", op.as_str(), format_duration(*value))
            }
            LabelFilter::Bytes { name, op, value } => {
                write!(f, "{name} {} {}", op.as_str(), format_bytes(*value))
            }
            LabelFilter::Ip {
                name,
                negated,
                range,
            } => {
                let op = if *negated { "!=" } else { "=" };
                write!(f, "{name}{op}ip({})", Quoted(range))
            }
            LabelFilter::And(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    if matches!(item, LabelFilter::Or(_)) {
                        write!(f, "({item})")?;
                    } else {
                        item.fmt(f)?;
                    }
                }
                Ok(())
            }
            LabelFilter::Or(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" or ")?;
                    }
                    item.fmt(f)?;
                }
                Ok(())
            }
        }
    }
}

fn write_grouping(f: &mut Formatter<'_>, g: &Grouping) -> fmt::Result {
    f.write_str(if g.without { "without " } else { "by " })?;
    write_labels(f, &g.labels)
}

impl Display for RangeAggregation {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.op.as_str())?;
        if let Some(p) = self.param {
            write!(f, "{}, ", Number(p))?;
        }
        write!(f, "{})", self.range)?;
        if let Some(g) = &self.grouping {
            f.write_char(' ')?;
            write_grouping(f, g)?;
        }
        Ok(())
    }
}

impl Display for LogRange {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.log.fmt(f)?;
        if let Some(u) = &self.unwrap {
            write!(f, " {u}")?;
        }
        if !self.log.pipeline.is_empty() || self.unwrap.is_some() {
            f.write_char(' ')?;
        }
        write!(f, "[{}]", format_duration(self.range))?;
        if self.offset != 0 {
            write!(f, " offset {}", format_duration(self.offset))?;
        }
        Ok(())
    }
}

impl Display for Unwrap {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("| unwrap ")?;
        match self.conversion {
            UnwrapConversion::None => f.write_str(&self.label)?,
            UnwrapConversion::Duration => write!(f, "duration({})", self.label)?,
            UnwrapConversion::DurationSeconds => write!(f, "duration_seconds({})", self.label)?,
            UnwrapConversion::Bytes => write!(f, "bytes({})", self.label)?,
        }
        for filter in &self.post_filters {
            write!(f, " | {filter}")?;
        }
        Ok(())
    }
}

impl Display for VectorAggregation {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.as_str())?;
        if let Some(g) = &self.grouping {
            f.write_char(' ')?;
            write_grouping(f, g)?;
            f.write_char(' ')?;
        }
        f.write_char('(')?;
        if let Some(p) = self.param {
            write!(f, "{}, ", Number(p))?;
        }
        write!(f, "{})", self.inner)
    }
}

impl Display for BinaryExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let prec = self.op.precedence();
        let right_assoc = self.op.is_right_associative();
        let needs_parens = |child: &Expr, is_left: bool| match child {
            Expr::Binary(c) => {
                let p = c.op.precedence();
                p < prec || (p == prec && (is_left == right_assoc))
            }
            _ => false,
        };
        let operand = |e: &Expr, is_left: bool| {
            if needs_parens(e, is_left) {
                format!("({e})")
            } else {
                e.to_string()
            }
        };
        f.write_str(&operand(&self.lhs, true))?;
        let rhs = operand(&self.rhs, false);
        write!(f, " {}", self.op.as_str())?;
        let m = &self.modifier;
        if m.return_bool {
            f.write_str(" bool")?;
        }
        if let Some(v) = &m.matching {
            f.write_str(if v.on { " on " } else { " ignoring " })?;
            write_labels(f, &v.labels)?;
        }
        if let Some(g) = &m.group {
            f.write_str(if g.left {
                " group_left"
            } else {
                " group_right"
            })?;
            // An empty list can be left out, unless the right operand
            // starts with '(' and would be read as the list.
            if !g.labels.is_empty() || rhs.starts_with('(') {
                f.write_char(' ')?;
                write_labels(f, &g.labels)?;
            }
        }
        f.write_char(' ')?;
        f.write_str(&rhs)
    }
}
