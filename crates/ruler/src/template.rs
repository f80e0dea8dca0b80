//! Alert templates: the Go templates of `annotations` and `labels`, with
//! Prometheus' data and functions.
//!
//! Prometheus runs every alert template with `.Labels`, `.Value`,
//! `.ExternalLabels` and `.ExternalURL` as data and the variables
//! `$labels`, `$value`, `$externalLabels`, `$externalURL` predefined, so
//! `{{ $labels.instance }}` and `{{ $value | humanize }}` work. The
//! language itself is `skald-pipeline`'s template engine (the one
//! `line_format` uses); this module adds the data and Prometheus' text
//! functions. Not supported: `query` and the other functions that run a
//! query from a template (they are refused when the rule is loaded).

use skald_pipeline::template::value::Value;
use skald_pipeline::template::{Data, Template, funcs::sprintf};
use std::collections::BTreeMap;

/// Functions Prometheus adds to Go's for alert templates.
const PROM_FUNCS: &[&str] = &[
    "humanize",
    "humanize1024",
    "humanizePercentage",
    "humanizeDuration",
    "humanizeTimestamp",
    "toUpper",
    "toLower",
    "title",
    "reReplaceAll",
    "match",
    "safeHtml",
    "stripPort",
    "stripDomain",
    "toTime",
];

/// A parsed alert template.
#[derive(Debug)]
pub struct AlertTemplate {
    source: String,
    /// `None` when the text has no action: it is used as is.
    template: Option<Template>,
}

impl AlertTemplate {
    pub fn parse(source: &str) -> Result<AlertTemplate, String> {
        if !source.contains("{{") {
            return Ok(AlertTemplate {
                source: source.to_string(),
                template: None,
            });
        }
        let template = Template::parse_with(source, PROM_FUNCS)?;
        Ok(AlertTemplate {
            source: source.to_string(),
            template: Some(template),
        })
    }

    /// A text used as is, never expanded.
    pub fn plain(text: &str) -> AlertTemplate {
        AlertTemplate {
            source: text.to_string(),
            template: None,
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The text for one alert. Prometheus keeps going on a template
    /// error and shows the error as the text; so do we.
    pub fn render(&self, data: &AlertData<'_>) -> String {
        let Some(t) = &self.template else {
            return self.source.clone();
        };
        let mut out = String::new();
        match t.execute(data, &mut out) {
            Ok(()) => out,
            Err(e) => format!("<error expanding template: {e}>"),
        }
    }
}

/// What an alert template sees.
pub struct AlertData<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    pub value: f64,
    /// Evaluation time, nanoseconds.
    pub ts: i64,
}

fn map(m: &BTreeMap<String, String>) -> Value {
    Value::Map(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
            .collect(),
    )
}

impl Data for AlertData<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
    fn labels(&self) -> Vec<(String, String)> {
        self.labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
    fn line(&self) -> &str {
        ""
    }
    fn timestamp(&self) -> i64 {
        self.ts
    }
    fn dot(&self) -> Option<Value> {
        let mut m = BTreeMap::new();
        m.insert("Labels".to_string(), map(self.labels));
        m.insert("ExternalLabels".to_string(), map(self.external_labels));
        m.insert(
            "ExternalURL".to_string(),
            Value::Str(self.external_url.to_string()),
        );
        m.insert("Value".to_string(), Value::Float(self.value));
        Some(Value::Map(m))
    }
    fn vars(&self) -> Vec<(String, Value)> {
        vec![
            ("$labels".to_string(), map(self.labels)),
            ("$externalLabels".to_string(), map(self.external_labels)),
            (
                "$externalURL".to_string(),
                Value::Str(self.external_url.to_string()),
            ),
            ("$value".to_string(), Value::Float(self.value)),
        ]
    }
    fn missing_key_is_empty(&self) -> bool {
        true
    }
    fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        if !PROM_FUNCS.contains(&name) {
            return None;
        }
        Some(prom_func(name, args))
    }
}

fn arity(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn number(name: &str, v: &Value) -> Result<f64, String> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        Value::Str(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("{name}: {s:?} is not a number")),
        other => Err(format!(
            "{name}: {} is not a number",
            other.to_string_value()
        )),
    }
}

fn prom_func(name: &str, args: &[Value]) -> Result<Value, String> {
    let text = |v: &Value| v.to_string_value();
    match name {
        "humanize" => {
            arity(name, args, 1)?;
            Ok(Value::Str(humanize(number(name, &args[0])?, 1000.0)))
        }
        "humanize1024" => {
            arity(name, args, 1)?;
            Ok(Value::Str(humanize(number(name, &args[0])?, 1024.0)))
        }
        "humanizePercentage" => {
            arity(name, args, 1)?;
            let v = number(name, &args[0])? * 100.0;
            Ok(Value::Str(sprintf("%.4g%%", &[Value::Float(v)])))
        }
        "humanizeDuration" => {
            arity(name, args, 1)?;
            Ok(Value::Str(humanize_duration(number(name, &args[0])?)))
        }
        "humanizeTimestamp" | "toTime" => {
            arity(name, args, 1)?;
            let secs = number(name, &args[0])?;
            if !secs.is_finite() {
                return Ok(Value::Str(sprintf("%.4g", &[Value::Float(secs)])));
            }
            Ok(Value::Time((secs * 1e9) as i64))
        }
        "toUpper" => {
            arity(name, args, 1)?;
            Ok(Value::Str(text(&args[0]).to_uppercase()))
        }
        "toLower" => {
            arity(name, args, 1)?;
            Ok(Value::Str(text(&args[0]).to_lowercase()))
        }
        "title" => {
            arity(name, args, 1)?;
            let mut out = String::new();
            let mut start = true;
            for c in text(&args[0]).chars() {
                if start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = !c.is_alphanumeric();
            }
            Ok(Value::Str(out))
        }
        "reReplaceAll" => {
            arity(name, args, 3)?;
            let re = regex_of(&text(&args[0]))?;
            let repl = go_replacement(&text(&args[1]));
            Ok(Value::Str(
                re.replace_all(&text(&args[2]), repl.as_str()).into_owned(),
            ))
        }
        "match" => {
            arity(name, args, 2)?;
            let re = regex_of(&text(&args[0]))?;
            Ok(Value::Bool(re.is_match(&text(&args[1]))))
        }
        "safeHtml" => {
            arity(name, args, 1)?;
            Ok(Value::Str(text(&args[0])))
        }
        "stripPort" => {
            arity(name, args, 1)?;
            let s = text(&args[0]);
            let host = match s.rsplit_once(':') {
                Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                    h.trim_start_matches('[').trim_end_matches(']').to_string()
                }
                _ => s,
            };
            Ok(Value::Str(host))
        }
        "stripDomain" => {
            arity(name, args, 1)?;
            let s = text(&args[0]);
            let (host, port) = match s.rsplit_once(':') {
                Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
                _ => (s.as_str(), None),
            };
            let short = host.split('.').next().unwrap_or(host);
            Ok(Value::Str(match port {
                Some(p) => format!("{short}:{p}"),
                None => short.to_string(),
            }))
        }
        _ => Err(format!("function {name:?} not defined")),
    }
}

fn regex_of(pattern: &str) -> Result<regex::Regex, String> {
    let translated = skald_logql::translate_regex(pattern).map_err(|e| e.to_string())?;
    regex::RegexBuilder::new(&format!("^(?:{translated})$"))
        .size_limit(skald_logql::REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))
}

/// Go's `$1` / `${1}` replacement syntax is Rust's too, except that Rust
/// reads `$1a` as the group named `1a`; bracing numbers keeps Go's sense.
fn go_replacement(repl: &str) -> String {
    let mut out = String::with_capacity(repl.len());
    let b = repl.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() && b[i + 1].is_ascii_digit() {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            out.push_str("${");
            out.push_str(&repl[start..j]);
            out.push('}');
            i = j;
        } else {
            let c = repl[i..].chars().next().unwrap_or('$');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Prometheus' `humanize`: SI prefixes (or binary ones with 1024), four
/// significant digits.
fn humanize(v: f64, base: f64) -> String {
    let g4 = |x: f64, suffix: &str| sprintf(&format!("%.4g{suffix}"), &[Value::Float(x)]);
    if v == 0.0 || !v.is_finite() {
        return g4(v, "");
    }
    if v.abs() >= 1.0 {
        let prefixes: &[&str] = if base == 1024.0 {
            &["", "ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"]
        } else {
            &["", "k", "M", "G", "T", "P", "E", "Z", "Y"]
        };
        let mut x = v;
        let mut i = 0;
        while x.abs() >= base && i + 1 < prefixes.len() {
            x /= base;
            i += 1;
        }
        return g4(x, prefixes[i]);
    }
    if base == 1024.0 {
        return g4(v, "");
    }
    let prefixes = ["", "m", "u", "n", "p", "f", "a", "z", "y"];
    let mut x = v;
    let mut i = 0;
    while x.abs() < 1.0 && i + 1 < prefixes.len() {
        x *= 1000.0;
        i += 1;
    }
    g4(x, prefixes[i])
}

/// Prometheus' `humanizeDuration`: `1d 2h 3m 4s`, or milliseconds and
/// smaller units below a second.
fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return sprintf("%.4g", &[Value::Float(v)]);
    }
    if v == 0.0 {
        return "0s".to_string();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let a = v.abs();
    if a >= 1.0 {
        let total = a as u64;
        let (d, h, m) = (total / 86400, total / 3600 % 24, total / 60 % 60);
        let s = total % 60;
        let ms = ((a - total as f64) * 1000.0) as u64;
        let mut out = String::from(sign);
        if d > 0 {
            out.push_str(&format!("{d}d {h}h {m}m {s}s"));
        } else if h > 0 {
            out.push_str(&format!("{h}h {m}m {s}s"));
        } else if m > 0 {
            out.push_str(&format!("{m}m {s}s"));
        } else if ms > 0 {
            out.push_str(&format!("{s}.{ms:03}s"));
        } else {
            out.push_str(&format!("{s}s"));
        }
        return out;
    }
    let mut x = a;
    let mut i = 0;
    let units = ["s", "ms", "us", "ns", "ps", "fs"];
    while x < 1.0 && i + 1 < units.len() {
        x *= 1000.0;
        i += 1;
    }
    format!(
        "{sign}{}",
        sprintf(&format!("%.4g{}", units[i]), &[Value::Float(x)])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, labels: &[(&str, &str)], value: f64) -> String {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ext = BTreeMap::from([("cluster".to_string(), "eu1".to_string())]);
        let t = AlertTemplate::parse(src).unwrap();
        t.render(&AlertData {
            labels: &labels,
            external_labels: &ext,
            external_url: "http://skald:3100",
            value,
            ts: 0,
        })
    }

    #[test]
    fn prometheus_variables_and_data() {
        let l = [("app", "x"), ("instance", "host-1:9100")];
        assert_eq!(
            render("{{ $labels.app }} has {{ $value }} errors/s", &l, 2.5),
            "x has 2.5 errors/s"
        );
        assert_eq!(render("{{ .Labels.app }}/{{ .Value }}", &l, 3.0), "x/3");
        assert_eq!(
            render("{{ $externalLabels.cluster }} {{ $externalURL }}", &l, 0.0),
            "eu1 http://skald:3100"
        );
        assert_eq!(render("{{ $labels.missing }}", &l, 0.0), "");
        assert_eq!(
            render("{{ $labels.instance | stripPort }}", &l, 0.0),
            "host-1"
        );
        assert_eq!(render("plain text", &l, 0.0), "plain text");
        assert_eq!(
            render("{{ if gt $value 2.0 }}high{{ else }}low{{ end }}", &l, 3.0),
            "high"
        );
        assert_eq!(render("{{ printf \"%.1f\" $value }}", &l, 1.25), "1.2");
    }

    #[test]
    fn prometheus_functions() {
        assert_eq!(render("{{ humanize $value }}", &[], 1234567.0), "1.235M");
        assert_eq!(render("{{ $value | humanize }}", &[], 0.00123), "1.23m");
        assert_eq!(render("{{ humanize1024 $value }}", &[], 2048.0), "2ki");
        assert_eq!(
            render("{{ humanizePercentage $value }}", &[], 0.1234),
            "12.34%"
        );
        assert_eq!(
            render("{{ humanizeDuration $value }}", &[], 3725.0),
            "1h 2m 5s"
        );
        assert_eq!(render("{{ humanizeDuration $value }}", &[], 0.25), "250ms");
        assert_eq!(render("{{ toUpper \"abc\" }}", &[], 0.0), "ABC");
        assert_eq!(
            render("{{ title \"hello world\" }}", &[], 0.0),
            "Hello World"
        );
        assert_eq!(
            render("{{ reReplaceAll \"(a+)b\" \"${1}c\" \"aab\" }}", &[], 0.0),
            "aac"
        );
        assert_eq!(
            render("{{ reReplaceAll \"(.*):(.*)\" \"$2\" \"h:80\" }}", &[], 0.0),
            "80"
        );
        assert_eq!(
            render("{{ humanizeTimestamp 0 }}", &[], 0.0),
            "1970-01-01 00:00:00 +0000 UTC"
        );
    }

    #[test]
    fn bad_templates_are_refused_when_parsed() {
        for bad in [
            "{{ $labels.x",
            "{{ nosuchfunc 1 }}",
            "{{ query \"up\" }}",
            "{{ end }}",
        ] {
            assert!(AlertTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn execution_errors_become_the_text() {
        let out = render("{{ humanize \"abc\" }}", &[], 0.0);
        assert!(out.starts_with("<error expanding template"), "{out}");
    }
}
