//! Measures block compression per zstd level, trigram filter size and false
//! positive rate per parameter choice, and a whole segment against plain
//! per-stream `zstd -3`, on generated realistic logs. The numbers in the
//! documentation of `block`, `filter` and `segment::writer` come from here.
//!
//! Run with `cargo run --release -p skald-chunk --example measure`.
//! Not a benchmark harness: one pass per figure, wall-clock time.

#[path = "../tests/common/loggen.rs"]
mod loggen;

use skald_chunk::{
    BlockEncoder, DecodedBlock, FilterBuilder, FilterParams, FilterProbe, SegmentOptions,
    SegmentReader, SegmentWriter, TrigramFilter,
};
use skald_model::{Entry, Timestamp};
use std::time::Instant;

fn split(entries: &[Entry], target: usize) -> Vec<&[Entry]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, e) in entries.iter().enumerate() {
        if i > start && size + e.size() + 32 > target {
            out.push(&entries[start..i]);
            (start, size) = (i, 0);
        }
        size += e.size() + 32;
    }
    out.push(&entries[start..]);
    out
}

fn mb(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

/// Search terms a user might type, none of them from the generator's
/// vocabulary, by kind.
fn needles(rng: &mut loggen::Rng) -> Vec<(&'static str, String)> {
    const WORDS: [&str; 12] = [
        "deadlock detected",
        "segfault",
        "OutOfMemoryError",
        "kafka",
        "x509: certificate",
        "nil pointer",
        "disk quota",
        "kubelet",
        "sigterm",
        "unmarshal",
        "context canceled",
        "broken pipe",
    ];
    let mut out = Vec::new();
    for _ in 0..40 {
        out.push(("trace id", rng.hex(32)));
        out.push(("hex8", rng.hex(8)));
        out.push((
            "ip",
            format!(
                "{}.{}.{}.{}",
                rng.below(223) + 1,
                rng.below(256),
                rng.below(256),
                rng.below(256)
            ),
        ));
        out.push(("number7", format!("{}", 1_000_000 + rng.below(9_000_000))));
        out.push((
            "word",
            WORDS[rng.below(WORDS.len() as u64) as usize].to_string(),
        ));
    }
    out
}

fn main() {
    let mut corpus = loggen::corpus(4, 20_000, 42);
    // Optionally, real logs: `measure FILE` uses FILE's lines as one more
    // stream (and the only one of the level table's second run).
    if let Some(file) = std::env::args().nth(1) {
        let text = std::fs::read_to_string(&file).expect("readable utf-8 file");
        let entries: Vec<Entry> = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                Entry::new(
                    Timestamp(1_714_521_600_000_000_000 + i as i64 * 1_000_000),
                    l,
                )
            })
            .collect();
        let labels = skald_model::LabelSet::parse(r#"{app="file"}"#).unwrap();
        corpus = vec![(labels, entries)];
    }
    let lines: usize = corpus.iter().map(|(_, e)| e.len()).sum();
    let raw_lines: u64 = corpus
        .iter()
        .flat_map(|(_, e)| e)
        .map(|e| e.line.len() as u64)
        .sum();
    let raw: u64 = corpus
        .iter()
        .flat_map(|(_, e)| e)
        .map(|e| e.size() as u64)
        .sum();
    let baseline: u64 = corpus
        .iter()
        .map(|(_, entries)| {
            let mut text = String::new();
            for e in entries {
                text.push_str(&e.line);
                text.push('\n');
            }
            zstd::bulk::compress(text.as_bytes(), 3).unwrap().len() as u64
        })
        .sum();
    println!(
        "corpus: {} streams, {lines} lines, {raw_lines} bytes of lines ({} with metadata), plain per-stream zstd -3 of lines: {baseline} bytes (ratio {:.2})",
        corpus.len(),
        raw,
        raw_lines as f64 / baseline as f64
    );

    println!("\n## zstd level and block size");
    println!("block  level  ratio  vs zstd -3  encode MB/s  decode MB/s  to_entries MB/s");
    let runs = [1, 3, 5, 7, 9]
        .map(|l| (1 << 20, l))
        .into_iter()
        .chain([1, 3, 5].map(|l| (4 << 20, l)));
    for (target, level) in runs {
        let mut enc = BlockEncoder::new(level).unwrap();
        let mut blocks = Vec::new();
        let t = Instant::now();
        for (_, entries) in &corpus {
            for chunk in split(entries, target) {
                let mut out = Vec::new();
                enc.encode(chunk, &mut out).unwrap();
                blocks.push(out);
            }
        }
        let encode_secs = t.elapsed().as_secs_f64();
        let stored: u64 = blocks.iter().map(|b| b.len() as u64).sum();
        let t = Instant::now();
        let mut n = 0;
        for b in &blocks {
            n += DecodedBlock::decode(b).unwrap().len();
        }
        let decode_secs = t.elapsed().as_secs_f64();
        assert_eq!(n, lines);
        let t = Instant::now();
        for b in &blocks {
            n -= DecodedBlock::decode(b).unwrap().to_entries().len();
        }
        let entries_secs = t.elapsed().as_secs_f64();
        assert_eq!(n, 0);
        println!(
            "{:>4}K  {level:>5}  {:>5.2}  {:>9.3}x  {:>11.0}  {:>11.0}  {:>15.0}",
            target >> 10,
            raw as f64 / stored as f64,
            stored as f64 / baseline as f64,
            mb(raw, encode_secs),
            mb(raw, decode_secs),
            mb(raw, entries_secs)
        );
    }

    // Timestamps at random nanosecond precision (no common unit).
    {
        let mut rng = loggen::Rng::new(7);
        let mut enc = BlockEncoder::new(3).unwrap();
        let (mut ms, mut ns) = (0u64, 0u64);
        for (_, entries) in &corpus {
            let jittered: Vec<Entry> = entries
                .iter()
                .map(|e| Entry {
                    ts: Timestamp(e.ts.0 + rng.below(1_000_000) as i64),
                    ..e.clone()
                })
                .collect();
            let mut sorted = jittered;
            sorted.sort_by_key(|e| e.ts);
            for (src, total) in [(entries, &mut ms), (&sorted, &mut ns)] {
                for chunk in split(src, 1 << 20) {
                    let mut out = Vec::new();
                    *total += enc.encode(chunk, &mut out).unwrap().block_bytes as u64;
                }
            }
        }
        println!(
            "level 3 with nanosecond-jittered timestamps: {ns} bytes vs {ms} at ms precision (+{:.1}%)",
            100.0 * (ns as f64 / ms as f64 - 1.0)
        );
    }

    println!("\n## trigram filter (level 3 blocks)");
    let mut rng = loggen::Rng::new(99);
    let needles = needles(&mut rng);
    println!(
        "block    bits  k  filter/block  fp all  trace   hex8    ip      number7 word    distinct/block  build MB/s"
    );
    for target in [256 << 10, 1 << 20, 4 << 20] {
        if target == 256 << 10 && corpus.len() == 1 {
            continue;
        }
        let mut enc = BlockEncoder::new(3).unwrap();
        let mut blocks = Vec::new();
        for (_, entries) in &corpus {
            for chunk in split(entries, target) {
                let mut out = Vec::new();
                enc.encode(chunk, &mut out).unwrap();
                let lower: String = chunk
                    .iter()
                    .map(|e| e.line.to_ascii_lowercase() + "\n")
                    .collect();
                blocks.push((chunk, out.len() as u64, lower));
            }
        }
        let block_bytes: u64 = blocks.iter().map(|b| b.1).sum();
        for (bits, k) in [
            (2.0, 1),
            (3.0, 2),
            (4.0, 2),
            (4.0, 3),
            (6.0, 3),
            (8.0, 4),
            (10.0, 5),
        ] {
            let params = FilterParams {
                bits_per_trigram: bits,
                hashes: k,
            };
            let mut builder = FilterBuilder::new(params).unwrap();
            let mut filter_bytes = 0u64;
            let mut distinct = 0usize;
            let mut kinds: Vec<(&str, u64, u64)> = Vec::new();
            let mut build_secs = 0.0;
            for (chunk, _, lower) in &blocks {
                let t = Instant::now();
                for e in chunk.iter() {
                    builder.add_line(e.line.as_bytes());
                }
                distinct += builder.distinct_trigrams();
                let mut f = Vec::new();
                filter_bytes += builder.finish(&mut f) as u64;
                build_secs += t.elapsed().as_secs_f64();
                let filter = TrigramFilter::from_bytes(&f).unwrap();
                for (kind, needle) in &needles {
                    let maybe = filter.may_contain(needle.as_bytes());
                    if maybe && lower.contains(&needle.to_ascii_lowercase()) {
                        continue; // a true positive: not a negative at all
                    }
                    let slot = match kinds.iter().position(|k| k.0 == *kind) {
                        Some(i) => i,
                        None => {
                            kinds.push((kind, 0, 0));
                            kinds.len() - 1
                        }
                    };
                    kinds[slot].1 += 1;
                    kinds[slot].2 += u64::from(maybe);
                }
            }
            let (neg, fp) = kinds.iter().fold((0, 0), |a, k| (a.0 + k.1, a.1 + k.2));
            let rate = |n: u64, p: u64| 100.0 * p as f64 / n.max(1) as f64;
            print!(
                "{:>5}K  {bits:>4}  {k}  {:>11.1}%  {:>5.2}% ",
                target >> 10,
                100.0 * filter_bytes as f64 / block_bytes as f64,
                rate(neg, fp)
            );
            for k in &kinds {
                print!(" {:>5.2}% ", rate(k.1, k.2));
            }
            println!(
                " {:>14}  {:>10.0}",
                distinct / blocks.len(),
                mb(blocks.iter().map(|b| b.2.len() as u64).sum(), build_secs)
            );
        }
    }

    println!("\n## segment (default options)");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("measure.seg");
    let t = Instant::now();
    let mut writer = SegmentWriter::create_with_options(&path, SegmentOptions::default()).unwrap();
    for (labels, entries) in &corpus {
        writer.add_chunk(labels, entries).unwrap();
    }
    let summary = writer.finish().unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "write: {:.0} lines/s, {:.0} MB/s (one thread, blocks + filters + fsync)",
        lines as f64 / secs,
        mb(raw, secs)
    );
    println!(
        "file {} bytes = {:.3}x plain per-stream zstd -3 of the lines; blocks {}, filters {} ({:.1}% of blocks), index {}",
        summary.stored_bytes,
        summary.stored_bytes as f64 / baseline as f64,
        summary.block_bytes,
        summary.filter_bytes,
        100.0 * summary.filter_bytes as f64 / summary.block_bytes as f64,
        summary.index_bytes
    );
    let reader = SegmentReader::open(&path).unwrap();
    let chunks: Vec<_> = reader.streams().iter().flat_map(|s| &s.chunks).collect();
    let probes: Vec<FilterProbe> = needles
        .iter()
        .map(|(_, n)| FilterProbe::new(n.as_bytes()))
        .collect();
    let t = Instant::now();
    let mut passed = 0usize;
    for probe in &probes {
        passed += chunks.iter().filter(|c| reader.may_match(c, probe)).count();
    }
    let per_query = t.elapsed().as_secs_f64() / probes.len() as f64;
    println!(
        "filter check of all {} chunks ({} lines): {:.1} µs per needle, {:.2}% of chunks let through; scaled to 5M lines: {:.2} ms",
        chunks.len(),
        lines,
        per_query * 1e6,
        100.0 * passed as f64 / (probes.len() * chunks.len()) as f64,
        per_query * 1e3 * 5e6 / lines as f64
    );
    let t = Instant::now();
    let mut scanned = 0usize;
    for c in &chunks {
        let block = reader.read_decoded(c).unwrap();
        scanned += block.iter().filter(|e| e.line.contains("deadlock")).count() + block.len();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "read + decode + scan every block: {:.0} MB/s, {:.0} lines/s ({scanned})",
        mb(raw, secs),
        lines as f64 / secs
    );
}
