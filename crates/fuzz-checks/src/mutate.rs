//! Deterministic inputs for the stable pass: seeds mutated the way a
//! fuzzer starts out (bit flips, byte changes, insertions, deletions,
//! truncations, copies of a span, interesting integers, splices of two
//! seeds) and plain random bytes, from a fixed-seed generator so a
//! failure reproduces.

/// A xorshift64* generator and the mutations it drives.
pub struct Mutator {
    state: u64,
}

const INTERESTING: [u64; 10] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    u64::MAX,
];

impl Mutator {
    pub fn new(seed: u64) -> Mutator {
        Mutator { state: seed.max(1) }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Up to `max_len` random bytes.
    pub fn random_bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// One to four mutations of one of `seeds` (spliced with another one
    /// now and then).
    pub fn mutate(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
        let mut out = seeds[self.below(seeds.len())].clone();
        for _ in 0..1 + self.below(4) {
            self.mutate_once(&mut out, seeds);
        }
        out
    }

    fn mutate_once(&mut self, out: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        if out.is_empty() {
            out.push(self.next_u64() as u8);
            return;
        }
        let at = self.below(out.len());
        match self.below(8) {
            0 => out[at] ^= 1 << self.below(8),
            1 => out[at] = self.next_u64() as u8,
            2 => {
                let n = 1 + self.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| self.next_u64() as u8).collect();
                out.splice(at..at, bytes);
            }
            3 => {
                let end = (at + 1 + self.below(16)).min(out.len());
                out.drain(at..end);
            }
            4 => out.truncate(at),
            5 => {
                // A span copied elsewhere: repeated fields and records.
                let end = (at + 1 + self.below(64)).min(out.len());
                let span = out[at..end].to_vec();
                let to = self.below(out.len() + 1);
                out.splice(to..to, span);
            }
            6 => {
                // An interesting integer over 1, 2, 4 or 8 bytes: lengths,
                // counts and offsets at their edges.
                let value = INTERESTING[self.below(INTERESTING.len())].to_le_bytes();
                let width = 1 << self.below(4);
                let end = (at + width).min(out.len());
                out[at..end].copy_from_slice(&value[..end - at]);
            }
            _ => {
                // A splice: the head of this input and the tail of another.
                let other = &seeds[self.below(seeds.len())];
                let from = self.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
        }
    }
}
