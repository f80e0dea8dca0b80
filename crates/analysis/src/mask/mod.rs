//! Tokenising and masking a log line before it reaches the miner.
//!
//! A line is split on ASCII whitespace into tokens; each token is then
//! masked in place so that values which obviously vary never reach the
//! similarity test: any alphanumeric run holding a digit (numbers, hex,
//! UUID parts, IP octets, `12ms`, `4KiB`, `v2`), long hexadecimal words,
//! the value of `key=value`, paths and URLs, `host:port`, day and month
//! names, and quoted words. A token
//! whose kept text is only punctuation around masks (`10.0.0.1:80`,
//! `2024-01-02T03:04:05Z`, `[42]`, `1.5s`) becomes a single [`WILDCARD`].
//!
//! Not for: semantic parsing of fields (that is the pipeline's `json` and
//! `logfmt`), nor preserving the original values (the miner needs shapes).
//! The scanner is byte-oriented and allocation-free once its buffers have
//! grown; non-ASCII bytes count as letters.

#[cfg(test)]
mod reference;

/// The placeholder a masked value becomes, as Loki prints patterns.
pub const WILDCARD: &str = "<_>";

/// A masked line: token texts in one buffer, with their byte spans.
#[derive(Debug, Default, Clone)]
pub struct Masked {
    text: String,
    spans: Vec<(u32, u32)>,
}

impl Masked {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the line had no tokens (empty or only whitespace).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The `i`-th masked token.
    pub fn get(&self, i: usize) -> &str {
        let (start, end) = self.spans[i];
        &self.text[start as usize..end as usize]
    }

    /// Masked tokens in order.
    pub fn tokens(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.spans
            .iter()
            .map(|&(s, e)| &self.text[s as usize..e as usize])
    }

    fn last_ends_with_wildcard(&self) -> bool {
        self.spans
            .last()
            .is_some_and(|&(s, e)| self.text[s as usize..e as usize].ends_with(WILDCARD))
    }

    fn last_is_wildcard(&self) -> bool {
        self.spans
            .last()
            .is_some_and(|&(s, e)| &self.text[s as usize..e as usize] == WILDCARD)
    }

    fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
    }

    /// Adds a wildcard token, unless the previous token is one: a run of
    /// values (`IRQs 3 4 5 7`, `took 1.5 s`) is one variable, whatever
    /// its length.
    fn push_wildcard(&mut self) {
        if self.last_is_wildcard() {
            return;
        }
        let start = self.text.len() as u32;
        self.text.push_str(WILDCARD);
        self.spans.push((start, self.text.len() as u32));
    }
}

/// Byte classes of the scanner, one table lookup per byte.
const SPACE: u8 = 1;
/// Alphanumeric or non-ASCII: part of a word.
const WORD: u8 = 2;
const DIGIT: u8 = 4;
const HEX: u8 = 8;
/// Allowed in the key of `key=value`: alphanumeric, `_`, `.`, `-`.
const KEY: u8 = 16;
/// Allowed in the host of `host:port`: alphanumeric, `.`, `-`.
const HOST: u8 = 32;
const ALPHA: u8 = 64;
/// `=` and `:`, which the token scan notes on its way.
const MARK: u8 = 128;

static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut class = 0;
        if c.is_ascii_whitespace() {
            class |= SPACE;
        }
        if c.is_ascii_alphanumeric() || c >= 0x80 {
            class |= WORD;
        }
        if c.is_ascii_digit() {
            class |= DIGIT;
        }
        if c.is_ascii_hexdigit() {
            class |= HEX;
        }
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-' {
            class |= KEY;
        }
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'-' {
            class |= HOST;
        }
        if c.is_ascii_alphabetic() {
            class |= ALPHA;
        }
        if c == b'=' || c == b':' {
            class |= MARK;
        }
        table[b] = class;
        b += 1;
    }
    table
};

fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

/// Masks `line` into `out` (cleared first), keeping at most `max_tokens`
/// tokens: when the line has more, the last kept one is a wildcard
/// standing for the rest, so a hostile line costs bounded work.
pub fn mask_into(line: &str, max_tokens: usize, out: &mut Masked) {
    out.clear();
    let bytes = line.as_bytes();
    let max_tokens = max_tokens.max(1);
    let mut i = 0;
    while i < bytes.len() {
        if class(bytes[i]) & SPACE != 0 {
            i += 1;
            continue;
        }
        if out.len() + 1 >= max_tokens && more_tokens_after(bytes, i) {
            out.push_wildcard();
            return;
        }
        i = mask_token(line, i, false, out);
    }
}

/// Whether another token follows the one starting at `i`.
fn more_tokens_after(bytes: &[u8], i: usize) -> bool {
    let rest = &bytes[i..];
    let Some(end) = rest.iter().position(|&b| class(b) & SPACE != 0) else {
        return false;
    };
    rest[end..].iter().any(|&b| class(b) & SPACE == 0)
}

/// Masks the token of `text` starting at `start` into `out` and returns
/// where it ends: at the next whitespace, or with `whole`, at the end of
/// `text` (a `key="quoted phrase"` token, spaces included).
///
/// One pass does everything: it finds the token's end, notes its `=` and
/// `:`, and masks its words, copying the text between masked words in
/// runs. The rules that look at the token as a whole (paths, URLs,
/// `host:port`, `key=value`, units, quoted words) are applied once its
/// end is known, replacing what the pass wrote. One pass per rule (the
/// straightforward scanner, kept in `reference.rs` for the tests) cost
/// about 1.5 times the CPU per line (`docs/analysis.md`).
fn mask_token(text: &str, start: usize, whole: bool, out: &mut Masked) -> usize {
    let bytes = text.as_bytes();
    let out_start = out.text.len();
    let after_value = out.last_ends_with_wildcard();
    // Positions relative to the token.
    let mut first_eq: Option<usize> = None;
    let mut eq_quote: Option<usize> = None;
    let mut last_colon: Option<usize> = None;
    let mut url = false;
    // Words holding a digit, long hexadecimal words and UUIDs become
    // wildcards; the text between them is copied from `copied` on.
    let mut copied = start;
    let mut masked_any = false;
    let mut kept_letter = false;
    let mut i = start;
    while i < bytes.len() {
        let b = bytes[i];
        let c = class(b);
        let word_start = i;
        if c & WORD == 0 {
            if c & SPACE != 0 && !whole {
                break;
            }
            if c & MARK != 0 {
                if b == b'=' {
                    first_eq.get_or_insert(i - start);
                    if eq_quote.is_none() && matches!(bytes.get(i + 1), Some(b'"' | b'\'')) {
                        eq_quote = Some(i - start);
                    }
                } else {
                    last_colon = Some(i - start);
                    url |= bytes[i + 1..].starts_with(b"//");
                }
            }
            let signed = (b == b'-' || b == b'+')
                && bytes.get(i + 1).is_some_and(|&n| class(n) & DIGIT != 0)
                && (i == start || class(bytes[i - 1]) & WORD == 0);
            i += 1;
            if !signed {
                continue;
            }
        } else if is_uuid_at(bytes, i) {
            out.text.push_str(&text[copied..i]);
            out.text.push_str(WILDCARD);
            masked_any = true;
            i += 36;
            copied = i;
            continue;
        }
        let (mut any, mut all) = (0u8, u8::MAX);
        while i < bytes.len() {
            let c = class(bytes[i]);
            if c & WORD == 0 {
                break;
            }
            any |= c;
            all &= c;
            i += 1;
        }
        if any & DIGIT != 0 || (all & HEX != 0 && i - word_start >= 12) {
            out.text.push_str(&text[copied..word_start]);
            out.text.push_str(WILDCARD);
            masked_any = true;
            copied = i;
        } else {
            kept_letter = true;
        }
    }
    let end = i;
    let token = &text[start..end];
    let tb = token.as_bytes();
    // From here on, a rule about the whole token may replace the pass's
    // output.
    let replace = |out: &mut Masked| out.text.truncate(out_start);
    // `key="a quoted phrase"` is one token: its value is data.
    if let Some(eq) = eq_quote
        && !whole
    {
        let quote = tb[eq + 1];
        let value = &tb[eq + 2..];
        let closed = value.last() == Some(&quote) && !value.is_empty();
        if !closed && let Some(close) = memchr::memchr(quote, &bytes[end..]) {
            let mut stop = end + close + 1;
            while stop < bytes.len() && class(bytes[stop]) & SPACE == 0 {
                stop += 1;
            }
            replace(out);
            mask_token(&text[start..stop], 0, true, out);
            return stop;
        }
    }
    // A quoted word is a value (`'root'`, `"eth0"`); a quoted phrase
    // is left to the tokens it is made of, which often name the event
    // (`"GET /x HTTP/1.1"`).
    let quote = tb[0];
    if (quote == b'"' || quote == b'\'') && tb.len() >= 2 && tb[tb.len() - 1] == quote {
        replace(out);
        out.push_wildcard();
        return end;
    }
    if after_value && is_unit(token) {
        // `12 ms`, `(0.0 KB)`: the unit belongs to the value before it.
        replace(out);
        return end;
    }
    if is_path(tb) || url || last_colon.is_some_and(|c| is_host_port(tb, c)) || is_date_word(tb) {
        replace(out);
        out.push_wildcard();
        return end;
    }
    // `key=value`: the key is the shape, the value is data.
    if let Some(eq) = first_eq
        && eq > 0
        && eq + 1 < tb.len()
        && tb[..eq].iter().all(|&b| class(b) & KEY != 0)
        && tb[..eq].iter().any(|&b| class(b) & ALPHA != 0)
    {
        replace(out);
        out.text.push_str(&token[..=eq]);
        out.text.push_str(WILDCARD);
        out.spans.push((out_start as u32, out.text.len() as u32));
        return end;
    }
    if masked_any && !kept_letter {
        replace(out);
        out.push_wildcard();
        return end;
    }
    out.text.push_str(&text[copied..end]);
    out.spans.push((out_start as u32, out.text.len() as u32));
    end
}

/// `/var/log/x` or `C:\x`; URLs are noticed by the token scan.
fn is_path(bytes: &[u8]) -> bool {
    let unix = bytes.len() > 1 && bytes[0] == b'/' && bytes[1] != b'/';
    let windows =
        bytes.len() > 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && bytes[2] == b'\\';
    unix || windows
}

/// `123e4567-e89b-12d3-a456-426614174000` starts at `i` (a part may
/// have no digit, so masking words alone would keep it).
fn is_uuid_at(bytes: &[u8], i: usize) -> bool {
    let Some(candidate) = bytes.get(i..i + 36) else {
        return false;
    };
    // The first dash rules out almost every word at once.
    if candidate[8] != b'-' {
        return false;
    }
    let ends_word = bytes.get(i + 36).is_none_or(|&b| class(b) & WORD == 0);
    ends_word
        && candidate.iter().enumerate().all(|(k, &b)| match k {
            8 | 13 | 18 | 23 => b == b'-',
            _ => class(b) & HEX != 0,
        })
}

/// `name.domain:port`: the host is as variable as the port.
/// `colon` is the token's last `:`.
fn is_host_port(bytes: &[u8], colon: usize) -> bool {
    let port = &bytes[colon + 1..];
    let host = &bytes[..colon];
    (1..=5).contains(&port.len())
        && port.iter().all(|&b| class(b) & DIGIT != 0)
        && !host.is_empty()
        && host.iter().all(|&b| class(b) & HOST != 0)
}

/// A unit of time or size written apart from its number, with the
/// punctuation that may close the value (`KB)`, `ms,`).
fn is_unit(token: &str) -> bool {
    let word = token.trim_end_matches([')', ']', ',', ';', '.', ':']);
    matches!(
        word,
        "ns" | "us"
            | "µs"
            | "ms"
            | "s"
            | "sec"
            | "secs"
            | "second"
            | "seconds"
            | "min"
            | "mins"
            | "minutes"
            | "h"
            | "hours"
            | "B"
            | "bytes"
            | "KB"
            | "MB"
            | "GB"
            | "TB"
            | "KiB"
            | "MiB"
            | "GiB"
            | "kB"
    )
}

/// Day and month names of textual timestamps (`Fri Jun 17 07:07:00`).
fn is_date_word(token: &[u8]) -> bool {
    matches!(
        token,
        b"Mon"
            | b"Tue"
            | b"Wed"
            | b"Thu"
            | b"Fri"
            | b"Sat"
            | b"Sun"
            | b"Jan"
            | b"Feb"
            | b"Mar"
            | b"Apr"
            | b"May"
            | b"Jun"
            | b"Jul"
            | b"Aug"
            | b"Sep"
            | b"Oct"
            | b"Nov"
            | b"Dec"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(line: &str) -> Vec<String> {
        let mut out = Masked::default();
        mask_into(line, 64, &mut out);
        out.tokens().map(str::to_owned).collect()
    }

    #[test]
    fn numbers_ips_and_times_become_one_wildcard() {
        assert_eq!(
            masked("GET 10.0.0.1:8080 took 12ms at 2024-01-02T03:04:05.123Z"),
            ["GET", "<_>", "took", "<_>", "at", "<_>"]
        );
    }

    #[test]
    fn words_around_numbers_keep_their_shape() {
        assert_eq!(masked("blk_-123 blk_77"), ["blk_<_>", "blk_<_>"]);
        assert_eq!(masked("Switch<0>(0x0)::cb"), ["Switch<<_>>(<_>)::cb"]);
    }

    #[test]
    fn uuids_hex_paths_urls_and_values() {
        assert_eq!(
            masked("id 123e4567-e89b-12d3-a456-426614174000 of deadbeefcafe"),
            ["id", "<_>", "of", "<_>"]
        );
        assert_eq!(
            masked("open /var/log/x.log from https://a.b/c user=alice"),
            ["open", "<_>", "from", "<_>", "user=<_>"]
        );
    }

    #[test]
    fn quoted_words_are_values() {
        assert_eq!(
            masked(r#"said "GET /x HTTP/1.1" then 'x'"#),
            ["said", "\"GET", "<_>", "HTTP/<_>.<_>\"", "then", "<_>"]
        );
        assert_eq!(masked(r#"said "hello"#), ["said", "\"hello"]);
        assert_eq!(
            masked(r#"msg="slow query" took=1s x="y""#),
            ["msg=<_>", "took=<_>", "x=<_>"]
        );
    }

    #[test]
    fn long_lines_are_cut_with_a_wildcard() {
        let mut out = Masked::default();
        mask_into("a b c d e", 3, &mut out);
        assert_eq!(out.tokens().collect::<Vec<_>>(), ["a", "b", "<_>"]);
        mask_into("a b c", 3, &mut out);
        assert_eq!(out.tokens().collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn runs_of_values_and_their_units_are_one_variable() {
        assert_eq!(
            masked("IRQs 3 4 5 7 sent 10 bytes (0.1 KB) in 5 ms"),
            ["IRQs", "<_>", "sent", "<_>", "in", "<_>"]
        );
        assert_eq!(masked("5 bytes"), ["<_>"]);
        assert_eq!(masked("no bytes"), ["no", "bytes"]);
        assert_eq!(masked("took=12 ms"), ["took=<_>"]);
    }

    #[test]
    fn words_without_digits_are_kept() {
        assert_eq!(
            masked("Connection refused by peer"),
            ["Connection", "refused", "by", "peer"]
        );
    }

    fn reference(line: &str, max_tokens: usize) -> Vec<String> {
        let mut out = Masked::default();
        reference::mask_into(line, max_tokens, &mut out);
        out.tokens().map(str::to_owned).collect()
    }

    fn fast(line: &str, max_tokens: usize) -> Vec<String> {
        let mut out = Masked::default();
        mask_into(line, max_tokens, &mut out);
        out.tokens().map(str::to_owned).collect()
    }

    #[test]
    fn agrees_with_the_reference_on_the_corpus() {
        let corpus = include_str!("../../tests/corpus/labelled.tsv");
        for row in corpus.lines() {
            let line = row.split_once('\t').map_or(row, |(_, line)| line);
            for max_tokens in [64, 5, 1] {
                assert_eq!(
                    fast(line, max_tokens),
                    reference(line, max_tokens),
                    "{line}"
                );
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// Lines drawn from the bytes every rule looks at: separators,
        /// signs, quotes, `=`, `:`, `/`, digits, hex letters, units, date
        /// words, UUID-shaped runs and non-ASCII letters.
        #[test]
        fn agrees_with_the_reference(
            parts in proptest::collection::vec(proptest::prop_oneof![
                3 => proptest::strategy::Just(" ".to_owned()),
                1 => proptest::string::string_regex("[ \t=:/\\\"'.,;()\\[\\]<>_+-]{1,3}").unwrap(),
                1 => proptest::string::string_regex("[0-9a-fA-F]{1,14}").unwrap(),
                1 => proptest::string::string_regex("[a-zA-Zµé]{1,6}").unwrap(),
                1 => proptest::string::string_regex("(ns|us|µs|ms|s|sec|secs|second|seconds|min|mins|minutes|h|hours|B|bytes|KB|MB|GB|TB|KiB|MiB|GiB|kB|Mon|Sun|Jan|Dec|http://|//|C:\\\\|/var)").unwrap(),
                1 => proptest::string::string_regex("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").unwrap(),
            ], 0..32),
            max_tokens in 1usize..12,
        ) {
            let line: String = parts.concat();
            proptest::prop_assert_eq!(fast(&line, max_tokens), reference(&line, max_tokens), "{:?}", line);
            proptest::prop_assert_eq!(fast(&line, 64), reference(&line, 64), "{:?}", line);
        }
    }
}
