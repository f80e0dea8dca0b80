//! The LogQL parser: recursive descent over the lexer's tokens.
//!
//! Input safety: the query length is capped ([`MAX_QUERY_BYTES`]) and every
//! construct that can nest (parentheses) counts against [`MAX_DEPTH`], so
//! hostile input cannot overflow the stack. Validation that Loki does at
//! parse time happens here too: regexes are translated and compiled with a
//! size limit, and a selector must have a matcher that does not match the
//! empty string.
//!
//! Not here: evaluation or type checking beyond what the grammar implies.

use crate::ast::{Expr, LineFilter, LineFilterOp, LogExpr, Stage};
use crate::error::{ErrorKind, ParseError};
use crate::lexer::{Tok, Token, tokenize};
use crate::regex::translate_regex;
use skald_model::{MatchOp, Matcher};

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 128 * 1024;

/// Deepest nesting of parentheses and sub-expressions accepted.
pub const MAX_DEPTH: usize = 64;

/// Loki's wording, so clients that match on it keep working.
const EMPTY_SELECTOR_MESSAGE: &str = "queries require at least one regexp or equality matcher \
     that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this \
     requirement, but app=~\".+\" will";

/// Parses a LogQL query.
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
    };
    let expr = p.expr()?;
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected("an operator or the end of the query"));
    }
    Ok(expr)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.i + n).min(self.toks.len() - 1)].tok
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

    /// "expected X, found Y" at the current token.
    fn unexpected(&self, expected: &str) -> ParseError {
        self.err_at(
            self.pos(),
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
            return Err(self.err_at(
                self.pos(),
                ErrorKind::TooComplex,
                format!("query nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Tok::LBrace => Ok(Expr::Log(self.log_expr()?)),
            Tok::LParen => {
                self.enter()?;
                self.bump();
                let inner = self.expr()?;
                self.expect(Tok::RParen, "')' to close '('")?;
                self.leave();
                Ok(inner)
            }
            _ => Err(self.unexpected("a stream selector like {app=\"api\"}")),
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

    /// Translates a regex found in the string literal at `pos`.
    fn regex(&self, go: &str, pos: usize) -> Result<String, ParseError> {
        translate_regex(go).map_err(|e| e.relocate(self.src, pos))
    }

    fn selector(&mut self) -> Result<Vec<Matcher>, ParseError> {
        let open = self.pos();
        self.expect(Tok::LBrace, "'{' to start a stream selector")?;
        let mut matchers = Vec::new();
        loop {
            if *self.peek() == Tok::RBrace {
                self.bump();
                break;
            }
            let name = match self.peek() {
                Tok::Ident(_) => match self.bump() {
                    Tok::Ident(n) => n,
                    _ => unreachable!("peeked an identifier"),
                },
                _ => return Err(self.unexpected("a label name or '}'")),
            };
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
            let matcher = self.matcher(name, op, value, value_pos)?;
            matchers.push(matcher);
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

    fn log_expr(&mut self) -> Result<LogExpr, ParseError> {
        let selector = self.selector()?;
        let mut pipeline = Vec::new();
        loop {
            let op = match self.peek() {
                Tok::PipeEq => LineFilterOp::Contains,
                Tok::Neq => LineFilterOp::NotContains,
                Tok::PipeRe => LineFilterOp::Regex,
                Tok::Nre => LineFilterOp::NotRegex,
                _ => break,
            };
            self.bump();
            pipeline.push(Stage::LineFilter(self.line_filter(op)?));
        }
        Ok(LogExpr { selector, pipeline })
    }

    fn line_filter(&mut self, op: LineFilterOp) -> Result<LineFilter, ParseError> {
        let mut values = Vec::new();
        loop {
            let (value, pos) = self.string(&format!("a quoted string after '{}'", op.as_str()))?;
            let value = match op {
                LineFilterOp::Regex | LineFilterOp::NotRegex => self.regex(&value, pos)?,
                _ => value,
            };
            values.push(value);
            let or_string = matches!(self.peek(), Tok::Ident(k) if k == "or")
                && matches!(self.peek_at(1), Tok::Str(_));
            if !or_string {
                break;
            }
            self.bump();
        }
        Ok(LineFilter { op, values })
    }
}
