//! The `json` parser and a small zero-copy JSON scanner shared with
//! `unpack` and the template function `fromJson`.
//!
//! Without parameters, every scalar member of the line's object becomes a
//! label, nested objects flattened with `_` (`request.headers.Accept` gives
//! `request_headers_Accept`), and arrays skipped, as in Loki. Names are
//! sanitised (see [`crate::labels::sanitize_label_name`]). Strings are
//! unescaped; numbers and booleans keep their text; `null` gives an empty
//! value.
//!
//! With parameters (`| json a="request.headers[\"User-Agent\"]", b="list[0]"`)
//! each label is the value at its path; an object or array gives its JSON
//! text as written in the line, and a path that is not in the line gives an
//! empty label (Loki's behaviour).
//!
//! A line that is not a JSON object gets `__error__="JSONParserErr"` and the
//! reason in `__error_details__`; labels found before the fault are kept.
//! Nesting is bounded ([`MAX_DEPTH`]) so hostile input cannot exhaust the
//! stack.

use crate::labels::{LabelsBuilder, errors, sanitize_label_name};
use std::borrow::Cow;

pub use skald_fields::json::{Kind, MAX_DEPTH, Scanner};

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathStep {
    Key(String),
    Index(usize),
}

/// Parses `a.b[0]`, `["a"]["b"]`, `a["b.c"][2].d`.
pub(crate) fn parse_path(expr: &str) -> Result<Vec<PathStep>, String> {
    let bad = |why: &str| format!("invalid JSON path {expr:?}: {why}");
    let mut steps = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    let mut expect_key = true;
    while i < b.len() {
        match b[i] {
            b'.' => {
                if expect_key {
                    return Err(bad("unexpected '.'"));
                }
                i += 1;
                expect_key = true;
            }
            b'[' => {
                i += 1;
                if b.get(i) == Some(&b'"') {
                    i += 1;
                    let mut key = String::new();
                    loop {
                        match b.get(i) {
                            None => return Err(bad("unclosed string")),
                            Some(b'"') => break,
                            Some(b'\\') if i + 1 < b.len() => {
                                key.push(b[i + 1] as char);
                                i += 2;
                            }
                            Some(_) => {
                                let ch = expr[i..].chars().next().unwrap_or('?');
                                key.push(ch);
                                i += ch.len_utf8();
                            }
                        }
                    }
                    i += 1;
                    steps.push(PathStep::Key(key));
                } else {
                    let end = expr[i..]
                        .find(']')
                        .map(|n| i + n)
                        .ok_or_else(|| bad("unclosed '['"))?;
                    let index = expr[i..end]
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| bad("index must be a non-negative integer"))?;
                    steps.push(PathStep::Index(index));
                    i = end;
                }
                if b.get(i) != Some(&b']') {
                    return Err(bad("expected ']'"));
                }
                i += 1;
                expect_key = false;
            }
            _ => {
                if !expect_key {
                    return Err(bad("expected '.' or '['"));
                }
                let end = expr[i..]
                    .find(['.', '['])
                    .map(|n| i + n)
                    .unwrap_or(expr.len());
                steps.push(PathStep::Key(expr[i..end].to_string()));
                i = end;
                expect_key = false;
            }
        }
    }
    if steps.is_empty() || expect_key {
        return Err(bad("empty path"));
    }
    Ok(steps)
}

/// Finds the value at `path` in `line`; `Ok(None)` when absent.
fn lookup<'a>(line: &'a str, path: &[PathStep]) -> Result<Option<Cow<'a, str>>, String> {
    fn walk<'a>(
        s: &mut Scanner<'a>,
        path: &[PathStep],
        depth: usize,
    ) -> Result<Option<Cow<'a, str>>, String> {
        let Some((step, rest)) = path.split_first() else {
            return s.label_value(depth).map(Some);
        };
        // Outer `Some` once the step is found: the first of duplicate keys
        // wins, even when the rest of the path is missing under it.
        let mut found: Option<Option<Cow<'a, str>>> = None;
        match (step, s.kind()?) {
            (PathStep::Key(want), Kind::Object) => s.members(depth, |s, key| {
                if found.is_none() && key == want.as_str() {
                    found = Some(walk(s, rest, depth + 1)?);
                    Ok(())
                } else {
                    s.skip_value(depth + 1).map(|_| ())
                }
            })?,
            (PathStep::Index(want), Kind::Array) => s.elements(depth, |s, i| {
                if i == *want {
                    found = Some(walk(s, rest, depth + 1)?);
                    Ok(())
                } else {
                    s.skip_value(depth + 1).map(|_| ())
                }
            })?,
            _ => {
                s.skip_value(depth)?;
            }
        }
        Ok(found.flatten())
    }
    let mut s = Scanner::new(line);
    if s.kind()? != Kind::Object {
        return Err("expected a JSON object".to_string());
    }
    walk(&mut s, path, 0)
}

/// A compiled `json` stage.
#[derive(Debug)]
pub struct JsonParser {
    /// `(label, path)` pairs; empty for the parameterless form.
    params: Vec<(String, Vec<PathStep>)>,
    /// Labels the rest of the query reads; `None` for all.
    projection: Option<super::Projection>,
}

impl JsonParser {
    pub fn new(params: &[skald_logql::ExtractParam]) -> Result<JsonParser, String> {
        let params = params
            .iter()
            .map(|p| {
                let expr = p.expr.as_deref().unwrap_or(&p.label);
                parse_path(expr).map(|path| (p.label.clone(), path))
            })
            .collect::<Result<_, _>>()?;
        Ok(JsonParser {
            params,
            projection: None,
        })
    }

    /// Sets only the labels of `projection` from now on.
    pub fn project(&mut self, projection: super::Projection) {
        self.projection = Some(projection);
    }

    /// Whether this is the parameterless form, which sets a label for
    /// every field [`skald_fields::json::flatten`] finds.
    pub fn extracts_every_field(&self) -> bool {
        self.params.is_empty()
    }

    pub fn process(&self, line: &str, labels: &mut LabelsBuilder, name: &mut String) {
        if self.params.is_empty() {
            let mut s = Scanner::new(line);
            name.clear();
            let result = match s.kind() {
                Ok(Kind::Object) => flatten(&mut s, labels, name, 0, self.projection.as_ref()),
                Ok(_) => Err("expected a JSON object".to_string()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                labels.set_error(errors::JSON, &e);
            }
            return;
        }
        for (label, path) in &self.params {
            match lookup(line, path) {
                Ok(value) => labels.set_parsed(label, value.as_deref().unwrap_or("")),
                Err(e) => {
                    labels.set_error(errors::JSON, &e);
                    return;
                }
            }
        }
    }
}

/// Sets a label for every scalar under the object at the scanner (named
/// by [`skald_fields::json::flatten`]), only those of `projection` when
/// there is one.
fn flatten(
    s: &mut Scanner<'_>,
    labels: &mut LabelsBuilder,
    prefix: &mut String,
    depth: usize,
    projection: Option<&super::Projection>,
) -> Result<(), String> {
    let skip = |name: &str| projection.is_some_and(|p| !p.wants(name));
    skald_fields::json::flatten(s, prefix, depth, &skip, &mut |name, value| {
        labels.set_parsed(name, &value)
    })
}

/// The `unpack` stage: the line is a JSON object written by Promtail's
/// `pack` stage; its string members become labels, except `_entry`, which
/// becomes the line. Other members are ignored. Returns the new line, if
/// any.
pub fn unpack<'a>(line: &'a str, labels: &mut LabelsBuilder) -> Option<Cow<'a, str>> {
    let mut s = Scanner::new(line);
    let mut entry = None;
    let mut name = String::new();
    let result = match s.kind() {
        Ok(Kind::Object) => s.members(0, |s, key| {
            if s.kind()? != Kind::String {
                return s.skip_value(1).map(|_| ());
            }
            let value = s.string()?;
            if key == "_entry" {
                entry = Some(value);
                return Ok(());
            }
            sanitize_label_name(&key, &mut name);
            if !name.is_empty() {
                labels.set_parsed(&name, &value);
            }
            Ok(())
        }),
        Ok(_) => Err("expected a JSON object".to_string()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        labels.set_error(errors::JSON, &e);
        return None;
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_logql::ExtractParam;
    use skald_model::Label;

    fn run(params: &[(&str, &str)], line: &str) -> Vec<(String, String)> {
        let params: Vec<ExtractParam> = params
            .iter()
            .map(|(l, e)| ExtractParam {
                label: l.to_string(),
                expr: (!e.is_empty()).then(|| e.to_string()),
            })
            .collect();
        let p = JsonParser::new(&params).unwrap();
        let mut b = LabelsBuilder::default();
        b.reset(&[Label::new("app", "api")], &[]);
        p.process(line, &mut b, &mut String::new());
        let mut out = Vec::new();
        b.write_to(&mut out);
        out.into_iter()
            .filter(|l| l.name != "app")
            .map(|l| (l.name, l.value))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const DOC_LINE: &str = r#"{
  "protocol": "HTTP/2.0",
  "servers": ["129.0.1.1","10.2.1.3"],
  "request": {
    "time": "6.032",
    "method": "GET",
    "host": "foo.grafana.net",
    "size": "55",
    "headers": {
      "Accept": "*/*",
      "User-Agent": "curl/7.68.0"
    }
  },
  "response": {
    "status": 401,
    "size": "228",
    "latency_seconds": "6.031"
  }
}"#;

    #[test]
    fn flattens_the_docs_example() {
        assert_eq!(
            run(&[], DOC_LINE),
            pairs(&[
                ("protocol", "HTTP/2.0"),
                ("request_headers_Accept", "*/*"),
                ("request_headers_User_Agent", "curl/7.68.0"),
                ("request_host", "foo.grafana.net"),
                ("request_method", "GET"),
                ("request_size", "55"),
                ("request_time", "6.032"),
                ("response_latency_seconds", "6.031"),
                ("response_size", "228"),
                ("response_status", "401"),
            ])
        );
    }

    #[test]
    fn extracts_the_docs_expressions() {
        assert_eq!(
            run(
                &[
                    ("first_server", "servers[0]"),
                    ("ua", r#"request.headers["User-Agent"]"#),
                ],
                DOC_LINE
            ),
            pairs(&[("first_server", "129.0.1.1"), ("ua", "curl/7.68.0")])
        );
        assert_eq!(
            run(&[("headers", "request.headers")], DOC_LINE),
            pairs(&[(
                "headers",
                "{\n      \"Accept\": \"*/*\",\n      \"User-Agent\": \"curl/7.68.0\"\n    }"
            )])
        );
        assert_eq!(
            run(&[("servers", ""), ("missing", "nope.x")], DOC_LINE),
            pairs(&[("missing", ""), ("servers", r#"["129.0.1.1","10.2.1.3"]"#)])
        );
        assert_eq!(
            run(
                &[("x", r#"["a"]["b"][1]"#)],
                r#"{"a":{"b":[1,{"c":true}]}}"#
            ),
            pairs(&[("x", r#"{"c":true}"#)])
        );
    }

    #[test]
    fn clashes_escapes_and_scalars() {
        assert_eq!(
            run(
                &[],
                r#"{"app":"x","n":-1.5e3,"ok":true,"nil":null,"s":"a\"b\u00e9\n","1a":1}"#
            ),
            pairs(&[
                ("_1a", "1"),
                ("app_extracted", "x"),
                ("n", "-1.5e3"),
                ("nil", ""),
                ("ok", "true"),
                ("s", "a\"bé\n"),
            ])
        );
    }

    #[test]
    fn errors() {
        for bad in [
            "not json",
            "{\"a\":",
            "[1,2]",
            "{\"a\" 1}",
            "",
            "{\"a\":tru}",
        ] {
            let got = run(&[], bad);
            assert_eq!(
                got.first().map(|p| p.0.as_str()),
                Some("__error__"),
                "{bad}"
            );
            assert_eq!(got[0].1, "JSONParserErr");
            assert_eq!(got[1].0, "__error_details__");
        }
        let deep = "[".repeat(10_000);
        let line = format!("{{\"a\":{deep}}}");
        assert_eq!(run(&[], &line)[0].1, "JSONParserErr");
        assert!(parse_path("a..b").is_err());
        assert!(parse_path("a[x]").is_err());
        assert_eq!(
            parse_path(r#"a["b.c"][2].d"#).unwrap(),
            vec![
                PathStep::Key("a".into()),
                PathStep::Key("b.c".into()),
                PathStep::Index(2),
                PathStep::Key("d".into())
            ]
        );
    }

    #[test]
    fn unpacks_promtail_entries() {
        let mut b = LabelsBuilder::default();
        b.reset(&[Label::new("app", "api")], &[]);
        let line = unpack(
            r#"{"container":"myapp","pod":"p1","_entry":"original log","n":1}"#,
            &mut b,
        );
        assert_eq!(line.as_deref(), Some("original log"));
        assert_eq!(b.get("container"), Some("myapp"));
        assert_eq!(b.get("pod"), Some("p1"));
        assert_eq!(b.get("n"), None);
        assert_eq!(unpack("nope", &mut b), None);
        assert_eq!(b.err(), Some("JSONParserErr"));
    }
}
