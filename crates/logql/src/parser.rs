//! The LogQL parser: recursive descent over the lexer's tokens, with
//! precedence climbing (Pratt) for binary operators.
//!
//! This file holds the entry point, the token helpers and metric queries
//! (binary operators, aggregations, `vector`, `label_replace`); log queries
//! and their pipeline stages are in `parser/stages.rs`.
//!
//! Input safety: the query length is capped ([`MAX_QUERY_BYTES`]), every
//! construct that can nest (parentheses, function arguments, right operands)
//! counts against [`MAX_DEPTH`], and the number of binary operators against
//! [`MAX_BINARY_OPS`], so hostile input can neither overflow the stack here
//! nor build a tree too deep to print or drop. Validation that Loki does at
//! parse time happens here too: regexes are translated and compiled with a
//! size limit, a selector must have a matcher that does not match the empty
//! string, aggregations must get the arguments they need.
//!
//! Not here: evaluation.

mod stages;

pub(crate) use stages::STANDALONE_STAGES;

use crate::ast::{
    BinaryExpr, BinaryModifier, BinaryOp, Expr, GroupModifier, Grouping, LabelReplace,
    RangeAggregation, RangeOp, VectorAggregation, VectorMatching, VectorOp,
};
use crate::error::{ErrorKind, ParseError};
use crate::lexer::{Tok, Token, tokenize};
use crate::regex::translate_regex;
use skald_model::is_valid_label_name;

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 128 * 1024;

/// Deepest nesting of parentheses and sub-expressions accepted.
pub const MAX_DEPTH: usize = 64;

/// Most binary operators accepted in one query. A chain `a + b + c ...`
/// nests to the left without recursing in the parser, but the tree it
/// builds is as deep as it is long.
pub const MAX_BINARY_OPS: usize = 256;

/// Parses a LogQL query: a log query or a metric query.
pub fn parse_expr(input: &str) -> Result<Expr, ParseError> {
    if input.len() > MAX_QUERY_BYTES {
        return Err(ParseError::at(
            input,
            0,
            ErrorKind::TooComplex,
            format!(
                "query is {} bytes long: the limit is {MAX_QUERY_BYTES}",
                input.len()
            ),
        ));
    }
    let toks = tokenize(input)?;
    let mut p = Parser {
        src: input,
        toks,
        i: 0,
        depth: 0,
        binary_ops: 0,
    };
    let expr = p.expr()?;
    match p.peek() {
        Tok::Eof => Ok(expr),
        Tok::LBracket if expr.is_log() => Err(p.err(
            ErrorKind::Syntax,
            "a range like [5m] is only allowed inside a range aggregation, \
             like count_over_time({app=\"api\"}[5m])",
        )),
        Tok::Pipe if expr.is_log() => Err(p.unexpected("a pipeline stage after '|'")),
        _ => Err(p.unexpected("an operator or the end of the query")),
    }
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
    depth: usize,
    binary_ops: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> &Tok {
        let last = self.toks.len() - 1;
        &self.toks[self.i.saturating_add(n).min(last)].tok
    }

    fn peek_ident(&self, n: usize) -> Option<&str> {
        match self.peek_at(n) {
            Tok::Ident(s) => Some(s),
            _ => None,
        }
    }

    fn is_keyword(&self, n: usize, keyword: &str) -> bool {
        self.peek_ident(n) == Some(keyword)
    }

    fn pos(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].pos
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn err_at(&self, pos: usize, kind: ErrorKind, message: impl Into<String>) -> ParseError {
        ParseError::at(self.src, pos, kind, message)
    }

    fn err(&self, kind: ErrorKind, message: impl Into<String>) -> ParseError {
        self.err_at(self.pos(), kind, message)
    }

    /// "expected X, found Y" at the current token.
    fn unexpected(&self, expected: &str) -> ParseError {
        self.err(
            ErrorKind::Syntax,
            format!("expected {expected}, found {}", self.peek()),
        )
    }

    fn expect(&mut self, tok: Tok, expected: &str) -> Result<(), ParseError> {
        if *self.peek() == tok {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(
                ErrorKind::TooComplex,
                format!("query nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn ident(&mut self, expected: &str) -> Result<String, ParseError> {
        match self.peek() {
            Tok::Ident(_) => match self.bump() {
                Tok::Ident(s) => Ok(s),
                _ => unreachable!("peeked an identifier"),
            },
            _ => Err(self.unexpected(expected)),
        }
    }

    fn string(&mut self, expected: &str) -> Result<(String, usize), ParseError> {
        let pos = self.pos();
        match self.peek() {
            Tok::Str(_) => match self.bump() {
                Tok::Str(s) => Ok((s, pos)),
                _ => unreachable!("peeked a string"),
            },
            _ => Err(self.unexpected(expected)),
        }
    }

    /// A number with an optional sign; `Inf` and `NaN` in any case.
    fn number(&mut self, expected: &str) -> Result<f64, ParseError> {
        let sign = match self.peek() {
            Tok::Sub => -1.0,
            Tok::Add => 1.0,
            _ => 0.0,
        };
        let at = usize::from(sign != 0.0);
        let value = match self.peek_at(at) {
            Tok::Number(n) => *n,
            Tok::Ident(s) if s.eq_ignore_ascii_case("inf") => f64::INFINITY,
            Tok::Ident(s) if s.eq_ignore_ascii_case("nan") => f64::NAN,
            _ => {
                if at == 1 {
                    self.bump();
                }
                return Err(self.unexpected(expected));
            }
        };
        self.i += at;
        self.bump();
        Ok(if sign < 0.0 { -value } else { value })
    }

    /// Whether the current token starts a number (`5`, `-5`, `Inf`).
    fn at_number(&self) -> bool {
        let is_num = |t: &Tok| match t {
            Tok::Number(_) => true,
            Tok::Ident(s) => s.eq_ignore_ascii_case("inf") || s.eq_ignore_ascii_case("nan"),
            _ => false,
        };
        match self.peek() {
            Tok::Sub | Tok::Add => is_num(self.peek_at(1)),
            t => is_num(t),
        }
    }

    /// Translates a regex found in the string literal at `pos`.
    fn regex(&self, go: &str, pos: usize) -> Result<String, ParseError> {
        translate_regex(go).map_err(|e| e.relocate(self.src, pos))
    }

    /// `(a, b, c)`; an empty list is allowed.
    fn label_list(&mut self) -> Result<Vec<String>, ParseError> {
        self.expect(Tok::LParen, "'(' before a list of label names")?;
        let mut labels = Vec::new();
        loop {
            if *self.peek() == Tok::RParen {
                self.bump();
                return Ok(labels);
            }
            labels.push(self.ident("a label name or ')'")?);
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {}
                _ => return Err(self.unexpected("',' or ')' in a list of label names")),
            }
        }
    }

    /// `by (...)` or `without (...)`, if present.
    fn grouping(&mut self) -> Result<Option<Grouping>, ParseError> {
        let without = match self.peek_ident(0) {
            Some("by") => false,
            Some("without") => true,
            _ => return Ok(None),
        };
        self.bump();
        let labels = self.label_list()?;
        Ok(Some(Grouping { without, labels }))
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.binary(0)
    }

    fn peek_binary_op(&self) -> Option<BinaryOp> {
        Some(match self.peek() {
            Tok::Add => BinaryOp::Add,
            Tok::Sub => BinaryOp::Sub,
            Tok::Mul => BinaryOp::Mul,
            Tok::Div => BinaryOp::Div,
            Tok::Mod => BinaryOp::Mod,
            Tok::Pow => BinaryOp::Pow,
            Tok::EqEq => BinaryOp::Eq,
            Tok::Neq => BinaryOp::Neq,
            Tok::Gt => BinaryOp::Gt,
            Tok::Ge => BinaryOp::Ge,
            Tok::Lt => BinaryOp::Lt,
            Tok::Le => BinaryOp::Le,
            Tok::Ident(k) if k == "and" => BinaryOp::And,
            Tok::Ident(k) if k == "or" => BinaryOp::Or,
            Tok::Ident(k) if k == "unless" => BinaryOp::Unless,
            _ => return None,
        })
    }

    /// Precedence climbing: operators binding at least as tight as
    /// `min_prec`.
    fn binary(&mut self, min_prec: u8) -> Result<Expr, ParseError> {
        let mut lhs = self.unary()?;
        while let Some(op) = self.peek_binary_op() {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let op_pos = self.pos();
            self.bump();
            self.binary_ops += 1;
            if self.binary_ops > MAX_BINARY_OPS {
                return Err(self.err_at(
                    op_pos,
                    ErrorKind::TooComplex,
                    format!("query has more than {MAX_BINARY_OPS} binary operators"),
                ));
            }
            let modifier = self.binary_modifier(op)?;
            let next_min = if op.is_right_associative() {
                prec
            } else {
                prec + 1
            };
            self.enter()?;
            let rhs = self.binary(next_min)?;
            self.leave();
            self.check_binary(op, &modifier, &lhs, &rhs, op_pos)?;
            lhs = Expr::Binary(BinaryExpr {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                modifier,
            });
        }
        Ok(lhs)
    }

    /// `bool`, `on (...)`/`ignoring (...)`, `group_left (...)`/`group_right (...)`.
    fn binary_modifier(&mut self, op: BinaryOp) -> Result<BinaryModifier, ParseError> {
        let mut m = BinaryModifier::default();
        if self.is_keyword(0, "bool") {
            if !op.is_comparison() {
                return Err(self.err(
                    ErrorKind::Syntax,
                    format!(
                        "bool is only allowed after a comparison operator, not after '{}'",
                        op.as_str()
                    ),
                ));
            }
            self.bump();
            m.return_bool = true;
        }
        let on = match self.peek_ident(0) {
            Some("on") => Some(true),
            Some("ignoring") => Some(false),
            _ => None,
        };
        if let Some(on) = on
            && *self.peek_at(1) == Tok::LParen
        {
            self.bump();
            let labels = self.label_list()?;
            m.matching = Some(VectorMatching { on, labels });
        }
        let left = match self.peek_ident(0) {
            Some("group_left") => Some(true),
            Some("group_right") => Some(false),
            _ => None,
        };
        if let Some(left) = left {
            let name = if left { "group_left" } else { "group_right" };
            if m.matching.is_none() {
                return Err(self.err(
                    ErrorKind::Syntax,
                    format!("{name} needs on(...) or ignoring(...) before it"),
                ));
            }
            if op.is_set() {
                return Err(self.err(
                    ErrorKind::Syntax,
                    format!(
                        "{name} is not allowed with the set operator '{}'",
                        op.as_str()
                    ),
                ));
            }
            self.bump();
            let labels = if *self.peek() == Tok::LParen {
                self.label_list()?
            } else {
                Vec::new()
            };
            m.group = Some(GroupModifier { left, labels });
        }
        Ok(m)
    }

    fn check_binary(
        &self,
        op: BinaryOp,
        m: &BinaryModifier,
        lhs: &Expr,
        rhs: &Expr,
        pos: usize,
    ) -> Result<(), ParseError> {
        let invalid = |msg: String| Err(self.err_at(pos, ErrorKind::Invalid, msg));
        let op_name = op.as_str();
        if lhs.is_log() || rhs.is_log() {
            return invalid(format!(
                "binary operator '{op_name}' needs metric queries or numbers on both sides, \
                 found a log query; wrap it in a range aggregation like count_over_time(...[5m])"
            ));
        }
        let (l_scalar, r_scalar) = (is_scalar(lhs), is_scalar(rhs));
        if op.is_set() && (l_scalar || r_scalar) {
            return invalid(format!(
                "set operator '{op_name}' needs vectors on both sides, found a number"
            ));
        }
        if m.matching.is_some() && (l_scalar || r_scalar) {
            return invalid(format!(
                "on(...)/ignoring(...) after '{op_name}' need vectors on both sides, found a number"
            ));
        }
        if op.is_comparison() && l_scalar && r_scalar && !m.return_bool {
            return invalid(format!(
                "comparisons between numbers must use the bool modifier: '{op_name} bool'"
            ));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.at_number() {
            return Ok(Expr::Literal(self.number("a number")?));
        }
        match self.peek() {
            Tok::Sub | Tok::Add => {
                self.bump();
                Err(self.unexpected("a number after the sign"))
            }
            Tok::LParen => {
                self.enter()?;
                self.bump();
                let inner = self.expr()?;
                self.expect(Tok::RParen, "')' to close '('")?;
                self.leave();
                Ok(inner)
            }
            Tok::LBrace => Ok(Expr::Log(self.log_expr()?)),
            Tok::Ident(name) => {
                let name = name.clone();
                let call = *self.peek_at(1) == Tok::LParen;
                if let Some(op) = RangeOp::from_name(&name) {
                    return self.range_aggregation(op);
                }
                if let Some(op) = VectorOp::from_name(&name) {
                    return self.vector_aggregation(op);
                }
                match name.as_str() {
                    "label_replace" => self.label_replace(),
                    "vector" => self.vector(),
                    _ if call => {
                        Err(self.err(ErrorKind::Syntax, format!("unknown function '{name}'")))
                    }
                    _ => Err(self.unexpected("a stream selector, a metric query or a number")),
                }
            }
            _ => {
                Err(self
                    .unexpected("a stream selector like {app=\"api\"}, a metric query or a number"))
            }
        }
    }

    fn range_aggregation(&mut self, op: RangeOp) -> Result<Expr, ParseError> {
        let name = op.as_str();
        let op_pos = self.pos();
        self.bump();
        self.expect(Tok::LParen, &format!("'(' after {name}"))?;
        self.enter()?;
        let param = if op == RangeOp::QuantileOverTime {
            let q = self.number(&format!("the quantile of {name}, like {name}(0.99, ...)"))?;
            self.expect(Tok::Comma, &format!("',' after the quantile of {name}"))?;
            Some(q)
        } else {
            None
        };
        let range = self.log_range()?;
        self.expect(Tok::RParen, &format!("')' to close {name}(...)"))?;
        self.leave();
        let grouping_pos = self.pos();
        let grouping = self.grouping()?;
        if grouping.is_some() && !op.allows_grouping() {
            return Err(self.err_at(
                grouping_pos,
                ErrorKind::Invalid,
                format!(
                    "{name} does not allow by/without; group with an outer aggregation \
                     like sum by (label) ({name}(...))"
                ),
            ));
        }
        if op.requires_unwrap() && range.unwrap.is_none() {
            return Err(self.err_at(
                op_pos,
                ErrorKind::Invalid,
                format!("{name} needs an unwrapped label: add '| unwrap <label>' before the range"),
            ));
        }
        if !op.allows_unwrap() && range.unwrap.is_some() {
            return Err(self.err_at(
                op_pos,
                ErrorKind::Invalid,
                format!("{name} does not take '| unwrap': it counts lines or bytes"),
            ));
        }
        Ok(Expr::RangeAggregation(RangeAggregation {
            op,
            param,
            range,
            grouping,
        }))
    }

    fn vector_aggregation(&mut self, op: VectorOp) -> Result<Expr, ParseError> {
        let name = op.as_str();
        let op_pos = self.pos();
        self.bump();
        let before = self.grouping()?;
        self.expect(Tok::LParen, &format!("'(' after {name}"))?;
        self.enter()?;
        let param = if op.takes_param() {
            let k_pos = self.pos();
            let k = self.number(&format!("the k of {name}, like {name}(5, ...)"))?;
            if !(k >= 1.0 && k.fract() == 0.0 && k <= f64::from(u32::MAX)) {
                return Err(self.err_at(
                    k_pos,
                    ErrorKind::Invalid,
                    format!("the k of {name} must be a positive integer, found {k}"),
                ));
            }
            self.expect(Tok::Comma, &format!("',' after the k of {name}"))?;
            Some(k)
        } else {
            None
        };
        let inner_pos = self.pos();
        let inner = self.expr()?;
        self.expect(Tok::RParen, &format!("')' to close {name}(...)"))?;
        self.leave();
        let after_pos = self.pos();
        let after = self.grouping()?;
        if before.is_some() && after.is_some() {
            return Err(self.err_at(
                after_pos,
                ErrorKind::Syntax,
                format!("{name} has by/without twice; keep one"),
            ));
        }
        let grouping = before.or(after);
        if grouping.is_some() && !op.allows_grouping() {
            return Err(self.err_at(
                op_pos,
                ErrorKind::Invalid,
                format!("{name} does not allow by/without"),
            ));
        }
        if inner.is_log() {
            return Err(self.err_at(
                inner_pos,
                ErrorKind::Invalid,
                format!(
                    "{name} needs a metric query, found a log query; wrap it in a range \
                     aggregation like count_over_time(...[5m])"
                ),
            ));
        }
        Ok(Expr::VectorAggregation(VectorAggregation {
            op,
            param,
            inner: Box::new(inner),
            grouping,
        }))
    }

    fn label_replace(&mut self) -> Result<Expr, ParseError> {
        self.bump();
        self.expect(Tok::LParen, "'(' after label_replace")?;
        self.enter()?;
        let inner_pos = self.pos();
        let inner = self.expr()?;
        if inner.is_log() {
            return Err(self.err_at(
                inner_pos,
                ErrorKind::Invalid,
                "label_replace needs a metric query, found a log query",
            ));
        }
        let mut args = Vec::new();
        for what in ["destination label", "replacement", "source label", "regex"] {
            self.expect(
                Tok::Comma,
                &format!("',' before the {what} of label_replace"),
            )?;
            args.push(self.string(&format!("the {what} of label_replace as a string"))?);
        }
        self.expect(Tok::RParen, "')' to close label_replace(...)")?;
        self.leave();
        let [
            (dst, dst_pos),
            (replacement, _),
            (src, src_pos),
            (regex, regex_pos),
        ] = <[(String, usize); 4]>::try_from(args)
            .map_err(|_| self.err(ErrorKind::Syntax, "label_replace takes five arguments"))?;
        for (label, pos) in [(&dst, dst_pos), (&src, src_pos)] {
            if !is_valid_label_name(label) {
                return Err(self.err_at(
                    pos,
                    ErrorKind::Invalid,
                    format!("invalid label name {label:?} in label_replace"),
                ));
            }
        }
        let regex = self.regex(&regex, regex_pos)?;
        Ok(Expr::LabelReplace(LabelReplace {
            inner: Box::new(inner),
            dst,
            replacement,
            src,
            regex,
        }))
    }

    fn vector(&mut self) -> Result<Expr, ParseError> {
        self.bump();
        self.expect(Tok::LParen, "'(' after vector")?;
        let value = self.number("a number inside vector(...)")?;
        self.expect(Tok::RParen, "')' to close vector(...)")?;
        Ok(Expr::Vector(value))
    }
}

/// Whether an expression evaluates to a single number rather than a
/// vector.
fn is_scalar(e: &Expr) -> bool {
    match e {
        Expr::Literal(_) => true,
        Expr::Binary(b) => is_scalar(&b.lhs) && is_scalar(&b.rhs),
        _ => false,
    }
}
