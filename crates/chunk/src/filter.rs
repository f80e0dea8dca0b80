//! Trigram filters: a small per-block bloom filter that answers "may this
//! block contain this substring?" without decompressing the block.
//!
//! LogQL's `|= "needle"` is a substring match, so a filter over whole
//! tokens would be wrong (`eedl` must match a line containing `needle`).
//! Every substring of at least three bytes contains the trigrams (windows of
//! three consecutive bytes) of itself, so a block whose filter lacks any
//! trigram of the needle cannot contain it. Trigrams are taken per line
//! (none spans two lines) after ASCII lowercasing, so one filter serves
//! both case-sensitive and case-insensitive searches.
//!
//! The filter never says "no" for a block that contains the needle; it may
//! say "maybe" for one that does not (a false positive, which only costs a
//! decompression). Needles shorter than three bytes always get "maybe".
//!
//! Not here: deciding which literals a query needs (the pipeline extracts
//! them), or exact matching (the query re-checks every line).
//!
//! # Filter format (version 1)
//!
//! ```text
//! offset  size  field
//! 0       1     kind: 1 = trigram bloom filter, hashing as below
//! 1       1     k, the number of probes per trigram, 1..=16
//! 2       4     m, the number of bits, u32 little-endian: a multiple of 64,
//!               at least 64
//! 6       m/8   the bits: bit i is (byte[i / 8] >> (i % 8)) & 1
//! ```
//!
//! A trigram of bytes `a b c` (each ASCII-lowercased) is the integer
//! `t = a << 16 | b << 8 | c`. Its hash `h` is the SplitMix64 finalizer of
//! `t + 0x9E3779B97F4A7C15`:
//!
//! ```text
//! z = t + 0x9E3779B97F4A7C15
//! z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
//! z = (z ^ (z >> 27)) * 0x94D049BB133111EB
//! h = z ^ (z >> 31)                           (all arithmetic mod 2^64)
//! ```
//!
//! With `h1 = h mod 2^32` and `h2 = h >> 32`, probe `i` (0 ≤ i < k) sets or
//! tests bit `((h1 + i * h2) mod 2^32) * m >> 32`.
//!
//! The writer sizes `m` from the number of distinct trigrams in the block
//! times [`FilterParams::bits_per_trigram`]; readers need only the stored
//! `k` and `m`.
//!
//! # Choosing the parameters
//!
//! Measured with `cargo run --release -p skald-chunk --example measure`
//! (zstd level 3 blocks; see [`crate::block`] for the two corpora),
//! probing every block with 200 needles absent from it: random 32-digit
//! trace ids, 8 hex digits, IP addresses, 7-digit numbers and words such as
//! `deadlock detected` or `kubelet`. "size" is filter bytes over compressed
//! block bytes; "fp" the share of absent needles let through.
//!
//! ```text
//!                          generated corpus              real build logs
//! block  bits  k   size  fp all  trace  number  word    size  fp all  trace  word
//! 1 MiB    2   1   1.0%   68.7%  69.1%   100%   0.0%    3.8%    7.6%   0.0%  30.7%
//! 1 MiB    4   2   2.0%   67.5%  68.8%   100%   0.0%    7.6%    5.0%   0.0%  23.6%
//! 4 MiB    2   1   0.4%   73.0%  81.5%   100%   0.0%    1.6%   12.0%   0.0%  40.8%
//! 4 MiB    3   2   0.6%   72.7%  81.3%   100%   0.0%    2.4%   10.0%   0.0%  35.8%
//! 4 MiB    4   2   0.8%   72.3%  81.2%   100%   0.0%    3.2%    8.5%   0.0%  34.2%
//! 4 MiB    6   3   1.1%   72.0%  80.9%   100%   0.0%    4.9%    7.7%   0.0%  32.5%
//! 4 MiB   10   5   1.9%   71.9%  80.9%   100%   0.0%    8.1%    6.7%   0.0%  27.5%
//! ```
//!
//! What the numbers say:
//! - Words and other low-entropy needles are skipped almost always in the
//!   generated logs; in build logs, which are full of words, a third of the
//!   absent words still find all their trigrams in a 4 MiB block.
//! - Needles made of hex digits or decimal digits cannot be excluded by
//!   trigrams in blocks that hold many random ids: every one of the 4096
//!   hex trigrams and 1000 digit trigrams is present, whatever the filter
//!   size. The misses there are true trigram hits, not bloom collisions,
//!   so more bits per trigram buy nothing. Skipping blocks for trace-id
//!   searches needs a different filter (longer grams chosen by winnowing,
//!   or a token filter for needles known to be whole tokens), which can be
//!   added as a new filter kind or chunk section without breaking this
//!   format.
//!   The digit-gram filter below does this for numbers.
//! - Beyond 3 bits and 2 probes per trigram, the false positive rate barely
//!   moves while the size grows linearly; the default is 3 bits, k = 2,
//!   which keeps filters at 0.6% to 2.4% of the compressed blocks.
//! - Building runs at 550 to 800 MB/s of lines.

//!
//! # Digit-gram filters (kind 2)
//!
//! Searches for an order id, a user id or any number of six digits or more
//! (`|= "424242"`) find every digit trigram in nearly every block. So each
//! block also gets a filter of its *digit grams*: every window of
//! [`DIGIT_GRAM`] (6) consecutive ASCII digits inside a run of digits, as
//! the number it spells (`0 ≤ g < 10^6`). A line containing a needle with a
//! run of six digits or more holds, inside a run of its own at least as
//! long, every six-digit window of the needle's run; so a block whose
//! filter lacks one of them cannot match, and a block with no run of six
//! digits (an empty filter) cannot match any such needle. Digits have no
//! case, so the same grams serve case-insensitive searches.
//!
//! ```text
//! offset  size  field
//! 0       1     kind: 2 = digit-gram bloom filter
//! 1       1     k, probes per gram, 1..=16
//! 2       4     m, bits, u32 little-endian: a multiple of 64, 0 when the
//!               block has no run of six digits
//! 6       m/8   the bits, as in kind 1
//! ```
//!
//! A gram `g` hashes as the trigram integer `g + 2^24` does above (so no
//! gram shares its hash input with a trigram), and probes the same way.
//! The writer uses 6 bits per distinct gram and k = 4 (about 5.6% false
//! positives). Unlike trigrams, digit grams rarely repeat in a block, and
//! random hexadecimal ids are full of them (a 32-digit trace id holds about
//! two runs of six digits): in the benchmark's dataset, where every JSON
//! line carries a trace and a span id, JSON blocks get about 3.5 distinct
//! grams per line. At 10 bits and k = 3 (1.7%) the digit filters were 6.0%
//! of the compressed blocks; at 6 bits they are 3.6%, and an id search
//! after a flush still skips 98% of the chunks (283 of 287 at 10 bits).
//!
//! In a segment the digit filter is a per-chunk section (see
//! [`crate::segment::writer`]); a chunk without one (files written before
//! it existed) is checked by its trigrams alone.

use crate::ChunkError;

/// The filter kind byte of version 1.
const KIND_TRIGRAM_BLOOM: u8 = 1;
const HEADER_LEN: usize = 6;
const MAX_HASHES: u8 = 16;
/// Trigrams are 24-bit integers.
const TRIGRAM_SPACE: usize = 1 << 24;

/// The filter kind byte of digit-gram filters.
const KIND_DIGIT_GRAM_BLOOM: u8 = 2;
/// Digits per digit gram.
pub const DIGIT_GRAM: usize = 6;
const DIGIT_GRAM_SPACE: u32 = 1_000_000;
/// Keeps the last `DIGIT_GRAM - 1` digits of a rolling gram.
const DIGIT_GRAM_SPACE_DIV: u32 = DIGIT_GRAM_SPACE / 10;
/// Bits per distinct digit gram and probes per gram; see the module
/// documentation for the measurement.
const DIGIT_GRAM_BITS: f64 = 6.0;
const DIGIT_GRAM_HASHES: u8 = 4;

/// How filters are sized. Only the writer uses these: the stored filter
/// records its own bit count and number of probes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterParams {
    /// Bits of filter per distinct trigram in the block.
    pub bits_per_trigram: f64,
    /// Probes per trigram (bloom `k`).
    pub hashes: u8,
}

impl Default for FilterParams {
    /// Chosen by the measurement in the module documentation.
    fn default() -> Self {
        FilterParams {
            bits_per_trigram: 3.0,
            hashes: 2,
        }
    }
}

impl FilterParams {
    pub(crate) fn validate(&self) -> Result<(), ChunkError> {
        if !(0.5..=64.0).contains(&self.bits_per_trigram) {
            return Err(ChunkError::invalid_input(format!(
                "filter bits per trigram {} is outside 0.5..=64",
                self.bits_per_trigram
            )));
        }
        if self.hashes == 0 || self.hashes > MAX_HASHES {
            return Err(ChunkError::invalid_input(format!(
                "filter hash count {} is outside 1..={MAX_HASHES}",
                self.hashes
            )));
        }
        Ok(())
    }
}

#[inline]
fn hash_trigram(t: u32) -> u64 {
    let mut z = u64::from(t).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The hash of a digit gram: the trigram hash of a value beyond every
/// trigram, so the two kinds never share a hash by construction.
#[inline]
fn hash_digit_gram(g: u32) -> u64 {
    hash_trigram(g + TRIGRAM_SPACE as u32)
}

/// Calls `f` with every window of [`DIGIT_GRAM`] consecutive ASCII digits
/// of `bytes`, as the number it spells, in order (repeats included).
#[inline]
fn for_each_digit_gram(bytes: &[u8], mut f: impl FnMut(u32)) {
    let mut run = 0usize;
    let mut gram = 0u32;
    for &b in bytes {
        if b.is_ascii_digit() {
            run += 1;
            gram = (gram % DIGIT_GRAM_SPACE_DIV) * 10 + u32::from(b - b'0');
            if run >= DIGIT_GRAM {
                f(gram);
            }
        } else {
            run = 0;
            gram = 0;
        }
    }
}

/// The header and bits of a stored bloom filter of `kind`, checked: the
/// probe count, a bit count that is a multiple of 64 (and not 0 unless
/// `empty_ok`), and exactly that many bits. `what` names the filter in
/// errors.
fn parse_bloom<'a>(
    bytes: &'a [u8],
    kind: u8,
    empty_ok: bool,
    what: &str,
) -> Result<(u8, u32, &'a [u8]), ChunkError> {
    let bad = |reason: String| ChunkError::CorruptFilter { reason };
    if bytes.len() < HEADER_LEN {
        return Err(bad(format!(
            "{} bytes is shorter than a {what}",
            bytes.len()
        )));
    }
    if bytes[0] != kind {
        return Err(bad(format!("filter kind {} is not a {what}", bytes[0])));
    }
    let hashes = bytes[1];
    if hashes == 0 || hashes > MAX_HASHES {
        return Err(bad(format!(
            "hash count {hashes} is outside 1..={MAX_HASHES}"
        )));
    }
    let num_bits = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    if (num_bits == 0 && !empty_ok) || !num_bits.is_multiple_of(64) {
        return Err(bad(format!(
            "bit count {num_bits} is not a positive multiple of 64"
        )));
    }
    let bits = &bytes[HEADER_LEN..];
    if bits.len() as u64 != u64::from(num_bits / 8) {
        return Err(bad(format!(
            "{} bytes of bits for a {what} of {num_bits} bits",
            bits.len()
        )));
    }
    Ok((hashes, num_bits, bits))
}

/// Whether every probed bit of hash `h` is set in a stored bloom filter.
#[inline]
fn bloom_has(bits: &[u8], hashes: u8, num_bits: u32, h: u64) -> bool {
    probes(h, hashes, num_bits).all(|bit| bits[(bit >> 3) as usize] >> (bit & 7) & 1 == 1)
}

/// The bit positions probed for a trigram hash, in a filter of `m` bits.
#[inline]
fn probes(h: u64, k: u8, m: u32) -> impl Iterator<Item = u32> {
    let h1 = h as u32;
    let h2 = (h >> 32) as u32;
    (0..u32::from(k)).map(move |i| {
        let x = h1.wrapping_add(i.wrapping_mul(h2));
        ((u64::from(x) * u64::from(m)) >> 32) as u32
    })
}

/// Builds the filter of one block at a time. Keeps a 2 MiB set of the
/// trigrams seen so far (one bit per possible trigram), allocated on first
/// use and reused from block to block, so counting distinct trigrams costs
/// one bit test per line byte.
pub struct FilterBuilder {
    params: FilterParams,
    seen: Vec<u64>,
    distinct: Vec<u32>,
    bits: Vec<u64>,
    /// The digit grams seen in this block: one bit per possible gram
    /// (10^6 bits), allocated on first use, and the distinct ones in order.
    numbers_seen: Vec<u64>,
    numbers: Vec<u32>,
}

impl std::fmt::Debug for FilterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterBuilder")
            .field("params", &self.params)
            .field("distinct", &self.distinct.len())
            .field("numbers", &self.numbers.len())
            .finish_non_exhaustive()
    }
}

impl FilterBuilder {
    pub fn new(params: FilterParams) -> Result<Self, ChunkError> {
        params.validate()?;
        Ok(FilterBuilder {
            params,
            seen: Vec::new(),
            distinct: Vec::new(),
            bits: Vec::new(),
            numbers_seen: Vec::new(),
            numbers: Vec::new(),
        })
    }

    /// Adds the trigrams and digit grams of one line.
    pub fn add_line(&mut self, line: &[u8]) {
        if line.len() < 3 {
            return;
        }
        if line.len() >= DIGIT_GRAM {
            self.add_digit_grams(line);
        }
        if self.seen.is_empty() {
            self.seen = vec![0u64; TRIGRAM_SPACE / 64];
        }
        let mut t =
            u32::from(line[0].to_ascii_lowercase()) << 8 | u32::from(line[1].to_ascii_lowercase());
        for &b in &line[2..] {
            t = ((t << 8) | u32::from(b.to_ascii_lowercase())) & 0x00FF_FFFF;
            let word = &mut self.seen[(t >> 6) as usize];
            let bit = 1u64 << (t & 63);
            if *word & bit == 0 {
                *word |= bit;
                self.distinct.push(t);
            }
        }
    }

    /// Every window of [`DIGIT_GRAM`] digits of the line, as the number it
    /// spells: one sequential pass, cheap beside the trigram loop's random
    /// accesses to its 2 MiB table.
    fn add_digit_grams(&mut self, line: &[u8]) {
        for_each_digit_gram(line, |gram| {
            if self.numbers_seen.is_empty() {
                self.numbers_seen = vec![0u64; (DIGIT_GRAM_SPACE as usize).div_ceil(64)];
            }
            let word = &mut self.numbers_seen[(gram >> 6) as usize];
            let bit = 1u64 << (gram & 63);
            if *word & bit == 0 {
                *word |= bit;
                self.numbers.push(gram);
            }
        });
    }

    /// Distinct trigrams added since the last [`FilterBuilder::finish`].
    pub fn distinct_trigrams(&self) -> usize {
        self.distinct.len()
    }

    /// Distinct digit grams added since the last finish.
    pub fn distinct_digit_grams(&self) -> usize {
        self.numbers.len()
    }

    /// Appends the trigram filter of the lines added so far to `trigrams`
    /// and their digit-gram filter to `numbers`, returns both lengths, and
    /// starts over for the next block.
    pub fn finish_both(&mut self, trigrams: &mut Vec<u8>, numbers: &mut Vec<u8>) -> (usize, usize) {
        let n = self.finish_numbers(numbers);
        (self.finish(trigrams), n)
    }

    fn finish_numbers(&mut self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.push(KIND_DIGIT_GRAM_BLOOM);
        out.push(DIGIT_GRAM_HASHES);
        let m = if self.numbers.is_empty() {
            0
        } else {
            let wanted = (self.numbers.len() as f64 * DIGIT_GRAM_BITS).ceil() as usize;
            (wanted.div_ceil(64).max(1) * 64) as u32
        };
        out.extend_from_slice(&m.to_le_bytes());
        let words = (m / 64) as usize;
        self.bits.clear();
        self.bits.resize(words, 0);
        for &g in &self.numbers {
            for bit in probes(hash_digit_gram(g), DIGIT_GRAM_HASHES, m) {
                self.bits[(bit >> 6) as usize] |= 1u64 << (bit & 63);
            }
            self.numbers_seen[(g >> 6) as usize] &= !(1u64 << (g & 63));
        }
        self.numbers.clear();
        for w in &self.bits {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.len() - start
    }

    /// Appends the trigram filter of the lines added so far to `out`,
    /// returns its length, and starts over for the next block (the digit
    /// grams are dropped; [`FilterBuilder::finish_both`] keeps them).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> usize {
        for &g in &self.numbers {
            self.numbers_seen[(g >> 6) as usize] &= !(1u64 << (g & 63));
        }
        self.numbers.clear();
        let wanted = (self.distinct.len() as f64 * self.params.bits_per_trigram).ceil();
        // At most 2^24 distinct trigrams times 64 bits each: below 2^31.
        let words = ((wanted as usize).div_ceil(64)).max(1);
        let m = (words * 64) as u32;
        self.bits.clear();
        self.bits.resize(words, 0);
        for &t in &self.distinct {
            for bit in probes(hash_trigram(t), self.params.hashes, m) {
                self.bits[(bit >> 6) as usize] |= 1u64 << (bit & 63);
            }
            // Forget the trigram for the next block: cheaper than clearing
            // the whole 2 MiB set.
            self.seen[(t >> 6) as usize] &= !(1u64 << (t & 63));
        }
        self.distinct.clear();

        let start = out.len();
        out.push(KIND_TRIGRAM_BLOOM);
        out.push(self.params.hashes);
        out.extend_from_slice(&m.to_le_bytes());
        for w in &self.bits {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.len() - start
    }
}

/// The trigram hashes of a needle, computed once and checked against many
/// filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterProbe {
    hashes: Vec<u64>,
    /// Hashes of the needle's digit grams (see [`DigitFilter`]).
    digit_grams: Vec<u64>,
}

impl FilterProbe {
    /// For a substring search, case-sensitive (`|= "needle"`) or ASCII
    /// case-insensitive: the needle is lowercased like the filter's lines.
    pub fn new(needle: &[u8]) -> Self {
        Self::build(needle, |_| true)
    }

    /// For a Unicode case-insensitive search (`|~ "(?i)needle"`, where
    /// Go's and Rust's regex engines apply Unicode simple case folding).
    /// Trigrams with a byte that may fold to a different byte sequence are
    /// skipped: non-ASCII bytes, and `k` and `s`, which fold to the Kelvin
    /// sign U+212A and the long s U+017F.
    pub fn ignore_case(needle: &[u8]) -> Self {
        Self::build(needle, |b| b.is_ascii() && !matches!(b, b'k' | b's'))
    }

    fn build(needle: &[u8], usable: impl Fn(u8) -> bool) -> Self {
        let mut hashes: Vec<u64> = needle
            .windows(3)
            .filter_map(|w| {
                let [a, b, c] = [
                    w[0].to_ascii_lowercase(),
                    w[1].to_ascii_lowercase(),
                    w[2].to_ascii_lowercase(),
                ];
                (usable(a) && usable(b) && usable(c))
                    .then(|| hash_trigram(u32::from(a) << 16 | u32::from(b) << 8 | u32::from(c)))
            })
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        // Case folding maps no character to an ASCII digit or back, so the
        // digit grams hold for every kind of search.
        let mut digit_grams = Vec::new();
        for_each_digit_gram(needle, |gram| digit_grams.push(hash_digit_gram(gram)));
        digit_grams.sort_unstable();
        digit_grams.dedup();
        FilterProbe {
            hashes,
            digit_grams,
        }
    }

    /// Whether this probe can rule anything out (false for needles shorter
    /// than three bytes, which every filter may contain).
    pub fn is_selective(&self) -> bool {
        !self.hashes.is_empty()
    }

    /// Whether the needle holds a run of at least [`DIGIT_GRAM`] digits,
    /// which a [`DigitFilter`] can rule out.
    pub fn has_digit_grams(&self) -> bool {
        !self.digit_grams.is_empty()
    }
}

/// A view of one stored filter.
#[derive(Debug, Clone, Copy)]
pub struct TrigramFilter<'a> {
    hashes: u8,
    num_bits: u32,
    bits: &'a [u8],
}

impl<'a> TrigramFilter<'a> {
    /// Checks the header and length of a stored filter. The bytes must be
    /// exactly one filter.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, ChunkError> {
        let (hashes, num_bits, bits) =
            parse_bloom(bytes, KIND_TRIGRAM_BLOOM, false, "trigram filter")?;
        Ok(TrigramFilter {
            hashes,
            num_bits,
            bits,
        })
    }

    /// Whether lines of the block may contain `needle`, compared
    /// case-sensitively or ASCII case-insensitively (both are answered by
    /// the same lowercased trigrams). True for needles under three bytes.
    pub fn may_contain(&self, needle: &[u8]) -> bool {
        self.may_match(&FilterProbe::new(needle))
    }

    /// Like [`TrigramFilter::may_contain`] for a Unicode case-insensitive
    /// search; see [`FilterProbe::ignore_case`].
    pub fn may_contain_ignore_case(&self, needle: &[u8]) -> bool {
        self.may_match(&FilterProbe::ignore_case(needle))
    }

    /// Whether the block may contain the needle `probe` was built from.
    pub fn may_match(&self, probe: &FilterProbe) -> bool {
        probe
            .hashes
            .iter()
            .all(|&h| bloom_has(self.bits, self.hashes, self.num_bits, h))
    }

    /// Length of the stored filter, header included.
    pub fn byte_len(&self) -> usize {
        HEADER_LEN + self.bits.len()
    }

    pub fn num_bits(&self) -> u32 {
        self.num_bits
    }

    pub fn hashes(&self) -> u8 {
        self.hashes
    }

    /// Share of bits set: near 0.5 is a well-sized filter, near 1.0 one
    /// that lets almost everything through.
    pub fn fill_ratio(&self) -> f64 {
        let ones: u64 = self.bits.iter().map(|b| u64::from(b.count_ones())).sum();
        ones as f64 / f64::from(self.num_bits)
    }
}

/// A view of one stored digit-gram filter (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct DigitFilter<'a> {
    hashes: u8,
    num_bits: u32,
    bits: &'a [u8],
}

impl<'a> DigitFilter<'a> {
    /// Checks the header and length of a stored digit-gram filter. The
    /// bytes must be exactly one filter.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, ChunkError> {
        let (hashes, num_bits, bits) =
            parse_bloom(bytes, KIND_DIGIT_GRAM_BLOOM, true, "digit filter")?;
        Ok(DigitFilter {
            hashes,
            num_bits,
            bits,
        })
    }

    /// Whether the block may hold the needle `probe` was built from, by its
    /// digit grams alone: true for a needle without a run of
    /// [`DIGIT_GRAM`] digits, false for one with such a run when the block
    /// has no such run at all.
    pub fn may_match(&self, probe: &FilterProbe) -> bool {
        if probe.digit_grams.is_empty() {
            return true;
        }
        if self.num_bits == 0 {
            return false;
        }
        probe
            .digit_grams
            .iter()
            .all(|&h| bloom_has(self.bits, self.hashes, self.num_bits, h))
    }

    /// Length of the stored filter, header included.
    pub fn byte_len(&self) -> usize {
        HEADER_LEN + self.bits.len()
    }

    pub fn num_bits(&self) -> u32 {
        self.num_bits
    }
}

/// The filters of one block: its trigram filter and, when it has one, its
/// digit-gram filter. A block passes only if both let the needle through.
#[derive(Debug, Clone, Copy)]
pub struct BlockFilter<'a> {
    pub trigrams: TrigramFilter<'a>,
    pub digits: Option<DigitFilter<'a>>,
}

impl BlockFilter<'_> {
    pub fn may_match(&self, probe: &FilterProbe) -> bool {
        self.digits.is_none_or(|d| d.may_match(probe)) && self.trigrams.may_match(probe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(lines: &[&str]) -> Vec<u8> {
        let mut b = FilterBuilder::new(FilterParams::default()).unwrap();
        for l in lines {
            b.add_line(l.as_bytes());
        }
        let mut out = Vec::new();
        b.finish(&mut out);
        out
    }

    #[test]
    fn substrings_match_and_absent_needles_mostly_do_not() {
        let bytes = build(&["GET /api/needle HTTP/1.1", "level=error msg=timeout"]);
        let f = TrigramFilter::from_bytes(&bytes).unwrap();
        for needle in ["eedl", "needle", "NEEDLE", "timeout", "level=e", "ap", ""] {
            assert!(f.may_contain(needle.as_bytes()), "{needle}");
        }
        assert!(f.may_contain_ignore_case(b"NeEdLe"));
        // Trigrams spanning the two lines are not inserted.
        assert!(!f.may_contain(b"1.1level"));
        assert!(!f.may_contain(b"zebra-quartz"));
    }

    #[test]
    fn builder_forgets_the_previous_block() {
        let mut b = FilterBuilder::new(FilterParams::default()).unwrap();
        b.add_line(b"first block line");
        let mut first = Vec::new();
        b.finish(&mut first);
        b.add_line(b"other");
        assert_eq!(b.distinct_trigrams(), 3);
        let mut second = Vec::new();
        b.finish(&mut second);
        let f = TrigramFilter::from_bytes(&second).unwrap();
        assert!(f.may_contain(b"other"));
        assert!(!f.may_contain(b"first block"));
    }

    #[test]
    fn empty_and_short_lines_give_a_filter_that_rejects_long_needles() {
        let bytes = build(&["", "ab"]);
        let f = TrigramFilter::from_bytes(&bytes).unwrap();
        assert!(!f.may_contain(b"abc"));
        assert!(f.may_contain(b"ab"));
    }

    #[test]
    fn rejects_damaged_filters() {
        let bytes = build(&["some line of text"]);
        assert!(TrigramFilter::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        for (i, v) in [(0, 2u8), (1, 0), (1, 17), (2, 1)] {
            let mut b = bytes.clone();
            b[i] = v;
            assert!(TrigramFilter::from_bytes(&b).is_err(), "byte {i} = {v}");
        }
        assert!(TrigramFilter::from_bytes(&[]).is_err());
    }

    #[test]
    fn kelvin_and_long_s_do_not_cause_false_negatives() {
        // "\u{212A}" (Kelvin sign) folds to k; "\u{17F}" (long s) to s.
        let bytes = build(&["status 200 in 3\u{212A}B, pa\u{17F}\u{17F}word"]);
        let f = TrigramFilter::from_bytes(&bytes).unwrap();
        assert!(f.may_contain_ignore_case(b"3kb"));
        assert!(f.may_contain_ignore_case(b"password"));
    }

    fn build_both(lines: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let mut b = FilterBuilder::new(FilterParams::default()).unwrap();
        for l in lines {
            b.add_line(l.as_bytes());
        }
        let (mut t, mut d) = (Vec::new(), Vec::new());
        b.finish_both(&mut t, &mut d);
        (t, d)
    }

    fn both<'a>(t: &'a [u8], d: &'a [u8]) -> BlockFilter<'a> {
        BlockFilter {
            trigrams: TrigramFilter::from_bytes(t).unwrap(),
            digits: Some(DigitFilter::from_bytes(d).unwrap()),
        }
    }

    #[test]
    fn digit_grams_rule_out_numbers_whose_trigrams_are_all_present() {
        // Every digit trigram of 424242 is here, the number itself is not.
        let lines = ["order 42424 took 2424 ms", "user 124241 id 4242 x 242"];
        let (t, d) = build_both(&lines);
        let f = both(&t, &d);
        assert!(f.trigrams.may_match(&FilterProbe::new(b"424242")));
        assert!(!f.may_match(&FilterProbe::new(b"424242")));
        assert!(!f.may_match(&FilterProbe::new(b"id=424242")));
        // Present numbers, inside longer runs or alone, and short ones.
        assert!(f.may_match(&FilterProbe::new(b"124241")));
        assert!(f.may_match(&FilterProbe::new(b"user 124241")));
        assert!(f.may_match(&FilterProbe::new(b"42424")));
        assert!(f.may_match(&FilterProbe::new(b"2424 ms")));
    }

    #[test]
    fn a_block_without_long_digit_runs_has_an_empty_digit_filter() {
        let (t, d) = build_both(&["level=info status=200 bytes=51234", "abc"]);
        let digits = DigitFilter::from_bytes(&d).unwrap();
        assert_eq!(digits.num_bits(), 0);
        let f = both(&t, &d);
        assert!(!f.may_match(&FilterProbe::new(b"512345")));
        assert!(f.may_match(&FilterProbe::new(b"51234")));
        assert!(f.may_match(&FilterProbe::new(b"status=200")));
    }

    #[test]
    fn finish_alone_forgets_the_digit_grams() {
        let mut b = FilterBuilder::new(FilterParams::default()).unwrap();
        b.add_line(b"trace 1234567890");
        assert_eq!(b.distinct_digit_grams(), 5);
        b.finish(&mut Vec::new());
        assert_eq!(b.distinct_digit_grams(), 0);
        b.add_line(b"span 987654");
        let (mut t, mut d) = (Vec::new(), Vec::new());
        b.finish_both(&mut t, &mut d);
        let f = both(&t, &d);
        assert!(f.may_match(&FilterProbe::new(b"987654")));
        assert!(!f.may_match(&FilterProbe::new(b"123456")));
    }

    #[test]
    fn rejects_damaged_digit_filters() {
        let (_, d) = build_both(&["id 0000001234567"]);
        assert!(DigitFilter::from_bytes(&d[..d.len() - 1]).is_err());
        for (i, v) in [(0, 1u8), (1, 0), (1, 17), (2, 1)] {
            let mut b = d.clone();
            b[i] = v;
            assert!(DigitFilter::from_bytes(&b).is_err(), "byte {i} = {v}");
        }
        assert!(DigitFilter::from_bytes(&[]).is_err());
    }

    fn case_flip(s: &str, mask: &[bool]) -> String {
        s.chars()
            .zip(mask.iter().cycle())
            .map(|(c, &up)| {
                if up {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn digit_grams_never_give_a_false_negative(
            lines in proptest::collection::vec("[0-9a-f =x-]{0,40}", 1..30),
            pick in any::<proptest::sample::Index>(),
            start in any::<proptest::sample::Index>(),
            len in 0usize..20,
        ) {
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let (t, d) = build_both(&refs);
            let f = both(&t, &d);
            let line = pick.get(&lines).as_bytes();
            let from = if line.is_empty() { 0 } else { start.index(line.len()) };
            let to = (from + len).min(line.len());
            let needle = &line[from..to];
            prop_assert!(f.may_match(&FilterProbe::new(needle)));
            prop_assert!(f.may_match(&FilterProbe::ignore_case(needle)));
        }

        #[test]
        fn never_a_false_negative(
            lines in proptest::collection::vec("[a-zA-Z0-9 =./:_\u{e9}\u{212a}-]{0,40}", 1..30),
            pick in any::<proptest::sample::Index>(),
            start in any::<proptest::sample::Index>(),
            len in 0usize..20,
            mask in proptest::collection::vec(any::<bool>(), 1..8),
            bits in 1.0f64..12.0,
            hashes in 1u8..5,
        ) {
            let mut b = FilterBuilder::new(FilterParams { bits_per_trigram: bits, hashes }).unwrap();
            for l in &lines {
                b.add_line(l.as_bytes());
            }
            let mut out = Vec::new();
            b.finish(&mut out);
            let f = TrigramFilter::from_bytes(&out).unwrap();

            let line = pick.get(&lines).as_bytes();
            let from = if line.is_empty() { 0 } else { start.index(line.len()) };
            let to = (from + len).min(line.len());
            let needle = &line[from..to];
            prop_assert!(f.may_contain(needle));
            if let Ok(s) = std::str::from_utf8(needle) {
                let flipped = case_flip(s, &mask);
                prop_assert!(f.may_contain(flipped.as_bytes()));
                prop_assert!(f.may_contain_ignore_case(flipped.as_bytes()));
                // Unicode case folding: the needle as a regex engine's (?i)
                // would see it, upper-cased in full.
                prop_assert!(f.may_contain_ignore_case(s.to_uppercase().as_bytes()));
                prop_assert!(f.may_contain_ignore_case(s.to_lowercase().as_bytes()));
            }
        }
    }
}
