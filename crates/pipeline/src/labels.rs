//! The label set a line carries through the pipeline, with Loki's rules for
//! where each label came from.
//!
//! A line starts with its stream labels and its structured metadata; parsers
//! add labels, `label_format`, `drop` and `keep` change them. As in Loki:
//!
//! - a parsed label (or a structured metadata label) whose name is already a
//!   *stream* label is renamed with the `_extracted` suffix, so parsing never
//!   silently replaces a stream label;
//! - the error (`__error__`) and its details (`__error_details__`) are kept
//!   apart from the other labels: `keep` does not remove them, `drop
//!   __error__` clears them, and they appear in the output last set wins.
//!
//! The builder is reused from line to line: its strings keep their
//! capacity, so after the first few lines processing allocates nothing.

use skald_model::Label;

/// Loki's name for the label holding a pipeline error.
pub const ERROR_LABEL: &str = "__error__";
/// Loki's name for the label holding the error's details.
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";
/// Suffix Loki gives an extracted label that clashes with a stream label.
pub const EXTRACTED_SUFFIX: &str = "_extracted";

/// Error kinds, named exactly as Loki names them in `__error__`.
pub mod errors {
    pub const JSON: &str = "JSONParserErr";
    pub const LOGFMT: &str = "LogfmtParserErr";
    pub const LABEL_FILTER: &str = "LabelFilterErr";
    pub const TEMPLATE_FORMAT: &str = "TemplateFormatErr";
    pub const SAMPLE_EXTRACTION: &str = "SampleExtractionErr";
}

/// Where a label came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKind {
    Stream,
    StructuredMetadata,
    Parsed,
}

#[derive(Debug, Default)]
struct Slot {
    name: String,
    value: String,
    kind: Option<LabelKind>,
    deleted: bool,
}

/// The labels of the line being processed.
#[derive(Debug, Default)]
pub struct LabelsBuilder {
    slots: Vec<Slot>,
    len: usize,
    /// How many leading slots hold the stream labels as given.
    stream_len: usize,
    err: String,
    has_err: bool,
    err_details: String,
    has_err_details: bool,
    changed: bool,
}

impl LabelsBuilder {
    /// Starts a new line with these stream labels (sorted, unique) and
    /// structured metadata.
    pub fn reset(&mut self, stream: &[Label], metadata: &[Label]) {
        self.len = 0;
        self.has_err = false;
        self.has_err_details = false;
        self.changed = false;
        for l in stream {
            self.push(LabelKind::Stream, &l.name, &l.value);
        }
        self.stream_len = self.len;
        for l in metadata {
            if self.stream_has(&l.name) {
                let mut name = String::with_capacity(l.name.len() + EXTRACTED_SUFFIX.len());
                name.push_str(&l.name);
                name.push_str(EXTRACTED_SUFFIX);
                self.set(LabelKind::StructuredMetadata, &name, &l.value);
            } else {
                self.set(LabelKind::StructuredMetadata, &l.name, &l.value);
            }
        }
        self.changed = !metadata.is_empty();
    }

    fn push(&mut self, kind: LabelKind, name: &str, value: &str) {
        if self.len == self.slots.len() {
            self.slots.push(Slot::default());
        }
        let slot = &mut self.slots[self.len];
        slot.name.clear();
        slot.name.push_str(name);
        slot.value.clear();
        slot.value.push_str(value);
        slot.kind = Some(kind);
        slot.deleted = false;
        self.len += 1;
    }

    /// Whether the stream labels the line started with include `name`
    /// (even if it has since been dropped), Loki's test for `_extracted`.
    pub fn stream_has(&self, name: &str) -> bool {
        self.slots[..self.stream_len].iter().any(|s| s.name == name)
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.slots[..self.len]
            .iter()
            .position(|s| !s.deleted && s.name == name)
    }

    /// The current value of a label; the error labels included.
    pub fn get(&self, name: &str) -> Option<&str> {
        match name {
            ERROR_LABEL => return self.has_err.then_some(self.err.as_str()),
            ERROR_DETAILS_LABEL => {
                return self.has_err_details.then_some(self.err_details.as_str());
            }
            _ => {}
        }
        self.find(name).map(|i| self.slots[i].value.as_str())
    }

    /// Sets a label, replacing its value if present.
    pub fn set(&mut self, kind: LabelKind, name: &str, value: &str) {
        match name {
            ERROR_LABEL => return self.set_err(value),
            ERROR_DETAILS_LABEL => return self.set_err_details(value),
            _ => {}
        }
        self.changed = true;
        match self.find(name) {
            Some(i) => {
                let slot = &mut self.slots[i];
                slot.value.clear();
                slot.value.push_str(value);
                slot.kind = Some(kind);
            }
            None => self.push(kind, name, value),
        }
    }

    /// Sets a label a parser extracted: renamed with `_extracted` when it
    /// clashes with a stream label.
    pub fn set_parsed(&mut self, name: &str, value: &str) {
        if self.stream_has(name) {
            let mut renamed = String::with_capacity(name.len() + EXTRACTED_SUFFIX.len());
            renamed.push_str(name);
            renamed.push_str(EXTRACTED_SUFFIX);
            self.set(LabelKind::Parsed, &renamed, value);
        } else {
            self.set(LabelKind::Parsed, name, value);
        }
    }

    pub fn delete(&mut self, name: &str) {
        match name {
            ERROR_LABEL => {
                self.changed |= self.has_err;
                self.has_err = false;
                return;
            }
            ERROR_DETAILS_LABEL => {
                self.changed |= self.has_err_details;
                self.has_err_details = false;
                return;
            }
            _ => {}
        }
        if let Some(i) = self.find(name) {
            self.slots[i].deleted = true;
            self.changed = true;
        }
    }

    /// Removes every label for which `keep` is false; the error labels are
    /// not offered (Loki keeps them apart from the label set).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        for slot in &mut self.slots[..self.len] {
            if !slot.deleted && !keep(&slot.name, &slot.value) {
                slot.deleted = true;
                self.changed = true;
            }
        }
    }

    /// Visits the current labels (error labels excluded), in no order.
    pub fn for_each(&self, mut f: impl FnMut(&str, &str)) {
        for slot in &self.slots[..self.len] {
            if !slot.deleted {
                f(&slot.name, &slot.value);
            }
        }
    }

    pub fn has_err(&self) -> bool {
        self.has_err
    }

    pub fn err(&self) -> Option<&str> {
        self.has_err.then_some(self.err.as_str())
    }

    pub fn set_err(&mut self, err: &str) {
        self.err.clear();
        self.err.push_str(err);
        self.has_err = true;
        self.changed = true;
    }

    pub fn set_err_details(&mut self, details: &str) {
        self.err_details.clear();
        self.err_details.push_str(details);
        self.has_err_details = true;
        self.changed = true;
    }

    /// Sets the error unless one is already set: as in Loki, the first
    /// error of a line is the one reported.
    pub fn set_error(&mut self, err: &str, details: &str) {
        if self.has_err {
            return;
        }
        self.set_err(err);
        self.set_err_details(details);
    }

    /// Whether anything differs from the stream labels.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Writes the current labels, sorted by name, into `out`, reusing its
    /// strings.
    pub fn write_to(&self, out: &mut Vec<Label>) {
        let mut n = 0;
        let mut put = |name: &str, value: &str| {
            if n == out.len() {
                out.push(Label::new(String::new(), String::new()));
            }
            let l = &mut out[n];
            l.name.clear();
            l.name.push_str(name);
            l.value.clear();
            l.value.push_str(value);
            n += 1;
        };
        for slot in &self.slots[..self.len] {
            if !slot.deleted {
                put(&slot.name, &slot.value);
            }
        }
        if self.has_err {
            put(ERROR_LABEL, &self.err);
        }
        if self.has_err_details {
            put(ERROR_DETAILS_LABEL, &self.err_details);
        }
        out.truncate(n);
        out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    }
}

pub use skald_fields::sanitize_label_name;

#[cfg(test)]
mod tests {
    use super::*;

    fn l(n: &str, v: &str) -> Label {
        Label::new(n, v)
    }

    fn out(b: &LabelsBuilder) -> Vec<(String, String)> {
        let mut v = Vec::new();
        b.write_to(&mut v);
        v.into_iter().map(|l| (l.name, l.value)).collect()
    }

    #[test]
    fn extracted_suffix_and_metadata() {
        let mut b = LabelsBuilder::default();
        b.reset(
            &[l("app", "api"), l("level", "x")],
            &[l("trace", "t1"), l("app", "m")],
        );
        b.set_parsed("level", "info");
        b.set_parsed("msg", "hi");
        assert_eq!(b.get("app_extracted"), Some("m"));
        assert_eq!(b.get("level"), Some("x"));
        assert_eq!(b.get("level_extracted"), Some("info"));
        b.delete("app");
        b.set_parsed("app", "again");
        assert_eq!(b.get("app_extracted"), Some("again"));
        assert_eq!(
            out(&b),
            vec![
                ("app_extracted".into(), "again".into()),
                ("level".into(), "x".into()),
                ("level_extracted".into(), "info".into()),
                ("msg".into(), "hi".into()),
                ("trace".into(), "t1".into()),
            ]
        );
    }

    #[test]
    fn errors_are_kept_apart_and_first_wins() {
        let mut b = LabelsBuilder::default();
        b.reset(&[l("app", "api")], &[]);
        assert!(!b.changed());
        b.set_error(errors::JSON, "bad");
        b.set_error(errors::LOGFMT, "worse");
        b.retain(|_, _| false);
        assert_eq!(
            out(&b),
            vec![
                ("__error__".into(), "JSONParserErr".into()),
                ("__error_details__".into(), "bad".into()),
            ]
        );
        b.reset(&[l("app", "api")], &[]);
        assert_eq!(out(&b), vec![("app".into(), "api".into())]);
    }

    #[test]
    fn sanitizes_like_loki() {
        let mut s = String::new();
        sanitize_label_name(" User-Agent ", &mut s);
        assert_eq!(s, "User_Agent");
        sanitize_label_name("1st.key", &mut s);
        assert_eq!(s, "_1st_key");
        sanitize_label_name("", &mut s);
        assert_eq!(s, "");
        // Valid names are copied whole; a leading digit still gets `_`.
        sanitize_label_name("2xx_count", &mut s);
        assert_eq!(s, "_2xx_count");
        sanitize_label_name("latency_ms", &mut s);
        assert_eq!(s, "latency_ms");
        sanitize_label_name("häst", &mut s);
        assert_eq!(s, "h_st");
    }
}
