//! The functions a Loki template can call: Go's builtins (`and`, `or`,
//! `not`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `len`, `index`, `print`,
//! `printf`, `println`) and Loki's list (string, math, time, encoding).
//!
//! Arguments are converted the way Loki's functions (many from the sprig
//! library) convert them: numeric functions read strings as numbers
//! (unparsable text counts as 0), string functions print any value.
//! Where a Go function would panic (integer division by zero) the template
//! fails instead, which becomes `__error__="TemplateFormatErr"`.

use super::Data;
use super::time;
use super::value::{Value, format_float_g};
use crate::parsers::json::{Kind, Scanner};
use crate::units;
use regex::Regex;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Mutex;

/// Every function name a template may call.
pub const NAMES: &[&str] = &[
    "and",
    "or",
    "not",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "__line__",
    "__timestamp__",
    "ToLower",
    "ToUpper",
    "lower",
    "upper",
    "title",
    "Replace",
    "replace",
    "Trim",
    "TrimLeft",
    "TrimRight",
    "TrimPrefix",
    "TrimSuffix",
    "TrimSpace",
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "default",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "indent",
    "nindent",
    "repeat",
    "substr",
    "trunc",
    "fromJson",
    "date",
    "toDate",
    "now",
    "unixEpoch",
    "unixEpochMillis",
    "unixEpochNanos",
    "unixToTime",
    "duration",
    "duration_seconds",
    "bytes",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "addf",
    "subf",
    "mulf",
    "divf",
    "ceil",
    "floor",
    "round",
    "max",
    "min",
    "maxf",
    "minf",
    "alignLeft",
    "alignRight",
    "b64enc",
    "b64dec",
    "count",
    "urlencode",
    "urldecode",
];

/// Compiled regexes of `regexReplaceAll` and friends, so a pattern is
/// compiled once per query rather than once per line. Bounded: a template
/// computing patterns from line content cannot grow it without limit.
#[derive(Debug, Default)]
pub struct RegexCache {
    map: Mutex<HashMap<String, Regex>>,
}

const REGEX_CACHE_SIZE: usize = 64;

impl RegexCache {
    fn get(&self, pattern: &str) -> Result<Regex, String> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(re) = map.get(pattern) {
            return Ok(re.clone());
        }
        let translated = skald_logql::translate_regex(pattern).map_err(|e| e.to_string())?;
        let re = regex::RegexBuilder::new(&translated)
            .size_limit(skald_logql::REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| format!("error parsing regexp: {e}"))?;
        if map.len() >= REGEX_CACHE_SIZE {
            map.clear();
        }
        map.insert(pattern.to_string(), re.clone());
        Ok(re)
    }
}

fn arity(name: &str, args: &[Value], min: usize, max: usize) -> Result<(), String> {
    if args.len() < min || args.len() > max {
        let want = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(format!(
            "wrong number of args for {name}: want {want} got {}",
            args.len()
        ));
    }
    Ok(())
}

/// sprig's `toInt64`: numbers truncate, strings parse (else 0).
pub fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().unwrap_or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0)
                    .map_or(0, |f| f as i64)
            })
        }
        Value::Time(ns) => *ns,
        _ => 0,
    }
}

/// sprig's `toFloat64`.
pub fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn s(v: &Value) -> String {
    v.to_string_value()
}

fn to_time(v: &Value) -> Result<i64, String> {
    match v {
        Value::Time(ns) => Ok(*ns),
        Value::Int(secs) => Ok(secs.saturating_mul(1_000_000_000)),
        Value::Float(secs) => Ok((secs * 1e9) as i64),
        other => Err(format!("expected a time, got {}", other.type_name())),
    }
}

/// sprig's `empty`.
fn is_empty(v: &Value) -> bool {
    !v.truthy()
}

/// Compares two values as Go's `eq`/`lt` do: same basic kind only.
fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => Ok(x.partial_cmp(y).unwrap_or(Ordering::Equal)),
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        (Value::Nil, Value::Nil) => Ok(Ordering::Equal),
        _ => Err("incompatible types for comparison".into()),
    }
}

fn eq(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Time(x), Value::Time(y)) => Ok(x == y),
        _ => compare(a, b).map(|o| o.is_eq()),
    }
}

/// Byte offset of the `n`th character (clamped), so slicing never splits
/// a character.
fn char_boundary(s: &str, byte: usize) -> usize {
    let mut b = byte.min(s.len());
    while !s.is_char_boundary(b) {
        b -= 1;
    }
    b
}

pub fn call(
    name: &str,
    args: Vec<Value>,
    data: &dyn Data,
    cache: &RegexCache,
) -> Result<Value, String> {
    use Value::*;
    let a = &args;
    Ok(match name {
        "and" => {
            arity(name, a, 1, usize::MAX)?;
            a.iter()
                .find(|v| !v.truthy())
                .unwrap_or(&a[a.len() - 1])
                .clone()
        }
        "or" => {
            arity(name, a, 1, usize::MAX)?;
            a.iter()
                .find(|v| v.truthy())
                .unwrap_or(&a[a.len() - 1])
                .clone()
        }
        "not" => {
            arity(name, a, 1, 1)?;
            Bool(!a[0].truthy())
        }
        "eq" => {
            arity(name, a, 2, usize::MAX)?;
            let mut any = false;
            for other in &a[1..] {
                if eq(&a[0], other)? {
                    any = true;
                    break;
                }
            }
            Bool(any)
        }
        "ne" => {
            arity(name, a, 2, 2)?;
            Bool(!eq(&a[0], &a[1])?)
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, a, 2, 2)?;
            let o = compare(&a[0], &a[1])?;
            Bool(match name {
                "lt" => o.is_lt(),
                "le" => o.is_le(),
                "gt" => o.is_gt(),
                _ => o.is_ge(),
            })
        }
        "len" => {
            arity(name, a, 1, 1)?;
            Int(match &a[0] {
                Str(s) => s.len() as i64,
                List(l) => l.len() as i64,
                Map(m) => m.len() as i64,
                other => return Err(format!("len of type {}", other.type_name())),
            })
        }
        "index" => {
            arity(name, a, 1, usize::MAX)?;
            let mut cur = a[0].clone();
            for key in &a[1..] {
                cur = match (&cur, key) {
                    (List(l), k) => {
                        let i = to_i64(k);
                        l.get(usize::try_from(i).map_err(|_| format!("index out of range: {i}"))?)
                            .cloned()
                            .ok_or_else(|| format!("index out of range: {i}"))?
                    }
                    (Map(m), k) => m.get(&s(k)).cloned().unwrap_or(Nil),
                    (other, _) => {
                        return Err(format!("can't index item of type {}", other.type_name()));
                    }
                };
            }
            cur
        }
        "print" => {
            let mut out = String::new();
            for (i, v) in a.iter().enumerate() {
                let is_str = matches!(v, Str(_));
                if i > 0 && !is_str && !matches!(a[i - 1], Str(_)) {
                    out.push(' ');
                }
                v.write_to(&mut out);
            }
            Str(out)
        }
        "println" => {
            let parts: Vec<String> = a.iter().map(s).collect();
            Str(parts.join(" ") + "\n")
        }
        "printf" => {
            arity(name, a, 1, usize::MAX)?;
            Str(sprintf(&s(&a[0]), &a[1..]))
        }
        "__line__" => Str(data.line().to_string()),
        "__timestamp__" => Time(data.timestamp()),
        "ToLower" | "lower" => {
            arity(name, a, 1, 1)?;
            Str(s(&a[0]).to_lowercase())
        }
        "ToUpper" | "upper" => {
            arity(name, a, 1, 1)?;
            Str(s(&a[0]).to_uppercase())
        }
        "title" => {
            arity(name, a, 1, 1)?;
            let mut out = String::new();
            let mut start = true;
            for c in s(&a[0]).chars() {
                if start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = !c.is_alphanumeric();
            }
            Str(out)
        }
        "Replace" => {
            arity(name, a, 4, 4)?;
            let (src, old, new, n) = (s(&a[0]), s(&a[1]), s(&a[2]), to_i64(&a[3]));
            Str(if n < 0 {
                src.replace(&old, &new)
            } else {
                src.replacen(&old, &new, n as usize)
            })
        }
        "replace" => {
            arity(name, a, 3, 3)?;
            Str(s(&a[2]).replace(&s(&a[0]), &s(&a[1])))
        }
        "Trim" | "TrimLeft" | "TrimRight" => {
            arity(name, a, 2, 2)?;
            let (src, cut) = (s(&a[0]), s(&a[1]));
            let set = |c: char| cut.contains(c);
            Str(match name {
                "Trim" => src.trim_matches(set),
                "TrimLeft" => src.trim_start_matches(set),
                _ => src.trim_end_matches(set),
            }
            .to_string())
        }
        "trimAll" => {
            arity(name, a, 2, 2)?;
            let cut = s(&a[0]);
            Str(s(&a[1]).trim_matches(|c: char| cut.contains(c)).to_string())
        }
        "TrimPrefix" | "TrimSuffix" | "trimPrefix" | "trimSuffix" => {
            arity(name, a, 2, 2)?;
            let (src, affix) = if name.starts_with('T') {
                (s(&a[0]), s(&a[1]))
            } else {
                (s(&a[1]), s(&a[0]))
            };
            Str(if name.ends_with("Prefix") {
                src.strip_prefix(affix.as_str()).unwrap_or(&src).to_string()
            } else {
                src.strip_suffix(affix.as_str()).unwrap_or(&src).to_string()
            })
        }
        "TrimSpace" | "trim" => {
            arity(name, a, 1, 1)?;
            Str(s(&a[0]).trim().to_string())
        }
        "regexReplaceAll" | "regexReplaceAllLiteral" => {
            arity(name, a, 3, 3)?;
            let re = cache.get(&s(&a[0]))?;
            let (src, repl) = (s(&a[1]), s(&a[2]));
            Str(if name == "regexReplaceAll" {
                re.replace_all(&src, repl.as_str()).into_owned()
            } else {
                re.replace_all(&src, regex::NoExpand(&repl)).into_owned()
            })
        }
        "count" => {
            arity(name, a, 2, 2)?;
            let re = cache.get(&s(&a[0]))?;
            Int(re.find_iter(&s(&a[1])).count() as i64)
        }
        "default" => {
            arity(name, a, 1, 2)?;
            match a.get(1) {
                Some(given) if !is_empty(given) => given.clone(),
                _ => a[0].clone(),
            }
        }
        "contains" | "hasPrefix" | "hasSuffix" => {
            arity(name, a, 2, 2)?;
            let (needle, hay) = (s(&a[0]), s(&a[1]));
            Bool(match name {
                "contains" => hay.contains(&needle),
                "hasPrefix" => hay.starts_with(&needle),
                _ => hay.ends_with(&needle),
            })
        }
        "indent" | "nindent" => {
            arity(name, a, 2, 2)?;
            let pad = " ".repeat(to_i64(&a[0]).clamp(0, 1024) as usize);
            let text = s(&a[1]);
            let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
            if text.len() + lines * pad.len() > super::MAX_OUTPUT {
                return Err(format!("{name}: result too large"));
            }
            let body = format!("{pad}{}", text.replace('\n', &format!("\n{pad}")));
            Str(if name == "nindent" {
                format!("\n{body}")
            } else {
                body
            })
        }
        "repeat" => {
            arity(name, a, 2, 2)?;
            let text = s(&a[1]);
            let n = to_i64(&a[0]).max(0) as usize;
            if text.len().saturating_mul(n) > 1 << 20 {
                return Err("repeat: result too large".into());
            }
            Str(text.repeat(n))
        }
        "substr" => {
            arity(name, a, 3, 3)?;
            let (start, end, text) = (to_i64(&a[0]), to_i64(&a[1]), s(&a[2]));
            let len = text.len() as i64;
            let (from, to) = if start < 0 {
                (0, end.clamp(0, len))
            } else if end < 0 || end > len {
                (start.min(len), len)
            } else {
                (start.min(end), end)
            };
            let from = char_boundary(&text, from as usize);
            let to = char_boundary(&text, to as usize);
            Str(text[from..to].to_string())
        }
        "trunc" => {
            arity(name, a, 2, 2)?;
            let (n, text) = (to_i64(&a[0]), s(&a[1]));
            let len = text.len() as i64;
            Str(if n < 0 && len + n > 0 {
                let from = char_boundary(&text, (len + n) as usize);
                text[from..].to_string()
            } else if n >= 0 && len > n {
                text[..char_boundary(&text, n as usize)].to_string()
            } else {
                text
            })
        }
        "alignLeft" | "alignRight" => {
            arity(name, a, 2, 2)?;
            let n = to_i64(&a[0]).clamp(0, 1 << 16) as usize;
            let text = s(&a[1]);
            let len = text.chars().count();
            Str(if len < n {
                let pad = " ".repeat(n - len);
                if name == "alignLeft" {
                    text + &pad
                } else {
                    pad + &text
                }
            } else if name == "alignLeft" {
                text.chars().take(n).collect()
            } else {
                text.chars().skip(len - n).collect()
            })
        }
        "fromJson" => {
            arity(name, a, 1, 1)?;
            let text = s(&a[0]);
            let mut scanner = Scanner::new(&text);
            match json_value(&mut scanner, 0) {
                Ok(v) if scanner.peek().is_none() => v,
                _ => Nil,
            }
        }
        "date" => {
            arity(name, a, 2, 2)?;
            Str(time::format(to_time(&a[1])?, &s(&a[0])))
        }
        "toDate" => {
            arity(name, a, 2, 2)?;
            Time(time::parse(&s(&a[0]), &s(&a[1]))?)
        }
        "now" => {
            arity(name, a, 0, 0)?;
            Time(skald_model::Timestamp::now().nanos())
        }
        "unixEpoch" | "unixEpochMillis" | "unixEpochNanos" => {
            arity(name, a, 1, 1)?;
            let ns = to_time(&a[0])?;
            Int(match name {
                "unixEpoch" => ns.div_euclid(1_000_000_000),
                "unixEpochMillis" => ns.div_euclid(1_000_000),
                _ => ns,
            })
        }
        "unixToTime" => {
            arity(name, a, 1, 1)?;
            let text = s(&a[0]);
            let v: i64 = text
                .parse()
                .map_err(|_| format!("unable to parse epoch {text:?}"))?;
            let digits = text.trim_start_matches('-').len();
            let ns = match digits {
                5 => v.checked_mul(86_400 * 1_000_000_000),
                10 => v.checked_mul(1_000_000_000),
                13 => v.checked_mul(1_000_000),
                16 => v.checked_mul(1_000),
                19 => Some(v),
                _ => None,
            };
            Time(ns.ok_or_else(|| {
                format!("unable to parse epoch {text:?}: expected days (5 digits), seconds (10), milliseconds (13), microseconds (16) or nanoseconds (19)")
            })?)
        }
        "duration" | "duration_seconds" => {
            arity(name, a, 1, 1)?;
            Float(units::parse_duration(&s(&a[0]))? as f64 / 1e9)
        }
        "bytes" => {
            arity(name, a, 1, 1)?;
            Int(units::parse_bytes(&s(&a[0]))? as i64)
        }
        "add" => Int(a.iter().fold(0i64, |acc, v| acc.wrapping_add(to_i64(v)))),
        "mul" => Int(a.iter().fold(1i64, |acc, v| acc.wrapping_mul(to_i64(v)))),
        "sub" | "div" | "mod" => {
            arity(name, a, 2, 2)?;
            let (x, y) = (to_i64(&a[0]), to_i64(&a[1]));
            Int(match name {
                "sub" => x.wrapping_sub(y),
                _ if y == 0 => return Err("runtime error: integer divide by zero".into()),
                "div" => x.wrapping_div(y),
                _ => x.wrapping_rem(y),
            })
        }
        "addf" => Float(a.iter().map(to_f64).sum()),
        "mulf" => Float(a.iter().map(to_f64).product()),
        "subf" | "divf" => {
            arity(name, a, 1, usize::MAX)?;
            let mut acc = to_f64(&a[0]);
            for v in &a[1..] {
                if name == "subf" {
                    acc -= to_f64(v);
                } else {
                    acc /= to_f64(v);
                }
            }
            Float(acc)
        }
        "ceil" | "floor" => {
            arity(name, a, 1, 1)?;
            let x = to_f64(&a[0]);
            Float(if name == "ceil" { x.ceil() } else { x.floor() })
        }
        "round" => {
            arity(name, a, 2, 3)?;
            let (x, places) = (to_f64(&a[0]), to_i64(&a[1]).clamp(-20, 20) as i32);
            let half = a.get(2).map_or(0.5, to_f64);
            let pow = 10f64.powi(places);
            let digit = pow * x;
            let fract = digit.fract().abs();
            let rounded = if fract >= half {
                digit.ceil()
            } else {
                digit.floor()
            };
            Float(rounded / pow)
        }
        "max" | "min" => {
            arity(name, a, 1, usize::MAX)?;
            let it = a.iter().map(to_i64);
            Int(if name == "max" { it.max() } else { it.min() }.unwrap_or(0))
        }
        "maxf" | "minf" => {
            arity(name, a, 1, usize::MAX)?;
            let it = a.iter().map(to_f64);
            Float(if name == "maxf" {
                it.fold(f64::NEG_INFINITY, f64::max)
            } else {
                it.fold(f64::INFINITY, f64::min)
            })
        }
        "b64enc" => {
            arity(name, a, 1, 1)?;
            Str(b64_encode(s(&a[0]).as_bytes()))
        }
        "b64dec" => {
            arity(name, a, 1, 1)?;
            // sprig returns the error text as the value.
            Str(match b64_decode(&s(&a[0])) {
                Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                None => "illegal base64 data at input byte 0".to_string(),
            })
        }
        "urlencode" => {
            arity(name, a, 1, 1)?;
            Str(url_encode(&s(&a[0])))
        }
        "urldecode" => {
            arity(name, a, 1, 1)?;
            Str(url_decode(&s(&a[0]))?)
        }
        other => return Err(format!("function {other:?} not defined")),
    })
}

/// A JSON value as Go's `encoding/json` gives it to a template: numbers
/// are floats.
fn json_value(sc: &mut Scanner<'_>, depth: usize) -> Result<Value, String> {
    Ok(match sc.kind()? {
        Kind::Object => {
            let mut map = BTreeMap::new();
            sc.members(depth, |sc, key| {
                let v = json_value(sc, depth + 1)?;
                map.insert(key.into_owned(), v);
                Ok(())
            })?;
            Value::Map(map)
        }
        Kind::Array => {
            let mut list = Vec::new();
            sc.elements(depth, |sc, _| {
                list.push(json_value(sc, depth + 1)?);
                Ok(())
            })?;
            Value::List(list)
        }
        Kind::String => Value::Str(sc.string()?.into_owned()),
        Kind::Number => {
            let (_, text) = sc.skip_value(depth)?;
            Value::Float(text.parse().map_err(|_| "bad number".to_string())?)
        }
        Kind::Bool => {
            let (_, text) = sc.skip_value(depth)?;
            Value::Bool(text == "true")
        }
        Kind::Null => {
            sc.skip_value(depth)?;
            Value::Nil
        }
    })
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                out.push(B64[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b64_decode(input: &str) -> Option<Vec<u8>> {
    let body = input.trim_end_matches('=');
    if !input.len().is_multiple_of(4) || input.len() - body.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in body.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Go's `url.QueryEscape`.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.QueryUnescape`.
fn url_decode(text: &str) -> Result<String, String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
                let Some(hex) = hex else {
                    let bad: String = text[i..].chars().take(3).collect();
                    return Err(format!("invalid URL escape {bad:?}"));
                };
                out.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

const MAX_WIDTH: usize = 4096;

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %d %f %e %g %q
/// %x %X %t %c %%`, with flags `-+ 0`, width and precision.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args_iter = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        // Width and precision are capped so a format cannot ask for
        // gigabytes of padding.
        let mut width: Option<usize> = None;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = Some((width.unwrap_or(0) * 10 + d as usize).min(MAX_WIDTH));
            chars.next();
        }
        let mut precision = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = 0;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                p = (p * 10 + d as usize).min(MAX_WIDTH);
                chars.next();
            }
            precision = Some(p);
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args_iter.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let bad = || format!("%!{verb}({}={})", arg.type_name(), arg.to_string_value());
        let numeric = matches!(arg, Value::Int(_) | Value::Float(_));
        let mut text = match (verb, arg) {
            ('v' | 's', Value::Float(f)) if verb == 'v' || precision.is_none() => {
                let _ = f;
                arg.to_string_value()
            }
            ('v', _) => arg.to_string_value(),
            ('s', Value::Str(s)) => match precision {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('s', Value::Int(_) | Value::Bool(_)) => bad(),
            ('s', _) => arg.to_string_value(),
            ('d', Value::Int(i)) => i.to_string(),
            ('f' | 'F', Value::Float(f)) => format!("{:.*}", precision.unwrap_or(6), f),
            ('e', Value::Float(f)) => go_exp(*f, precision.unwrap_or(6)),
            ('g', Value::Float(f)) => format_float_g(*f, precision),
            ('t', Value::Bool(b)) => b.to_string(),
            ('q', Value::Str(s)) => format!("{s:?}"),
            ('x', Value::Int(i)) => format!("{i:x}"),
            ('X', Value::Int(i)) => format!("{i:X}"),
            ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('X', Value::Str(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
            ('c', Value::Int(i)) => char::from_u32(*i as u32).map_or_else(bad, |c| c.to_string()),
            _ => bad(),
        };
        if numeric && !text.starts_with('-') {
            if plus {
                text.insert(0, '+');
            } else if space {
                text.insert(0, ' ');
            }
        }
        let len = text.chars().count();
        match width {
            Some(w) if w > len => {
                let pad = w - len;
                if minus {
                    out.push_str(&text);
                    out.extend(std::iter::repeat_n(' ', pad));
                } else if zero && numeric {
                    let (sign, digits) = match text.strip_prefix(['-', '+']) {
                        Some(d) => (&text[..1], d),
                        None => ("", text.as_str()),
                    };
                    out.push_str(sign);
                    out.extend(std::iter::repeat_n('0', pad));
                    out.push_str(digits);
                } else {
                    out.extend(std::iter::repeat_n(' ', pad));
                    out.push_str(&text);
                }
            }
            _ => out.push_str(&text),
        }
    }
    let extra: Vec<&Value> = args_iter.collect();
    if !extra.is_empty() {
        out.push_str("%!(EXTRA ");
        let parts: Vec<String> = extra
            .iter()
            .map(|v| format!("{}={}", v.type_name(), v.to_string_value()))
            .collect();
        out.push_str(&parts.join(", "));
        out.push(')');
    }
    out
}

/// Go's `%e`: `1.234560e+03`.
fn go_exp(f: f64, precision: usize) -> String {
    let s = format!("{f:.precision$e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let e: i32 = e.parse().unwrap_or(0);
            format!(
                "{m}e{}{:02}",
                if e < 0 { '-' } else { '+' },
                e.unsigned_abs()
            )
        }
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_urls() {
        for text in ["", "f", "fo", "foo", "foob", "hello world"] {
            assert_eq!(
                b64_decode(&b64_encode(text.as_bytes())).unwrap(),
                text.as_bytes()
            );
        }
        assert_eq!(b64_encode(b"hello"), "aGVsbG8=");
        assert_eq!(url_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(url_decode("a+b%26c%3Dd%2F%C3%A9").unwrap(), "a b&c=d/é");
        assert!(url_decode("%zz").is_err());
    }

    #[test]
    fn printf_verbs() {
        let v = |s: &str| Value::Str(s.into());
        assert_eq!(sprintf("%s=%d", &[v("a"), Value::Int(5)]), "a=5");
        assert_eq!(
            sprintf(
                "%.2f|%5d|%-4s|%05d",
                &[
                    Value::Float(1.23456),
                    Value::Int(42),
                    v("ab"),
                    Value::Int(-7)
                ]
            ),
            "1.23|   42|ab  |-0007"
        );
        assert_eq!(
            sprintf(
                "%v %q %x %t",
                &[
                    Value::Float(1.5),
                    v("x\"y"),
                    Value::Int(255),
                    Value::Bool(true)
                ]
            ),
            "1.5 \"x\\\"y\" ff true"
        );
        assert_eq!(sprintf("%d", &[v("5")]), "%!d(string=5)");
        assert_eq!(sprintf("%s %s", &[v("a")]), "a %!s(MISSING)");
        assert_eq!(sprintf("%e", &[Value::Float(1234.5678)]), "1.234568e+03");
        assert_eq!(sprintf("100%%", &[]), "100%");
    }
}
