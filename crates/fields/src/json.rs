//! A small zero-copy JSON scanner, and the flattening of an object into
//! the fields Loki's parameterless `json` parser names.
//!
//! Nesting is bounded ([`MAX_DEPTH`]) so hostile input cannot exhaust the
//! stack. Strings borrow from the line unless they hold escapes.

use crate::sanitize_label_name;
use std::borrow::Cow;

/// Deepest nesting of objects and arrays we follow.
pub const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

pub struct Scanner<'a> {
    src: &'a str,
    b: &'a [u8],
    pub pos: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(src: &'a str) -> Self {
        Scanner {
            src,
            b: src.as_bytes(),
            pos: 0,
        }
    }

    fn fail<T>(&self, what: &str) -> Result<T, String> {
        if self.pos >= self.b.len() {
            Err(format!("unexpected end of JSON input, expected {what}"))
        } else {
            Err(format!(
                "invalid character {:?} at offset {}, expected {what}",
                self.src[self.pos..].chars().next().unwrap_or('?'),
                self.pos
            ))
        }
    }

    pub fn ws(&mut self) {
        while self.pos < self.b.len() && matches!(self.b[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.pos).copied()
    }

    pub fn kind(&mut self) -> Result<Kind, String> {
        Ok(match self.peek() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            Some(b'-' | b'0'..=b'9') => Kind::Number,
            _ => return self.fail("a value"),
        })
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Reads a string (at its opening quote), borrowing it when it has no
    /// escapes.
    pub fn string(&mut self) -> Result<Cow<'a, str>, String> {
        if !self.eat(b'"') {
            return self.fail("'\"'");
        }
        let start = self.pos;
        while self.pos < self.b.len() {
            match self.b[self.pos] {
                b'"' => {
                    let s = &self.src[start..self.pos];
                    self.pos += 1;
                    return Ok(Cow::Borrowed(s));
                }
                b'\\' => break,
                c if c < 0x20 => return self.fail("a string character"),
                _ => self.pos += 1,
            }
        }
        let mut out = String::from(&self.src[start..self.pos]);
        while self.pos < self.b.len() {
            let c = self.b[self.pos];
            match c {
                b'"' => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    self.pos += 1;
                    let Some(&e) = self.b.get(self.pos) else {
                        break;
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let ch = if (0xD800..0xDC00).contains(&hi)
                                && self.b.get(self.pos) == Some(&b'\\')
                                && self.b.get(self.pos + 1) == Some(&b'u')
                            {
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                } else {
                                    None
                                }
                            } else {
                                char::from_u32(hi)
                            };
                            out.push(ch.unwrap_or('\u{FFFD}'));
                        }
                        _ => {
                            self.pos -= 1;
                            return self.fail("an escape character");
                        }
                    }
                }
                c if c < 0x20 => return self.fail("a string character"),
                _ => {
                    // Copy a whole UTF-8 character.
                    let ch = self.src[self.pos..].chars().next().unwrap_or('\u{FFFD}');
                    out.push(ch);
                    self.pos += ch.len_utf8();
                }
            }
        }
        self.fail("'\"'")
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.src.get(self.pos..self.pos + 4);
        match digits.and_then(|d| u32::from_str_radix(d, 16).ok()) {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => self.fail("four hex digits"),
        }
    }

    /// Skips one value of any kind; returns its kind and text.
    pub fn skip_value(&mut self, depth: usize) -> Result<(Kind, &'a str), String> {
        let kind = self.kind()?;
        let start = self.pos;
        match kind {
            Kind::String => {
                self.string()?;
            }
            Kind::Number => self.number()?,
            Kind::Bool => {
                if !(self.word("true") || self.word("false")) {
                    return self.fail("true or false");
                }
            }
            Kind::Null => {
                if !self.word("null") {
                    return self.fail("null");
                }
            }
            Kind::Object => self.members(depth, |s, _| s.skip_value(depth + 1).map(|_| ()))?,
            Kind::Array => self.elements(depth, |s, _| s.skip_value(depth + 1).map(|_| ()))?,
        }
        Ok((kind, &self.src[start..self.pos]))
    }

    fn word(&mut self, w: &str) -> bool {
        if self.src[self.pos..].starts_with(w) {
            self.pos += w.len();
            true
        } else {
            false
        }
    }

    fn number(&mut self) -> Result<(), String> {
        let start = self.pos;
        if self.b.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        let digits = |s: &mut Self| {
            let from = s.pos;
            while s.pos < s.b.len() && s.b[s.pos].is_ascii_digit() {
                s.pos += 1;
            }
            s.pos > from
        };
        if !digits(self) {
            return self.fail("a digit");
        }
        if self.b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !digits(self) {
                return self.fail("a digit");
            }
        }
        if matches!(self.b.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.b.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                return self.fail("a digit");
            }
        }
        debug_assert!(self.pos > start);
        Ok(())
    }

    /// Walks an object's members; `f` must consume each value.
    pub fn members(
        &mut self,
        depth: usize,
        mut f: impl FnMut(&mut Self, Cow<'a, str>) -> Result<(), String>,
    ) -> Result<(), String> {
        if depth >= MAX_DEPTH {
            return Err(format!("JSON nested deeper than {MAX_DEPTH} levels"));
        }
        if !self.eat(b'{') {
            return self.fail("'{'");
        }
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return self.fail("a string key");
            }
            let key = self.string()?;
            if !self.eat(b':') {
                return self.fail("':'");
            }
            f(self, key)?;
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return Ok(());
            }
            return self.fail("',' or '}'");
        }
    }

    /// Walks an array's elements; `f` must consume each value.
    pub fn elements(
        &mut self,
        depth: usize,
        mut f: impl FnMut(&mut Self, usize) -> Result<(), String>,
    ) -> Result<(), String> {
        if depth >= MAX_DEPTH {
            return Err(format!("JSON nested deeper than {MAX_DEPTH} levels"));
        }
        if !self.eat(b'[') {
            return self.fail("'['");
        }
        if self.eat(b']') {
            return Ok(());
        }
        let mut i = 0;
        loop {
            f(self, i)?;
            i += 1;
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Ok(());
            }
            return self.fail("',' or ']'");
        }
    }

    /// Reads a scalar or skips a composite value, giving the text a label
    /// gets for it: unescaped strings, raw numbers and booleans, empty for
    /// null, the JSON text of objects and arrays.
    pub fn label_value(&mut self, depth: usize) -> Result<Cow<'a, str>, String> {
        match self.kind()? {
            Kind::String => self.string(),
            Kind::Null => {
                self.skip_value(depth)?;
                Ok(Cow::Borrowed(""))
            }
            _ => self.skip_value(depth).map(|(_, text)| Cow::Borrowed(text)),
        }
    }
}

/// Walks the object at the scanner and calls `emit` with the flattened
/// name and the value of every scalar member, as Loki's parameterless
/// `json` parser names them: nested objects joined with `_`, names
/// sanitised (see [`sanitize_label_name`]), members whose name sanitises
/// to nothing skipped, arrays skipped, strings unescaped, numbers and
/// booleans as written, `null` as the empty string. `skip` is asked before
/// a scalar is read: when it answers true the value is only stepped over.
/// `prefix` holds the name so far (empty at the top).
pub fn flatten<'a>(
    s: &mut Scanner<'a>,
    prefix: &mut String,
    depth: usize,
    skip: &dyn Fn(&str) -> bool,
    emit: &mut dyn FnMut(&str, Cow<'a, str>),
) -> Result<(), String> {
    let mut part = String::new();
    s.members(depth, |s, key| {
        sanitize_label_name(&key, &mut part);
        if part.is_empty() {
            return s.skip_value(depth + 1).map(|_| ());
        }
        let restore = prefix.len();
        if prefix.is_empty() {
            prefix.push_str(&part);
        } else {
            // Only a name's first part gets `_` before a leading digit.
            let digit_guard = key.trim().starts_with(|c: char| c.is_ascii_digit());
            prefix.push('_');
            prefix.push_str(if digit_guard { &part[1..] } else { &part });
        }
        let result = match s.kind()? {
            Kind::Object => flatten(s, prefix, depth + 1, skip, emit),
            Kind::Array => s.skip_value(depth + 1).map(|_| ()),
            _ if skip(prefix) => s.skip_value(depth + 1).map(|_| ()),
            _ => s.label_value(depth + 1).map(|v| emit(prefix, v)),
        };
        prefix.truncate(restore);
        result
    })
}

/// Every field of a line that is a JSON object, as [`flatten`] names
/// them, in line order; an error when the line is not one (the fields
/// found before the fault have been emitted).
pub fn fields<'a>(line: &'a str, emit: &mut dyn FnMut(&str, Cow<'a, str>)) -> Result<(), String> {
    let mut s = Scanner::new(line);
    match s.kind()? {
        Kind::Object => flatten(&mut s, &mut String::new(), 0, &|_| false, emit),
        _ => Err("expected a JSON object".to_string()),
    }
}
