//! Line filters (`|=`, `!=`, `|~`, `!~`, `|>`, `!>`, `|= ip(..)`,
//! `!= ip(..)`, each with `or` chains), compiled to literal searches
//! (memchr's `memmem`, Aho-Corasick for `or` chains), regexes only where a
//! pattern needs one, Loki patterns and IP ranges.
//!
//! A chain also tells which literals every matching line must contain
//! ([`LineFilterChain::required`]), so the store can skip blocks whose
//! filters rule them out.

use crate::PipelineError;
use crate::ip::IpMatcher;
use crate::pattern::Pattern;
use aho_corasick::AhoCorasick;
use memchr::memmem;
use regex::bytes::Regex;
use skald_logql::{LineFilter, LineFilterOp};

/// Regexes larger than this when compiled are refused.
const REGEX_SIZE_LIMIT: usize = 4 << 20;

#[derive(Debug)]
enum Test {
    /// Contains this literal.
    Literal(Box<memmem::Finder<'static>>),
    /// Contains any of these literals.
    AnyLiteral(AhoCorasick),
    Regex(Regex),
    /// Matches any of these Loki patterns.
    Pattern(Vec<Pattern>),
    /// Contains an address in any of these ranges.
    Ip(Vec<IpMatcher>),
}

impl Test {
    fn matches(&self, line: &[u8]) -> bool {
        match self {
            Test::Literal(f) => f.find(line).is_some(),
            Test::AnyLiteral(ac) => ac.is_match(line),
            Test::Regex(r) => r.is_match(line),
            Test::Pattern(ps) => {
                let line = String::from_utf8_lossy(line);
                ps.iter().any(|p| p.is_match(&line))
            }
            Test::Ip(ms) => {
                let line = String::from_utf8_lossy(line);
                ms.iter().any(|m| m.matches_line(&line))
            }
        }
    }
}

#[derive(Debug)]
struct Compiled {
    negated: bool,
    test: Test,
    /// An empty literal matches every line (`|= ""`): such a filter is a
    /// no-op, and its negation drops everything.
    matches_all: bool,
}

/// A chain of line filters: a line passes if it passes each of them.
#[derive(Debug, Default)]
pub struct LineFilterChain {
    filters: Vec<Compiled>,
    required: Vec<Vec<String>>,
}

impl LineFilterChain {
    /// Compiles the filters; all of them must pass.
    pub fn new(filters: &[LineFilter]) -> Result<Self, PipelineError> {
        let mut chain = LineFilterChain::default();
        for f in filters {
            let negated = f.op.is_negated();
            let regex = matches!(f.op, LineFilterOp::Regex | LineFilterOp::NotRegex);
            let (test, matches_all) =
                if matches!(f.op, LineFilterOp::Pattern | LineFilterOp::NotPattern) {
                    let patterns = f
                        .values
                        .iter()
                        .map(|v| Pattern::parse(v).map_err(PipelineError::Pattern))
                        .collect::<Result<Vec<_>, _>>()?;
                    (Test::Pattern(patterns), false)
                } else if matches!(f.op, LineFilterOp::Ip | LineFilterOp::NotIp) {
                    let ranges = f
                        .values
                        .iter()
                        .map(|v| IpMatcher::parse(v).map_err(PipelineError::Ip))
                        .collect::<Result<Vec<_>, _>>()?;
                    (Test::Ip(ranges), false)
                } else if regex {
                    let pattern = if f.values.len() == 1 {
                        f.values[0].clone()
                    } else {
                        f.values
                            .iter()
                            .map(|v| format!("(?:{v})"))
                            .collect::<Vec<_>>()
                            .join("|")
                    };
                    let re = regex::bytes::RegexBuilder::new(&pattern)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|e| PipelineError::Regex {
                            pattern: pattern.clone(),
                            reason: e.to_string(),
                        })?;
                    let all = re.is_match(b"") && pattern.is_empty();
                    (Test::Regex(re), all)
                } else if f.values.len() == 1 {
                    let v = &f.values[0];
                    (
                        Test::Literal(Box::new(memmem::Finder::new(v.as_bytes()).into_owned())),
                        v.is_empty(),
                    )
                } else {
                    let ac = AhoCorasick::new(&f.values).map_err(|e| PipelineError::Regex {
                        pattern: f.values.join(" or "),
                        reason: e.to_string(),
                    })?;
                    (Test::AnyLiteral(ac), f.values.iter().any(String::is_empty))
                };
            if f.op == LineFilterOp::Contains && !matches_all {
                chain.required.push(f.values.clone());
            }
            if f.op == LineFilterOp::Regex
                && let Some(literals) = regex_literals(&f.values)
            {
                chain.required.push(literals);
            }
            chain.filters.push(Compiled {
                negated,
                test,
                matches_all,
            });
        }
        Ok(chain)
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Number of filters in the chain.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// Whether a line passes every filter.
    pub fn matches(&self, line: &[u8]) -> bool {
        self.filters.iter().all(|f| {
            let hit = f.matches_all || f.test.matches(line);
            hit != f.negated
        })
    }

    /// Literal alternatives every passing line must contain: for each inner
    /// list, at least one of its strings is a substring of the line.
    pub fn required(&self) -> &[Vec<String>] {
        &self.required
    }
}

/// The literals a regex filter's alternatives reduce to, when each is a
/// plain literal, optionally case-insensitive (`(?i)error`, the way Loki
/// users ask for case-insensitive search): a matching line contains one of
/// them, compared ASCII-case-insensitively, which is how block filters
/// compare, so such filters skip blocks like `|=` does. Non-ASCII
/// case-insensitive literals are left out (their case folding is not
/// ASCII's).
fn regex_literals(values: &[String]) -> Option<Vec<String>> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let (insensitive, body) = match v.strip_prefix("(?i)") {
            Some(rest) => (true, rest),
            None => (false, v.as_str()),
        };
        let plain = !body.is_empty()
            && !body
                .chars()
                .any(|c| "\\.+*?()|[]{}^$".contains(c) || c.is_whitespace() && c != ' ');
        if !plain || (insensitive && !body.is_ascii()) {
            return None;
        }
        out.push(body.to_string());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(op: LineFilterOp, values: &[&str]) -> LineFilter {
        LineFilter {
            op,
            values: values.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn case_insensitive_regexes_of_literals_are_required_literals() {
        let chain = LineFilterChain::new(&[f(LineFilterOp::Regex, &["(?i)timeout"])]).unwrap();
        assert_eq!(chain.required(), &[vec!["timeout".to_string()]]);
        assert!(chain.matches(b"upstream TimeOut after 5s"));
        let chain = LineFilterChain::new(&[f(LineFilterOp::Regex, &["(?i)a", "b"])]).unwrap();
        assert_eq!(chain.required(), &[vec!["a".to_string(), "b".to_string()]]);
        for not_literal in ["time.*out", "(?i)caf\u{e9}", "(?i)CAFÉ", "a|b", "x+"] {
            let chain = LineFilterChain::new(&[f(LineFilterOp::Regex, &[not_literal])]).unwrap();
            assert!(chain.required().is_empty(), "{not_literal}");
        }
        // Negated regexes require nothing.
        let chain = LineFilterChain::new(&[f(LineFilterOp::NotRegex, &["(?i)x"])]).unwrap();
        assert!(chain.required().is_empty());
    }

    #[test]
    fn chains_literals_regexes_and_negations() {
        let chain = LineFilterChain::new(&[
            f(LineFilterOp::Contains, &["error"]),
            f(LineFilterOp::NotContains, &["healthz"]),
            f(LineFilterOp::Regex, &["code=5\\d\\d"]),
        ])
        .unwrap();
        assert!(chain.matches(b"level=error code=503 path=/api"));
        assert!(!chain.matches(b"level=error code=503 path=/healthz"));
        assert!(!chain.matches(b"level=error code=404"));
        assert!(!chain.matches(b"level=info code=500"));
        assert_eq!(chain.required(), &[vec!["error".to_string()]]);
    }

    #[test]
    fn or_chains_and_empty_literals() {
        let chain = LineFilterChain::new(&[f(LineFilterOp::Contains, &["warn", "error"])]).unwrap();
        assert!(chain.matches(b"a warning"));
        assert!(chain.matches(b"an error"));
        assert!(!chain.matches(b"info"));
        let all = LineFilterChain::new(&[f(LineFilterOp::Contains, &[""])]).unwrap();
        assert!(all.matches(b"anything"));
        assert!(all.required().is_empty());
        let none = LineFilterChain::new(&[f(LineFilterOp::NotContains, &[""])]).unwrap();
        assert!(!none.matches(b"anything"));
    }

    #[test]
    fn pattern_and_ip_filters() {
        let chain = LineFilterChain::new(&[
            f(LineFilterOp::Pattern, &["<_> status=5<_>", "<_> panic <_>"]),
            f(LineFilterOp::NotIp, &["10.0.0.0/8"]),
        ])
        .unwrap();
        assert!(chain.matches(b"GET /x status=503 from 192.168.1.1"));
        assert!(chain.matches(b"worker panic now"));
        assert!(!chain.matches(b"GET /x status=503 from 10.1.2.3"));
        assert!(!chain.matches(b"GET /x status=200"));
        assert!(chain.required().is_empty());
        let ip =
            LineFilterChain::new(&[f(LineFilterOp::Ip, &["192.168.0.1-192.168.0.9"])]).unwrap();
        assert!(ip.matches(b"from 192.168.0.5:80"));
        assert!(!ip.matches(b"from 192.168.0.50"));
        assert!(LineFilterChain::new(&[f(LineFilterOp::Ip, &["nope"])]).is_err());
    }
}
