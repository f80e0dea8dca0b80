//! Skipping segment chunks by their field columns.
//!
//! A chunk's field columns ([`skald_chunk::columns`]) say, per field that
//! `json` or `logfmt` would extract, which values its rows hold (a
//! dictionary) or their range. [`ColumnPruner`] checks the label filters
//! after the parser ([`skald_pipeline::fields`], which states when that is
//! sound) against them, and rules a chunk out only when no row can pass:
//!
//! - every row of the chunk must be one the parser reads cleanly (the
//!   columns' `covers_all`), so no row carries a parser error;
//! - the field's name must not be a stream label (the filter would see
//!   the stream's value, the field becoming `name_extracted`);
//! - the values a row may show the filter are: each dictionary value; no
//!   value, for rows without the field (then, if any entry of the chunk
//!   carries structured metadata, any value: metadata of that name shows
//!   through); for a column without dictionary, any value, unless the
//!   filter is one numeric comparison and every value converts (the
//!   column has that range), when only values in the range;
//! - a field without a column says nothing unless the format's key set is
//!   complete (then no row has it).
//!
//! Label filters that parsers imply of the raw line (`| logfmt |
//! level="error"` needs `error` in the line) also skip chunks by their
//! trigram filters, once the columns show that no line of the chunk has a
//! backslash escape or structured metadata.
//!
//! Columns are an index: with them or without (see
//! [`crate::set_field_columns`]) every answer is the same; the conformance
//! corpus runs both ways.

use skald_chunk::columns::{BlockColumns, Column, ColumnDetail, FieldFormat};
use skald_model::Label;
use skald_pipeline::Pipeline;
use skald_pipeline::fields::{Bound, Conversion, FieldCondition, FieldConditions, FieldParser};
use skald_store::{RequiredLiterals, Source};
use std::sync::atomic::{AtomicU8, Ordering};

/// 0: not read yet from the environment; 1: on; 2: off.
static FIELD_COLUMNS: AtomicU8 = AtomicU8::new(0);

/// Whether queries use field columns: on unless `SKALD_FIELD_COLUMNS` is
/// `off`, `false` or `0` when first asked, or [`set_field_columns`] says
/// otherwise. Answers are the same either way; only the work differs.
pub fn field_columns() -> bool {
    match FIELD_COLUMNS.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let off = std::env::var("SKALD_FIELD_COLUMNS")
                .is_ok_and(|v| matches!(v.trim(), "off" | "false" | "0"));
            let _ = FIELD_COLUMNS.compare_exchange(
                0,
                if off { 2 } else { 1 },
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            FIELD_COLUMNS.load(Ordering::Relaxed) == 1
        }
    }
}

/// Turns the use of field columns on or off for the whole process (the
/// conformance tests compare answers both ways).
pub fn set_field_columns(on: bool) {
    FIELD_COLUMNS.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// Checks chunks against one query's field conditions.
pub(crate) struct ColumnPruner<'p> {
    format: FieldFormat,
    conditions: Option<FieldConditions<'p>>,
    /// `(name, the value as a required literal)`.
    implied: Vec<(&'p str, RequiredLiterals)>,
}

impl<'p> ColumnPruner<'p> {
    /// `None` when columns are off or cannot help this pipeline.
    pub(crate) fn new(pipeline: &'p Pipeline) -> Option<Self> {
        if !field_columns() {
            return None;
        }
        let conditions = pipeline.field_conditions();
        let implied: Vec<(&str, RequiredLiterals)> = pipeline
            .implied_literals()
            .filter_map(|(name, value)| {
                let literal = String::from_utf8(value.to_vec()).ok()?;
                let required = RequiredLiterals::new(&[vec![literal]]);
                (!required.is_empty()).then_some((name, required))
            })
            .collect();
        let usable = conditions
            .as_ref()
            .is_some_and(|c| c.conditions.iter().any(|c| c.name().is_some()));
        if !usable && implied.is_empty() {
            return None;
        }
        let format = match conditions.as_ref().map(|c| c.parser) {
            Some(FieldParser::Logfmt) => FieldFormat::Logfmt,
            _ => FieldFormat::Json,
        };
        Some(ColumnPruner {
            format,
            conditions,
            implied,
        })
    }

    /// Whether `src`, of the stream with `stream` labels, may hold a line
    /// that passes; `false` is certain.
    pub(crate) fn may_pass(&self, src: &Source, stream: &skald_model::LabelSet) -> bool {
        let Some(cols) = src.columns(ColumnDetail::Header) else {
            return true;
        };
        if cols.escaped_rows == 0 && cols.metadata_rows == 0 {
            for (name, literal) in &self.implied {
                if stream.get(name).is_none() && !src.may_hold(literal) {
                    return false;
                }
            }
        }
        let Some(conditions) = &self.conditions else {
            return true;
        };
        if !cols.covers_all(self.format) {
            return true;
        }
        for cond in &conditions.conditions {
            if let Some(name) = cond.name()
                && stream.get(name).is_none()
                && !self.condition_may_pass(&cols, cond, name)
            {
                return false;
            }
            if !self.conversions_cannot_fail(&cols, cond, stream) {
                // A row may now carry an error, which numeric filters let
                // through: later conditions say nothing.
                break;
            }
        }
        true
    }

    fn condition_may_pass(
        &self,
        cols: &BlockColumns,
        cond: &FieldCondition<'_>,
        name: &str,
    ) -> bool {
        let Some(column) = cols.column(self.format, name) else {
            if !cols.keys_complete(self.format) {
                return true;
            }
            // No row has the field.
            return cols.metadata_rows > 0 || cond.passes(None);
        };
        if column.present < cols.rows && (cols.metadata_rows > 0 || cond.passes(None)) {
            return true;
        }
        if let Some(dict) = &column.dictionary {
            return dict.values.iter().any(|(v, _)| cond.passes(Some(v)));
        }
        match cond.bound() {
            Some(bound) => bound_may_hold(column, bound),
            None => true,
        }
    }

    /// Whether every conversion `cond` makes succeeds on every row of the
    /// chunk that has the field. Not known for a stream label (the filter
    /// converts the stream's value) nor for the names no column holds
    /// (`__error__`, `name_extracted`).
    fn conversions_cannot_fail(
        &self,
        cols: &BlockColumns,
        cond: &FieldCondition<'_>,
        stream: &skald_model::LabelSet,
    ) -> bool {
        let mut ok = true;
        cond.conversions(&mut |name, kind| {
            let field = stream.get(name).is_none()
                && !name.starts_with("__")
                && !name.ends_with("_extracted");
            ok &= field
                && match cols.column(self.format, name) {
                    Some(c) => match kind {
                        Conversion::Number => c.number.is_some(),
                        Conversion::Duration => c.duration.is_some(),
                        Conversion::Bytes => c.bytes.is_some(),
                    },
                    // Absent from every row: a numeric filter drops the row
                    // without converting (metadata of that name would be
                    // converted, though).
                    None => cols.keys_complete(self.format) && cols.metadata_rows == 0,
                };
        });
        ok
    }
}

/// Whether a value in the column's range may pass `bound`; true when the
/// column has no range of that kind (some value does not convert, and a
/// value that does not convert passes).
fn bound_may_hold(column: &Column, bound: Bound) -> bool {
    match bound {
        Bound::Number(op, v) => column
            .number
            .is_none_or(|(lo, hi)| Bound::may_hold_in(op, v, lo, hi)),
        Bound::Duration(op, v) => column
            .duration
            .is_none_or(|(lo, hi)| Bound::may_hold_in(op, v, lo, hi)),
        Bound::Bytes(op, v) => column
            .bytes
            .is_none_or(|(lo, hi)| Bound::may_hold_in(op, v, lo, hi)),
    }
}

/// Where the rows of a chunk go in a `sum by (names) (count_over_time(...
/// | json [r]))` (or `| logfmt`, or `rate`), read from its columns
/// instead of parsing each line: the labels of each distinct key, and each
/// row's key.
pub(crate) struct GroupedRows {
    /// Per key, its labels, sorted by name, as the parser and the
    /// grouping would leave them.
    pub keys: Vec<Vec<Label>>,
    /// Per row, its index in `keys`.
    pub rows: Vec<u32>,
}

/// Most distinct value combinations read from columns for one chunk.
const MAX_COMBINATIONS: usize = 4096;

/// The grouping of every row of a chunk by `names`, when the columns give
/// it exactly: every row is one the parser reads cleanly (no error
/// labels), no entry carries metadata (which would add labels), and each
/// name is a stream label (the field of that name then goes to
/// `name_extracted`, which is not grouped), or a field with a dictionary,
/// or a field no row has (a complete key set without it). Anything else
/// (`__error__`, `_extracted` names, a field without dictionary) gives
/// `None`, and the chunk is parsed line by line.
pub(crate) fn grouped_rows(
    cols: &BlockColumns,
    format: FieldFormat,
    stream: &[Label],
    names: &[String],
) -> Option<GroupedRows> {
    if !cols.covers_all(format) || cols.metadata_rows > 0 {
        return None;
    }
    let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    enum Part<'c> {
        Fixed(&'c str),
        Field(&'c [(String, u32)], &'c [u8]),
    }
    let mut parts: Vec<(&str, Part<'_>)> = Vec::new();
    let mut combinations = 1usize;
    for name in names {
        if name.starts_with("__") || name.ends_with("_extracted") {
            return None;
        }
        if let Some(l) = stream.iter().find(|l| l.name == name) {
            parts.push((name, Part::Fixed(&l.value)));
            continue;
        }
        match cols.column(format, name) {
            Some(Column {
                dictionary: Some(d),
                ..
            }) => {
                combinations = combinations.checked_mul(d.values.len() + 1)?;
                parts.push((name, Part::Field(&d.values, &d.codes)));
            }
            Some(_) => return None,
            None if cols.keys_complete(format) => {}
            None => return None,
        }
    }
    if combinations > MAX_COMBINATIONS {
        return None;
    }
    // Mixed radix over the fields' codes (0: no value).
    let mut index = vec![0u32; cols.rows as usize];
    let mut radix = 1u32;
    for (_, part) in &parts {
        if let Part::Field(values, codes) = part {
            for (i, &c) in index.iter_mut().zip(codes.iter()) {
                *i += u32::from(c) * radix;
            }
            radix *= values.len() as u32 + 1;
        }
    }
    let mut slot: Vec<u32> = vec![u32::MAX; combinations];
    let mut keys: Vec<Vec<Label>> = Vec::new();
    let mut rows = Vec::with_capacity(index.len());
    for combined in index {
        let s = &mut slot[combined as usize];
        if *s == u32::MAX {
            *s = keys.len() as u32;
            let mut rest = combined;
            let mut labels = Vec::new();
            for (name, part) in &parts {
                match part {
                    Part::Fixed(v) => labels.push(Label::new(*name, *v)),
                    Part::Field(values, _) => {
                        let base = values.len() as u32 + 1;
                        let code = rest % base;
                        rest /= base;
                        if code > 0 {
                            labels.push(Label::new(*name, values[code as usize - 1].0.as_str()));
                        }
                    }
                }
            }
            keys.push(labels);
        }
        rows.push(*s);
    }
    Some(GroupedRows { keys, rows })
}
