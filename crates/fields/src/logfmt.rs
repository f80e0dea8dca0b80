//! Scanning logfmt pairs the way Loki's `logfmt` parser reads them.
//!
//! Keys are runs of characters above space other than `=` and `"`; values
//! are either quoted (with Go escapes: `\"`, `\\`, `\n`, `\t`, `\r`,
//! `\uXXXX`) or run to the next space. A malformed pair is an `Err` with
//! its position, after which the scan resumes at the next space.

use std::borrow::Cow;

/// One pair as found in the line.
#[derive(Debug, PartialEq)]
pub struct Pair<'a> {
    pub key: &'a str,
    pub value: Cow<'a, str>,
}

/// Scans the pairs of a line; an `Err` is a syntax error with its
/// position, after which the scan resumes at the next space.
pub struct Pairs<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> Pairs<'a> {
    pub fn new(line: &'a str) -> Self {
        Pairs { line, pos: 0 }
    }

    fn syntax_error(&mut self, at: usize, msg: &str) -> Result<Pair<'a>, String> {
        let b = self.line.as_bytes();
        // Resume after the malformed token.
        let mut i = at;
        while i < b.len() && b[i] > b' ' {
            i += 1;
        }
        self.pos = i;
        Err(format!("logfmt syntax error at pos {} : {msg}", at + 1))
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Result<Pair<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = self.line;
        let b = line.as_bytes();
        let mut i = self.pos;
        while i < b.len() && b[i] <= b' ' {
            i += 1;
        }
        if i == b.len() {
            self.pos = i;
            return None;
        }
        let key_start = i;
        while i < b.len() && b[i] > b' ' && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        let key = &line[key_start..i];
        if key.is_empty() {
            let msg = format!("unexpected '{}'", b[i] as char);
            return Some(self.syntax_error(i, &msg));
        }
        if i == b.len() || b[i] <= b' ' {
            self.pos = i;
            return Some(Ok(Pair {
                key,
                value: Cow::Borrowed(""),
            }));
        }
        if b[i] == b'"' {
            return Some(self.syntax_error(i, "unexpected '\"'"));
        }
        i += 1; // '='
        if i == b.len() || b[i] <= b' ' {
            self.pos = i;
            return Some(Ok(Pair {
                key,
                value: Cow::Borrowed(""),
            }));
        }
        if b[i] == b'"' {
            let start = i;
            i += 1;
            let mut escaped = false;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    escaped = true;
                    i += 1;
                }
                i += 1;
            }
            if i >= b.len() {
                return Some(self.syntax_error(start, "unterminated quoted value"));
            }
            let raw = &line[start + 1..i];
            i += 1;
            self.pos = i;
            if !escaped {
                return Some(Ok(Pair {
                    key,
                    value: Cow::Borrowed(raw),
                }));
            }
            return Some(match unquote(raw) {
                Some(v) => Ok(Pair {
                    key,
                    value: Cow::Owned(v),
                }),
                None => self.syntax_error(start, "invalid quoted value"),
            });
        }
        let value_start = i;
        while i < b.len() && b[i] > b' ' {
            if b[i] == b'=' || b[i] == b'"' {
                let msg = format!("unexpected '{}'", b[i] as char);
                return Some(self.syntax_error(i, &msg));
            }
            i += 1;
        }
        self.pos = i;
        Some(Ok(Pair {
            key,
            value: Cow::Borrowed(&line[value_start..i]),
        }))
    }
}

/// Go's escapes inside a quoted value.
fn unquote(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                let v = u32::from_str_radix(&hex, 16).ok()?;
                out.push(char::from_u32(v).unwrap_or('\u{FFFD}'));
            }
            _ => return None,
        }
    }
    Some(out)
}
