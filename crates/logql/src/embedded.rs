//! Checks for the small languages LogQL embeds in strings: Go templates
//! (`line_format`, `label_format`), patterns (`pattern`, `|>`) and IP
//! ranges (`ip("...")`).
//!
//! They catch at parse time what would otherwise fail on every line, and
//! report it with the string's position. The template check is light: it
//! checks that actions are closed and that control structures (`if`,
//! `range`, `with`, `define`, `block`, `else`, `end`) nest, not the
//! expressions inside actions.
//!
//! Not here: executing templates or matching patterns (`skald-pipeline`).

use std::net::IpAddr;

/// Checks a Go `text/template` lightly (see the module documentation).
pub(crate) fn check_template(text: &str) -> Result<(), String> {
    let mut stack: Vec<&'static str> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = find_action_end(after)
            .ok_or_else(|| "unclosed action: expected '}}' after '{{'".to_string())?;
        let mut action = &after[..close];
        rest = &after[close + 2..];
        action = action.strip_prefix("- ").unwrap_or(action);
        action = action.strip_suffix(" -").unwrap_or(action);
        let action = action.trim();
        if action.starts_with("/*") {
            continue;
        }
        let keyword = action
            .split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or("");
        match keyword {
            "" => return Err("empty action '{{}}': expected a value or a command".into()),
            "if" => stack.push("if"),
            "range" => stack.push("range"),
            "with" => stack.push("with"),
            "define" => stack.push("define"),
            "block" => stack.push("block"),
            "else" if !matches!(stack.last(), Some(&("if" | "range" | "with"))) => {
                return Err("unexpected {{else}}: not inside {{if}}, {{range}} or {{with}}".into());
            }
            "end" => {
                stack
                    .pop()
                    .ok_or_else(|| "unexpected {{end}}: nothing to close".to_string())?;
            }
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!("unclosed {{{{{open}}}}}: expected {{{{end}}}}"));
    }
    Ok(())
}

/// Byte offset of the `}}` closing an action, skipping string, raw string
/// and character literals inside it.
fn find_action_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            b'"' | b'\'' => {
                let quote = bytes[i];
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// One piece of a pattern: literal text or a capture `<name>`.
#[derive(Debug, PartialEq)]
enum PatternPart<'a> {
    Literal,
    Capture(&'a str),
}

fn pattern_parts(pattern: &str) -> Vec<PatternPart<'_>> {
    let mut parts = Vec::new();
    let mut rest = pattern;
    let mut literal = false;
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
                if literal {
                    parts.push(PatternPart::Literal);
                    literal = false;
                }
                parts.push(PatternPart::Capture(name));
                rest = &inner[name_len + 1..];
                continue;
            }
        }
        literal = true;
        let step = rest.chars().next().map_or(1, char::len_utf8);
        rest = &rest[step..];
    }
    if literal {
        parts.push(PatternPart::Literal);
    }
    parts
}

/// Checks a pattern: captures must be separated by literal text; for the
/// `pattern` parser (`named` true) there must be a named capture and names
/// must be unique.
pub(crate) fn check_pattern(pattern: &str, named: bool) -> Result<(), String> {
    let parts = pattern_parts(pattern);
    if parts
        .windows(2)
        .any(|w| matches!(w, [PatternPart::Capture(_), PatternPart::Capture(_)]))
    {
        return Err(format!(
            "invalid pattern {pattern:?}: consecutive captures are not allowed, \
             put literal text between them"
        ));
    }
    if !named {
        return Ok(());
    }
    let mut names: Vec<&str> = parts
        .iter()
        .filter_map(|p| match p {
            PatternPart::Capture(n) if *n != "_" => Some(*n),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        return Err(format!(
            "invalid pattern {pattern:?}: at least one named capture like <name> is required"
        ));
    }
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!(
            "invalid pattern {pattern:?}: capture <{}> appears more than once",
            w[0]
        ));
    }
    Ok(())
}

/// Checks an `ip("...")` argument: an address, a CIDR range (`10.0.0.0/8`)
/// or an address range (`10.0.0.1-10.0.0.9`) of one family.
pub(crate) fn check_ip_range(text: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "invalid ip filter {text:?}: expected an address, a CIDR range like 10.0.0.0/8 \
             or a range like 10.0.0.1-10.0.0.9"
        )
    };
    if let Some((addr, bits)) = text.split_once('/') {
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let bits: u8 = bits.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        return if bits <= max { Ok(()) } else { Err(bad()) };
    }
    if let Some((from, to)) = text.split_once('-') {
        let from: IpAddr = from.parse().map_err(|_| bad())?;
        let to: IpAddr = to.parse().map_err(|_| bad())?;
        return if from.is_ipv4() == to.is_ipv4() && from <= to {
            Ok(())
        } else {
            Err(bad())
        };
    }
    text.parse::<IpAddr>().map(|_| ()).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert!(check_template("plain").is_ok());
        assert!(check_template("{{.a}} {{ .b | upper }}").is_ok());
        assert!(check_template("{{if .a}}x{{else if .b}}y{{else}}z{{end}}").is_ok());
        assert!(check_template("{{- range $k, $v := .x -}}{{$k}}{{end}}").is_ok());
        assert!(check_template(r#"{{ "}}" }}"#).is_ok());
        assert!(check_template("{{/* note */}}").is_ok());
        assert!(check_template("{{.a").is_err());
        assert!(check_template("{{if .a}}x").is_err());
        assert!(check_template("{{end}}").is_err());
        assert!(check_template("{{else}}").is_err());
        assert!(check_template("{{}}").is_err());
    }

    #[test]
    fn patterns() {
        assert!(check_pattern("<ip> - <_> \"<method> <uri>\"", true).is_ok());
        assert!(check_pattern("<_> error <_>", false).is_ok());
        assert!(check_pattern("<_> error <_>", true).is_err());
        assert!(check_pattern("<a><b>", false).is_err());
        assert!(check_pattern("<a> <a>", true).is_err());
        assert!(check_pattern("a < b <1x>", false).is_ok());
    }

    #[test]
    fn ip_ranges() {
        for ok in [
            "10.0.0.1",
            "10.0.0.0/8",
            "::1",
            "10.0.0.1-10.0.0.9",
            "fe80::/10",
        ] {
            assert!(check_ip_range(ok).is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0",
            "10.0.0.0/33",
            "10.0.0.9-10.0.0.1",
            "::1-10.0.0.1",
            "x",
        ] {
            assert!(check_ip_range(bad).is_err(), "{bad}");
        }
    }
}
