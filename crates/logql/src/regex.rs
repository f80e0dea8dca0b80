//! Translation of LogQL's regular expressions (Go's RE2 dialect) into the
//! syntax of Rust's `regex` crate, with the same meaning.
//!
//! The two dialects agree on most syntax but differ in a few places that
//! would silently change results or refuse valid queries:
//!
//! - Go's `\d \w \s` and `\b \B` are ASCII-only; Rust's are Unicode. They
//!   become explicit ASCII classes (`[0-9]`, `[0-9A-Z_a-z]`, `[\t\n\f\r ]`,
//!   and their complements written as ranges) and `(?-u:\b)`, which is
//!   still valid on UTF-8 input.
//! - Go quotes with `\Q...\E`; Rust has no such syntax. The quoted text
//!   becomes escaped literals.
//! - Go reads a `{` that does not start a repetition (`a{`, `a{,3}`) as a
//!   literal; Rust refuses it. It becomes `\{`.
//! - Inside a bracket class Go reads `[` (outside `[:name:]`), `&&`, `--`
//!   and `~~` as literal characters; Rust reads nested classes and set
//!   operations. They are escaped.
//! - Go has no `x` (verbose) or `R` (CRLF) flags; they are refused.
//!
//! The lexical fixes happen in one pass over the text (they change how the
//! text tokenises); everything else is done on the `regex-syntax` AST, which
//! is then printed. The output is a fixed point: translating it again gives
//! it back, so a printed query parses to the same AST. The output is also
//! valid RE2 except for `(?-u:\b)`, which this translator accepts as input.
//!
//! Not here: compiling the regexes for matching (the parser only compiles
//! them once, size-limited, to reject what would fail later), anchoring
//! (label matchers are anchored by `skald_model::Matcher`).

use crate::error::{ErrorKind, ParseError};
use regex_syntax::ast::{
    self, Ast, ClassBracketed, ClassPerl, ClassPerlKind, ClassSet, ClassSetItem, ClassSetRange,
    ClassSetUnion, Flag, Flags, FlagsItem, FlagsItemKind, Group, GroupKind, HexLiteralKind,
    Literal, LiteralKind, Span, SpecialLiteralKind,
};

/// Compiled regexes larger than this are refused, as in
/// `skald_model::Matcher`: a query must not make us build a huge automaton.
pub const REGEX_SIZE_LIMIT: usize = skald_model::Matcher::REGEX_SIZE_LIMIT;

/// Deepest nesting of groups, classes and repetitions accepted in a regex.
/// It bounds the recursion of the translation below.
const REGEX_NEST_LIMIT: u32 = 100;

/// Translates a Go RE2 regex into Rust `regex` syntax with the same meaning
/// (see the module documentation), and checks that it compiles within
/// [`REGEX_SIZE_LIMIT`].
///
/// Errors are positioned at the start of `go` (line 1, col 1); the parser
/// moves them to the string literal the regex came from.
pub fn translate_regex(go: &str) -> Result<String, ParseError> {
    let err = |message: String| ParseError::at(go, 0, ErrorKind::Regex, message);
    let lexed = normalize_lexically(go).map_err(|m| err(format!("invalid regex {go:?}: {m}")))?;
    let mut parsed = ast::parse::ParserBuilder::new()
        .octal(true)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .parse(&lexed)
        .map_err(|e| err(format!("invalid regex {go:?}: {}", e.kind())))?;
    rewrite(&mut parsed).map_err(|m| err(format!("invalid regex {go:?}: {m}")))?;
    let mut out = String::new();
    ast::print::Printer::new()
        .print(&parsed, &mut out)
        .map_err(|e| err(format!("cannot print regex {go:?}: {e}")))?;
    regex::RegexBuilder::new(&out)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => err(format!(
                "regex {go:?} is too large: it compiles to more than {limit} bytes"
            )),
            other => err(format!(
                "invalid regex {go:?}: {}",
                other.to_string().lines().last().unwrap_or("").trim()
            )),
        })?;
    Ok(out)
}

/// The lexical part of the translation (see the module documentation).
fn normalize_lexically(go: &str) -> Result<String, String> {
    let chars: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    // True right after `[` or `[^`, where `]` is a literal.
    let mut class_start = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&next) = chars.get(i + 1) else {
                out.push(c);
                break;
            };
            if next == 'Q' && !in_class {
                let mut j = i + 2;
                let mut literal = String::new();
                while j < chars.len() && !(chars[j] == '\\' && chars.get(j + 1) == Some(&'E')) {
                    literal.push(chars[j]);
                    j += 1;
                }
                out.push_str(&regex_syntax::escape(&literal));
                i = if j < chars.len() { j + 2 } else { j };
                continue;
            }
            // Go reads `\1`..`\7` alone as a backreference, which it refuses;
            // followed by another octal digit they start an octal escape.
            let octal_follows = chars.get(i + 2).is_some_and(|d| ('0'..='7').contains(d));
            if ('1'..='9').contains(&next) && !(next <= '7' && octal_follows) {
                return Err(format!("backreference \\{next} is not supported"));
            }
            out.push(c);
            out.push(next);
            i += 2;
            class_start = false;
            // `\x{41}`, `\p{Greek}`: the braces belong to the escape.
            if matches!(next, 'x' | 'p' | 'P') && chars.get(i) == Some(&'{') {
                while let Some(&b) = chars.get(i) {
                    out.push(b);
                    i += 1;
                    if b == '}' {
                        break;
                    }
                }
            }
            continue;
        }
        if in_class {
            let was_start = class_start;
            class_start = false;
            match c {
                ']' if !was_start => {
                    in_class = false;
                    out.push(c);
                }
                '[' => match posix_class_len(&chars[i..]) {
                    Some(n) => {
                        out.extend(&chars[i..i + n]);
                        i += n;
                        continue;
                    }
                    None => out.push_str("\\["),
                },
                '&' | '-' | '~' if chars.get(i + 1) == Some(&c) => {
                    out.push(c);
                    out.push('\\');
                    out.push(c);
                    i += 2;
                    continue;
                }
                _ => out.push(c),
            }
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
            }
            '{' if !is_go_repeat(&chars[i..]) => out.push_str("\\{"),
            '(' if capture_name_start(&chars[i..]).is_some() => {
                // A group name is copied whole: its characters are not
                // regex syntax (a `[` there opens no class).
                let open = capture_name_start(&chars[i..]).unwrap_or(0);
                let name_end = chars[i + open..].iter().position(|&c| c == '>');
                let Some(len) = name_end else {
                    return Err("invalid named capture: no '>' after the name".into());
                };
                let name: String = chars[i + open..i + open + len].iter().collect();
                if name.is_empty() || !name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()) {
                    return Err(format!(
                        "invalid named capture {name:?}: a name is letters, digits and '_'"
                    ));
                }
                out.extend(&chars[i..i + open + len + 1]);
                i += open + len + 1;
                continue;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

/// The length of `(?P<` or `(?<` at the start of `s` (a named group), if
/// it starts with one.
fn capture_name_start(s: &[char]) -> Option<usize> {
    let starts = |p: &str| p.chars().enumerate().all(|(k, c)| s.get(k) == Some(&c));
    if starts("(?P<") {
        Some(4)
    } else if starts("(?<") && !starts("(?<=") && !starts("(?<!") {
        Some(3)
    } else {
        None
    }
}

/// Length of a `[:name:]` or `[:^name:]` class at the start of `s`.
fn posix_class_len(s: &[char]) -> Option<usize> {
    if s.get(1) != Some(&':') {
        return None;
    }
    let mut j = 2;
    if s.get(j) == Some(&'^') {
        j += 1;
    }
    let name_start = j;
    while s.get(j).is_some_and(|c| c.is_ascii_alphabetic()) {
        j += 1;
    }
    if j > name_start && s.get(j) == Some(&':') && s.get(j + 1) == Some(&']') {
        return Some(j + 2);
    }
    None
}

/// Whether `s` starts with a repetition Go recognises: `{n}`, `{n,}` or
/// `{n,m}`.
fn is_go_repeat(s: &[char]) -> bool {
    let mut j = 1;
    let digits = |j: &mut usize| {
        let start = *j;
        while s.get(*j).is_some_and(char::is_ascii_digit) {
            *j += 1;
        }
        *j > start
    };
    if !digits(&mut j) {
        return false;
    }
    if s.get(j) == Some(&',') {
        j += 1;
        digits(&mut j);
    }
    s.get(j) == Some(&'}')
}

/// The AST part of the translation. Recursion depth is bounded by the
/// parser's nest limit.
fn rewrite(node: &mut Ast) -> Result<(), String> {
    match node {
        Ast::ClassPerl(p) => {
            let span = p.span;
            let set = ClassSetItem::Union(ClassSetUnion {
                span,
                items: ascii_items(p.kind.clone(), span),
            });
            *node = Ast::class_bracketed(ClassBracketed {
                span,
                negated: p.negated,
                kind: ClassSet::Item(set),
            });
        }
        Ast::ClassBracketed(c) => rewrite_class_set(&mut c.kind)?,
        Ast::Assertion(a) => {
            if matches!(
                a.kind,
                ast::AssertionKind::WordBoundary | ast::AssertionKind::NotWordBoundary
            ) {
                let span = a.span;
                let inner = std::mem::replace(node, Ast::empty(span));
                *node = Ast::group(Group {
                    span,
                    kind: GroupKind::NonCapturing(not_unicode(span)),
                    ast: Box::new(inner),
                });
            }
        }
        Ast::Flags(f) => check_flags(&f.flags)?,
        Ast::Group(g) => {
            if let GroupKind::NonCapturing(flags) = &g.kind {
                check_flags(flags)?;
                // Our own output for `\b`: already translated.
                if is_not_unicode(flags) && matches!(&*g.ast, Ast::Assertion(_)) {
                    return Ok(());
                }
            }
            rewrite(&mut g.ast)?;
        }
        Ast::Repetition(r) => rewrite(&mut r.ast)?,
        Ast::Alternation(a) => {
            for child in &mut a.asts {
                rewrite(child)?;
            }
        }
        Ast::Concat(c) => {
            for child in &mut c.asts {
                rewrite(child)?;
            }
        }
        Ast::Literal(l) => octal_to_hex(l),
        Ast::Empty(_) | Ast::Dot(_) | Ast::ClassUnicode(_) => {}
    }
    Ok(())
}

fn rewrite_class_set(set: &mut ClassSet) -> Result<(), String> {
    match set {
        ClassSet::Item(item) => rewrite_class_item(item),
        ClassSet::BinaryOp(op) => {
            rewrite_class_set(&mut op.lhs)?;
            rewrite_class_set(&mut op.rhs)
        }
    }
}

fn rewrite_class_item(item: &mut ClassSetItem) -> Result<(), String> {
    match item {
        ClassSetItem::Perl(p) => {
            *item = ClassSetItem::Union(ClassSetUnion {
                span: p.span,
                items: if p.negated {
                    ascii_complement_items(p)
                } else {
                    ascii_items(p.kind.clone(), p.span)
                },
            });
        }
        ClassSetItem::Literal(l) => octal_to_hex(l),
        ClassSetItem::Range(r) => {
            octal_to_hex(&mut r.start);
            octal_to_hex(&mut r.end);
        }
        ClassSetItem::Bracketed(b) => rewrite_class_set(&mut b.kind)?,
        ClassSetItem::Union(u) => {
            for i in &mut u.items {
                rewrite_class_item(i)?;
            }
        }
        ClassSetItem::Empty(_) | ClassSetItem::Ascii(_) | ClassSetItem::Unicode(_) => {}
    }
    Ok(())
}

/// Go (and we) print octal escapes poorly: `\1` would read as a
/// backreference in Go. Hex says the same thing unambiguously.
fn octal_to_hex(l: &mut Literal) {
    if l.kind == LiteralKind::Octal {
        l.kind = LiteralKind::HexBrace(HexLiteralKind::X);
    }
}

fn check_flags(flags: &Flags) -> Result<(), String> {
    for item in &flags.items {
        match item.kind {
            FlagsItemKind::Flag(Flag::IgnoreWhitespace) => {
                return Err("flag 'x' is not supported in LogQL regexes".into());
            }
            FlagsItemKind::Flag(Flag::CRLF) => {
                return Err("flag 'R' is not supported in LogQL regexes".into());
            }
            _ => {}
        }
    }
    Ok(())
}

/// The flags `-u`.
fn not_unicode(span: Span) -> Flags {
    Flags {
        span,
        items: vec![
            FlagsItem {
                span,
                kind: FlagsItemKind::Negation,
            },
            FlagsItem {
                span,
                kind: FlagsItemKind::Flag(Flag::Unicode),
            },
        ],
    }
}

fn is_not_unicode(flags: &Flags) -> bool {
    let kinds: Vec<&FlagsItemKind> = flags.items.iter().map(|i| &i.kind).collect();
    matches!(
        kinds.as_slice(),
        [FlagsItemKind::Negation, FlagsItemKind::Flag(Flag::Unicode)]
    )
}

fn lit(span: Span, c: char) -> Literal {
    let kind = match c {
        '\t' => LiteralKind::Special(SpecialLiteralKind::Tab),
        '\n' => LiteralKind::Special(SpecialLiteralKind::LineFeed),
        '\u{c}' => LiteralKind::Special(SpecialLiteralKind::FormFeed),
        '\r' => LiteralKind::Special(SpecialLiteralKind::CarriageReturn),
        c if c.is_ascii_alphanumeric() || c == '_' || c == ' ' => LiteralKind::Verbatim,
        c if (c as u32) < 0x100 => LiteralKind::HexFixed(HexLiteralKind::X),
        _ => LiteralKind::HexBrace(HexLiteralKind::X),
    };
    Literal { span, kind, c }
}

fn range_or_single(span: Span, start: char, end: char) -> ClassSetItem {
    if start == end {
        return ClassSetItem::Literal(lit(span, start));
    }
    ClassSetItem::Range(ClassSetRange {
        span,
        start: lit(span, start),
        end: lit(span, end),
    })
}

/// The ASCII ranges Go gives a Perl class.
fn ascii_ranges(kind: &ClassPerlKind) -> &'static [(char, char)] {
    match kind {
        ClassPerlKind::Digit => &[('0', '9')],
        ClassPerlKind::Word => &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')],
        ClassPerlKind::Space => &[
            ('\t', '\t'),
            ('\n', '\n'),
            ('\u{c}', '\u{c}'),
            ('\r', '\r'),
            (' ', ' '),
        ],
    }
}

fn ascii_items(kind: ClassPerlKind, span: Span) -> Vec<ClassSetItem> {
    ascii_ranges(&kind)
        .iter()
        .map(|&(s, e)| range_or_single(span, s, e))
        .collect()
}

/// A negated Perl class inside a bracket class (`[\D_]`): Go cannot nest
/// classes, so the complement is written out as ranges.
fn ascii_complement_items(p: &ClassPerl) -> Vec<ClassSetItem> {
    let mut items = Vec::new();
    let mut next = 0u32;
    for &(s, e) in ascii_ranges(&p.kind) {
        if (s as u32) > next {
            items.push(range_or_single(
                p.span,
                char::from_u32(next).unwrap_or('\0'),
                char::from_u32(s as u32 - 1).unwrap_or('\0'),
            ));
        }
        next = e as u32 + 1;
    }
    items.push(range_or_single(
        p.span,
        char::from_u32(next).unwrap_or('\0'),
        char::MAX,
    ));
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(go: &str) -> String {
        translate_regex(go).unwrap_or_else(|e| panic!("{go:?}: {e}"))
    }

    #[test]
    fn perl_classes_become_ascii() {
        assert_eq!(t(r"\d+"), "[0-9]+");
        assert_eq!(t(r"\W"), "[^0-9A-Z_a-z]");
        assert_eq!(t(r"\s"), r"[\t\n\f\r ]");
        assert_eq!(t(r"[\d_]"), "[0-9_]");
        assert_eq!(t(r"[\D]"), r"[\x00-\x2F\x3A-\x{10FFFF}]");
        assert_eq!(t(r"\bfoo\B"), r"(?-u:\b)foo(?-u:\B)");
        let re = regex::Regex::new(&t(r"\d")).unwrap();
        assert!(re.is_match("7") && !re.is_match("٣"));
        let re = regex::Regex::new(&t(r"\bé")).unwrap();
        assert!(!re.is_match("é"), "é is not a word character for Go's \\b");
    }

    #[test]
    fn capture_names_are_go_names_copied_whole() {
        assert_eq!(t(r"(?P<a_1>\w+)"), "(?P<a_1>[0-9A-Z_a-z]+)");
        assert_eq!(t(r"(?<name>x)"), "(?<name>x)");
        // Found by fuzzing: a `[` in a name opened a class, and the
        // translation changed each time it was printed and read again.
        for bad in [r"(?P<a[b>\w+)", "(?P<>x)", "(?P<a-b>x)", "(?P<ab"] {
            let e = translate_regex(bad).unwrap_err().to_string();
            assert!(e.contains("invalid named capture"), "{bad}: {e}");
        }
    }

    #[test]
    fn go_lexical_rules() {
        assert_eq!(t(r"\Qa.b*\E+"), r"a\.b\*+");
        assert_eq!(t(r"\Qa.b"), r"a\.b");
        assert_eq!(t("a{,3}"), r"a\{,3}");
        assert_eq!(t("a{"), r"a\{");
        assert_eq!(t("a{2,3}b{2}c{1,}"), "a{2,3}b{2}c{1,}");
        assert_eq!(t("[a[b]"), r"[a\[b]");
        assert_eq!(t("[[:alpha:]x]"), "[[:alpha:]x]");
        assert_eq!(t("[a&&b]"), r"[a&\&b]");
        assert_eq!(t("[]a]"), "[]a]");
        assert_eq!(t(r"\101"), r"\x{41}");
        assert_eq!(t(r"\0"), r"\x{0}");
        assert_eq!(
            t(r"\x{41}\p{Greek}[\x{42}\P{L}]"),
            r"\x{41}\p{Greek}[\x{42}\P{L}]"
        );
    }

    #[test]
    fn refuses_what_go_refuses_or_too_big() {
        assert!(translate_regex("(?x) a").is_err());
        assert!(translate_regex("(").is_err());
        assert!(translate_regex(r"\1").is_err());
        let e = translate_regex(r"\w{1000}{1000}").unwrap_err();
        assert!(e.message.contains("too large"), "{}", e.message);
    }

    #[test]
    fn output_is_a_fixed_point() {
        for go in [
            r"\d\D\w\W\s\S\b\B",
            r"[\d\D\w\W\s\S]",
            r"\Q[x]\E{,2}[a[&&]",
            r"(?i)foo|(?s:.*)bar$",
            r"(?P<name>\w+)",
        ] {
            let once = t(go);
            assert_eq!(t(&once), once, "from {go:?}");
        }
    }
}
