//! The LogQL lexer: query text to a vector of positioned tokens.
//!
//! Keywords (`by`, `or`, `json`, `rate`, ...) are not tokens of their own:
//! they lex as identifiers and the parser gives them meaning by context, so
//! a label may be called `by` or `json`. Strings are decoded here (Go
//! escapes in `"..."`, nothing in backquoted raw strings); numbers directly
//! followed by a unit lex as durations (`5m`, `1h30m`, `250ms`) or byte
//! sizes (`10KB`, `1.5MiB`). Comments run from `#` to the end of the line.
//!
//! Not here: any grammar. The lexer only bounds what it produces by the
//! input length, which the parser limits.

use crate::error::{ErrorKind, ParseError};
use crate::units::{parse_bytes, parse_duration};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Str(String),
    Number(f64),
    /// Nanoseconds.
    Duration(i64),
    Bytes(u64),
    /// `--strict`, `--keep-empty`: the name without dashes.
    Flag(String),
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `=~`
    Re,
    /// `!~`
    Nre,
    /// `|=`
    PipeEq,
    /// `|~`
    PipeRe,
    /// `|>`
    PipePattern,
    /// `!>`
    NotPattern,
    /// `|`
    Pipe,
    /// `==`
    EqEq,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eof,
}

impl fmt::Display for Tok {
    /// How an error message names what it found.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sym = match self {
            Tok::Ident(s) => return write!(f, "identifier '{s}'"),
            Tok::Str(s) => {
                let short: String = s.chars().take(40).collect();
                return write!(f, "string {short:?}");
            }
            Tok::Number(n) => return write!(f, "number {n}"),
            Tok::Duration(_) => "a duration",
            Tok::Bytes(_) => "a byte size",
            Tok::Flag(s) => return write!(f, "flag '--{s}'"),
            Tok::LBrace => "'{'",
            Tok::RBrace => "'}'",
            Tok::LParen => "'('",
            Tok::RParen => "')'",
            Tok::LBracket => "'['",
            Tok::RBracket => "']'",
            Tok::Comma => "','",
            Tok::Eq => "'='",
            Tok::Neq => "'!='",
            Tok::Re => "'=~'",
            Tok::Nre => "'!~'",
            Tok::PipeEq => "'|='",
            Tok::PipeRe => "'|~'",
            Tok::PipePattern => "'|>'",
            Tok::NotPattern => "'!>'",
            Tok::Pipe => "'|'",
            Tok::EqEq => "'=='",
            Tok::Lt => "'<'",
            Tok::Le => "'<='",
            Tok::Gt => "'>'",
            Tok::Ge => "'>='",
            Tok::Add => "'+'",
            Tok::Sub => "'-'",
            Tok::Mul => "'*'",
            Tok::Div => "'/'",
            Tok::Mod => "'%'",
            Tok::Pow => "'^'",
            Tok::Eof => "end of query",
        };
        f.write_str(sym)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the token's first character.
    pub pos: usize,
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut lx = Lexer { src, pos: 0 };
    let mut out = Vec::new();
    loop {
        let t = lx.next_token()?;
        let eof = t.tok == Tok::Eof;
        out.push(t);
        if eof {
            return Ok(out);
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.rest().chars();
        it.next();
        it.next()
    }

    fn err(&self, pos: usize, message: impl Into<String>) -> ParseError {
        ParseError::at(self.src, pos, ErrorKind::Syntax, message)
    }

    fn skip_space_and_comments(&mut self) {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with('#') {
                let line_len = trimmed.find('\n').unwrap_or(trimmed.len());
                self.pos += line_len;
            } else {
                return;
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, ParseError> {
        self.skip_space_and_comments();
        let pos = self.pos;
        let tok = |tok| Ok(Token { tok, pos });
        let Some(c) = self.peek() else {
            return tok(Tok::Eof);
        };
        let two = |lx: &mut Self, t: Tok| {
            lx.pos += 2;
            Ok(Token { tok: t, pos })
        };
        let one = |lx: &mut Self, t: Tok| {
            lx.pos += 1;
            Ok(Token { tok: t, pos })
        };
        let next = self.peek2();
        match c {
            '{' => one(self, Tok::LBrace),
            '}' => one(self, Tok::RBrace),
            '(' => one(self, Tok::LParen),
            ')' => one(self, Tok::RParen),
            '[' => one(self, Tok::LBracket),
            ']' => one(self, Tok::RBracket),
            ',' => one(self, Tok::Comma),
            '+' => one(self, Tok::Add),
            '*' => one(self, Tok::Mul),
            '/' => one(self, Tok::Div),
            '%' => one(self, Tok::Mod),
            '^' => one(self, Tok::Pow),
            '=' => match next {
                Some('~') => two(self, Tok::Re),
                Some('=') => two(self, Tok::EqEq),
                _ => one(self, Tok::Eq),
            },
            '!' => match next {
                Some('=') => two(self, Tok::Neq),
                Some('~') => two(self, Tok::Nre),
                Some('>') => two(self, Tok::NotPattern),
                _ => Err(self.err(pos, "unexpected '!': expected '!=', '!~' or '!>'")),
            },
            '|' => match next {
                Some('=') => two(self, Tok::PipeEq),
                Some('~') => two(self, Tok::PipeRe),
                Some('>') => two(self, Tok::PipePattern),
                _ => one(self, Tok::Pipe),
            },
            '<' => match next {
                Some('=') => two(self, Tok::Le),
                _ => one(self, Tok::Lt),
            },
            '>' => match next {
                Some('=') => two(self, Tok::Ge),
                _ => one(self, Tok::Gt),
            },
            '-' => {
                if next == Some('-') {
                    let rest = &self.rest()[2..];
                    let len = rest
                        .find(|c: char| !(is_ident_char(c) || c == '-'))
                        .unwrap_or(rest.len());
                    if len > 0 && rest.starts_with(is_ident_start) {
                        let name = rest[..len].to_string();
                        self.pos += 2 + len;
                        return tok(Tok::Flag(name));
                    }
                }
                one(self, Tok::Sub)
            }
            '"' => {
                let s = self.lex_go_string()?;
                tok(Tok::Str(s))
            }
            '`' => {
                let body = &self.rest()[1..];
                let Some(end) = body.find('`') else {
                    return Err(self.err(pos, "unterminated raw string: expected a closing '`'"));
                };
                // Go drops carriage returns from raw strings.
                let s = body[..end].replace('\r', "");
                self.pos += end + 2;
                tok(Tok::Str(s))
            }
            c if c.is_ascii_digit() || (c == '.' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let t = self.lex_number()?;
                tok(t)
            }
            c if is_ident_start(c) => {
                let rest = self.rest();
                let len = rest.find(|c| !is_ident_char(c)).unwrap_or(rest.len());
                let name = rest[..len].to_string();
                self.pos += len;
                tok(Tok::Ident(name))
            }
            c => Err(self.err(pos, format!("unexpected character {c:?}"))),
        }
    }

    /// A number, or a duration or byte size when a unit follows directly.
    fn lex_number(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        let rest = self.rest();
        let bytes = rest.as_bytes();
        if bytes.len() > 2 && bytes[0] == b'0' && (bytes[1] | 0x20) == b'x' {
            let len = 2 + rest[2..]
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(rest.len() - 2);
            let value = u64::from_str_radix(&rest[2..len], 16)
                .map_err(|_| self.err(start, format!("invalid hex number {:?}", &rest[..len])))?;
            self.pos += len;
            return Ok(Tok::Number(value as f64));
        }
        let mut i = 0;
        let digits = |i: &mut usize| {
            while *i < bytes.len() && bytes[*i].is_ascii_digit() {
                *i += 1;
            }
        };
        digits(&mut i);
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
        if i < bytes.len() && (bytes[i] | 0x20) == b'e' {
            let mut j = i + 1;
            if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
                j += 1;
            }
            if j < bytes.len() && bytes[j].is_ascii_digit() {
                i = j;
                digits(&mut i);
            }
        }
        // A unit directly after the number: take the whole run of letters,
        // digits and dots (`1h30m`, `1.5MiB`, `5µs`).
        let unit_len = rest[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == 'µ' || c == '_'))
            .unwrap_or(rest.len() - i);
        if unit_len == 0 {
            let text = &rest[..i];
            let value: f64 = text
                .parse()
                .map_err(|_| self.err(start, format!("invalid number {text:?}")))?;
            self.pos += i;
            return Ok(Tok::Number(value));
        }
        let text = &rest[..i + unit_len];
        self.pos += i + unit_len;
        if let Some(nanos) = parse_duration(text) {
            return Ok(Tok::Duration(nanos));
        }
        if let Some(b) = parse_bytes(text) {
            return Ok(Tok::Bytes(b));
        }
        Err(self.err(
            start,
            format!(
                "invalid number {text:?}: expected a number, a duration like 5m or 1h30m, \
                 or a byte size like 10KB"
            ),
        ))
    }

    /// A double-quoted string with Go's escapes, decoded.
    fn lex_go_string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let body = &self.src[start + 1..];
        let mut out: Vec<u8> = Vec::new();
        let mut it = body.char_indices();
        while let Some((i, c)) = it.next() {
            match c {
                '"' => {
                    self.pos = start + 1 + i + 1;
                    return String::from_utf8(out).map_err(|_| {
                        self.err(
                            start,
                            "string is not valid utf-8 after decoding its escapes",
                        )
                    });
                }
                '\n' => {
                    return Err(self.err(
                        start,
                        "newline in string: expected a closing '\"' on the same line \
                         (use a `raw string` for several lines)",
                    ));
                }
                '\\' => {
                    let esc_pos = start + 1 + i;
                    let Some((_, e)) = it.next() else { break };
                    let simple = match e {
                        'a' => Some(7u8),
                        'b' => Some(8),
                        'f' => Some(0xc),
                        'n' => Some(b'\n'),
                        'r' => Some(b'\r'),
                        't' => Some(b'\t'),
                        'v' => Some(0xb),
                        '\\' => Some(b'\\'),
                        '"' => Some(b'"'),
                        _ => None,
                    };
                    if let Some(b) = simple {
                        out.push(b);
                        continue;
                    }
                    let (radix, n) = match e {
                        'x' => (16, 2),
                        'u' => (16, 4),
                        'U' => (16, 8),
                        '0'..='7' => (8, 3),
                        _ => {
                            return Err(self
                                .err(esc_pos, format!("unknown escape sequence \\{e} in string")));
                        }
                    };
                    let mut digits = String::new();
                    if radix == 8 {
                        digits.push(e);
                    }
                    while digits.len() < n {
                        match it.next() {
                            Some((_, d)) if d.is_digit(radix) => digits.push(d),
                            _ => {
                                return Err(self.err(
                                    esc_pos,
                                    format!("invalid escape \\{e}: expected {n} digits"),
                                ));
                            }
                        }
                    }
                    let code = u32::from_str_radix(&digits, radix).unwrap_or(u32::MAX);
                    match e {
                        'x' | '0'..='7' => match u8::try_from(code) {
                            Ok(b) => out.push(b),
                            Err(_) => {
                                return Err(
                                    self.err(esc_pos, "octal escape value is larger than 255")
                                );
                            }
                        },
                        _ => match char::from_u32(code) {
                            Some(ch) => {
                                let mut buf = [0u8; 4];
                                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                            }
                            None => {
                                return Err(self.err(
                                    esc_pos,
                                    format!("escape \\{e}{digits} is not a valid code point"),
                                ));
                            }
                        },
                    }
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        Err(self.err(start, "unterminated string: expected a closing '\"'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn operators_strings_and_comments() {
        assert_eq!(
            toks("{a=~`x\\d`} |= \"q\\\"\\x41\" # comment\n!~ \"b\""),
            vec![
                Tok::LBrace,
                Tok::Ident("a".into()),
                Tok::Re,
                Tok::Str("x\\d".into()),
                Tok::RBrace,
                Tok::PipeEq,
                Tok::Str("q\"A".into()),
                Tok::Nre,
                Tok::Str("b".into()),
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn numbers_durations_bytes_flags() {
        assert_eq!(
            toks("1.5 5m 1h30m 10KB 0x10 1e3 --strict -"),
            vec![
                Tok::Number(1.5),
                Tok::Duration(300_000_000_000),
                Tok::Duration(5_400_000_000_000),
                Tok::Bytes(10_000),
                Tok::Number(16.0),
                Tok::Number(1000.0),
                Tok::Flag("strict".into()),
                Tok::Sub,
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn bad_input_is_positioned() {
        let e = tokenize("{a=\"x}").unwrap_err();
        assert_eq!(e.pos, 3);
        assert!(tokenize("\"\\q\"").is_err());
        assert!(tokenize("\"\\xff\"").is_err(), "not utf-8");
        assert!(tokenize("5zz").is_err());
        assert!(tokenize("@").is_err());
    }
}
