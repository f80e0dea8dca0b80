//! The straightforward scanner the fast one in the parent module replaced:
//! each check is its own pass over the token, written as the rules read.
//! Kept for tests only, as the oracle the fast scanner must agree with
//! byte for byte (`mask::tests::agrees_with_the_reference`).

use super::{Masked, WILDCARD};

/// Masks `line` into `out` (cleared first), keeping at most `max_tokens`
/// tokens: when the line has more, the last kept one is a wildcard
/// standing for the rest, so a hostile line costs bounded work.
pub(super) fn mask_into(line: &str, max_tokens: usize, out: &mut Masked) {
    out.clear();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if out.len() + 1 >= max_tokens.max(1) {
            let more = bytes[i..]
                .iter()
                .position(u8::is_ascii_whitespace)
                .is_some_and(|end| bytes[i + end..].iter().any(|b| !b.is_ascii_whitespace()));
            if more {
                out.push_wildcard();
                return;
            }
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        // `key="a quoted phrase"` is one token: its value is data.
        // The token's first `=` (the same after a quoted value extends it).
        let first_eq = memchr::memchr(b'=', &bytes[start..i]);
        if let Some(eq) = first_eq.and_then(|_| quoted_value_at(&bytes[start..i])) {
            let quote = bytes[start + eq + 1];
            let value = &bytes[start + eq + 2..i];
            let closed = value.last() == Some(&quote) && !value.is_empty();
            if !closed && let Some(close) = bytes[i..].iter().position(|&b| b == quote) {
                i += close + 1;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
            }
        }
        // A quoted word is a value (`'root'`, `"eth0"`); a quoted phrase
        // is left to the tokens it is made of, which often name the event
        // (`"GET /x HTTP/1.1"`).
        let quote = bytes[start];
        if (quote == b'"' || quote == b'\'') && i - start >= 2 && bytes[i - 1] == quote {
            out.push_wildcard();
            continue;
        }
        mask_token(&line[start..i], first_eq, out);
    }
}

/// Where `="` or `='` starts in a token (the first of either).
fn quoted_value_at(token: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(eq) = token[from..].iter().position(|&b| b == b'=') {
        let eq = from + eq;
        if matches!(token.get(eq + 1), Some(b'"' | b'\'')) {
            return Some(eq);
        }
        from = eq + 1;
    }
    None
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

fn mask_token(token: &str, first_eq: Option<usize>, out: &mut Masked) {
    let bytes = token.as_bytes();
    if out.last_ends_with_wildcard() && is_unit(token) {
        // `12 ms`, `(0.0 KB)`: the unit belongs to the value before it.
        return;
    }
    let last_colon = memchr::memrchr(b':', bytes);
    if is_path_or_url(bytes, last_colon.is_some())
        || last_colon.is_some_and(|c| is_host_port(bytes, c))
        || is_date_word(token)
    {
        out.push_wildcard();
        return;
    }
    let start = out.text.len();
    // `key=value`: the key is the shape, the value is data.
    if let Some(eq) = first_eq
        && eq > 0
        && eq + 1 < bytes.len()
        && bytes[..eq]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        && bytes[..eq].iter().any(u8::is_ascii_alphabetic)
    {
        out.text.push_str(&token[..=eq]);
        out.text.push_str(WILDCARD);
        out.spans.push((start as u32, out.text.len() as u32));
        return;
    }
    let mut masked_any = false;
    let mut kept_letter = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let signed = (b == b'-' || b == b'+')
            && i + 1 < bytes.len()
            && bytes[i + 1].is_ascii_digit()
            && (i == 0 || !is_word_byte(bytes[i - 1]));
        if !is_word_byte(b) && !signed {
            out.text.push(b as char);
            i += 1;
            continue;
        }
        let word_start = i;
        if is_uuid_at(bytes, i) {
            out.text.push_str(WILDCARD);
            masked_any = true;
            i += 36;
            continue;
        }
        if signed {
            i += 1;
        }
        let mut digits = false;
        let mut all_hex = true;
        while i < bytes.len() && is_word_byte(bytes[i]) {
            digits |= bytes[i].is_ascii_digit();
            all_hex &= bytes[i].is_ascii_hexdigit();
            i += 1;
        }
        let word = &token[word_start..i];
        if digits || (all_hex && word.len() >= 12) {
            out.text.push_str(WILDCARD);
            masked_any = true;
        } else {
            out.text.push_str(word);
            kept_letter = true;
        }
    }
    if masked_any && !kept_letter {
        out.text.truncate(start);
        out.push_wildcard();
        return;
    }
    out.spans.push((start as u32, out.text.len() as u32));
}

fn is_path_or_url(bytes: &[u8], has_colon: bool) -> bool {
    let unix = bytes.len() > 1 && bytes[0] == b'/' && bytes[1] != b'/';
    let windows =
        bytes.len() > 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && bytes[2] == b'\\';
    let url =
        has_colon && memchr::memchr_iter(b':', bytes).any(|c| bytes[c + 1..].starts_with(b"//"));
    unix || windows || url
}

/// `123e4567-e89b-12d3-a456-426614174000` starts at `i` (a part may
/// have no digit, so masking words alone would keep it).
fn is_uuid_at(bytes: &[u8], i: usize) -> bool {
    let Some(candidate) = bytes.get(i..i + 36) else {
        return false;
    };
    let ends_word = bytes.get(i + 36).is_none_or(|&b| !is_word_byte(b));
    ends_word
        && candidate.iter().enumerate().all(|(k, &b)| match k {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// `name.domain:port`: the host is as variable as the port.
/// `colon` is the token's last `:`.
fn is_host_port(bytes: &[u8], colon: usize) -> bool {
    let port = &bytes[colon + 1..];
    let host = &bytes[..colon];
    (1..=5).contains(&port.len())
        && port.iter().all(u8::is_ascii_digit)
        && !host.is_empty()
        && host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// A unit of time or size written apart from its number, with the
/// punctuation that may close the value (`KB)`, `ms,`).
fn is_unit(token: &str) -> bool {
    const UNITS: [&str; 24] = [
        "ns", "us", "µs", "ms", "s", "sec", "secs", "second", "seconds", "min", "mins", "minutes",
        "h", "hours", "B", "bytes", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "kB",
    ];
    let word = token.trim_end_matches([')', ']', ',', ';', '.', ':']);
    UNITS.contains(&word)
}

/// Day and month names of textual timestamps (`Fri Jun 17 07:07:00`).
fn is_date_word(token: &str) -> bool {
    const WORDS: [&str; 19] = [
        "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Jan", "Feb", "Mar", "Apr", "May", "Jun",
        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    token.len() == 3 && WORDS.contains(&token)
}
