//! What the label filters after a `json` or `logfmt` parser require of a
//! line's fields, in a form the field columns of a stored block can be
//! checked against (the checking, and the columns, are the query's and
//! the chunk crate's).
//!
//! [`Pipeline::field_conditions`] gives them only where "the filter sees
//! the field's value" is sound. The rule:
//!
//! - the first stage that is not a line filter is `| json` or `| logfmt`
//!   extracting every field (no parameters, no `--keep-empty`): before it
//!   the line is the stored line and no label exists but the stream's and
//!   the entry's metadata;
//! - the conditions are the label filters after it, up to the first stage
//!   that is neither a label filter nor a line filter (`label_format`,
//!   `line_format`, `unpack`, `drop`, `keep`, `decolorize`, a second
//!   parser: each may change what a later filter sees), each split at its
//!   top-level `and`s;
//! - a condition is usable when it reads one label, whose name does not
//!   start with `__` (the parsers' own error labels) and does not end in
//!   `_extracted` (a field renamed because the stream has its name: the
//!   checker also refuses names the stream has);
//! - a numeric, duration or bytes filter that fails to convert a value
//!   lets the line through with an error, after which later numeric
//!   filters let it through too: so a condition is only usable when the
//!   conversions of every earlier one cannot fail on the block
//!   ([`FieldCondition::conversions`]).
//!
//! What a usable condition sees on a row is the row's field value, or,
//! when the row lacks the field, a metadata label of that name if the
//! entry has one, else nothing; [`FieldCondition::passes`] answers for a
//! value exactly as the filter would, by running it.

use crate::label_filter::CompiledLabelFilter;
use crate::labels::LabelsBuilder;
use skald_logql::CmpOp;

/// The parser whose fields the conditions are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldParser {
    Json,
    Logfmt,
}

/// A conversion a numeric label filter makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    Number,
    Duration,
    Bytes,
}

/// A single comparison of a converted value, for value ranges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Number(CmpOp, f64),
    Duration(CmpOp, i64),
    Bytes(CmpOp, u64),
}

impl Bound {
    /// Whether some value in `lo..=hi` passes the comparison.
    pub fn may_hold_in<T: PartialOrd + Copy>(op: CmpOp, value: T, lo: T, hi: T) -> bool {
        match op {
            CmpOp::Eq => lo <= value && value <= hi,
            CmpOp::Neq => !(lo == value && hi == value),
            CmpOp::Gt => hi > value,
            CmpOp::Ge => hi >= value,
            CmpOp::Lt => lo < value,
            CmpOp::Le => lo <= value,
        }
    }
}

/// The conditions of a pipeline (see the module documentation).
#[derive(Debug)]
pub struct FieldConditions<'p> {
    pub parser: FieldParser,
    /// In pipeline order.
    pub conditions: Vec<FieldCondition<'p>>,
}

/// One label filter conjunct after the parser.
#[derive(Debug)]
pub struct FieldCondition<'p> {
    filter: &'p CompiledLabelFilter,
    /// The one label it reads, when it reads one and it may be a field.
    name: Option<&'p str>,
}

impl<'p> FieldCondition<'p> {
    fn new(filter: &'p CompiledLabelFilter) -> Self {
        let mut names: Vec<&'p str> = Vec::new();
        filter.for_each_name_ref(&mut |n| {
            if !names.contains(&n) {
                names.push(n);
            }
        });
        let name = match names.as_slice() {
            [n] if !n.starts_with("__") && !n.ends_with("_extracted") => Some(*n),
            _ => None,
        };
        FieldCondition { filter, name }
    }

    /// The field the condition reads, when it is usable.
    pub fn name(&self) -> Option<&'p str> {
        self.name
    }

    /// Whether a line without errors whose label is `value` (`None`:
    /// absent) passes: the filter itself, run on that one label. A value
    /// that does not convert passes, as it does in the pipeline.
    pub fn passes(&self, value: Option<&str>) -> bool {
        let mut labels = LabelsBuilder::default();
        labels.reset(&[], &[]);
        if let (Some(name), Some(v)) = (self.name, value) {
            labels.set_parsed(name, v);
        }
        self.filter.process(&mut labels)
    }

    /// The comparison, when the condition is a single numeric one.
    pub fn bound(&self) -> Option<Bound> {
        match self.filter {
            CompiledLabelFilter::Number { op, value, .. } => Some(Bound::Number(*op, *value)),
            CompiledLabelFilter::Duration { op, value, .. } => Some(Bound::Duration(*op, *value)),
            CompiledLabelFilter::Bytes { op, value, .. } => Some(Bound::Bytes(*op, *value)),
            _ => None,
        }
    }

    /// Calls `f` with every label the condition converts, and how: where
    /// a conversion can fail, later conditions are not usable.
    pub fn conversions(&self, f: &mut impl FnMut(&str, Conversion)) {
        fn walk(c: &CompiledLabelFilter, f: &mut impl FnMut(&str, Conversion)) {
            match c {
                CompiledLabelFilter::Number { name, .. } => f(name, Conversion::Number),
                CompiledLabelFilter::Duration { name, .. } => f(name, Conversion::Duration),
                CompiledLabelFilter::Bytes { name, .. } => f(name, Conversion::Bytes),
                CompiledLabelFilter::And(items) | CompiledLabelFilter::Or(items) => {
                    items.iter().for_each(|i| walk(i, f))
                }
                CompiledLabelFilter::Matcher(_) | CompiledLabelFilter::Ip { .. } => {}
            }
        }
        walk(self.filter, f)
    }
}

/// Splits `f` at its top-level `and`s.
fn conjuncts<'p>(f: &'p CompiledLabelFilter, out: &mut Vec<FieldCondition<'p>>) {
    match f {
        CompiledLabelFilter::And(items) => items.iter().for_each(|i| conjuncts(i, out)),
        other => out.push(FieldCondition::new(other)),
    }
}

pub(crate) fn collect<'p>(
    parser: FieldParser,
    filters: impl Iterator<Item = &'p CompiledLabelFilter>,
) -> FieldConditions<'p> {
    let mut conditions = Vec::new();
    for f in filters {
        conjuncts(f, &mut conditions);
    }
    FieldConditions { parser, conditions }
}
