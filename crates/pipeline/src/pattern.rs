//! Loki's pattern language, used by the `pattern` parser and the `|>` and
//! `!>` line filters: literal text with captures `<name>` and unnamed
//! captures `<_>`.
//!
//! Matching walks the line left to right. A leading literal must start the
//! line. Each capture extends to the *first* occurrence of the literal
//! after it; a capture at the end takes the rest of the line. When a
//! literal is not found, the capture before it takes the rest of the line
//! and the later captures stay unset, as Loki's parser does.
//!
//! The filters are stricter than the parser, as in Loki: every literal
//! must be found, and a trailing literal must end the line.

use memchr::memmem;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Literal(String),
    /// `None` for `<_>`.
    Capture(Option<String>),
}

#[derive(Debug, Clone)]
pub struct Pattern {
    parts: Vec<Part>,
    /// A searcher for each literal, at its index in `parts`: built once,
    /// not per line.
    finders: Vec<Option<memmem::Finder<'static>>>,
}

impl Pattern {
    /// Splits a pattern into literals and captures. Two captures in a row
    /// are refused (nothing would tell where the first ends).
    pub fn parse(pattern: &str) -> Result<Pattern, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            if let Some(inner) = rest.strip_prefix('<') {
                let name_len = inner
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(inner.len());
                let name = &inner[..name_len];
                let valid = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && inner[name_len..].starts_with('>');
                if valid {
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    } else if matches!(parts.last(), Some(Part::Capture(_))) {
                        return Err(format!(
                            "invalid pattern {pattern:?}: consecutive captures are not allowed"
                        ));
                    }
                    let name = (name != "_").then(|| name.to_string());
                    parts.push(Part::Capture(name));
                    rest = &inner[name_len + 1..];
                    continue;
                }
            }
            let c = rest.chars().next().unwrap_or_default();
            literal.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        let finders = parts
            .iter()
            .map(|p| match p {
                Part::Literal(lit) => Some(memmem::Finder::new(lit.as_bytes()).into_owned()),
                Part::Capture(_) => None,
            })
            .collect();
        Ok(Pattern { parts, finders })
    }

    /// Where the literal at `parts[at]` first occurs in `hay`.
    fn find(&self, at: usize, hay: &str) -> Option<usize> {
        self.finders[at].as_ref()?.find(hay.as_bytes())
    }

    /// Names of the named captures, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Capture(Some(n)) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Calls `found(name, value)` for each named capture the line sets;
    /// returns false (and sets nothing) if a leading literal does not match.
    pub fn extract<'l>(&self, line: &'l str, mut found: impl FnMut(&str, &'l str)) -> bool {
        if line.is_empty() {
            return false;
        }
        let mut p = 0;
        let mut rest = line;
        if let Some(Part::Literal(lit)) = self.parts.first() {
            match rest.strip_prefix(lit.as_str()) {
                Some(r) => rest = r,
                None => return false,
            }
            p = 1;
        }
        while let Some(Part::Capture(name)) = self.parts.get(p) {
            let Some(Part::Literal(lit)) = self.parts.get(p + 1) else {
                if let Some(n) = name {
                    found(n, rest);
                }
                break;
            };
            let Some(at) = self.find(p + 1, rest) else {
                if let Some(n) = name {
                    found(n, rest);
                }
                break;
            };
            if let Some(n) = name {
                found(n, &rest[..at]);
            }
            rest = &rest[at + lit.len()..];
            p += 2;
        }
        true
    }

    /// Whether a line matches the pattern as a `|>` filter.
    pub fn is_match(&self, line: &str) -> bool {
        if line.is_empty() {
            // As Loki: an empty line matches only the empty pattern (a
            // capture takes at least nothing, but not from nothing).
            return self.parts.is_empty();
        }
        let mut p = 0;
        let mut rest = line;
        if let Some(Part::Literal(lit)) = self.parts.first() {
            match rest.strip_prefix(lit.as_str()) {
                Some(r) => rest = r,
                None => return false,
            }
            p = 1;
        }
        // Now captures and literals alternate, starting with a capture.
        while let Some(Part::Capture(_)) = self.parts.get(p) {
            let Some(Part::Literal(lit)) = self.parts.get(p + 1) else {
                return true;
            };
            if self.parts.len() == p + 2 {
                // A trailing literal must end the line.
                return rest.ends_with(lit.as_str());
            }
            let Some(at) = self.find(p + 1, rest) else {
                return false;
            };
            rest = &rest[at + lit.len()..];
            p += 2;
        }
        p == self.parts.len() && rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract(p: &str, line: &str) -> Option<Vec<(String, String)>> {
        let p = Pattern::parse(p).unwrap();
        let mut v = Vec::new();
        p.extract(line, |n, val| v.push((n.to_string(), val.to_string())))
            .then_some(v)
    }

    fn pairs(v: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn nginx_example_from_the_docs() {
        let line = r#"0.191.12.2 - - [10/Jun/2021:09:14:29 +0000] "GET /api/plugins/versioncheck HTTP/1.1" 200 2 "-" "Go-http-client/2.0" "13.76.247.102, 34.120.177.193" "TLSv1.2" "US" """#;
        let got = extract(
            r#"<ip> - - <_> "<method> <uri> <_>" <status> <size> <_> "<agent>" <_>"#,
            line,
        );
        assert_eq!(
            got,
            pairs(&[
                ("ip", "0.191.12.2"),
                ("method", "GET"),
                ("uri", "/api/plugins/versioncheck"),
                ("status", "200"),
                ("size", "2"),
                ("agent", "Go-http-client/2.0"),
            ])
        );
    }

    /// The parser takes nothing from an empty line; the `|>` filter
    /// takes it for the empty pattern only (both as Loki). Found by the
    /// `pattern` fuzz target, whose oracle now allows it.
    #[test]
    fn an_empty_line_matches_only_the_empty_pattern_and_is_never_parsed() {
        let empty = Pattern::parse("").unwrap();
        assert!(empty.is_match(""));
        assert!(!empty.extract("", |_, _| {}));
        assert!(!Pattern::parse("<a>").unwrap().is_match(""));
        assert!(!Pattern::parse("x <a>").unwrap().is_match(""));
    }

    #[test]
    fn partial_and_failed_matches() {
        assert_eq!(
            extract("<a> x <b> y", "1 x 2"),
            pairs(&[("a", "1"), ("b", "2")])
        );
        assert_eq!(
            extract("<a> x <b>", "no separator"),
            pairs(&[("a", "no separator")])
        );
        assert_eq!(extract("GET <path>", "POST /x"), None);
        assert_eq!(extract("<a>", ""), None);
        assert!(Pattern::parse("<a><b>").is_err());
        assert_eq!(extract("a < b <c>", "a < b 9"), pairs(&[("c", "9")]));
    }

    #[test]
    fn filters() {
        let p = Pattern::parse("<_> level=error <_>").unwrap();
        assert!(p.is_match("ts=1 level=error msg=x"));
        assert!(!p.is_match("ts=1 level=info msg=x"));
        let p = Pattern::parse("<_> done").unwrap();
        assert!(p.is_match("job done"));
        assert!(!p.is_match("job done twice"));
        let p = Pattern::parse("GET <_>").unwrap();
        assert!(p.is_match("GET /"));
        assert!(!p.is_match("POST /"));
    }
}
