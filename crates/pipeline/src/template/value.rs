//! Template values and how Go prints them (`fmt`'s `%v`).

use super::time::format_default;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A point in time, nanoseconds since the Unix epoch, shown in UTC.
    Time(i64),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// Go's truth: false, 0, nil and empty strings and collections are
    /// false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Time(_) => true,
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Time(_) => "time.Time",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
        }
    }

    /// Writes the value as `fmt.Sprint` would.
    pub fn write_to(&self, out: &mut String) {
        match self {
            Value::Nil => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&format_float_g(*f, None)),
            Value::Str(s) => out.push_str(s),
            Value::Time(ns) => out.push_str(&format_default(*ns)),
            Value::List(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_to(out);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_to(out);
                }
                out.push(']');
            }
        }
    }

    pub fn to_string_value(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            other => {
                let mut s = String::new();
                other.write_to(&mut s);
                s
            }
        }
    }
}

/// Go's `%g` (and `%v` for floats): the shortest digits that read back
/// exactly, or `precision` significant digits; the exponent form when the
/// exponent is below -4 or at least the precision, which is 6 for the
/// shortest form (so Go prints a float64 million as `1e+06`).
pub fn format_float_g(f: f64, precision: Option<usize>) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Scientific form with the digits we want, then decide the layout.
    let sci = match precision {
        Some(p) => format!("{:.*e}", p.max(1) - 1, f),
        None => format!("{f:e}"),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mantissa.starts_with('-');
    let mut digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    if precision.is_some() {
        while digits.len() > 1 && digits.ends_with('0') {
            digits.pop();
        }
    }
    let eprec = precision.map_or(6, |p| p.max(1) as i32);
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exp.unsigned_abs());
        return out;
    }
    if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(format_float_g(3.5, None), "3.5");
        assert_eq!(format_float_g(6.0, None), "6");
        assert_eq!(format_float_g(100000.0, None), "100000");
        assert_eq!(format_float_g(1e6, None), "1e+06");
        assert_eq!(format_float_g(1234567.0, None), "1.234567e+06");
        assert_eq!(format_float_g(0.0001, None), "0.0001");
        assert_eq!(format_float_g(0.00001, None), "1e-05");
        assert_eq!(format_float_g(-2.25, None), "-2.25");
        assert_eq!(format_float_g(123.456, Some(4)), "123.5");
    }

    #[test]
    fn prints_collections() {
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), Value::Int(1));
        m.insert(
            "b".to_string(),
            Value::List(vec![Value::Str("x".into()), Value::Bool(true)]),
        );
        assert_eq!(Value::Map(m).to_string_value(), "map[a:1 b:[x true]]");
    }
}
