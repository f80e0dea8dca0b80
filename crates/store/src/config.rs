//! The store's configuration: where data lives and how ingest trades
//! latency, memory and durability.

use crate::limits::TenantLimits;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// When acknowledged entries reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    /// Every push waits for an fsync of the WAL; concurrent pushes share one
    /// (group commit). A power loss loses nothing acknowledged.
    Always,
    /// Pushes are acknowledged once written to the OS; the WAL is fsynced
    /// every `fsync_interval_ms`. A crash of the process loses nothing; a
    /// power loss may lose that interval.
    Interval,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory holding the WAL and the segments.
    pub data_dir: PathBuf,
    pub fsync: FsyncMode,
    /// Interval between fsyncs in `interval` mode.
    pub fsync_interval_ms: u64,
    /// How far behind the newest entry of its stream an entry may be and
    /// still be accepted (Loki accepts half of `max_chunk_age`, one hour).
    pub out_of_order_window_secs: u64,
    /// Head size (raw bytes) that triggers a flush into segments.
    pub flush_bytes: usize,
    /// Head size at which pushes wait for a running flush: the bound on
    /// ingest memory.
    pub max_head_bytes: usize,
    /// Longest time an entry stays only in the head and WAL before a flush.
    pub max_chunk_age_secs: u64,
    /// Target raw size of a block in a segment.
    pub block_bytes: usize,
    /// zstd level for blocks written by flushes and early compactions.
    pub zstd_level: i32,
    /// zstd level for blocks of compaction outputs of tier 2 and up: data
    /// that has settled, rewritten rarely, compressed harder (on generated
    /// logs level 7 is 9% smaller than level 3 at a quarter of the speed;
    /// decoding is as fast).
    pub settled_zstd_level: i32,
    /// Segments merged at once by compaction (0 turns compaction off).
    pub compact_fan_in: usize,
    /// Size (on disk) under which segments are in the first compaction
    /// tier; tier `n` holds segments up to `base * fan_in^(n+1)`.
    pub compact_base_bytes: u64,
    /// Segments this big are not compacted further, and no compaction
    /// writes a bigger one.
    pub compact_max_segment_bytes: u64,
    /// Largest group of pushes committed with one fsync, in bytes.
    pub max_commit_group_bytes: usize,
    /// How often the compaction thread applies retention and deletes
    /// (Loki's `compaction_interval`).
    pub retention_interval_secs: u64,
    /// How long an object of a shared segment store must stay without a
    /// row in the catalog, seen at two retention passes at least this far
    /// apart, before it is deleted as an orphan (a publish in flight lists
    /// its object within seconds).
    pub orphan_grace_secs: u64,
    /// Per-tenant limits at open; [`crate::Store::set_limits`] replaces
    /// them on a running store. Not part of `[store]`: the file's
    /// `[limits]` and `[tenants.<id>]` tables fill it.
    #[serde(skip)]
    pub limits: TenantLimits,
    /// Scrubbing rules at open ([`crate::Store::set_scrubber`] replaces
    /// them); the file's `[scrub]` table fills it.
    #[serde(skip)]
    pub scrub: crate::scrub::Scrubber,
    /// What this node does (`skald serve --target`): whether it accepts
    /// pushes, and whether it compacts and applies retention. Not part of
    /// `[store]`: how this process runs, not what is stored.
    #[serde(skip)]
    pub role: NodeRole,
}

/// What a node of a cluster does; a single node does everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRole {
    /// Accepts pushes (WAL, head, flushes).
    pub ingest: bool,
    /// Compacts and applies retention and deletes.
    pub compact: bool,
}

impl Default for NodeRole {
    fn default() -> Self {
        NodeRole {
            ingest: true,
            compact: true,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("data"),
            fsync: FsyncMode::Always,
            fsync_interval_ms: 1000,
            out_of_order_window_secs: 3600,
            flush_bytes: 48 * 1024 * 1024,
            max_head_bytes: 80 * 1024 * 1024,
            max_chunk_age_secs: 600,
            block_bytes: 1024 * 1024,
            zstd_level: skald_chunk::DEFAULT_ZSTD_LEVEL,
            settled_zstd_level: 7,
            compact_fan_in: 4,
            compact_base_bytes: 8 * 1024 * 1024,
            compact_max_segment_bytes: 2 * 1024 * 1024 * 1024,
            max_commit_group_bytes: 16 * 1024 * 1024,
            retention_interval_secs: 600,
            orphan_grace_secs: 3600,
            limits: TenantLimits::default(),
            scrub: Default::default(),
            role: NodeRole::default(),
        }
    }
}

impl StoreConfig {
    pub fn out_of_order_window(&self) -> i64 {
        (self.out_of_order_window_secs as i64).saturating_mul(1_000_000_000)
    }

    pub fn max_chunk_age(&self) -> Duration {
        Duration::from_secs(self.max_chunk_age_secs)
    }

    pub(crate) fn segment_options(&self, zstd_level: i32) -> skald_chunk::SegmentOptions {
        skald_chunk::SegmentOptions {
            zstd_level,
            target_block_bytes: self.block_bytes,
            filter: Default::default(),
        }
    }

    pub(crate) fn wal_dir(&self) -> PathBuf {
        self.data_dir.join("wal")
    }

    /// Damaged files set aside at start for inspection.
    pub(crate) fn quarantine_dir(&self) -> PathBuf {
        self.data_dir.join("quarantine")
    }

    /// New segments written here before they are uploaded, when segments
    /// live elsewhere than in the data directory.
    pub(crate) fn staging_dir(&self) -> PathBuf {
        self.data_dir.join("staging")
    }

    pub(crate) fn flushed_marker(&self) -> PathBuf {
        self.data_dir.join("wal-flushed")
    }
}
