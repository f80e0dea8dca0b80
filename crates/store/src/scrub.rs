//! Scrubbing: rules that mask secrets in lines (and structured metadata
//! values) at ingest, before the WAL, so no file under the data directory
//! ever holds them.
//!
//! [`Scrubber::default_rules`] are the shipped rules (`[scrub] defaults =
//! true`): `password=`/`"password":` pairs and their kin, bearer tokens,
//! AWS access key ids, Stripe keys (`sk_live_…`), GitHub tokens, JWTs,
//! credit-card numbers (only those passing the Luhn check) and e-mail
//! addresses. Operators add rules (`[[scrub.rule]]`), optionally for one
//! tenant or for streams a selector matches.
//!
//! Cost: one pass of a `RegexSet` over each line decides whether any rule
//! can apply; only lines it flags run the rules themselves, so clean lines
//! (almost all) pay one scan.
//!
//! Not here: reading the rules from the configuration file (the CLI), and
//! anything after ingest (what is stored is already scrubbed).

use crate::StreamBatch;
use regex::{Regex, RegexSet};
use skald_model::{LabelSet, Matcher, TenantId};
use std::borrow::Cow;

/// What the shipped rules put in place of a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Compiled regexes larger than this are refused.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// One rule: every match of `regex` in a line becomes `replacement`
/// (`$1`, `${name}` refer to groups).
#[derive(Debug, Clone)]
pub struct ScrubRule {
    pub name: String,
    regex: Regex,
    replacement: String,
    /// Only this tenant's pushes.
    pub tenant: Option<TenantId>,
    /// Only streams these match (all of them).
    pub matchers: Vec<Matcher>,
    /// A match is replaced only if this accepts it (the Luhn check).
    accept: Option<fn(&str) -> bool>,
}

impl ScrubRule {
    pub fn new(
        name: impl Into<String>,
        regex: &str,
        replacement: impl Into<String>,
    ) -> Result<ScrubRule, String> {
        let regex = regex::RegexBuilder::new(regex)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| format!("invalid scrub regex {regex:?}: {e}"))?;
        Ok(ScrubRule {
            name: name.into(),
            regex,
            replacement: replacement.into(),
            tenant: None,
            matchers: Vec::new(),
            accept: None,
        })
    }

    pub fn for_tenant(mut self, tenant: Option<TenantId>) -> Self {
        self.tenant = tenant;
        self
    }

    pub fn for_streams(mut self, matchers: Vec<Matcher>) -> Self {
        self.matchers = matchers;
        self
    }

    fn applies(&self, tenant: &TenantId, labels: &LabelSet) -> bool {
        self.tenant.as_ref().is_none_or(|t| t == tenant)
            && self.matchers.iter().all(|m| m.matches(labels))
    }

    fn apply<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.accept {
            None => self.regex.replace_all(text, self.replacement.as_str()),
            Some(accept) => self.regex.replace_all(text, |c: &regex::Captures<'_>| {
                let m = c.get(0).map_or("", |m| m.as_str());
                if accept(m) {
                    let mut out = String::new();
                    c.expand(&self.replacement, &mut out);
                    out
                } else {
                    m.to_string()
                }
            }),
        }
    }
}

/// The rules in force, with the set that pre-screens lines.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    rules: Vec<ScrubRule>,
    /// One pattern per rule, same order.
    set: Option<RegexSet>,
}

impl Scrubber {
    pub fn new(rules: Vec<ScrubRule>) -> Result<Scrubber, String> {
        if rules.is_empty() {
            return Ok(Scrubber::default());
        }
        let set = regex::RegexSetBuilder::new(rules.iter().map(|r| r.regex.as_str()))
            .size_limit(REGEX_SIZE_LIMIT * 4)
            .build()
            .map_err(|e| format!("scrub rules: {e}"))?;
        Ok(Scrubber {
            rules,
            set: Some(set),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[ScrubRule] {
        &self.rules
    }

    /// The shipped rules.
    pub fn default_rules() -> Vec<ScrubRule> {
        let rule = |name: &str, re: &str, with: &str| {
            ScrubRule::new(name, re, with).expect("the shipped scrub rules compile")
        };
        let mut card = rule("credit_card", r"\b(?:\d[ -]?){12,18}\d\b", REDACTED);
        card.accept = Some(luhn_valid);
        vec![
            // "password": "x" (JSON), value up to the closing quote.
            rule(
                "password_json",
                r#"(?i)("(?:password|passwd|pwd|secret|api_key|apikey|access_token|client_secret)"\s*:\s*")(?:[^"\\]|\\.)*""#,
                r#"${1}[REDACTED]""#,
            ),
            // password=x, password: x (logfmt, query strings, text).
            rule(
                "password_pair",
                r#"(?i)\b(password|passwd|pwd|secret|api_key|apikey|access_token|client_secret)(\s*[=:]\s*)(?:"[^"]*"|[^\s"&,;]+)"#,
                "${1}${2}[REDACTED]",
            ),
            rule(
                "bearer_token",
                r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*",
                "${1} [REDACTED]",
            ),
            rule(
                "aws_access_key_id",
                r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA)[A-Z0-9]{16}\b",
                REDACTED,
            ),
            rule(
                "stripe_key",
                r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}\b",
                REDACTED,
            ),
            rule(
                "github_token",
                r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
                REDACTED,
            ),
            rule(
                "jwt",
                r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+",
                REDACTED,
            ),
            card,
            rule(
                "email",
                r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
                REDACTED,
            ),
        ]
    }

    /// Scrubs every line and metadata value of a push in place.
    pub fn scrub(&self, tenant: &TenantId, streams: &mut [StreamBatch]) {
        let Some(set) = &self.set else {
            return;
        };
        for s in streams {
            let applicable: Vec<usize> = (0..self.rules.len())
                .filter(|&i| self.rules[i].applies(tenant, &s.labels))
                .collect();
            if applicable.is_empty() {
                continue;
            }
            for e in &mut s.entries {
                if let Some(clean) = self.scrub_text(set, &applicable, &e.line) {
                    e.line = clean;
                }
                for m in &mut e.metadata {
                    if let Some(clean) = self.scrub_text(set, &applicable, &m.value) {
                        m.value = clean;
                    }
                }
            }
        }
    }

    /// The scrubbed text, or None when no applicable rule changed it.
    fn scrub_text(&self, set: &RegexSet, applicable: &[usize], text: &str) -> Option<String> {
        let hits = set.matches(text);
        if !hits.matched_any() {
            return None;
        }
        let mut current: Cow<'_, str> = Cow::Borrowed(text);
        for &i in applicable {
            if !hits.matched(i) {
                continue;
            }
            if let Cow::Owned(changed) = self.rules[i].apply(&current) {
                current = Cow::Owned(changed);
            }
        }
        match current {
            Cow::Owned(s) if s != text => Some(s),
            _ => None,
        }
    }
}

/// Whether the digits of `s` (other characters ignored) pass the Luhn
/// check, as every payment card number does.
pub fn luhn_valid(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_model::{Entry, Timestamp};

    fn scrubbed(scrubber: &Scrubber, tenant: &str, labels: &str, line: &str) -> String {
        let mut streams = vec![StreamBatch {
            labels: LabelSet::parse(labels).unwrap(),
            entries: vec![Entry::new(Timestamp(1), line)],
        }];
        scrubber.scrub(&TenantId::new(tenant).unwrap(), &mut streams);
        streams[0].entries[0].line.clone()
    }

    #[test]
    fn shipped_rules_mask_each_kind_of_secret() {
        let s = Scrubber::new(Scrubber::default_rules()).unwrap();
        let cases = [
            ("login password=hunter2 ok", "login password=[REDACTED] ok"),
            (
                r#"{"user":"bob","password":"p\"w d","n":1}"#,
                r#"{"user":"bob","password":"[REDACTED]","n":1}"#,
            ),
            (
                "Authorization: Bearer abc.DEF-123_x/y+z==",
                "Authorization: Bearer [REDACTED]",
            ),
            ("key AKIAIOSFODNN7EXAMPLE used", "key [REDACTED] used"),
            (
                "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc",
                "stripe [REDACTED]",
            ),
            (
                "token ghp_16C7e42F292c6912E7710c838347Ae178B4a end",
                "token [REDACTED] end",
            ),
            (
                "jwt=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "jwt=[REDACTED]",
            ),
            ("card 4111 1111 1111 1111 paid", "card [REDACTED] paid"),
            ("card 4111-1111-1111-1111 paid", "card [REDACTED] paid"),
            ("mail bob.smith+x@example.co.uk now", "mail [REDACTED] now"),
        ];
        for (line, want) in cases {
            assert_eq!(scrubbed(&s, "t", r#"{a="1"}"#, line), want, "{line}");
        }
        // Not Luhn-valid: an order number stays.
        let plain = "order 4111 1111 1111 1112 and id 1234567890123";
        assert_eq!(scrubbed(&s, "t", r#"{a="1"}"#, plain), plain);
        let clean = "GET /index.html 200 12ms";
        assert_eq!(scrubbed(&s, "t", r#"{a="1"}"#, clean), clean);
    }

    #[test]
    fn operator_rules_apply_to_their_tenant_and_streams_only() {
        let rule = ScrubRule::new("ssn", r"\b\d{3}-\d{2}-\d{4}\b", "<ssn>")
            .unwrap()
            .for_tenant(Some(TenantId::new("hr").unwrap()))
            .for_streams(vec![
                Matcher::new("app", skald_model::MatchOp::Eq, "payroll").unwrap(),
            ]);
        let s = Scrubber::new(vec![rule]).unwrap();
        let line = "ssn 123-45-6789";
        assert_eq!(scrubbed(&s, "hr", r#"{app="payroll"}"#, line), "ssn <ssn>");
        assert_eq!(scrubbed(&s, "hr", r#"{app="web"}"#, line), line);
        assert_eq!(scrubbed(&s, "ops", r#"{app="payroll"}"#, line), line);
    }

    #[test]
    fn metadata_values_are_scrubbed_too() {
        let s = Scrubber::new(Scrubber::default_rules()).unwrap();
        let mut streams = vec![StreamBatch {
            labels: LabelSet::parse(r#"{a="1"}"#).unwrap(),
            entries: vec![Entry {
                ts: Timestamp(1),
                line: "x".into(),
                metadata: vec![skald_model::Label::new("user", "ann@example.com")],
            }],
        }];
        s.scrub(&TenantId::new("t").unwrap(), &mut streams);
        assert_eq!(streams[0].entries[0].metadata[0].value, REDACTED);
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("5500 0000 0000 0004"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid("123"));
    }
}
