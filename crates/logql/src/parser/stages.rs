//! Log queries: the stream selector, the pipeline stages after it, and the
//! log range (`[5m]`, `| unwrap`, `offset`) of range aggregations.
//!
//! Stage keywords (`json`, `logfmt`, `drop`, ...) are only keywords where a
//! stage can start and when no comparison follows, so `| json="x"` filters
//! a label called `json`. Label filters combine with `and` (also written
//! `,` or by juxtaposition) binding tighter than `or`, as in Loki; their
//! chains are built flat.
//!
//! Not here: metric queries (the parent module).

use super::Parser;
use crate::ast::{
    CmpOp, ExtractParam, LabelFilter, LabelFormat, LabelFormatSource, LabelSelection, LineFilter,
    LineFilterOp, LogExpr, LogRange, LogfmtParser, Stage, Unwrap, UnwrapConversion,
};
use crate::embedded::{check_ip_range, check_pattern, check_template};
use crate::error::{ErrorKind, ParseError};
use crate::lexer::Tok;
use skald_model::{MatchOp, Matcher};

/// Loki's wording, so clients that match on it keep working.
const EMPTY_SELECTOR_MESSAGE: &str = "queries require at least one regexp or equality matcher \
     that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this \
     requirement, but app=~\".+\" will";

/// Stages that may stand without an argument, so that `!=` or `!~` after
/// them starts a line filter.
pub(crate) const STANDALONE_STAGES: [&str; 4] = ["json", "logfmt", "unpack", "decolorize"];

/// What a label filter compares against.
enum FilterValue {
    Str(String, usize),
    Ip(String, usize),
    Number(f64),
    Duration(i64),
    Bytes(u64),
}

fn is_comparison(t: &Tok) -> bool {
    matches!(
        t,
        Tok::Eq | Tok::Neq | Tok::Re | Tok::Nre | Tok::EqEq | Tok::Gt | Tok::Ge | Tok::Lt | Tok::Le
    )
}

impl Parser<'_> {
    pub(super) fn selector(&mut self) -> Result<Vec<Matcher>, ParseError> {
        let open = self.pos();
        self.expect(Tok::LBrace, "'{' to start a stream selector")?;
        let mut matchers = Vec::new();
        loop {
            if *self.peek() == Tok::RBrace {
                self.bump();
                break;
            }
            let name = self.ident("a label name or '}'")?;
            let op = match self.peek() {
                Tok::Eq => MatchOp::Eq,
                Tok::Neq => MatchOp::Neq,
                Tok::Re => MatchOp::Re,
                Tok::Nre => MatchOp::Nre,
                _ => {
                    return Err(self.unexpected(&format!(
                        "'=', '!=', '=~' or '!~' after label name '{name}'"
                    )));
                }
            };
            self.bump();
            let (value, value_pos) = self.string("a quoted label value")?;
            matchers.push(self.matcher(name, op, value, value_pos)?);
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RBrace => {}
                _ => return Err(self.unexpected("',' or '}' after label matcher")),
            }
        }
        if matchers.iter().all(Matcher::matches_empty) {
            return Err(self.err_at(open, ErrorKind::Invalid, EMPTY_SELECTOR_MESSAGE));
        }
        Ok(matchers)
    }

    fn matcher(
        &self,
        name: String,
        op: MatchOp,
        value: String,
        value_pos: usize,
    ) -> Result<Matcher, ParseError> {
        let value = match op {
            MatchOp::Re | MatchOp::Nre => self.regex(&value, value_pos)?,
            MatchOp::Eq | MatchOp::Neq => value,
        };
        Matcher::new(name, op, value)
            .map_err(|e| self.err_at(value_pos, ErrorKind::Regex, e.to_string()))
    }

    /// A log query outside a range aggregation.
    pub(super) fn log_expr(&mut self) -> Result<LogExpr, ParseError> {
        let selector = self.selector()?;
        let (pipeline, _) = self.pipeline(false)?;
        Ok(LogExpr { selector, pipeline })
    }

    /// The argument of a range aggregation: a log query with its range,
    /// optionally an unwrap and an offset. The range may follow the
    /// selector or the pipeline; the log query may be parenthesised.
    pub(super) fn log_range(&mut self) -> Result<LogRange, ParseError> {
        let mut range = None;
        let (log, unwrap) = if *self.peek() == Tok::LParen {
            self.enter()?;
            self.bump();
            let selector = self.selector()?;
            let (pipeline, unwrap) = self.pipeline(true)?;
            self.expect(Tok::RParen, "')' to close the log query")?;
            self.leave();
            (LogExpr { selector, pipeline }, unwrap)
        } else {
            let selector = self.selector()?;
            if *self.peek() == Tok::LBracket {
                range = Some(self.range()?);
            }
            let (pipeline, unwrap) = self.pipeline(true)?;
            (LogExpr { selector, pipeline }, unwrap)
        };
        let range = match range {
            Some(r) => {
                if *self.peek() == Tok::LBracket {
                    return Err(self.err(ErrorKind::Syntax, "the range is given twice; keep one"));
                }
                r
            }
            None => {
                if *self.peek() != Tok::LBracket {
                    return Err(self.unexpected("a range like [5m] after the log query"));
                }
                self.range()?
            }
        };
        let mut offset = 0;
        if self.is_keyword(0, "offset") {
            self.bump();
            let negative = *self.peek() == Tok::Sub;
            if negative {
                self.bump();
            }
            let Tok::Duration(d) = *self.peek() else {
                return Err(self.unexpected("a duration like 1h after offset"));
            };
            self.bump();
            offset = if negative { -d } else { d };
        }
        Ok(LogRange {
            log,
            unwrap,
            range,
            offset,
        })
    }

    /// `[5m]`: a positive duration in nanoseconds.
    fn range(&mut self) -> Result<i64, ParseError> {
        self.expect(Tok::LBracket, "'['")?;
        let pos = self.pos();
        let nanos = match self.peek() {
            Tok::Duration(d) => *d,
            _ => return Err(self.unexpected("a duration like 5m inside '[...]'")),
        };
        self.bump();
        if nanos <= 0 {
            return Err(self.err_at(
                pos,
                ErrorKind::Invalid,
                "the range must be longer than zero",
            ));
        }
        self.expect(Tok::RBracket, "']' after the range")?;
        Ok(nanos)
    }

    /// Stages until something that cannot continue a pipeline. With
    /// `allow_unwrap`, a `| unwrap` (and label filters after it) ends it.
    fn pipeline(&mut self, allow_unwrap: bool) -> Result<(Vec<Stage>, Option<Unwrap>), ParseError> {
        let mut stages = Vec::new();
        loop {
            let op = match self.peek() {
                Tok::PipeEq => LineFilterOp::Contains,
                Tok::Neq => LineFilterOp::NotContains,
                Tok::PipeRe => LineFilterOp::Regex,
                Tok::Nre => LineFilterOp::NotRegex,
                Tok::PipePattern => LineFilterOp::Pattern,
                Tok::NotPattern => LineFilterOp::NotPattern,
                Tok::Pipe => {
                    self.bump();
                    if self.is_keyword(0, "unwrap") && !is_comparison(self.peek_at(1)) {
                        if !allow_unwrap {
                            return Err(self.err(
                                ErrorKind::Invalid,
                                "unwrap is only allowed inside a range aggregation, \
                                 like sum_over_time({app=\"api\"} | unwrap bytes [5m])",
                            ));
                        }
                        let unwrap = self.unwrap()?;
                        return Ok((stages, Some(unwrap)));
                    }
                    stages.push(self.stage()?);
                    continue;
                }
                _ => return Ok((stages, None)),
            };
            self.bump();
            stages.push(Stage::LineFilter(self.line_filter(op)?));
        }
    }

    fn line_filter(&mut self, op: LineFilterOp) -> Result<LineFilter, ParseError> {
        let mut op = op;
        let mut values = Vec::new();
        let op_str = op.as_str();
        loop {
            let is_ip = self.is_keyword(0, "ip") && *self.peek_at(1) == Tok::LParen;
            if is_ip {
                let ip_op = match op {
                    LineFilterOp::Contains | LineFilterOp::Ip => LineFilterOp::Ip,
                    LineFilterOp::NotContains | LineFilterOp::NotIp => LineFilterOp::NotIp,
                    _ => {
                        return Err(self.err(
                            ErrorKind::Syntax,
                            format!("ip(...) is only allowed after '|=' or '!=', not '{op_str}'"),
                        ));
                    }
                };
                if !values.is_empty() && ip_op != op {
                    return Err(self.err(
                        ErrorKind::Syntax,
                        "an or-chain cannot mix ip(...) and strings",
                    ));
                }
                op = ip_op;
                values.push(self.ip_call()?);
            } else {
                if matches!(op, LineFilterOp::Ip | LineFilterOp::NotIp) {
                    return Err(self.unexpected("ip(\"...\") in an or-chain of ip filters"));
                }
                let (value, pos) = self.string(&format!("a quoted string after '{op_str}'"))?;
                let value = match op {
                    LineFilterOp::Regex | LineFilterOp::NotRegex => self.regex(&value, pos)?,
                    LineFilterOp::Pattern | LineFilterOp::NotPattern => {
                        check_pattern(&value, false)
                            .map_err(|m| self.err_at(pos, ErrorKind::Invalid, m))?;
                        value
                    }
                    _ => value,
                };
                values.push(value);
            }
            let continues = self.is_keyword(0, "or")
                && (matches!(self.peek_at(1), Tok::Str(_))
                    || (self.is_keyword(1, "ip") && *self.peek_at(2) == Tok::LParen));
            if !continues {
                break;
            }
            self.bump();
        }
        Ok(LineFilter { op, values })
    }

    /// `ip("...")`, checked.
    fn ip_call(&mut self) -> Result<String, ParseError> {
        self.bump();
        self.expect(Tok::LParen, "'(' after ip")?;
        let (value, pos) = self.string("an address or range as a string inside ip(...)")?;
        check_ip_range(&value).map_err(|m| self.err_at(pos, ErrorKind::Invalid, m))?;
        self.expect(Tok::RParen, "')' to close ip(...)")?;
        Ok(value)
    }

    /// One stage after `|` (not `unwrap`).
    fn stage(&mut self) -> Result<Stage, ParseError> {
        let keyword = match self.peek() {
            Tok::Ident(k) if self.stage_keyword_here(k) => k.clone(),
            Tok::Ident(_) | Tok::LParen => return Ok(Stage::LabelFilter(self.label_filter()?)),
            _ => {
                return Err(self.unexpected(
                    "a parser (json, logfmt, regexp, pattern, unpack), a label filter, \
                     line_format, label_format, drop, keep or decolorize after '|'",
                ));
            }
        };
        let pos = self.pos();
        self.bump();
        match keyword.as_str() {
            "json" => Ok(Stage::Json(self.extract_params()?)),
            "logfmt" => {
                let mut parser = LogfmtParser::default();
                while let Tok::Flag(flag) = self.peek() {
                    match flag.as_str() {
                        "strict" => parser.strict = true,
                        "keep-empty" => parser.keep_empty = true,
                        other => {
                            return Err(self.err(
                                ErrorKind::Syntax,
                                format!(
                                    "unknown logfmt flag '--{other}': expected --strict or \
                                     --keep-empty"
                                ),
                            ));
                        }
                    }
                    self.bump();
                }
                parser.params = self.extract_params()?;
                Ok(Stage::Logfmt(parser))
            }
            "regexp" => {
                let (go, pos) = self.string("a quoted regex after regexp")?;
                let regex = self.regex(&go, pos)?;
                let has_named = regex::Regex::new(&regex)
                    .map(|r| r.capture_names().any(|n| n.is_some()))
                    .unwrap_or(false);
                if !has_named {
                    return Err(self.err_at(
                        pos,
                        ErrorKind::Invalid,
                        "the regexp stage needs at least one named capture, like (?P<name>...)",
                    ));
                }
                Ok(Stage::Regexp(regex))
            }
            "pattern" => {
                let (pattern, pos) = self.string("a quoted pattern after pattern")?;
                check_pattern(&pattern, true)
                    .map_err(|m| self.err_at(pos, ErrorKind::Invalid, m))?;
                Ok(Stage::Pattern(pattern))
            }
            "unpack" => Ok(Stage::Unpack),
            "decolorize" => Ok(Stage::Decolorize),
            "line_format" => {
                let (template, pos) = self.string("a quoted template after line_format")?;
                check_template(&template).map_err(|m| {
                    self.err_at(pos, ErrorKind::Invalid, format!("invalid template: {m}"))
                })?;
                Ok(Stage::LineFormat(template))
            }
            "label_format" => Ok(Stage::LabelFormat(self.label_formats()?)),
            "drop" => Ok(Stage::Drop(self.label_selections("drop")?)),
            "keep" => Ok(Stage::Keep(self.label_selections("keep")?)),
            other => Err(self.err_at(
                pos,
                ErrorKind::Syntax,
                format!(
                    "unknown stage '{other}' after '|': expected a parser (json, logfmt, \
                     regexp, pattern, unpack), a label filter, line_format, label_format, \
                     drop, keep or decolorize"
                ),
            )),
        }
    }

    /// Whether the identifier `k` at the current token starts a stage
    /// rather than a label filter on a label of that name. A comparison
    /// after it makes it a label, except `!=` and `!~` after the stages
    /// that take no argument: there they start a line filter, as in Loki
    /// (`| json != "x"`).
    fn stage_keyword_here(&self, k: &str) -> bool {
        match self.peek_at(1) {
            Tok::Neq | Tok::Nre => STANDALONE_STAGES.contains(&k),
            next => !is_comparison(next),
        }
    }

    /// `a, b="c.d"` after `json` or `logfmt`; possibly empty.
    fn extract_params(&mut self) -> Result<Vec<ExtractParam>, ParseError> {
        let mut params = Vec::new();
        while let Some(label) = self.peek_ident(0) {
            let label = label.to_string();
            self.bump();
            let expr = if *self.peek() == Tok::Eq {
                self.bump();
                Some(self.string("a quoted expression after '='")?.0)
            } else {
                None
            };
            params.push(ExtractParam { label, expr });
            if *self.peek() != Tok::Comma {
                break;
            }
            self.bump();
        }
        Ok(params)
    }

    fn label_formats(&mut self) -> Result<Vec<LabelFormat>, ParseError> {
        let mut formats: Vec<LabelFormat> = Vec::new();
        loop {
            let dst_pos = self.pos();
            let dst = self.ident("a label name to set in label_format")?;
            if formats.iter().any(|f| f.dst == dst) {
                return Err(self.err_at(
                    dst_pos,
                    ErrorKind::Invalid,
                    format!("label '{dst}' is set more than once in one label_format"),
                ));
            }
            self.expect(Tok::Eq, &format!("'=' after '{dst}' in label_format"))?;
            let src = match self.peek() {
                Tok::Ident(_) => LabelFormatSource::Rename(self.ident("a label name")?),
                Tok::Str(_) => {
                    let (template, pos) = self.string("a template")?;
                    check_template(&template).map_err(|m| {
                        self.err_at(pos, ErrorKind::Invalid, format!("invalid template: {m}"))
                    })?;
                    LabelFormatSource::Template(template)
                }
                _ => {
                    return Err(self
                        .unexpected("a label name to rename from or a quoted template after '='"));
                }
            };
            formats.push(LabelFormat { dst, src });
            if *self.peek() != Tok::Comma {
                return Ok(formats);
            }
            self.bump();
        }
    }

    fn label_selections(&mut self, stage: &str) -> Result<Vec<LabelSelection>, ParseError> {
        let mut items = Vec::new();
        loop {
            let name = self.ident(&format!("a label name after {stage}"))?;
            let op = match self.peek() {
                Tok::Eq => Some(MatchOp::Eq),
                Tok::Neq => Some(MatchOp::Neq),
                Tok::Re => Some(MatchOp::Re),
                Tok::Nre => Some(MatchOp::Nre),
                _ => None,
            };
            let item = match op {
                Some(op) => {
                    self.bump();
                    let (value, pos) = self.string("a quoted value")?;
                    LabelSelection::Matching(self.matcher(name, op, value, pos)?)
                }
                None => LabelSelection::Name(name),
            };
            items.push(item);
            if *self.peek() != Tok::Comma {
                return Ok(items);
            }
            self.bump();
        }
    }

    /// Whether a label filter starts `n` tokens ahead.
    fn starts_label_filter(&self, n: usize) -> bool {
        match self.peek_at(n) {
            Tok::Ident(_) => is_comparison(self.peek_at(n + 1)),
            Tok::LParen => {
                matches!(self.peek_at(n + 1), Tok::Ident(_) | Tok::LParen)
            }
            _ => false,
        }
    }

    /// `a or b`, `or` binding loosest.
    fn label_filter(&mut self) -> Result<LabelFilter, ParseError> {
        let mut lhs = self.label_filter_and()?;
        while self.is_keyword(0, "or") && self.starts_label_filter(1) {
            self.bump();
            let rhs = self.label_filter_and()?;
            lhs = LabelFilter::or(lhs, rhs);
        }
        Ok(lhs)
    }

    /// `a and b`, `a, b`, `a b`.
    fn label_filter_and(&mut self) -> Result<LabelFilter, ParseError> {
        let mut lhs = self.label_filter_primary()?;
        loop {
            let explicit = (self.is_keyword(0, "and") || *self.peek() == Tok::Comma)
                && self.starts_label_filter(1);
            let juxtaposed = matches!(self.peek(), Tok::Ident(_)) && self.starts_label_filter(0);
            if explicit {
                self.bump();
            } else if !juxtaposed {
                return Ok(lhs);
            }
            let rhs = self.label_filter_primary()?;
            lhs = LabelFilter::and(lhs, rhs);
        }
    }

    fn label_filter_primary(&mut self) -> Result<LabelFilter, ParseError> {
        if *self.peek() == Tok::LParen {
            self.enter()?;
            self.bump();
            let inner = self.label_filter()?;
            self.expect(Tok::RParen, "')' to close the label filter")?;
            self.leave();
            return Ok(inner);
        }
        let name = self.ident("a label name in a label filter")?;
        let op_tok = self.peek().clone();
        if !is_comparison(&op_tok) {
            return Err(self.unexpected(&format!(
                "a comparison like '=', '!=', '=~', '>' after label '{name}'"
            )));
        }
        self.bump();
        let value = self.filter_value()?;
        let cmp = match op_tok {
            Tok::Eq | Tok::EqEq => CmpOp::Eq,
            Tok::Neq => CmpOp::Neq,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            // `=~` and `!~` take a string only.
            _ => {
                return match value {
                    FilterValue::Str(s, pos) => {
                        let op = if op_tok == Tok::Re {
                            MatchOp::Re
                        } else {
                            MatchOp::Nre
                        };
                        Ok(LabelFilter::Matcher(self.matcher(name, op, s, pos)?))
                    }
                    _ => Err(self.err_at(
                        self.toks[self.i - 1].pos,
                        ErrorKind::Syntax,
                        format!(
                            "{op_tok} in a label filter needs a quoted regex, like {name}=~\"a.*\""
                        ),
                    )),
                };
            }
        };
        Ok(match value {
            FilterValue::Str(s, pos) => {
                let op = match cmp {
                    CmpOp::Eq => MatchOp::Eq,
                    CmpOp::Neq => MatchOp::Neq,
                    _ => {
                        return Err(self.err_at(
                            pos,
                            ErrorKind::Syntax,
                            format!(
                                "'{}' compares numbers, durations or byte sizes, found a string",
                                cmp.as_str()
                            ),
                        ));
                    }
                };
                LabelFilter::Matcher(self.matcher(name, op, s, pos)?)
            }
            FilterValue::Ip(range, pos) => {
                let negated = match cmp {
                    CmpOp::Eq => false,
                    CmpOp::Neq => true,
                    _ => {
                        return Err(self.err_at(
                            pos,
                            ErrorKind::Syntax,
                            "ip(...) in a label filter only works with '=' or '!='",
                        ));
                    }
                };
                LabelFilter::Ip {
                    name,
                    negated,
                    range,
                }
            }
            FilterValue::Number(value) => LabelFilter::Number {
                name,
                op: cmp,
                value,
            },
            FilterValue::Duration(value) => LabelFilter::Duration {
                name,
                op: cmp,
                value,
            },
            FilterValue::Bytes(value) => LabelFilter::Bytes {
                name,
                op: cmp,
                value,
            },
        })
    }

    fn filter_value(&mut self) -> Result<FilterValue, ParseError> {
        let pos = self.pos();
        if self.at_number() {
            return Ok(FilterValue::Number(self.number("a number")?));
        }
        if self.is_keyword(0, "ip") && *self.peek_at(1) == Tok::LParen {
            return Ok(FilterValue::Ip(self.ip_call()?, pos));
        }
        let negative = *self.peek() == Tok::Sub;
        if negative {
            self.bump();
        }
        let value = match self.peek() {
            Tok::Str(s) if !negative => FilterValue::Str(s.clone(), pos),
            Tok::Duration(d) => FilterValue::Duration(if negative { -d } else { *d }),
            Tok::Bytes(b) if !negative => FilterValue::Bytes(*b),
            _ => {
                return Err(self.unexpected(
                    "a quoted string, a number, a duration like 1s, a byte size like 10KB \
                     or ip(\"...\")",
                ));
            }
        };
        self.bump();
        Ok(value)
    }

    /// `unwrap label` or `unwrap duration(label)`, then `| label filters`.
    fn unwrap(&mut self) -> Result<Unwrap, ParseError> {
        self.bump();
        let conversion = match self.peek_ident(0) {
            Some("duration") if *self.peek_at(1) == Tok::LParen => UnwrapConversion::Duration,
            Some("duration_seconds") if *self.peek_at(1) == Tok::LParen => {
                UnwrapConversion::DurationSeconds
            }
            Some("bytes") if *self.peek_at(1) == Tok::LParen => UnwrapConversion::Bytes,
            _ => UnwrapConversion::None,
        };
        let label = if conversion == UnwrapConversion::None {
            self.ident("a label name after unwrap")?
        } else {
            self.bump();
            self.bump();
            let label = self.ident("a label name to convert")?;
            self.expect(Tok::RParen, "')' after the label name")?;
            label
        };
        let mut post_filters = Vec::new();
        while *self.peek() == Tok::Pipe && self.starts_label_filter(1) {
            self.bump();
            post_filters.push(self.label_filter()?);
        }
        let more_stages = matches!(
            self.peek(),
            Tok::Pipe
                | Tok::PipeEq
                | Tok::PipeRe
                | Tok::PipePattern
                | Tok::NotPattern
                | Tok::Neq
                | Tok::Nre
        );
        if more_stages {
            return Err(self.err(
                ErrorKind::Syntax,
                "only label filters may follow unwrap, like | __error__=\"\"",
            ));
        }
        Ok(Unwrap {
            conversion,
            label,
            post_filters,
        })
    }
}
