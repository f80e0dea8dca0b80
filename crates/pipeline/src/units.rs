//! Converting label values the way Loki's Go code does: numbers,
//! durations and byte sizes. The conversions live in `skald-fields`, so
//! that the field columns of a segment and the pipeline's label filters,
//! `unwrap` and template functions convert a value the same way.

pub use skald_fields::units::{parse_bytes, parse_duration, parse_float};
