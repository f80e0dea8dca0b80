//! A compiled log pipeline and the per-line processor that runs it.
//!
//! [`Pipeline::new`] compiles the stages once per query. Each worker then
//! takes a [`LineProcessor`] ([`Pipeline::processor`]) and feeds it lines;
//! the processor owns the buffers it reuses from line to line (the label
//! builder, the rewritten line, the output labels), so steady-state
//! processing does not allocate for line filters, and allocates little
//! for the rest.
//!
//! Fast paths: the leading line filters run first on the raw line, before
//! any label work; a pipeline of line filters alone never touches labels
//! and returns the stream's labels and the input line as they are.

use crate::PipelineError;
use crate::format::{LabelFormatter, LineData, LineFormat};
use crate::label_filter::CompiledLabelFilter;
use crate::labels::{LabelsBuilder, errors};
use crate::line_filter::LineFilterChain;
use crate::parsers::json::{self, JsonParser};
use crate::parsers::logfmt::LogfmtParser;
use crate::parsers::{PatternParser, Projection, RegexpParser};
use crate::select;
use crate::unwrap::Unwrapper;
use skald_logql::{LabelSelection, LineFilter, Stage};
use skald_model::Label;

#[derive(Debug)]
enum Step {
    Filter(LineFilterChain),
    Json(JsonParser),
    Logfmt(LogfmtParser),
    Regexp(RegexpParser),
    Pattern(PatternParser),
    Unpack,
    LabelFilter(CompiledLabelFilter),
    LineFormat(LineFormat),
    LabelFormat(LabelFormatter),
    Drop(Vec<LabelSelection>),
    Keep(Vec<LabelSelection>),
    Decolorize,
}

impl Step {
    fn rewrites_line(&self) -> bool {
        matches!(self, Step::LineFormat(_) | Step::Unpack | Step::Decolorize)
    }

    fn touches_labels(&self) -> bool {
        !matches!(self, Step::Filter(_) | Step::Decolorize)
    }
}

/// A log pipeline compiled for one query.
#[derive(Debug)]
pub struct Pipeline {
    /// The line filters before any other stage, run first on the raw line.
    leading: LineFilterChain,
    /// The remaining stages, in order.
    steps: Vec<Step>,
    required: Vec<Vec<String>>,
    /// Values that label filters right after a parser require of the raw
    /// line (see [`implied_values`]).
    implied: Vec<Implied>,
    touches_labels: bool,
}

/// `name="value"` right after a parser: a line whose `name` label does not
/// exist before the parser (neither a stream label nor structured
/// metadata) passes only if the parser took `value` from it.
#[derive(Debug)]
struct Implied {
    name: String,
    value: memchr::memmem::Finder<'static>,
}

impl Implied {
    /// Whether a line may still pass the filter: `false` is certain.
    fn may_pass(&self, line: &[u8], stream: &[Label], metadata: &[Label]) -> bool {
        self.value.find(line).is_some()
            // Parsers unescape `\"`, `\u0065`...: such a line may hold the
            // value written differently.
            || memchr::memchr(b'\\', line).is_some()
            || stream.iter().chain(metadata).any(|l| {
                // Metadata clashing with a stream label gets the suffix too.
                l.name == self.name
                    || self
                        .name
                        .strip_suffix("_extracted")
                        .is_some_and(|base| base == l.name)
            })
    }
}

/// The string equalities that label filters directly after the first
/// parser require of the raw line. Sound because, with only line filters
/// before it, a label the stream and the entry's metadata lack can only
/// come from that parser, and every parser (json, logfmt, regexp,
/// pattern) takes a label's value from the line as written, except for
/// backslash escapes, which [`Implied::may_pass`] lets through. Nothing is
/// implied through a stage that may set labels otherwise (`label_format`,
/// `unpack`, `line_format`, `drop`, `keep`), by `!=`, regex or numeric
/// filters, by `or`, or for the labels parsers make up themselves
/// (`__error__`, `__error_details__`).
fn implied_values(steps: &[Step]) -> Vec<Implied> {
    let Some(parser) = steps.iter().position(|s| {
        matches!(
            s,
            Step::Json(_) | Step::Logfmt(_) | Step::Regexp(_) | Step::Pattern(_)
        )
    }) else {
        return Vec::new();
    };
    if !steps[..parser].iter().all(|s| matches!(s, Step::Filter(_))) {
        return Vec::new();
    }
    fn collect(f: &CompiledLabelFilter, out: &mut Vec<Implied>) {
        match f {
            // `__error__` and its details come from the parser itself.
            CompiledLabelFilter::Matcher(m)
                if m.op == skald_model::MatchOp::Eq
                    && !m.value.is_empty()
                    && !m.name.starts_with("__") =>
            {
                out.push(Implied {
                    name: m.name.clone(),
                    value: memchr::memmem::Finder::new(m.value.as_bytes()).into_owned(),
                });
            }
            CompiledLabelFilter::And(parts) => parts.iter().for_each(|p| collect(p, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for step in &steps[parser + 1..] {
        let Step::LabelFilter(f) = step else { break };
        collect(f, &mut out);
    }
    out
}

fn invalid(stage: &str, reason: String) -> PipelineError {
    PipelineError::Stage {
        stage: stage.to_string(),
        reason,
    }
}

impl Pipeline {
    /// Compiles the stages of a log query.
    pub fn new(stages: &[Stage]) -> Result<Pipeline, PipelineError> {
        let leading_len = stages
            .iter()
            .take_while(|s| matches!(s, Stage::LineFilter(_)))
            .count();
        let leading_filters: Vec<LineFilter> = stages[..leading_len]
            .iter()
            .filter_map(|s| match s {
                Stage::LineFilter(f) => Some(f.clone()),
                _ => None,
            })
            .collect();
        let leading = LineFilterChain::new(&leading_filters)?;
        let mut required = leading.required().to_vec();
        let mut steps = Vec::new();
        let mut line_rewritten = false;
        for stage in &stages[leading_len..] {
            let step = match stage {
                Stage::LineFilter(f) => {
                    let chain = LineFilterChain::new(std::slice::from_ref(f))?;
                    // A filter before any rewrite sees the stored line, so
                    // its literals still let the store skip blocks.
                    if !line_rewritten {
                        required.extend(chain.required().iter().cloned());
                    }
                    Step::Filter(chain)
                }
                Stage::Json(params) => {
                    Step::Json(JsonParser::new(params).map_err(|e| invalid("json", e))?)
                }
                Stage::Logfmt(spec) => Step::Logfmt(LogfmtParser::new(spec)),
                Stage::Regexp(re) => {
                    Step::Regexp(RegexpParser::new(re).map_err(|e| invalid("regexp", e))?)
                }
                Stage::Pattern(p) => {
                    Step::Pattern(PatternParser::new(p).map_err(|e| invalid("pattern", e))?)
                }
                Stage::Unpack => Step::Unpack,
                Stage::LabelFilter(f) => Step::LabelFilter(
                    CompiledLabelFilter::new(f).map_err(|e| invalid("label filter", e))?,
                ),
                Stage::LineFormat(t) => {
                    Step::LineFormat(LineFormat::new(t).map_err(|e| invalid("line_format", e))?)
                }
                Stage::LabelFormat(items) => Step::LabelFormat(
                    LabelFormatter::new(items).map_err(|e| invalid("label_format", e))?,
                ),
                Stage::Drop(sel) => Step::Drop(sel.clone()),
                Stage::Keep(sel) => Step::Keep(sel.clone()),
                Stage::Decolorize => Step::Decolorize,
                other => return Err(PipelineError::Unsupported(format!("{other:?}"))),
            };
            line_rewritten |= step.rewrites_line();
            steps.push(step);
        }
        let touches_labels = steps.iter().any(Step::touches_labels);
        Ok(Pipeline {
            leading,
            implied: implied_values(&steps),
            steps,
            required,
            touches_labels,
        })
    }

    /// The line filters that open the pipeline; a line they reject is
    /// rejected by the whole pipeline, so a store may run them alone.
    pub fn leading_filters(&self) -> &LineFilterChain {
        &self.leading
    }

    /// Literal alternatives every passing line must contain, as stored
    /// (from the `|=` filters before any stage that rewrites the line):
    /// for each inner list, at least one of its strings is in the line.
    pub fn required(&self) -> &[Vec<String>] {
        &self.required
    }

    /// What the label filters after a leading `json` or `logfmt` parser
    /// require of a line's fields, where that is sound (the rule is in
    /// [`crate::fields`]); `None` for other pipelines.
    pub fn field_conditions(&self) -> Option<crate::fields::FieldConditions<'_>> {
        use crate::fields::FieldParser;
        let mut steps = self
            .steps
            .iter()
            .skip_while(|s| matches!(s, Step::Filter(_)));
        let parser = match steps.next()? {
            Step::Json(p) if p.extracts_every_field() => FieldParser::Json,
            Step::Logfmt(p) if p.extracts_every_field() => FieldParser::Logfmt,
            _ => return None,
        };
        let filters = steps
            .take_while(|s| matches!(s, Step::Filter(_) | Step::LabelFilter(_)))
            .filter_map(|s| match s {
                Step::LabelFilter(f) => Some(f),
                _ => None,
            });
        Some(crate::fields::collect(parser, filters))
    }

    /// The parser, when the pipeline is that one `json` or `logfmt` stage
    /// extracting every field and nothing else: a line's labels are then
    /// its stream's, its metadata and its fields (or a parser error).
    pub fn sole_field_parser(&self) -> Option<crate::fields::FieldParser> {
        use crate::fields::FieldParser;
        if !self.leading.is_empty() {
            return None;
        }
        match self.steps.as_slice() {
            [Step::Json(p)] if p.extracts_every_field() => Some(FieldParser::Json),
            [Step::Logfmt(p)] if p.extracts_every_field() => Some(FieldParser::Logfmt),
            _ => None,
        }
    }

    /// The `name="value"` equalities right after a parser that every
    /// passing line must contain as written, when the stream and the
    /// entry's metadata lack `name` and the line has no backslash escape
    /// (see `implied_values`): for skipping blocks known to hold neither.
    pub fn implied_literals(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.implied
            .iter()
            .map(|i| (i.name.as_str(), i.value.needle()))
    }

    /// Whether the pipeline may change a line's labels (parsers, label
    /// formatting, drop, keep, or errors from label filters). When false,
    /// the output labels are the stream labels plus structured metadata.
    pub fn can_change_labels(&self) -> bool {
        self.touches_labels
    }

    /// Whether the pipeline may change the line itself.
    pub fn can_change_line(&self) -> bool {
        self.steps.iter().any(Step::rewrites_line)
    }

    /// Whether the pipeline is only line filters (possibly none).
    pub fn is_line_filters_only(&self) -> bool {
        self.steps.is_empty()
    }

    /// Narrows the parsers to the labels the query can observe: `outputs`
    /// are the labels read after the pipeline (a metric query's grouping,
    /// an unwrap); the stages after each parser add the labels they read.
    /// A stage that may read any label (templates, `unpack`) leaves the
    /// parsers before it unchanged. Results are the same, only cheaper:
    /// parsers still read whole lines and report the same errors.
    pub fn project(&mut self, outputs: &[String]) {
        let mut needed: Option<Vec<String>> = Some(outputs.to_vec());
        for step in self.steps.iter_mut().rev() {
            match step {
                Step::LabelFilter(f) => {
                    if let Some(n) = needed.as_mut() {
                        f.for_each_name(&mut |name| n.push(name.to_string()));
                    }
                }
                Step::Drop(sel) | Step::Keep(sel) => {
                    if let Some(n) = needed.as_mut() {
                        for s in sel.iter() {
                            n.push(match s {
                                LabelSelection::Name(name) => name.clone(),
                                LabelSelection::Matching(m) => m.name.clone(),
                            });
                        }
                    }
                }
                Step::LineFormat(_) | Step::LabelFormat(_) | Step::Unpack => needed = None,
                Step::Json(p) => {
                    if let Some(n) = &needed {
                        p.project(Projection::new(n.iter().map(String::as_str)));
                    }
                }
                Step::Logfmt(p) => {
                    if let Some(n) = &needed {
                        p.project(Projection::new(n.iter().map(String::as_str)));
                    }
                }
                Step::Filter(_) | Step::Regexp(_) | Step::Pattern(_) | Step::Decolorize => {}
            }
        }
    }

    /// A processor with its own buffers; one per thread.
    pub fn processor(&self) -> LineProcessor<'_> {
        LineProcessor {
            pipeline: self,
            labels: LabelsBuilder::default(),
            line: String::new(),
            tmp: String::new(),
            out_labels: Vec::new(),
            name: String::new(),
            rendered: Vec::new(),
        }
    }
}

/// A line that passed the pipeline.
#[derive(Debug, PartialEq)]
pub struct Processed<'a> {
    /// The resulting line: the input when unchanged.
    pub line: &'a str,
    /// The resulting labels, sorted by name: the stream labels when
    /// unchanged.
    pub labels: &'a [Label],
    /// Whether `line` differs from the input line.
    pub line_changed: bool,
    /// Whether `labels` differ from the stream labels.
    pub labels_changed: bool,
}

impl Processed<'_> {
    /// The resulting labels as a set; `None` when there are none (every
    /// label dropped).
    pub fn label_set(&self) -> Option<skald_model::LabelSet> {
        (!self.labels.is_empty()).then(|| skald_model::LabelSet::from_trusted(self.labels.to_vec()))
    }
}

/// A sample extracted for a metric query.
#[derive(Debug, PartialEq)]
pub struct Sample<'a> {
    /// The unwrapped value; 0 when extraction failed (the labels then
    /// carry `__error__="SampleExtractionErr"`).
    pub value: f64,
    /// The series labels: the line's labels without the unwrapped one.
    pub labels: &'a [Label],
}

/// Runs a [`Pipeline`] over lines, reusing its buffers.
#[derive(Debug)]
pub struct LineProcessor<'p> {
    pipeline: &'p Pipeline,
    labels: LabelsBuilder,
    /// The current line when a stage has rewritten it.
    line: String,
    tmp: String,
    out_labels: Vec<Label>,
    name: String,
    rendered: Vec<Option<String>>,
}

impl<'p> LineProcessor<'p> {
    /// Runs the pipeline over one line. `stream` must be sorted by name
    /// with unique names (a `LabelSet`'s labels are); `metadata` is the
    /// entry's structured metadata, which the stages see as labels (a name
    /// clashing with a stream label gets the `_extracted` suffix) and which
    /// ends up in the output labels, as in Loki. Returns `None` when the
    /// line is filtered out.
    pub fn process<'a>(
        &'a mut self,
        ts: i64,
        line: &'a str,
        stream: &'a [Label],
        metadata: &[Label],
    ) -> Option<Processed<'a>> {
        let (line_changed, labels_changed) = self.run(ts, line, stream, metadata)?;
        let line = if line_changed {
            self.line.as_str()
        } else {
            line
        };
        let labels = if labels_changed {
            self.labels.write_to(&mut self.out_labels);
            self.out_labels.as_slice()
        } else {
            stream
        };
        Some(Processed {
            line,
            labels,
            line_changed,
            labels_changed,
        })
    }

    /// Runs the pipeline, then extracts a sample as `| unwrap` does, and
    /// applies the label filters that follow the unwrap. `None` when the
    /// line is filtered out or lacks the unwrapped label (Loki skips such
    /// lines).
    pub fn process_sample<'a>(
        &'a mut self,
        ts: i64,
        line: &'a str,
        stream: &'a [Label],
        metadata: &[Label],
        unwrap: &Unwrapper,
    ) -> Option<Sample<'a>> {
        let (_, labels_changed) = self.run(ts, line, stream, metadata)?;
        if !labels_changed {
            // Labels were never loaded into the builder.
            self.labels.reset(stream, metadata);
        }
        let value = match unwrap.extract(&mut self.labels)? {
            Ok(v) => v,
            Err(details) => {
                self.labels.set_error(errors::SAMPLE_EXTRACTION, &details);
                0.0
            }
        };
        if !unwrap.post_filter(&mut self.labels) {
            return None;
        }
        self.labels.write_to(&mut self.out_labels);
        Some(Sample {
            value,
            labels: &self.out_labels,
        })
    }

    /// Runs the steps; the current line ends in `self.line` when
    /// rewritten. Returns (line changed, labels changed).
    fn run(
        &mut self,
        ts: i64,
        input: &str,
        stream: &[Label],
        metadata: &[Label],
    ) -> Option<(bool, bool)> {
        let pipeline = self.pipeline;
        if !pipeline.leading.is_empty() && !pipeline.leading.matches(input.as_bytes()) {
            return None;
        }
        // Before any parsing: most lines of `| logfmt | level="error"` end here.
        if !pipeline
            .implied
            .iter()
            .all(|i| i.may_pass(input.as_bytes(), stream, metadata))
        {
            return None;
        }
        if pipeline.steps.is_empty() && metadata.is_empty() {
            return Some((false, false));
        }
        let needs_labels = pipeline.touches_labels || !metadata.is_empty();
        if needs_labels {
            self.labels.reset(stream, metadata);
        }
        let mut owned = false;
        for step in &pipeline.steps {
            let cur: &str = if owned { &self.line } else { input };
            match step {
                Step::Filter(chain) => {
                    if !chain.matches(cur.as_bytes()) {
                        return None;
                    }
                }
                Step::Json(p) => p.process(cur, &mut self.labels, &mut self.name),
                Step::Logfmt(p) => p.process(cur, &mut self.labels, &mut self.name),
                Step::Regexp(p) => p.process(cur, &mut self.labels),
                Step::Pattern(p) => p.process(cur, &mut self.labels),
                Step::Unpack => {
                    if let Some(entry) = json::unpack(cur, &mut self.labels) {
                        self.tmp.clear();
                        self.tmp.push_str(&entry);
                        std::mem::swap(&mut self.line, &mut self.tmp);
                        owned = true;
                    }
                }
                Step::LabelFilter(f) => {
                    if !f.process(&mut self.labels) {
                        return None;
                    }
                }
                Step::LineFormat(f) => {
                    let data = LineData {
                        labels: &self.labels,
                        line: cur,
                        ts,
                    };
                    match f.render(&data, &mut self.tmp) {
                        Ok(()) => {
                            std::mem::swap(&mut self.line, &mut self.tmp);
                            owned = true;
                        }
                        Err(e) => self.labels.set_error(errors::TEMPLATE_FORMAT, &e),
                    }
                }
                Step::LabelFormat(f) => f.apply(&mut self.labels, cur, ts, &mut self.rendered),
                Step::Drop(sel) => select::drop_labels(sel, &mut self.labels),
                Step::Keep(sel) => select::keep_labels(sel, &mut self.labels),
                Step::Decolorize => {
                    if let std::borrow::Cow::Owned(clean) = select::decolorize(cur) {
                        self.line = clean;
                        owned = true;
                    }
                }
            }
        }
        Some((owned, needs_labels && self.labels.changed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_logql::{Expr, parse_expr};

    fn compile(query: &str) -> Pipeline {
        let Expr::Log(log) = parse_expr(query).unwrap() else {
            panic!("not a log query: {query}")
        };
        Pipeline::new(&log.pipeline).unwrap()
    }

    /// The labels of `outputs` (and errors) a pipeline leaves on a line,
    /// or `None` when it drops the line.
    fn observed(
        p: &Pipeline,
        stream: &[Label],
        line: &str,
        outputs: &[&str],
    ) -> Option<Vec<Label>> {
        let mut proc = p.processor();
        let out = proc.process(0, line, stream, &[])?;
        Some(
            out.labels
                .iter()
                .filter(|l| outputs.contains(&l.name.as_str()) || l.name.starts_with("__"))
                .cloned()
                .collect(),
        )
    }

    /// Every answer is the same with the implied-value prefilter as
    /// without it, including the cases where the value is not in the line
    /// as written (escapes, stream labels, metadata, label_format).
    #[test]
    fn implied_values_never_change_an_answer() {
        let queries = [
            r#"{a="b"} | logfmt | level="error""#,
            r#"{a="b"} | json | level="error""#,
            r#"{a="b"} |= "x" | json | level="error", status="500""#,
            r#"{a="b"} | json | req_status="500""#,
            r#"{a="b"} | logfmt | level="error" | duration > 1s"#,
            r#"{a="b"} | regexp `level=(?P<level>\w+)` | level="error""#,
            r#"{a="b"} | pattern "<_> level=<level> <_>" | level="error""#,
            r#"{a="b"} | label_format level="error" | logfmt | level="error""#,
            r#"{a="b"} | logfmt | label_format level="error" | level="error""#,
            r#"{a="b"} | logfmt | level_extracted="error""#,
            r#"{a="b"} | logfmt | level="error" or level="warn""#,
            r#"{a="b"} | json | __error__="JSONParserErr""#,
            r#"{a="b"} | logfmt | __error__="LogfmtParserErr""#,
        ];
        let streams = [
            vec![Label::new("a", "b")],
            vec![Label::new("a", "b"), Label::new("level", "error")],
        ];
        let metadata = [vec![], vec![Label::new("level", "error")]];
        let lines = [
            "ts=1 level=error msg=\"disk full\" duration=2s",
            "ts=1 level=info msg=ok duration=2s",
            "ts=1 level=\"err\\u006fr\" msg=escaped",
            "ts=1 msg=nolevel",
            r#"{"level":"error","status":"500","req":{"status":500}}"#,
            r#"{"level":"\u0065rror","status":"500"}"#,
            r#"{"level":"info","status":"200","req":{"status":200}}"#,
            r#"{"msg":"no level"}"#,
        ];
        let mut implied_somewhere = 0;
        for q in queries {
            let with = compile(q);
            let mut without = compile(q);
            implied_somewhere += usize::from(!with.implied.is_empty());
            without.implied.clear();
            for stream in &streams {
                for meta in &metadata {
                    for line in lines {
                        let mut a = with.processor();
                        let mut b = without.processor();
                        let got = a.process(0, line, stream, meta).map(|o| o.labels.to_vec());
                        let want = b.process(0, line, stream, meta).map(|o| o.labels.to_vec());
                        assert_eq!(
                            got, want,
                            "{q} over {line:?}, stream {stream:?}, metadata {meta:?}"
                        );
                    }
                }
            }
        }
        // The first seven queries and `level_extracted` imply a value;
        // label_format or `or` stop it.
        assert_eq!(implied_somewhere, 8);
    }

    #[test]
    fn projection_leaves_what_the_query_observes_unchanged() {
        let streams = [
            vec![Label::new("app", "api")],
            vec![Label::new("app", "api"), Label::new("level", "warn")],
        ];
        let lines = [
            "level=error msg=\"disk full\" duration=2s user.id=7",
            "level=info duration=15ms status=200",
            "msg=nolevel a=\"unterminated",
            r#"{"level":"error","latency_ms":1200.5,"req":{"path":"/a","status":500},"__error__":"x"}"#,
            r#"{"level":"info","latency_ms":3,"req":{"path":"/b"}}"#,
            r#"{"level":"info", broken"#,
            "not structured at all",
        ];
        let cases: &[(&str, &[&str])] = &[
            (r#"{a="b"} | logfmt"#, &["level"]),
            (r#"{a="b"} | logfmt"#, &["level_extracted"]),
            (r#"{a="b"} | logfmt --strict"#, &["level"]),
            (r#"{a="b"} | logfmt | duration > 1s"#, &["level"]),
            (r#"{a="b"} | logfmt | user_id="7""#, &[]),
            (r#"{a="b"} | json"#, &["level"]),
            (r#"{a="b"} | json | req_status >= 500"#, &["req_path"]),
            (r#"{a="b"} | json | __error__="""#, &["level"]),
            (r#"{a="b"} | json | keep level, req_path"#, &["req_path"]),
            (
                r#"{a="b"} | json | line_format "{{.req_path}}" | logfmt"#,
                &["level"],
            ),
            (r#"{a="b"} | json | label_format lvl=level"#, &["lvl"]),
            (r#"{a="b"} | logfmt | json"#, &["level", "latency_ms"]),
        ];
        for (query, outputs) in cases {
            let full = compile(query);
            let mut projected = compile(query);
            let names: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
            projected.project(&names);
            for stream in &streams {
                for line in lines {
                    assert_eq!(
                        observed(&full, stream, line, outputs),
                        observed(&projected, stream, line, outputs),
                        "{query} projected on {outputs:?}, stream {stream:?}, line {line:?}"
                    );
                }
            }
        }
    }
}
