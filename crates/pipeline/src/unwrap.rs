//! `| unwrap label`, `| unwrap duration(label)`, `| unwrap bytes(label)`:
//! turning a label into the sample value of an unwrapped range
//! aggregation.
//!
//! As in Loki: a line without the label yields no sample; a value that
//! does not convert yields a sample whose labels carry
//! `__error__="SampleExtractionErr"` (so the query fails unless a later
//! `| __error__=""` drops it); the unwrapped label is removed from the
//! series labels; durations are in seconds. Plain values are read with
//! Go's `strconv.ParseFloat`, durations with `time.ParseDuration`, byte
//! sizes with `humanize.ParseBytes` (see [`crate::units`]).

use crate::PipelineError;
use crate::label_filter::CompiledLabelFilter;
use crate::labels::LabelsBuilder;
use crate::units;
use skald_logql::{Unwrap, UnwrapConversion};

/// A compiled `| unwrap ...` with the label filters after it.
#[derive(Debug)]
pub struct Unwrapper {
    label: String,
    conversion: UnwrapConversion,
    post_filters: Vec<CompiledLabelFilter>,
}

/// Converts a label value as an unwrap with `conversion` does.
pub fn convert(value: &str, conversion: UnwrapConversion) -> Result<f64, String> {
    match conversion {
        UnwrapConversion::Duration | UnwrapConversion::DurationSeconds => {
            units::parse_duration(value).map(|ns| ns as f64 / 1e9)
        }
        UnwrapConversion::Bytes => units::parse_bytes(value).map(|b| b as f64),
        _ => units::parse_float(value),
    }
}

impl Unwrapper {
    /// The labels the unwrap reads: the unwrapped one and those of the
    /// label filters after it.
    pub fn referenced_labels(&self) -> Vec<String> {
        let mut out = vec![self.label.clone()];
        for f in &self.post_filters {
            f.for_each_name(&mut |n| out.push(n.to_string()));
        }
        out
    }

    pub fn new(unwrap: &Unwrap) -> Result<Unwrapper, PipelineError> {
        let post_filters = unwrap
            .post_filters
            .iter()
            .map(CompiledLabelFilter::new)
            .collect::<Result<_, _>>()
            .map_err(|reason| PipelineError::Stage {
                stage: "unwrap".into(),
                reason,
            })?;
        Ok(Unwrapper {
            label: unwrap.label.clone(),
            conversion: unwrap.conversion,
            post_filters,
        })
    }

    /// The value, or the error details; `None` when the label is missing.
    /// Removes the label from the set.
    pub(crate) fn extract(&self, labels: &mut LabelsBuilder) -> Option<Result<f64, String>> {
        let raw = labels.get(&self.label)?;
        let value = convert(raw, self.conversion);
        labels.delete(&self.label);
        Some(value)
    }

    pub(crate) fn post_filter(&self, labels: &mut LabelsBuilder) -> bool {
        self.post_filters.iter().all(|f| f.process(labels))
    }
}
