//! Ingest limits: the sizes and ages a push may carry.

use serde::{Deserialize, Serialize};

/// Per-tenant limits on what a push may contain. Defaults follow Loki's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest label name, in bytes (Loki: 1024).
    pub max_label_name_length: usize,
    /// Longest label value, in bytes (Loki: 2048).
    pub max_label_value_length: usize,
    /// Most labels per stream (Loki: 15).
    pub max_label_names_per_series: usize,
    /// Longest line, in bytes (Loki: 256 KiB).
    pub max_line_size: usize,
    /// Entries older than this many seconds before now are refused
    /// (Loki's `reject_old_samples_max_age`, one week).
    pub reject_old_samples_max_age_secs: u64,
    /// Entries more than this many seconds in the future are refused
    /// (Loki's `creation_grace_period`, ten minutes).
    pub creation_grace_period_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            max_label_names_per_series: 15,
            max_line_size: 256 * 1024,
            reject_old_samples_max_age_secs: 7 * 24 * 3600,
            creation_grace_period_secs: 600,
        }
    }
}
