//! Parsing Go `text/template` source into a tree.
//!
//! Supported: text and actions with trim markers (`{{-`, `-}}`),
//! comments, pipelines with `|`, parenthesised pipelines, fields
//! (`.a.b`), variables (`$x`, `$x.a`, `$`), declarations and assignments
//! (`$x := ...`, `$x = ...`), string, raw string, character, number,
//! boolean and `nil` literals, and the control structures `if`/`else
//! if`/`else`, `range` (with `$i, $e :=`), `with`/`else`, `break`,
//! `continue` and `end`. Not supported: `define`, `template`, `block`
//! (Loki templates have no use for them), reported as parse errors.
//!
//! Nesting is bounded ([`MAX_DEPTH`]), so no template can exhaust the stack.

use super::value::Value;

/// Deepest nesting of control structures and parentheses.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone)]
pub enum Node {
    Text(String),
    Action(Pipeline),
    If {
        pipe: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Break,
    Continue,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Variables declared (`:=`) or assigned (`=`) by this pipeline.
    pub vars: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
pub struct Command {
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub enum Arg {
    /// `.a.b`; empty for `.` itself.
    Field(Vec<String>),
    /// `$x.a.b`; the name includes the `$`.
    Var(String, Vec<String>),
    Func(String),
    Literal(Value),
    /// `(pipeline).a.b`
    Sub(Box<Pipeline>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Lit(Value),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    /// `.x` right after `)`.
    FieldChain(Vec<String>),
}

fn lex_action(src: &str) -> Result<Vec<Tok>, String> {
    let b = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    let fields = |i: &mut usize| -> Vec<String> {
        let mut out = Vec::new();
        while *i < b.len() && b[*i] == b'.' {
            let start = *i + 1;
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j == start {
                break;
            }
            out.push(src[start..j].to_string());
            *i = j;
        }
        out
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            b'(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                toks.push(Tok::RParen);
                i += 1;
                if b.get(i) == Some(&b'.') {
                    toks.push(Tok::FieldChain(fields(&mut i)));
                }
            }
            b',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            b':' if b.get(i + 1) == Some(&b'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            b'=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            b'.' if !b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let f = fields(&mut i);
                if f.is_empty() {
                    i += 1;
                }
                toks.push(Tok::Field(f));
            }
            b'$' => {
                let start = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let name = src[start..i].to_string();
                toks.push(Tok::Var(name, fields(&mut i)));
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= b.len() {
                    return Err("unterminated quoted string".into());
                }
                i += 1;
                toks.push(Tok::Lit(Value::Str(unquote(&src[start + 1..i - 1])?)));
            }
            b'`' => {
                let end = src[i + 1..]
                    .find('`')
                    .ok_or("unterminated raw quoted string")?;
                toks.push(Tok::Lit(Value::Str(src[i + 1..i + 1 + end].to_string())));
                i += end + 2;
            }
            b'\'' => {
                let end = src[i + 1..]
                    .find('\'')
                    .ok_or("unterminated character constant")?;
                let text = unquote(&src[i + 1..i + 1 + end])?;
                let mut chars = text.chars();
                let ch = match (chars.next(), chars.next()) {
                    (Some(c), None) => c,
                    _ => {
                        return Err(format!(
                            "malformed character constant: {}",
                            &src[i..i + end + 2]
                        ));
                    }
                };
                toks.push(Tok::Lit(Value::Int(ch as i64)));
                i += end + 2;
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' => {
                let start = i;
                i += 1;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'.'
                        || b[i] == b'_'
                        || ((b[i] == b'-' || b[i] == b'+') && matches!(b[i - 1], b'e' | b'E')))
                {
                    i += 1;
                }
                toks.push(Tok::Lit(parse_number(&src[start..i])?));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let word = &src[start..i];
                toks.push(match word {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "nil" => Tok::Lit(Value::Nil),
                    _ => Tok::Ident(word.to_string()),
                });
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected {ch:?} in command"));
            }
        }
    }
    Ok(toks)
}

fn parse_number(text: &str) -> Result<Value, String> {
    let bad = || format!("bad number syntax: {text:?}");
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, digits) = match clean.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let radix = [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ]
    .iter()
    .find(|(p, _)| digits.starts_with(p));
    if let Some((p, r)) = radix {
        let v = i64::from_str_radix(&digits[p.len()..], *r).map_err(|_| bad())?;
        return Ok(Value::Int(if neg { -v } else { v }));
    }
    if let Ok(v) = clean.parse::<i64>() {
        return Ok(Value::Int(v));
    }
    clean.parse::<f64>().map(Value::Float).map_err(|_| bad())
}

/// Go's escapes in an interpreted string literal.
fn unquote(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or("unterminated escape")?;
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '\\' | '"' | '\'' => out.push(e),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = chars.by_ref().take(n).collect();
                let v = u32::from_str_radix(&hex, 16)
                    .map_err(|_| format!("invalid escape \\{e}{hex}"))?;
                out.push(char::from_u32(v).ok_or_else(|| format!("invalid escape \\{e}{hex}"))?);
            }
            _ => return Err(format!("unknown escape sequence: \\{e}")),
        }
    }
    Ok(out)
}

/// An action's content with its kind.
enum Action {
    Pipe(Pipeline),
    If(Pipeline),
    ElseIf(Pipeline),
    ElseWith(Pipeline),
    Else,
    Range(Pipeline),
    With(Pipeline),
    End,
    Break,
    Continue,
}

struct PipeParser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl PipeParser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn pipeline(&mut self, allow_decl: bool) -> Result<Pipeline, String> {
        let mut vars = Vec::new();
        let mut assign = false;
        if allow_decl {
            // `$x :=`, `$x =`, `$i, $e :=`
            let save = self.pos;
            let mut names = Vec::new();
            while let Some(Tok::Var(name, f)) = self.peek() {
                if !f.is_empty() {
                    break;
                }
                names.push(name.clone());
                self.pos += 1;
                if self.peek() == Some(&Tok::Comma) && names.len() == 1 {
                    self.pos += 1;
                    continue;
                }
                break;
            }
            match self.peek() {
                Some(Tok::Declare) if !names.is_empty() => {
                    self.pos += 1;
                    vars = names;
                }
                Some(Tok::Assign) if names.len() == 1 => {
                    self.pos += 1;
                    vars = names;
                    assign = true;
                }
                _ => self.pos = save,
            }
        }
        let mut cmds = Vec::new();
        loop {
            cmds.push(self.command()?);
            match self.peek() {
                Some(Tok::Pipe) => self.pos += 1,
                _ => break,
            }
        }
        Ok(Pipeline { vars, assign, cmds })
    }

    fn command(&mut self) -> Result<Command, String> {
        let mut args = Vec::new();
        while let Some(tok) = self.peek().cloned() {
            let arg = match tok {
                Tok::Pipe | Tok::RParen => break,
                Tok::Field(f) => Arg::Field(f),
                Tok::Var(n, f) => Arg::Var(n, f),
                Tok::Ident(n) => Arg::Func(n),
                Tok::Lit(v) => Arg::Literal(v),
                Tok::LParen => {
                    self.pos += 1;
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err("parentheses nested too deeply".into());
                    }
                    let inner = self.pipeline(false)?;
                    self.depth -= 1;
                    if self.peek() != Some(&Tok::RParen) {
                        return Err("unclosed left paren".into());
                    }
                    self.pos += 1;
                    let chain = match self.peek() {
                        Some(Tok::FieldChain(f)) => {
                            let f = f.clone();
                            self.pos += 1;
                            f
                        }
                        _ => Vec::new(),
                    };
                    args.push(Arg::Sub(Box::new(inner), chain));
                    continue;
                }
                Tok::Declare | Tok::Assign | Tok::Comma | Tok::FieldChain(_) => {
                    return Err("unexpected token in command".into());
                }
            };
            self.pos += 1;
            args.push(arg);
        }
        if args.is_empty() {
            return Err("missing value for command".into());
        }
        Ok(Command { args })
    }
}

fn parse_action(src: &str) -> Result<Action, String> {
    let toks = lex_action(src)?;
    let keyword = match toks.first() {
        Some(Tok::Ident(w)) => w.as_str(),
        None => return Err("missing value for command".into()),
        _ => "",
    };
    let rest = |skip: usize, decl: bool| -> Result<Pipeline, String> {
        let mut p = PipeParser {
            toks: toks[skip..].to_vec(),
            pos: 0,
            depth: 0,
        };
        let pipe = p.pipeline(decl)?;
        if p.pos != p.toks.len() {
            return Err("unexpected token after pipeline".into());
        }
        Ok(pipe)
    };
    let bare = |what: Action| -> Result<Action, String> {
        if toks.len() != 1 {
            return Err("unexpected token after keyword".into());
        }
        Ok(what)
    };
    Ok(match keyword {
        "if" => Action::If(rest(1, true)?),
        "range" => Action::Range(rest(1, true)?),
        "with" => Action::With(rest(1, true)?),
        "else" => match toks.get(1) {
            None => Action::Else,
            Some(Tok::Ident(w)) if w == "if" => Action::ElseIf(rest(2, true)?),
            Some(Tok::Ident(w)) if w == "with" => Action::ElseWith(rest(2, true)?),
            _ => return Err("unexpected token after else".into()),
        },
        "end" => bare(Action::End)?,
        "break" => bare(Action::Break)?,
        "continue" => bare(Action::Continue)?,
        "define" | "template" | "block" => {
            return Err(format!("{{{{{keyword}}}}} is not supported"));
        }
        _ => Action::Pipe(rest(0, true)?),
    })
}

/// Splits the source into text and action pieces, applying trim markers
/// and dropping comments.
fn split(src: &str) -> Result<Vec<(bool, String)>, String> {
    let mut pieces: Vec<(bool, String)> = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let mut inner_start = open + 2;
        let trim_before = rest[inner_start..].starts_with("- ")
            || rest[inner_start..].starts_with("-\t")
            || rest[inner_start..].starts_with("-\n");
        if trim_before {
            text = text.trim_end();
            inner_start += 2;
        }
        if !text.is_empty() {
            pieces.push((false, text.to_string()));
        }
        let after = &rest[inner_start..];
        let close = find_close(after).ok_or("unclosed action")?;
        let mut inner = &after[..close];
        trim_next = false;
        if inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-") {
            inner = &inner[..inner.len() - 2];
            trim_next = true;
        }
        rest = &after[close + 2..];
        let trimmed = inner.trim();
        if trimmed.starts_with("/*") {
            if !trimmed.ends_with("*/") {
                return Err("unclosed comment".into());
            }
            continue;
        }
        pieces.push((true, inner.to_string()));
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        pieces.push((false, text.to_string()));
    }
    Ok(pieces)
}

fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            b'"' | b'\'' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// What ended a list of nodes.
enum Stop {
    Eof,
    End,
    Else,
    ElseIf(Pipeline),
    ElseWith(Pipeline),
}

struct TreeParser {
    pieces: std::vec::IntoIter<(bool, String)>,
}

impl TreeParser {
    fn list(&mut self, depth: usize, in_range: bool) -> Result<(Vec<Node>, Stop), String> {
        if depth > MAX_DEPTH {
            return Err("control structures nested too deeply".into());
        }
        let mut nodes = Vec::new();
        while let Some((is_action, text)) = self.pieces.next() {
            if !is_action {
                nodes.push(Node::Text(text));
                continue;
            }
            let action =
                parse_action(&text).map_err(|e| format!("in {{{{{}}}}}: {e}", text.trim()))?;
            match action {
                Action::Pipe(p) => nodes.push(Node::Action(p)),
                Action::End => return Ok((nodes, Stop::End)),
                Action::Else => return Ok((nodes, Stop::Else)),
                Action::ElseIf(p) => return Ok((nodes, Stop::ElseIf(p))),
                Action::ElseWith(p) => return Ok((nodes, Stop::ElseWith(p))),
                Action::Break | Action::Continue if !in_range => {
                    return Err(format!("{{{{{}}}}} outside {{{{range}}}}", text.trim()));
                }
                Action::Break => nodes.push(Node::Break),
                Action::Continue => nodes.push(Node::Continue),
                Action::If(pipe) => nodes.push(self.branch(pipe, depth, in_range, false)?),
                Action::With(pipe) => nodes.push(self.branch(pipe, depth, in_range, true)?),
                Action::Range(pipe) => {
                    let (body, stop) = self.list(depth + 1, true)?;
                    let otherwise = match stop {
                        Stop::End => Vec::new(),
                        Stop::Else => self.expect_end(depth, in_range)?,
                        _ => return Err("unexpected {{else if}} in {{range}}".into()),
                    };
                    nodes.push(Node::Range {
                        pipe,
                        body,
                        otherwise,
                    });
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn expect_end(&mut self, depth: usize, in_range: bool) -> Result<Vec<Node>, String> {
        match self.list(depth + 1, in_range)? {
            (nodes, Stop::End) => Ok(nodes),
            (_, Stop::Eof) => Err("unexpected EOF: missing {{end}}".into()),
            _ => Err("expected {{end}} after {{else}}".into()),
        }
    }

    fn branch(
        &mut self,
        pipe: Pipeline,
        depth: usize,
        in_range: bool,
        with: bool,
    ) -> Result<Node, String> {
        let (then, stop) = self.list(depth + 1, in_range)?;
        let otherwise = match stop {
            Stop::End => Vec::new(),
            Stop::Else => self.expect_end(depth, in_range)?,
            Stop::ElseIf(p) if !with => vec![self.branch(p, depth + 1, in_range, false)?],
            Stop::ElseWith(p) if with => vec![self.branch(p, depth + 1, in_range, true)?],
            Stop::ElseIf(_) | Stop::ElseWith(_) => {
                return Err("mismatched {{else if}}/{{else with}}".into());
            }
            Stop::Eof => return Err("unexpected EOF: missing {{end}}".into()),
        };
        Ok(if with {
            Node::With {
                pipe,
                body: then,
                otherwise,
            }
        } else {
            Node::If {
                pipe,
                then,
                otherwise,
            }
        })
    }
}

pub fn parse(src: &str) -> Result<Vec<Node>, String> {
    let mut p = TreeParser {
        pieces: split(src)?.into_iter(),
    };
    match p.list(0, false)? {
        (nodes, Stop::Eof) => Ok(nodes),
        (_, Stop::End) => Err("unexpected {{end}}".into()),
        _ => Err("unexpected {{else}}".into()),
    }
}
