//! [`BlockCache`]: byte ranges of remote segments kept in memory, least
//! recently used out first, bounded in bytes.
//!
//! A remote read costs a round trip, so what a segment reader asks for
//! again is kept: the tail of each segment (footer, section table, and on
//! small segments the index and filters) fetched at open, and the blocks
//! queries read. A read is served when one cached range of the same
//! object contains it. Segments never change once written, so nothing is
//! ever stale; a deleted segment's ranges simply age out.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct BlockCache {
    capacity: u64,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Per object, cached ranges by start offset, with their last use.
    objects: HashMap<Arc<str>, BTreeMap<u64, (Bytes, u64)>>,
    /// Last use -> (object, start): the eviction order.
    by_use: BTreeMap<u64, (Arc<str>, u64)>,
    bytes: u64,
    clock: u64,
}

/// Hits and misses since the cache was made, and what it holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub bytes: u64,
}

impl BlockCache {
    /// A cache holding at most `capacity` bytes (0: caches nothing).
    pub fn new(capacity: u64) -> BlockCache {
        BlockCache {
            capacity,
            inner: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Copies `offset..offset + buf.len()` of `object` into `buf` if a
    /// cached range holds it.
    pub fn read(&self, object: &str, offset: u64, buf: &mut [u8]) -> bool {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        inner.clock += 1;
        let now = inner.clock;
        let found = inner.objects.get_mut(object).and_then(|ranges| {
            let (&start, entry) = ranges.range_mut(..=offset).next_back()?;
            let at = usize::try_from(offset - start).ok()?;
            let src = entry.0.get(at..at.checked_add(buf.len())?)?;
            buf.copy_from_slice(src);
            let last_use = std::mem::replace(&mut entry.1, now);
            Some((start, last_use))
        });
        match found {
            Some((start, last_use)) => {
                if let Some(key) = inner.by_use.remove(&last_use) {
                    inner.by_use.insert(now, key);
                }
                debug_assert!(inner.by_use.get(&now).is_some_and(|k| k.1 == start));
                self.hits.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Keeps `bytes`, found at `offset` of `object`, evicting the least
    /// recently used ranges to make room. Ranges over a quarter of the
    /// capacity are not kept (one huge read would flush everything).
    pub fn insert(&self, object: &str, offset: u64, bytes: Bytes) {
        let len = bytes.len() as u64;
        if len == 0 || len > self.capacity / 4 {
            return;
        }
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        inner.clock += 1;
        let now = inner.clock;
        let name: Arc<str> = match inner.objects.get_key_value(object) {
            Some((name, _)) => name.clone(),
            None => object.into(),
        };
        let ranges = inner.objects.entry(name.clone()).or_default();
        if let Some((old, last_use)) = ranges.insert(offset, (bytes, now)) {
            inner.bytes -= old.len() as u64;
            inner.by_use.remove(&last_use);
        }
        inner.by_use.insert(now, (name, offset));
        inner.bytes += len;
        while inner.bytes > self.capacity {
            let Some((_, (name, start))) = inner.by_use.pop_first() else {
                break;
            };
            if let Some(ranges) = inner.objects.get_mut(&name) {
                if let Some((old, _)) = ranges.remove(&start) {
                    inner.bytes -= old.len() as u64;
                }
                if ranges.is_empty() {
                    inner.objects.remove(&name);
                }
            }
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes: self.inner.lock().bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; n])
    }

    #[test]
    fn reads_inside_a_cached_range_hit() {
        let cache = BlockCache::new(1000);
        cache.insert("a", 100, Bytes::from((0u8..50).collect::<Vec<_>>()));
        let mut buf = [0u8; 10];
        assert!(cache.read("a", 110, &mut buf));
        assert_eq!(buf[0], 10);
        assert!(cache.read("a", 140, &mut buf), "the range's last bytes");
        assert!(!cache.read("a", 141, &mut buf), "one byte past the end");
        assert!(!cache.read("a", 90, &mut buf), "starts before");
        assert!(!cache.read("b", 110, &mut buf), "another object");
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 2,
                misses: 3,
                bytes: 50
            }
        );
    }

    #[test]
    fn least_recently_used_goes_first_and_bytes_stay_bounded() {
        let cache = BlockCache::new(400);
        cache.insert("a", 0, bytes(100, 1));
        cache.insert("b", 0, bytes(100, 2));
        cache.insert("c", 0, bytes(100, 3));
        let mut buf = [0u8; 1];
        assert!(cache.read("a", 0, &mut buf), "a is now the most recent");
        cache.insert("d", 0, bytes(100, 4));
        cache.insert("e", 0, bytes(100, 5));
        assert!(!cache.read("b", 0, &mut buf), "b was the least recent");
        for name in ["a", "c", "d", "e"] {
            assert!(cache.read(name, 0, &mut buf), "{name}");
        }
        assert_eq!(cache.stats().bytes, 400);
        // Too big to keep: nothing else is evicted for it.
        cache.insert("huge", 0, bytes(101, 6));
        assert!(!cache.read("huge", 0, &mut buf));
        assert_eq!(cache.stats().bytes, 400);
        // The same range again replaces the old bytes.
        cache.insert("a", 0, bytes(100, 7));
        assert!(cache.read("a", 0, &mut buf));
        assert_eq!(buf[0], 7);
        assert_eq!(cache.stats().bytes, 400);
    }

    #[test]
    fn a_zero_capacity_cache_keeps_nothing() {
        let cache = BlockCache::new(0);
        cache.insert("a", 0, bytes(1, 1));
        assert!(!cache.read("a", 0, &mut [0u8; 1]));
    }
}
