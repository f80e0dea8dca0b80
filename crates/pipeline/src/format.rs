//! `line_format` and `label_format`.
//!
//! `| line_format "{{.status}} {{.msg}}"` replaces the line with the
//! rendered template. `| label_format dst=src` renames a label (the source
//! disappears; nothing happens when it is missing), and
//! `| label_format dst="{{.a}}-{{.b}}"` sets a label from a template. As in
//! Loki, all templates of one `label_format` see the labels as they were
//! before the stage, renames apply in order, and a failing template sets
//! `__error__="TemplateFormatErr"` (details in `__error_details__`) and
//! leaves the line or label unchanged.

use crate::labels::{LabelKind, LabelsBuilder, errors};
use crate::template::{Data, Template};
use skald_logql::{LabelFormat, LabelFormatSource};

/// What a template sees while a line is processed.
pub(crate) struct LineData<'a> {
    pub labels: &'a LabelsBuilder,
    pub line: &'a str,
    pub ts: i64,
}

impl Data for LineData<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name)
    }

    fn labels(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        self.labels
            .for_each(|n, v| out.push((n.to_string(), v.to_string())));
        out
    }

    fn line(&self) -> &str {
        self.line
    }

    fn timestamp(&self) -> i64 {
        self.ts
    }
}

#[derive(Debug)]
pub struct LineFormat {
    template: Template,
}

impl LineFormat {
    pub fn new(src: &str) -> Result<LineFormat, String> {
        Ok(LineFormat {
            template: Template::parse(src).map_err(|e| format!("invalid line_format: {e}"))?,
        })
    }

    /// Renders into `out` (cleared first); false, with the error recorded,
    /// when the template fails and the line must stay as it was.
    pub(crate) fn render(&self, data: &LineData<'_>, out: &mut String) -> Result<(), String> {
        out.clear();
        self.template.execute(data, out)
    }
}

#[derive(Debug)]
enum Assignment {
    Rename { dst: String, src: String },
    Template { dst: String, template: Template },
}

#[derive(Debug)]
pub struct LabelFormatter {
    assignments: Vec<Assignment>,
}

impl LabelFormatter {
    pub fn new(items: &[LabelFormat]) -> Result<LabelFormatter, String> {
        let mut assignments = Vec::with_capacity(items.len());
        for item in items {
            if assignments.iter().any(|a: &Assignment| match a {
                Assignment::Rename { dst, .. } | Assignment::Template { dst, .. } => {
                    *dst == item.dst
                }
            }) {
                return Err(format!(
                    "invalid label_format: label {:?} is assigned more than once",
                    item.dst
                ));
            }
            assignments.push(match &item.src {
                LabelFormatSource::Rename(src) => Assignment::Rename {
                    dst: item.dst.clone(),
                    src: src.clone(),
                },
                LabelFormatSource::Template(t) => Assignment::Template {
                    dst: item.dst.clone(),
                    template: Template::parse(t)
                        .map_err(|e| format!("invalid label_format {}: {e}", item.dst))?,
                },
            });
        }
        Ok(LabelFormatter { assignments })
    }

    /// Applies the assignments; `rendered` is a reusable buffer.
    pub(crate) fn apply(
        &self,
        labels: &mut LabelsBuilder,
        line: &str,
        ts: i64,
        rendered: &mut Vec<Option<String>>,
    ) {
        rendered.resize_with(self.assignments.len(), || None);
        let mut failure = None;
        {
            let data = LineData { labels, line, ts };
            for (a, slot) in self.assignments.iter().zip(rendered.iter_mut()) {
                let Assignment::Template { template, .. } = a else {
                    continue;
                };
                let buf = slot.get_or_insert_with(String::new);
                buf.clear();
                if let Err(e) = template.execute(&data, buf) {
                    failure.get_or_insert(e);
                    *slot = None;
                }
            }
        }
        for (a, slot) in self.assignments.iter().zip(rendered.iter()) {
            match a {
                Assignment::Rename { dst, src } => {
                    if let Some(v) = labels.get(src) {
                        let v = v.to_string();
                        labels.delete(src);
                        labels.set(LabelKind::Parsed, dst, &v);
                    }
                }
                Assignment::Template { dst, .. } => {
                    if let Some(v) = slot {
                        labels.set(LabelKind::Parsed, dst, v);
                    }
                }
            }
        }
        if let Some(e) = failure {
            labels.set_error(errors::TEMPLATE_FORMAT, &e);
        }
    }
}
