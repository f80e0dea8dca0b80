//! `drop`, `keep` and `decolorize`.
//!
//! `| drop a, b="v"` removes `a`, and `b` when its value matches; `| keep
//! a, b="v"` removes every label but `a`, and `b` when its value matches.
//! As in Loki the error labels stand apart: `keep` never removes them, and
//! `drop __error__` (or `drop __error__="JSONParserErr"`) clears the error.

use crate::labels::LabelsBuilder;
use skald_logql::LabelSelection;
use std::borrow::Cow;

pub fn drop_labels(selection: &[LabelSelection], labels: &mut LabelsBuilder) {
    for sel in selection {
        match sel {
            LabelSelection::Name(name) => labels.delete(name),
            LabelSelection::Matching(m) => {
                if labels.get(&m.name).is_some_and(|v| m.matches_value(v)) {
                    labels.delete(&m.name);
                }
            }
        }
    }
}

pub fn keep_labels(selection: &[LabelSelection], labels: &mut LabelsBuilder) {
    labels.retain(|name, value| {
        selection.iter().any(|sel| match sel {
            LabelSelection::Name(n) => n == name,
            LabelSelection::Matching(m) => m.name == name && m.matches_value(value),
        })
    });
}

/// Removes ANSI escape sequences (colours, cursor movement: `ESC [`
/// parameters and a final byte) from a line; borrowed when there are none.
pub fn decolorize(line: &str) -> Cow<'_, str> {
    if !line.contains('\x1b') {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find('\x1b') {
        out.push_str(&rest[..at]);
        let seq = &rest[at + 1..];
        let Some(params) = seq.strip_prefix('[') else {
            rest = seq;
            continue;
        };
        let end = params
            .bytes()
            .position(|b| (0x40..=0x7e).contains(&b))
            .map_or(params.len(), |i| i + 1);
        rest = &params[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_model::{Label, MatchOp, Matcher};

    fn builder() -> LabelsBuilder {
        let mut b = LabelsBuilder::default();
        b.reset(
            &[
                Label::new("app", "api"),
                Label::new("level", "info"),
                Label::new("pod", "p1"),
            ],
            &[],
        );
        b
    }

    fn names(b: &LabelsBuilder) -> Vec<String> {
        let mut v = Vec::new();
        b.write_to(&mut v);
        v.into_iter().map(|l| l.name).collect()
    }

    #[test]
    fn drop_and_keep() {
        let mut b = builder();
        b.set_error("JSONParserErr", "x");
        drop_labels(
            &[
                LabelSelection::Name("pod".into()),
                LabelSelection::Matching(Matcher::new("level", MatchOp::Eq, "debug").unwrap()),
            ],
            &mut b,
        );
        assert_eq!(
            names(&b),
            ["__error__", "__error_details__", "app", "level"]
        );
        drop_labels(&[LabelSelection::Name("__error__".into())], &mut b);
        assert_eq!(b.err(), None);

        let mut b = builder();
        b.set_error("JSONParserErr", "x");
        keep_labels(
            &[
                LabelSelection::Name("app".into()),
                LabelSelection::Matching(Matcher::new("level", MatchOp::Eq, "debug").unwrap()),
            ],
            &mut b,
        );
        assert_eq!(names(&b), ["__error__", "__error_details__", "app"]);
    }

    #[test]
    fn strips_colours() {
        assert_eq!(
            decolorize("\x1b[31mERROR\x1b[0m done \x1b[1;32mok\x1b[m"),
            "ERROR done ok"
        );
        assert!(matches!(decolorize("plain"), Cow::Borrowed("plain")));
    }
}
